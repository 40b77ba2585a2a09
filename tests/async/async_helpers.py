"""Test doubles of the async suite: ``MockHttp`` (``responses``' role for httpx) and
``AsyncFakeClock``; see ``conftest.py``. A module of its own so that test modules can import
them (``from async_helpers import ...``).
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Answer:
    """One queued answer: a response, or an exception type raised instead (no answer)."""

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: type[Exception] | None = None


class MockHttp:
    """Queued answers for ``httpx.MockTransport``; see the module docstring."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.calls: list[httpx.Request] = []

    def add(self, method: str, url: str, answer: Answer | None = None, **fields: Any) -> None:
        """Queue an answer to ``method url`` (the full URL, query included)."""
        self.routes.setdefault((method.upper(), url), []).append(answer or Answer(**fields))

    def replace(self, method: str, url: str, **fields: Any) -> None:
        """Drop the answers queued for ``method url`` and queue this one."""
        self.routes[(method.upper(), url)] = [Answer(**fields)]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        queue = self.routes.get((request.method, str(request.url)))
        if not queue:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = queue[0] if len(queue) == 1 else queue.pop(0)
        if answer.error is not None:
            raise answer.error("mocked: no answer", request=request)  # type: ignore[call-arg]
        if answer.json is not None:
            return httpx.Response(answer.status, headers=answer.headers, json=answer.json)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body or b"")

    def calls_to(self, url: str) -> int:
        """How many requests went to ``url``."""
        return sum(1 for call in self.calls if str(call.url) == url)

    def client(self) -> httpx.AsyncClient:
        """An httpx client whose requests this mock answers."""
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


class AsyncFakeClock:
    """A monotonic clock and an :data:`lrokit.AsyncSleeper` sharing one virtual time.

    A sleep returns when virtual time reaches its end: once every task has gone as far as it
    can (a few turns of the event loop), the earliest sleeper wakes and the clock jumps to
    its time, so concurrent waits end in the order of their times, without real waiting.
    ``sleeps`` records every requested delay; ``cancel_after`` sets the given event once
    that many sleeps have happened (stopping a wait from "another task" deterministically).
    """

    #: Event-loop turns given to the other tasks before virtual time moves on.
    SETTLE_TURNS = 20

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.cancel_after: tuple[int, asyncio.Event] | None = None
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0
        self._advancer: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float, cancel: asyncio.Event | None) -> bool:
        assert seconds >= 0, "a negative sleep means a broken delay computation"
        if cancel is not None and cancel.is_set():
            return True
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._count += 1
        heapq.heappush(self._timers, (self.now + seconds, self._count, wake))
        if self._advancer is None or self._advancer.done():
            self._advancer = loop.create_task(self._advance())
        await wake
        if self.cancel_after is not None and len(self.sleeps) >= self.cancel_after[0]:
            self.cancel_after[1].set()
            return True
        return cancel is not None and cancel.is_set()

    async def _advance(self) -> None:
        while self._timers:
            for _ in range(self.SETTLE_TURNS):
                await asyncio.sleep(0)
            if not self._timers:
                return
            when, _, wake = heapq.heappop(self._timers)
            if not wake.done():  # a cancelled sleeper's future is done already
                self.now = max(self.now, when)
                wake.set_result(None)
