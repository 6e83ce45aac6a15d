"""Every query the store and the labels generate transpiles to Spark and Trino with SQLGlot."""

from __future__ import annotations

from datetime import date

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from features.labels import outcome_sql, visits_sql
from features.sql import SUPERSEDED_TABLE
from features.store import FeatureStore


def _queries() -> dict[str, str]:
    import duckdb

    queries = FeatureStore(duckdb.connect()).queries()
    superseded = {
        t: SUPERSEDED_TABLE.format(source=t)
        for t in ("incidents", "school_events", "enrolments", "guardianship", "screenings")
    }
    for known_by in (None, date(2025, 1, 1)):
        queries[f"labels:outcomes:{known_by}"] = outcome_sql(superseded, known_by)
        queries[f"labels:visits:{known_by}"] = visits_sql("_pit_superseded_visits", known_by)
    return queries


QUERIES = _queries()


@pytest.mark.parametrize("dialect", ["spark", "trino"])
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_generated_sql_transpiles(name: str, dialect: str) -> None:
    out = sqlglot.transpile(
        QUERIES[name], read="duckdb", write=dialect, unsupported_level=ErrorLevel.RAISE
    )
    assert len(out) == 1 and out[0].upper().startswith(("WITH", "SELECT"))


def test_latest_values_rank_by_event_then_recorded_then_seq() -> None:
    visits = QUERIES["view:guardianship"]
    assert "ORDER BY change_date DESC, recorded_at DESC, _seq DESC" in visits
    assert "QUALIFY ROW_NUMBER() OVER" in visits
    spark = sqlglot.transpile(visits, read="duckdb", write="spark")[0]
    assert "QUALIFY" not in spark.upper()  # rewritten as a filtered subquery for Spark
