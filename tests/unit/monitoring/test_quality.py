"""Data-quality checks: missing rates, categories, volume per area and schools' reports."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.policy import MonitoringLimits, load_policy
from monitoring import quality as q


@pytest.fixture(scope="module")
def limits() -> MonitoringLimits:
    policy = load_policy()
    assert policy.monitoring is not None
    return policy.monitoring


def _frame(
    townships: dict[str, int],
    *,
    visits: float = 1.0,
    recent: float = 0.9,
    entrants: float = 0.02,
    seed: int = 0,
) -> pd.DataFrame:
    """Children of one county spread over ``townships`` (code → children)."""
    rng = np.random.default_rng(seed)
    parts = []
    for township, n in townships.items():
        parts.append(
            pd.DataFrame(
                {
                    "child_id": [f"{township}-{i}" for i in range(n)],
                    "village_code": [f"{township}{i % 3 + 1:03d}" for i in range(n)],
                    "township_code": township,
                    "county_code": township[:6],
                    "school_code": f"S{township[-1]}",
                    "grade": rng.integers(1, 10, n).astype("float64"),
                    "visits_30d": rng.poisson(visits, n).astype("int32"),
                    "visits_90d": rng.poisson(3 * visits, n).astype("int32"),
                    "days_since_any_record": np.where(rng.random(n) < recent, 5.0, 60.0),
                    "days_since_school_absence_report": 0.0,
                    "days_since_unexcused_absence": 5.0,
                    "caregiver_age": rng.normal(65, 5, n),
                    "parent_contact": pd.Categorical(
                        rng.choice(["weekly", "monthly"], n),
                        categories=["weekly", "monthly", "never"],
                    ),
                    q.ENTRANT: rng.random(n) < entrants,
                }
            )
        )
    return q.with_areas(pd.concat(parts, ignore_index=True))


def test_with_areas_places_a_village_missing_from_the_hierarchy_by_its_code() -> None:
    frame = pd.DataFrame(
        {
            "village_code": ["990101001001", "990101001002", "990101002001"],
            "township_code": ["990101001", None, "990101002"],
            "county_code": ["990101", None, "990101"],
        }
    )
    out = q.with_areas(frame)
    assert out["township"].tolist() == ["990101001", "990101001", "990101002"]
    assert out["county_code"].tolist() == ["990101", "990101", "990101"]
    assert out["_area_unmapped"].tolist() == [False, True, False]
    assert q.unmapped_finding(out, 0.5).value == pytest.approx(1 / 3)
    assert not q.unmapped_finding(out, 0.5).alarm and q.unmapped_finding(out, 0.2).alarm


def test_a_finding_holds_plain_python_values_whatever_pandas_gave_it() -> None:
    import json

    finding = q.Finding("x", "overall", None, np.float64(0.5), np.int64(1), np.bool_(True), "m")
    assert finding.alarm is True and type(finding.value) is float
    assert json.loads(json.dumps(finding.as_dict()))["alarm"] is True


def test_a_missing_rate_jump_beyond_the_limit_names_the_feature_and_scope() -> None:
    ref = pd.DataFrame({"a": [1.0] * 10, "b": [1.0] * 10})
    cur = pd.DataFrame({"a": [np.nan] * 3 + [1.0] * 7, "b": [np.nan] + [1.0] * 9})
    found = q.missing_rate_findings(ref, cur, ["a", "b"], 0.10, scope="990101001")
    assert [(f.subject, f.scope, f.alarm) for f in found] == [("a", "990101001", True)]
    assert found[0].value == pytest.approx(0.3)
    assert "990101001" in found[0].message
    # A fall in missing values is no alarm.
    assert q.missing_rate_findings(cur, ref, ["a", "b"], 0.10) == []


def test_new_and_vanished_values_are_reported_and_a_new_township_is_its_own_scope(
    limits: MonitoringLimits,
) -> None:
    ref = _frame({"990101001": 300, "990101002": 300})
    cur = _frame({"990101001": 300, "990101003": 300})
    cur.loc[:5, "parent_contact"] = "never"  # 1 %: too rare to report
    found = q.category_findings(ref, cur, ["parent_contact", "township"], limits)
    by_check = {(f.check, f.subject): f for f in found}
    assert set(by_check) == {
        ("new_category", "township=990101003"),
        ("vanished_category", "township=990101002"),
    }
    assert by_check[("new_category", "township=990101003")].scope == "990101003"
    assert by_check[("new_category", "township=990101003")].value == pytest.approx(0.5)
    cur.loc[:60, "parent_contact"] = "never"  # 10 %: reported, scoped overall
    found = q.category_findings(ref, cur, ["parent_contact"], limits)
    assert [(f.check, f.scope, f.subject) for f in found] == [
        ("new_category", "overall", "parent_contact=never")
    ]


def test_a_township_that_stops_visiting_crosses_the_visit_and_record_limits(
    limits: MonitoringLimits,
) -> None:
    ref = q.volume_table(_frame({"990101001": 400}, visits=1.0, recent=0.9), "township")
    cur = q.volume_table(_frame({"990101001": 400}, visits=0.02, recent=0.2, seed=1), "township")
    figures, found = q.volume_findings(ref.iloc[0], cur.iloc[0], "990101001", limits)
    fired = {f.check for f in found if f.alarm}
    assert fired == {"visit_volume_30d", "visit_volume_90d", "recent_records"}
    assert figures["visit_ratio_30d"] < 0.1
    assert figures["children_reference"] == figures["children_current"] == 400


def test_steady_recording_raises_nothing_and_small_areas_never_alarm(
    limits: MonitoringLimits,
) -> None:
    ref = q.volume_table(_frame({"990101001": 400}), None)
    cur = q.volume_table(_frame({"990101001": 390}, seed=2), None)
    _, found = q.volume_findings(ref.iloc[0], cur.iloc[0], q.OVERALL, limits)
    assert not [f for f in found if f.alarm]
    small = limits.min_area_children - 1
    ref = q.volume_table(_frame({"990101001": small}), None)
    cur = q.volume_table(_frame({"990101001": small}, visits=0.0, seed=3), None)
    _, found = q.volume_findings(ref.iloc[0], cur.iloc[0], q.OVERALL, limits)
    assert {f.check for f in found} >= {"visit_volume_30d"} and not q.alarms(found)


def test_a_surge_of_arrivals_needs_both_the_ratio_and_the_excess(
    limits: MonitoringLimits,
) -> None:
    base = pd.Series({"children": 500, "visits_30d": 1.0, "visits_90d": 3.0, "recent_records": 0.9})
    ref = base.copy()
    ref["entrants"] = 0.005
    doubled_but_small = base.copy()
    doubled_but_small["entrants"] = 0.015  # three times as many, one point more
    surge = base.copy()
    surge["entrants"] = 0.06
    _, found = q.volume_findings(ref, doubled_but_small, q.OVERALL, limits)
    assert not [f for f in found if f.check == "entrant_surge" and f.alarm]
    _, found = q.volume_findings(ref, surge, q.OVERALL, limits)
    assert [f.value for f in found if f.check == "entrant_surge" and f.alarm] == [
        pytest.approx(12.0)
    ]


def test_a_school_that_stopped_reporting_is_flagged_but_one_that_never_did_is_not(
    limits: MonitoringLimits,
) -> None:
    ref_frame = _frame({"990101001": 300, "990101002": 300, "990101003": 300})
    cur_frame = ref_frame.copy()
    as_of = date(2025, 12, 31)
    # School 1 reported on the reference date; its reports have covered no week for a month,
    # although late entries about earlier weeks still arrive (its last entry is today). School
    # 3 never reported at all (no reference report to lose).
    silent = cur_frame["school_code"] == "S1"
    cur_frame.loc[silent, "days_since_unexcused_absence"] = 35.0
    for frame in (ref_frame, cur_frame):
        frame.loc[frame["school_code"] == "S3", "days_since_unexcused_absence"] = np.nan
    ref = q.school_table(ref_frame, date(2024, 12, 31), None)
    cur = q.school_table(cur_frame, as_of, None)
    found = q.school_findings(ref, cur, limits)
    assert [(f.subject, f.scope) for f in found if f.alarm] == [("S1", "990101001")]
    assert cur.at["S1", "gap"] > limits.volume.max_school_days_without_report
    assert cur.at["S1", "entry_gap"] == 0
    assert {f.subject for f in found} == {"S1", "S2"}  # S3's gap is unknowable
    assert cur.at["S1", "pupils"] == silent.sum()


def test_a_holiday_is_never_a_school_reporting_gap(limits: MonitoringLimits) -> None:
    frame = _frame({"990101001": 300})
    # 2025-08-31: no week since early July has been reported, and none was a school week.
    frame["days_since_unexcused_absence"] = 60.0
    ref = q.school_table(frame, date(2024, 8, 31), None)
    cur = q.school_table(frame, date(2025, 8, 31), None)
    assert cur["gap"].max() <= limits.volume.max_school_days_without_report
    assert not q.alarms(q.school_findings(ref, cur, limits))
