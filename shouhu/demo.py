"""``shouhu demo``: the whole pipeline on a synthetic population, under ``SHOUHU_HOME``.

Stages run in the one direction data flows: synthetic ledgers → ingest → features → train →
register → promote the first champion → score the latest as-of date → review tasks and alerts →
drift report → demo accounts → serve on 127.0.0.1. Each stage is idempotent,
so running the demo twice reuses what the first run built (the population is regenerated only
when its size or seed changes, and a model is trained only while there is no champion).
"""

from __future__ import annotations

import json
import logging
import shutil
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
    from features.synthetic.config import GENERATOR_VERSION

    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    return bool(
        meta.get("children") == children
        and meta.get("months") == months
        and meta.get("seed") == seed
        and meta.get("scenario") == "baseline"
        and meta.get("generator_version") == GENERATOR_VERSION
    )


def _clear_demo_home(settings: Settings) -> list[str]:
    """Remove what an older demo population left, so two populations never mix in one store.

    Only a home the demo built (its ``synthetic/manifest.json`` is there) is cleared; a home
    holding a feature store from anywhere else is refused, never touched.

    Returns
    -------
    list of str
        The names removed.

    Raises
    ------
    ConfigError
        If the home holds a feature store that the demo did not build.
    """
    from service.accounts import DEMO_ACCOUNTS_FILE
    from shouhu.errors import ConfigError

    home = settings.home
    if not (home / "synthetic" / "manifest.json").is_file():
        if settings.store_path.exists():
            raise ConfigError(
                f"{home} holds a feature store that `shouhu demo` did not build; run the demo "
                "with SHOUHU_HOME set to an empty folder"
            )
        return []
    service_db = home / "service.db"
    derived = [
        home / "synthetic",
        settings.store_path,
        home / "features",
        settings.scores_db_path,
        settings.scores_dir,
        settings.registry_dir,
        settings.reports_dir,
        settings.monitoring_dir,
        home / DEMO_ACCOUNTS_FILE,
        service_db,
        service_db.with_name("service.db-wal"),
        service_db.with_name("service.db-shm"),
    ]
    removed = []
    for path in derived:
        for target in (path, path.with_name(path.name + ".wal")):
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                continue
            removed.append(target.name)
    return removed


def run_demo(
    settings: Settings,
    *,
    children: int,
    months: int,
    seed: int,
    json_out: bool = False,
    serve: bool = False,
    port: int | None = None,
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
    serve
        Finally serve the API and pages on 127.0.0.1 (``port``, default the settings') until
        interrupted.
    port
        Port of the service.

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
        removed = _clear_demo_home(settings)
        if removed:
            logger.info("an older demo population was removed with what was built on it")
            summary["cleared"] = removed
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
        FeatureStore(con).refresh()
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

    summary.update(_models(settings))
    summary.update(_week(settings, as_of))
    summary["accounts"] = _accounts(settings)

    if json_out:
        typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        _print_summary(summary)
    if serve:
        from service.cli import run_server

        run_server(settings, host=settings.service.host, port=port or settings.service.port)
    return summary


def _week(settings: Settings, as_of: date) -> dict[str, Any]:
    """The week's run of ``shouhu weekly`` on ``as_of``: score with the reviews in force, open
    the review tasks and raise the alerts, write the drift report (``score``, ``review`` and
    ``drift`` of the summary)."""
    from shouhu.weekly import run_weekly

    done = run_weekly(settings, as_of)
    if done.error is not None:
        raise done.error
    return {key: done.summary[key] for key in ("score", "review", "drift")}


def _accounts(settings: Settings) -> dict[str, Any]:
    """Create (or keep) the demo accounts of cli.md and write $SHOUHU_HOME/demo-accounts.json."""
    from service.accounts import (
        DEMO_ACCOUNTS_FILE,
        demo_areas,
        ensure_demo_accounts,
        read_demo_accounts,
        write_demo_accounts,
    )
    from service.db.migrate import migrated_session

    path = settings.home / DEMO_ACCOUNTS_FILE
    with migrated_session(settings.service_database_url) as session:
        accounts = ensure_demo_accounts(
            session, demo_areas(settings.store_path), read_demo_accounts(path)
        )
    write_demo_accounts(path, accounts)
    return {"file": str(path), "users": [a.__dict__ for a in accounts]}


def _models(settings: Settings) -> dict[str, Any]:
    """Train and register a model and promote it as the first champion (unless one exists)."""
    from models.cli import registry_from_settings
    from models.policy import load_policy
    from models.train import train_from_settings
    from shouhu.errors import PromotionRefusedError

    out: dict[str, Any] = {}
    registry = registry_from_settings(settings)
    champion = registry.champion_info()
    started = time.perf_counter()
    if champion is None:
        result = train_from_settings(settings)
        payload = result.to_dict()
        test = result.test["any"].values()
        out["train"] = {
            "model_version": payload["model_version"],
            "roc_auc": round(test["roc_auc"], 4),
            "precision_at_capacity": round(test["precision_at_capacity"], 4),
            "ece": round(test["ece"], 4),
            "gate": result.gate.reason(),
            "tier_mix": result.tier_mix,
            "seconds": round(time.perf_counter() - started, 1),
        }
        version = int(payload["model_version"])
        try:
            # promote refuses a failed champion gate or a precision below the policy's minimum.
            record = registry.promote(
                version,
                approver="demo",
                reason="first champion of the demo, trained on the synthetic population",
                policy=load_policy(settings.policy.file),
            )
            out["promotion"] = record.to_dict()
        except PromotionRefusedError as exc:
            # The demo goes on: scoring without a champion still applies every rule.
            out["promotion"] = {"refused": exc.message}
    else:
        logger.info("champion version %d exists; reusing it", champion.version)
        out["train"] = {"model_version": champion.version, "reused_champion": True}
    return out


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
    train = summary.get("train", {})
    if train.get("reused_champion"):
        lines.append(f"  model: champion version {train['model_version']} reused")
    elif train:
        lines.append(
            f"  model: version {train['model_version']} trained, test ROC-AUC "
            f"{train['roc_auc']}, precision at capacity {train['precision_at_capacity']}, "
            f"ECE {train['ece']} ({train['seconds']} s); {train['gate']}"
        )
    promotion = summary.get("promotion")
    if promotion is not None:
        if "refused" in promotion:
            lines.append(f"  promotion refused: {promotion['refused']}")
        else:
            lines.append(f"  promoted version {promotion['version']} to champion (approver demo)")
    score = summary.get("score")
    if score is not None:
        tiers = ", ".join(f"{t} {n}" for t, n in score["tiers"].items())
        lines.append(
            f"  scored {score['children']} children as of {score['as_of']}: {tiers};"
            f" {score['hard_rule_hits']} hard-rule hits, {score['borderline']} borderline"
            f" → {score['out']} ({score['seconds']} s)"
        )
        if score.get("model_tiers_missing"):
            lines.append("  model tiers are missing: no champion, rules only")
    review = summary.get("review")
    if review is not None:
        lines.append(
            f"  review: {review['tasks_opened']} tasks opened for {review['children']} children,"
            f" {review['alerts_raised']} alerts raised ({review['seconds']} s)"
        )
    drift = summary.get("drift")
    if drift is not None:
        lines.append(
            f"  drift report: alarm {drift['alarm']}, share of features drifted"
            f" {drift['share_drifted']} → {drift['report']} ({drift['seconds']} s)"
        )
    accounts = summary.get("accounts")
    if accounts is not None:
        lines.append(f"  demo accounts ({accounts['file']}):")
        lines.extend(
            f"    {a['username']:<13} {a['password']:<18} {a['role']:<11} area {a['area_code']}"
            for a in accounts["users"]
        )
    for line in lines:
        typer.echo(line, err=True)


__all__ = ["run_demo"]
