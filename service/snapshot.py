"""What the service holds in memory between refreshes: latest features, the run in force, areas.

Why a snapshot and not a query per request
------------------------------------------
The feature store and the score store are DuckDB files that CLI jobs (``shouhu features
ingest``, ``shouhu models score``) write while the service runs. DuckDB lets one process write
a file *or* any number read it, never both: a service holding a connection open would make the
nightly ingest fail, and a request arriving during the ingest would fail too. So the service
opens each file read-only only while it builds a :class:`Snapshot` (at start, then whenever a
file changes; see ``ServiceState.refresh``) and closes it at once. Requests read memory:

- the features of every registered child as of the date of the run in force, already encoded
  as the float matrices the trees read, so one child is scored and explained from a numpy row
  (about a millisecond) instead of a one-row DataFrame;
- each township's T2/T3 score cut-offs for those features and the champion (capacity ranking
  of ``models.tiers.assign_tiers``), so a score "now" is placed exactly as a run would place it;
- the run in force (newest run of the latest scored date), sorted for the watch list, with an
  index of rows per area at every level;
- every child's home village (area checks) and the area names;
- every child's ledger records and score history for the child file
  (``service.repository.records``), a slice per child instead of nine table scans.

Only a child file asked for after a store file changed (and before the next refresh) reads the
stores per request, read-only; if a writer holds a file at that moment the request answers 503
(``StoreError``) and can be retried.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from models.bundle import ModelBundle
from models.dataset import capacity_areas
from models.policy import Tier, TierPolicy
from models.tiers import AreaThresholds, TierState, assign_tiers
from service.areas import LEVEL_LENGTHS, Area, AreaDirectory, area_level, is_area_code
from service.repository.records import ChildRecords, build_child_records
from shouhu.errors import StoreError

logger = logging.getLogger(__name__)

FloatMatrix = npt.NDArray[np.float64]

#: Columns of the run in force kept for the watch list and score summaries.
_RUN_COLUMNS = (
    "child_id",
    "as_of",
    "p_any",
    "p_low",
    "p_high",
    "borderline",
    "tier",
    "rules_fired",
    "reasons",
    "model_name",
    "model_version",
    "policy_version",
    "tier_source",
    "model_tier",
    "hard_rule_t1",
    "consecutive_below",
    "held_by_hysteresis",
    "awaiting_confirmation",
    "village_code",
    "township_code",
    "county_code",
    "run_id",
    "scored_at",
    "computed_tier",
    "override_id",
)


@dataclass(frozen=True)
class RunInfo:
    """The scoring run in force: the newest run of the latest scored date."""

    run_id: str
    as_of: date
    scored_at: datetime
    children: int
    model_name: str | None
    model_version: int | None
    policy_version: str


@dataclass(frozen=True)
class StoreStamp:
    """Size and modification time of a store file, to notice a change cheaply."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> StoreStamp | None:
        """The stamp of ``path`` (``None`` when the file does not exist)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        # The write-ahead log changes before the main file is checkpointed.
        wal = path.with_name(path.name + ".wal")
        extra = wal.stat().st_mtime_ns if wal.exists() else 0
        return cls(stat.st_size, max(stat.st_mtime_ns, extra))


@dataclass(frozen=True)
class BoardRecord:
    """One child of the run in force, as plain values (what a watch-list item shows)."""

    child_id: str
    tier: str
    p_any: float | None
    p_low: float | None
    p_high: float | None
    borderline: bool
    rules_fired: tuple[str, ...]
    reasons_zh: tuple[str, ...]
    reasons_en: tuple[str, ...]
    village_code: str
    township_code: str | None

    @property
    def hard_rule(self) -> bool:
        """A hard rule fired (the child is in T1 whatever the model says)."""
        return any(r.startswith("hard:") for r in self.rules_fired)


def _probability(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _raising(reasons: Any, lang: str, k: int = 3) -> tuple[str, ...]:
    out: list[str] = []
    for reason in _items(reasons):
        if reason.get("direction") == "raises":
            out.append(str(reason.get(lang) or reason.get("en") or reason.get("feature")))
            if len(out) >= k:
                break
    return tuple(out)


def _records(rows: pd.DataFrame) -> list[BoardRecord]:
    columns = (
        "child_id",
        "tier",
        "p_any",
        "p_low",
        "p_high",
        "borderline",
        "rules_fired",
        "reasons",
        "village_code",
        "township_code",
    )
    out = []
    for child, tier, p, low, high, border, fired, reasons, village, township in zip(
        *(rows[c].tolist() for c in columns), strict=True
    ):
        out.append(
            BoardRecord(
                child_id=str(child),
                tier=str(tier),
                p_any=_probability(p),
                p_low=_probability(low),
                p_high=_probability(high),
                borderline=bool(border) if border is not None and border is not pd.NA else False,
                rules_fired=tuple(str(r) for r in _items(fired)),
                reasons_zh=_raising(reasons, "zh"),
                reasons_en=_raising(reasons, "en"),
                village_code=str(village),
                township_code=None if township is None else str(township),
            )
        )
    return out


@dataclass
class Board:
    """The run in force, ordered for the watch list (tier, then calibrated risk, then id).

    Attributes
    ----------
    rows : DataFrame
        One row per child of the run, in watch-list order (``RangeIndex``).
    tier_level : ndarray of int
        1 for T1 … 4 for T4, per row.
    p_any : ndarray of float
        Calibrated risk per row (NaN without a model).
    domain_bits : ndarray of int
        Bit ``k`` set when the child has a risk-raising reason or a fired rule in the policy's
        ``k``-th domain.
    by_area : dict of str to ndarray
        Row positions (in watch-list order) of the children in each area, at every level.
    row_of : dict of str to int
        Position of each child.
    states : list of TierState
        Each child's tier state after the run (hysteresis input of a score now).
    records : list of BoardRecord
        Each row as plain Python values, ready for the watch list (no per-request pandas).
    """

    rows: pd.DataFrame
    tier_level: npt.NDArray[np.int64]
    p_any: FloatMatrix
    domain_bits: npt.NDArray[np.int64]
    by_area: dict[str, npt.NDArray[np.int64]]
    row_of: dict[str, int]
    states: list[TierState]
    records: list[BoardRecord]
    ids: npt.NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))

    @classmethod
    def empty(cls) -> Board:
        """A board without a run (no child is listed)."""
        return cls(
            pd.DataFrame(columns=list(_RUN_COLUMNS)),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.int64),
            {},
            {},
            [],
            [],
        )


def _states(rows: pd.DataFrame) -> list[TierState]:
    out = []
    for tier, below, hard in zip(
        rows["tier"].astype(str), rows["consecutive_below"], rows["hard_rule_t1"], strict=True
    ):
        level = Tier(tier)
        out.append(
            TierState(
                level,
                0 if pd.isna(below) else int(below),
                bool(hard) and not pd.isna(hard) and level is Tier.T1,
            )
        )
    return out


@dataclass
class Snapshot:
    """Everything requests read, built by :func:`build_snapshot`; replaced whole on refresh.

    Attributes
    ----------
    as_of : date or None
        Date of the features (the run in force's date); ``None`` when nothing is scored and
        the store has no record.
    frame : DataFrame
        Features of every child registered on ``as_of`` (``RangeIndex``).
    row_of : dict of str to int
        Row of each child in ``frame`` and the matrices.
    matrices : dict of str to ndarray
        Per outcome, the features encoded as the model reads them (rows as ``frame``).
    predicted : dict of str to ndarray
        The champion's calibrated probabilities of every row (``ModelBundle.score_columns``).
    township : ndarray of str
        The township each row is ranked in for capacity.
    thresholds : dict of str to AreaThresholds
        Per township, the T2/T3 cut-offs of the champion on these features.
    model_tiers : list of Tier or None
        Per row, the model's band from the capacity ranking (ties broken by child id).
    run : RunInfo or None
        The run in force.
    board : Board
        The run in force, ordered for the watch list.
    villages : dict of str to str or None
        Every child ever registered, with its latest home village code.
    areas : AreaDirectory
        Names and parents of the areas.
    stamps : tuple
        Stamps of the feature and score stores when built.
    seconds : float
        Build time.
    records : ChildRecords or None
        Every child's ledger records and score history (the child file).
    """

    as_of: date | None
    frame: pd.DataFrame
    row_of: dict[str, int]
    matrices: dict[str, FloatMatrix]
    predicted: dict[str, FloatMatrix]
    township: npt.NDArray[np.object_]
    thresholds: dict[str, AreaThresholds]
    model_tiers: list[Tier | None]
    run: RunInfo | None
    board: Board
    villages: dict[str, str | None]
    areas: AreaDirectory
    stamps: tuple[StoreStamp | None, StoreStamp | None]
    model_version: int
    seconds: float = 0.0
    built_at: float = field(default_factory=time.time)
    records: ChildRecords | None = None

    def previous_state(self, child_id: str) -> TierState | None:
        """The child's tier state after the run in force (for hysteresis of a score now)."""
        pos = self.board.row_of.get(child_id)
        return None if pos is None else self.board.states[pos]


# --------------------------------------------------------------------------------------------
# Reading the stores (read-only, closed at once)
# --------------------------------------------------------------------------------------------


def _connect(path: Path, *, threads: int, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise StoreError(f"no store at {path}")
    config: dict[str, str | bool | int | float | list[str]] = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        return duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.Error as exc:
        # Another process is writing the file (an ingest or a scoring run): try again later.
        raise StoreError(f"the store {path.name} is busy or unreadable: {exc}") from exc


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


def read_run(scores_db: Path) -> tuple[RunInfo | None, pd.DataFrame]:
    """The run in force and its rows (empty when nothing was scored).

    Parameters
    ----------
    scores_db : Path
        ``$SHOUHU_HOME/scores.duckdb``.

    Returns
    -------
    (RunInfo or None, DataFrame)
        The run and its rows (columns of the score schema the service uses).
    """
    if not scores_db.exists():
        return None, pd.DataFrame(columns=list(_RUN_COLUMNS))
    con = _connect(scores_db, threads=1, memory_limit=None)
    try:
        if not _has_table(con, "scoring_runs"):
            return None, pd.DataFrame(columns=list(_RUN_COLUMNS))
        # Through Arrow: DuckDB's own fetch of a timestamptz needs pytz.
        found = (
            con.sql(
                "SELECT run_id, as_of, scored_at, children, model_name, model_version, "
                "policy_version FROM scoring_runs ORDER BY as_of DESC, scored_at DESC LIMIT 1"
            )
            .to_arrow_table()
            .to_pylist()
        )
        if not found:
            return None, pd.DataFrame(columns=list(_RUN_COLUMNS))
        newest = found[0]
        run_id, as_of, scored_at = newest["run_id"], newest["as_of"], newest["scored_at"]
        children, model_name = newest["children"], newest["model_name"]
        model_version, policy_version = newest["model_version"], newest["policy_version"]
        # Stores written before overrides reached the scoring run lack the last two columns.
        stored = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE scores)").fetchall()}
        columns = ", ".join(c for c in _RUN_COLUMNS if c in stored)
        table = con.sql(
            f"SELECT {columns} FROM scores WHERE run_id = $run", params={"run": run_id}
        ).to_arrow_table()
    finally:
        con.close()
    rows: pd.DataFrame = table.to_pandas()
    info = RunInfo(
        run_id=str(run_id),
        as_of=as_of,
        scored_at=scored_at,
        children=int(children),
        model_name=None if model_name is None else str(model_name),
        model_version=None if model_version is None else int(model_version),
        policy_version=str(policy_version),
    )
    return info, rows


def _villages(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    rows = con.execute(
        "SELECT child_id, village_code FROM raw_children "
        "QUALIFY row_number() OVER (PARTITION BY child_id "
        "ORDER BY registered_date DESC, recorded_at DESC, _seq DESC) = 1"
    ).fetchall()
    return {str(child): (None if village is None else str(village)) for child, village in rows}


def _areas(con: duckdb.DuckDBPyConnection) -> AreaDirectory:
    rows = con.execute(
        "SELECT area_code, level, area_name, parent_code FROM raw_areas "
        "QUALIFY row_number() OVER (PARTITION BY area_code "
        "ORDER BY effective_date DESC, recorded_at DESC, _seq DESC) = 1"
    ).fetchall()
    directory = AreaDirectory()
    for code, level, name, parent in rows:
        code = str(code)
        if not is_area_code(code):
            continue
        level_name = area_level(code) if level not in LEVEL_LENGTHS else level
        directory.areas[code] = Area(code, level_name, str(name or code), parent and str(parent))
    return directory


def _newest_record(con: duckdb.DuckDBPyConnection) -> date | None:
    rows = con.execute("SELECT MAX(recorded_at) FROM raw_children").fetchall()
    value = rows[0][0] if rows else None
    return value if isinstance(value, date) else None


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def encode(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, FloatMatrix]:
    """Each outcome model's float matrix of ``frame`` (models with one encoding share one).

    Parameters
    ----------
    bundle : ModelBundle
        The champion.
    frame : DataFrame
        Features (every column of ``bundle.feature_names``).

    Returns
    -------
    dict of str to ndarray
        Per outcome; empty when the models have no float encoding (not tree models), in which
        case scoring takes the DataFrame path.
    """
    features = frame.loc[:, list(bundle.feature_names)]
    out: dict[str, FloatMatrix] = {}
    seen: list[tuple[Any, FloatMatrix]] = []
    for outcome, calibrated in bundle.models.items():
        model = calibrated.model
        booster = getattr(model, "booster_", None)
        encoder = getattr(model, "_matrix", None)
        if booster is None or encoder is None:
            return {}
        levels = getattr(model, "category_levels_", None)
        shared = next((m for key, m in seen if _same_levels(key, levels)), None)
        if shared is None:
            shared = np.ascontiguousarray(encoder(features), dtype=np.float64)
            seen.append((levels, shared))
        out[outcome] = shared
    return out


def _same_levels(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(list(a[k]) == list(b[k]) for k in a)
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        return len(a) == len(b) and all(_same_levels(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def capacity_bands(
    policy: TierPolicy, frame: pd.DataFrame, predicted: pd.DataFrame, township: pd.Series
) -> tuple[dict[str, AreaThresholds], list[Tier | None]]:
    """Each township's T2/T3 cut-offs and each row's model band, as a run would set them.

    The band comes from the capacity ranking itself, which breaks ties between equal scores
    by child id (an isotonic calibration maps many children to one probability): placing a
    tied score by its township's cut-off alone could put it a band higher than the run did.

    Parameters
    ----------
    policy : TierPolicy
        Capacity and thresholds.
    frame : DataFrame
        Features of every registered child.
    predicted : DataFrame
        ``ModelBundle.predict(frame)`` (``p_any``, ``p_low``, ``p_high``).
    township : Series
        Capacity area per row.

    Returns
    -------
    (dict of str to AreaThresholds, list of Tier or None)
        Per township, the cut-offs; per row, the model's band (``None`` without one).
    """
    if frame.empty:
        return {}, []
    tier_input = frame.assign(
        **{policy.capacity.area_column: township.to_numpy()},
        p_any=predicted["p_any"].to_numpy(),
        p_low=predicted["p_low"].to_numpy(),
        p_high=predicted["p_high"].to_numpy(),
    )
    tiers = assign_tiers(tier_input, policy, id_column="child_id")
    per_area = (
        pd.DataFrame(
            {
                "area": township.to_numpy(),
                "t2": tiers["threshold_t2"].to_numpy(dtype=np.float64),
                "t3": tiers["threshold_t3"].to_numpy(dtype=np.float64),
            }
        )
        .groupby("area", sort=False)
        .first()
    )
    thresholds = {
        str(area): AreaThresholds(_none_if_nan(row.t2), _none_if_nan(row.t3))
        for area, row in per_area.iterrows()
    }
    bands = [
        None
        if band is None or band is pd.NA or str(band) in ("", "nan", "None")
        else Tier(str(band))
        for band in tiers["model_tier"].astype(object).tolist()
    ]
    return thresholds, bands


def _none_if_nan(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _domain_bits(rows: pd.DataFrame, policy: TierPolicy) -> npt.NDArray[np.int64]:
    domains = list(policy.domains)
    bit = {name: 1 << i for i, name in enumerate(domains)}
    rule_domain = {rule.name: rule.domain for rule in policy.rules}
    out = np.zeros(len(rows), dtype=np.int64)
    for i, (reasons, fired) in enumerate(zip(rows["reasons"], rows["rules_fired"], strict=True)):
        mask = 0
        for reason in _items(reasons):
            if reason.get("direction") == "raises":
                mask |= bit.get(str(reason.get("domain")), 0)
        for label in _items(fired):
            mask |= bit.get(rule_domain.get(str(label).rsplit(":", 1)[-1], ""), 0)
        out[i] = mask
    return out


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    return list(value)


def build_board(rows: pd.DataFrame, policy: TierPolicy) -> Board:
    """Order a run for the watch list and index it by area.

    Parameters
    ----------
    rows : DataFrame
        The run's rows (:data:`_RUN_COLUMNS`).
    policy : TierPolicy
        The policy (its domains name the bits of ``domain_bits``).

    Returns
    -------
    Board
        Rows ordered by tier (T1 first), then calibrated risk (highest first), then child id.
    """
    if rows.empty:
        return Board.empty()
    level = rows["tier"].astype(str).str[1].astype(np.int64).to_numpy()
    risk = rows["p_any"].to_numpy(dtype=np.float64, na_value=np.nan)
    ids = rows["child_id"].astype(str).to_numpy()
    # lexsort: last key first. NaN risk (no model) sorts after every score within a tier.
    order = np.lexsort((ids, np.nan_to_num(-risk, nan=np.inf), level))
    ordered = rows.iloc[order].reset_index(drop=True)
    villages = ordered["village_code"].astype(object).to_numpy()
    by_area: dict[str, list[int]] = {}
    for pos, village in enumerate(villages):
        if not isinstance(village, str):
            continue
        for length in sorted(set(LEVEL_LENGTHS.values())):
            if len(village) >= length:
                by_area.setdefault(village[:length], []).append(pos)
    return Board(
        rows=ordered,
        tier_level=np.asarray(level[order], dtype=np.int64),
        p_any=risk[order],
        domain_bits=_domain_bits(ordered, policy),
        by_area={code: np.asarray(p, dtype=np.int64) for code, p in by_area.items()},
        row_of={child: i for i, child in enumerate(ordered["child_id"].astype(str))},
        states=_states(ordered),
        records=_records(ordered),
        ids=ordered["child_id"].astype(str).to_numpy(dtype=object),
    )


def _child_records(features: duckdb.DuckDBPyConnection, scores_db: Path) -> ChildRecords:
    """The child file's records from the feature store (open) and the score store."""
    if not scores_db.exists():
        return build_child_records(features, None)
    scores = _connect(scores_db, threads=1, memory_limit=None)
    try:
        return build_child_records(features, scores)
    finally:
        scores.close()


def build_snapshot(
    bundle: ModelBundle,
    policy: TierPolicy,
    *,
    model_version: int,
    store_path: Path,
    scores_db: Path,
    threads: int = 0,
    memory_limit: str | None = None,
) -> Snapshot:
    """Read the stores once and build what requests need (see the module docstring).

    Parameters
    ----------
    bundle : ModelBundle
        The champion.
    policy : TierPolicy
        The tier policy in force.
    model_version : int
        The champion's version (recorded with the snapshot).
    store_path, scores_db : Path
        The feature store and the score store.
    threads : int, default=0
        DuckDB threads (0: DuckDB's choice).
    memory_limit : str, optional
        DuckDB memory limit.

    Returns
    -------
    Snapshot
        Ready to serve.

    Raises
    ------
    StoreError
        If the feature store is missing, or busy with a writer.
    """
    from features.store import FeatureStore

    started = time.perf_counter()
    stamps = (StoreStamp.of(store_path), StoreStamp.of(scores_db))
    run, run_rows = read_run(scores_db)
    con = _connect(store_path, threads=threads, memory_limit=memory_limit)
    try:
        villages = _villages(con)
        areas = _areas(con)
        as_of = run.as_of if run is not None else _newest_record(con)
        frame = FeatureStore(con).build(as_of) if as_of is not None else pd.DataFrame()
        records = _child_records(con, scores_db)
    finally:
        con.close()
    frame = frame.reset_index(drop=True)
    if frame.empty:
        township = pd.Series([], dtype=object)
        matrices: dict[str, FloatMatrix] = {}
        thresholds: dict[str, AreaThresholds] = {}
        bands: list[Tier | None] = []
        predicted = pd.DataFrame(columns=list(bundle.score_columns), dtype=np.float64)
    else:
        township = capacity_areas(frame)
        matrices = encode(bundle, frame)
        # One batch pass for every row: the calibrated probabilities and their bootstrap band
        # are pure functions of the row, so a request reads them instead of evaluating 200
        # bootstrap maps for one number; the trees still run per request for the reasons.
        predicted = bundle.predict(frame)
        thresholds, bands = capacity_bands(policy, frame, predicted, township)
    snapshot = Snapshot(
        as_of=as_of,
        frame=frame,
        row_of={child: i for i, child in enumerate(frame.get("child_id", pd.Series()).astype(str))},
        matrices=matrices,
        predicted={c: predicted[c].to_numpy(dtype=np.float64) for c in predicted.columns},
        township=township.astype(object).to_numpy(),
        thresholds=thresholds,
        model_tiers=bands,
        run=run,
        board=build_board(run_rows, policy),
        villages=villages,
        areas=areas,
        stamps=stamps,
        model_version=model_version,
        records=records,
    )
    snapshot.seconds = round(time.perf_counter() - started, 3)
    logger.info(
        "snapshot built",
        extra={
            "as_of": None if as_of is None else as_of.isoformat(),
            "children": len(frame),
            "run": None if run is None else run.run_id,
            "seconds": snapshot.seconds,
        },
    )
    return snapshot


__all__ = [
    "Board",
    "BoardRecord",
    "RunInfo",
    "Snapshot",
    "StoreStamp",
    "build_board",
    "build_snapshot",
    "capacity_bands",
    "encode",
    "read_run",
]
