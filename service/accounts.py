"""Managing users: add, list, disable, issue tokens; and the demo's accounts.

Used by ``shouhu users`` and ``shouhu demo``; every function takes a session or plain values.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.areas import is_area_code
from service.auth.passwords import hash_password
from service.auth.sessions import end_user_sessions
from service.auth.tokens import issue_token, revoke_user_tokens
from service.db.base import utcnow
from service.db.identity import ROLES, User
from shouhu.errors import ConfigError, NotFoundError

#: File of the demo accounts under the data home (cli.md).
DEMO_ACCOUNTS_FILE = "demo-accounts.json"


def add_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    area_code: str,
    lang: str = "zh",
    replace_password: bool = False,
) -> User:
    """Create a user (or, with ``replace_password``, reset an existing user's password).

    Parameters
    ----------
    session : Session
        The operational database (the caller commits).
    username, password : str
        Sign-in name and password (hashed with argon2id; at least 10 characters).
    role : str
        caseworker, supervisor, analyst or admin.
    area_code : str
        4, 6, 9 or 12 digits: the area the user sees.
    lang : {"zh", "en"}, default="zh"
        Preferred language.
    replace_password : bool, default=False
        Reset the password, role, area and language of an existing user instead of failing.

    Returns
    -------
    User
        The stored user.

    Raises
    ------
    ConfigError
        If a value is invalid or the user exists (without ``replace_password``).
    """
    name = username.strip()
    if not name or len(name) > 64 or any(ch.isspace() for ch in name):
        raise ConfigError("a username is 1-64 characters without spaces")
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not is_area_code(area_code):
        raise ConfigError(f"{area_code!r} is not an area code (4, 6, 9 or 12 digits)")
    if lang not in ("zh", "en"):
        raise ConfigError("lang must be zh or en")
    try:
        digest = hash_password(password)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
    if user is not None and not replace_password:
        raise ConfigError(f"user {name} exists")
    if user is None:
        user = User(username=name, password_hash=digest, role=role, area_code=area_code, lang=lang)
        session.add(user)
    else:
        user.password_hash, user.role, user.area_code, user.lang = digest, role, area_code, lang
        user.disabled_at = None
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    """The user called ``username``.

    Raises
    ------
    NotFoundError
        If there is none.
    """
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {username}")
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user as plain values (never the password hash)."""
    users = session.execute(select(User).order_by(User.username)).scalars().all()
    return [
        {
            "username": u.username,
            "role": u.role,
            "area_code": u.area_code,
            "lang": u.lang,
            "active": u.active,
            "created_at": u.created_at.isoformat(),
        }
        for u in users
    ]


def disable_user(session: Session, username: str) -> dict[str, int]:
    """Disable a user and end every token and session of theirs at once.

    Returns
    -------
    dict
        Tokens and sessions revoked.
    """
    user = get_user(session, username)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    tokens = revoke_user_tokens(session, user.id)
    sessions = end_user_sessions(session, user.id)
    session.flush()
    return {"tokens_revoked": tokens, "sessions_ended": sessions}


def user_token(session: Session, username: str, *, days: int, label: str = "cli") -> str:
    """Issue an API bearer token for ``username`` (printed once by ``shouhu users token``)."""
    token, _ = issue_token(session, get_user(session, username), days=days, label=label)
    return token


# --------------------------------------------------------------------------------------------
# Demo accounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoAccount:
    """One demo account as written to ``demo-accounts.json``."""

    username: str
    password: str
    role: str
    area_code: str


def demo_areas(store_path: Path) -> dict[str, str]:
    """Areas for the demo accounts: the county with the most registered children, its two
    townships with the most, and the city.

    Raises
    ------
    ConfigError
        If the store has no two townships in one county.
    """
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        rows = con.execute(
            "WITH latest AS (SELECT child_id, village_code FROM raw_children "
            "QUALIFY row_number() OVER (PARTITION BY child_id "
            "ORDER BY registered_date DESC, recorded_at DESC, _seq DESC) = 1) "
            "SELECT substr(village_code, 1, 9) AS township, COUNT(*) AS n FROM latest "
            "WHERE length(village_code) = 12 GROUP BY township ORDER BY n DESC, township"
        ).fetchall()
    finally:
        con.close()
    by_county: dict[str, list[tuple[str, int]]] = {}
    for township, n in rows:
        by_county.setdefault(str(township)[:6], []).append((str(township), int(n)))
    candidates = [(sum(n for _, n in t), c) for c, t in by_county.items() if len(t) >= 2]
    if not candidates:
        raise ConfigError("the feature store has no county with two townships for the demo")
    county = max(candidates)[1]
    first, second = by_county[county][0][0], by_county[county][1][0]
    return {"township_a": first, "township_b": second, "county": county, "city": county[:4]}


def ensure_demo_accounts(
    session: Session, areas: dict[str, str], existing: Sequence[DemoAccount] = ()
) -> list[DemoAccount]:
    """Create (or reset) the demo accounts of cli.md: two caseworkers of different
    townships, a supervisor of their county, an analyst of the county and an admin.

    Passwords in ``existing`` are kept so a second ``shouhu demo`` does not change them.
    """
    known = {a.username: a.password for a in existing}
    plan = [
        ("caseworker_a", "caseworker", areas["township_a"]),
        ("caseworker_b", "caseworker", areas["township_b"]),
        ("supervisor", "supervisor", areas["county"]),
        ("analyst", "analyst", areas["county"]),
        ("admin", "admin", areas["city"]),
    ]
    accounts = []
    for username, role, area in plan:
        password = known.get(username) or secrets.token_urlsafe(12)
        add_user(
            session,
            username=username,
            password=password,
            role=role,
            area_code=area,
            replace_password=True,
        )
        accounts.append(DemoAccount(username, password, role, area))
    return accounts


def read_demo_accounts(path: Path) -> list[DemoAccount]:
    """The accounts of an earlier demo (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            DemoAccount(**{k: str(a[k]) for k in DemoAccount.__dataclass_fields__}) for a in data
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_demo_accounts(path: Path, accounts: Sequence[DemoAccount]) -> Path:
    """Write ``demo-accounts.json`` (readable by the owner only: it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        json.dumps([asdict(a) for a in accounts], ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )
    partial.chmod(0o600)
    partial.replace(path)
    return path


__all__ = [
    "DEMO_ACCOUNTS_FILE",
    "DemoAccount",
    "add_user",
    "demo_areas",
    "disable_user",
    "ensure_demo_accounts",
    "get_user",
    "list_users",
    "read_demo_accounts",
    "user_token",
    "write_demo_accounts",
]
