"""CSRF tokens for the pages: an HMAC of the session cookie (or of a pre-sign-in cookie).

A form carries ``csrf_token`` (or a request the ``X-CSRF-Token`` header); it must equal
``HMAC(session_secret, "csrf:" + anchor)`` where the anchor is the session cookie once signed
in, and the pre-sign-in cookie (:data:`ANON_COOKIE`) on the sign-in form. A cross-site page can
make the browser send the cookie but cannot read it, so it cannot compute the token.
"""

from __future__ import annotations

import hashlib
import hmac

#: Cookie holding a random anchor for the CSRF token of the sign-in form (before a session).
ANON_COOKIE = "shouhu_anon"
#: Form field and header carrying the token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token(secret: str, anchor: str) -> str:
    """The CSRF token bound to ``anchor`` (a session or pre-sign-in cookie value).

    Examples
    --------
    >>> a = csrf_token("k" * 32, "cookie-1")
    >>> a == csrf_token("k" * 32, "cookie-1"), a == csrf_token("k" * 32, "cookie-2")
    (True, False)
    """
    return hmac.new(
        secret.encode("utf-8"), b"csrf:" + anchor.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def verify_csrf_token(secret: str, anchor: str, token: str) -> bool:
    """Whether ``token`` is the CSRF token of ``anchor`` (constant-time comparison)."""
    if not anchor or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, anchor), token)


__all__ = ["ANON_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "csrf_token", "verify_csrf_token"]
