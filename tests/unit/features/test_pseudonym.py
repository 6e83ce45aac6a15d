"""Pseudonymisation: keyed, stable, and never the raw number."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from features.pseudonym import pseudonymise, pseudonymise_series

KEY = "test-key-0123456789"


def test_pseudonym_is_stable_and_keyed() -> None:
    number = "99010120150101123X"
    assert pseudonymise(number, KEY) == pseudonymise(number, KEY)
    assert pseudonymise(number, KEY) != pseudonymise(number, KEY + "other")
    assert pseudonymise(number, KEY).startswith("c-")
    assert number not in pseudonymise(number, KEY)


def test_pseudonym_ignores_case_and_surrounding_spaces() -> None:
    assert pseudonymise(" 99010120150101123x ", KEY) == pseudonymise("99010120150101123X", KEY)


def test_household_pseudonyms_have_their_own_prefix() -> None:
    assert pseudonymise("H001", KEY, kind="household").startswith("h-")


@given(st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=18)), max_size=40))
def test_series_matches_scalar_function(values: list[str | None]) -> None:
    out = pseudonymise_series(pd.Series(values, dtype="object"), KEY)
    for raw, hashed in zip(values, out, strict=True):
        if raw is None:
            assert pd.isna(hashed)
        else:
            assert hashed == pseudonymise(raw, KEY)
