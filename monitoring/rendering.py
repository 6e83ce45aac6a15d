"""Jinja2 rendering of the monitoring reports (templates in ``monitoring/templates``).

Reports are rendered from the same plain JSON-ready dict that ``--json`` prints, so the
Markdown, the HTML and the JSON can never disagree. The HTML template escapes every value
(autoescape); the Markdown one is plain text.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

#: Folder of the report templates (package data: they travel with the package).
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def number(value: Any, digits: int = 3) -> str:
    """A figure for a report: ``digits`` decimals, an em dash when missing.

    Examples
    --------
    >>> number(0.12345), number(None), number(float("nan")), number(12)
    ('0.123', '—', '—', '12')
    """
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    number_value = float(value)
    if not math.isfinite(number_value):
        return "—"
    return f"{number_value:.{digits}f}"


def percent(value: Any, digits: int = 1) -> str:
    """A share as a percentage, an em dash when missing.

    Examples
    --------
    >>> percent(0.1234), percent(None)
    ('12.3 %', '—')
    """
    if value is None:
        return "—"
    number_value = float(value)
    if not math.isfinite(number_value):
        return "—"
    return f"{100 * number_value:.{digits}f} %"


def signed(value: Any, digits: int = 3) -> str:
    """A difference with its sign, an em dash when missing.

    Examples
    --------
    >>> signed(0.0123), signed(-0.5), signed(None)
    ('+0.012', '-0.500', '—')
    """
    if value is None:
        return "—"
    number_value = float(value)
    if not math.isfinite(number_value):
        return "—"
    return f"{number_value:+.{digits}f}"


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = number
    env.filters["percent"] = percent
    env.filters["signed"] = signed
    return env


def render(template: str, context: dict[str, Any], *, folder: Path | None = None) -> str:
    """Render one report template.

    Parameters
    ----------
    template : str
        File name in the template folder, e.g. ``"reevaluation.md.j2"``.
    context : dict
        Template variables.
    folder : Path, optional
        Template folder; :data:`TEMPLATE_DIR` by default.

    Returns
    -------
    str
        The rendered text.

    Raises
    ------
    jinja2.TemplateNotFound
        If the template does not exist.
    """
    return _environment(str(folder or TEMPLATE_DIR)).get_template(template).render(**context)


__all__ = ["TEMPLATE_DIR", "number", "percent", "render", "signed"]
