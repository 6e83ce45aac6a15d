"""Quarters, the report helpers' formatting, and the doctests of the re-evaluation modules."""

from __future__ import annotations

import doctest
from datetime import date
from types import ModuleType

import pytest

import monitoring.quarters
import monitoring.realised
import monitoring.reevaluation
import monitoring.rendering
from monitoring.quarters import Quarter


@pytest.mark.parametrize(
    "module",
    [monitoring.quarters, monitoring.realised, monitoring.reevaluation, monitoring.rendering],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("text", ["2025Q3", "2025q3", "2025-Q3", " 2025 Q3 "])
def test_quarter_parses_the_usual_spellings(text: str) -> None:
    assert Quarter.parse(text) == Quarter(2025, 3)


@pytest.mark.parametrize("text", ["2025Q5", "2025-07", "Q3 2025", "25Q3", ""])
def test_quarter_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="YYYYQn"):
        Quarter.parse(text)


def test_quarter_dates_month_ends_and_order() -> None:
    q1 = Quarter.parse("2024Q1")
    assert (q1.start, q1.end) == (date(2024, 1, 1), date(2024, 3, 31))
    assert q1.month_ends() == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
    assert q1.previous() == Quarter(2023, 4)
    assert Quarter.of(date(2024, 12, 31)) == Quarter(2024, 4)
    assert q1.contains(date(2024, 3, 31)) and not q1.contains(date(2024, 4, 1))
    assert sorted([Quarter(2025, 1), Quarter(2024, 4)]) == [Quarter(2024, 4), Quarter(2025, 1)]
