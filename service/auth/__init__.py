"""Authentication: argon2 passwords, API bearer tokens, page session cookies and CSRF tokens.

The dependencies that use these (``service.deps``) turn a request into a
:class:`~service.deps.Principal`; everything here works on a SQLAlchemy session and plain
values, so the CLI (``shouhu users``) uses the same functions.
"""

from service.auth.csrf import csrf_token, verify_csrf_token
from service.auth.passwords import hash_password, needs_rehash, verify_password
from service.auth.sessions import (
    SESSION_COOKIE,
    authenticate,
    end_web_session,
    resolve_web_session,
    start_web_session,
)
from service.auth.tokens import issue_token, resolve_token, revoke_token, token_digest

__all__ = [
    "SESSION_COOKIE",
    "authenticate",
    "csrf_token",
    "end_web_session",
    "hash_password",
    "issue_token",
    "needs_rehash",
    "resolve_token",
    "resolve_web_session",
    "revoke_token",
    "start_web_session",
    "token_digest",
    "verify_csrf_token",
    "verify_password",
]
