"""``AsyncOperation.from_monitor``: the async twin of ``Operation.from_monitor`` (no I/O to
build it; the same state, URLs, token and final-value rules)."""

from __future__ import annotations

import pytest
from async_helpers import MockHttp

from lrokit import AsyncOperation, AsyncPipeline, Operation, OperationState, UntrustedOriginError

pytestmark = pytest.mark.anyio

HOST = "https://svc.example.com"
MONITOR = f"{HOST}/operations/7?api-version=2024-01-01"
STORE = f"{HOST}/stores/7?api-version=2024-01-01"


async def test_it_follows_the_monitor_to_the_resource(http: MockHttp, pipeline, clock) -> None:
    operation = AsyncOperation.from_monitor(pipeline, MONITOR, operation_headers={"x-id": "1"})
    assert operation.state is OperationState.RUNNING
    assert http.calls == []
    http.add("GET", MONITOR, json={"status": "Running", "percentComplete": 10})
    http.add("GET", MONITOR, json={"status": "Succeeded", "resourceLocation": "/stores/7"})
    http.add("GET", STORE, json={"id": "7"})

    await operation.wait_for_completion()

    assert operation.value == {"id": "7"}
    assert [str(call.url) for call in http.calls] == [MONITOR, MONITOR, STORE]
    assert {call.headers["x-id"] for call in http.calls} == {"1"}
    assert clock.sleeps == [1.0, 1.0]


async def test_it_builds_what_the_sync_twin_builds(pipeline: AsyncPipeline) -> None:
    twin = AsyncOperation.from_monitor(pipeline, MONITOR, method="PUT", start_url=STORE)
    sync = Operation.from_monitor(pipeline, MONITOR, method="PUT", start_url=STORE)  # type: ignore[arg-type]

    mine, theirs = twin.rehydration_token.fields, sync.rehydration_token.fields
    assert (mine.state, mine.protocol, mine.method, mine.initial_url, mine.polling_url) == (
        theirs.state,
        theirs.protocol,
        theirs.method,
        theirs.initial_url,
        theirs.polling_url,
    )
    assert mine.kind == theirs.kind  # tokens resume on either side


async def test_an_untrusted_monitor_is_refused(http: MockHttp, pipeline) -> None:
    with pytest.raises(UntrustedOriginError):
        AsyncOperation.from_monitor(pipeline, "https://evil.example.net/operations/7")
    assert http.calls == []
