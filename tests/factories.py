"""Test factories: valid ledger rows and files built from ``features/schema.py``.

``ledger_row(spec, i)`` returns one valid row of a table as a county would write it (Chinese
labels, 是/否, ISO dates), keyed by canonical column name; ``write_ledger`` writes rows as a
CSV (any encoding), XLSX or Parquet file with the Chinese headers. Values are generic (derived
from dtype, minimum and codes), so a new column in the schema needs no change here. Rows made
with the same ``i`` refer to each other: ``ledger_row(CHILDREN, 3)`` lives in the village of
``village_row(3)`` and every record ``ledger_row(VISITS, 3)`` is about that child.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from features.schema import AREAS, TableSpec

#: The default event date of every record, and the date rows are entered.
EVENT_DATE = "2025-03-03"
RECORDED_DATE = "2025-03-10"
BIRTH_DATE = "2015-06-01"
#: The load date tests pin (dates after it + max_future_days are "in the future").
TODAY = date(2025, 4, 1)
KEY = "test-key-0123456789abcdef"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(i: int, birth: str = BIRTH_DATE) -> str:
    """A valid 18-character identity number (GB 11643 check digit) for child ``i``."""
    body = f"500101{birth.replace('-', '')}{i % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def village_code(i: int) -> str:
    """The 12-digit code of the village child ``i`` lives in."""
    return f"500101001{i % 1000:03d}"


def name_of(i: int) -> str:
    """A child's name, used to check that names never reach the store."""
    return f"测试{chr(0x4E00 + i % 20000)}{chr(0x4E00 + (i * 7) % 20000)}"


def _value(spec: TableSpec, column: str, i: int) -> str | None:
    col = spec.column(column)
    if col.pii == "id_number":
        return id_number(i)
    if col.pii == "name":
        return name_of(i)
    if col.pii == "household":
        return f"H{i:08d}"
    if col.name in ("village_code", "area_code"):
        return village_code(i)
    if col.name == "birth_date":
        return BIRTH_DATE
    if col.name == spec.recorded_time:
        return RECORDED_DATE
    if col.dtype == "date":
        return EVENT_DATE
    if col.dtype == "category":
        return col.codes[0].zh
    if col.dtype == "bool":
        return "否"
    if col.dtype == "int":
        return str(int(col.minimum or 0))
    if col.dtype == "float":
        low, high = col.minimum or 0.0, col.maximum or 100.0
        return f"{(low + high) / 2:g}"
    if col.dtype == "text":
        return "无" if col.required else None
    return f"{col.name.upper()}-{i:06d}"


def ledger_row(spec: TableSpec, i: int = 0, **overrides: str | None) -> dict[str, str | None]:
    """One valid ledger row of ``spec`` as text, keyed by canonical column name."""
    row = {c.name: _value(spec, c.name, i) for c in spec.columns}
    if spec is AREAS:
        row.update(level="村(社区)", area_name=f"测试村{i}", parent_code="500101001000")
    unknown = set(overrides) - set(row)
    if unknown:
        raise KeyError(f"{spec.name} has no columns {sorted(unknown)}")
    row.update(overrides)
    return row


def village_row(i: int = 0, **overrides: str | None) -> dict[str, str | None]:
    """An areas row declaring the village of child ``i``."""
    return ledger_row(AREAS, i, **overrides)


def _cells(spec: TableSpec, rows: Iterable[Mapping[str, Any]], headers: str) -> list[list[Any]]:
    names = [c.zh if headers == "zh" else c.name for c in spec.columns]
    body = [[row.get(c.name) for c in spec.columns] for row in rows]
    return [names, *body]


def ledger_csv(
    spec: TableSpec,
    rows: Iterable[Mapping[str, Any]],
    *,
    encoding: str = "gb18030",
    headers: str = "zh",
) -> bytes:
    """CSV bytes of a ledger (header row of Chinese headers, then the rows)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for line in _cells(spec, rows, headers):
        writer.writerow(["" if v is None else v for v in line])
    return buffer.getvalue().encode(encoding)


def write_ledger(
    path: Path,
    spec: TableSpec,
    rows: Iterable[Mapping[str, Any]],
    *,
    encoding: str = "gb18030",
    headers: str = "zh",
) -> Path:
    """Write a ledger file; the format follows the suffix (``.csv``, ``.xlsx``, ``.parquet``).

    XLSX cells hold whatever the row holds (text, numbers, ``datetime``, formulas as ``=...``);
    the file's bytes are reproducible (fixed zip timestamps and document properties).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        path.write_bytes(ledger_csv(spec, rows, encoding=encoding, headers=headers))
    elif suffix == ".xlsx":
        write_xlsx(path, _cells(spec, rows, headers))
    elif suffix == ".parquet":
        import pandas as pd

        cells = _cells(spec, rows, headers)
        frame = pd.DataFrame(cells[1:], columns=cells[0], dtype="string")
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown ledger suffix {suffix}")
    return path


def write_xlsx(path: Path, cells: list[list[Any]]) -> Path:
    """Write rows of cells to the first sheet of a reproducible XLSX file."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for line in cells:
        sheet.append(line)
    fixed = datetime(2025, 1, 1)
    book.properties.created = fixed
    book.properties.modified = fixed
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(_fixed_zip(buffer.getvalue()))
    return path


def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed entry timestamps so that the same content gives the same bytes."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2025, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time
                content = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*",
                    rb"\g<1>2025-01-01T00:00:00Z",
                    content,
                )
            target.writestr(fixed, content)
    return out.getvalue()
