"""``shouhu demo``: the whole pipeline on a synthetic population, under ``SHOUHU_HOME``.

Stages run in the one direction data flows: synthetic ledgers → ingest → features. Each stage
is idempotent, so running the demo twice reuses what the first run built (the population is
regenerated only when its size or seed changes).
"""

from __future__ import annotations

import json
import logging
import time
from calendar import monthrange
from datetime import date
from pathlib import Path
from typing import Any

import typer

from shouhu.settings import Settings

logger = logging.getLogger(__name__)


def last_month_end(start: date, months: int) -> date:
    """The last day of the ``months``-th month counted from ``start`` (inclusive)."""
    year = start.year + (start.month - 1 + months - 1) // 12
    month = (start.month - 1 + months - 1) % 12 + 1
    return date(year, month, monthrange(year, month)[1])


def _population_is_current(out: Path, children: int, months: int, seed: int) -> bool:
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    return bool(
        meta.get("children") == children
        and meta.get("months") == months
        and meta.get("seed") == seed
        and meta.get("scenario") == "baseline"
    )


def run_demo(
    settings: Settings, *, children: int, months: int, seed: int, json_out: bool = False
) -> dict[str, Any]:
    """Run every stage of the demo and report what each produced.

    Parameters
    ----------
    settings
        The process settings (data home, pseudonym key, store limits).
    children, months, seed
        Size and seed of the synthetic population.
    json_out
        Print one JSON object on stdout instead of a readable summary on stderr.

    Returns
    -------
    dict
        The summary that was printed.
    """
    from features.ingest import ingest_paths
    from features.mapping import load_mapping
    from features.rawstore import connect
    from features.store import FeatureStore
    from features.synthetic import SynthConfig, generate

    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    synth_dir = home / "synthetic"
    config = SynthConfig(children=children, months=months, seed=seed)
    summary: dict[str, Any] = {"home": str(home)}

    started = time.perf_counter()
    if _population_is_current(synth_dir, children, months, seed):
        logger.info("synthetic population is current, reusing %s", synth_dir)
        summary["synth"] = json.loads((synth_dir / "manifest.json").read_text(encoding="utf-8"))
    else:
        summary["synth"] = generate(config, synth_dir, progress=not json_out)
    summary["synth_seconds"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    con = connect(
        settings.store_path,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        ingested = ingest_paths(
            con,
            [synth_dir / "sources"],
            mapping=load_mapping(settings.ingest.mapping_file),
            key=settings.pseudonym_key.get_secret_value(),
            max_future_days=settings.ingest.max_future_days,
            progress=not json_out,
        )
        summary["ingest"] = ingested.as_dict()
        summary["ingest_seconds"] = round(time.perf_counter() - started, 1)

        as_of = last_month_end(config.start, months)
        started = time.perf_counter()
        frame = FeatureStore(con).build(as_of)
        features_dir = home / "features"
        features_dir.mkdir(exist_ok=True)
        out = features_dir / f"features_{as_of.isoformat()}.parquet"
        frame.to_parquet(out, index=False)
        summary["features"] = {
            "as_of": as_of.isoformat(),
            "children": len(frame),
            "columns": int(frame.shape[1]),
            "out": str(out),
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        con.close()

    if json_out:
        typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        _print_summary(summary)
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    synth = summary["synth"]
    ingest = summary["ingest"]
    feats = summary["features"]
    lines = [
        f"Shouhu demo — data home {summary['home']}",
        f"  synthetic population: {synth.get('children')} children × {synth.get('months')} months,"
        f" {sum(synth.get('rows', {}).values())} ledger rows ({summary['synth_seconds']} s)",
        f"  ingest: {ingest['files']} files, {sum(ingest['accepted'].values())} rows accepted,"
        f" {sum(ingest['rejected'].values())} rejected with reasons,"
        f" {ingest['duplicates_skipped']} duplicates skipped ({summary['ingest_seconds']} s)",
        f"  features as of {feats['as_of']}: {feats['children']} registered children,"
        f" {feats['columns']} columns → {feats['out']} ({feats['seconds']} s)",
    ]
    for line in lines:
        typer.echo(line, err=True)


__all__ = ["run_demo"]
