"""What the API answers from memory equals what it would read from the stores.

- The child file from the snapshot's records equals the file read from the DuckDB stores, and
  a store that changed after the snapshot is read directly.
- A score with ``only_shown`` keeps exactly the top reasons of the full explanation.
- A bearer token revoked through the API stops working at once, cache or not.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.repository.children import child_file, current_records
from service.schemas.common import Lang
from service.state import ServiceState
from tests._service_home import ServedHome, add_user, served_home, shared_state


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    return served_home(tmp_path_factory)


@pytest.fixture(scope="module")
def state(served: ServedHome, tmp_path_factory: pytest.TempPathFactory) -> ServiceState:
    return shared_state(served, tmp_path_factory)


def _sample(state: ServiceState, k: int) -> list[str]:
    scored = list(state.snapshot.board.row_of)
    registered = [c for c in state.snapshot.villages if c not in state.snapshot.board.row_of]
    rng = random.Random(4)
    return rng.sample(scored, min(k, len(scored))) + registered[:3]


def test_the_child_file_from_memory_equals_the_stores(state: ServiceState) -> None:
    records = current_records(state)
    assert records is not None and records.nbytes > 0
    assert records.history is not None
    cases: list[tuple[Lang, int]] = [("zh", 24), ("en", 120), ("en", 3)]
    events = scores = 0
    with state.sessions() as session:
        for child in _sample(state, 12):
            for lang, months in cases:
                held = child_file(state, session, child, lang, months, records=records)
                state.snapshot.records = None  # no records: the stores are read
                try:
                    read = child_file(state, session, child, lang, months)
                finally:
                    state.snapshot.records = records
                assert held == read, (child, lang, months)
                events, scores = events + len(held.timeline), scores + len(held.scores)
    assert events > 50 and scores >= 12  # the comparison covered real content


def test_a_store_changed_after_the_snapshot_is_read_directly(state: ServiceState) -> None:
    assert current_records(state) is state.snapshot.records
    stamps = state.snapshot.stamps
    state.snapshot.stamps = (None, stamps[1])  # as if the feature store changed since
    try:
        assert current_records(state) is None
        child = next(iter(state.snapshot.board.row_of))
        with state.sessions() as session:
            read = child_file(state, session, child, "en", 24)
        assert read.profile.child_id == child
    finally:
        state.snapshot.stamps = stamps


def test_a_score_keeps_exactly_the_top_reasons(state: ServiceState) -> None:
    children = list(state.snapshot.board.row_of)[:40]
    full = state.scorer.score(children, explain=True, top=5, per_domain=0)
    short = state.scorer.score(children, explain=True, top=5, per_domain=0, only_shown=True)
    for a, b in zip(full, short, strict=True):
        assert b.reasons == a.reasons[:5]
        assert (b.p_any, b.tier, b.margin, b.bias) == (a.p_any, a.tier, a.margin, a.bias)
    grouped = state.scorer.score(children[:5], explain=True, top=3, per_domain=2)
    kept = state.scorer.score(children[:5], explain=True, top=3, per_domain=2, only_shown=True)
    for a, b in zip(grouped, kept, strict=True):
        assert b.reasons == tuple(r for r in a.reasons if r.zh)


@pytest.fixture(scope="module")
def client(state: ServiceState) -> Iterator[TestClient]:
    with TestClient(create_app(state.settings, state=state)) as c:
        yield c


def test_a_revoked_token_stops_at_once(
    client: TestClient, state: ServiceState, served: ServedHome
) -> None:
    token = add_user(state, "memory_supervisor", "supervisor", served.county, lang="en")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert state.verified_tokens.get(token) is not None  # verified once, then remembered
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    assert state.verified_tokens.get(token) is None
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert client.get("/api/v1/watchlist", headers=headers).status_code == 401
