"""The generator's configuration, its validation and the named scenarios."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from features.calendar import FIRST_YEAR, LAST_YEAR
from shouhu.errors import ConfigError

#: Bumped whenever the generated data change for the same configuration.
GENERATOR_VERSION = "1.1.0"

SCENARIOS: tuple[str, ...] = (
    "baseline",
    "new-township",
    "visit-lapse",
    "migration-shock",
    "school-closure",
)
FORMATS: tuple[str, ...] = ("csv", "xlsx", "parquet")

#: Months after the last delivered month that the oracle looks ahead (a 90-day window spans at
#: most four calendar months), so the calendar must cover them too.
HORIZON_MONTHS = 4


class SynthConfigError(ConfigError, ValueError):
    """An unusable generator configuration (a ``ValueError`` the CLI reports cleanly)."""


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Parameters
    ----------
    children
        Size of the registered population on the first day (new registrations, exits and
        scenarios change it afterwards).
    months
        Number of monthly delivery batches.
    start
        First day of the first month.
    seed
        Random seed; the same configuration gives byte-identical files.
    scenario
        One of :data:`SCENARIOS`.
    scenario_start
        First day of the month the scenario begins; default two thirds into the period.
    fmt
        Ledger file format: ``csv`` (GB18030), ``xlsx`` or ``parquet``.
    """

    children: int = 20000
    months: int = 24
    start: date = date(2024, 1, 1)
    seed: int = 7
    scenario: str = "baseline"
    scenario_start: date | None = None
    fmt: str = "csv"

    def validate(self) -> None:
        """Raise :class:`SynthConfigError` (a ``ValueError``) when the configuration is
        unusable."""
        if self.children < 1:
            raise SynthConfigError(f"children must be at least 1, got {self.children}")
        if not 1 <= self.months <= 120:
            raise SynthConfigError(f"months must be between 1 and 120, got {self.months}")
        if self.start.day != 1:
            raise SynthConfigError(f"start must be the first day of a month, got {self.start}")
        if self.scenario not in SCENARIOS:
            raise SynthConfigError(
                f"unknown scenario {self.scenario!r}; known: {', '.join(SCENARIOS)}"
            )
        if self.fmt not in FORMATS:
            raise SynthConfigError(f"unknown format {self.fmt!r}; known: {', '.join(FORMATS)}")
        if not self.start.year >= FIRST_YEAR + 1:
            raise SynthConfigError(f"start must be in {FIRST_YEAR + 1} or later, got {self.start}")
        horizon_end = add_months(self.start, self.months + HORIZON_MONTHS)
        if horizon_end.year > LAST_YEAR:
            raise SynthConfigError(
                f"the period plus the oracle's 90-day horizon ends in {horizon_end.year}, "
                f"after the school calendar ({FIRST_YEAR}-{LAST_YEAR})"
            )
        if self.scenario_start is not None:
            first, end = self.start, add_months(self.start, self.months)
            if not first <= self.scenario_start < end:
                raise SynthConfigError(
                    f"scenario_start {self.scenario_start:%Y-%m} is outside the period "
                    f"{first:%Y-%m} to {add_months(self.start, self.months - 1):%Y-%m}"
                )
            if self.scenario_start.day != 1:
                raise SynthConfigError(
                    f"scenario_start must be the first day of a month, got {self.scenario_start}"
                )

    @property
    def end(self) -> date:
        """The first day after the period."""
        return add_months(self.start, self.months)

    @property
    def scenario_month(self) -> int:
        """Index (0-based) of the month the scenario starts in."""
        if self.scenario_start is None:
            return (2 * self.months) // 3
        delta = (self.scenario_start.year - self.start.year) * 12
        return delta + self.scenario_start.month - self.start.month

    @property
    def effective_scenario_start(self) -> date:
        """``scenario_start``, or its default two thirds into the period."""
        return add_months(self.start, self.scenario_month)


#: Independent random streams, one per concern, so that changing how one part draws does not
#: shift every other part's numbers.
STREAMS: tuple[str, ...] = (
    "areas",
    "population",
    "entrants",
    "dynamics",
    "ledgers",
    "defects",
    "scenario",
)


def streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent ``numpy`` generator per stream name, all derived from ``seed``."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {
        name: np.random.Generator(np.random.PCG64(s))
        for name, s in zip(STREAMS, children, strict=True)
    }


__all__ = [
    "FORMATS",
    "GENERATOR_VERSION",
    "HORIZON_MONTHS",
    "SCENARIOS",
    "SynthConfig",
    "SynthConfigError",
    "add_months",
    "streams",
]
