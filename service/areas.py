"""The area hierarchy (city → county → township → village) and who may see which child.

Area codes are hierarchical prefixes, as in ``features.schema``: a city has 4 digits, a county
6, a township 9 and a village 12, and each code begins with its parent's. A user whose area is
``990101001`` (a township) sees every child whose village code starts with it; a child outside
that prefix is answered exactly like an unknown child (404, never a hint that it exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

AreaLevel = Literal["city", "county", "township", "village"]

#: Digits of a code at each level.
LEVEL_LENGTHS: dict[AreaLevel, int] = {"city": 4, "county": 6, "township": 9, "village": 12}
_LEVEL_OF_LENGTH: dict[int, AreaLevel] = {n: level for level, n in LEVEL_LENGTHS.items()}
_CODE = re.compile(r"^[0-9]{4}([0-9]{2}([0-9]{3}([0-9]{3})?)?)?$")


class HasArea(Protocol):
    """Anything with an ``area_code`` (a :class:`~service.deps.Principal`, a user row)."""

    @property
    def area_code(self) -> str: ...


def is_area_code(code: str) -> bool:
    """Whether ``code`` is a well-formed city, county, township or village code.

    Examples
    --------
    >>> is_area_code("990101001"), is_area_code("99010"), is_area_code("9901x1")
    (True, False, False)
    """
    return bool(_CODE.match(code))


def area_level(code: str) -> AreaLevel:
    """The level of a well-formed area code.

    Raises
    ------
    ValueError
        If the code is not 4, 6, 9 or 12 digits.

    Examples
    --------
    >>> area_level("9901"), area_level("990101001001")
    ('city', 'village')
    """
    if not is_area_code(code):
        raise ValueError(f"{code!r} is not an area code (4, 6, 9 or 12 digits)")
    return _LEVEL_OF_LENGTH[len(code)]


def parent_code(code: str) -> str | None:
    """The enclosing area's code (``None`` for a city).

    Examples
    --------
    >>> parent_code("990101001001"), parent_code("9901")
    ('990101001', None)
    """
    level = area_level(code)
    order: list[AreaLevel] = ["city", "county", "township", "village"]
    index = order.index(level)
    return None if index == 0 else code[: LEVEL_LENGTHS[order[index - 1]]]


def within(area_code: str | None, scope: str) -> bool:
    """Whether ``area_code`` lies in ``scope`` or below it (a missing code lies nowhere).

    Examples
    --------
    >>> within("990101001001", "990101"), within("990102001001", "990101"), within(None, "9901")
    (True, False, False)
    """
    return area_code is not None and area_code.startswith(scope)


def visible(principal: HasArea, area_code: str | None) -> bool:
    """Whether a child of village ``area_code`` is in the principal's area or below.

    Parameters
    ----------
    principal : HasArea
        The caller (its ``area_code`` is its scope).
    area_code : str or None
        The child's village code.

    Returns
    -------
    bool
        ``False`` for a child outside the area and for a child without a known village.
    """
    return within(area_code, principal.area_code)


def narrow(principal: HasArea, requested: str | None) -> str | None:
    """The scope of a list request: the principal's area, or a sub-area of it.

    Parameters
    ----------
    principal : HasArea
        The caller.
    requested : str or None
        An ``area`` filter from the request.

    Returns
    -------
    str or None
        The scope to list; ``None`` when ``requested`` lies outside the principal's area (the
        list is then empty, as for an unknown area).
    """
    if requested is None or requested == principal.area_code:
        return principal.area_code
    if requested.startswith(principal.area_code):
        return requested
    return None


@dataclass(frozen=True)
class Area:
    """One area of the platform: code, level, name and parent (names are place names only)."""

    code: str
    level: AreaLevel
    name: str
    parent: str | None


@dataclass
class AreaDirectory:
    """The areas known to the feature store, for names in the pages and filters.

    Attributes
    ----------
    areas : dict of str to Area
        By code.
    """

    areas: dict[str, Area] = field(default_factory=dict)

    def name(self, code: str | None) -> str | None:
        """The area's name, or ``None`` when unknown."""
        area = self.areas.get(code or "")
        return None if area is None else area.name

    def children_of(self, code: str) -> list[Area]:
        """The areas directly below ``code``, by code."""
        return sorted((a for a in self.areas.values() if a.parent == code), key=lambda a: a.code)

    def path(self, code: str) -> list[Area]:
        """The areas from the city down to ``code`` (those the directory knows)."""
        out: list[Area] = []
        current: str | None = code
        while current:
            area = self.areas.get(current)
            if area is not None:
                out.append(area)
            current = parent_code(current) if is_area_code(current) else None
        return out[::-1]


__all__ = [
    "LEVEL_LENGTHS",
    "Area",
    "AreaDirectory",
    "AreaLevel",
    "HasArea",
    "area_level",
    "is_area_code",
    "narrow",
    "parent_code",
    "visible",
    "within",
]
