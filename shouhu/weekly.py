"""``shouhu weekly --as-of DATE``: what a week needs, in order, above the models and the service.

The tier policy re-scores every child each week, and a scoring run must take what people
decided since the last one: a supervisor's override in force, a caseworker's confirmation of a
fall the engine held, a supervisor's closing of a hard-rule T1. ``models`` may not read the
operational database (the layers of ``docs/architecture.md``), so this module, above both,
runs the week:

1. **reviews**: the overrides in force and the fall confirmations made since the run the new
   one continues from, read from the operational database
   (:func:`service.workflow.reviews.overrides_for_scoring`,
   :func:`~service.workflow.reviews.confirmations_for_scoring`);
2. **score** every child registered on the date with them and store the run
   (:func:`models.scoring.score`): an override never goes below a floor or a hard rule, a
   confirmed fall takes effect, an unconfirmed one waits; each row names the override and
   the confirmation it took;
3. **review after-run**: tasks for changed tiers and the early-warning alerts, sent to the
   webhook when one is configured (:func:`service.workflow.cli.after_run_from_settings`);
4. **drift**: drift and data quality of the date against the same season a year earlier
   (:func:`monitoring.drift.drift_from_settings`).

A failure in the first two steps stops the week with its error and stores nothing (the input
guards of a scoring run, a missing store). A failure after the run is stored is reported with
the summary of what was done, then the command exits with that error's code
(``shouhu/errors.py``), so a scheduler sees it and the step can be re-run on its own
(``shouhu review after-run --run-id``, ``shouhu monitoring drift``). A drift alarm is a finding,
not an error: the exit code stays 0 and the summary says ``alarm``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shouhu.errors import ShouhuError

if TYPE_CHECKING:
    import pandas as pd

    from shouhu.settings import Settings

logger = logging.getLogger(__name__)

#: Drift reasons printed on the terminal (per-area reasons can run to hundreds; the report and
#: the ``--json`` object have them all).
_REASONS_SHOWN = 10


@dataclass(frozen=True)
class Reviews:
    """What people decided that the next scoring run takes.

    Attributes
    ----------
    overrides : DataFrame
        The overrides in force (``models.scoring.OVERRIDE_COLUMNS`` and ``override_id``).
    confirmations : DataFrame
        Fall confirmations since ``since`` (``child_id``, ``confirmed_by``,
        ``confirmation_id``).
    previous_run_id : str or None
        The run the new one continues from.
    since : datetime or None
        When that run was made: confirmations after it count.
    """

    overrides: pd.DataFrame
    confirmations: pd.DataFrame
    previous_run_id: str | None
    since: datetime | None


def read_reviews(settings: Settings, as_of: date) -> Reviews:
    """The overrides in force and the confirmations a scoring run of ``as_of`` takes.

    Parameters
    ----------
    settings : Settings
        The score store and the operational database.
    as_of : date
        The date about to be scored.

    Returns
    -------
    Reviews
    """
    from models.scoring import ScoreStore
    from service.db.migrate import migrated_session
    from service.workflow.reviews import confirmations_for_scoring, overrides_for_scoring

    previous = ScoreStore(settings.scores_db_path, settings.scores_dir).previous_run(as_of)
    since = None if previous is None else previous.scored_at
    with migrated_session(settings.service_database_url) as session:
        overrides = overrides_for_scoring(session)
        confirmations = confirmations_for_scoring(session, since)
    return Reviews(
        overrides=overrides,
        confirmations=confirmations,
        previous_run_id=None if previous is None else previous.run_id,
        since=since,
    )


def score_with_reviews(settings: Settings, as_of: date) -> dict[str, Any]:
    """Score ``as_of`` with the champion and the reviews in force, and store the run.

    This is ``shouhu models score`` (``models.cli.score_from_settings``) plus the people's
    part, which the models package cannot read itself.

    Parameters
    ----------
    settings : Settings
        Data home, store, registry, policy, scoring and operational-database settings.
    as_of : date
        The scoring date.

    Returns
    -------
    dict
        The run's summary (``shouhu models score --json``'s object) with ``reviews`` (what
        was read and how much of it matched a scored child), ``out`` and ``seconds``.

    Raises
    ------
    StaleDataError, MissingRateJumpError, ScoreCollapseError
        When an input guard stops the run (nothing is stored).
    """
    from models.cli import score_from_settings

    started = time.perf_counter()
    reviews = read_reviews(settings, as_of)
    run = score_from_settings(
        settings, as_of, overrides=reviews.overrides, confirmations=reviews.confirmations
    )
    run["reviews"] = {
        **run["reviews"],
        "previous_run_id": reviews.previous_run_id,
        "confirmations_since": None if reviews.since is None else reviews.since.isoformat(),
    }
    run["seconds"] = round(time.perf_counter() - started, 1)
    return run


def _after_run(settings: Settings, run_id: str, deliver: bool) -> dict[str, Any]:
    from service.workflow.cli import after_run_from_settings

    started = time.perf_counter()
    done = after_run_from_settings(settings, run_id, deliver=deliver)
    done["seconds"] = round(time.perf_counter() - started, 1)
    return done


def _drift(settings: Settings, as_of: date, deliver: bool) -> dict[str, Any]:
    from monitoring.drift import drift_from_settings

    started = time.perf_counter()
    done = drift_from_settings(settings, None, as_of, deliver=deliver)
    return {
        "alarm": done["alarm"],
        "reference": done["reference"],
        "current": done["current"],
        "dataset_drift": done["dataset_drift"],
        "share_drifted": done["share_drifted"],
        "prediction_drift": done["prediction_drift"],
        "reasons": [r["message"] for r in done["reasons"]],
        "report": done["report"],
        "webhook": done.get("webhook"),
        "seconds": round(time.perf_counter() - started, 1),
    }


@dataclass(frozen=True)
class WeeklyResult:
    """What a week's run did, and the error that stopped a step after the run was stored."""

    summary: dict[str, Any]
    error: ShouhuError | None = None


def run_weekly(
    settings: Settings, as_of: date, *, deliver: bool = True, drift: bool = True
) -> WeeklyResult:
    """Run the week's steps in order: reviews and score → review after-run → drift.

    Parameters
    ----------
    settings : Settings
        The process settings.
    as_of : date
        The scoring date.
    deliver : bool, default=True
        POST the new alerts and a drift alarm to the configured webhook.
    drift : bool, default=True
        Write the drift and data-quality report of ``as_of``.

    Returns
    -------
    WeeklyResult
        ``summary`` holds ``as_of``, ``score``, ``review`` and ``drift`` (``None`` when not
        run); ``error`` is the error of a step after the run was stored, with
        ``summary["failed"]`` naming the step.

    Raises
    ------
    ShouhuError
        When reading the reviews or scoring fails (nothing was stored).
    """
    summary: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "home": str(settings.home),
        "score": score_with_reviews(settings, as_of),
        "review": None,
        "drift": None,
    }
    run_id = str(summary["score"]["run_id"])
    step = "review"
    try:
        summary["review"] = _after_run(settings, run_id, deliver)
        if drift:
            step = "drift"
            summary["drift"] = _drift(settings, as_of, deliver)
    except ShouhuError as exc:
        logger.error("weekly step failed", extra={"step": step, "run_id": run_id})
        summary["failed"] = {"step": step, "error": exc.message, "exit_code": exc.exit_code}
        return WeeklyResult(summary, exc)
    return WeeklyResult(summary)


def _lines(summary: dict[str, Any]) -> list[str]:
    """The summary as a person reads it (stderr)."""
    score = summary["score"]
    reviews = score["reviews"]
    since = reviews["confirmations_since"]
    tiers = ", ".join(f"{t} {n}" for t, n in score["tiers"].items())
    lines = [
        f"Weekly run as of {summary['as_of']} — data home {summary['home']}",
        f"  reviews: {reviews['overrides_in_force']} overrides in force"
        f" ({reviews['overrides_not_scored']} of children not scored on the date),"
        f" {reviews['confirmations_given']} fall confirmations"
        + (f" since the run of {since}" if since else " (no earlier run)"),
        f"  score: {score['children']} children: {tiers}; {score['hard_rule_hits']} hard-rule"
        f" hits; {score['overrides_applied']} overrides applied"
        f" ({score['overrides_limited']} raised to a floor or hard rule),"
        f" {score['falls_confirmed']} confirmed falls, {score['awaiting_confirmation']} falls"
        f" awaiting confirmation, {score['held_by_hysteresis']} held → {score['out']}"
        f" ({score['seconds']} s)",
    ]
    if score.get("warning"):
        lines.append(f"  warning: {score['warning']}")
    review = summary.get("review")
    if review is not None:
        webhook = review.get("webhook")
        sent = "" if webhook is None else f"; webhook: {webhook}"
        lines.append(
            f"  review after-run: {review['tasks_opened']} tasks opened for"
            f" {review['episodes_opened']} tier changes, {review['alerts_raised']} alerts raised"
            f" ({review['alerts_duplicate']} already raised){sent} ({review['seconds']} s)"
        )
    drift = summary.get("drift")
    if drift is not None:
        lines.append(
            f"  drift: alarm {drift['alarm']} ({drift['current']} against"
            f" {drift['reference']}), share of features drifted {drift['share_drifted']}"
            f" → {drift['report']} ({drift['seconds']} s)"
        )
        shown = drift["reasons"][:_REASONS_SHOWN]
        lines.extend(f"    ! {reason}" for reason in shown)
        if len(drift["reasons"]) > len(shown):
            lines.append(f"    … {len(drift['reasons']) - len(shown)} more in the report")
    failed = summary.get("failed")
    if failed is not None:
        lines.append(f"  {failed['step']} failed: {failed['error']}")
    return lines


def weekly(
    as_of: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="scoring date")],
    deliver: Annotated[bool, typer.Option(help="POST new alerts to the configured webhook")] = True,
    drift: Annotated[
        bool, typer.Option(help="write the drift and data-quality report of the date")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The week's run: score every child with the overrides and fall confirmations people
    recorded, open the tasks and raise the alerts of the run, then the drift report.

    Each step's summary is printed (one JSON object with --json). An input guard stops the
    week before anything is stored; a later step's error exits with its code after the
    summary of what was done.
    """
    from shouhu.settings import get_settings

    result = run_weekly(get_settings(), as_of.date(), deliver=deliver, drift=drift)
    if json_out:
        typer.echo(json.dumps(result.summary, ensure_ascii=False, default=str))
    else:
        for line in _lines(result.summary):
            typer.echo(line, err=True)
    if result.error is not None:
        raise result.error


__all__ = [
    "Reviews",
    "WeeklyResult",
    "read_reviews",
    "run_weekly",
    "score_with_reviews",
    "weekly",
]
