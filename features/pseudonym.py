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

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


def pseudonymise_column(
    con: duckdb.DuckDBPyConnection, values: pd.Series, key: str, kind: str = "child"
) -> pd.Series:
    """Pseudonymise a large column inside DuckDB (multi-threaded), same result as
    :func:`pseudonymise`.

    HMAC-SHA256 written out (``H((K^opad) || H((K^ipad) || m))``) so DuckDB's ``sha256`` can
    run it over millions of rows; a column with non-ASCII values goes through
    :func:`pseudonymise_series`, because DuckDB's ``upper`` and Python's differ outside ASCII.
    """
    normalised = values.str.strip().str.upper()
    arrow = pa.array(normalised, type=pa.string(), from_pandas=True)
    if len(arrow) == 0 or pc.any(pc.invert(pc.string_is_ascii(arrow))).as_py():
        return pseudonymise_series(values, key, kind)
    block = key.encode()
    if len(block) > 64:  # RFC 2104: keys longer than a block are hashed first
        block = hashlib.sha256(block).digest()
    block = block.ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in block)
    opad = bytes(b ^ 0x5C for b in block)
    con.register("_pseudonym_input", pa.table({"v": arrow}))
    try:
        hashed = con.sql(
            "SELECT CASE WHEN v IS NULL THEN NULL ELSE $prefix || left(sha256($opad || "
            "unhex(sha256($ipad || encode(v)))), $digits) END AS p FROM _pseudonym_input",
            params={
                "prefix": f"{_PREFIXES[kind]}-",
                "ipad": ipad,
                "opad": opad,
                "digits": PID_HEX_DIGITS,
            },
        ).to_arrow_table()
    finally:
        con.unregister("_pseudonym_input")
    result: pd.Series = hashed.column("p").to_pandas().set_axis(values.index).astype("string")
    return result


def pseudonymise_many(values: Iterable[str], key: str, kind: str = "child") -> dict[str, str]:
    """Map each distinct identity number to its pseudonym."""
    return {v: pseudonymise(v, key, kind) for v in set(values)}


__all__ = [
    "PID_HEX_DIGITS",
    "pseudonymise",
    "pseudonymise_column",
    "pseudonymise_many",
    "pseudonymise_series",
]
