"""Area codes and scope checks: a child is visible only in the caller's area and below."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service.areas import (
    Area,
    AreaDirectory,
    area_level,
    is_area_code,
    narrow,
    parent_code,
    visible,
)


@dataclass(frozen=True)
class Caller:
    area_code: str


@pytest.mark.parametrize(
    ("scope", "village", "expected"),
    [
        ("9901", "990101001001", True),  # city sees every village below
        ("990101", "990101001001", True),
        ("990101001", "990101001001", True),
        ("990101001001", "990101001001", True),
        ("990101001", "990101002001", False),  # a neighbouring township
        ("990102", "990101001001", False),  # another county
        ("990101001", None, False),  # a child without a known village is nobody's
    ],
)
def test_visible_follows_the_code_prefix(scope: str, village: str | None, expected: bool) -> None:
    assert visible(Caller(scope), village) is expected


def test_narrow_keeps_requests_inside_the_callers_area() -> None:
    caller = Caller("990101")
    assert narrow(caller, None) == "990101"
    assert narrow(caller, "990101003") == "990101003"
    assert narrow(caller, "990102003") is None
    assert narrow(caller, "9901") is None  # wider than the caller's own area


def test_levels_and_parents_of_codes() -> None:
    assert [area_level(c) for c in ("9901", "990101", "990101001", "990101001001")] == [
        "city",
        "county",
        "township",
        "village",
    ]
    assert parent_code("990101001001") == "990101001"
    assert parent_code("9901") is None
    assert not is_area_code("99010")
    with pytest.raises(ValueError, match="not an area code"):
        area_level("abc")


def test_directory_path_runs_from_city_to_village() -> None:
    directory = AreaDirectory(
        {
            "9901": Area("9901", "city", "溪场市", None),
            "990101": Area("990101", "county", "高台县", "9901"),
            "990101001": Area("990101001", "township", "田堰镇", "990101"),
        }
    )
    assert [a.code for a in directory.path("990101001001")] == ["9901", "990101", "990101001"]
    assert directory.name("990101") == "高台县"
    assert directory.name("990199") is None
    assert [a.code for a in directory.children_of("9901")] == ["990101"]
