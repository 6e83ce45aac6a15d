"""The synthetic area hierarchy (city → county → township → village) and its schools.

Codes sit under the non-existent province code 99 (city ``9901``, county ``990101``, township
``990101001``, village ``990101001001``) and names are made-up combinations of common
place-name characters, so nothing can be mistaken for a real place or real data.

Each village carries the habits that shape its ledgers: how reliably it visits, how late it
enters records, whether it is near open water, how often its clerks make typos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

CHILDREN_PER_VILLAGE = 60
VILLAGES_PER_TOWNSHIP = (12, 15)
TOWNSHIPS_PER_COUNTY = (8, 10)
COUNTIES_PER_CITY = 12
#: Counties modelled on the Tujia and Miao autonomous counties of south-east Chongqing.
MINORITY_COUNTY_SHARE = 0.3

_FIRST = list(
    "青石河桥坪坝溪岭竹松柏杨柳花桃梅兰云峰龙凤鹤鹿马金银玉白黄红绿东西南中上下前后大小高新长平安和兴福永宁清明"
    "丰乐泉沙林田星月荷茶杉枫湖凉"
)
_SECOND = list("坪坝湾沟岩塘口溪山坡林田水池园庄寨岗洞岭河桥场营堡院台垭坳槽冲堰滩湖源屯铺集关")


@dataclass
class Areas:
    """Arrays describing every area and school (index = position in the arrays)."""

    city_code: StrArray
    city_name: StrArray
    county_code: StrArray
    county_name: StrArray
    county_city: IntArray
    county_minority: BoolArray
    county_high_school: IntArray
    township_code: StrArray
    township_name: StrArray
    township_county: IntArray
    township_primary: IntArray
    township_middle: IntArray
    township_new: BoolArray  # joins only with the new-township scenario
    village_code: StrArray
    village_name: StrArray
    village_township: IntArray
    village_compliance: FloatArray  # probability a household is visited in a month
    village_review: FloatArray  # probability a file gets its quarterly update
    village_batch_entry: BoolArray  # enters the month's visits in one go at month end
    village_lag_median: FloatArray  # typical days between an event and its entry
    village_water: BoolArray  # river, pond or reservoir near the homes
    village_typo: FloatArray  # multiplier of ledger defect rates
    village_quality: FloatArray  # share of events it hears about and records
    village_remote: BoolArray  # far from school: pupils more often board
    village_role_mix: IntArray  # 0 usual visitor roles, 1 the new township's
    school_code: StrArray
    school_name: StrArray
    school_kind: IntArray  # 0 primary (with kindergarten), 1 middle, 2 senior high
    school_county: IntArray
    school_boarding: FloatArray  # share of pupils who board
    school_lag_median: FloatArray  # days from week end to the absence report

    @property
    def n_villages(self) -> int:
        """Number of villages (including a scenario's new township)."""
        return len(self.village_code)

    @property
    def village_county(self) -> IntArray:
        """County index of each village."""
        return self.township_county[self.village_township]


def _names(rng: np.random.Generator, n: int, suffix: str, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        name = rng.choice(_FIRST) + rng.choice(_SECOND) + suffix
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def build_areas(children: int, rng: np.random.Generator, new_township: bool) -> Areas:
    """Build enough villages for ``children`` (about 60 per village) and their schools.

    With ``new_township`` one more township (its villages flagged ``township_new``) is added
    to the first county: it joins the platform when the new-township scenario starts.
    """
    n_villages = max(1, int(np.ceil(children / CHILDREN_PER_VILLAGE)))
    township_sizes: list[int] = []
    county_sizes: list[int] = []
    placed = 0
    while placed < n_villages:
        n_t = int(rng.integers(TOWNSHIPS_PER_COUNTY[0], TOWNSHIPS_PER_COUNTY[1] + 1))
        made = 0
        while made < n_t and placed < n_villages:
            size = int(rng.integers(VILLAGES_PER_TOWNSHIP[0], VILLAGES_PER_TOWNSHIP[1] + 1))
            size = min(size, n_villages - placed)
            township_sizes.append(size)
            placed += size
            made += 1
        county_sizes.append(made)
    n_counties = len(county_sizes)
    n_cities = int(np.ceil(n_counties / COUNTIES_PER_CITY))
    taken: set[str] = set()
    city_name = _names(rng, n_cities, "市", taken)
    city_code = [f"99{c + 1:02d}" for c in range(n_cities)]
    county_city = np.arange(n_counties) // COUNTIES_PER_CITY
    county_code = [
        f"{city_code[county_city[k]]}{k % COUNTIES_PER_CITY + 1:02d}" for k in range(n_counties)
    ]
    county_name = _names(rng, n_counties, "县", taken)
    county_minority = rng.random(n_counties) < MINORITY_COUNTY_SHARE

    township_county: list[int] = []
    for k, n_t in enumerate(county_sizes):
        township_county.extend([k] * n_t)
    township_new = [False] * len(township_county)
    if new_township:
        township_county.append(0)
        township_new.append(True)
        township_sizes.append(
            int(rng.integers(VILLAGES_PER_TOWNSHIP[0], VILLAGES_PER_TOWNSHIP[1] + 1))
        )
    n_townships = len(township_county)
    serial_in_county: dict[int, int] = {}
    township_code: list[str] = []
    for k in township_county:
        serial_in_county[k] = serial_in_county.get(k, 0) + 1
        township_code.append(f"{county_code[k]}{serial_in_county[k]:03d}")
    township_name = [
        n[:-1] + ("乡" if rng.random() < 0.35 else "镇")
        for n in _names(rng, n_townships, "x", taken)
    ]

    village_township = np.repeat(np.arange(n_townships), township_sizes)
    village_code: list[str] = []
    village_name: list[str] = []
    for t, size in enumerate(township_sizes):
        local: set[str] = set()
        names = _names(rng, size, "村", local)
        for v in range(size):
            village_code.append(f"{township_code[t]}{v + 1:03d}")
            village_name.append(names[v])
    n_v = len(village_code)
    is_new_v = np.asarray(township_new, dtype=bool)[village_township]

    # Schools: a central primary school per township (with its kindergarten), a middle school
    # shared by two neighbouring townships of a county, a senior high school per county.
    school_code: list[str] = []
    school_name: list[str] = []
    school_kind: list[int] = []
    school_county: list[int] = []
    school_serial: dict[int, int] = {}

    def _add_school(county: int, name: str, kind: int) -> int:
        school_serial[county] = school_serial.get(county, 0) + 1
        code = f"99{county_code[county][2:6]}{school_serial[county]:04d}"
        school_code.append(code)
        school_name.append(name)
        school_kind.append(kind)
        school_county.append(county)
        return len(school_code) - 1

    county_high = [_add_school(k, f"{county_name[k][:-1]}第一中学", 2) for k in range(n_counties)]
    township_primary = [
        _add_school(township_county[t], f"{township_name[t]}中心小学", 0)
        for t in range(n_townships)
    ]
    township_middle = [0] * n_townships
    for k in range(n_counties):
        members = [t for t in range(n_townships) if township_county[t] == k and not township_new[t]]
        for i in range(0, len(members), 2):
            school = _add_school(k, f"{township_name[members[i]]}中学", 1)
            for t in members[i : i + 2]:
                township_middle[t] = school
    for t in range(n_townships):
        if township_new[t]:
            # the newcomer sends its pupils to the county's first middle school
            first = next(
                u
                for u in range(n_townships)
                if township_county[u] == township_county[t] and not township_new[u]
            )
            township_middle[t] = township_middle[first]
    kinds = np.asarray(school_kind)
    n_s = len(school_code)
    boarding = np.where(
        kinds == 0,
        rng.uniform(0.02, 0.12, n_s),
        np.where(
            kinds == 1,
            np.where(
                rng.random(n_s) < 0.7, rng.uniform(0.45, 0.8, n_s), rng.uniform(0.05, 0.2, n_s)
            ),
            0.9,
        ),
    )

    compliance = rng.beta(7.0, 1.8, n_v)
    lag = np.exp(rng.normal(np.log(4.0), 0.6, n_v))
    typo = np.exp(rng.normal(-0.18, 0.6, n_v))
    quality = rng.beta(9.0, 2.0, n_v)
    # The new township enters records later, leaves more gaps, and sends other staff.
    lag = np.where(is_new_v, lag * 3.0 + 10.0, lag)
    typo = np.where(is_new_v, typo * 3.0, typo)
    return Areas(
        city_code=np.asarray(city_code),
        city_name=np.asarray(city_name),
        county_code=np.asarray(county_code),
        county_name=np.asarray(county_name),
        county_city=county_city.astype(np.int64),
        county_minority=county_minority,
        county_high_school=np.asarray(county_high, dtype=np.int64),
        township_code=np.asarray(township_code),
        township_name=np.asarray(township_name),
        township_county=np.asarray(township_county, dtype=np.int64),
        township_primary=np.asarray(township_primary, dtype=np.int64),
        township_middle=np.asarray(township_middle, dtype=np.int64),
        township_new=np.asarray(township_new, dtype=bool),
        village_code=np.asarray(village_code),
        village_name=np.asarray(village_name),
        village_township=village_township.astype(np.int64),
        village_compliance=compliance,
        village_review=rng.beta(8.0, 2.0, n_v),
        village_batch_entry=(rng.random(n_v) < 0.3) | is_new_v,
        village_lag_median=lag,
        village_water=rng.random(n_v) < 0.35,
        village_typo=typo,
        village_quality=quality,
        village_remote=rng.random(n_v) < 0.3,
        village_role_mix=is_new_v.astype(np.int64),
        school_code=np.asarray(school_code),
        school_name=np.asarray(school_name),
        school_kind=kinds.astype(np.int64),
        school_county=np.asarray(school_county, dtype=np.int64),
        school_boarding=boarding,
        school_lag_median=np.exp(rng.normal(np.log(3.0), 0.5, n_s)),
    )


__all__ = ["CHILDREN_PER_VILLAGE", "Areas", "build_areas"]
