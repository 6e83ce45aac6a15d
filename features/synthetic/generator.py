"""``generate``: build the population, live through the months, deliver the ledgers.

Month by month: apply the scenario's shocks, advance the population (:func:`dynamics.step`),
compute the oracle at the month end, make the month's ledger rows, write the batch of rows
entered that month, and append the truth. Memory stays bounded by one month's rows plus
the late entries still waiting for their batch.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from features.synthetic.areas import build_areas
from features.synthetic.config import GENERATOR_VERSION, SynthConfig, streams
from features.synthetic.defects import DEFECT_KINDS, DefectInjector
from features.synthetic.dynamics import EpisodeBook, step
from features.synthetic.ledgers import LedgerBuilder
from features.synthetic.oracle import oracle
from features.synthetic.population import build_population
from features.synthetic.scenarios import plan_scenario
from features.synthetic.timeline import Timeline, from_day
from features.synthetic.truth import TruthWriter
from features.synthetic.writers import BatchWriter, Encoder

logger = logging.getLogger(__name__)


def generate(config: SynthConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Generate a synthetic population with hidden truth, as monthly ledger batches.

    Parameters
    ----------
    config
        What to generate (validated first).
    out
        Output folder: ``sources/YYYY-MM/`` batches, ``truth/`` and ``manifest.json``.
    progress
        Show a progress bar on stderr.

    Returns
    -------
    dict
        ``children`` (the configured first-day population), ``months``, ``batches`` (the
        ``YYYY-MM`` labels), ``rows`` (rows delivered per table), ``out``, plus
        ``children_total`` (everyone ever registered) and ``seconds``.

    Raises
    ------
    ValueError
        If the configuration is invalid (unknown scenario, ``scenario_start`` outside the
        period, ...).
    """
    config.validate()
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rngs = streams(config.seed)
    tl = Timeline(config)
    areas = build_areas(
        config.children, rngs["areas"], new_township=config.scenario == "new-township"
    )
    plan = plan_scenario(config, areas, tl, rngs["scenario"])
    pop = build_population(
        config.children,
        areas,
        tl,
        rngs["population"],
        rngs["entrants"],
        plan.county_entry_factor(config.months, len(areas.county_code)),
        plan.new_township_day,
    )
    book = EpisodeBook.empty(pop.n_children)
    builder = LedgerBuilder(pop, areas, tl, plan, rngs["ledgers"])
    injector = DefectInjector(rngs["defects"], pop.c_birth)
    writer = BatchWriter(
        out, config.fmt, tl, Encoder(pop, areas), injector, areas.village_typo, rngs["defects"]
    )
    truth = TruthWriter(out / "truth", pop, tl)
    logger.info(
        "synthetic population: %d children in %d households, %d villages",
        pop.n_children,
        pop.n_households,
        areas.n_villages,
    )

    months = tqdm(
        range(config.months), desc="synth", unit="month", file=sys.stderr, disable=not progress
    )
    # The oracle reads only the population's state, which nothing changes until the next
    # month's step, and draws no random numbers: it runs beside the ledger work of the same
    # month (numpy and Arrow release the GIL), with results independent of the timing.
    with ThreadPoolExecutor(max_workers=1) as pool:
        for m in months:
            mo = tl.months[m]
            plan.apply_month_start(pop, areas, m, rngs["scenario"], mo.start_day, mo.end_day)
            events = step(pop, book, tl, areas, m, rngs["dynamics"])
            pending = pool.submit(oracle, pop, book, tl, areas, m)
            ledgers = builder.month(m, events, book)
            writer.add(ledgers, m)
            writer.flush(m)
            truth.add_month(m, events, pending.result(), ledgers)
    truth_rows = truth.close(areas)

    counts = {kind: int(injector.counts.get(kind, 0)) for kind in DEFECT_KINDS}
    summary: dict[str, Any] = {
        "children": config.children,
        "months": config.months,
        "batches": writer.batches,
        "rows": dict(writer.rows),
        "out": str(out),
        "children_total": truth_rows["children"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "children": config.children,
        "children_total": truth_rows["children"],
        "households": int(pop.n_households),
        "months": config.months,
        "start": config.start.isoformat(),
        "end": from_day(tl.period_end_day).isoformat(),
        "format": config.fmt,
        "encoding": "gb18030" if config.fmt == "csv" else None,
        "scenario": config.scenario,
        "scenario_start": plan.describe(areas)["start"],
        "scenario_detail": plan.describe(areas),
        "areas": {
            "cities": len(areas.city_code),
            "counties": len(areas.county_code),
            "townships": len(areas.township_code),
            "villages": areas.n_villages,
            "schools": len(areas.school_code),
        },
        "batches": writer.batches,
        "files": writer.files,
        "rows": dict(writer.rows),
        "late_entries": dict(writer.late),
        "undelivered_after_end": dict(writer.undelivered),
        "defects": counts,
        "defects_by_table": {t: dict(c) for t, c in injector.by_table.items()},
        "wrong_encoding_files": writer.wrong_encoding,
        "truth": {"folder": "truth", "rows": truth_rows},
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2, default=_json_default), encoding="utf-8"
    )
    logger.info("synthetic population written to %s in %.1f s", out, summary["seconds"])
    return summary


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["generate"]
