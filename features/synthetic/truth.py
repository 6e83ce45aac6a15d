"""The hidden truth, written apart from the ledgers under ``out/truth/``.

``risk.parquet``      per registered child and month end: the oracle's 90-day probabilities
``outcomes.parquet``  every true outcome event, whether and where a ledger recorded it
``events.parquet``    other true events: accidental injuries, registry exits
``children.parquet``  static and latent attributes of every registered child
``schools.parquet``   the schools behind the school codes; ``villages.parquet`` village habits

Nothing in ``features/`` (except this package) or ``models/`` training code may read these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.synthetic import codes
from features.synthetic.areas import Areas
from features.synthetic.dynamics import MonthEvents
from features.synthetic.hazards import COMPONENTS, DOMAIN_NAMES, DOMAINS
from features.synthetic.ledgers import MonthLedgers
from features.synthetic.oracle import OracleResult
from features.synthetic.population import NA_DAY, NEVER, Population
from features.synthetic.timeline import Timeline

IntArray = npt.NDArray[np.int64]

RISK_COLUMNS = (
    "p_serious_harm",
    "p_dropout",
    "p_guardianship_breakdown",
    "p_mental_health",
    "p_any",
)
_RISK_SCHEMA = pa.schema(
    [("id_number", pa.string()), ("as_of", pa.date32())] + [(c, pa.float32()) for c in RISK_COLUMNS]
)
_EXIT_NAMES = {
    codes.EXIT_PARENTS_RETURNED: "parents_returned",
    codes.EXIT_AGED_OUT: "aged_out",
    codes.EXIT_MOVED: "moved",
    codes.EXIT_OTHER: "other",
}
#: How long after an episode's onset its suspected-dropout row can be dated.
_SUSPECT_WINDOW = 60


def _dates(days: IntArray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), mask=(days == NA_DAY) | (days >= NEVER)).cast(
        pa.date32()
    )


class TruthWriter:
    """Collects the truth month by month and writes it at the end."""

    def __init__(self, folder: Path, pop: Population, tl: Timeline) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.pop, self.tl = folder, pop, tl
        self.ids = pa.array(pop.c_id.tolist(), pa.string())
        self.risk = pq.ParquetWriter(
            folder / "risk.parquet", _RISK_SCHEMA, compression="zstd", compression_level=1
        )
        self.risk_rows = 0
        self.outcomes: list[dict[str, Any]] = []
        self.injuries: list[dict[str, Any]] = []
        self.exits: list[dict[str, Any]] = []
        self.suspected: list[tuple[IntArray, IntArray, IntArray, IntArray]] = []

    def add_month(
        self, m: int, ev: MonthEvents, result: OracleResult, ledgers: MonthLedgers
    ) -> None:
        """Record month ``m``'s oracle probabilities, outcomes and events."""
        as_of = np.full(len(result.children), self.tl.months[m].end_day, dtype=np.int64)
        columns = [pc.take(self.ids, pa.array(result.children)), _dates(as_of)]
        for domain in (*DOMAINS, "any"):
            columns.append(pa.array(result.p[domain].astype(np.float32)))
        self.risk.write_table(pa.Table.from_arrays(columns, schema=_RISK_SCHEMA))
        self.risk_rows += len(result.children)
        links = ledgers.outcomes
        comp_domain = np.asarray([DOMAIN_NAMES[c.domain] for c in COMPONENTS], dtype=object)
        if links is not None:
            self.outcomes.append(
                {
                    "child": ev.out_child,
                    "domain": comp_domain[ev.out_component],
                    "kind": np.asarray(links.kind, dtype=object),
                    "day": ev.out_day,
                    "fatal": ev.out_fatal,
                    "recorded": links.recorded,
                    "table": np.asarray(links.table, dtype=object),
                    "record_id": np.asarray(links.record_id, dtype=object),
                    "rec_day": links.rec_day,
                }
            )
        if ledgers.injuries is not None:
            self.injuries.append(
                {
                    "child": ev.injury_child,
                    "day": ev.injury_day,
                    "recorded": ledgers.injuries.recorded,
                    "record_id": np.asarray(ledgers.injuries.record_id, dtype=object),
                }
            )
        self.exits.append({"child": ev.exit_child, "day": ev.exit_day, "reason": ev.exit_reason})
        self.suspected.extend(ledgers.suspected)

    def _outcomes_table(self) -> pa.Table:
        parts = self.outcomes
        if not parts:
            return pa.table({})
        col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        end = self.tl.period_end_day
        dropout = col["domain"] == DOMAIN_NAMES["dropout"]
        if self.suspected and dropout.any():
            s_child = np.concatenate([s[0] for s in self.suspected])
            s_day = np.concatenate([s[1] for s in self.suspected])
            s_id = np.concatenate([s[2] for s in self.suspected])
            s_rec = np.concatenate([s[3] for s in self.suspected])
            key = s_child * 10**7 + (s_day - s_day.min())
            order = np.argsort(key)
            key, s_id, s_rec, s_day, s_child = (
                a[order] for a in (key, s_id, s_rec, s_day, s_child)
            )
            where = np.flatnonzero(dropout)
            o_key = col["child"][where] * 10**7 + (col["day"][where] - s_day.min())
            pos = np.minimum(np.searchsorted(key, o_key), len(key) - 1)
            match = (
                (s_child[pos] == col["child"][where])
                & (s_day[pos] >= col["day"][where])
                & (s_day[pos] <= col["day"][where] + _SUSPECT_WINDOW)
            )
            hit = where[match]
            col["recorded"][hit] = True
            col["rec_day"][hit] = s_rec[pos[match]]
            col["table"][hit] = "school_events"
            col["record_id"][hit] = [f"KB{int(v)}" for v in s_id[pos[match]]]
        delivered = col["recorded"] & (col["rec_day"] <= end)
        table = col["table"].copy()
        table[~delivered] = None
        record_id = col["record_id"].copy()
        record_id[~delivered] = None
        order = np.lexsort((col["kind"].astype(str), col["day"], col["child"]))
        return pa.table(
            {
                "id_number": pc.take(self.ids, pa.array(col["child"][order])),
                "domain": pa.array(col["domain"][order].tolist(), pa.string()),
                "kind": pa.array(col["kind"][order].tolist(), pa.string()),
                "event_date": _dates(col["day"][order]),
                "fatal": pa.array(col["fatal"][order]),
                "recorded": pa.array(delivered[order]),
                "record_table": pa.array(table[order].tolist(), pa.string()),
                "record_id": pa.array(record_id[order].tolist(), pa.string()),
                "recorded_at": _dates(np.where(delivered, col["rec_day"], NA_DAY)[order]),
            }
        )

    def _events_table(self) -> pa.Table:
        inj = self.injuries
        ex = self.exits
        child = np.concatenate([p["child"] for p in inj] + [p["child"] for p in ex])
        day = np.concatenate([p["day"] for p in inj] + [p["day"] for p in ex])
        kind = ["accidental_injury"] * sum(len(p["child"]) for p in inj) + [
            f"exit:{_EXIT_NAMES.get(int(r), 'other')}" for p in ex for r in p["reason"]
        ]
        recorded = np.concatenate(
            [p["recorded"] for p in inj] + [np.ones(len(p["child"]), dtype=bool) for p in ex]
        )
        record_id = [v or None for p in inj for v in p["record_id"].tolist()] + [None] * sum(
            len(p["child"]) for p in ex
        )
        order = np.lexsort((day, child))
        return pa.table(
            {
                "id_number": pc.take(self.ids, pa.array(child[order])),
                "kind": pa.array([kind[i] for i in order], pa.string()),
                "event_date": _dates(day[order]),
                "recorded": pa.array(recorded[order]),
                "record_id": pa.array([record_id[i] for i in order], pa.string()),
            }
        )

    def _children_table(self, areas: Areas) -> pa.Table:
        pop = self.pop
        idx = np.flatnonzero(pop.c_reg_rec < NEVER)
        hh = pop.c_hh[idx]
        village = pop.hh_village[hh]
        township = areas.village_township[village]
        group = np.asarray(["first_day", "new_registration", "new_township"], dtype=object)
        exit_reason = [
            None if r < 0 else _EXIT_NAMES.get(int(r), "other") for r in pop.c_exit_reason[idx]
        ]
        return pa.table(
            {
                "id_number": pc.take(self.ids, pa.array(idx)),
                "household_no": pa.array(pop.hh_no[hh].tolist(), pa.string()),
                "village_code": pa.array(areas.village_code[village].tolist(), pa.string()),
                "township_code": pa.array(areas.township_code[township].tolist(), pa.string()),
                "county_code": pa.array(
                    areas.county_code[areas.township_county[township]].tolist(), pa.string()
                ),
                "sex": pa.array(np.where(pop.c_male[idx], "male", "female").tolist(), pa.string()),
                "birth_date": _dates(pop.c_birth[idx]),
                "group": pa.array(group[pop.c_group[idx]].tolist(), pa.string()),
                "entry_date": _dates(np.maximum(pop.c_entry[idx], self.tl.first_day)),
                "exit_date": _dates(pop.c_exit[idx]),
                "exit_reason": pa.array(exit_reason, pa.string()),
                "frailty_common": pa.array(pop.c_zc[idx].astype(np.float32)),
                "frailty_harm": pa.array(pop.c_zh[idx].astype(np.float32)),
                "frailty_dropout": pa.array(pop.c_zd[idx].astype(np.float32)),
                "frailty_mental": pa.array(pop.c_zm[idx].astype(np.float32)),
                "ability": pa.array(pop.c_ability[idx].astype(np.float32)),
                "stress_mean": pa.array(pop.c_mu_x[idx].astype(np.float32)),
                "household_hardship": pa.array(pop.hh_hardship[hh].astype(np.float32)),
            }
        )

    def close(self, areas: Areas) -> dict[str, int]:
        """Write the remaining files; return their row counts."""
        self.risk.close()
        outcomes = self._outcomes_table()
        pq.write_table(outcomes, self.folder / "outcomes.parquet", compression="zstd")
        events = self._events_table()
        pq.write_table(events, self.folder / "events.parquet", compression="zstd")
        children = self._children_table(areas)
        pq.write_table(children, self.folder / "children.parquet", compression="zstd")
        kinds = np.asarray(["primary", "middle", "senior_high"])
        pq.write_table(
            pa.table(
                {
                    "school_code": areas.school_code.tolist(),
                    "school_name": areas.school_name.tolist(),
                    "kind": kinds[areas.school_kind].tolist(),
                    "county_code": areas.county_code[areas.school_county].tolist(),
                    "boarding_share": areas.school_boarding.astype(np.float32),
                }
            ),
            self.folder / "schools.parquet",
        )
        pq.write_table(
            pa.table(
                {
                    "village_code": areas.village_code.tolist(),
                    "township_code": areas.township_code[areas.village_township].tolist(),
                    "visit_compliance": areas.village_compliance.astype(np.float32),
                    "batch_entry": areas.village_batch_entry,
                    "lag_median_days": areas.village_lag_median.astype(np.float32),
                    "near_water": areas.village_water,
                    "defect_multiplier": areas.village_typo.astype(np.float32),
                    "recording_quality": areas.village_quality.astype(np.float32),
                }
            ),
            self.folder / "villages.parquet",
        )
        return {
            "risk": self.risk_rows,
            "outcomes": outcomes.num_rows,
            "events": events.num_rows,
            "children": children.num_rows,
        }


__all__ = ["RISK_COLUMNS", "TruthWriter"]
