"""Area scoping in SQL: "the village code starts with the caller's area code", index-friendly.

Area codes are digit strings, each beginning with its parent's (``service.areas``). A prefix
test written as ``LIKE 'code%'`` cannot use an index on SQLite (its LIKE is case-insensitive),
so it is written as a range: every string starting with ``990102`` lies in
``['990102', '990103')``. The range serves the ``(village_code, …)`` indexes of the workflow
tables on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``.

    Examples
    --------
    >>> prefix_upper_bound("990102"), prefix_upper_bound("990109")
    ('990103', '99010:')
    """
    if not prefix:
        raise ValueError("an area code cannot be empty")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def in_area(column: Any, area_code: str) -> ColumnElement[bool]:
    """``column`` (a village code) lies in ``area_code`` or below, as an indexable range."""
    return and_(column >= area_code, column < prefix_upper_bound(area_code))


__all__ = ["in_area", "prefix_upper_bound"]
