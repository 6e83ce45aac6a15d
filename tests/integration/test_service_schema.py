"""The API against its own OpenAPI schema, on a real uvicorn server on 127.0.0.1.

The server runs in a thread of the test process (one worker, the shared service state) and is
stopped when the module ends. Schemathesis generates requests for every operation — valid and
invalid ones — and checks that none gets a server error and every answer matches the schema
(status codes declared, bodies valid, content types right).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from service.app import create_app
from service.state import ServiceState
from tests._service_home import ServedHome, add_user, served_home, shared_state


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    return served_home(tmp_path_factory)


@pytest.fixture(scope="module")
def state(served: ServedHome, tmp_path_factory: pytest.TempPathFactory) -> ServiceState:
    return shared_state(served, tmp_path_factory)


@pytest.fixture(scope="module")
def live(state: ServiceState) -> Iterator[str]:
    """A uvicorn server on 127.0.0.1, started for this module and stopped after it."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(state.settings, state=state),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        workers=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start within 60 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def token(state: ServiceState, served: ServedHome) -> str:
    # A supervisor of the township: child endpoints answer 200 for its children, 404 else.
    return add_user(state, "schema_supervisor", "supervisor", served.township_a)


@pytest.fixture(scope="module")
def api_schema(live: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live}/openapi.json")


def test_live_server_answers_health_and_requires_tokens(live: str, token: str) -> None:
    health = httpx.get(f"{live}/api/v1/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(f"{live}/api/v1/watchlist", timeout=10).status_code == 401
    page = httpx.get(
        f"{live}/api/v1/watchlist",
        headers={"Authorization": f"Bearer {token}"},
        params={"limit": 5},
        timeout=10,
    )
    assert page.status_code == 200 and len(page.json()["items"]) == 5


def _operations() -> list[tuple[str, str]]:
    # Collected from the app's own schema (building the app loads nothing).
    from shouhu.settings import Settings

    paths = create_app(Settings()).openapi()["paths"]
    return sorted((path, method.upper()) for path, item in paths.items() for method in item)


OPERATIONS = _operations()


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema,
    token: str,
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {token}"}
    if mode is GenerationMode.NEGATIVE and not (
        operation.path_parameters or operation.query or operation.body
    ):
        pytest.skip("no parameters or body to make invalid")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def conforms(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        # Revoking the token would sign the next examples out; it is exercised elsewhere.
        if method == "DELETE" and path.endswith("/auth/token"):
            case.call_and_validate(headers={"Authorization": "Bearer shk_unknown"}, timeout=60)
            return
        case.call_and_validate(headers=headers, timeout=60)

    conforms()
