"""Synthetic identity numbers, names, areas and the registry's structure."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.synthetic.areas import build_areas
from features.synthetic.identity import check_digit, identity_numbers, is_valid_id
from tests.unit.features._synthetic_cache import BASELINE, generated, ledger, parse_day


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out: Path = generated(BASELINE, tmp_path_factory)
    return ledger(out, "children")


def test_check_digit_follows_iso_7064() -> None:
    assert check_digit("11010519491231002") == "X"
    assert is_valid_id("11010519491231002X")
    assert not is_valid_id("11010519491231002Y")
    assert not is_valid_id("1101051949123100")


def test_identity_numbers_are_unique_valid_and_encode_birth_and_sex() -> None:
    rng = np.random.default_rng(0)
    n = 400
    county = np.full(n, "990101")
    birth = np.full(n, int(np.datetime64("2015-06-01").astype(np.int64)))  # all share a day
    male = rng.random(n) < 0.5
    ids = identity_numbers(county, birth, male, rng)
    assert len(set(ids.tolist())) == n
    assert all(is_valid_id(i) for i in ids)
    assert all(i.startswith("99010120150601") for i in ids)
    parity = np.array([int(i[16]) % 2 == 1 for i in ids])
    assert (parity == male).all()


def test_registry_ids_carry_the_99_prefix_birth_date_and_sex(registry: pd.DataFrame) -> None:
    rows = registry.dropna(subset=["id_number", "birth_date", "sex"])
    ids = rows["id_number"].str.strip()
    valid = ids.map(is_valid_id)
    assert valid.mean() > 0.995  # the rest are deliberate digit swaps
    rows, ids = rows[valid], ids[valid]
    assert ids.str.startswith("99").all()
    birth = rows["birth_date"].map(parse_day)
    ok = birth.notna()
    encoded = ids[ok].str[6:14]
    assert (encoded == birth[ok].map(lambda d: d.strftime("%Y%m%d"))).mean() > 0.99
    sex = rows["sex"].str.strip()
    odd = ids.str[16].astype(int) % 2 == 1
    assert ((sex == "男") == odd)[sex.isin(["男", "女"])].mean() > 0.99


def test_siblings_share_a_household_village_and_surname(registry: pd.DataFrame) -> None:
    first = registry[registry["_batch"] == "2024-01"].dropna(
        subset=["household_no", "village_code", "name"]
    )
    sizes = first.groupby("household_no")["id_number"].nunique()
    assert 0.3 < (sizes >= 2).mean() < 0.75
    multi = first[first["household_no"].isin(sizes[sizes >= 2].index)]
    villages = multi.groupby("household_no")["village_code"].nunique()
    assert (villages == 1).mean() > 0.98
    surnames = multi.groupby("household_no")["name"].agg(lambda s: s.str[0].nunique())
    assert (surnames == 1).mean() > 0.95
    prefix = [
        h.strip().startswith(v.strip())
        for h, v in zip(first["household_no"], first["village_code"], strict=True)
    ]
    assert sum(prefix) > 0.98 * len(prefix)


def test_registry_exits_at_sixteen_or_when_parents_return(registry: pd.DataFrame) -> None:
    exits = registry[registry["status"].str.strip() == "退出"]
    reasons = exits["exit_reason"].str.strip().value_counts()
    assert reasons["年满16周岁"] > 50
    assert reasons["父母返乡"] > 50
    aged = exits[exits["exit_reason"].str.strip() == "年满16周岁"]
    birth = aged["birth_date"].map(parse_day)
    left = aged["registered_date"].map(parse_day)
    ok = birth.notna() & left.notna()
    years = [(b2 - b1).days / 365.25 for b1, b2 in zip(birth[ok], left[ok], strict=True)]
    assert np.median(years) == pytest.approx(16.0, abs=0.05)


def test_new_registrations_arrive_every_month(registry: pd.DataFrame) -> None:
    registry = registry.assign(day=registry["registered_date"].map(parse_day)).dropna(
        subset=["day", "id_number"]
    )
    first = registry.sort_values("day").groupby("id_number")["day"].first()
    new = first[first >= date(2024, 2, 1)]
    assert len(new) > 0.1 * len(first)
    assert new.map(lambda d: (d.year, d.month)).nunique() >= 22


def test_area_codes_nest_under_province_99_with_fictional_names() -> None:
    areas = build_areas(30000, np.random.default_rng(4), new_township=False)
    assert len(areas.village_code) == 500
    assert all(len(c) == 12 and c.startswith("99") for c in areas.village_code)
    parent = areas.township_code[areas.village_township]
    assert all(v.startswith(t) for v, t in zip(areas.village_code, parent, strict=True))
    per_township = np.bincount(areas.village_township)
    assert per_township[:-1].min() >= 12 and per_township.max() <= 15
    per_county = np.bincount(areas.township_county)
    assert per_county[:-1].min() >= 8 and per_county.max() <= 10
    assert all(n.endswith("村") for n in areas.village_name)
    assert all(len(c) == 10 and c.startswith("99") for c in areas.school_code)
    assert len(set(areas.school_code)) == len(areas.school_code)
