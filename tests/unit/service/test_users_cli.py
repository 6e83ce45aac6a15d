"""``shouhu users``: add, list, token and disable, on the home's operational database."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from service.auth.tokens import resolve_token
from service.db.base import make_engine, make_session_factory
from service.db.identity import User
from shouhu.cli import app


def test_users_commands_manage_accounts_and_tokens(isolated_home: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "users",
            "add",
            "cw_01",
            "--role",
            "caseworker",
            "--area",
            "990101001",
            "--json",
            "--password-stdin",
        ],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {
        "username": "cw_01",
        "role": "caseworker",
        "area_code": "990101001",
    }
    refused = runner.invoke(
        app,
        ["users", "add", "cw_02", "--role", "boss", "--area", "9901", "--password-stdin"],
        input="a long enough password\n",
    )
    assert refused.exit_code != 0
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert [u["username"] for u in json.loads(listed.stdout)["users"]] == ["cw_01"]
    issued = runner.invoke(app, ["users", "token", "cw_01", "--days", "2"])
    token = issued.stdout.strip()
    assert issued.exit_code == 0 and token.startswith("shk_")
    engine = make_engine(f"sqlite:///{isolated_home / 'service.db'}")
    with make_session_factory(engine)() as session:
        user = resolve_token(session, token)
        assert user is not None and user.username == "cw_01"
        stored = session.execute(select(User.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$")
    disabled = runner.invoke(app, ["users", "disable", "cw_01", "--json"])
    assert json.loads(disabled.stdout) == {
        "username": "cw_01",
        "tokens_revoked": 1,
        "sessions_ended": 0,
    }
    with make_session_factory(engine)() as session:
        assert resolve_token(session, token) is None
    engine.dispose()
