"""Test doubles of the async suite: ``MockHttp`` (``responses``' role for httpx); see
``conftest.py``. A module of its own so that test modules can import it (``from async_helpers
import ...``). The fake clock is lrokit's public ``lrokit.testing.AsyncFakeClock``.
"""

from __future__ import annotations

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
