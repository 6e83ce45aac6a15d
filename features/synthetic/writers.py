"""Delivery batches: rows routed by the month they were entered, turned into ledger files.

Each month's batch holds exactly the rows entered (``recorded_at``) that month, late entries
about earlier events included, plus a few rows delivered a second time from the previous
batch. Values are written as a county's ledgers carry them: Chinese headers in schema order,
Chinese labels, 是/否, ``YYYY-MM-DD`` dates; CSV in GB18030 (now and then a file saved as
UTF-8, with or without a BOM), XLSX through openpyxl's write-only mode, or Parquet with the same
string values so ingestion treats every format alike.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.schema import TABLES, TABLES_BY_NAME, Column, TableSpec
from features.synthetic.areas import Areas
from features.synthetic.defects import (
    RATE_DUPLICATE_NEXT,
    RATE_DUPLICATE_SAME,
    RATE_WRONG_ENCODING_FILE,
    DefectInjector,
)
from features.synthetic.ledgers import ACTIONS, ID_PREFIX, NEEDS, MonthLedgers
from features.synthetic.population import NA_DAY, Population
from features.synthetic.rows import NA_INT, RowBlock
from features.synthetic.timeline import Timeline

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_TRUE_FALSE = pa.array(["否", "是"])
#: Columns holding an index into a lookup array, and the ``Population``/``Areas`` array.
_LOOKUP_COLUMNS = {
    "id_number": "id",
    "name": "name",
    "household_no": "household",
    "village_code": "village",
    "school_code": "school",
}
_SERIAL_COLUMNS = {
    "visit_id": "visits",
    "event_id": "school_events",
    "incident_id": "incidents",
    "police_receipt": "receipt",
}
_PHRASES = {"needs": NEEDS, "actions": ACTIONS}
_FIXED_TIME = datetime(2024, 1, 1)


class Encoder:
    """Turns typed :class:`RowBlock` columns into the strings a ledger file carries."""

    def __init__(self, pop: Population, areas: Areas) -> None:
        self.lookups = {
            "id": pa.array(pop.c_id.tolist(), pa.string()),
            "name": pa.array(pop.c_name.tolist(), pa.string()),
            "household": pa.array(pop.hh_no.tolist(), pa.string()),
            "village": pa.array(areas.village_code.tolist(), pa.string()),
            "school": pa.array(areas.school_code.tolist(), pa.string()),
        }
        self.labels: dict[tuple[str, str], pa.Array] = {}
        for spec in TABLES:
            for col in spec.columns:
                if col.codes:
                    self.labels[(spec.name, col.name)] = self._labels(col)

    @staticmethod
    def _labels(col: Column) -> pa.Array:
        if not col.multi:
            return pa.array([c.zh for c in col.codes], pa.string())
        # every bit mask over the codes, as the ';'-joined labels
        out = []
        for mask in range(1 << len(col.codes)):
            out.append(";".join(c.zh for i, c in enumerate(col.codes) if mask >> i & 1))
        return pa.array(out, pa.string())

    def column(self, spec: TableSpec, col: Column, values: npt.NDArray[np.generic]) -> pa.Array:
        """One column as strings (nulls for missing values)."""
        if col.name in _LOOKUP_COLUMNS:
            idx = values.astype(np.int64)
            return pc.take(self.lookups[_LOOKUP_COLUMNS[col.name]], pa.array(idx, mask=idx < 0))
        if col.name in _SERIAL_COLUMNS:
            num = values.astype(np.int64)
            text = pc.cast(pa.array(num, mask=num == NA_INT), pa.string())
            return pc.binary_join_element_wise(ID_PREFIX[_SERIAL_COLUMNS[col.name]], text, "")
        if col.name in _PHRASES:
            idx = values.astype(np.int64)
            return pc.take(pa.array(_PHRASES[col.name], pa.string()), pa.array(idx, mask=idx < 0))
        if col.codes:
            idx = values.astype(np.int64)
            return pc.take(self.labels[(spec.name, col.name)], pa.array(idx, mask=idx < 0))
        if col.dtype == "bool":
            idx = values.astype(np.int64)
            return pc.take(_TRUE_FALSE, pa.array(idx, mask=idx < 0))
        if col.dtype == "date":
            day = values.astype(np.int64)
            arr = pa.array(day.astype(np.int32), mask=day == NA_DAY).cast(pa.date32())
            return pc.cast(arr, pa.string())
        if col.dtype == "int":
            num = values.astype(np.int64)
            return pc.cast(pa.array(num, mask=num == NA_INT), pa.string())
        if col.dtype == "float":
            real = np.round(values.astype(np.float64), 1)
            return pc.cast(pa.array(real, mask=np.isnan(real)), pa.string())
        strings = [None if v in ("", None) else str(v) for v in values.tolist()]
        return pa.array(strings, pa.string())

    def table(self, block: RowBlock) -> pa.Table:
        """The block as a table of strings with canonical column names."""
        spec = TABLES_BY_NAME[block.table]
        arrays = [self.column(spec, col, block[col.name]) for col in spec.columns]
        return pa.Table.from_arrays(arrays, names=list(spec.column_names))


def _csv_bytes(table: pa.Table, headers: list[str]) -> str:
    buffer = io.BytesIO()
    if table.num_rows:
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        try:
            pacsv.write_csv(table, buffer, options)
        except pa.ArrowInvalid:
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return ",".join(headers) + "\n" + buffer.getvalue().decode("utf-8")


def _xlsx_bytes(table: pa.Table, headers: list[str], title: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.creator = "shouhu-synthetic"
    ws = wb.create_sheet(title=title[:31])
    ws.append(headers)
    for row in zip(*(table.column(i).to_pylist() for i in range(table.num_columns)), strict=True):
        ws.append(list(row))
    raw = io.BytesIO()
    wb.save(raw)
    return _normalise_zip(raw.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite an XLSX archive with fixed timestamps so equal content gives equal bytes."""
    stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp, content.decode("utf-8"))
                content = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, content)
    return out.getvalue()


class BatchWriter:
    """Routes rows to the batch of the month they were entered and writes each batch."""

    def __init__(
        self,
        out: Path,
        fmt: str,
        tl: Timeline,
        encoder: Encoder,
        injector: DefectInjector,
        village_typo: FloatArray,
        rng: np.random.Generator,
    ) -> None:
        self.out, self.fmt, self.tl = out, fmt, tl
        self.encoder, self.injector, self.rng = encoder, injector, rng
        self.village_typo = village_typo
        self.pending: dict[int, dict[str, list[RowBlock]]] = {}
        self.carry: dict[str, pa.Table] = {}
        self.rows: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.undelivered: Counter[str] = Counter()
        self.files: list[str] = []
        self.batches: list[str] = []
        self.wrong_encoding: list[str] = []
        self.month_starts = np.asarray([m.start_day for m in tl.months], dtype=np.int64)

    def add(self, ledgers: MonthLedgers, m: int) -> None:
        """Queue this month's rows under the month each was entered in."""
        last = self.tl.n_period_months - 1
        for table, blocks in ledgers.blocks.items():
            block = RowBlock.concat(table, blocks)
            month = np.searchsorted(self.month_starts, block["_rec"], side="right") - 1
            month = np.maximum(month, m)
            beyond = month > last
            self.undelivered[table] += int(beyond.sum())
            for target in np.unique(month[~beyond]):
                part = block.take(month == target)
                self.pending.setdefault(int(target), {}).setdefault(table, []).append(part)

    def flush(self, m: int) -> dict[str, int]:
        """Write batch ``m`` (every table with rows); return rows written per table."""
        label = self.tl.months[m].label
        folder = self.out / "sources" / label
        folder.mkdir(parents=True, exist_ok=True)
        queued = self.pending.pop(m, {})
        written: dict[str, int] = {}
        evt_month = self.month_starts
        for spec in TABLES:
            parts: list[pa.Table] = []
            # last month's second deliveries go first: take them before making new ones
            carried = self.carry.pop(spec.name, None)
            blocks = queued.get(spec.name, [])
            if blocks:
                block = RowBlock.concat(spec.name, blocks)
                order = np.lexsort((block["_child"], block["_evt"], block["_rec"]))
                block = block.take(order)
                evt = block["_evt"].astype(np.int64)
                month_of_evt = np.searchsorted(evt_month, evt, side="right") - 1
                # a backfilled history (events before the period) is not a late entry
                late = int(((month_of_evt < m) & (evt >= self.tl.first_day)).sum())
                self.late[spec.name] += late
                self.injector.counts["late_entries"] += late
                village = block["_village"].astype(np.int64)
                mult = np.where(village >= 0, self.village_typo[np.maximum(village, 0)], 1.0)
                table = self.encoder.table(block)
                table = self.injector.apply(table, spec, mult, block["_child"].astype(np.int64))
                table = self._duplicate_within(table, spec.name)
                parts.append(table)
                self._carry_next(table, spec.name)
            if carried is not None:
                self.injector.counts["duplicate_next_batch"] += carried.num_rows
                self.injector.by_table.setdefault(spec.name, Counter())["duplicate_next_batch"] += (
                    carried.num_rows
                )
                parts.append(carried)
            if not parts:
                continue
            table = pa.concat_tables(parts)
            self._write(table, spec, folder, label)
            written[spec.name] = table.num_rows
            self.rows[spec.name] += table.num_rows
        self.batches.append(label)
        return written

    def _duplicate_within(self, table: pa.Table, name: str) -> pa.Table:
        n = table.num_rows
        dup = np.flatnonzero(self.rng.random(n) < RATE_DUPLICATE_SAME)
        if len(dup) == 0:
            return table
        self.injector.counts["duplicate_same_batch"] += len(dup)
        self.injector.by_table.setdefault(name, Counter())["duplicate_same_batch"] += len(dup)
        key = np.concatenate([np.arange(n, dtype=np.float64), dup + 0.5])
        order = np.argsort(key, kind="stable")
        rows = np.concatenate([np.arange(n), dup])[order]
        return table.take(pa.array(rows))

    def _carry_next(self, table: pa.Table, name: str) -> None:
        dup = np.flatnonzero(self.rng.random(table.num_rows) < RATE_DUPLICATE_NEXT)
        if len(dup) == 0:
            return
        self.carry[name] = table.take(pa.array(dup))

    def _write(self, table: pa.Table, spec: TableSpec, folder: Path, label: str) -> None:
        headers = [c.zh for c in spec.columns]
        path = folder / f"{spec.zh}_{label}.{self.fmt}"
        # drawn for every format, so all formats carry the same values for the same seed
        u = self.rng.random()
        if self.fmt == "parquet":
            pq.write_table(
                table.rename_columns(headers), path, compression="zstd", compression_level=1
            )
        elif self.fmt == "xlsx":
            path.write_bytes(_xlsx_bytes(table, headers, spec.zh))
        else:
            text = _csv_bytes(table, headers)
            if u < RATE_WRONG_ENCODING_FILE / 2:
                data, wrong = text.encode("utf-8"), True
            elif u < RATE_WRONG_ENCODING_FILE:
                data, wrong = text.encode("utf-8-sig"), True
            else:
                data, wrong = text.encode("gb18030"), False
            if wrong:
                self.wrong_encoding.append(f"{label}/{path.name}")
                self.injector.counts["wrong_encoding_files"] += 1
            path.write_bytes(data)
        self.files.append(f"{label}/{path.name}")


__all__ = ["BatchWriter", "Encoder"]
