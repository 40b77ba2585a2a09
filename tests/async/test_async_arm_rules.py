"""The async twin of tests/test_arm_rules.py's driver-facing rules (issue 13): retried start
answers and the response hook, with coroutine hooks, over mocked httpx."""

from __future__ import annotations

from typing import Any

import pytest
from async_helpers import MockHttp

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    HookError,
    PollRejectedError,
    ResponseEvent,
    StartRejectedError,
)

pytestmark = pytest.mark.anyio

HOST = "https://svc.example.com"
API = "api-version=2024-01-01"
START = f"{HOST}/items/1?{API}"
MONITOR = f"{HOST}/operations/1?{API}"
LOCATION = f"{HOST}/results/1?{API}"


async def test_a_post_answered_500_is_retried_and_every_answer_heard(
    http: MockHttp, pipeline: AsyncPipeline, clock
) -> None:
    http.add("POST", START, status=500, headers={"Retry-After": "3"})
    http.add(
        "POST", START, status=202, headers={"Operation-Location": MONITOR, "Location": LOCATION}
    )
    http.add("GET", MONITOR, status=404)
    http.add("GET", MONITOR, json={"status": "Succeeded"})
    http.add("GET", LOCATION, json={"final": 1})
    heard: list[tuple[str, int]] = []

    async def hear(event: ResponseEvent[Any]) -> None:  # a coroutine hook, awaited
        heard.append((event.request, event.status_code))

    operation: AsyncOperation[Any] = AsyncOperation.prepare(pipeline, "POST", START)
    operation.on_response(hear)
    with pytest.raises(PollRejectedError):
        await operation.wait_for_completion()
    await operation.wait_for_completion()
    assert operation.value == {"final": 1}
    assert heard == [("start", 500), ("start", 202), ("poll", 404), ("poll", 200), ("final", 200)]
    assert len(http.calls) == 5
    assert clock.sleeps[0] == 3.0  # the server's Retry-After


async def test_408_is_not_retried_for_a_post(http: MockHttp, pipeline: AsyncPipeline) -> None:
    http.add("POST", START, status=408)
    with pytest.raises(StartRejectedError):
        await AsyncOperation.start(pipeline, "POST", START)
    assert len(http.calls) == 1


async def test_a_raising_response_hook_raises_after_the_answer_was_applied(
    http: MockHttp, pipeline: AsyncPipeline
) -> None:
    http.add("POST", START, status=202, headers={"Location": LOCATION})
    http.add("GET", LOCATION, json={"ok": True})
    operation: AsyncOperation[Any] = AsyncOperation.prepare(pipeline, "POST", START)

    def boom(event: ResponseEvent[Any]) -> None:
        raise RuntimeError(event.request)

    operation.on_response(boom)
    with pytest.raises(HookError):
        await operation.send_start()
    with pytest.raises(HookError):
        await operation.update_status()
    assert operation.value == {"ok": True}
    assert len(http.calls) == 2
