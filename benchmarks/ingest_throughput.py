"""Ingestion throughput: write a registry and a visits ledger of N rows, load them, time it.

Run: ``.venv/bin/python -m benchmarks.ingest_throughput [ROWS]`` (default 500,000). Prints
rows/s for each file; a measurement, never a pass/fail test.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.ingest import ingest_file
from features.mapping import load_mapping
from features.rawstore import connect
from features.schema import AREAS, CHILDREN, VISITS

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = np.array(list("10X98765432"))


def _id_numbers(n: int) -> np.ndarray:
    serial = np.arange(n)
    region = 500101 + serial // 3_000_000
    birth = np.datetime64("2012-01-01") + (serial % 3000).astype("timedelta64[D]")
    ymd = pd.DatetimeIndex(birth).strftime("%Y%m%d").to_numpy()
    body = np.char.add(
        np.char.add(region.astype(str), ymd.astype(str)),
        np.char.zfill(((serial // 3000) % 1000).astype(str), 3),
    )
    digits = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(n, 17) - 48
    check = _CHECK[(digits @ _WEIGHTS) % 11]
    return np.char.add(body, check), pd.DatetimeIndex(birth).strftime("%Y-%m-%d").to_numpy()


def _write(path: Path, spec, frame: pd.DataFrame) -> Path:
    frame.columns = [spec.column(c).zh for c in frame.columns]
    frame.to_csv(path, index=False, encoding="gb18030")
    return path


def main(rows: int) -> None:
    rng = np.random.default_rng(7)
    out = Path(tempfile.mkdtemp(prefix="shouhu-bench-"))
    ids, births = _id_numbers(rows)
    villages = [f"500101001{i:03d}" for i in range(500)]
    areas = pd.DataFrame(
        {
            "area_code": villages,
            "level": "村(社区)",
            "area_name": "村",
            "parent_code": "500101001000",
            "effective_date": "2024-01-01",
            "recorded_at": "2024-01-02",
        }
    )
    children = pd.DataFrame(
        {
            "id_number": ids,
            "name": "张三",
            "household_no": np.char.add("H", ids.astype(str)),
            "sex": rng.choice(["男", "女"], rows),
            "birth_date": births,
            "ethnicity": "汉族",
            "hukou_status": "农业户口",
            "village_code": rng.choice(villages, rows),
            "school_code": "S1",
            "left_behind_type": "父母双方外出务工",
            "disability": "否",
            "serious_illness": "否",
            "poverty_status": "无",
            "status": "在册",
            "exit_reason": "",
            "registered_date": "2024-01-05",
            "recorded_at": "2024-01-06",
        }
    )
    visit_day = pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 28, rows), "D")
    visits = pd.DataFrame(
        {
            "visit_id": np.char.add("V2025030", np.arange(rows).astype(str)),
            "id_number": ids,
            "visit_date": visit_day.strftime("%Y-%m-%d"),
            "visitor_role": rng.choice(["儿童主任", "村干部", "社工"], rows),
            "child_seen": rng.choice(["是", "否"], rows),
            "living_arrangement": "与监护人同住",
            "guardian_present": "是",
            "guardian_capable": "是",
            "home_hazards": rng.choice(["无", "临近水域", "临近水域;用电隐患"], rows),
            "injury_signs": "否",
            "neglect_signs": "否",
            "emotional_state": "良好",
            "needs": rng.choice(["", "学习辅导", "心理疏导"], rows),
            "actions": "",
            "recorded_at": (visit_day + pd.Timedelta(days=3)).strftime("%Y-%m-%d"),
        }
    )
    files = [
        _write(out / "行政区划_2025-03.csv", AREAS, areas),
        _write(out / "留守儿童基本信息_2025-03.csv", CHILDREN, children),
        _write(out / "走访记录_2025-03.csv", VISITS, visits),
    ]
    con = connect(out / "bench.duckdb")
    mapping = load_mapping(None)
    for path in files:
        started = time.perf_counter()
        result = ingest_file(
            con, path, mapping=mapping, key="bench-key-0123456789", max_future_days=1
        )
        seconds = time.perf_counter() - started
        n = result.accepted + result.rejected + result.duplicates
        print(
            f"{path.name}: {n} rows in {seconds:.2f} s = {n / seconds:,.0f} rows/s "
            f"(accepted {result.accepted}, rejected {result.rejected})"
        )
    con.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500_000)
