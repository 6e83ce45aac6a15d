"""Keyed pseudonymisation of identity numbers, applied before anything is stored.

HMAC-SHA256 with a secret key (``Settings.pseudonym_key``): without the key nobody can test a
guessed identity number against a pseudonym, unlike a plain hash of an 18-digit number with a
check digit, which is brute-forced in minutes. The same key gives the same pseudonym, so
records delivered in different files and months join on it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pandas as pd

_PREFIXES = {"child": "c", "household": "h"}
#: 16 hex digits = 64 bits: collisions are negligible for tens of millions of children.
PID_HEX_DIGITS = 16


def pseudonymise(value: str, key: str, kind: str = "child") -> str:
    """Return the pseudonymous id of one identity number (``c-<16 hex>`` for a child).

    Examples
    --------
    >>> pseudonymise("990101201001011234", "k" * 16)[:2]
    'c-'
    """
    digest = hmac.new(key.encode(), value.strip().upper().encode(), hashlib.sha256).hexdigest()
    return f"{_PREFIXES[kind]}-{digest[:PID_HEX_DIGITS]}"


def pseudonymise_series(values: pd.Series, key: str, kind: str = "child") -> pd.Series:
    """Pseudonymise a column, hashing each distinct value once (ledgers repeat ids a lot)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hashed = [pseudonymise(str(u), key, kind) for u in uniques]
    out = pd.Series(pd.array([None] * len(values), dtype="string"), index=values.index)
    mask = codes >= 0
    out[mask] = pd.array(hashed, dtype="string")[codes[mask]]
    return out


def pseudonymise_many(values: Iterable[str], key: str, kind: str = "child") -> dict[str, str]:
    """Map each distinct identity number to its pseudonym."""
    return {v: pseudonymise(v, key, kind) for v in set(values)}


__all__ = ["PID_HEX_DIGITS", "pseudonymise", "pseudonymise_many", "pseudonymise_series"]
