"""The tier policy file: schema, consistency checks, clear errors and rule conditions."""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from models.policy import (
    DEFAULT_POLICY_RESOURCE,
    AreaCapacity,
    Comparison,
    Role,
    Tier,
    TierPolicy,
    condition_features,
    evaluate,
    evaluate_record,
    fired_rules,
    load_policy,
    most_severe,
    parse_condition,
    rule_hits,
)
from shouhu.errors import PolicyError, ShouhuError
from tests.unit.models._policy_frames import (
    ALSO_FIRES,
    BASELINE,
    NEAR_MISSES,
    TRIGGERS,
    default_policy,
    typed_frame,
)

DEFAULT_FILE = Path(__file__).parents[3] / "models" / DEFAULT_POLICY_RESOURCE


def _default_data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: dict[str, Any], name: str = "county.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The default policy


def test_default_policy_loads_from_package_with_version_and_fingerprint() -> None:
    policy = load_policy()
    assert policy.version == "cq-default-2026.2"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", policy.fingerprint())
    assert load_policy(DEFAULT_FILE).fingerprint() == policy.fingerprint()


def test_default_policy_file_lives_inside_the_models_package() -> None:
    # Hatch puts every file under a listed package into the wheel; a file outside it would be
    # missing from an installed Shouhu.
    spec = importlib.util.find_spec("models")
    assert spec is not None and spec.origin is not None
    package_dir = Path(spec.origin).parent
    assert DEFAULT_FILE.resolve().is_relative_to(package_dir.resolve())
    assert DEFAULT_FILE.is_file()


def test_fingerprint_ignores_layout_and_comments_but_not_content(tmp_path: Path) -> None:
    data = _default_data()
    relaid = _write(tmp_path, data, "relaid.yaml")  # no comments, different key layout
    assert load_policy(relaid).fingerprint() == load_policy().fingerprint()
    data["capacity"]["per_area"]["t2"] += 1
    edited = load_policy(_write(tmp_path, data, "edited.yaml"))
    assert edited.version == load_policy().version
    assert edited.fingerprint() != load_policy().fingerprint()


def test_default_policy_tiers_have_names_colours_and_responses() -> None:
    policy = default_policy()
    assert [t.id for t in policy.tiers] == [Tier.T1, Tier.T2, Tier.T3, Tier.T4]
    assert [t.zh for t in policy.tiers] == [
        "一级·红色·紧急干预",
        "二级·橙色·重点关注",
        "三级·黄色·一般关注",
        "四级·绿色·常规关爱",
    ]
    assert [t.colour.en for t in policy.tiers] == ["red", "orange", "yellow", "green"]
    t1 = policy.tier(Tier.T1).response
    assert t1.report_to_police_at_once is True
    assert (t1.first_visit_within.every, t1.first_visit_within.unit) == (24, "hour")  # type: ignore[union-attr]
    assert (t1.contact_every.every, t1.contact_every.unit) == (1, "week")  # type: ignore[union-attr]
    assert (t1.rescore_every.every, t1.rescore_every.unit) == (1, "week")
    assert t1.closed_by is Role.SUPERVISOR
    t2 = policy.tier(Tier.T2).response
    assert (t2.case_plan_within.every, t2.case_plan_within.unit) == (7, "day")  # type: ignore[union-attr]
    assert (t2.visit_every.every, t2.visit_every.unit) == (2, "week")  # type: ignore[union-attr]
    assert (t2.attendance_check_every.every, t2.attendance_check_every.unit) == (1, "day")  # type: ignore[union-attr]
    t3 = policy.tier(Tier.T3).response
    assert (t3.visit_every.every, t3.visit_every.unit) == (1, "month")  # type: ignore[union-attr]
    assert (t3.phone_check_every.every, t3.phone_check_every.unit) == (1, "month")  # type: ignore[union-attr]
    t4 = policy.tier(Tier.T4).response
    assert (t4.visit_every.every, t4.visit_every.unit) == (1, "month")  # type: ignore[union-attr]
    assert (t4.file_update_every.every, t4.file_update_every.unit) == (1, "quarter")  # type: ignore[union-attr]
    assert not any(policy.tier(t).response.report_to_police_at_once for t in (Tier.T2, Tier.T4))


def test_default_policy_rule_lists_match_the_tier_scheme() -> None:
    policy = default_policy()
    assert [r.name for r in policy.hard_rules] == [
        "living_alone_unsupervised",
        "no_de_facto_guardian",
        "missing_runaway_or_begging",
        "suspected_abuse_or_unlawful_harm",
        "serious_injury_or_self_harm",
        "guardianship_absent",
    ]
    floors = {r.name: r.tier for r in policy.floor_rules}
    assert floors == {
        "dropout_with_guardianship_gap": Tier.T1,
        "suspected_dropout": Tier.T2,
        "improper_guardianship": Tier.T2,
        "mental_health_screen_positive": Tier.T2,
        "recent_self_harm_or_crisis": Tier.T2,
        "no_household_registration": Tier.T3,
        "serious_illness_or_disability": Tier.T3,
        "minimum_income_or_extreme_poverty": Tier.T3,
        "insufficient_guardianship": Tier.T3,
        "rare_parent_contact": Tier.T3,
        "girl_10_without_adult_woman": Tier.T3,
    }
    assert policy.rule_labels()[0] == "hard:living_alone_unsupervised"
    assert "floor:T2:suspected_dropout" in policy.rule_labels()
    assert all(r.zh and r.en and r.domain in policy.domains for r in policy.rules)


def test_default_policy_domains_are_the_four_of_the_chongqing_plan() -> None:
    domains = default_policy().domains
    assert {k: v.zh for k, v in domains.items()} == {
        "health": "身心健康",
        "study_life": "学习生活",
        "guardianship": "家庭监护",
        "safety": "安全保护",
    }


def test_default_policy_expected_mix_is_ordered_and_sums_sensibly() -> None:
    mix = default_policy().expected_mix
    ranges = {t: mix.range_of(t) for t in Tier}
    assert (ranges[Tier.T1].low, ranges[Tier.T1].high) == (0.03, 0.06)
    assert (ranges[Tier.T2].low, ranges[Tier.T2].high) == (0.05, 0.10)
    assert (ranges[Tier.T3].low, ranges[Tier.T3].high) == (0.15, 0.20)
    assert (ranges[Tier.T4].low, ranges[Tier.T4].high) == pytest.approx((0.64, 0.77))
    assert all(r.low <= r.high for r in ranges.values())
    # The mix can add up to everyone: the lows leave room, the highs reach it.
    assert sum(r.low for r in ranges.values()) <= 1.0 <= sum(r.high for r in ranges.values())
    # Tiers narrow towards the top: T1 is the smallest band, T4 the largest.
    assert ranges[Tier.T1].high <= ranges[Tier.T2].high <= ranges[Tier.T3].high
    assert ranges[Tier.T3].high < ranges[Tier.T4].low


def test_default_policy_numbers_for_capacity_hysteresis_and_guards() -> None:
    policy = default_policy()
    assert policy.capacity.basis == "count"
    assert policy.capacity.area_column == "township_code"
    assert policy.capacity.for_area("500101001000").slots(1000) == (30, 90)
    assert policy.thresholds.mode == "capacity"
    assert policy.thresholds.score == "p_any"
    assert policy.hysteresis.fall_after_consecutive_below == 2
    assert policy.hysteresis.fall_confirmed_by is Role.CASEWORKER
    assert policy.hysteresis.hard_rule_t1_closed_by is Role.SUPERVISOR
    assert (policy.fairness.disparity_band.low, policy.fairness.disparity_band.high) == (
        0.8,
        1.25,
    )
    assert 0 < policy.promotion.min_precision_at_capacity <= 1
    assert policy.input_guards.max_staleness_days > 0


def test_default_policy_reads_only_features_of_the_registry() -> None:
    if importlib.util.find_spec("features.definitions") is None:
        pytest.skip("features.definitions does not exist yet; cannot check feature names")
    from features.definitions import registry_records

    known = {r["name"] for r in registry_records()}
    policy = default_policy()
    assert policy.feature_names() <= known, sorted(policy.feature_names() - known)
    load_policy(known_features=known)  # the loader's own check agrees


def test_default_policy_domains_are_those_of_the_feature_registry() -> None:
    if importlib.util.find_spec("features.definitions") is None:
        pytest.skip("features.definitions does not exist yet; cannot check domain names")
    from features.definitions import DOMAINS

    domains = default_policy().domains
    assert list(domains) == list(DOMAINS)
    assert {k: (v.zh, v.en) for k, v in domains.items()} == DOMAINS


def test_default_policy_area_column_is_an_identifying_column_of_feature_frames() -> None:
    if importlib.util.find_spec("features.definitions") is None:
        pytest.skip("features.definitions does not exist yet; cannot check column names")
    from features.definitions import IDENTIFYING_COLUMNS

    assert default_policy().capacity.area_column in IDENTIFYING_COLUMNS
    assert "child_id" in IDENTIFYING_COLUMNS  # assign_tiers breaks ties by it


def test_default_policy_category_values_are_codes_of_the_data_model() -> None:
    # A misspelt code would never match and a rule would silently never fire.
    frame = typed_frame([BASELINE])
    for rule in default_policy().rules:
        evaluate(rule.when, frame)  # raises PolicyError on an unknown code


def test_check_features_names_the_rule_and_the_unknown_feature() -> None:
    known = default_policy().feature_names() - {"days_since_harm_incident"}
    with pytest.raises(PolicyError) as info:
        default_policy().check_features(known)
    assert "hard_rules[3] (suspected_abuse_or_unlawful_harm).when" in info.value.message
    assert "'days_since_harm_incident'" in info.value.message


# ---------------------------------------------------------------------------------------------
# What each default rule means


@pytest.mark.parametrize(
    ("rule", "patch"),
    [(rule, patch) for rule, patches in TRIGGERS.items() for patch in patches],
)
def test_default_rule_fires_for_its_situation(rule: str, patch: dict[str, Any]) -> None:
    record = {**BASELINE, **patch}
    names = {f.name for f in fired_rules(default_policy(), record)}
    assert rule in names
    assert names - {rule} <= ALSO_FIRES.get(rule, frozenset())
    # The frame evaluation agrees with the record evaluation.
    hits = rule_hits(default_policy(), typed_frame([record]))
    fired_labels = [c for c in hits.columns if bool(hits.iloc[0][c])]
    assert fired_labels == [f.label for f in fired_rules(default_policy(), record)]


def test_every_default_rule_has_a_trigger() -> None:
    assert set(TRIGGERS) == {r.name for r in default_policy().rules}


def test_baseline_child_fires_no_rule() -> None:
    assert fired_rules(default_policy(), BASELINE) == ()
    assert not rule_hits(default_policy(), typed_frame([BASELINE])).to_numpy().any()


@pytest.mark.parametrize("patch", NEAR_MISSES)
def test_default_rules_do_not_fire_just_outside_their_conditions(patch: dict[str, Any]) -> None:
    record = {**BASELINE, **patch}
    assert fired_rules(default_policy(), record) == ()
    assert not rule_hits(default_policy(), typed_frame([record])).to_numpy().any()


# ---------------------------------------------------------------------------------------------
# Broken files give clear errors


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(key: str) -> Mutation:
    return lambda data: data.pop(key) and None


BROKEN: list[tuple[str, Mutation, str]] = [
    (
        "unknown operator",
        _set("hard_rules.3.when.op", "equals"),
        "county.yaml: hard_rules[3].when.op: 'equals' is not one of 'eq', 'ne', 'in'",
    ),
    (
        "unknown operator deep in a condition",
        _set("hard_rules.4.when.any.2.all.0.op", "atleast"),
        "county.yaml: hard_rules[4].when.any[2].all[0].op: 'atleast' is not one of",
    ),
    (
        "duplicate rule name",
        _set("floor_rules.3.name", "guardianship_absent"),
        "county.yaml: floor_rules[3].name: duplicate rule name 'guardianship_absent' "
        "(also hard_rules[5])",
    ),
    (
        "floor tier that does not exist",
        _set("floor_rules.1.tier", "T5"),
        "county.yaml: floor_rules[1].tier: 'T5' is not one of 'T1', 'T2', 'T3' or 'T4'",
    ),
    (
        "floor of T4",
        _set("floor_rules.1.tier", "T4"),
        "county.yaml: floor_rules[1].tier: a floor of T4 changes nothing",
    ),
    (
        "negative capacity",
        _set("capacity.per_area.t2", -5),
        "county.yaml: capacity.per_area.t2: Input should be greater than or equal to 0",
    ),
    (
        "capacity as text",
        _set("capacity.per_area.t3", "ninety"),
        "county.yaml: capacity.per_area.t3: Input should be a valid integer",
    ),
    (
        "shares above the whole population",
        _set("capacity.share", {"t2": 0.6, "t3": 0.5}),
        "county.yaml: capacity.share: t2 + t3 = 1.1 exceeds the whole population",
    ),
    (
        "share basis without shares",
        lambda d: d["capacity"].update(basis="share", share=None),
        "county.yaml: capacity: basis 'share' needs share",
    ),
    (
        "range upside down",
        _set("expected_mix.t2", {"low": 0.2, "high": 0.1}),
        "county.yaml: expected_mix.t2: low 0.2 is above high 0.1",
    ),
    (
        "mix above everyone",
        _set("expected_mix.t3", {"low": 0.5, "high": 0.9}),
        "county.yaml: expected_mix: the upper bounds of t1-t3 sum to 1.06",
    ),
    (
        "fairness band without parity",
        _set("fairness.disparity_band", {"low": 1.1, "high": 1.25}),
        "county.yaml: fairness.disparity_band: [1.1, 1.25] must contain 1",
    ),
    ("unknown field", _set("thresholdz", 1), "county.yaml: thresholdz: unknown field"),
    ("missing section", _drop("hysteresis"), "county.yaml: hysteresis: required field is missing"),
    (
        "ordering op with text",
        _set("hard_rules.3.when.value", "ninety"),
        "county.yaml: hard_rules[3].when.value: op 'le' needs a number, got 'ninety'",
    ),
    (
        "set op with one value",
        _set("floor_rules.7.when.value", "dibao"),
        "county.yaml: floor_rules[7].when.value: op 'in' needs a list of values",
    ),
    (
        "unary op with a value",
        _set("floor_rules.5.when.value", True),
        "county.yaml: floor_rules[5].when.value: op 'is_true' takes no value",
    ),
    (
        "not a condition",
        _set("floor_rules.7.when", {"feat": "poverty_status"}),
        "county.yaml: floor_rules[7].when: a condition is {feature, op[, value]}",
    ),
    (
        "empty all",
        _set("floor_rules.0.when.all", []),
        "county.yaml: floor_rules[0].when.all: List should have at least 1 item",
    ),
    (
        "unknown domain",
        _set("floor_rules.7.domain", "money"),
        "county.yaml: floor_rules[7].domain: 'money' is not one of the domains",
    ),
    (
        "rule name not snake_case",
        _set("floor_rules.7.name", "Low Income"),
        "county.yaml: floor_rules[7].name: String should match pattern",
    ),
    (
        "tier missing",
        lambda d: d["tiers"].pop(1),
        "county.yaml: tiers: must list T1, T2, T3, T4 once each, in order; got T1, T3, T4",
    ),
    (
        "bad colour",
        _set("tiers.0.colour.hex", "red"),
        "county.yaml: tiers[0].colour.hex: String should match pattern",
    ),
    (
        "hysteresis of zero scorings",
        _set("hysteresis.fall_after_consecutive_below", 0),
        "county.yaml: hysteresis.fall_after_consecutive_below: Input should be greater than 0",
    ),
    (
        "unknown confirming role",
        _set("hysteresis.fall_confirmed_by", "anyone"),
        "county.yaml: hysteresis.fall_confirmed_by: 'anyone' is not one of 'caseworker' or "
        "'supervisor'",
    ),
    (
        "area override with a name, not a code",
        _set("capacity.overrides", {"Chengkou": {"basis": "count", "t2": 1, "t3": 2}}),
        "county.yaml: capacity.overrides.Chengkou.[key]: String should match pattern",
    ),
    (
        "area override count with a fraction",
        _set("capacity.overrides", {"500229001000": {"basis": "count", "t2": 1.5, "t3": 2}}),
        "county.yaml: capacity.overrides.500229001000: t2: a count must be a whole number",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_policy_file_names_file_and_field(
    tmp_path: Path, case: str, mutate: Mutation, expected: str
) -> None:
    data = copy.deepcopy(_default_data())
    mutate(data)
    with pytest.raises(PolicyError) as info:
        load_policy(_write(tmp_path, data))
    assert expected in info.value.message, info.value.message
    assert info.value.exit_code == 3
    assert isinstance(info.value, ShouhuError)


def test_policy_error_reports_every_problem_at_once(tmp_path: Path) -> None:
    data = _default_data()
    data["hard_rules"][3]["when"]["op"] = "equals"
    data["capacity"]["per_area"]["t2"] = -1
    with pytest.raises(PolicyError) as info:
        load_policy(_write(tmp_path, data))
    lines = info.value.message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("county.yaml: ") for line in lines)


def test_policy_file_that_is_not_yaml_fails_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: [1,\n  x: 2\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.message == (
        "broken.yaml: line 3, column 1: not valid YAML: while parsing a flow sequence "
        "expected ',' or ']', but got '<stream end>'"
    )


def test_policy_file_with_a_key_twice_fails(tmp_path: Path) -> None:
    # PyYAML would silently keep the last value; a county editing by hand needs to know.
    path = tmp_path / "twice.yaml"
    path.write_text(
        DEFAULT_FILE.read_text(encoding="utf-8") + "\nversion: again\n", encoding="utf-8"
    )
    with pytest.raises(
        PolicyError,
        match=r"^twice\.yaml: line \d+, column 1: not valid YAML: key 'version' appears twice",
    ):
        load_policy(path)


def test_policy_file_missing_or_not_a_mapping_fails(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nowhere\.yaml: policy file not found"):
        load_policy(tmp_path / "nowhere.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"list\.yaml: the policy must be a mapping"):
        load_policy(listed)


def test_policy_with_unknown_feature_fails_when_registry_is_given(tmp_path: Path) -> None:
    data = _default_data()
    data["hard_rules"][3]["when"]["feature"] = "days_since_harm"
    path = _write(tmp_path, data)
    load_policy(path)  # schema-valid on its own
    with pytest.raises(PolicyError, match="unknown feature 'days_since_harm'"):
        load_policy(path, known_features=default_policy().feature_names())


def test_policy_objects_are_immutable() -> None:
    policy = default_policy()
    with pytest.raises(ValueError, match="frozen"):
        policy.version = "edited"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Capacity


def test_capacity_override_replaces_default_for_its_area_only(tmp_path: Path) -> None:
    data = _default_data()
    data["capacity"]["overrides"] = {
        "500229001000": {"basis": "count", "t2": 5, "t3": 10},
        "500229002000": {"basis": "share", "t2": 0.05, "t3": 0.15},
    }
    capacity = load_policy(_write(tmp_path, data)).capacity
    assert capacity.for_area("500229001000").slots(800) == (5, 10)
    assert capacity.for_area("500229002000").slots(800) == (40, 120)
    assert capacity.for_area("500229003000").slots(800) == (30, 90)


@pytest.mark.parametrize(
    ("t2", "t3", "children", "slots"),
    [(0.29, 0.17, 100, (29, 17)), (0.07, 0.17, 0, (0, 0)), (0.07, 0.17, 14, (0, 2))],
)
def test_share_capacity_floors_to_whole_children(
    t2: float, t3: float, children: int, slots: tuple[int, int]
) -> None:
    # 0.29 * 100 is 28.999… in floating point; the slot count must still be 29.
    assert AreaCapacity(basis="share", t2=t2, t3=t3).slots(children) == slots


# ---------------------------------------------------------------------------------------------
# Conditions


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": pd.Series([6.0, 12.0, np.nan, 15.0], dtype="float64"),
            "count": pd.Series([0, 1, 2, 7], dtype="int32"),
            "kind": pd.Categorical(["a", "b", None, "c"], categories=["a", "b", "c"]),
            "flag": pd.Series([True, False, pd.NA, True], dtype="boolean"),
            "code": pd.Series(["x", None, "y", "x"], dtype="string"),
        }
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"feature": "age", "op": "lt", "value": 8}, [True, False, False, False]),
        ({"feature": "age", "op": "ge", "value": 12}, [False, True, False, True]),
        ({"feature": "age", "op": "gt", "value": 12}, [False, False, False, True]),
        ({"feature": "age", "op": "le", "value": 12}, [True, True, False, False]),
        ({"feature": "age", "op": "ne", "value": 12}, [True, False, False, True]),
        ({"feature": "age", "op": "is_null"}, [False, False, True, False]),
        ({"feature": "age", "op": "not_null"}, [True, True, False, True]),
        ({"feature": "count", "op": "eq", "value": 0}, [True, False, False, False]),
        ({"feature": "kind", "op": "eq", "value": "b"}, [False, True, False, False]),
        ({"feature": "kind", "op": "in", "value": ["a", "c"]}, [True, False, False, True]),
        ({"feature": "kind", "op": "not_in", "value": ["a"]}, [False, True, False, True]),
        ({"feature": "kind", "op": "ne", "value": "a"}, [False, True, False, True]),
        ({"feature": "flag", "op": "is_true"}, [True, False, False, True]),
        ({"feature": "flag", "op": "is_false"}, [False, True, False, False]),
        ({"feature": "code", "op": "eq", "value": "x"}, [True, False, False, True]),
        # Kleene logic: "not" of an unknown comparison stays unknown, so it never fires…
        ({"not": {"feature": "age", "op": "lt", "value": 8}}, [False, True, False, True]),
        # …but a known false part decides an "all", and a known true part an "any".
        (
            {
                "all": [
                    {"feature": "age", "op": "lt", "value": 8},
                    {"feature": "count", "op": "eq", "value": 1},
                ]
            },
            [False, False, False, False],
        ),
        (
            {
                "any": [
                    {"feature": "age", "op": "lt", "value": 8},
                    {"feature": "count", "op": "eq", "value": 2},
                ]
            },
            [True, False, True, False],
        ),
        (
            {
                "not": {
                    "all": [
                        {"feature": "age", "op": "lt", "value": 8},
                        {"feature": "flag", "op": "is_true"},
                    ]
                }
            },
            [False, True, False, True],
        ),
    ],
)
def test_condition_on_frame_and_record_missing_never_satisfies(
    condition: dict[str, Any], expected: list[bool]
) -> None:
    parsed = parse_condition(condition)
    frame = _frame()
    result = evaluate(parsed, frame)
    assert result.dtype == bool
    assert result.tolist() == expected
    assert [evaluate_record(parsed, r) for r in frame.to_dict("records")] == expected


def test_condition_lists_its_features() -> None:
    condition = parse_condition(
        {"any": [{"feature": "a", "op": "is_true"}, {"not": {"feature": "b", "op": "is_null"}}]}
    )
    assert condition_features(condition) == {"a", "b"}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"feature": "absent_column", "op": "is_true"},
            "lacks feature(s) the policy reads: absent_column",
        ),
        ({"feature": "kind", "op": "gt", "value": 1}, "needs a numeric feature"),
        ({"feature": "kind", "op": "eq", "value": "z"}, "['z'] is not a code of the feature"),
        ({"feature": "age", "op": "eq", "value": "twelve"}, "needs a text feature"),
        ({"feature": "code", "op": "is_true"}, "needs a yes/no feature"),
    ],
)
def test_condition_that_cannot_apply_to_the_data_fails_clearly(
    condition: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        evaluate(parse_condition(condition), _frame())


def test_record_lacking_a_feature_fails_rather_than_skipping_a_rule() -> None:
    record = {k: v for k, v in BASELINE.items() if k != "guardianship_capacity"}
    with pytest.raises(PolicyError, match=r"record lacks feature.*guardianship_capacity"):
        fired_rules(default_policy(), record)


def test_parse_condition_error_names_the_path() -> None:
    with pytest.raises(PolicyError, match=r"condition: any\[1\]\.op: 'like' is not one of"):
        parse_condition(
            {"any": [{"feature": "a", "op": "is_true"}, {"feature": "b", "op": "like"}]}
        )


_COLUMNS: dict[str, tuple[list[str], st.SearchStrategy[Any]]] = {
    "age": (["eq", "ne", "gt", "ge", "lt", "le"], st.integers(0, 16)),
    "count": (["eq", "ne", "gt", "ge", "lt", "le"], st.integers(0, 3)),
    "kind": (["eq", "ne"], st.sampled_from(["a", "b", "c"])),
    "flag": (["is_true", "is_false"], st.none()),
    "code": (["eq", "ne"], st.sampled_from(["x", "y"])),
}


@st.composite
def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    column = draw(st.sampled_from(sorted(_COLUMNS)))
    ops, values = _COLUMNS[column]
    choice = draw(st.sampled_from([*ops, "is_null", "not_null", "set"]))
    if choice in ("is_null", "not_null") or (choice != "set" and column == "flag"):
        return {"feature": column, "op": choice}
    if choice == "set":
        if column == "flag":
            return {"feature": column, "op": "not_null"}
        op = draw(st.sampled_from(["in", "not_in"]))
        return {
            "feature": column,
            "op": op,
            "value": draw(st.lists(values, min_size=1, max_size=3)),
        }
    return {"feature": column, "op": choice, "value": draw(values)}


_CONDITIONS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=8,
)

_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "age": st.one_of(st.none(), st.integers(0, 16).map(float)),
            "count": st.integers(0, 3),
            "kind": st.sampled_from(["a", "b", "c", None]),
            "flag": st.sampled_from([True, False, None]),
            "code": st.sampled_from(["x", "y", None]),
        }
    ),
    min_size=1,
    max_size=12,
)


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    raw = pd.DataFrame(rows)
    return pd.DataFrame(
        {
            "age": raw["age"].astype("float64"),
            "count": raw["count"].astype("int32"),
            "kind": pd.Categorical(raw["kind"], categories=["a", "b", "c"]),
            "flag": raw["flag"].astype("boolean"),
            "code": raw["code"].astype("string"),
        }
    )


def _kleene(condition: dict[str, Any], row: dict[str, Any]) -> bool | None:
    """A deliberately naive reference: Python values, None for unknown."""
    if "all" in condition:
        parts = [_kleene(c, row) for c in condition["all"]]
        return False if False in parts else (None if None in parts else True)
    if "any" in condition:
        parts = [_kleene(c, row) for c in condition["any"]]
        return True if True in parts else (None if None in parts else False)
    if "not" in condition:
        inner = _kleene(condition["not"], row)
        return None if inner is None else not inner
    value, op, target = row[condition["feature"]], condition["op"], condition.get("value")
    if op == "is_null":
        return value is None
    if op == "not_null":
        return value is not None
    if value is None:
        return None
    table: dict[str, Callable[[], bool]] = {
        "eq": lambda: value == target,
        "ne": lambda: value != target,
        "in": lambda: value in target,
        "not_in": lambda: value not in target,
        "gt": lambda: value > target,
        "ge": lambda: value >= target,
        "lt": lambda: value < target,
        "le": lambda: value <= target,
        "is_true": lambda: value is True,
        "is_false": lambda: value is False,
    }
    return table[op]()


@settings(max_examples=300, deadline=None)
@given(condition=_CONDITIONS, rows=_ROWS)
def test_vectorised_and_record_evaluation_agree_with_naive_reference(
    condition: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    parsed = parse_condition(condition)
    frame = _typed(rows)
    expected = [_kleene(condition, row) is True for row in rows]
    assert evaluate(parsed, frame).tolist() == expected
    assert [evaluate_record(parsed, r) for r in frame.to_dict("records")] == expected
    assert [evaluate_record(parsed, r) for r in rows] == expected


def test_comparison_model_keeps_the_value_type() -> None:
    parsed = parse_condition({"feature": "age", "op": "lt", "value": 16})
    assert isinstance(parsed, Comparison)
    assert parsed.value == 16 and isinstance(parsed.value, int)


def test_most_severe_orders_tiers_by_level() -> None:
    assert most_severe(Tier.T3, None, Tier.T2) is Tier.T2
    assert most_severe(None, None) is None
    assert Tier.from_level(1) is Tier.T1 and Tier.T4.level == 4
    assert Role.SUPERVISOR.may_act_as(Role.CASEWORKER)
    assert not Role.CASEWORKER.may_act_as(Role.SUPERVISOR)


def test_policy_model_validates_in_python_too() -> None:
    data = _default_data()
    data["floor_rules"][0]["name"] = data["hard_rules"][0]["name"]
    with pytest.raises(ValueError, match="duplicate rule name"):
        TierPolicy.model_validate(data)
