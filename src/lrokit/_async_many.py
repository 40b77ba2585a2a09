"""Waiting on many async operations at once: :func:`async_wait_all` and
:func:`async_as_completed`, the twins of :mod:`lrokit._many`'s sync helpers.

One task per operation (each respecting its own delays), the requests in flight bounded with
a semaphore (``max_in_flight``). An operation's own errors are raised as a single wait would
raise them in the iterator; :func:`async_wait_all` reports every failure in one
:class:`~lrokit.OperationErrorGroup`. The other operations are left as they are, resumable
(a start in flight gets its answer first), and the deadline and stop handle are shared.
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
from ._many import WaitResult, finished, group, split, unique

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
        self.ops = ops
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

    async def close(self, *, graceful: bool) -> list[tuple[int, Exception]]:
        """Cancel the waits still running and let them unwind (each leaves its operation
        as it was before its request in flight); returns the errors of waits that ended
        with one and were not reported yet (so that none goes unretrieved).

        ``graceful``: a wait whose request is in flight is cancelled only once that
        request has its answer (bounded by the request's time limit), which is applied,
        and whose error, if any, is reported too: cancelling a start half-way would leave
        a start that is not safe to repeat in an unknown outcome, and an answer that came
        would be lost. When the caller itself is cancelled, everything is cancelled at
        once (such a start is then recorded as ``start_outcome_unknown``).
        """
        running = dict(self.running)
        self.running.clear()
        ended = list(self.finished)
        self.finished.clear()
        # Each wait's step count now: only the request in flight now is waited for.
        steps = {task: self.ops[number]._steps for task, number in running.items()}
        try:
            while graceful:
                in_flight = [
                    task
                    for task, number in running.items()
                    if not task.done()
                    and self.ops[number]._in_flight
                    and self.ops[number]._steps == steps[task]
                ]
                if not in_flight:
                    break
                await asyncio.wait(in_flight, timeout=_GRACE_SLICE)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        errors: list[tuple[int, Exception]] = []
        for number, task in [*ended, *((n, t) for t, n in running.items())]:
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception) and not isinstance(error, _PERSONAL):
                errors.append((number, error))
        return errors


#: How often a closing ``_Waits`` looks whether a request in flight got its answer (s).
_GRACE_SLICE = 0.01
#: Errors that end one wait without being the operation's failure.
_PERSONAL = (WaitTimeoutError, WaitCancelledError)


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
    graceful = False
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
                    graceful = True
                    raise error
                else:
                    yield ops[number]
            if stopped:
                return
    finally:
        await waits.close(graceful=graceful)


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
        OperationErrorGroup: one or more waits failed (``PollRejectedError``,
            ``RetriesExhaustedError``, ``ProtocolError``, ``HookError``,
            ``StartOutcomeUnknownError``, ...): the other waits are cancelled (a start in
            flight gets its answer first) and the group holds every error that ended a
            wait by then, each naming its operation (``error.operation``), in the order
            the operations were given. Their operations are left as they are.
    """
    ops = unique(operations)
    waits = _Waits(ops, polling_interval, timeout, cancel, max_in_flight)
    failures: list[tuple[int, Exception]] = []
    try:
        while waits.left and not failures:
            for number, task in await waits.batch():
                error = None if task.cancelled() else task.exception()
                if isinstance(error, Exception) and not isinstance(error, _PERSONAL):
                    failures.append((number, error))
    except BaseException:
        await waits.close(graceful=False)  # the caller was cancelled: at once
        raise
    failures += await waits.close(graceful=True)
    if failures:
        raise group([error for _, error in sorted(failures, key=lambda f: f[0])], len(ops))
    return split(ops)
