"""Where each child is at school on a given day: grade, school, boarding, enrolment.

Grades follow from the birth date and a fixed late-start flag, so they are a deterministic
function of the date; the oracle uses the same function to know who will be in compulsory
school in the coming months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.synthetic.areas import Areas
from features.synthetic.population import YEAR, Population, school_year_of

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PRIMARY, MIDDLE, HIGH = 0, 1, 2
COMPULSORY_LAST_GRADE = 9
SENIOR_HIGH_LAST_GRADE = 12


@dataclass
class Schooling:
    """School situation of some children on one day (``school`` is -1 when not enrolled)."""

    grade: IntArray
    enrolled: BoolArray
    compulsory: BoolArray
    school: IntArray
    boarding: BoolArray


def schooling(pop: Population, idx: IntArray, day: int, areas: Areas, first_day: int) -> Schooling:
    """School situation of children ``idx`` on ``day``."""
    year0 = int(school_year_of(first_day))
    years = int(school_year_of(day)) - year0
    grade = pop.c_grade_ref[idx] + years
    sept = int(np.datetime64(f"{year0 + years}-09-01").astype(np.int64))
    age_sept = np.floor((sept - pop.c_birth[idx]) / YEAR)
    kinder = (grade <= 0) & (age_sept >= 3) & pop.c_kindergarten[idx]
    compulsory = (grade >= 1) & (grade <= COMPULSORY_LAST_GRADE) & pop.c_will_enrol[idx]
    high = (
        (grade > COMPULSORY_LAST_GRADE)
        & (grade <= SENIOR_HIGH_LAST_GRADE)
        & pop.c_senior_high[idx]
        & pop.c_will_enrol[idx]
    )
    enrolled = kinder | compulsory | high
    township = areas.village_township[pop.hh_village[pop.c_hh[idx]]]
    county = areas.township_county[township]
    school = np.select(
        [enrolled & (grade <= 6), enrolled & (grade <= COMPULSORY_LAST_GRADE), high],
        [
            areas.township_primary[township],
            areas.township_middle[township],
            areas.county_high_school[county],
        ],
        default=-1,
    )
    boarding = np.select(
        [enrolled & (grade >= 4) & (grade <= 6), enrolled & (grade >= 7) & (grade <= 9), high],
        [pop.c_board_primary[idx], pop.c_board_middle[idx], np.ones(len(idx), dtype=bool)],
        default=False,
    )
    return Schooling(
        grade=np.where(kinder, 0, grade).astype(np.int64),
        enrolled=enrolled,
        compulsory=compulsory,
        school=school.astype(np.int64),
        boarding=boarding.astype(bool),
    )


__all__ = ["Schooling", "schooling"]
