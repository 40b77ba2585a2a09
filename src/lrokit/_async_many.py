"""Waiting on many async operations at once: :func:`async_wait_all` and
:func:`async_as_completed`, the twins of :mod:`lrokit._many`'s sync helpers.

One task per operation (each respecting its own delays), the requests in flight bounded with
a semaphore (``max_in_flight``). An operation's own errors are raised as a single wait would
raise them (the other operations are left as they are, resumable), and the deadline and stop
handle are shared.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from ._async import AsyncOperation, Limiter
from ._delay import DelayStrategy, as_seconds
from ._exceptions import WaitCancelledError, WaitTimeoutError
from ._many import WaitResult, finished, split, unique

__all__ = ["async_as_completed", "async_wait_all"]

AsyncOpT = TypeVar("AsyncOpT", bound="AsyncOperation[Any]")

#: The default bound on requests in flight of the async helpers (httpx's default pool size).
DEFAULT_MAX_IN_FLIGHT = 100


class _Waits(Generic[AsyncOpT]):
    """One task per operation, each running its wait; finished ones are reported in batches
    through a done callback (``asyncio.wait`` over thousands of tasks would re-register on
    every pending one at each call)."""

    def __init__(
        self,
        ops: Sequence[AsyncOpT],
        polling_interval: float | timedelta | DelayStrategy | None,
        timeout: float | timedelta | None,
        cancel: asyncio.Event | None,
        max_in_flight: int,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        # Each operation has at most one request in flight: a bound of N or more is none.
        limiter = Limiter(max_in_flight) if max_in_flight < len(ops) else None
        self.finished: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.ready = asyncio.Event()
        self.running: dict[asyncio.Future[None], int] = {}
        for number, op in enumerate(ops):
            if finished(op):
                self.finished.append((number, _done_future()))
                continue
            task = asyncio.ensure_future(
                op._wait(op._new_wait(polling_interval, timeout, cancel, limiter))
            )
            self.running[task] = number
            task.add_done_callback(self._on_done)
        if self.finished:
            self.ready.set()

    def _on_done(self, task: asyncio.Future[None]) -> None:
        number = self.running.pop(task, None)
        if number is not None:
            self.finished.append((number, task))
            self.ready.set()

    async def batch(self) -> list[tuple[int, asyncio.Future[None]]]:
        """The waits that ended since the last batch (at least one), in the order given."""
        while not self.finished:
            self.ready.clear()
            await self.ready.wait()
        ended = sorted(self.finished, key=lambda item: item[0])
        self.finished.clear()
        return ended

    @property
    def left(self) -> int:
        """Waits not reported yet."""
        return len(self.running) + len(self.finished)

    async def close(self) -> None:
        """Cancel the waits still running and let them unwind (each leaves its operation
        as it was before its request in flight)."""
        tasks = list(self.running)
        self.running.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _done_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def async_as_completed(
    operations: Iterable[AsyncOpT],
    *,
    timeout: float | timedelta | None = None,
    polling_interval: float | timedelta | DelayStrategy | None = None,
    cancel: asyncio.Event | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> AsyncIterator[AsyncOpT]:
    """Wait on many async operations and yield each one as it completes.

    One task per operation waits as ``wait_for_completion`` does (its own delays), and at
    most ``max_in_flight`` requests are in flight at once. Closing the generator early
    (``break`` inside ``contextlib.aclosing``) or cancelling the consuming task cancels the
    remaining waits; their operations stay resumable. A set ``cancel`` event ends the
    iteration.

    Raises:
        TimeoutError: the deadline came with operations pending (they are resumable).
        LroError: an operation's wait failed (``PollRejectedError``,
            ``RetriesExhaustedError``, ``ProtocolError``, ``HookError``, ...); the other
            waits are cancelled, their operations left as they are.
    """
    ops = unique(operations)
    if not ops:
        return
    waits = _Waits(ops, polling_interval, timeout, cancel, max_in_flight)
    stopped = False
    try:
        while waits.left:
            for number, task in await waits.batch():
                error = None if task.cancelled() else task.exception()
                if isinstance(error, WaitCancelledError) or task.cancelled():
                    stopped = True  # the shared stop event: end once the batch is out
                elif isinstance(error, WaitTimeoutError):
                    raise TimeoutError(
                        f"{waits.left + 1} of {len(ops)} operations did not complete within"
                        f" {as_seconds(timeout or 0)} s; they are resumable"
                    ) from None
                elif error is not None:
                    raise error
                else:
                    yield ops[number]
            if stopped:
                return
    finally:
        await waits.close()


async def async_wait_all(
    operations: Iterable[AsyncOpT],
    *,
    timeout: float | timedelta | None = None,
    polling_interval: float | timedelta | DelayStrategy | None = None,
    cancel: asyncio.Event | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> WaitResult[AsyncOpT]:
    """Wait until all async operations have completed (see :func:`async_as_completed`
    for how); returns which completed and which are still pending.

    A deadline or a set ``cancel`` event ends the wait without raising: the operations not
    completed by then are in ``pending``. Cancelling the awaiting task cancels every wait.

    Raises:
        LroError: an operation's wait failed (``PollRejectedError``,
            ``RetriesExhaustedError``, ``ProtocolError``, ``HookError``, ...); the other
            waits are cancelled, their operations left as they are.
    """
    ops = unique(operations)
    waits = _Waits(ops, polling_interval, timeout, cancel, max_in_flight)
    try:
        while waits.left:
            for _, task in await waits.batch():
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(
                    error, (WaitTimeoutError, WaitCancelledError)
                ):
                    raise error
    finally:
        await waits.close()
    return split(ops)
