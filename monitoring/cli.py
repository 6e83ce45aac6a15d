"""``shouhu monitoring …``: drift and data-quality reports, re-evaluation and its approval.

Command bodies are thin calls into the library; they read settings and pass plain values down.
Evidently is imported inside the library functions, so ``shouhu --help`` stays fast.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Drift, data quality and quarterly re-evaluation of the risk model.",
    no_args_is_help=True,
)


@app.callback()
def monitoring() -> None:
    """Drift, data quality and quarterly re-evaluation of the risk model."""
    # A callback keeps this a command group whatever the number of commands.


def _print_drift(summary: dict[str, Any]) -> None:
    typer.echo(f"alarm: {summary['alarm']}", err=True)
    typer.echo(f"reference: {summary['reference']}  current: {summary['current']}", err=True)
    typer.echo(
        f"drifted features: {len(summary['drifted_features'])} "
        f"({summary['share_drifted']:.0%}); dataset drift: {summary['dataset_drift']}",
        err=True,
    )
    typer.echo(f"prediction drift: {summary['prediction_drift']}", err=True)
    for reason in summary["reasons"]:
        typer.echo(f"  ! [{reason['scope']}] {reason['message']}", err=True)
    typer.echo(f"report: {summary['report']}", err=True)
    sent = summary.get("webhook")
    if sent is not None:
        outcome = "delivered" if sent["delivered"] else f"NOT delivered ({sent['error']})"
        typer.echo(f"alarm to the webhook: {outcome} after {sent['attempts']} attempt(s)", err=True)


@app.command()
def drift(
    current: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="the date under review")],
    reference: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="the date compared against (default: the same season a year earlier)",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="report folder (default: a new folder under $SHOUHU_HOME/monitoring)"),
    ] = None,
    deliver: Annotated[bool, typer.Option(help="POST an alarm to the configured webhook")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Feature drift, prediction drift, tier mix and data quality of --current against
    --reference, overall and per area; writes an HTML report and a JSON summary.

    alarm is true when any check crossed a threshold of the tier policy's monitoring section;
    it is then also POSTed, signed, to the configured webhook (SHOUHU_SERVICE__WEBHOOK_URL).
    Without a model or scores for both dates, prediction drift and tier mix are reported as
    absent (null).
    """
    from monitoring.drift import drift_from_settings
    from shouhu.settings import get_settings

    summary = drift_from_settings(
        get_settings(),
        None if reference is None else reference.date(),
        current.date(),
        out=out,
        deliver=deliver,
    )
    if json_out:
        typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        _print_drift(summary)


@app.command()
def performance(
    horizon_days: Annotated[
        int | None, typer.Option(min=1, help="days each run looks ahead (default: training's)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Realised performance of the stored scoring runs whose 90-day outcomes have matured.

    Per quarter and per township: ROC-AUC, precision and recall at capacity, calibration, and
    the adverse events of children who were not in T1-T2 (missed cases), with the trend.
    Outcomes are those the ledgers recorded. Writes $SHOUHU_HOME/monitoring/performance/.
    """
    from monitoring.realised import performance_from_settings
    from shouhu.settings import get_settings

    payload = performance_from_settings(get_settings(), horizon_days=horizon_days)
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    runs = payload["runs"]
    typer.echo(
        f"runs: {runs['stored']} stored, {runs['matured']} matured, {runs['pending']} pending",
        err=True,
    )
    for q in payload["quarters"]:
        typer.echo(
            f"{q['quarter']}: auc {q['auc']}  precision@capacity {q['precision_at_capacity']}  "
            f"recall T1-T2 {q['recall_t1_t2']}  missed {q['missed']} of {q['events']} events",
            err=True,
        )
    typer.echo(f"report: {payload['report']}", err=True)


@app.command()
def reevaluate(
    quarter: Annotated[str, typer.Option(help="the quarter to evaluate on, e.g. 2025Q3")],
    note: Annotated[
        Path | None,
        typer.Option(help="a supervisor's signed note (YAML) accepting fairness flags"),
    ] = None,
    challenger: Annotated[
        int | None,
        typer.Option(min=1, help="re-evaluate this registered version instead of training one"),
    ] = None,
    backtest: Annotated[int, typer.Option(min=0, help="earlier quarters to backtest")] = 2,
    resamples: Annotated[
        int | None,
        typer.Option(min=10, help="bootstrap resamples of the intervals (default: training's)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Champion against a challenger trained on everything known before --quarter.

    Both are measured on the quarter (discrimination, calibration, precision at capacity,
    FNR/FOR parity first, tier stability) and on earlier quarters; the HTML and Markdown
    report under $SHOUHU_HOME/monitoring/reevaluation/<quarter>/ recommends promote or keep
    with its reasons. Promotion stays a person's decision (`shouhu models promote`).
    """
    from monitoring.quarters import Quarter
    from monitoring.reevaluation import reevaluate_from_settings
    from shouhu.settings import get_settings

    try:
        period = Quarter.parse(quarter)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--quarter") from exc
    payload = reevaluate_from_settings(
        get_settings(),
        period,
        note_file=note,
        challenger_version=challenger,
        backtest_quarters=backtest,
        n_resamples=resamples,
    )
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    typer.echo(f"recommendation: {payload['recommendation']}", err=True)
    for reason in payload["reasons"]:
        typer.echo(f"  {reason}", err=True)
    typer.echo(f"report: {payload['report']}", err=True)


@app.command()
def approve(
    version: Annotated[int, typer.Argument(min=1, help="the re-evaluated challenger to promote")],
    approver: Annotated[str, typer.Option(help="name of the supervisor who approves")],
    reason: Annotated[str, typer.Option(help="why this version should score children")],
    quarter: Annotated[
        str | None,
        typer.Option(help="the re-evaluation approved (default: the newest about VERSION)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """A supervisor's approval of a re-evaluation's challenger: promote it, with a reason.

    Refused, with nothing changed, unless the re-evaluation recommends promote (a fairness
    block needs a supervisor's signed note first), its signed note is unchanged, the champion
    is the one it was compared with, and the registry's champion gate and pre-registered
    minimum precision hold. The approval is kept in the registry (tags, promotions.jsonl) and
    in $SHOUHU_HOME/monitoring/approvals.jsonl; the web pages offer the same at
    /promotion/<quarter>.
    """
    from monitoring.reevaluation import approve_from_settings
    from shouhu.settings import get_settings

    entry = approve_from_settings(get_settings(), version, approver, reason, quarter=quarter)
    if json_out:
        typer.echo(json.dumps(entry, ensure_ascii=False, default=str))
        return
    typer.echo(
        f"version {entry['version']} is champion (was {entry['previous_champion']}), approved "
        f"by {entry['approver']} on the re-evaluation of {entry['reevaluation']['quarter']}",
        err=True,
    )


__all__ = ["app"]
