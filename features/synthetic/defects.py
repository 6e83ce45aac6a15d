"""Realistic ledger defects, injected into the string form of each delivered file and counted.

Rates are per cell (or row) and scale with each village's clerical habits
(``Areas.village_typo``): the new township of the new-township scenario makes about three
times as many mistakes. Every modified cell is counted by kind, so tests and the manifest can
check ingestion finds them all.

=====================  ======================================================================
``missing_optional``   an optional field left blank
``missing_required``   a required field left blank (never ``recorded_at``)
``typo_wrong_char``    a categorical label or 是/否 with one wrong (look-alike) character
``typo_spaces``        extra spaces around or inside a label
``typo_english_code``  the English code (``grandparent``) instead of the Chinese label
``fullwidth_digits``   a number or date typed with full-width digits (２０２５-０３-０４)
``alt_date_format``    2025/3/4 or 2025年3月4日 instead of 2025-03-04
``impossible_date``    2025-02-30, a year 2099, or a visit before the child was born
``id_number_typo``     two adjacent digits of an identity number swapped (check digit fails)
=====================  ======================================================================

Duplicates, late entries and wrong file encodings are made (and counted) by the writer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import TableSpec

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFECT_KINDS: tuple[str, ...] = (
    "missing_optional",
    "missing_required",
    "typo_wrong_char",
    "typo_spaces",
    "typo_english_code",
    "fullwidth_digits",
    "alt_date_format",
    "impossible_date",
    "id_number_typo",
    "duplicate_same_batch",
    "duplicate_next_batch",
    "late_entries",
    "wrong_encoding_files",
)

RATE_MISSING_OPTIONAL = 0.02
RATE_MISSING_REQUIRED = 0.0002
RATE_WRONG_CHAR = 0.0005
RATE_SPACES = 0.0005
RATE_ENGLISH = 0.0003
RATE_FULLWIDTH = 0.0003
RATE_ALT_DATE = 0.002
RATE_IMPOSSIBLE_DATE = 0.0003
RATE_ID_TYPO = 0.0002
RATE_DUPLICATE_SAME = 0.003
RATE_DUPLICATE_NEXT = 0.002
RATE_WRONG_ENCODING_FILE = 0.05

#: Look-alike or sound-alike characters a hurried clerk types instead.
_LOOKALIKE = dict(
    zip(
        "监护能力足失当缺正常父母祖外亲属委托人无良好一般较差重病每周月季度年从不同住校寄宿独自居详男女汉族土家苗农业户口在读休学转出辍是否低保特困册退良高",
        "临户态办促矢挡却止长夫毋袓处新嘱萎拖入天艮妤-船交羞童丙毎固目李渡午丛木问往较奇缩蚀白据洋囲汝汊簇士冢亩衣亚尸日再渎体孛砖山缀昰杏底堡持囚删腿艮膏",
        strict=True,
    )
)
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_EPOCH = date(1970, 1, 1)


def _wrong_char(value: str, rng: np.random.Generator) -> str:
    positions = [i for i, ch in enumerate(value) if ch in _LOOKALIKE]
    if positions:
        i = positions[int(rng.integers(0, len(positions)))]
        return value[:i] + _LOOKALIKE[value[i]] + value[i + 1 :]
    letters = [i for i, ch in enumerate(value) if ch != ";"]
    i = letters[int(rng.integers(0, len(letters)))] if letters else 0
    return value[:i] + value[i] + value[i:]  # a doubled character


def _spaces(value: str, rng: np.random.Generator) -> str:
    where = int(rng.integers(0, 3))
    if where == 0:
        return " " + value
    if where == 1:
        return value + "  "
    i = int(rng.integers(1, max(2, len(value))))
    return value[:i] + " " + value[i:]


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _alt_date(value: str, rng: np.random.Generator) -> str:
    if not _ISO.match(value):
        return value
    y, m, d = value.split("-")
    if rng.random() < 0.5:
        return f"{int(y)}/{int(m)}/{int(d)}"
    return f"{int(y)}年{int(m)}月{int(d)}日"


def _impossible(value: str, rng: np.random.Generator) -> str:
    if not _ISO.match(value):
        return value
    y, m, _ = value.split("-")
    if rng.random() < 0.5:
        return f"{y}-02-{int(rng.integers(30, 32))}"
    return f"2099-{m}-{value[-2:]}"


def _english(codes: dict[str, str], value: str, row: int) -> str:
    return codes.get(value, value)


def _swap_digits(value: str, rng: np.random.Generator) -> str:
    if len(value) != 18:
        return value
    for _ in range(10):
        i = int(rng.integers(6, 16))
        if value[i] != value[i + 1]:
            return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    return value


class DefectInjector:
    """Applies the defects to one delivered table and keeps the running counts.

    Edits are collected per column and applied with one Arrow replacement per column, so a
    million-row table is copied once per defective column, not once per defect kind.
    """

    def __init__(self, rng: np.random.Generator, birth_day: IntArray) -> None:
        self.rng = rng
        self.birth_day = birth_day
        self.counts: Counter[str] = Counter()
        self.by_table: dict[str, Counter[str]] = {}
        self._table: pa.Table | None = None
        self._edits: dict[str, dict[int, str | None]] = {}

    def _count(self, table: str, kind: str, n: int) -> None:
        if n:
            self.counts[kind] += n
            self.by_table.setdefault(table, Counter())[kind] += n

    def _pick(self, n: int, rate: float, mult: FloatArray) -> IntArray:
        return np.flatnonzero(self.rng.random(n) < np.minimum(rate * mult, 0.5))

    def _modify(self, name: str, rows: IntArray, fn: Callable[[str, int], str | None]) -> int:
        """Apply ``fn(value, row)`` to the non-blank cells of ``rows``; count real changes."""
        if len(rows) == 0 or self._table is None:
            return 0
        edits = self._edits.setdefault(name, {})
        original = self._table.column(name).take(pa.array(rows)).to_pylist()
        done = 0
        for row, value in zip(rows.tolist(), original, strict=True):
            current = edits.get(row, value) if row in edits else value
            if current is None or current == "":
                continue
            new = fn(current, row)
            if new != current:
                edits[row] = new
                done += 1
        return done

    def _commit(self) -> pa.Table:
        table = self._table
        assert table is not None
        for name, edits in self._edits.items():
            if not edits:
                continue
            rows = np.asarray(sorted(edits), dtype=np.int64)
            mask = np.zeros(table.num_rows, dtype=bool)
            mask[rows] = True
            col = table.column(name).combine_chunks()
            values = pa.array([edits[int(r)] for r in rows], type=pa.string())
            replaced = pc.replace_with_mask(col, pa.array(mask), values)
            table = table.set_column(table.schema.get_field_index(name), name, replaced)
        self._table, self._edits = None, {}
        return table

    def apply(
        self, table: pa.Table, spec: TableSpec, mult: FloatArray, child: IntArray
    ) -> pa.Table:
        """The table with defects; ``mult`` scales rates per row, ``child`` indexes children."""
        n = table.num_rows
        if n == 0:
            return table
        rng = self.rng
        self._table, self._edits = table, {}
        for col in spec.columns:
            if col.name == spec.recorded_time:
                continue
            rate = RATE_MISSING_REQUIRED if col.required else RATE_MISSING_OPTIONAL
            kind = "missing_required" if col.required else "missing_optional"
            done = self._modify(col.name, self._pick(n, rate, mult), lambda v, r: None)
            self._count(spec.name, kind, done)
        for col in spec.columns:
            if col.dtype in ("category", "bool"):
                codes = {c.zh: c.code for c in col.codes}
                rows = self._pick(n, RATE_WRONG_CHAR, mult)
                done = self._modify(col.name, rows, lambda v, r: _wrong_char(v, rng))
                self._count(spec.name, "typo_wrong_char", done)
                rows = self._pick(n, RATE_SPACES, mult)
                done = self._modify(col.name, rows, lambda v, r: _spaces(v, rng))
                self._count(spec.name, "typo_spaces", done)
                if col.dtype == "category" and not col.multi:
                    rows = self._pick(n, RATE_ENGLISH, mult)
                    done = self._modify(col.name, rows, partial(_english, codes))
                    self._count(spec.name, "typo_english_code", done)
            if col.dtype == "date":
                rows = self._pick(n, RATE_ALT_DATE, mult)
                done = self._modify(col.name, rows, lambda v, r: _alt_date(v, rng))
                self._count(spec.name, "alt_date_format", done)
                if col.name in (spec.event_time, "birth_date"):
                    rows = self._pick(n, RATE_IMPOSSIBLE_DATE, mult)
                    done = self._modify(col.name, rows, lambda v, r: _impossible(v, rng))
                    self._count(spec.name, "impossible_date", done)
            if col.dtype in ("int", "date"):
                rows = self._pick(n, RATE_FULLWIDTH, mult)
                done = self._modify(col.name, rows, lambda v, r: v.translate(_FULLWIDTH))
                self._count(spec.name, "fullwidth_digits", done)
        if spec.name == "visits":
            # a visit dated before the child was born (a wrong year typed)
            def _before_birth(value: str, row: int) -> str:
                day = int(self.birth_day[child[row]]) - int(rng.integers(30, 400))
                return (_EPOCH + timedelta(days=day)).isoformat()

            rows = self._pick(n, RATE_IMPOSSIBLE_DATE, mult)
            self._count(
                spec.name, "impossible_date", self._modify("visit_date", rows, _before_birth)
            )
        if "id_number" in spec.column_names:
            rows = self._pick(n, RATE_ID_TYPO, mult)
            done = self._modify("id_number", rows, lambda v, r: _swap_digits(v, rng))
            self._count(spec.name, "id_number_typo", done)
        return self._commit()


__all__ = ["DEFECT_KINDS", "DefectInjector"]
