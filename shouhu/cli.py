"""The ``shouhu`` command: one Typer app composing each package's sub-app.

Heavy libraries are imported inside commands, so ``shouhu --help`` stays fast and the service
process never imports training code.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from features.cli import app as features_app
from models.cli import app as models_app
from monitoring.cli import app as monitoring_app
from service.cli import serve as serve_command
from service.cli import users_app
from service.workflow.cli import app as review_app
from shouhu.errors import ShouhuError
from shouhu.weekly import weekly as weekly_command

app = typer.Typer(
    help="Shouhu (守护): risk scoring and early warning for left-behind children.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
app.add_typer(monitoring_app, name="monitoring")
app.add_typer(users_app, name="users")
app.add_typer(review_app, name="review")
app.command("serve")(serve_command)
app.command("weekly")(weekly_command)


@app.command()
def demo(
    children: Annotated[
        int, typer.Option(min=100, help="children in the synthetic population")
    ] = 20000,
    months: Annotated[int, typer.Option(min=3, help="months of ledgers")] = 24,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="stop after the pipeline; do not serve")
    ] = False,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port of the service (default 8000)")
    ] = None,
) -> None:
    """Build the demo under SHOUHU_HOME: synthetic population → ingest → features → train →
    register and promote a first champion → score the latest month end → demo accounts →
    serve on 127.0.0.1 (unless --no-serve)."""
    from shouhu.demo import run_demo
    from shouhu.settings import get_settings

    run_demo(
        get_settings(),
        children=children,
        months=months,
        seed=seed,
        json_out=json_out,
        serve=not no_serve,
        port=port,
    )


def main() -> None:
    """Entry point: run the app, turning Shouhu errors into a message and an exit code."""
    from pydantic import ValidationError

    from shouhu.logs import configure_logging
    from shouhu.settings import get_settings

    try:
        configure_logging(get_settings().log_level)
        app()
    except ShouhuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        sys.exit(3)


__all__ = ["app", "main"]
