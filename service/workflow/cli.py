"""``shouhu review …``: tasks and alerts after a scoring run, webhook deliveries, statistics, doc.

Command bodies are thin calls into ``service.workflow``; the database, DuckDB and HTTP client
are imported inside the commands so ``shouhu --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.workflow.webhook import WebhookConfig
    from shouhu.settings import Settings

app = typer.Typer(
    help="Human review and early warning: tasks and alerts after a scoring run, webhook "
    "deliveries, override statistics, the human-review document.",
    no_args_is_help=True,
)

DEFAULT_DOC = Path("docs/human-review.md")


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session on the migrated operational database (committed on success)."""
    from service.db.migrate import migrated_session

    with migrated_session(settings.service_database_url) as session:
        yield session


def _emit(payload: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        for key, value in payload.items():
            typer.echo(f"{key}: {value}", err=True)


def _deliver(settings: Settings, config: WebhookConfig | None) -> dict[str, int] | None:
    if config is None:
        return None
    from service.workflow.webhook import deliver_pending

    with _session(settings) as session:
        done = deliver_pending(session, config)
    return {"delivered": done.delivered, "failed": done.failed, "deferred": done.deferred}


def after_run_from_settings(
    settings: Settings, run_id: str | None = None, *, deliver: bool = True
) -> dict[str, Any]:
    """Open tasks and raise alerts for a scoring run, then send new alerts to the webhook.

    Parameters
    ----------
    settings : Settings
        Data home, policy and webhook settings.
    run_id : str, optional
        The scoring run (the newest one by default).
    deliver : bool
        POST new alerts to the configured webhook (when one is configured).

    Returns
    -------
    dict
        What ``shouhu review after-run --json`` prints.
    """
    import pandas as pd

    from models.policy import load_policy
    from service.workflow.alerts import process_run
    from service.workflow.runs import load_runs
    from shouhu.webhook import webhook_config

    config = webhook_config(settings) if deliver else None
    policy = load_policy(settings.policy.file)
    current, previous = load_runs(settings.scores_db_path, run_id)
    with _session(settings) as session:
        done = process_run(session, policy, current, previous)
    return {
        "run_id": done.run_id,
        "as_of": pd.Timestamp(current["as_of"].iloc[0]).date().isoformat()
        if len(current)
        else None,
        "previous_run_id": None if previous is None else str(previous["run_id"].iloc[0]),
        "children": done.tasks.children,
        "episodes_opened": done.tasks.episodes_opened,
        "tasks_opened": done.tasks.tasks_opened,
        "alerts_raised": len(done.alerts.raised),
        "alerts_duplicate": done.alerts.duplicates,
        "webhook": _deliver(settings, config),
    }


@app.command("after-run")
def after_run(
    run_id: Annotated[
        str | None, typer.Option(help="the scoring run (the newest one by default)")
    ] = None,
    deliver: Annotated[bool, typer.Option(help="POST new alerts to the configured webhook")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Open tasks for changed tiers and raise alerts after a scoring run; send them on."""
    from shouhu.settings import get_settings

    _emit(after_run_from_settings(get_settings(), run_id, deliver=deliver), json_out)


@app.command("deliver")
def deliver_command(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Send every alert the webhook has not accepted yet (bounded retries each)."""
    from shouhu.errors import ConfigError
    from shouhu.settings import get_settings
    from shouhu.webhook import webhook_config

    settings = get_settings()
    config = webhook_config(settings)
    if config is None:
        raise ConfigError("no webhook configured (SHOUHU_SERVICE__WEBHOOK_URL)")
    payload = _deliver(settings, config)
    assert payload is not None
    _emit(payload, json_out)


@app.command("stats")
def stats(
    by: Annotated[str, typer.Option(help="reviewer, tier, girl, disability or township")],
    weeks: Annotated[int, typer.Option(min=1, max=104, help="weeks back from now")] = 12,
    area: Annotated[str | None, typer.Option(help="only children of this area code")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Override rates (overrides / decisions) per ISO week, split by one grouping."""
    from datetime import UTC, datetime, timedelta

    from service.workflow.stats import GroupBy, override_rates
    from shouhu.settings import get_settings

    try:
        split = GroupBy(by)
    except ValueError:
        raise typer.BadParameter(f"--by must be one of {', '.join(GroupBy)}") from None
    since = datetime.now(UTC) - timedelta(weeks=weeks)
    with _session(get_settings()) as session:
        rows = override_rates(session, split, area_code=area, since=since)
    table: list[dict[str, Any]] = [
        {
            "week": r.week,
            "group": r.group,
            "decisions": r.decisions,
            "overrides": r.overrides,
            "raised": r.raised,
            "lowered": r.lowered,
            "rate": round(r.rate, 4),
        }
        for r in rows
    ]
    if json_out:
        payload = {"by": split.value, "since": since.isoformat(), "area_code": area, "rows": table}
        _emit(payload, True)
        return
    for r in rows:
        typer.echo(
            f"{r.week}  {r.group:<16} {r.overrides:>4}/{r.decisions:<4} "
            f"{r.rate:.0%}  (+{r.raised} / -{r.lowered})"
        )


@app.command("doc")
def doc(
    out: Annotated[Path, typer.Option(help="the document to rewrite")] = DEFAULT_DOC,
    check: Annotated[
        bool, typer.Option(help="only check that the document is current (exit 1 if not)")
    ] = False,
) -> None:
    """Rewrite the policy-generated section of docs/human-review.md from the policy in force."""
    from models.policy import load_policy
    from service.workflow.doc import updated_document, write_review_doc
    from shouhu.settings import get_settings

    policy = load_policy(get_settings().policy.file)
    if check:
        text = out.read_text(encoding="utf-8")
        if updated_document(text, policy) != text:
            typer.echo(f"{out} is out of date: run `shouhu review doc`", err=True)
            raise typer.Exit(1)
        return
    changed = write_review_doc(out, policy)
    typer.echo(f"{out}: {'rewritten' if changed else 'already current'}", err=True)


__all__ = ["app"]
