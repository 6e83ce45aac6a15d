"""The pages' message catalogue: Chinese and English say the same things, and every message a
template asks for exists (a missing one would fail a page in front of a caseworker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.db.identity import ROLES
from service.i18n import LANGS, Catalogue, as_lang, catalogue, load_catalogue, placeholders
from service.pages.rendering import _ERROR_KINDS, NAV_BY_ROLE, TEMPLATE_DIR, error_kind
from service.pages.views import DONE_NOTICES
from service.schemas.workflow import (
    ConfirmationCreate,
    MandatoryReportCreate,
    OverrideCreate,
    ReviewCreate,
)

#: ``t('key')`` with a literal key, and ``t('prefix.' ~ expr)`` with a computed one.
LITERAL = re.compile(r"""\bt\(\s*'([a-z0-9_.]+)'\s*[,)]""")
COMPUTED = re.compile(r"""\bt\(\s*'([a-z0-9_.]+)'\s*~""")


def _template_texts() -> dict[str, str]:
    return {
        str(path.relative_to(TEMPLATE_DIR)): path.read_text(encoding="utf-8")
        for path in sorted(TEMPLATE_DIR.rglob("*.html"))
    }


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    words = load_catalogue()
    zh, en = words.keys("zh"), words.keys("en")
    assert zh == en, f"only in zh: {sorted(zh - en)}; only in en: {sorted(en - zh)}"
    assert len(zh) > 150
    for key in sorted(zh):
        assert placeholders(words.text("zh", key)) == placeholders(words.text("en", key)), key
        assert words.text("zh", key).strip() and words.text("en", key).strip(), key


def test_every_literal_key_in_the_templates_exists() -> None:
    keys = catalogue().keys("zh")
    used: set[str] = set()
    for name, text in _template_texts().items():
        for key in LITERAL.findall(text):
            used.add(key)
            assert key in keys, f"{name} asks for {key!r}, which the catalogue lacks"
    assert len(used) > 100


def test_computed_keys_have_every_value_they_can_take() -> None:
    keys = catalogue().keys("en")
    prefixes = {p for text in _template_texts().values() for p in COMPUTED.findall(text)}
    expected: dict[str, set[str]] = {
        "role.": set(ROLES),
        "nav.": {item for items in NAV_BY_ROLE.values() for item in items},
        "error.title_": {*_ERROR_KINDS.values(), "internal"},
        "error.body_": {*_ERROR_KINDS.values(), "internal"},
        "child.rule_": {"hard", "floor"},
        "child.domain_": {"raises", "lowers"},
        "child.": {"raises", "lowers"},
        "metric.": {
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "precision_at_capacity",
            "recall_at_capacity",
        },
        "field.": {
            "form",
            *ReviewCreate.model_fields,
            *OverrideCreate.model_fields,
            *ConfirmationCreate.model_fields,
            *(f"report_{name}" for name in MandatoryReportCreate.model_fields),
        },
    }
    assert prefixes <= set(expected), f"untested computed prefixes: {prefixes - set(expected)}"
    for prefix in prefixes:
        missing = {value for value in expected[prefix] if prefix + value not in keys}
        assert not missing, f"{prefix}* lacks {sorted(missing)}"


def test_notices_built_in_python_exist() -> None:
    keys = catalogue().keys("zh")
    assert DONE_NOTICES
    for what in DONE_NOTICES:
        assert f"child.done_{what}" in keys


def test_text_fills_placeholders_and_fails_loudly_on_an_unknown_key() -> None:
    words = catalogue()
    assert words.text("en", "watchlist.overdue_days", days=3) == "3 days overdue"
    assert words.text("zh", "watchlist.overdue_days", days=3) == "逾期 3 天"
    with pytest.raises(KeyError):
        words.text("zh", "no.such_key")


def test_a_malformed_catalogue_is_refused(tmp_path: Path) -> None:
    for lang in LANGS:
        (tmp_path / f"{lang}.toml").write_text("[nav]\nwatchlist = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not text"):
        load_catalogue(tmp_path)
    for lang in LANGS:
        (tmp_path / f"{lang}.toml").write_text('[Nav]\nwatchlist = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="lower_snake_case"):
        load_catalogue(tmp_path)


def test_language_choice_and_error_kinds() -> None:
    assert [as_lang(v) for v in ("zh", "en", "fr", None, "")] == ["zh", "en", "zh", "zh", "zh"]
    assert as_lang("de", "en") == "en"
    assert error_kind(404) == "not_found"
    assert error_kind(502) == "internal"
    assert error_kind(418) == "invalid"
    assert isinstance(catalogue(), Catalogue)
