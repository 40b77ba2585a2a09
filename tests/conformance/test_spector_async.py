"""The spector conformance scenarios again, through ``AsyncOperation`` over httpx.

The same table (``test_spector.SCENARIOS``) and the same checks as the sync driver: the value,
exactly the expected requests at the server and no other, that they are the requests lrokit
sent, the operation's ``x-ms-client-request-id`` on each, no validation warning, and spector's
own verdict "pass". The mocks reset their poll counters on each start request, so a scenario
passes again after the sync run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from test_spector import SCENARIOS, Scenario, fill

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    HttpxSender,
    OperationState,
    PollingPolicy,
    ResponseView,
)
from lrokit.testing import AsyncFakeClock


class Recording:
    """An AsyncSender that sends through httpx and records what went on the wire."""

    def __init__(self) -> None:
        self.inner = HttpxSender()
        self.transport_errors = self.inner.transport_errors
        self.sent: list[tuple[str, str, Mapping[str, str]]] = []

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Any,
        **options: Any,
    ) -> ResponseView:
        view = await self.inner.send(
            method, url, headers=headers, body=body, timeout=timeout, **options
        )
        request = view.raw.request
        self.sent.append((request.method, request.url.raw_path.decode(), request.headers))
        return view

    async def aclose(self) -> None:
        await self.inner.aclose()


async def read_pages(pipeline: AsyncPipeline, value: Any, limit: int = 10) -> list[Any]:
    """The pager's step, as in the sync driver: follow ``nextLink`` (bounded)."""
    pages: list[Any] = []
    link = value.get("nextLink") if isinstance(value, dict) else None
    while isinstance(link, str) and link and len(pages) < limit:
        view = await pipeline.send("GET", pipeline.origin_policy.check(link))
        assert view.status_code == 200
        page = msgspec.json.decode(view.body)
        pages.append(page)
        link = page.get("nextLink")
    return pages


async def drive(spector: Any, scenario: Scenario) -> None:
    base = spector.endpoint.rstrip("/")
    clock = AsyncFakeClock()
    sender = Recording()
    lro_sent = 0
    policy = PollingPolicy(interval=1.0, max_retries=0)
    async with AsyncPipeline(
        spector.endpoint, sender, polling=policy, clock=clock, sleep=clock.sleep
    ) as pipe:
        mark = spector.mark()
        for number, call in enumerate(scenario.calls):
            request_id = f"{scenario.name}-async-{number}"
            first = len(sender.sent)
            operation: AsyncOperation[Any] = await AsyncOperation.start(
                pipe,
                call.method,
                call.path.lstrip("/"),
                params={"api-version": call.api_version, **call.query},
                json=call.body,
                operation_headers={"x-ms-client-request-id": request_id},
            )
            await operation.wait_for_completion(timeout=60)
            assert operation.state is OperationState.SUCCEEDED, operation.status
            assert operation.value == fill(call.value, base)
            mine = sender.sent[first:]
            assert all(h.get("x-ms-client-request-id") == request_id for _, _, h in mine)
            lro_sent += len(mine)
            assert await read_pages(pipe, operation.value) == fill(list(call.pages), base)
        seen = await asyncio.to_thread(spector.checkpoint, mark)

    expected = [f"{method} {url} -> {status}" for method, url, status in scenario.requests]
    assert [str(r) for r in seen.requests] == expected
    assert [f"{m} {u}" for m, u, _ in sender.sent] == [
        f"{r.method} {r.url}" for r in seen.requests
    ], "the server must have seen exactly what lrokit sent"
    assert seen.warnings == []
    assert seen.coverage.get(scenario.name) == "pass", f"spector's verdict: {seen.coverage}"
    assert lro_sent + sum(len(c.pages) for c in scenario.calls) == len(seen.requests)


@pytest.mark.integration
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_spector_scenario_through_async_operation(spector: Any, scenario: Scenario) -> None:
    asyncio.run(drive(spector, scenario))
