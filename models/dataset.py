"""Training rows: registered children × monthly as-of dates, point-in-time features, matured labels.

One row per child registered on an as-of date (a month end), for many dates. Features come from
the one point-in-time retrieval (``FeatureStore.as_of_frame``, style rule 5), so a training row
sees exactly what a scoring run on that date would have seen. Labels come from
``features.labels.label_frame`` with ``known_by`` set to the date the data were cut (the newest
record in the store), so a re-run months later reproduces the same labels. A row is kept only
when its whole label window had passed by then (``label_mature``): an immature window can only
under-count outcomes.

Labels are renamed ``y_<outcome>`` (``y_any``, ``y_dropout``, ...) so that no label can be
mistaken for a feature; which systems recorded an outcome is kept as ``label_source_<outcome>``
and whether anyone visited the child in the window as ``visited_in_window`` (outcomes that
caseworkers record themselves are only seen where someone looked).

Nothing here reads the synthetic truth.
"""

from __future__ import annotations

import logging
import time
from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.definitions import CHILD, VIEWS
from features.labels import OUTCOMES as DOMAIN_OUTCOMES
from features.labels import label_frame
from features.rawstore import raw_table
from features.store import FeatureStore
from shouhu.errors import InsufficientDataError

logger = logging.getLogger(__name__)

#: Every outcome a label column exists for: the four domains, then any of them.
OUTCOMES: tuple[str, ...] = (*DOMAIN_OUTCOMES, "any")

#: Area code given to a child whose township cannot be resolved at all (see ``capacity_areas``).
UNRESOLVED_AREA = "unresolved"

#: Column of the township each row is ranked in for capacity (the resolved township code).
AREA_COLUMN = "capacity_area"


def label_column(outcome: str) -> str:
    """Name of the 0/1 label column of ``outcome`` in a training frame (``y_<outcome>``).

    Examples
    --------
    >>> label_column("dropout")
    'y_dropout'
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; outcomes are {list(OUTCOMES)}")
    return f"y_{outcome}"


def month_end(day: date) -> date:
    """The last day of ``day``'s month.

    Examples
    --------
    >>> month_end(date(2024, 2, 10))
    datetime.date(2024, 2, 29)
    """
    return date(day.year, day.month, monthrange(day.year, day.month)[1])


def month_ends(first: date, last: date, every: int = 1) -> list[date]:
    """Month ends from ``first``'s month to ``last``, every ``every`` months, oldest first.

    Counted back from ``last`` so that the newest as-of date is always included.

    Parameters
    ----------
    first, last : date
        Bounds; the month end of ``first``'s month is the earliest date considered, and
        month ends after ``last`` are left out.
    every : int, default=1
        Spacing in months.

    Returns
    -------
    list of date
        Month ends, oldest first (empty when ``last`` is before ``first``'s month end).

    Examples
    --------
    >>> month_ends(date(2024, 1, 1), date(2024, 6, 30), every=2)
    [datetime.date(2024, 2, 29), datetime.date(2024, 4, 30), datetime.date(2024, 6, 30)]
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    start = month_end(first)
    current = last if last == month_end(last) else month_end(_add_months(last, -1))
    out: list[date] = []
    while current >= start:
        out.append(current)
        current = month_end(_add_months(current, -every))
    return sorted(out)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def feature_sources() -> tuple[str, ...]:
    """Raw tables that child-level features read (the ledgers scoring depends on).

    Reference tables (the area hierarchy) change rarely and are left out: their age says
    nothing about whether the ledgers are current.
    """
    seen: dict[str, None] = {}
    for view in VIEWS:
        if view.entity == CHILD:
            seen.setdefault(view.source, None)
    return tuple(seen)


def source_freshness(
    con: duckdb.DuckDBPyConnection, as_of: date | None = None
) -> dict[str, date | None]:
    """The newest ``recorded_at`` of each feature source, as known on ``as_of``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The feature store.
    as_of : date, optional
        Only rows recorded on or before this date count (point in time); all rows when omitted.

    Returns
    -------
    dict of str to date or None
        Source table to its newest record date; ``None`` for a source with no rows.
    """
    out: dict[str, date | None] = {}
    for source in feature_sources():
        where = "" if as_of is None else "WHERE recorded_at <= ?"
        params = [] if as_of is None else [as_of]
        rows = con.execute(f"SELECT MAX(recorded_at) FROM {raw_table(source)} {where}", params)
        value = rows.fetchall()[0][0]
        out[source] = value if isinstance(value, date) else None
    return out


def newest_record(con: duckdb.DuckDBPyConnection) -> date:
    """The newest ``recorded_at`` in any feature source: the date the data were cut.

    Raises
    ------
    InsufficientDataError
        If the store holds no ledger rows.
    """
    dates = [d for d in source_freshness(con).values() if d is not None]
    if not dates:
        raise InsufficientDataError("the feature store holds no ledger rows; ingest some first")
    return max(dates)


def earliest_record(con: duckdb.DuckDBPyConnection) -> date:
    """The oldest ``recorded_at`` in any feature source (when the ledgers begin).

    Raises
    ------
    InsufficientDataError
        If the store holds no ledger rows.
    """
    found: list[date] = []
    for source in feature_sources():
        value = con.execute(f"SELECT MIN(recorded_at) FROM {raw_table(source)}").fetchall()[0][0]
        if isinstance(value, date):
            found.append(value)
    if not found:
        raise InsufficientDataError("the feature store holds no ledger rows; ingest some first")
    return min(found)


def capacity_areas(frame: pd.DataFrame) -> pd.Series:
    """The township each child is ranked in for visit capacity.

    The township of the area hierarchy known on the date when there is one. Otherwise (a
    village whose parent is missing from the hierarchy: a gap in the area ledger) the known
    township whose code prefixes the village code, as statistical division codes are built
    (12-digit village codes begin with their township's digits); failing that
    :data:`UNRESOLVED_AREA`, so the child is still tiered and counted, never dropped.

    Parameters
    ----------
    frame : DataFrame
        Rows with ``township_code`` and ``village_code``.

    Returns
    -------
    Series of str
        Township code per row, indexed like ``frame``.
    """
    township = frame["township_code"].astype("object")
    missing = township.isna().to_numpy()
    if not missing.any():
        return township.astype(str)
    known = sorted({str(t) for t in township.dropna().unique()}, key=len, reverse=True)
    villages = frame["village_code"].astype("object")
    guesses: dict[Any, str] = {}
    for village in pd.unique(villages[missing]):
        text = "" if pd.isna(village) else str(village)
        matches = [t for t in known if text.startswith(t) and len(text) > len(t)]
        guesses[village] = matches[0] if matches else UNRESOLVED_AREA
    filled = township.copy()
    filled[missing] = villages[missing].map(guesses).fillna(UNRESOLVED_AREA)
    return filled.astype(str)


@dataclass(frozen=True)
class TrainingData:
    """Training rows and how they were selected.

    Parameters
    ----------
    frame : DataFrame
        Keys (``child_id``, ``as_of``, ``household_pid``, area codes), every feature,
        :data:`AREA_COLUMN`, the labels ``y_<outcome>``, ``label_source_<outcome>``,
        ``visited_in_window`` and ``known_by``; one row per (child, as-of date).
    known_by : date
        The date the data were cut: labels count records entered up to it.
    as_of_dates : tuple of date
        The as-of dates of the rows (all with matured label windows).
    horizon_days : int
        Days each label looks forward.
    dropped : dict of str to int
        Rows left out, by reason (``immature_label``).
    seconds : float
        Time taken to build.
    """

    frame: pd.DataFrame
    known_by: date
    as_of_dates: tuple[date, ...]
    horizon_days: int
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Plain JSON-ready description (no rows).

        Returns
        -------
        dict
            Rows, children, households, dates, event rates, drops and timing.
        """
        frame = self.frame
        return {
            "rows": len(frame),
            "children": int(frame["child_id"].nunique()),
            "households": int(frame["household_pid"].nunique()),
            "as_of_dates": [d.isoformat() for d in self.as_of_dates],
            "known_by": self.known_by.isoformat(),
            "horizon_days": self.horizon_days,
            "event_rate": {
                o: round(float(frame[label_column(o)].mean()), 5) if len(frame) else None
                for o in OUTCOMES
            },
            "dropped": dict(self.dropped),
            "seconds": round(self.seconds, 1),
        }


def training_dates(
    con: duckdb.DuckDBPyConnection,
    *,
    known_by: date,
    cadence_months: int = 1,
    warmup_months: int = 0,
    horizon_days: int = 90,
) -> list[date]:
    """Month ends whose label windows have fully passed by ``known_by``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The feature store (for the month the ledgers begin).
    known_by : date
        The date the data were cut.
    cadence_months : int, default=1
        One as-of date every this many months.
    warmup_months : int, default=0
        Months at the start of the ledgers without as-of dates: a feature with a 365-day
        window sees only a few weeks of history there, unlike any date it will score.
    horizon_days : int, default=90
        Days a label looks forward.

    Returns
    -------
    list of date
        Oldest first.
    """
    first = _add_months(earliest_record(con), warmup_months)
    last = known_by - timedelta(days=horizon_days)
    return month_ends(first, last, every=cadence_months)


def build_training_data(
    store: FeatureStore,
    as_of_dates: Sequence[date],
    *,
    known_by: date,
    horizon_days: int = 90,
) -> TrainingData:
    """Features and matured labels of every child registered on each as-of date.

    Parameters
    ----------
    store : FeatureStore
        The feature store (its connection also serves the labels).
    as_of_dates : sequence of date
        The as-of dates (month ends).
    known_by : date
        Labels count only records entered on or before this date (the data cut).
    horizon_days : int, default=90
        Days a label looks forward.

    Returns
    -------
    TrainingData
        Rows whose label windows had passed by ``known_by``.

    Raises
    ------
    InsufficientDataError
        If no as-of date is given or no child is registered on any of them.
    """
    started = time.perf_counter()
    dates = sorted(set(as_of_dates))
    if not dates:
        raise InsufficientDataError(
            "no as-of date has a matured label window: the ledgers are shorter than the "
            f"{horizon_days}-day label horizon"
        )
    spine = pd.concat(
        [store.registered_children(d)[["child_id"]].assign(as_of=pd.Timestamp(d)) for d in dates],
        ignore_index=True,
    )
    if spine.empty:
        raise InsufficientDataError("no child is registered on any of the as-of dates")
    features = store.as_of_frame(spine)
    labels = label_frame(store.con, spine, horizon_days=horizon_days, known_by=known_by)
    if (
        not (features["child_id"].to_numpy() == labels["child_id"].to_numpy()).all()
        or not (features["as_of"].to_numpy() == labels["as_of"].to_numpy()).all()
    ):
        raise RuntimeError("features and labels are not aligned on the spine")  # a store bug
    columns: dict[str, Any] = {AREA_COLUMN: capacity_areas(features).to_numpy()}
    for outcome in OUTCOMES:
        columns[label_column(outcome)] = labels[outcome].to_numpy(dtype=np.int8)
        columns[f"label_source_{outcome}"] = labels[f"source_{outcome}"].to_numpy()
    columns["visited_in_window"] = labels["visited_in_window"].to_numpy(dtype=bool)
    columns["known_by"] = labels["known_by"].to_numpy()
    frame = pd.concat([features, pd.DataFrame(columns, index=features.index)], axis=1)
    mature = labels["label_mature"].to_numpy(dtype=bool)
    frame = frame.loc[mature].reset_index(drop=True)
    kept = tuple(d for d in dates if (frame["as_of"] == pd.Timestamp(d)).any())
    data = TrainingData(
        frame=frame,
        known_by=known_by,
        as_of_dates=kept,
        horizon_days=horizon_days,
        dropped={"immature_label": int((~mature).sum())},
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "training rows built",
        extra={"rows": len(frame), "dates": len(kept), "seconds": round(data.seconds, 1)},
    )
    return data


__all__ = [
    "AREA_COLUMN",
    "OUTCOMES",
    "UNRESOLVED_AREA",
    "TrainingData",
    "build_training_data",
    "capacity_areas",
    "earliest_record",
    "feature_sources",
    "label_column",
    "month_end",
    "month_ends",
    "newest_record",
    "source_freshness",
    "training_dates",
]
