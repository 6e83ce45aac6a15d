"""``shouhu models …``: train, evaluate, promote and score the risk models.

Command bodies are thin calls into the library. They read settings and pass plain values down;
MLflow and the policy loader are imported inside the commands so ``shouhu --help`` stays fast.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from models.registry import ModelRegistry
    from shouhu.settings import Settings

app = typer.Typer(help="Train, evaluate, promote and score the risk models.", no_args_is_help=True)


@app.callback()
def models() -> None:
    """Train, evaluate, promote and score the risk models."""
    # A callback keeps this a command group even while it holds one command, so the call is
    # `models promote VERSION` both alone and once composed into `shouhu`.


def _emit(payload: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        for key, value in payload.items():
            typer.echo(f"{key}: {value}", err=True)


def registry_from_settings(settings: Settings) -> ModelRegistry:
    """The model registry the settings point at (local under SHOUHU_HOME unless a URI is set).

    Parameters
    ----------
    settings : Settings
        The process's settings.

    Returns
    -------
    ModelRegistry
        Built from plain values; nothing is opened until it is used.
    """
    from models.registry import ModelRegistry

    local = settings.registry.tracking_uri is None
    return ModelRegistry(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        promotion_log=settings.promotion_log_path,
        model_name=settings.registry.model_name,
        experiment_name=settings.registry.experiment_name,
        artifact_location=settings.artifact_location,
        local_dir=settings.registry_dir if local else None,
    )


@app.command()
def promote(
    version: Annotated[int, typer.Argument(min=1, help="model version to make champion")],
    approver: Annotated[str, typer.Option(help="name of the person who approves the promotion")],
    reason: Annotated[str, typer.Option(help="why this version should score children")],
    policy: Annotated[
        Path | None,
        typer.Option(help="tier-policy file holding the pre-registered minimum (default policy)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Make VERSION the champion that scores children.

    Refused, with nothing changed, without an approver and a reason, when the version's
    training run failed the champion gate (it did not beat both the warning-sign count and
    the village ranker on precision at capacity in two time folds), or when its recorded test
    precision at capacity is below the tier policy's pre-registered minimum.
    The approver, reason and time are kept as model-version tags and in
    $SHOUHU_HOME/mlflow/promotions.jsonl.
    """
    from models.policy import load_policy
    from shouhu.settings import get_settings

    settings = get_settings()
    registry = registry_from_settings(settings)
    # The registry checks the champion gate and the pre-registered minimum itself.
    record = registry.promote(
        version,
        approver=approver,
        reason=reason,
        policy=load_policy(policy or settings.policy.file),
    )
    _emit(record.to_dict(), json_out)


def check_gate(registry: ModelRegistry, version: int) -> None:
    """Refuse, before anything changes, a version whose training run failed the champion gate.

    Parameters
    ----------
    registry : ModelRegistry
        The registry.
    version : int
        The version to promote.

    Raises
    ------
    PromotionRefusedError
        If the run recorded that the model did not beat both simple baselines on precision at
        capacity in enough time folds (``models.gate``).
    NotFoundError
        If the version does not exist.
    """
    from models.gate import check_champion_gate

    info = registry.version_info(version)
    tags = {} if info.run_id is None else dict(registry.client.get_run(info.run_id).data.tags)
    check_champion_gate(tags, version)


@app.command()
def train(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train on all matured history in the feature store and register a challenger.

    Fits one LightGBM model per outcome and a logistic scorecard, calibrates them on a later
    window of other households, evaluates on the latest matured window against the scorecard,
    a warning-sign count and a village ranker, runs the champion gate on rolling time folds,
    audits fairness, and logs it all with a model card ($SHOUHU_HOME/mlflow).
    """
    from models.train import train_from_settings
    from shouhu.settings import get_settings

    result = train_from_settings(get_settings())
    payload = result.to_dict()
    if json_out:
        _emit(payload, json_out)
        return
    any_metrics = result.test["any"].values()
    lines = [
        f"model_version: {payload['model_version']} ({payload['model_name']}, challenger)",
        f"test window: {result.split['windows']['test']}",
        f"roc_auc: {any_metrics['roc_auc']:.3f}  precision_at_capacity: "
        f"{any_metrics['precision_at_capacity']:.3f}  ece: {any_metrics['ece']:.4f}",
        f"gate: {result.gate.reason()}",
        f"tier mix (test window): {result.tier_mix}",
        f"seconds: {payload['seconds']}",
    ]
    for line in lines:
        typer.echo(line, err=True)


@app.command()
def evaluate(
    truth: Annotated[
        Path | None,
        typer.Option(help="truth folder of a synthetic population (DIR/truth): adds the oracle"),
    ] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="version to evaluate (default: the champion)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Test-window metrics of the champion (or --version), beside the oracle's with --truth."""
    from models.evaluate import evaluate_version
    from shouhu.settings import get_settings

    settings = get_settings()
    result = evaluate_version(
        registry_from_settings(settings),
        "champion" if version is None else version,
        truth_dir=truth,
        pseudonym_key=settings.pseudonym_key.get_secret_value(),
    )
    payload = result.to_dict()
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    report = settings.reports_dir / f"evaluation_v{result.version}.json"
    report.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    payload["report"] = str(report)
    _emit(payload, json_out)


@app.command()
def score(
    as_of: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="scoring date")],
    out: Annotated[
        Path | None, typer.Option(help="Parquet file (default: $SHOUHU_HOME/scores/…)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Score every child registered on --as-of with the champion and store tiers and reasons.

    Without a champion the hard and floor rules still tier the children they concern, and the
    output says that model tiers are missing. An input guard (stale ledgers, a jump in missing
    values, collapsed scores) stops the run with a named error and stores nothing.
    """
    from shouhu.settings import get_settings

    payload = score_from_settings(get_settings(), as_of.date(), out=out)
    _emit(payload, json_out)


def score_from_settings(
    settings: Settings,
    as_of: Any,
    *,
    out: Path | None = None,
    overrides: pd.DataFrame | None = None,
    confirmations: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Run and store one scoring run as ``shouhu models score`` does.

    Parameters
    ----------
    settings : Settings
        Data home, store, registry, policy and scoring settings.
    as_of : date
        The scoring date.
    out : Path, optional
        Parquet file to write (default under ``$SHOUHU_HOME/scores``).
    overrides, confirmations : DataFrame, optional
        The reviewers' overrides in force and fall confirmations (see
        :func:`models.scoring.score`); the models package cannot read the operational
        database, so ``shouhu weekly`` passes them in.

    Returns
    -------
    dict
        The run's summary (cli.md's ``--json`` object) with ``out``, guards and timing.
    """
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.policy import load_policy
    from models.scoring import ModelRef, ScoreStore
    from models.scoring import score as run_scoring

    policy = load_policy(settings.policy.file)
    registry = registry_from_settings(settings)
    champion = registry.champion_info()
    bundle = None if champion is None else registry.load_bundle(champion.version)
    scores_store = ScoreStore(settings.scores_db_path, settings.scores_dir)
    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        scores = run_scoring(
            as_of,
            bundle,
            policy,
            FeatureStore(con),
            scores_store.previous(as_of),
            overrides=overrides,
            confirmations=confirmations,
            model=None if champion is None else ModelRef(champion.name, champion.version),
            explain_tiers=settings.scoring.explain_tiers,
            explain_threads=settings.scoring.explain_threads or None,
        )
    finally:
        con.close()
    written = scores_store.save(scores, out=out)
    run = dict(scores.attrs["run"])
    run["out"] = str(written)
    run["scores_db"] = str(settings.scores_db_path)
    if champion is None:
        run["warning"] = (
            "no champion model: tiers come from the hard and floor rules only; model tiers "
            "are missing"
        )
    return run


__all__ = ["app", "check_gate", "registry_from_settings", "score_from_settings"]


@app.command()
def explain(
    child_id: Annotated[str, typer.Argument(help="the child's pseudonymous id (child_id)")],
    as_of: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="as-of date (default: today)")
    ] = None,
    lang: Annotated[str, typer.Option(help="language of the text and plot: zh or en")] = "zh",
    plot: Annotated[
        Path | None, typer.Option(help="also write the child's waterfall plot to this PNG file")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Why the champion scores a child as it does: reasons by domain, with their records.

    Shows the calibrated probability, every hard or floor rule that fires, and the model's top
    factors grouped by the four domains (身心健康, 学习生活, 家庭监护, 安全保护), each as a
    sentence with its direction and the ledger records (table, record id, file, row) behind it.
    An unknown child, or one with no file on the date, exits with code 6.
    """
    from shouhu.settings import get_settings

    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"--lang must be zh or en, not {lang!r}")
    day = as_of.date() if as_of is not None else datetime.now().date()
    payload = explain_from_settings(get_settings(), child_id, day, plot=plot, lang=lang)
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    from models.explain import render_text

    typer.echo(render_text(payload, "zh" if lang == "zh" else "en"))
    if plot is not None:
        typer.echo(f"plot: {payload['plot']} ({payload['plot_lang']})", err=True)


def explain_from_settings(
    settings: Settings,
    child_id: str,
    as_of: Any,
    *,
    plot: Path | None = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """Explain one child with the champion, as ``shouhu models explain`` does.

    Parameters
    ----------
    settings : Settings
        Data home, store, registry and policy settings.
    child_id : str
        The child's pseudonymous id.
    as_of : date
        The as-of date: features and evidence as known on it.
    plot : Path, optional
        Write the waterfall PNG there (``plot`` and ``plot_lang`` are added to the result).
    lang : {"zh", "en"}, default="zh"
        Language of the plot's labels.

    Returns
    -------
    dict
        :func:`models.explain.explain_child`'s explanation, with evidence and provenance.

    Raises
    ------
    NotFoundError
        If the child has no file recorded on or before ``as_of``, or there is no champion.
    """
    import pandas as pd

    from features.evidence import known_child
    from features.rawstore import connect
    from features.store import FeatureStore
    from models.explain import explain_child
    from models.plots import waterfall_png
    from models.policy import load_policy
    from models.registry import CHAMPION
    from shouhu.errors import NotFoundError

    con = connect(
        settings.store_path,
        read_only=True,
        threads=settings.store.threads,
        memory_limit=settings.store.memory_limit,
    )
    try:
        # Checked before the registry is touched: an unknown id answers at once.
        if not known_child(con, child_id, as_of):
            raise NotFoundError(f"child {child_id} has no file on or before {as_of.isoformat()}")
        registry = registry_from_settings(settings)
        champion = registry.version_info(CHAMPION)
        bundle = registry.load_bundle(champion.version)
        spine = pd.DataFrame({"child_id": [child_id], "as_of": [pd.Timestamp(as_of)]})
        frame = FeatureStore(con).as_of_frame(spine)
        explanation = explain_child(
            bundle,
            frame,
            con=con,
            model_name=champion.name,
            model_version=champion.version,
            policy=load_policy(settings.policy.file),
        )
    finally:
        con.close()
    if plot is not None:
        written, used = waterfall_png(explanation, plot, lang="zh" if lang == "zh" else "en")
        explanation["plot"] = str(written)
        explanation["plot_lang"] = used
    return explanation
