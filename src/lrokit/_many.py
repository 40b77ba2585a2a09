"""Waiting on many operations at once, without a thread per operation.

Sync: :func:`wait_all` and :func:`as_completed` poll every operation from the calling thread,
by next-due time: a heap of (due time, operation), one request at a time, sleeping only until
the earliest due poll. Async: :func:`async_wait_all` and :func:`async_as_completed` run one
task per operation (each respecting its own delays) and bound the requests in flight with a
semaphore (``max_in_flight``).

In the iterators, an operation's own error is raised as a single wait would raise it; in
:func:`wait_all` and :func:`async_wait_all`, every operation's error is reported, in one
:class:`~lrokit.OperationErrorGroup` (an ``ExceptionGroup``). Each error names its operation
(``error.operation``). The other operations are left as they are, resumable; a wait whose
start request is in flight is let finish that request first, so that its answer is not
lost. The deadline and stop handle are shared. A timeout or stop ends :func:`wait_all` with
the operations still pending in its result; :func:`as_completed` raises ``TimeoutError`` at
the deadline and ends at a stop.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from ._async import AsyncOperation, Limiter
from ._base import Wait, bounded_step
from ._delay import DelayStrategy, as_seconds
from ._exceptions import LroError, OperationErrorGroup, WaitCancelledError, WaitTimeoutError
from ._sync import Operation

__all__ = ["WaitResult", "as_completed", "async_as_completed", "async_wait_all", "wait_all"]

OpT = TypeVar("OpT", bound="Operation[Any]")
AsyncOpT = TypeVar("AsyncOpT", bound="AsyncOperation[Any]")
ResultT = TypeVar("ResultT")

#: The default bound on requests in flight of the async helpers (httpx's default pool size).
DEFAULT_MAX_IN_FLIGHT = 100


class WaitResult(NamedTuple, Generic[ResultT]):
    """What :func:`wait_all` and :func:`async_wait_all` return.

    Attributes:
        done: the operations that completed (Succeeded, Failed or Canceled: read each
            ``value``), in the order given.
        pending: those that had not when the deadline came or the wait was stopped, in the
            order given; each is resumable (wait on it again, or keep its token).
    """

    done: list[ResultT]
    pending: list[ResultT]


def _unique(operations: Iterable[ResultT]) -> list[ResultT]:
    """The operations in order, each once (waiting twice on one object is one wait)."""
    seen: set[int] = set()
    result: list[ResultT] = []
    for operation in operations:
        if id(operation) not in seen:
            seen.add(id(operation))
            result.append(operation)
    return result


# -- sync: one thread, next-due order ----------------------------------------------------------


def as_completed(
    operations: Iterable[OpT],
    *,
    timeout: float | timedelta | None = None,
    polling_interval: float | timedelta | DelayStrategy | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[OpT]:
    """Poll many operations from this thread and yield each one as it completes.

    Operations are polled by next-due time (each after its own delay: the interval, the
    server's Retry-After, its back-off after faults), one request at a time, sleeping
    only until the earliest due request. Prepared operations are started first, one after
    the other. The clock and sleep are those of the first operation's pipeline.

    Args:
        operations: the operations (already completed ones are yielded at once).
        timeout: a deadline for all of them; ``TimeoutError`` is raised when it comes.
        polling_interval: as for ``wait_for_completion``, for every operation.
        cancel: an event that, once set, ends the iteration promptly.

    Raises:
        TimeoutError: the deadline came with operations pending (they are resumable).
        LroError: an operation's request failed as it would in ``wait_for_completion``
            (``PollRejectedError``, ``RetriesExhaustedError``, ``ProtocolError``,
            ``HookError``, ...); the other operations are left as they are.
    """
    ops = _unique(operations)
    if not ops:
        return
    pipeline = ops[0].pipeline
    clock, sleep = pipeline.clock, pipeline.sleep
    wait = ops[0]._new_wait(polling_interval, timeout, cancel)
    queue: list[tuple[float, int, OpT]] = []
    now = clock()
    for number, operation in enumerate(ops):
        if operation._start_request is not None:
            queue.append((now, number, operation))
        elif operation.core.next_request_url is None:
            yield operation
        else:
            queue.append((now + operation._delay_seconds(wait.interval), number, operation))
    heapq.heapify(queue)
    while queue:
        due, number, operation = queue[0]
        now = clock()
        if due > now or (wait.deadline is not None and now >= wait.deadline):
            step = bounded_step(due - now, wait.deadline, now)
            if cancel is not None and cancel.is_set():
                return
            if step.seconds > 0 and sleep(step.seconds, cancel):
                return
            if step.timeout:
                raise TimeoutError(
                    f"{len(queue)} of {len(ops)} operations did not complete within"
                    f" {wait.limit} s; they are resumable"
                )
            continue
        heapq.heappop(queue)
        try:
            _request(operation, wait)
        except (WaitTimeoutError, WaitCancelledError):
            # The shared deadline or stop came while the request waited or was in flight:
            # the operation is still pending, and the next turn of the loop ends the wait.
            heapq.heappush(queue, (due, number, operation))
            continue
        if operation.core.next_request_url is None and operation._start_request is None:
            yield operation
        else:
            due = clock() + operation._delay_seconds(wait.interval)
            heapq.heappush(queue, (due, number, operation))


def _request(operation: Operation[Any], wait: Wait) -> None:
    """Make the one request that is due for ``operation``, in its turn."""
    mark = operation._steps
    operation._take_turn(wait, mark)
    try:
        if operation._steps != mark:
            return  # another waiter's request came first: the queue plans again
        if operation._start_request is not None:
            operation._send_start(wait)
        elif operation.core.next_request_url is not None:
            operation._poll_once(wait)
        operation._steps += 1
    except BaseException as error:
        operation._step_failed(error)
        raise
    finally:
        operation._turn.release()


def wait_all(
    operations: Iterable[OpT],
    *,
    timeout: float | timedelta | None = None,
    polling_interval: float | timedelta | DelayStrategy | None = None,
    cancel: threading.Event | None = None,
) -> WaitResult[OpT]:
    """Poll many operations from this thread until all have completed (see
    :func:`as_completed` for how); returns which completed and which are still pending.

    A deadline (``timeout``) or a set ``cancel`` event ends the wait without raising: the
    operations not completed by then are in ``pending``.

    Raises:
        OperationErrorGroup: an operation's request failed as it would in
            ``wait_for_completion`` (``PollRejectedError``, ``RetriesExhaustedError``,
            ``ProtocolError``, ``HookError``, ``StartOutcomeUnknownError``, ...): the
            group holds that error, which names its operation (``error.operation``);
            the other operations are left as they are. ``except LroError`` catches the
            group too; ``except* PollRejectedError`` picks one kind out of it.
    """
    ops = _unique(operations)
    try:
        for _ in as_completed(
            ops, timeout=timeout, polling_interval=polling_interval, cancel=cancel
        ):
            pass
    except TimeoutError:
        pass  # the shared deadline: the operations left are pending
    except Exception as error:  # noqa: BLE001 - reported in the group below
        raise _group([error], len(ops)) from None
    return _split(ops)


def _group(errors: Sequence[Exception], total: int) -> OperationErrorGroup:
    """The aggregate of the errors of several operations' waits (in the order given)."""
    named = ", ".join(
        f"{error.operation_id or '?'} ({type(error).__name__})"
        if isinstance(error, LroError)
        else type(error).__name__
        for error in errors
    )
    return OperationErrorGroup(f"{len(errors)} of {total} operations failed: {named}", errors)


def _split(ops: Sequence[ResultT]) -> WaitResult[ResultT]:
    done = [op for op in ops if _finished(op)]
    pending = [op for op in ops if not _finished(op)]
    return WaitResult(done, pending)


def _finished(operation: Any) -> bool:
    return operation._start_request is None and operation.core.next_request_url is None


# -- async: a task per operation, bounded requests in flight -----------------------------------


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
            if _finished(op):
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
    ops = _unique(operations)
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
    ops = _unique(operations)
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
        raise _group([error for _, error in sorted(failures, key=lambda f: f[0])], len(ops))
    return _split(ops)
