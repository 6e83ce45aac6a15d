"""Data quality between two as-of dates: missing values, categories, volume per area, schools.

A township that stops recording visits is a data problem before it is a model problem: its
children's "visits in 30 days" fall to zero and a model reads that as neglect. These checks
look at the recording itself, per area as well as overall, against the reference date:

* **missing rates** of every feature (a rise beyond ``max_missing_rate_jump``);
* **new and vanished categories** of the categorical features and of the area and school
  codes (a township joining or disappearing is a category of ``township_code``);
* **volume per area**: registered children, recorded visits per child in the last 30 and 90
  days, the share of children with any record entered in the last 30 days, and new
  registrations in the last 90 days (a surge of arrivals);
* **schools' weekly absence reports**: school days since the school last sent one, counted on
  the school calendar so holidays are never a gap (``monitoring.season.school_day_gap``).

Every check yields :class:`Finding` records; one whose ``alarm`` is true crossed a threshold of
the policy's ``monitoring`` section. Figures are computed on the whole frames (no sampling):
they are cheap group-bys. Nothing here reads names or identity numbers; areas and schools are
codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from models.dataset import capacity_areas
from models.policy import MonitoringLimits
from monitoring.season import school_day_gap

#: Column added to a side's frame: registered on the date but not 90 days before.
ENTRANT = "_entrant"
#: Area levels reported, broadest first, and the frame column holding each code.
AREA_LEVELS: tuple[tuple[str, str], ...] = (("county", "county_code"), ("township", "township"))
#: Code columns whose new or vanished values are reported like categories.
CODE_COLUMNS: tuple[str, ...] = ("county_code", "township", "school_code")
#: Scope of a finding about the whole population.
OVERALL = "overall"
#: Grades whose schools send weekly absence reports (primary and middle school).
REPORTING_GRADES = (1, 9)
#: Days of recording that count as "recent" for the share of children with a fresh record.
RECENT_DAYS = 30


@dataclass(frozen=True)
class Finding:
    """One figure checked against one threshold.

    Attributes
    ----------
    check : str
        What was checked, e.g. ``"visit_volume_30d"`` or ``"new_category"``.
    scope : str
        ``"overall"`` or an area code (county or township).
    subject : str or None
        The feature, code column, category or school concerned.
    value, threshold : float or None
        The figure and the limit it was compared with.
    alarm : bool
        Whether the figure crossed the limit.
    message : str
        One plain sentence for the report.
    """

    check: str
    scope: str
    subject: str | None
    value: float | None
    threshold: float | None
    alarm: bool
    message: str

    def __post_init__(self) -> None:
        # Figures often come out of pandas as numpy scalars, which JSON cannot write.
        object.__setattr__(self, "alarm", bool(self.alarm))
        for key in ("value", "threshold"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, float(value))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (numbers rounded to 6 places)."""
        out = asdict(self)
        for key in ("value", "threshold"):
            if out[key] is not None:
                out[key] = _round(out[key])
        return out


def _round(value: float, digits: int = 6) -> float | None:
    number = float(value)
    return round(number, digits) if np.isfinite(number) else None


def with_areas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus ``township`` (never missing) and a filled ``county_code``.

    A child whose village is missing from the area hierarchy keeps a township: the known one
    its village code begins with (``models.dataset.capacity_areas``, as scoring ranks it), else
    ``"unresolved"``; the county is then the township code's first six digits.

    Parameters
    ----------
    frame : DataFrame
        A feature frame (``township_code``, ``village_code``, ``county_code``).

    Returns
    -------
    DataFrame
        A copy with ``township`` and ``county_code`` filled, and ``_area_unmapped`` (bool):
        the hierarchy had no township for the child's village.
    """
    township = capacity_areas(frame)
    county = frame["county_code"].astype("object")
    added = pd.DataFrame(
        {
            "_area_unmapped": frame["township_code"].isna().to_numpy(),
            "township": township.to_numpy(),
            "county_code": county.where(county.notna(), township.str.slice(0, 6)).astype(str),
        },
        index=frame.index,
    )
    # One concatenation: a feature frame has a block per column, and inserting columns one by
    # one into it is slow (pandas warns about fragmentation).
    return pd.concat([frame.drop(columns=["county_code"]), added], axis=1)


# ---------------------------------------------------------------------------------------------
# Missing values


def missing_shares(frame: pd.DataFrame, features: Sequence[str]) -> pd.Series:
    """Share of missing values of each feature (0 for an empty frame)."""
    if frame.empty:
        return pd.Series(0.0, index=list(features))
    return frame[list(features)].isna().mean()


def missing_rate_findings(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    limit: float,
    scope: str = OVERALL,
) -> list[Finding]:
    """Features whose share of missing values rose by more than ``limit``.

    Parameters
    ----------
    reference, current : DataFrame
        Feature rows on the two dates (one area's rows for an area scope).
    features : sequence of str
        Features to check.
    limit : float
        ``quality.max_missing_rate_jump``.
    scope : str
        ``"overall"`` or the area code.

    Returns
    -------
    list of Finding
        One alarm per feature over the limit, largest rise first.
    """
    ref = missing_shares(reference, features)
    cur = missing_shares(current, features)
    jumps = (cur - ref).sort_values(ascending=False)
    out = []
    for name, jump in zip(jumps.index.astype(str), jumps.to_numpy(dtype="float64"), strict=True):
        if jump <= limit:
            break
        out.append(
            Finding(
                check="missing_rate_jump",
                scope=scope,
                subject=str(name),
                value=float(jump),
                threshold=limit,
                alarm=True,
                message=(
                    f"{name}: missing values rose from {ref[name]:.1%} to {cur[name]:.1%}"
                    + ("" if scope == OVERALL else f" in {scope}")
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Categories


def observed_shares(values: pd.Series) -> pd.Series:
    """Share of each observed (non-missing) value, as text."""
    present = values.dropna().astype(str)
    if present.empty:
        return pd.Series(dtype="float64")
    return present.value_counts(normalize=True)


def category_findings(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    limits: MonitoringLimits,
) -> list[Finding]:
    """New and vanished values of categorical features and of area and school codes.

    A value is *new* when the reference never has it and it holds at least
    ``min_new_category_share`` of the current rows; *vanished* when it held at least
    ``min_vanished_category_share`` of the reference rows and the current rows never have it.
    Rarer ones are left out (a single new village is not news). A new or vanished area is
    scoped to that area, so the area's entry carries the alarm.

    Returns
    -------
    list of Finding
        Alarms, in column order.
    """
    q = limits.quality
    out: list[Finding] = []
    area_columns = {"county_code", "township"}
    for column in columns:
        ref = observed_shares(reference[column])
        cur = observed_shares(current[column])
        for value, share in cur.items():
            if value not in ref.index and share >= q.min_new_category_share:
                out.append(
                    Finding(
                        check="new_category",
                        scope=str(value) if column in area_columns else OVERALL,
                        subject=f"{column}={value}",
                        value=float(share),
                        threshold=q.min_new_category_share,
                        alarm=True,
                        message=f"{column}: new value {value} holds {share:.1%} of the children",
                    )
                )
        for value, share in ref.items():
            if value not in cur.index and share >= q.min_vanished_category_share:
                out.append(
                    Finding(
                        check="vanished_category",
                        scope=str(value) if column in area_columns else OVERALL,
                        subject=f"{column}={value}",
                        value=float(share),
                        threshold=q.min_vanished_category_share,
                        alarm=True,
                        message=(
                            f"{column}: value {value} ({share:.1%} of the children on the "
                            "reference date) no longer appears"
                        ),
                    )
                )
    return out


def unmapped_finding(current: pd.DataFrame, limit: float) -> Finding:
    """The share of children whose village has no township in the area hierarchy."""
    share = float(current["_area_unmapped"].mean()) if len(current) else 0.0
    return Finding(
        check="unmapped_area",
        scope=OVERALL,
        subject="township_code",
        value=share,
        threshold=limit,
        alarm=share > limit,
        message=f"{share:.1%} of the children live in a village the area table does not place",
    )


# ---------------------------------------------------------------------------------------------
# Volume per area


def volume_table(frame: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Recording volume per area (or overall when ``column`` is ``None``).

    Returns
    -------
    DataFrame
        Indexed by area code (``"overall"``): ``children``, ``visits_30d`` and ``visits_90d``
        (recorded visits per child), ``recent_records`` (share of children with any record
        entered in the last 30 days) and ``entrants`` (share registered in the last 90 days).
    """
    data = pd.DataFrame(
        {
            "area": OVERALL if column is None else frame[column].astype(str),
            "visits_30d": frame["visits_30d"].astype("float64"),
            "visits_90d": frame["visits_90d"].astype("float64"),
            "recent_records": (frame["days_since_any_record"] <= RECENT_DAYS)
            .fillna(False)
            .astype("float64"),
            "entrants": frame[ENTRANT].astype("float64"),
        }
    )
    grouped = data.groupby("area", sort=True)
    table = grouped.mean()
    table.insert(0, "children", grouped.size())
    return table


def _ratio(current: float, reference: float) -> float:
    if reference > 0:
        return current / reference
    return float("inf") if current > 0 else 1.0


def volume_findings(
    ref: pd.Series,
    cur: pd.Series,
    scope: str,
    limits: MonitoringLimits,
    *,
    population_alarm: bool = True,
) -> tuple[dict[str, Any], list[Finding]]:
    """Compare one area's volume row on the two dates.

    Parameters
    ----------
    ref, cur : Series
        Rows of :func:`volume_table` for the area.
    scope : str
        The area code (or ``"overall"``).
    limits : MonitoringLimits
        The policy's monitoring section (``volume`` and ``min_area_children``).
    population_alarm : bool, default=True
        Whether a change of the registered children beyond ``max_population_change`` raises
        the alarm. Per area it is only shown: registrations, exits and moves reshape a
        township's register for many reasons, and a stop in recording shows first in the visit
        and record volumes.

    Returns
    -------
    tuple of (dict, list of Finding)
        The figures (reference, current and ratios) and the checks. An area with fewer than
        ``min_area_children`` children on either date is measured but never alarms.
    """
    v = limits.volume
    big_enough = min(ref["children"], cur["children"]) >= limits.min_area_children
    figures: dict[str, Any] = {
        "children_reference": int(ref["children"]),
        "children_current": int(cur["children"]),
        "population_change": _round(cur["children"] / ref["children"] - 1.0)
        if ref["children"]
        else None,
    }
    findings: list[Finding] = []
    for window in ("30d", "90d"):
        name = f"visits_{window}"
        ratio = _ratio(cur[name], ref[name])
        figures[f"{name}_per_child_reference"] = _round(ref[name])
        figures[f"{name}_per_child_current"] = _round(cur[name])
        figures[f"visit_ratio_{window}"] = _round(ratio)
        findings.append(
            Finding(
                check=f"visit_volume_{window}",
                scope=scope,
                subject=name,
                value=ratio,
                threshold=v.min_visit_ratio,
                alarm=big_enough and ratio < v.min_visit_ratio,
                message=(
                    f"recorded visits per child in the last {window[:-1]} days: "
                    f"{ref[name]:.2f} → {cur[name]:.2f}"
                ),
            )
        )
    ratio = _ratio(cur["recent_records"], ref["recent_records"])
    figures["recent_records_reference"] = _round(ref["recent_records"])
    figures["recent_records_current"] = _round(cur["recent_records"])
    figures["recent_record_ratio"] = _round(ratio)
    findings.append(
        Finding(
            check="recent_records",
            scope=scope,
            subject="days_since_any_record",
            value=ratio,
            threshold=v.min_recent_record_ratio,
            alarm=big_enough and ratio < v.min_recent_record_ratio,
            message=(
                f"children with a record entered in the last {RECENT_DAYS} days: "
                f"{ref['recent_records']:.1%} → {cur['recent_records']:.1%}"
            ),
        )
    )
    ratio = _ratio(cur["entrants"], ref["entrants"])
    excess = cur["entrants"] - ref["entrants"]
    figures["entrants_reference"] = _round(ref["entrants"])
    figures["entrants_current"] = _round(cur["entrants"])
    figures["entrant_ratio"] = _round(ratio)
    findings.append(
        Finding(
            check="entrant_surge",
            scope=scope,
            subject="registrations_90d",
            value=ratio,
            threshold=float(v.max_entrant_ratio),
            alarm=big_enough and ratio > v.max_entrant_ratio and excess >= v.min_entrant_excess,
            message=(
                f"children registered in the last 90 days: {ref['entrants']:.1%} → "
                f"{cur['entrants']:.1%}"
            ),
        )
    )
    change = figures["population_change"]
    if change is not None:
        findings.append(
            Finding(
                check="population_change",
                scope=scope,
                subject="children",
                value=change,
                threshold=v.max_population_change,
                alarm=population_alarm and big_enough and abs(change) > v.max_population_change,
                message=(f"registered children: {int(ref['children'])} → {int(cur['children'])}"),
            )
        )
    return figures, findings


# ---------------------------------------------------------------------------------------------
# Schools' weekly absence reports


def _most_common(values: pd.Series) -> str:
    return str(values.value_counts().index[0])


def school_table(frame: pd.DataFrame, as_of: date, history_start: date | None) -> pd.DataFrame:
    """Each reporting school's pupils, main township and how fresh its weekly reports are.

    Two clocks, both in school days up to ``as_of``:

    * ``gap``: since the newest **week** any of its pupils was reported absent without excuse
      (the smallest ``days_since_unexcused_absence`` among its pupils: the feature dates an
      absence by its week). A school that stops sending reports adds no new weeks, even while
      late entries about earlier weeks still arrive; a school of a hundred pupils or more has
      an unexcused absence in nearly every week of term (synthetic population: at most 11
      school days without one in 1,000 term-time school-months, against 27 for a school closed
      for six weeks).
    * ``entry_gap``: since the school's newest report was **entered**
      (``days_since_school_absence_report``), shown for context: late entries keep it low.

    Returns
    -------
    DataFrame
        Indexed by ``school_code``: ``pupils`` (grades 1-9), ``township`` (where most of its
        pupils live), ``county_code``, ``gap`` and ``entry_gap`` (``NaN`` when unknowable).
    """
    columns = ["pupils", "township", "county_code", "gap", "entry_gap"]
    low, high = REPORTING_GRADES
    pupils = frame[frame["grade"].between(low, high) & frame["school_code"].notna()]
    if pupils.empty:
        return pd.DataFrame(columns=columns)
    grouped = pupils.groupby(pupils["school_code"].astype(str), sort=True)
    table = pd.DataFrame(
        {
            "pupils": grouped.size(),
            "township": grouped["township"].agg(_most_common),
            "county_code": grouped["county_code"].agg(_most_common),
            "week_days": grouped["days_since_unexcused_absence"].min(),
            # The school's own feature, identical for its pupils.
            "entry_days": grouped["days_since_school_absence_report"].min(),
        }
    )
    for gap, days in (("gap", "week_days"), ("entry_gap", "entry_days")):
        table[gap] = pd.to_numeric(
            pd.Series(
                [
                    school_day_gap(as_of, None if pd.isna(d) else float(d), history_start)
                    for d in table[days]
                ],
                index=table.index,
                dtype="object",
            ),
            errors="coerce",
        )
    return table[columns]


def school_findings(
    reference: pd.DataFrame, current: pd.DataFrame, limits: MonitoringLimits
) -> list[Finding]:
    """Schools whose weekly absence reports were fresh on the reference date and have stopped.

    A school is flagged when the newest week its reports cover is more than
    ``max_school_days_without_report`` school days old on the current date (``gap`` of
    :func:`school_table`) but was not on the reference date, and it has at least
    ``min_area_children`` pupils (a small school may go weeks without an unexcused absence).
    School days come from the calendar, so a holiday is never a gap. The finding is scoped to
    the township most of its pupils live in.

    Parameters
    ----------
    reference, current : DataFrame
        :func:`school_table` of each date.
    limits : MonitoringLimits
        The policy's monitoring section.

    Returns
    -------
    list of Finding
        One per school checked, alarmed or not.
    """
    limit = limits.volume.max_school_days_without_report
    out = []
    for school, row in current.iterrows():
        if row["pupils"] < limits.min_area_children or pd.isna(row["gap"]):
            continue
        ref_gap = reference["gap"].get(school, np.nan) if len(reference) else np.nan
        reported_before = bool(pd.notna(ref_gap) and ref_gap <= limit)
        gap = float(row["gap"])
        entered = "" if pd.isna(row["entry_gap"]) else f"; last entry {row['entry_gap']:.0f} ago"
        out.append(
            Finding(
                check="school_not_reporting",
                scope=str(row["township"]),
                subject=str(school),
                value=gap,
                threshold=float(limit),
                alarm=reported_before and gap > limit,
                message=(
                    f"school {school} ({int(row['pupils'])} pupils): the newest week its absence "
                    f"reports cover is {gap:.0f} school days old{entered}"
                    + ("" if pd.isna(ref_gap) else f" ({ref_gap:.0f} on the reference date)")
                ),
            )
        )
    return out


def alarms(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that crossed a threshold."""
    return [f for f in findings if f.alarm]


__all__ = [
    "AREA_LEVELS",
    "CODE_COLUMNS",
    "ENTRANT",
    "OVERALL",
    "Finding",
    "alarms",
    "category_findings",
    "missing_rate_findings",
    "missing_shares",
    "observed_shares",
    "school_findings",
    "school_table",
    "unmapped_finding",
    "volume_findings",
    "volume_table",
    "with_areas",
]
