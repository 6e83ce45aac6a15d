"""docs/human-review.md carries the parts generated from the tier policy, and they are current."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.policy import Period, Tier, load_policy
from service.workflow.doc import BEGIN, END, render_policy_section, updated_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "human-review.md"


def test_human_review_doc_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert updated_document(text, load_policy()) == text, "run `shouhu review doc` and commit"


def test_the_generated_part_names_every_rule_and_the_policy_version() -> None:
    policy = load_policy()
    rendered = render_policy_section(policy)
    assert rendered.startswith(BEGIN) and rendered.endswith(END)
    assert f"**{policy.version}**" in rendered
    for rule in policy.rules:
        assert rendered.count(f"`{rule.name}`") == 1
    assert "on-site visit (上门核查): within 24 hours (24小时内)" in rendered
    assert "home visit (入户走访): every 2 weeks (每2周)" in rendered


def test_the_doc_follows_a_county_policy() -> None:
    # A county with weekly T2 visits gets a document that says so.
    policy = load_policy()
    t2 = policy.tier(Tier.T2)
    response = t2.response.model_copy(update={"visit_every": Period(every=1, unit="week")})
    tiers = [
        t.model_copy(update={"response": response}) if t.id is Tier.T2 else t for t in policy.tiers
    ]
    county = policy.model_copy(update={"tiers": tiers})
    assert "home visit (入户走访): every week (每周)" in render_policy_section(county)
    text = DOC.read_text(encoding="utf-8")
    assert updated_document(text, county) != text


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        updated_document("# no markers", load_policy())
