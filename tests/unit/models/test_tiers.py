"""Tier decisions: hard rules, floors, capacity thresholds, hysteresis and overrides."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.policy import FiredRule, Role, Tier, TierPolicy, load_policy, most_severe
from models.tiers import (
    OUTPUT_COLUMNS,
    AreaThresholds,
    Override,
    TierDecision,
    TierSource,
    TierState,
    assign_tiers,
    decide_tier,
    state_from_decision,
)
from shouhu.errors import PolicyError
from tests.unit.models._policy_frames import (
    BASELINE,
    TRIGGERS,
    default_policy,
    random_records,
    typed_frame,
)

TH = AreaThresholds(t2=0.5, t3=0.2)
HARD_RULES = [default_policy().fired(r) for r in default_policy().hard_rules]
FLOOR_RULES = [default_policy().fired(r) for r in default_policy().floor_rules]
FEATURES = sorted(default_policy().feature_names())

tiers = st.sampled_from(list(Tier))
roles = st.sampled_from(list(Role))
probabilities = st.one_of(st.none(), st.floats(0.0, 1.0))


@st.composite
def previous_states(draw: st.DrawFn) -> TierState | None:
    if draw(st.booleans()):
        return None
    tier = draw(tiers)
    return TierState(
        tier=tier,
        consecutive_below=draw(st.integers(0, 3)),
        hard_rule_t1=tier is Tier.T1 and draw(st.booleans()),
        confirmed_by=draw(st.one_of(st.none(), roles)),
    )


overrides = st.one_of(
    st.none(),
    st.builds(Override, tier=tiers, role=roles, reviewer=st.just("r-1"), reason=st.just("seen")),
)


def _decide(**kwargs: Any) -> TierDecision:
    kwargs.setdefault("fired", [])
    kwargs.setdefault("thresholds", TH)
    return decide_tier(default_policy(), **kwargs)


def _policy_with(**changes: Any) -> TierPolicy:
    data = default_policy().model_dump(mode="json", by_alias=True)
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return TierPolicy.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Hard rules and floors


@settings(max_examples=300, deadline=None)
@given(
    hard=st.sampled_from(HARD_RULES),
    others=st.lists(st.sampled_from(HARD_RULES + FLOOR_RULES), max_size=4),
    p_any=probabilities,
    previous=previous_states(),
    override=overrides,
)
def test_every_hard_rule_forces_t1_whatever_the_score_history_or_override(
    hard: FiredRule,
    others: list[FiredRule],
    p_any: float | None,
    previous: TierState | None,
    override: Override | None,
) -> None:
    decision = _decide(p_any=p_any, fired=[hard, *others], previous=previous, override=override)
    assert decision.tier is Tier.T1
    assert decision.hard_rule_t1 is True
    assert decision.rule_tier is Tier.T1
    assert hard.label in decision.rules_fired
    assert decision.policy_version == default_policy().version
    if override is not None and override.tier is not Tier.T1:
        assert decision.override_limited is True
        assert decision.source is TierSource.HARD_RULE


@settings(max_examples=100, deadline=None)
@given(
    rule=st.sampled_from([r.name for r in default_policy().hard_rules]),
    index=st.integers(0, 2),
    p_any=st.floats(0.0, 1.0),
    previous=previous_states(),
)
def test_hard_rule_situations_in_feature_records_force_t1(
    rule: str, index: int, p_any: float, previous: TierState | None
) -> None:
    patches = TRIGGERS[rule]
    record = {**BASELINE, **patches[index % len(patches)]}
    decision = _decide(p_any=p_any, fired=None, record=record, previous=previous)
    assert decision.tier is Tier.T1
    assert f"hard:{rule}" in decision.rules_fired


@settings(max_examples=300, deadline=None)
@given(
    fired=st.lists(st.sampled_from(HARD_RULES + FLOOR_RULES), max_size=4),
    p_any=probabilities,
    previous=previous_states(),
    override=overrides,
)
def test_floors_are_never_undercut_by_model_hysteresis_or_override(
    fired: list[FiredRule],
    p_any: float | None,
    previous: TierState | None,
    override: Override | None,
) -> None:
    decision = _decide(p_any=p_any, fired=fired, previous=previous, override=override)
    floor = most_severe(*(r.tier for r in fired))
    if floor is not None:
        assert decision.tier.level <= floor.level
    assert decision.rules_fired == tuple(r.label for r in fired)  # shown whatever the tier
    if override is None:
        assert decision.tier.level <= decision.candidate_tier.level  # hysteresis only holds up
    else:
        assert decision.override_applied is True
        wanted = most_severe(override.tier, floor)
        assert decision.tier is wanted or (decision.tier is Tier.T1 and decision.override_limited)


def test_floor_rule_sets_minimum_but_model_may_place_higher() -> None:
    floor_t3 = default_policy().fired(
        next(r for r in default_policy().floor_rules if r.name == "no_household_registration")
    )
    low = _decide(p_any=0.05, fired=[floor_t3])
    assert (low.tier, low.source, low.model_tier) == (Tier.T3, TierSource.FLOOR_RULE, Tier.T4)
    high = _decide(p_any=0.9, fired=[floor_t3])
    assert (high.tier, high.source, high.model_tier) == (Tier.T2, TierSource.MODEL, Tier.T2)
    assert high.rules_fired == ("floor:T3:no_household_registration",)


def test_model_places_child_by_thresholds_when_no_rule_fires() -> None:
    assert _decide(p_any=0.5).tier is Tier.T2  # the cut-off itself is inside the band
    assert _decide(p_any=0.3).tier is Tier.T3
    decision = _decide(p_any=0.1)
    assert (decision.tier, decision.source, decision.model_available) == (
        Tier.T4,
        TierSource.MODEL,
        True,
    )


def test_without_model_rules_still_decide_and_the_decision_says_so() -> None:
    floor_t2 = default_policy().fired(default_policy().floor_rules[1])
    decision = _decide(p_any=None, fired=[floor_t2], thresholds=None)
    assert (decision.tier, decision.model_tier, decision.model_available) == (
        Tier.T2,
        None,
        False,
    )
    plain = _decide(p_any=None, thresholds=None)
    assert (plain.tier, plain.source) == (Tier.T4, TierSource.NO_MODEL)


def test_decide_tier_refuses_ambiguous_inputs() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        decide_tier(default_policy(), p_any=0.1, fired=[], record=BASELINE, thresholds=TH)
    with pytest.raises(ValueError, match="exactly one of"):
        decide_tier(default_policy(), p_any=0.1, thresholds=TH)
    with pytest.raises(ValueError, match="needs the area's thresholds"):
        _decide(p_any=0.1, thresholds=None)
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        _decide(p_any=1.5)
    with pytest.raises(ValueError, match="T2-T4 only"):
        _decide(p_any=0.9, model_tier=Tier.T1)


def test_borderline_when_interval_straddles_a_threshold() -> None:
    assert _decide(p_any=0.45, p_low=0.40, p_high=0.55).borderline is True
    assert _decide(p_any=0.25, p_low=0.15, p_high=0.30).borderline is True
    assert _decide(p_any=0.60, p_low=0.51, p_high=0.70).borderline is False
    assert _decide(p_any=0.45).borderline is False  # no interval, no flag


# ---------------------------------------------------------------------------------------------
# Hysteresis


def test_rise_takes_effect_at_once() -> None:
    decision = _decide(p_any=0.9, previous=TierState(Tier.T4, consecutive_below=1))
    assert (decision.tier, decision.held_by_hysteresis, decision.consecutive_below) == (
        Tier.T2,
        False,
        0,
    )


def test_fall_needs_two_scorings_below_and_a_caseworker_confirmation() -> None:
    first = _decide(p_any=0.05, previous=TierState(Tier.T2))
    assert (first.tier, first.held_by_hysteresis, first.awaiting_confirmation) == (
        Tier.T2,
        True,
        False,
    )
    assert (first.candidate_tier, first.consecutive_below) == (Tier.T4, 1)
    # A confirmation cannot shortcut the two scorings.
    early = _decide(p_any=0.05, previous=TierState(Tier.T2, confirmed_by=Role.SUPERVISOR))
    assert (early.tier, early.held_by_hysteresis, early.consecutive_below) == (Tier.T2, True, 1)
    second = _decide(p_any=0.05, previous=first.state())
    assert (second.tier, second.awaiting_confirmation, second.confirmation_role) == (
        Tier.T2,
        True,
        Role.CASEWORKER,
    )
    unconfirmed = _decide(p_any=0.05, previous=second.state())
    assert (unconfirmed.tier, unconfirmed.consecutive_below) == (Tier.T2, 3)
    confirmed = _decide(
        p_any=0.05, previous=state_from_decision(second, confirmed_by=Role.CASEWORKER)
    )
    assert (confirmed.tier, confirmed.held_by_hysteresis, confirmed.consecutive_below) == (
        Tier.T4,
        False,
        0,
    )
    assert confirmed.source is TierSource.MODEL


def test_fall_count_resets_when_risk_comes_back() -> None:
    first = _decide(p_any=0.05, previous=TierState(Tier.T2))
    back = _decide(p_any=0.7, previous=first.state())
    assert (back.tier, back.consecutive_below) == (Tier.T2, 0)
    again = _decide(p_any=0.05, previous=back.state())
    assert (again.consecutive_below, again.awaiting_confirmation) == (1, False)


def test_hard_rule_t1_closes_only_with_a_supervisor() -> None:
    hard = HARD_RULES[0]
    start = _decide(p_any=0.05, fired=[hard])
    assert (start.tier, start.hard_rule_t1) == (Tier.T1, True)
    week1 = _decide(p_any=0.05, previous=start.state())
    week2 = _decide(p_any=0.05, previous=week1.state())
    assert (week2.tier, week2.awaiting_confirmation, week2.confirmation_role) == (
        Tier.T1,
        True,
        Role.SUPERVISOR,
    )
    by_caseworker = _decide(
        p_any=0.05, previous=state_from_decision(week2, confirmed_by=Role.CASEWORKER)
    )
    assert (by_caseworker.tier, by_caseworker.hard_rule_t1) == (Tier.T1, True)
    by_supervisor = _decide(
        p_any=0.05, previous=state_from_decision(week2, confirmed_by=Role.SUPERVISOR)
    )
    assert (by_supervisor.tier, by_supervisor.hard_rule_t1) == (Tier.T4, False)


def test_caseworker_override_cannot_close_a_hard_rule_t1_but_supervisor_can() -> None:
    held = TierState(Tier.T1, consecutive_below=1, hard_rule_t1=True)
    caseworker = Override(Tier.T3, Role.CASEWORKER, "cw-7", "family back home")
    refused = _decide(p_any=0.05, previous=held, override=caseworker)
    assert (refused.tier, refused.override_limited, refused.source) == (
        Tier.T1,
        True,
        TierSource.HYSTERESIS,
    )
    supervisor = Override(Tier.T3, Role.SUPERVISOR, "sv-1", "case meeting closed the report")
    closed = _decide(p_any=0.05, previous=held, override=supervisor)
    assert (closed.tier, closed.override_limited, closed.source) == (
        Tier.T3,
        False,
        TierSource.OVERRIDE,
    )
    assert closed.hard_rule_t1 is False


def test_override_never_below_a_floor_and_may_raise() -> None:
    floor_t2 = FLOOR_RULES[1]
    down = Override(Tier.T4, Role.SUPERVISOR, "sv-1", "attending again")
    clamped = _decide(p_any=0.05, fired=[floor_t2], override=down)
    assert (clamped.tier, clamped.override_limited, clamped.source) == (
        Tier.T2,
        True,
        TierSource.FLOOR_RULE,
    )
    up = Override(Tier.T2, Role.CASEWORKER, "cw-7", "bruises seen at school")
    raised = _decide(p_any=0.05, override=up)
    assert (raised.tier, raised.source, raised.consecutive_below) == (
        Tier.T2,
        TierSource.OVERRIDE,
        0,
    )


def test_override_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="written reason"):
        Override(Tier.T4, Role.SUPERVISOR, "sv-1", "  ")


def test_scoring_without_model_does_not_count_towards_a_fall() -> None:
    previous = TierState(Tier.T2, consecutive_below=1)
    decision = _decide(p_any=None, thresholds=None, previous=previous)
    assert (decision.tier, decision.held_by_hysteresis, decision.consecutive_below) == (
        Tier.T2,
        True,
        1,
    )
    counting = _policy_with(hysteresis__count_scorings_without_model=True)
    counted = decide_tier(counting, p_any=None, fired=[], previous=previous)
    assert (counted.tier, counted.awaiting_confirmation) == (Tier.T2, True)


def test_tier_state_refuses_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="hard_rule_t1"):
        TierState(Tier.T2, hard_rule_t1=True)
    with pytest.raises(ValueError, match="negative"):
        TierState(Tier.T2, consecutive_below=-1)


# ---------------------------------------------------------------------------------------------
# Batch: capacity thresholds


def _reference_bands(
    frame: pd.DataFrame, forced_t1: pd.Series, k: dict[str, tuple[int, int]]
) -> dict[str, str | None]:
    """Naive capacity ranking, township by township, child by child."""
    out: dict[str, str | None] = {}
    for town, group in frame.groupby("township_code"):
        k2, k3 = k[str(town)]
        pool = [
            (row.p_any, row.child_id)
            for row in group.itertuples()
            if not forced_t1[row.Index] and not math.isnan(row.p_any)
        ]
        pool.sort(key=lambda item: (-item[0], item[1]))
        for rank, (_, pid) in enumerate(pool):
            out[pid] = "T2" if rank < k2 else ("T3" if rank < k2 + k3 else "T4")
    return out


@st.composite
def populations(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 60))
    towns = draw(
        st.lists(
            st.sampled_from(["500101001000", "500101002000", "500101003000"]),
            min_size=n,
            max_size=n,
        )
    )
    # Few distinct scores, so ties are common; some children have no score.
    scores = draw(
        st.lists(
            st.sampled_from([0.05, 0.2, 0.2, 0.5, 0.5, 0.9, float("nan")]), min_size=n, max_size=n
        )
    )
    kinds = draw(
        st.lists(
            st.sampled_from(["none", "none", "none", "hard", "floor_t1", "floor_t2"]),
            min_size=n,
            max_size=n,
        )
    )
    ids = draw(st.permutations([f"c{i:03d}" for i in range(n)]))
    patch = {
        "none": {},
        "hard": TRIGGERS["guardianship_absent"][0],
        "floor_t1": TRIGGERS["dropout_with_guardianship_gap"][0],
        "floor_t2": TRIGGERS["improper_guardianship"][0],
    }
    records = [{**BASELINE, **patch[kind]} for kind in kinds]
    return typed_frame(records, child_id=ids, township_code=towns, p_any=scores)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=populations(),
    k2=st.integers(0, 12),
    k3=st.integers(0, 20),
    override_k=st.integers(0, 5),
)
def test_capacity_gives_exactly_the_configured_counts_per_township(
    frame: pd.DataFrame, k2: int, k3: int, override_k: int
) -> None:
    policy = _policy_with(
        capacity__per_area={"t2": k2, "t3": k3},
        capacity__overrides={"500101002000": {"basis": "count", "t2": override_k, "t3": 1}},
    )
    out = assign_tiers(frame, policy)
    forced = out["rule_tier"].eq("T1")
    slots = {"500101001000": (k2, k3), "500101002000": (override_k, 1), "500101003000": (k2, k3)}
    expected = _reference_bands(frame, forced, slots)
    ranked = out[out["child_id"].isin(list(expected))]
    assert dict(zip(ranked["child_id"], ranked["model_tier"], strict=True)) == expected
    for town, group in out.groupby("township_code"):
        t2, t3 = slots[str(town)]
        eligible = int((~forced[group.index] & frame.loc[group.index, "p_any"].notna()).sum())
        band2 = group["model_tier"].eq("T2") & ~forced[group.index]
        band3 = group["model_tier"].eq("T3") & ~forced[group.index]
        assert int(band2.sum()) == min(t2, eligible)
        assert int(band3.sum()) == min(t3, max(eligible - t2, 0))
        # The reported cut-off is the lowest score admitted to the band.
        cut = group["threshold_t2"].iloc[0]
        if band2.any():
            assert cut == frame.loc[group.index[band2.to_numpy()], "p_any"].min()
        else:
            assert math.isnan(cut)
    assert out["tier"].eq("T1").sum() == forced.sum()  # rules alone decide T1


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80))
def test_capacity_by_share_and_row_order_do_not_matter(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    policy = _policy_with(capacity__basis="share", capacity__share={"t2": 0.1, "t3": 0.25})
    frame = typed_frame(
        random_records(rng, n, rule_rate=0.0),
        child_id=[f"c{i:03d}" for i in range(n)],
        township_code=["500101001000"] * n,
        p_any=rng.choice([0.1, 0.3, 0.3, 0.7], size=n),
    )
    out = assign_tiers(frame, policy)
    assert int(out["model_tier"].eq("T2").sum()) == math.floor(round(0.1 * n, 9))
    assert int(out["model_tier"].eq("T3").sum()) == math.floor(round(0.25 * n, 9))
    shuffled = frame.sample(frac=1.0, random_state=seed % 1000)
    again = assign_tiers(shuffled, policy).set_index("child_id")["tier"]
    assert again.loc[out["child_id"]].tolist() == out["tier"].tolist()


# ---------------------------------------------------------------------------------------------
# Batch: the same answers as decide_tier


@st.composite
def runs(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 50))
    rng = np.random.default_rng(seed)
    ids = [f"c{i:03d}" for i in range(n)]
    p = rng.choice([0.02, 0.2, 0.2, 0.45, 0.6, 0.95, np.nan], size=n)
    if draw(st.booleans()):
        p = np.full(n, np.nan)  # a run without a model
    half = rng.uniform(0.0, 0.2, size=n)
    frame = typed_frame(
        random_records(rng, n, rule_rate=0.4),
        child_id=ids,
        township_code=rng.choice(["500101001000", "500101002000"], size=n),
        p_any=p,
        p_low=np.clip(p - half, 0, 1),
        p_high=np.clip(p + half, 0, 1),
    )
    prev_tiers = rng.choice(["T1", "T2", "T3", "T4", None], size=n)
    hard_flags = (prev_tiers == "T1") & (rng.random(n) < 0.5)
    previous = pd.DataFrame(
        {
            "child_id": ids,
            "tier": prev_tiers,
            "consecutive_below": rng.integers(0, 3, size=n),
            "hard_rule_t1": hard_flags,
            "confirmed_by": rng.choice(["caseworker", "supervisor", None, None], size=n),
        }
    )
    chosen = rng.random(n) < 0.2
    overrides = pd.DataFrame(
        {
            "child_id": np.array(ids)[chosen],
            "tier": rng.choice(["T1", "T2", "T3", "T4"], size=int(chosen.sum())),
            "role": rng.choice(["caseworker", "supervisor"], size=int(chosen.sum())),
            "reviewer": "r-1",
            "reason": "reviewed at the case meeting",
        }
    )
    return frame, previous, overrides


def _optional(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs())
def test_assign_tiers_agrees_with_decide_tier_for_every_child(
    run: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    frame, previous, overrides = run
    policy = _policy_with(capacity__per_area={"t2": 4, "t3": 6})
    out = assign_tiers(frame, policy, previous, overrides=overrides)
    assert list(out.columns) == ["child_id", "township_code", *OUTPUT_COLUMNS]
    prev = previous.set_index("child_id")
    ov = overrides.set_index("child_id")
    records = frame[FEATURES].to_dict("records")
    for i, row in enumerate(out.itertuples(index=False)):
        pid = row.child_id
        p_tier = _optional(prev.loc[pid, "tier"])
        confirmed = _optional(prev.loc[pid, "confirmed_by"])
        state = (
            TierState(
                Tier(p_tier),
                int(prev.loc[pid, "consecutive_below"]),
                bool(prev.loc[pid, "hard_rule_t1"]),
                Role(confirmed) if confirmed is not None else None,
            )
            if p_tier is not None
            else None
        )
        override = (
            Override(Tier(ov.loc[pid, "tier"]), Role(ov.loc[pid, "role"]), "r-1", "reviewed")
            if pid in ov.index
            else None
        )
        decision = decide_tier(
            policy,
            p_any=_optional(float(frame["p_any"].iloc[i])),
            record=records[i],
            thresholds=AreaThresholds(_optional(row.threshold_t2), _optional(row.threshold_t3)),
            model_tier=Tier(row.model_tier) if _optional(row.model_tier) else None,
            previous=state,
            override=override,
            p_low=_optional(float(frame["p_low"].iloc[i])),
            p_high=_optional(float(frame["p_high"].iloc[i])),
        )
        got = {
            "tier": row.tier,
            "source": row.tier_source,
            "rules": tuple(row.rules_fired),
            "rule_tier": _optional(row.rule_tier),
            "model_available": bool(row.model_available),
            "candidate": row.candidate_tier,
            "computed": row.computed_tier,
            "held": bool(row.held_by_hysteresis),
            "awaiting": bool(row.awaiting_confirmation),
            "fell": bool(row.fall_confirmed),
            "role": _optional(row.confirmation_role),
            "count": int(row.consecutive_below),
            "hard_t1": bool(row.hard_rule_t1),
            "borderline": bool(row.borderline),
            "applied": bool(row.override_applied),
            "limited": bool(row.override_limited),
        }
        want = {
            "tier": decision.tier.value,
            "source": decision.source.value,
            "rules": decision.rules_fired,
            "rule_tier": decision.rule_tier.value if decision.rule_tier else None,
            "model_available": decision.model_available,
            "candidate": decision.candidate_tier.value,
            "computed": decision.computed_tier.value,
            "held": decision.held_by_hysteresis,
            "awaiting": decision.awaiting_confirmation,
            "fell": decision.fall_confirmed,
            "role": decision.confirmation_role.value if decision.confirmation_role else None,
            "count": decision.consecutive_below,
            "hard_t1": decision.hard_rule_t1,
            "borderline": decision.borderline,
            "applied": decision.override_applied,
            "limited": decision.override_limited,
        }
        assert got == want, pid


# ---------------------------------------------------------------------------------------------
# Batch: behaviour


def _town(records: list[dict[str, Any]], scores: list[float] | None) -> pd.DataFrame:
    n = len(records)
    extra: dict[str, Any] = {
        "child_id": [f"c{i:03d}" for i in range(n)],
        "township_code": ["500101001000"] * n,
    }
    if scores is not None:
        extra["p_any"] = scores
    return typed_frame(records, **extra)


def test_without_any_model_score_rule_children_still_get_their_tiers() -> None:
    records = [
        dict(BASELINE),
        {**BASELINE, **TRIGGERS["suspected_abuse_or_unlawful_harm"][0]},
        {**BASELINE, **TRIGGERS["suspected_dropout"][0]},
        {**BASELINE, **TRIGGERS["rare_parent_contact"][1]},
    ]
    out = assign_tiers(_town(records, scores=None), default_policy())
    assert out["tier"].tolist() == ["T4", "T1", "T2", "T3"]
    assert out["tier_source"].tolist() == ["no_model", "hard_rule", "floor_rule", "floor_rule"]
    assert out["model_available"].tolist() == [False] * 4
    assert out["model_tier"].isna().all()
    assert out["threshold_t2"].isna().all()
    assert out["rules_fired"].tolist() == [
        [],
        ["hard:suspected_abuse_or_unlawful_harm"],
        ["floor:T2:suspected_dropout"],
        ["floor:T3:rare_parent_contact"],
    ]
    assert (out["policy_version"] == default_policy().version).all()
    assert (out["policy_fingerprint"] == default_policy().fingerprint()).all()


def test_every_rule_that_fires_is_listed_whatever_the_final_tier() -> None:
    record = {
        **BASELINE,
        **TRIGGERS["guardianship_absent"][0],
        **TRIGGERS["serious_illness_or_disability"][0],
        **TRIGGERS["mental_health_screen_positive"][0],
    }
    out = assign_tiers(_town([record], scores=[0.01]), default_policy())
    assert out.loc[0, "tier"] == "T1"
    assert out.loc[0, "rules_fired"] == [
        "hard:guardianship_absent",
        "floor:T2:mental_health_screen_positive",
        "floor:T3:serious_illness_or_disability",
    ]


def test_previous_output_feeds_the_next_run_and_falls_follow_hysteresis() -> None:
    policy = _policy_with(capacity__per_area={"t2": 1, "t3": 0})
    frame = _town([dict(BASELINE), dict(BASELINE)], scores=[0.9, 0.1])
    first = assign_tiers(frame, policy)
    assert first["tier"].tolist() == ["T2", "T4"]
    calmer = frame.assign(p_any=[0.1, 0.9])  # the two children swap places
    second = assign_tiers(calmer, policy, first)
    assert second["tier"].tolist() == ["T2", "T2"]  # c000 held; c001 rises at once
    assert second["held_by_hysteresis"].tolist() == [True, False]
    third = assign_tiers(calmer, policy, second)
    assert third["tier"].tolist() == ["T2", "T2"]
    assert third["awaiting_confirmation"].tolist() == [True, False]
    # Tier and role columns use pandas' string dtype: missing is NA, not None.
    assert third["confirmation_role"].fillna("-").tolist() == ["caseworker", "-"]
    confirmed = third.assign(confirmed_by=["caseworker", None])
    fourth = assign_tiers(calmer, policy, confirmed)
    assert fourth["tier"].tolist() == ["T4", "T2"]


def test_override_in_batch_respects_floors(tmp_path: Path) -> None:
    records = [dict(BASELINE), {**BASELINE, **TRIGGERS["improper_guardianship"][0]}]
    overrides = pd.DataFrame(
        {
            "child_id": ["c000", "c001"],
            "tier": ["T2", "T4"],
            "role": ["caseworker", "supervisor"],
            "reviewer": ["cw-7", "sv-1"],
            "reason": ["neighbour's report", "guardian attended training"],
        }
    )
    out = assign_tiers(_town(records, [0.01, 0.01]), default_policy(), overrides=overrides)
    assert out["tier"].tolist() == ["T2", "T2"]
    assert out["override_limited"].tolist() == [False, True]
    assert out["tier_source"].tolist() == ["override", "floor_rule"]
    no_reason = overrides.assign(reason=["", "x"])
    with pytest.raises(PolicyError, match="reviewer and a written reason"):
        assign_tiers(_town(records, [0.01, 0.01]), default_policy(), overrides=no_reason)


def test_computed_tier_is_the_engines_own_and_a_confirmed_fall_says_so() -> None:
    held = TierState(Tier.T2, consecutive_below=1)
    waiting = _decide(p_any=0.05, previous=held)
    assert (waiting.tier, waiting.computed_tier, waiting.fall_confirmed) == (
        Tier.T2,
        Tier.T2,
        False,
    )
    fell = _decide(p_any=0.05, previous=state_from_decision(waiting, Role.CASEWORKER))
    assert (fell.tier, fell.computed_tier, fell.fall_confirmed) == (Tier.T4, Tier.T4, True)
    # An override changes the tier, never the engine's tier a reviewer confirms or overrides.
    up = Override(Tier.T2, Role.SUPERVISOR, "sv-1", "bruises seen at school")
    raised = _decide(p_any=0.05, previous=TierState(Tier.T4), override=up)
    assert (raised.tier, raised.computed_tier, raised.fall_confirmed) == (
        Tier.T2,
        Tier.T4,
        False,
    )
    # A rise is not a confirmed fall, whatever confirmation is on record.
    rose = _decide(p_any=0.9, previous=TierState(Tier.T4, confirmed_by=Role.SUPERVISOR))
    assert (rose.tier, rose.fall_confirmed) == (Tier.T2, False)


def _levels(values: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Tier levels (1-4) of tier names; 5 for a missing one."""
    return np.array([Tier(v).level if _optional(v) else 5 for v in values], dtype=np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs())
def test_overrides_and_confirmations_in_a_batch_keep_every_floor_and_hard_rule(
    run: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    frame, previous, overrides = run
    policy = _policy_with(capacity__per_area={"t2": 4, "t3": 6})
    out = assign_tiers(frame, policy, previous, overrides=overrides)
    plain = assign_tiers(frame, policy, previous)
    level, rule_level = _levels(out["tier"]), _levels(out["rule_tier"])
    hard = np.array([any(r.startswith("hard:") for r in rules) for rules in out["rules_fired"]])
    # Nothing a person does goes below a floor or a hard rule.
    assert (level <= rule_level).all()
    assert (level[hard] == 1).all()
    # The override is applied where one is in force, and only there; the engine's own tier is
    # what the run would give without any override.
    given_ids = set(overrides["child_id"])
    assert set(out.loc[out["override_applied"], "child_id"]) == given_ids
    assert out["computed_tier"].tolist() == plain["tier"].tolist()
    asked = _levels(out["child_id"].map(overrides.set_index("child_id")["tier"]))
    applied = out["override_applied"].to_numpy(bool)
    limited = out["override_limited"].to_numpy(bool)
    assert (level[applied & ~limited] == asked[applied & ~limited]).all()
    assert (level[limited] < asked[limited]).all()  # a limited override is raised, never lowered
    # A fall took effect only with a confirmation of enough authority; the others wait.
    prev = previous.set_index("child_id").loc[out["child_id"]]
    fell = out["fall_confirmed"].to_numpy(bool)
    confirmed = prev["confirmed_by"].map(lambda r: Role(r).rank if _optional(r) else -1)
    rules = policy.hysteresis
    needed = np.where(
        prev["hard_rule_t1"].to_numpy(bool),
        rules.hard_rule_t1_closed_by.rank,
        rules.fall_confirmed_by.rank,
    )
    assert (confirmed.to_numpy()[fell] >= needed[fell]).all()
    prev_level, computed_level = _levels(prev["tier"]), _levels(out["computed_tier"])
    assert (computed_level[fell] > prev_level[fell]).all()
    waiting = out["awaiting_confirmation"].to_numpy(bool)
    assert (computed_level[waiting] == prev_level[waiting]).all()
    assert not (fell & waiting).any()


# ---------------------------------------------------------------------------------------------
# A policy-file change changes tiers without a code change


def _edited_policy(tmp_path: Path, edit: Any) -> TierPolicy:
    source = Path(__file__).parents[3] / "models" / "policies" / "default.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    edit(data)
    data["version"] = "county-edit-1"
    path = tmp_path / "county.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_policy(path)


def test_editing_capacity_in_the_file_changes_the_bands(tmp_path: Path) -> None:
    frame = _town([dict(BASELINE)] * 200, scores=list(np.linspace(0.01, 0.99, 200)))
    default = assign_tiers(frame, default_policy())
    assert default["tier"].value_counts().to_dict() == {"T4": 80, "T3": 90, "T2": 30}

    def smaller(data: dict[str, Any]) -> None:
        data["capacity"]["per_area"] = {"t2": 10, "t3": 20}
        data["capacity"]["overrides"] = {"500101009000": {"basis": "count", "t2": 1, "t3": 1}}

    edited = assign_tiers(frame, _edited_policy(tmp_path, smaller))
    assert edited["tier"].value_counts().to_dict() == {"T4": 170, "T3": 20, "T2": 10}
    assert set(edited["policy_version"]) == {"county-edit-1"}


def test_editing_a_rule_condition_in_the_file_changes_tiers(tmp_path: Path) -> None:
    record = {**BASELINE, "unexcused_absence_days_30d": 3, "guardianship_capacity": "insufficient"}
    frame = _town([record], scores=None)
    assert assign_tiers(frame, default_policy())["tier"].tolist() == ["T3"]

    def stricter(data: dict[str, Any]) -> None:
        dropout = next(r for r in data["floor_rules"] if r["name"] == "suspected_dropout")
        dropout["when"]["any"][0]["value"] = 2  # over 2 unexcused days instead of 5
        insufficient = next(
            r for r in data["floor_rules"] if r["name"] == "insufficient_guardianship"
        )
        data["floor_rules"].remove(insufficient)
        insufficient.pop("tier")
        data["hard_rules"].append(insufficient)  # the county makes it a hard rule

    out = assign_tiers(frame, _edited_policy(tmp_path, stricter))
    assert out["tier"].tolist() == ["T1"]
    assert out.loc[0, "rules_fired"] == [
        "hard:insufficient_guardianship",
        "floor:T2:suspected_dropout",
    ]


# ---------------------------------------------------------------------------------------------
# Batch: input errors


def test_assign_tiers_refuses_frames_it_cannot_apply_the_policy_to() -> None:
    frame = _town([dict(BASELINE), dict(BASELINE)], scores=[0.1, 0.2])
    with pytest.raises(PolicyError, match="lacks column 'township_code'"):
        assign_tiers(frame.drop(columns="township_code"), default_policy())
    with pytest.raises(PolicyError, match="1 children have no township_code"):
        assign_tiers(frame.assign(township_code=["500101001000", None]), default_policy())
    with pytest.raises(PolicyError, match="missing or repeated child_id"):
        assign_tiers(frame.assign(child_id=["c000", "c000"]), default_policy())
    with pytest.raises(PolicyError, match=r"probabilities in \[0, 1\]"):
        assign_tiers(frame.assign(p_any=[0.1, 1.2]), default_policy())
    with pytest.raises(PolicyError, match="lacks feature"):
        assign_tiers(frame.drop(columns="age_years"), default_policy())
    bad_previous = pd.DataFrame({"child_id": ["c000"], "tier": ["red"]})
    with pytest.raises(PolicyError, match=r"previous.tier: \['red'\] are not tiers"):
        assign_tiers(frame, default_policy(), bad_previous)
    inconsistent = pd.DataFrame({"child_id": ["c000"], "tier": ["T2"], "hard_rule_t1": [True]})
    with pytest.raises(PolicyError, match="hard_rule_t1 is set on a child whose tier is not T1"):
        assign_tiers(frame, default_policy(), inconsistent)


def test_assign_tiers_on_an_empty_run_returns_an_empty_frame() -> None:
    frame = typed_frame([BASELINE], child_id=["c000"], township_code=["500101001000"]).iloc[:0]
    out = assign_tiers(frame, default_policy())
    assert len(out) == 0
    assert list(out.columns) == ["child_id", "township_code", *OUTPUT_COLUMNS]


def test_assign_tiers_column_dtypes_do_not_depend_on_the_values() -> None:
    # Text columns are pandas strings even when every value is missing (no model, nobody
    # awaiting confirmation), so stored score files always have the same schema.
    frame = _town([dict(BASELINE)], scores=None)
    out = assign_tiers(frame, default_policy())
    for column in ("tier", "tier_source", "rule_tier", "model_tier", "confirmation_role"):
        assert str(out[column].dtype) == "str", column
    assert out["consecutive_below"].dtype == np.int64
    assert out["borderline"].dtype == bool
