"""Generate each synthetic configuration once per test process and share the folder.

Generation takes seconds, so test modules share populations through this cache instead of
regenerating them; each module wraps :func:`generated` in a fixture with an explicit scope.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.synthetic import SynthConfig, generate
from features.synthetic.calibration import load_table

#: The population most tests read: small enough to be quick, large enough for calibration.
BASELINE = SynthConfig(children=3000, months=24, start=date(2024, 1, 1), seed=11)
#: Scenario runs: a year, the scenario starting in the seventh month.
SCENARIO_START = date(2024, 7, 1)


def scenario_config(name: str) -> SynthConfig:
    """A small run of scenario ``name`` starting in July 2024."""
    return SynthConfig(
        children=2500,
        months=12,
        start=date(2024, 1, 1),
        seed=5,
        scenario=name,
        scenario_start=SCENARIO_START,
    )


_CACHE: dict[SynthConfig, Path] = {}


def generated(config: SynthConfig, factory: pytest.TempPathFactory) -> Path:
    """The output folder of ``config``, generated on first use in this process."""
    if config not in _CACHE:
        out = factory.mktemp("synth")
        generate(config, out, progress=False)
        _CACHE[config] = out
    return _CACHE[config]


_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")


def parse_day(value: object) -> date | None:
    """A ledger date in any of the delivered spellings; ``None`` if missing or impossible."""
    if not isinstance(value, str):
        return None
    text = value.strip().translate(_FULLWIDTH)
    for sep in ("-", "/"):
        parts = text.split(sep)
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            try:
                return date(int(parts[0]), int(parts[1]), int(parts[2]))
            except ValueError:
                return None
    if text.endswith("日") and "年" in text and "月" in text:
        y, rest = text[:-1].split("年")
        m, d = rest.split("月")
        try:
            return date(int(y), int(m), int(d))
        except ValueError:
            return None
    return None


_TABLES: dict[tuple[Path, str], pd.DataFrame] = {}


def ledger(out: Path, table: str) -> pd.DataFrame:
    """Every delivered row of ``table`` in ``out`` (parsed once per process; a copy)."""
    key = (out, table)
    if key not in _TABLES:
        _TABLES[key] = load_table(out, table)
    return _TABLES[key].copy()
