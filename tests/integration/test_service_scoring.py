"""The service scores and explains as the scoring run and ``shouhu models explain`` do.

The service's fast path (numpy rows, batch probabilities held in the snapshot) must give the
same numbers as the library it never re-implements: ``models.scoring.score`` for the tier and
calibrated risk of every child whose features did not change since the run, and
``models.explain.explain_child`` for the reasons.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.explain import explain_child
from service.app import create_app
from service.state import ServiceState
from tests._service_home import AS_OF, ServedHome, add_user, served_home, shared_state


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    return served_home(tmp_path_factory)


@pytest.fixture(scope="module")
def state(served: ServedHome, tmp_path_factory: pytest.TempPathFactory) -> ServiceState:
    return shared_state(served, tmp_path_factory)


@pytest.fixture(scope="module")
def client(state: ServiceState, served: ServedHome) -> Iterator[tuple[TestClient, dict[str, str]]]:
    token = add_user(state, "scoring_supervisor", "supervisor", served.county, lang="en")
    with TestClient(create_app(state.settings, state=state)) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_score_now_matches_the_stored_run_for_unchanged_features(state: ServiceState) -> None:
    run = state.snapshot.board.rows
    assert state.snapshot.as_of == AS_OF
    stored = set(run["policy_version"].astype(str))
    assert stored == {state.policy_version}
    sample = run.sample(n=min(400, len(run)), random_state=0)
    scored = state.scorer.score(list(sample["child_id"]), explain=False)
    p_any = np.array([s.p_any for s in scored])
    np.testing.assert_allclose(p_any, sample["p_any"].to_numpy(dtype=float), rtol=0, atol=1e-9)
    tiers = [s.tier.value for s in scored]
    assert tiers == list(sample["tier"].astype(str))
    assert all(
        s.tier_in_force is not None and s.tier_in_force.value == t
        for s, t in zip(scored, tiers, strict=True)
    )


def test_explanation_matches_explain_child(state: ServiceState) -> None:
    child = str(state.snapshot.board.rows["child_id"].iloc[0])
    row = state.snapshot.row_of[child]
    frame = state.snapshot.frame.iloc[[row]].reset_index(drop=True)
    reference = explain_child(state.bundle, frame, policy=state.policy, top_k=5)
    ours = state.scorer.score([child], explain=True, top=5)[0]
    assert ours.p_any == pytest.approx(reference["score"]["p_any"], abs=1e-9)
    assert ours.margin == pytest.approx(reference["score"]["margin"], abs=1e-9)
    assert ours.bias == pytest.approx(reference["score"]["bias"], abs=1e-9)
    top = [(r.feature, round(r.contribution, 9), r.zh, r.en) for r in ours.reasons[:5]]
    expected = [
        (r["feature"], round(r["contribution"], 9), r["zh"], r["en"])
        for r in reference["top_reasons"]
    ]
    assert top == expected
    assert list(ours.decision.rules_fired) == [r["rule"] for r in reference["rules_fired"]]
    magnitudes = [abs(r.contribution) for r in ours.reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_api_score_names_model_and_policy_and_speaks_the_callers_language(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    child = str(state.snapshot.board.rows["child_id"].iloc[0])
    english = c.get(f"/api/v1/children/{child}/score", headers=headers).json()
    chinese = c.get(
        f"/api/v1/children/{child}/score", headers=headers, params={"lang": "zh"}
    ).json()
    assert english["model_name"] == state.model_name
    assert english["model_version"] == state.model_version
    assert english["policy_version"] == state.policy_version
    assert english["lang"] == "en" and chinese["lang"] == "zh"
    assert english["reasons"] and english["reasons"][0]["text"].isascii()
    assert not chinese["reasons"][0]["text"].isascii()
    assert english["tier"]["tier"] == english["tier"]["tier_in_force"]


def test_watch_list_ranks_by_tier_then_risk(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    page = c.get("/api/v1/watchlist", headers=headers, params={"limit": 500}).json()
    items = page["items"]
    assert len(items) == min(500, page["total"])
    keys = [(int(i["tier"][1]), -(i["p_any"] if i["p_any"] is not None else -1.0)) for i in items]
    assert keys == sorted(keys)
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    assert sum(page["counts"].values()) == page["total"]
    only_t1 = c.get(
        "/api/v1/watchlist", headers=headers, params={"tier": "T1", "limit": 500}
    ).json()
    assert only_t1["total"] == page["counts"]["T1"]
    assert {i["tier"] for i in only_t1["items"]} <= {"T1"}
    guardianship = c.get(
        "/api/v1/watchlist", headers=headers, params={"domain": "guardianship", "limit": 500}
    ).json()
    assert guardianship["total"] > 0
    assert all("guardianship" in i["domains"] for i in guardianship["items"])
    hard = [i for i in items if i["hard_rule"]]
    assert all(i["tier"] == "T1" for i in hard)


def test_explanation_groups_reasons_by_policy_domain(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    child = str(state.snapshot.board.rows["child_id"].iloc[0])
    body = c.get(
        f"/api/v1/children/{child}/explanation", headers=headers, params={"evidence": True}
    ).json()
    assert [d["domain"] for d in body["domains"]] == list(state.policy.domains)
    for domain in body["domains"]:
        assert all(r["text"] for r in domain["reasons"])
        total = domain["contribution"]
        assert domain["direction"] == ("raises" if total > 0 else "lowers")
    cited = [r for r in body["top_reasons"] if r["evidence"]]
    assert cited, "the top reasons cite the ledger records behind them"
    png = c.get(f"/api/v1/children/{child}/explanation.png", headers=headers)
    assert png.status_code == 200
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_child_file_has_profile_timeline_and_history(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    child = str(state.snapshot.board.rows["child_id"].iloc[0])
    body = c.get(f"/api/v1/children/{child}", headers=headers).json()
    assert body["profile"]["child_id"] == child
    assert "name" not in body["profile"] and "id_number" not in body["profile"]
    assert body["profile"]["areas"][-1]["code"] == body["profile"]["village_code"]
    dates = [e["date"] for e in body["timeline"]]
    assert dates == sorted(dates, reverse=True)
    assert {"visits"} <= {e["kind"] for e in body["timeline"]}
    assert body["scores"] and body["scores"][0]["as_of"] == AS_OF.isoformat()
    assert body["current"]["tier"] == body["scores"][0]["tier"]
    record = state.snapshot.board.records[state.snapshot.board.row_of[child]]
    assert body["current"]["p_any"] == pytest.approx(record.p_any)
    assert isinstance(body["reviews"], list)


def test_batch_scores_reject_empty_and_loose_input(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    child = str(state.snapshot.board.rows["child_id"].iloc[0])
    bodies: tuple[dict[str, object], ...] = (
        {"child_ids": []},
        {"child_ids": [child], "explain": "false"},
        {"child_ids": [child], "top": 3.5},
        {"child_ids": [child], "top": "3"},
        {"child_ids": [child], "top": True},
        {"child_ids": [child], "unknown": 1},
    )
    for body in bodies:
        assert c.post("/api/v1/scores", headers=headers, json=body).status_code == 422
    bad_json = c.post(
        "/api/v1/scores",
        headers={**headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert bad_json.status_code in (400, 422)
    ok = c.post("/api/v1/scores", headers=headers, json={"child_ids": [child, child], "top": 3.0})
    assert ok.status_code == 200
    assert [s["child_id"] for s in ok.json()["scores"]] == [child]


def test_model_policy_health_and_metrics(
    client: tuple[TestClient, dict[str, str]], state: ServiceState
) -> None:
    c, headers = client
    model = c.get("/api/v1/model", headers=headers).json()
    assert model["model_version"] == state.model_version
    assert "champion" in model["aliases"]
    policy = c.get("/api/v1/policy", headers=headers).json()
    assert policy["policy_version"] == state.policy_version
    assert [t["tier"] for t in policy["tiers"]] == ["T1", "T2", "T3", "T4"]
    assert policy["tiers"][0]["response_times"]["first_visit_within"] == {
        "every": 24,
        "unit": "hour",
    }
    health = c.get("/api/v1/health").json()
    assert health["status"] == "ok"
    assert health["children"] == len(state.snapshot.frame)
    metrics = c.get("/metrics").text
    assert "shouhu_http_requests_total" in metrics
    assert 'route="score_child"' in metrics
    assert "c-" not in metrics.split("shouhu_http_requests_total", 1)[1][:5000]
    assert f'model_version="{state.model_version}"' in metrics
