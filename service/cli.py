"""``shouhu serve`` and ``shouhu users …``.

Command bodies are thin calls into ``service.accounts`` and ``service.app``; FastAPI, uvicorn
and the models are imported inside the commands, so ``shouhu --help`` stays fast.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shouhu.settings import Settings

users_app = typer.Typer(
    help="Manage the service's users and their API tokens.", no_args_is_help=True
)

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session on the migrated operational database (committed on success)."""
    from service.db.migrate import migrated_session

    with migrated_session(settings.service_database_url) as session:
        yield session


def _emit(payload: Any, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    elif isinstance(payload, dict):
        for key, value in payload.items():
            typer.echo(f"{key}: {value}", err=True)


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise typer.BadParameter("the passwords differ")
    return first


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="sign-in name (a work id, not a name)")],
    role: Annotated[str, typer.Option(help="caseworker, supervisor, analyst or admin")],
    area: Annotated[str, typer.Option(help="area code the user sees (4, 6, 9 or 12 digits)")],
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Add a user; the password is asked twice (or read from stdin) and stored as argon2id."""
    from service.accounts import add_user
    from shouhu.settings import get_settings

    password = _password(password_stdin)
    with _session(get_settings()) as session:
        user = add_user(
            session, username=username, password=password, role=role, area_code=area, lang=lang
        )
        payload = {"username": user.username, "role": user.role, "area_code": user.area_code}
    _emit(payload, json_out)


@users_app.command("list")
def list_(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """List users: name, role, area, language, active."""
    from service.accounts import list_users
    from shouhu.settings import get_settings

    with _session(get_settings()) as session:
        users = list_users(session)
    if json_out:
        _emit({"users": users}, True)
        return
    for u in users:
        state = "active" if u["active"] else "disabled"
        typer.echo(f"{u['username']:<24} {u['role']:<11} {u['area_code']:<13} {state}")


@users_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="the user to disable")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Disable a user: sign-in, tokens and sessions stop working at once (history is kept)."""
    from service.accounts import disable_user
    from shouhu.settings import get_settings

    with _session(get_settings()) as session:
        payload: dict[str, Any] = {"username": username, **disable_user(session, username)}
    _emit(payload, json_out)


@users_app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="whose token")],
    days: Annotated[int | None, typer.Option(min=1, max=365, help="lifetime in days")] = None,
    label: Annotated[str, typer.Option(help="what the token is for")] = "cli",
) -> None:
    """Issue an API bearer token for a user and print it (once) on stdout."""
    from service.accounts import user_token
    from shouhu.settings import get_settings

    settings = get_settings()
    with _session(settings) as session:
        value = user_token(session, username, days=days or settings.service.token_days, label=label)
    typer.echo(value)


def check_bind(settings: Settings, host: str) -> None:
    """Refuse a non-loopback address in demo mode (demo secrets must never face a network)."""
    from shouhu.errors import ConfigError

    if settings.demo_mode and host not in LOOPBACK:
        raise ConfigError(
            f"demo mode serves on the loopback address only, not {host}; set "
            "SHOUHU_DEMO_MODE=false with real secrets to bind another address"
        )


def run_server(settings: Settings, *, host: str, port: int, access_log: bool = False) -> None:
    """Load the state (failing clearly without a champion), then serve with one worker.

    Parameters
    ----------
    settings : Settings
        The process settings.
    host, port : str, int
        Address to bind.
    access_log : bool, default=False
        Log every request line (pseudonymous ids only; Prometheus metrics count requests
        anyway).
    """
    import uvicorn

    from service.app import create_app
    from service.state import ServiceState

    check_bind(settings, host)
    state = ServiceState.load(settings)
    typer.echo(
        f"serving model {state.model_name} v{state.model_version}, policy "
        f"{state.policy_version}, {len(state.snapshot.frame)} children as of "
        f"{state.snapshot.as_of} on http://{host}:{port}",
        err=True,
    )
    try:
        uvicorn.run(
            create_app(settings, state=state),
            host=host,
            port=port,
            workers=1,
            log_config=None,
            access_log=access_log,
            proxy_headers=False,
        )
    finally:
        state.close()


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port to bind (default 8000)")
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log every request line")
    ] = False,
) -> None:
    """Serve the API (/api/v1, OpenAPI at /docs) and the pages with the champion model.

    Refuses to start, with a message saying what to do, when no champion can be loaded.
    """
    from shouhu.settings import get_settings

    settings = get_settings()
    run_server(
        settings,
        host=host or settings.service.host,
        port=port or settings.service.port,
        access_log=access_log,
    )


__all__ = ["check_bind", "run_server", "serve", "users_app"]
