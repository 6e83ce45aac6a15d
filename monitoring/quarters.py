"""Calendar quarters: the unit of the quarterly file update and of the re-evaluation.

The national "one child, one file" rule updates every file each quarter, so monitoring reports
realised performance per quarter and re-evaluates the model once a quarter. A quarter is written
``YYYYQn`` (``2025Q3``), as ``shouhu monitoring reevaluate --quarter`` takes it.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

_QUARTER = re.compile(r"^\s*(\d{4})\s*[-_ ]?[Qq]([1-4])\s*$")


@dataclass(frozen=True, order=True)
class Quarter:
    """One calendar quarter.

    Parameters
    ----------
    year : int
        Calendar year.
    number : int
        1 to 4.

    Examples
    --------
    >>> q = Quarter.parse("2025Q3")
    >>> q.start, q.end
    (datetime.date(2025, 7, 1), datetime.date(2025, 9, 30))
    >>> str(q.previous()), q.month_ends()[-1]
    ('2025Q2', datetime.date(2025, 9, 30))
    """

    year: int
    number: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 4:
            raise ValueError(f"a quarter number is 1 to 4, not {self.number}")
        if not 1900 <= self.year <= 9999:
            raise ValueError(f"year {self.year} is out of range")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """Read ``YYYYQn`` (also ``YYYY-Qn``, lower-case ``q``).

        Parameters
        ----------
        text : str
            The quarter, e.g. ``"2025Q3"``.

        Returns
        -------
        Quarter
            The quarter.

        Raises
        ------
        ValueError
            If the text is not a quarter.
        """
        match = _QUARTER.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a quarter; write it as YYYYQn, e.g. 2025Q3")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Quarter:
        """The quarter ``day`` falls in.

        Parameters
        ----------
        day : date
            Any date.

        Returns
        -------
        Quarter
            Its quarter.
        """
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def start(self) -> date:
        """First day of the quarter."""
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """Last day of the quarter."""
        month = 3 * self.number
        return date(self.year, month, monthrange(self.year, month)[1])

    def month_ends(self) -> list[date]:
        """The three month ends of the quarter, oldest first (the as-of dates of training)."""
        first = 3 * self.number - 2
        return [date(self.year, m, monthrange(self.year, m)[1]) for m in range(first, first + 3)]

    def previous(self) -> Quarter:
        """The quarter before."""
        return Quarter.of(self.start - timedelta(days=1))

    def contains(self, day: date) -> bool:
        """Whether ``day`` lies in the quarter."""
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"


__all__ = ["Quarter"]
