"""The embedded demo service itself, over real HTTP with plain ``requests``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests

from lrokit.demo import API_VERSION, DemoService

pytestmark = pytest.mark.integration

Q = f"?api-version={API_VERSION}"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def start(http: requests.Session, service: DemoService, name: str = "store") -> requests.Response:
    return http.post(f"{service.endpoint}vector_stores{Q}", json={"name": name}, timeout=5)


def poll(http: requests.Session, service: DemoService, response: requests.Response) -> dict:
    location = response.headers["Operation-Location"]
    answer = http.get(service.endpoint + location.lstrip("/"), timeout=5)
    assert answer.status_code == 200
    return answer.json()


def test_start_answers_202_with_a_relative_operation_location(service, http):
    response = start(http, service)

    assert response.status_code == 202
    location = response.headers["Operation-Location"]
    assert location.startswith("/operations/")
    assert location.endswith(Q)
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["status"] == "NotStarted"
    assert location == f"/operations/{body['id']}{Q}"


def test_monitor_runs_then_succeeds_on_the_configured_poll(service, http):
    response = start(http, service, "counted")
    location = response.headers["Operation-Location"]
    url = service.endpoint + location.lstrip("/")

    first = http.get(url, timeout=5)
    assert first.json() == {"id": response.json()["id"], "status": "Running", "percentComplete": 33}
    assert first.headers["Retry-After"] == "2"
    assert http.get(url, timeout=5).json()["status"] == "Running"

    last = http.get(url, timeout=5)
    monitor = last.json()
    assert monitor["status"] == "Succeeded"
    assert monitor["percentComplete"] == 100
    assert "Retry-After" not in last.headers  # no hint once terminal
    store = http.get(service.endpoint + monitor["resourceLocation"].lstrip("/") + Q, timeout=5)
    assert store.status_code == 200
    document = store.json()
    assert document["name"] == "counted"
    assert document["status"] == "completed"
    assert document["id"] == monitor["resourceLocation"].rsplit("/", 1)[1]
    assert set(document["file_counts"]) == {
        "in_progress",
        "completed",
        "failed",
        "cancelled",
        "total",
    }
    assert isinstance(document["created_at"], int)
    # A terminal monitor stays terminal.
    assert http.get(url, timeout=5).json()["status"] == "Succeeded"


def test_store_is_not_found_before_its_operation_succeeded(service, http):
    response = start(http, service)
    monitor = poll(http, service, response)
    assert "resourceLocation" not in monitor
    answer = http.get(f"{service.endpoint}vector_stores/vs_unknown{Q}", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "VectorStoreNotFound"


def test_file_ids_are_counted(http):
    with DemoService(polls_to_complete=1) as service:
        response = http.post(
            f"{service.endpoint}vector_stores{Q}",
            json={"name": "files", "file_ids": ["file-1", "file-2"]},
            timeout=5,
        )
        monitor = poll(http, service, response)
        url = service.endpoint + monitor["resourceLocation"].lstrip("/") + Q
        counts = http.get(url, timeout=5).json()["file_counts"]
    assert counts["completed"] == counts["total"] == 2


@pytest.mark.parametrize(
    ("prefix", "status", "code"),
    [
        ("fail", "Failed", "VectorStoreCreationFailed"),
        ("FAIL", "Failed", "VectorStoreCreationFailed"),
        ("cancel", "Canceled", "OperationCanceled"),
    ],
)
def test_names_choose_failed_and_canceled_outcomes(http, prefix, status, code):
    with DemoService(polls_to_complete=1) as service:
        monitor = poll(http, service, start(http, service, f"{prefix}-store"))
    assert monitor["status"] == status
    assert monitor["error"]["code"] == code
    assert f"{prefix}-store" in monitor["error"]["message"]
    assert "resourceLocation" not in monitor


def test_wall_time_mode_follows_the_injected_clock(http):
    now = [50.0]
    with DemoService(duration=10.0, clock=lambda: now[0]) as service:
        response = start(http, service)
        first = poll(http, service, response)
        now[0] += 5.0
        half = poll(http, service, response)
        now[0] += 5.0
        done = poll(http, service, response)
    assert (first["status"], first["percentComplete"]) == ("Running", 0)
    assert (half["status"], half["percentComplete"]) == ("Running", 50)
    assert (done["status"], done["percentComplete"]) == ("Succeeded", 100)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (3, {"retry-after": "3"}),
        (0.25, {"retry-after-ms": "250"}),
        (None, {}),
    ],
)
def test_polling_hint_headers(http, retry_after, expected):
    with DemoService(polls_to_complete=5, retry_after=retry_after) as service:
        response = start(http, service)
    hints = {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower() in ("retry-after", "retry-after-ms")
    }
    assert hints == expected


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "vector_stores", {"name": "x"}, 400, "MissingApiVersionParameter"),
        (
            "POST",
            "vector_stores?api-version=1999-01-01",
            {"name": "x"},
            400,
            "UnsupportedApiVersionValue",
        ),
        ("POST", f"vector_stores{Q}", None, 400, "InvalidRequest"),
        ("POST", f"vector_stores{Q}", ["x"], 400, "InvalidRequest"),
        ("POST", f"vector_stores{Q}", {}, 400, "InvalidName"),
        ("POST", f"vector_stores{Q}", {"name": 7}, 400, "InvalidName"),
        ("POST", f"vector_stores{Q}", {"name": "x", "file_ids": "f"}, 400, "InvalidFileIds"),
        ("GET", f"operations/0123{Q}", None, 404, "OperationNotFound"),
        ("GET", f"nowhere{Q}", None, 404, "NotFound"),
        ("GET", f"vector_stores/a/b{Q}", None, 404, "NotFound"),
        ("DELETE", f"vector_stores{Q}", None, 405, "MethodNotAllowed"),
        ("PUT", f"operations/0123{Q}", None, 405, "MethodNotAllowed"),
    ],
)
def test_bad_requests_get_json_errors(service, http, method, path, body, status, code):
    response = http.request(method, service.endpoint + path, json=body, timeout=5)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_invalid_json_body_is_a_400(service, http):
    response = http.post(
        f"{service.endpoint}vector_stores{Q}",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidJson"


def test_requests_are_recorded_with_headers_and_body(service, http):
    start(http, service, "recorded")
    http.get(f"{service.endpoint}nowhere{Q}", headers={"X-Trace": "abc"}, timeout=5)

    first, second = service.requests
    assert (first.method, first.path) == ("POST", f"/vector_stores{Q}")
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"name": "recorded"}
    assert (second.method, second.path, second.headers["x-trace"]) == (
        "GET",
        f"/nowhere{Q}",
        "abc",
    )
    # The list handed out is a copy.
    service.requests.clear()
    assert len(service.requests) == 2
    service.clear_requests()
    assert service.requests == []


def test_concurrent_requests_are_all_recorded(service):
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            with requests.Session() as session:
                for i in range(5):
                    response = start(session, service, f"t{n}-{i}")
                    with lock:
                        ids.append(response.json()["id"])
        except Exception as error:  # noqa: BLE001 - re-raised by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(service.requests) == 40
    assert len(set(ids)) == 40


def test_start_stop_lifecycle(http):
    service = DemoService(polls_to_complete=1)
    assert not service.running
    with pytest.raises(RuntimeError):
        _ = service.endpoint
    service.start()
    try:
        endpoint = service.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        assert endpoint.endswith("/")
        with pytest.raises(RuntimeError):
            service.start()
        assert start(http, service).status_code == 202
    finally:
        service.stop()
    assert not service.running
    service.stop()  # harmless twice
    with pytest.raises(requests.ConnectionError):
        http.post(f"{endpoint}vector_stores{Q}", json={"name": "late"}, timeout=5)
    assert "stopped" in repr(service)


@pytest.mark.parametrize(
    "kwargs",
    [{"duration": -1}, {"polls_to_complete": 0}, {"retry_after": -0.5}],
)
def test_invalid_settings_are_refused(kwargs):
    (setting,) = kwargs
    with pytest.raises(ValueError, match=setting):
        DemoService(**kwargs)
