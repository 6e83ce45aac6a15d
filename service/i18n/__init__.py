"""The pages' words in Chinese (the default) and English: a small typed message catalogue.

Each language is a TOML file beside this module (``zh.toml``, ``en.toml``) whose tables nest
keys (``[watchlist] title = "…"`` is the key ``watchlist.title``). Messages may hold
``{name}`` placeholders filled by :meth:`Catalogue.text`. A test checks that both languages have
the same keys with the same placeholders, and that every key a template asks for exists, so a
missing translation fails the test suite instead of showing a key to a caseworker.

Why not gettext: Babel is not among the project's dependencies, the pages have a few hundred
messages and two languages, and a flat catalogue that a test can compare key by key is easier
for a county's staff to edit than ``.po`` files.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Lang = Literal["zh", "en"]

#: The languages the pages speak, the default first.
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"
#: Shown in the language switch, each in its own language.
LANG_NAMES: dict[Lang, str] = {"zh": "中文", "en": "English"}

_FOLDER = Path(__file__).resolve().parent
_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def as_lang(value: str | None, default: Lang = DEFAULT_LANG) -> Lang:
    """``value`` if it names a language the pages speak, else ``default``.

    Examples
    --------
    >>> as_lang("en"), as_lang("fr"), as_lang(None)
    ('en', 'zh', 'zh')
    """
    for lang in LANGS:
        if value == lang:
            return lang
    return default


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, key + "."))
        elif isinstance(value, str):
            out[key] = value
        else:
            raise ValueError(f"message {key!r} is not text")
        if not _KEY.match(key):
            raise ValueError(f"message key {key!r} is not lower_snake_case with dots")
    return out


def placeholders(message: str) -> frozenset[str]:
    """The ``{name}`` placeholders of ``message``.

    Examples
    --------
    >>> sorted(placeholders("{n} children in {area}"))
    ['area', 'n']
    """
    return frozenset(
        field for _, field, _, _ in string.Formatter().parse(message) if field is not None
    )


@dataclass(frozen=True)
class Catalogue:
    """The messages of every language, keyed by dotted name.

    Attributes
    ----------
    messages : dict
        ``{lang: {key: message}}``.
    """

    messages: Mapping[Lang, Mapping[str, str]]

    def keys(self, lang: Lang) -> frozenset[str]:
        """Every key of ``lang``."""
        return frozenset(self.messages[lang])

    def text(self, lang: Lang, key: str, **params: Any) -> str:
        """The message ``key`` in ``lang``, with its placeholders filled.

        Parameters
        ----------
        lang : {"zh", "en"}
            Language.
        key : str
            Dotted key (``watchlist.title``).
        **params
            Values of the message's placeholders.

        Returns
        -------
        str
            The message.

        Raises
        ------
        KeyError
            If the key is unknown (the catalogue test keeps this from reaching a page).
        """
        message = self.messages[lang][key]
        return message.format(**params) if params else message


def load_catalogue(folder: Path = _FOLDER) -> Catalogue:
    """Read ``zh.toml`` and ``en.toml`` from ``folder``.

    Raises
    ------
    ValueError
        If a message is not text or a key is malformed.
    """
    messages: dict[Lang, dict[str, str]] = {}
    for lang in LANGS:
        with (folder / f"{lang}.toml").open("rb") as handle:
            messages[lang] = _flatten(tomllib.load(handle))
    return Catalogue(messages)


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The catalogue shipped with the service, read once per process."""
    return load_catalogue()


__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "LANG_NAMES",
    "Catalogue",
    "Lang",
    "as_lang",
    "catalogue",
    "load_catalogue",
    "placeholders",
]
