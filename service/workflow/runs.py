"""Read a scoring run and the one before it from the score store, for tasks and alerts.

The score store (``$SHOUHU_HOME/scores.duckdb``, written by ``models.scoring.ScoreStore``) is
opened read-only. "The previous run" is the newest run of the latest scoring date before the
run's date, as the scoring's own hysteresis reads it (``ScoreStore.previous``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from shouhu.errors import NotFoundError, StoreError

#: Columns read for each child of a run (``override_id`` where the store has it).
RUN_COLUMNS: tuple[str, ...] = (
    "child_id",
    "village_code",
    "township_code",
    "tier",
    "rules_fired",
    "reasons",
    "hard_rule_t1",
    "awaiting_confirmation",
    "run_id",
    "as_of",
    "scored_at",
    "policy_version",
    "model_version",
    "override_id",
)


def _plain(value: Any) -> Any:
    """DuckDB lists and structs as Python lists and dicts (pandas may hand numpy arrays)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _plain(value.tolist())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _frame(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    # Stores written before overrides reached the scoring run have no ``override_id``.
    stored = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE scores)").fetchall()}
    columns = ", ".join(c for c in RUN_COLUMNS if c in stored)
    frame: pd.DataFrame = con.execute(
        f"SELECT {columns} FROM scores WHERE run_id = ? ORDER BY child_id", [run_id]
    ).df()
    for column in ("rules_fired", "reasons"):
        frame[column] = [_plain(v) if v is not None else [] for v in frame[column]]
    return frame


def load_runs(
    scores_db: Path, run_id: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A scoring run (the newest by default) and the run before it.

    Parameters
    ----------
    scores_db : Path
        The score store.
    run_id : str, optional
        The run; the newest stored run when ``None``.

    Returns
    -------
    tuple
        The run's rows (:data:`RUN_COLUMNS`) and the previous run's (``None`` without one).

    Raises
    ------
    StoreError
        If the score store does not exist or holds no run.
    NotFoundError
        If ``run_id`` is not a stored run.
    """
    if not Path(scores_db).is_file():
        raise StoreError(f"{scores_db}: no score store; run `shouhu models score` first")
    con = duckdb.connect(str(scores_db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "scoring_runs" not in tables:
            raise StoreError(f"{scores_db}: no scoring run is stored")
        if run_id is None:
            row = con.execute(
                "SELECT run_id, as_of FROM scoring_runs ORDER BY scored_at DESC LIMIT 1"
            ).fetchone()
        else:
            row = con.execute(
                "SELECT run_id, as_of FROM scoring_runs WHERE run_id = ?", [run_id]
            ).fetchone()
        if row is None:
            if run_id is None:
                raise StoreError(f"{scores_db}: no scoring run is stored")
            raise NotFoundError(f"scoring run {run_id} not found")
        current_id, as_of = str(row[0]), row[1]
        before = con.execute(
            "SELECT run_id FROM scoring_runs WHERE as_of < ? "
            "ORDER BY as_of DESC, scored_at DESC LIMIT 1",
            [as_of],
        ).fetchone()
        current = _frame(con, current_id)
        previous = None if before is None else _frame(con, str(before[0]))
    finally:
        con.close()
    return current, previous


__all__ = ["RUN_COLUMNS", "load_runs"]
