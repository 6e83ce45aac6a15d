"""Fixtures of the behavioural model tests: a real population and the model trained on it."""

from __future__ import annotations

import pytest

from tests._trained_model import Prepared, prepared


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The shared small population, its training rows and the model trained on them."""
    return prepared(tmp_path_factory)
