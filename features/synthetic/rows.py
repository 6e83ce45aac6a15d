"""Ledger rows in typed, compact form, before they become strings in a file.

A :class:`RowBlock` holds one array per canonical column plus bookkeeping columns that never
reach a file: ``_child`` (child index, -1 for area rows), ``_village`` (drives defect rates),
``_rec`` (the day the row was entered: it decides the delivery batch) and ``_evt`` (the day the
event happened, to count late entries). Missing values use sentinels: -1 for categorical and
boolean codes, :data:`NA_DAY` for dates, :data:`NA_INT` for integers, NaN for floats.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from features.synthetic.population import NA_DAY

NA_INT = -(2**62)
NA_CODE = -1
BOOKKEEPING = ("_child", "_village", "_rec", "_evt")

AnyArray = npt.NDArray[np.generic]
IntArray = npt.NDArray[np.int64]


class RowBlock:
    """Rows of one ledger table: equal-length column arrays keyed by canonical name."""

    def __init__(self, table: str, columns: Mapping[str, npt.ArrayLike]) -> None:
        self.table = table
        self.columns: dict[str, AnyArray] = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            sizes = {k: len(v) for k, v in self.columns.items()}
            raise ValueError(f"{table}: columns of unequal length {sizes}")
        for name in BOOKKEEPING:
            if name not in self.columns:
                raise ValueError(f"{table}: missing bookkeeping column {name}")

    def __len__(self) -> int:
        return len(self.columns["_rec"])

    def __getitem__(self, name: str) -> AnyArray:
        return self.columns[name]

    def take(self, index: npt.NDArray[np.bool_] | IntArray) -> RowBlock:
        """The rows at ``index`` (a boolean mask or positions)."""
        return RowBlock(self.table, {k: v[index] for k, v in self.columns.items()})

    @staticmethod
    def concat(table: str, blocks: list[RowBlock]) -> RowBlock:
        """All rows of ``blocks`` (which share their columns), in order."""
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            raise ValueError(f"{table}: nothing to concatenate")
        names = list(blocks[0].columns)
        return RowBlock(table, {n: np.concatenate([b.columns[n] for b in blocks]) for n in names})


def days_or_na(days: npt.ArrayLike, valid: npt.ArrayLike) -> IntArray:
    """Dates where ``valid``, else the missing-date sentinel."""
    return np.where(np.asarray(valid), np.asarray(days, dtype=np.int64), NA_DAY)


__all__ = ["BOOKKEEPING", "NA_CODE", "NA_INT", "RowBlock", "days_or_na"]
