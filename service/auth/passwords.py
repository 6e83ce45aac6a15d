"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Shortest password accepted by ``shouhu users add``.
MIN_PASSWORD_LENGTH = 10


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; two calls give different strings).

    Parameters
    ----------
    password : str
        The plain password; never logged or stored.

    Returns
    -------
    str
        A PHC string, ``$argon2id$v=19$…``.

    Raises
    ------
    ValueError
        If the password is shorter than :data:`MIN_PASSWORD_LENGTH`.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (never raises for a wrong password).

    Examples
    --------
    >>> h = hash_password("correct horse battery")
    >>> verify_password(h, "correct horse battery"), verify_password(h, "wrong password!")
    (True, False)
    """
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash uses weaker parameters than the current ones."""
    return _hasher().check_needs_rehash(password_hash)


#: A hash of a random password, verified against when a username is unknown, so an unknown
#: name costs the same time as a wrong password and cannot be told apart by timing.
def dummy_hash() -> str:
    """A fixed-cost hash for unknown users (see :func:`service.auth.sessions.authenticate`)."""
    return _dummy()


@lru_cache(maxsize=1)
def _dummy() -> str:
    import secrets

    return _hasher().hash(secrets.token_urlsafe(24))


__all__ = ["MIN_PASSWORD_LENGTH", "dummy_hash", "hash_password", "needs_rehash", "verify_password"]
