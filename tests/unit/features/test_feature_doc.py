"""docs/feature-store.md carries the feature list generated from the registry."""

from __future__ import annotations

from pathlib import Path

from features.definitions import feature_names
from features.feature_doc import render_feature_list, updated_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "feature-store.md"


def test_feature_doc_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert updated_document(text) == text, "run `shouhu features featuredoc` and commit"


def test_feature_doc_lists_every_feature_once() -> None:
    rendered = render_feature_list()
    for name in feature_names():
        assert rendered.count(f"| `{name}` |") == 1
