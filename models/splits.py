"""Time-and-household splits: train early, calibrate later, test on the latest matured window.

Two things inflate a child-welfare model's measured accuracy if a split ignores them. Time:
the model will score next month's children, so it must be tested on as-of dates after every
date it learnt from (style rule 10). Families: siblings share a household and one child appears
at many as-of dates, so a random row split puts near-copies on both sides (the published
Allegheny AUC was inflated this way: siblings were split across training and test).

So a split here has three windows of as-of dates and three disjoint groups of households:

- every household is assigned, by a keyed hash, to exactly one of the groups train / calib /
  test, and only its own window's rows are used: the rows of a calib or test household at
  earlier dates are dropped from training, never used;
- a child who moved between households links those households into one unit (the connected
  component of the child-household graph), so no child ends up in two groups either;
- the test window ends ``horizon_days`` before ``data_end``, so every test label has been
  observed for its full horizon (a label looks forward 90 days from its as-of date);
- an embargo (default: the label horizon) separates windows: a training row's label period
  ends before the calibration window starts, and a calibration row's before the test window.

Every row not used is counted with its reason in ``dropped``: nothing disappears silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray: TypeAlias = npt.NDArray[np.intp]
DateLike: TypeAlias = date | datetime | str | pd.Timestamp

TRAIN, CALIB, TEST = "train", "calib", "test"


@dataclass(frozen=True)
class Window:
    """A closed range of as-of dates, ``start <= as_of <= end``.

    Parameters
    ----------
    start : pandas.Timestamp or None
        First as-of date (None: from the beginning of the data).
    end : pandas.Timestamp
        Last as-of date.
    """

    start: pd.Timestamp | None
    end: pd.Timestamp

    def to_dict(self) -> dict[str, str | None]:
        """ISO dates, JSON-ready.

        Returns
        -------
        dict
            ``start`` and ``end`` as ISO dates.
        """
        return {
            "start": None if self.start is None else self.start.date().isoformat(),
            "end": self.end.date().isoformat(),
        }


@dataclass(frozen=True)
class TimeHouseholdSplit:
    """Positional row indices of one train / calib / test split, with its windows.

    Parameters
    ----------
    train, calib, test : ndarray of int
        Positions (``iloc``) of the rows on each side, in frame order.
    train_window, calib_window, test_window : Window
        As-of dates each side may hold.
    dropped : dict of str to int
        Rows used nowhere, by reason: ``"other_group"`` (the household belongs to another
        side), ``"embargo"`` (label period overlaps the next window), ``"before_train"``
        (earlier than ``train_from``), ``"after_test"`` (later than the test window, e.g.
        labels not yet matured).
    """

    train: IntArray
    calib: IntArray
    test: IntArray
    train_window: Window
    calib_window: Window
    test_window: Window
    dropped: dict[str, int] = field(default_factory=dict)

    def frames(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The three sides as frames.

        Parameters
        ----------
        frame : DataFrame
            The frame the split was computed on.

        Returns
        -------
        train, calib, test : DataFrame
            Rows of each side.
        """
        return frame.iloc[self.train], frame.iloc[self.calib], frame.iloc[self.test]

    def to_dict(self) -> dict[str, Any]:
        """Windows, row counts and drop counts, JSON-ready (for the training run's log).

        Returns
        -------
        dict
            Summary of the split without row indices.
        """
        return {
            "windows": {
                TRAIN: self.train_window.to_dict(),
                CALIB: self.calib_window.to_dict(),
                TEST: self.test_window.to_dict(),
            },
            "rows": {TRAIN: len(self.train), CALIB: len(self.calib), TEST: len(self.test)},
            "dropped": dict(self.dropped),
        }


def _timestamp(value: DateLike) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        raise ValueError(f"dates must be timezone-naive, got {value!r}")
    return stamp.normalize()


def _unit_keys(children: pd.Series[Any], households: pd.Series[Any]) -> pd.Series[Any]:
    """Key of each row's unit: the smallest household id among households linked by children.

    A child seen in two households joins them; the link is transitive. A row without a
    household stands for its child alone.
    """
    child = children.astype("string")
    household = households.astype("string")
    # \x00 sorts before any pseudonym, and cannot collide with a real household id.
    household = household.fillna("\x00child:" + child)
    child_codes, _ = pd.factorize(child)
    household_codes, household_ids = pd.factorize(household)
    pairs = pd.DataFrame({"c": child_codes, "h": household_codes}).drop_duplicates()
    c = pairs["c"].to_numpy()
    h = pairs["h"].to_numpy()
    # Label the components by rank of the household id so "smallest code" = "smallest id".
    rank = np.argsort(np.argsort(np.asarray(household_ids, dtype=object)))
    label = rank.astype(np.int64)
    n_children = int(child_codes.max()) + 1 if len(child_codes) else 0
    while True:
        # Each child takes the smallest label of its households, and gives it back to all of
        # them; repeat until nothing changes (at most the component's diameter rounds).
        child_label = np.full(n_children, np.iinfo(np.int64).max)
        np.minimum.at(child_label, c, label[h])
        new = label.copy()
        np.minimum.at(new, h, child_label[c])
        if np.array_equal(new, label):
            break
        label = new
    smallest_id = np.asarray(household_ids, dtype=object)[np.argsort(rank)]
    return pd.Series(smallest_id[label[household_codes]], index=children.index, dtype=object)


def _hash_unit(key: str, salt: str) -> float:
    """A uniform number in [0, 1) from a unit key: stable across runs and machines."""
    digest = hashlib.blake2b(f"{salt}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_groups(
    frame: pd.DataFrame,
    *,
    calib_share: float,
    test_share: float,
    salt: str = "shouhu-split-v1",
    child_col: str = "child_id",
    household_col: str = "household_pid",
) -> pd.Series[Any]:
    """Assign every row's household unit to ``"train"``, ``"calib"`` or ``"test"``.

    Parameters
    ----------
    frame : DataFrame
        Rows with child and household ids.
    calib_share, test_share : float
        Expected share of household units in the calib and test groups.
    salt : str, default="shouhu-split-v1"
        Key of the hash; change it to draw a different assignment.
    child_col, household_col : str
        Column names.

    Returns
    -------
    Series of str
        Group of each row, indexed like ``frame``.
    """
    if calib_share < 0 or test_share < 0 or calib_share + test_share >= 1:
        raise ValueError("shares must be non-negative and leave some households for training")
    keys = _unit_keys(frame[child_col], frame[household_col])
    unique_keys = pd.unique(keys)
    draw = {k: _hash_unit(str(k), salt) for k in unique_keys}
    u = keys.map(draw).to_numpy(dtype=np.float64)
    group = np.where(u < test_share, TEST, np.where(u < test_share + calib_share, CALIB, TRAIN))
    return pd.Series(group, index=frame.index, dtype=object)


def split_by_time_and_household(
    frame: pd.DataFrame,
    *,
    calib_from: DateLike,
    test_from: DateLike,
    data_end: DateLike,
    test_to: DateLike | None = None,
    train_from: DateLike | None = None,
    horizon_days: int = 90,
    embargo_days: int | None = None,
    calib_share: float = 0.25,
    test_share: float = 0.25,
    salt: str = "shouhu-split-v1",
    as_of_col: str = "as_of",
    child_col: str = "child_id",
    household_col: str = "household_pid",
) -> TimeHouseholdSplit:
    """Split a spine or feature frame by as-of date and by household.

    Windows: train ``[train_from, calib_from)``, calib ``[calib_from, test_from)``, test
    ``[test_from, test_to]``; a row of the first two must also have ``as_of + embargo <=`` the
    next window's start.

    Parameters
    ----------
    frame : DataFrame
        One row per (child, as-of date), with child, household and as-of columns.
    calib_from : date-like
        First as-of date of the calibration window.
    test_from : date-like
        First as-of date of the test window.
    data_end : date-like
        Last date on which outcomes were recorded.
    test_to : date-like, optional
        Last as-of date of the test window; default and maximum ``data_end - horizon_days``,
        so that every test label is mature.
    train_from : date-like, optional
        First as-of date used for training (default: all earlier data).
    horizon_days : int, default=90
        Days a label looks forward from its as-of date.
    embargo_days : int, optional
        Gap between a window's last label period and the next window; default
        ``horizon_days``. 0 allows label periods to run into the next window.
    calib_share, test_share : float, default=0.25
        Expected share of household units in the calibration and test groups.
    salt : str, default="shouhu-split-v1"
        Hash key of the household assignment.
    as_of_col, child_col, household_col : str
        Column names.

    Returns
    -------
    TimeHouseholdSplit
        Row positions of each side, the windows, and drop counts.

    Raises
    ------
    ValueError
        If windows are out of order, the test window is not mature, a column is missing, or
        an as-of date or child id is missing.
    """
    for column in (as_of_col, child_col, household_col):
        if column not in frame.columns:
            raise ValueError(f"frame has no column {column!r}")
    as_of = pd.to_datetime(frame[as_of_col]).dt.normalize()
    if as_of.isna().any():
        raise ValueError(f"{int(as_of.isna().sum())} rows have no {as_of_col}")
    if frame[child_col].isna().any():
        raise ValueError(f"{int(frame[child_col].isna().sum())} rows have no {child_col}")

    embargo = pd.Timedelta(days=horizon_days if embargo_days is None else embargo_days)
    if embargo < pd.Timedelta(0) or horizon_days < 0:
        raise ValueError("horizon_days and embargo_days must be non-negative")
    mature_end = _timestamp(data_end) - pd.Timedelta(days=horizon_days)
    test_end = mature_end if test_to is None else _timestamp(test_to)
    if test_end > mature_end:
        raise ValueError(
            f"test window ends {test_end.date()} but labels are only mature up to "
            f"{mature_end.date()} ({horizon_days} days before data_end)"
        )
    calib_start, test_start = _timestamp(calib_from), _timestamp(test_from)
    train_start = None if train_from is None else _timestamp(train_from)
    if not calib_start < test_start <= test_end:
        raise ValueError("need calib_from < test_from <= test_to (and test_to <= mature end)")
    if train_start is not None and not train_start < calib_start:
        raise ValueError("need train_from < calib_from")

    group = assign_groups(
        frame,
        calib_share=calib_share,
        test_share=test_share,
        salt=salt,
        child_col=child_col,
        household_col=household_col,
    ).to_numpy()
    t = as_of.to_numpy()
    before_train = np.zeros(len(frame), dtype=np.bool_)
    if train_start is not None:
        before_train = t < np.datetime64(train_start)
    in_train = ~before_train & (t < np.datetime64(calib_start))
    in_calib = (t >= np.datetime64(calib_start)) & (t < np.datetime64(test_start))
    in_test = (t >= np.datetime64(test_start)) & (t <= np.datetime64(test_end))
    after_test = t > np.datetime64(test_end)
    embargoed = (in_train & (t + embargo.to_timedelta64() > np.datetime64(calib_start))) | (
        in_calib & (t + embargo.to_timedelta64() > np.datetime64(test_start))
    )
    train = in_train & ~embargoed & (group == TRAIN)
    calib = in_calib & ~embargoed & (group == CALIB)
    test = in_test & (group == TEST)
    other_group = (in_train | in_calib | in_test) & ~embargoed & ~(train | calib | test)

    calib_end = min(test_start - pd.Timedelta(days=1), test_start - embargo)
    train_end = min(calib_start - pd.Timedelta(days=1), calib_start - embargo)
    return TimeHouseholdSplit(
        train=np.flatnonzero(train).astype(np.intp),
        calib=np.flatnonzero(calib).astype(np.intp),
        test=np.flatnonzero(test).astype(np.intp),
        train_window=Window(train_start, train_end),
        calib_window=Window(calib_start, calib_end),
        test_window=Window(test_start, test_end),
        dropped={
            "other_group": int(other_group.sum()),
            "embargo": int(embargoed.sum()),
            "before_train": int(before_train.sum()),
            "after_test": int(after_test.sum()),
        },
    )


def rolling_time_folds(
    frame: pd.DataFrame,
    *,
    n_folds: int,
    test_days: int,
    calib_days: int,
    data_end: DateLike,
    horizon_days: int = 90,
    embargo_days: int | None = None,
    calib_share: float = 0.25,
    test_share: float = 0.25,
    salt: str = "shouhu-split-v1",
    as_of_col: str = "as_of",
    child_col: str = "child_id",
    household_col: str = "household_pid",
) -> list[TimeHouseholdSplit]:
    """Consecutive test windows ending at the last mature date, each with its own split.

    Fold ``i`` (oldest first) tests on ``test_days`` days of as-of dates, calibrates on the
    ``calib_days`` before its embargo, and trains on everything earlier (an expanding window).
    The household assignment is the same in every fold, so a test household never trains any
    fold. "The model beats both baselines over at least two time folds" is judged on these.

    Parameters
    ----------
    frame : DataFrame
        One row per (child, as-of date).
    n_folds : int
        Number of folds (at least 1).
    test_days : int
        Length of each test window in days.
    calib_days : int
        Length of each calibration window in days.
    data_end : date-like
        Last date on which outcomes were recorded.
    horizon_days : int, default=90
        Days a label looks forward.
    embargo_days : int, optional
        Gap between windows; default ``horizon_days``.
    calib_share, test_share : float, default=0.25
        Household shares of the calibration and test groups.
    salt : str, default="shouhu-split-v1"
        Hash key of the household assignment.
    as_of_col, child_col, household_col : str
        Column names.

    Returns
    -------
    list of TimeHouseholdSplit
        One split per fold, oldest first.

    Raises
    ------
    ValueError
        If a fold would have no training, calibration or test rows.
    """
    if n_folds < 1 or test_days < 1 or calib_days < 1:
        raise ValueError("n_folds, test_days and calib_days must be at least 1")
    embargo = timedelta(days=horizon_days if embargo_days is None else embargo_days)
    last_end = _timestamp(data_end) - pd.Timedelta(days=horizon_days)
    folds: list[TimeHouseholdSplit] = []
    for back in range(n_folds - 1, -1, -1):
        test_to = last_end - pd.Timedelta(days=back * test_days)
        test_from = test_to - pd.Timedelta(days=test_days - 1)
        calib_from = test_from - embargo - pd.Timedelta(days=calib_days)
        split = split_by_time_and_household(
            frame,
            calib_from=calib_from,
            test_from=test_from,
            test_to=test_to,
            data_end=data_end,
            horizon_days=horizon_days,
            embargo_days=embargo_days,
            calib_share=calib_share,
            test_share=test_share,
            salt=salt,
            as_of_col=as_of_col,
            child_col=child_col,
            household_col=household_col,
        )
        empty = [name for name in (TRAIN, CALIB, TEST) if len(getattr(split, name)) == 0]
        if empty:
            raise ValueError(
                f"fold testing {test_from.date()}..{test_to.date()} has no {', '.join(empty)} rows"
            )
        folds.append(split)
    return folds


__all__ = [
    "CALIB",
    "TEST",
    "TRAIN",
    "TimeHouseholdSplit",
    "Window",
    "assign_groups",
    "rolling_time_folds",
    "split_by_time_and_household",
]
