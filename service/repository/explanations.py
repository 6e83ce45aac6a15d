"""Explanations now: rules fired and reasons by domain in the caller's language; the waterfall.

Computed by the service's :class:`~service.scoring.Scorer` from the snapshot (the same numbers
``shouhu models explain`` gives for the snapshot's date); the ledger records behind each reason
are read from the feature store only when asked for (``evidence=true``).
"""

from __future__ import annotations

import io
from typing import Any

from service.schemas.common import Lang
from service.schemas.explanations import (
    DomainPublic,
    EvidencePublic,
    ExplainedReason,
    ExplanationPublic,
    RulePublic,
)
from service.scoring import ChildScore, Reason
from service.state import ServiceState


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _row(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _evidence(
    state: ServiceState, child_id: str, features: set[str]
) -> dict[str, list[EvidencePublic]]:
    from features.evidence import evidence_frame

    assert state.snapshot.as_of is not None
    with state.feature_store() as con:
        cited = evidence_frame(con, [child_id], sorted(features), state.snapshot.as_of)
    out: dict[str, list[EvidencePublic]] = {f: [] for f in features}
    for rec in cited.to_dict(orient="records"):
        out.setdefault(str(rec["feature"]), []).append(
            EvidencePublic(
                table=str(rec["table"]),
                record_id=_text(rec.get("record_id")),
                event_date=_text(rec.get("event_date")),
                recorded_at=_text(rec.get("recorded_at")),
                file=_text(rec.get("file")),
                row=_row(rec.get("row")),
            )
        )
    return out


def _reason(
    reason: Reason, lang: Lang, evidence: dict[str, list[EvidencePublic]]
) -> ExplainedReason:
    value = reason.value
    return ExplainedReason(
        feature=reason.feature,
        direction=reason.direction,
        contribution=reason.contribution,
        value=value if isinstance(value, str | int | float | bool) or value is None else str(value),
        text=reason.text(lang),
        evidence=evidence.get(reason.feature, []),
    )


def explanation(
    state: ServiceState,
    child_id: str,
    lang: Lang,
    *,
    top: int = 5,
    per_domain: int = 3,
    with_evidence: bool = False,
) -> ExplanationPublic:
    """A child's explanation now.

    Parameters
    ----------
    state : ServiceState
        Scorer, policy and stores.
    child_id : str
        The child (area already checked).
    lang : {"zh", "en"}
        Language of sentences and names.
    top : int, default=5
        Reasons in ``top_reasons``.
    per_domain : int, default=3
        Reasons under each domain.
    with_evidence : bool, default=False
        Cite the ledger records behind each reason shown (reads the feature store).

    Returns
    -------
    ExplanationPublic
        Score, tier, rules fired, top reasons and reasons grouped by the policy's domains.
    """
    scored: ChildScore = state.scorer.score(
        [child_id], explain=True, top=top, per_domain=per_domain
    )[0]
    policy = state.policy
    reasons = scored.reasons
    groups: list[tuple[str, list[Reason]]] = [
        (name, [r for r in reasons if r.domain == name]) for name in policy.domains
    ]
    shown = {r.feature for r in reasons[:top]} | {
        r.feature for _, own in groups for r in own[:per_domain]
    }
    evidence = _evidence(state, child_id, shown) if with_evidence and shown else {}
    by_name = {rule.name: rule for rule in policy.rules}
    rules: list[RulePublic] = []
    for label in scored.decision.rules_fired:
        name = label.rsplit(":", 1)[-1]
        rule = by_name.get(name)
        if rule is None:
            continue
        fired = policy.fired(rule)
        rules.append(
            RulePublic(
                rule=label,
                kind=fired.kind,
                tier=fired.tier.value,
                domain=rule.domain,
                text=rule.zh if lang == "zh" else rule.en,
            )
        )
    domains = []
    for name, own in groups:
        total = float(sum(r.contribution for r in own))
        text = policy.domains[name]
        domains.append(
            DomainPublic(
                domain=name,
                name=text.zh if lang == "zh" else text.en,
                contribution=total,
                direction="raises" if total > 0 else "lowers",
                reasons=[_reason(r, lang, evidence) for r in own[:per_domain]],
            )
        )
    return ExplanationPublic(
        child_id=child_id,
        as_of=scored.as_of,
        lang=lang,
        p_any=scored.p_any,
        p_low=scored.p_low,
        p_high=scored.p_high,
        tier=scored.tier.value,
        margin=scored.margin,
        bias=scored.bias,
        rules_fired=rules,
        top_reasons=[_reason(r, lang, evidence) for r in reasons[:top]],
        domains=domains,
        model_name=state.model_name,
        model_version=state.model_version,
        policy_version=state.policy_version,
    )


def waterfall_png(state: ServiceState, child_id: str, lang: Lang) -> tuple[bytes, Lang]:
    """The child's waterfall chart as PNG bytes, and the label language used.

    Chinese labels need a font with Chinese glyphs; without one the chart is drawn in English
    (``models.plots.plot_language``) and the language returned says so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from models.plots import plot_language, waterfall_figure

    scored = state.scorer.score([child_id], explain=True, top=10, per_domain=0)[0]
    used = plot_language(lang)
    payload = {
        "child_id": child_id,
        "as_of": scored.as_of.isoformat(),
        "model_name": state.model_name,
        "model_version": state.model_version,
        "score": {"bias": scored.bias, "margin": scored.margin, "p_any": scored.p_any},
        "contributions": [
            {"zh": r.zh, "en": r.en, "contribution": r.contribution} for r in scored.reasons
        ],
    }
    figure = waterfall_figure(payload, lang=used)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue(), used


__all__ = ["explanation", "waterfall_png"]
