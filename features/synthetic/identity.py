"""Synthetic identity numbers and names.

Identity numbers follow the 18-digit layout (GB 11643): a 6-digit address code, the birth date
``YYYYMMDD``, a 3-digit sequence (odd for boys, even for girls) and an ISO 7064 MOD 11-2 check
digit. The address code is a county code under the non-existent province 99, so no synthetic
number can belong to a real person.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK = np.array(list("10X98765432"))

#: Common surnames; the minority-county list leans on Tujia and Miao family names.
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万严覃戴莫向冉"
)
MINORITY_SURNAMES = list("向田彭冉龙石杨吴麻秦张李黄王")
GIVEN_BOY = list("浩宇轩子涵俊杰明辉文博睿晨阳磊鹏强伟涛志豪帅宏建林波鑫一航成龙天佳")
GIVEN_GIRL = list("欣怡雨涵思梦婷佳琪晓雪丽娟芳敏静慧颖玲萱可心诗悦瑶倩妍蕾月春秀")


def check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits.

    Examples
    --------
    >>> check_digit("11010519491231002")
    'X'
    """
    total = sum(int(d) * int(w) for d, w in zip(first17, _WEIGHTS, strict=True))
    return str(_CHECK[total % 11])


def is_valid_id(number: str) -> bool:
    """Whether an 18-character identity number has the right layout and check digit."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return check_digit(number[:17]) == number[17].upper()


def identity_numbers(
    county_code: StrArray,
    birth_day: IntArray,
    male: npt.NDArray[np.bool_],
    rng: np.random.Generator,
) -> StrArray:
    """Unique identity numbers for children, vectorised.

    Within each (county, birth date, sex) the sequence numbers are consecutive odd (boys) or
    even (girls) numbers from a random start, so no two children share a number.
    """
    n = len(birth_day)
    dates = (np.asarray(birth_day, dtype="datetime64[D]")).astype("datetime64[D]")
    ymd = np.char.replace(np.datetime_as_string(dates, unit="D"), "-", "")
    county_id = np.unique(county_code, return_inverse=True)[1]
    key = (county_id.astype(np.int64) * 100_000 + (birth_day - birth_day.min())) * 2 + male
    order = np.lexsort((rng.random(n), key))
    sorted_key = key[order]
    first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    base = rng.integers(0, 300, n)
    # one start per group: take the start drawn for the group's first member
    group_base = np.empty(n, dtype=np.int64)
    group_base[order] = base[order][group_start]
    seq = 2 * (group_base + rank) + np.where(male, 1, 2)
    if seq.max(initial=0) > 999:
        raise ValueError("too many children share a county and a birth date")
    first17 = np.char.add(
        np.char.add(county_code.astype("U6"), ymd), np.char.zfill(seq.astype("U3"), 3)
    )
    digits = np.frombuffer(first17.astype("S17").tobytes(), dtype=np.uint8).reshape(n, 17)
    total = (digits.astype(np.int64) - 48) @ _WEIGHTS
    return np.char.add(first17, _CHECK[total % 11])


def names(surname: StrArray, male: npt.NDArray[np.bool_], rng: np.random.Generator) -> StrArray:
    """Given names (one or two characters by sex) after each child's family name."""
    n = len(surname)
    boy1 = np.asarray(GIVEN_BOY)[rng.integers(0, len(GIVEN_BOY), n)]
    boy2 = np.asarray(GIVEN_BOY)[rng.integers(0, len(GIVEN_BOY), n)]
    girl1 = np.asarray(GIVEN_GIRL)[rng.integers(0, len(GIVEN_GIRL), n)]
    girl2 = np.asarray(GIVEN_GIRL)[rng.integers(0, len(GIVEN_GIRL), n)]
    first = np.where(male, boy1, girl1)
    second = np.where(male, boy2, girl2)
    two = rng.random(n) < 0.75
    given = np.where(two & (first != second), np.char.add(first, second), first)
    return np.char.add(surname, given)


def surnames(minority: npt.NDArray[np.bool_], rng: np.random.Generator) -> StrArray:
    """One family name per household, leaning on Tujia and Miao names where they live."""
    n = len(minority)
    common = np.asarray(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    local = np.asarray(MINORITY_SURNAMES)[rng.integers(0, len(MINORITY_SURNAMES), n)]
    return np.where(minority & (rng.random(n) < 0.6), local, common)


__all__ = ["check_digit", "identity_numbers", "is_valid_id", "names", "surnames"]
