"""Waiting on many operations at once, without a thread per operation.

Sync: :func:`wait_all` and :func:`as_completed` poll every operation from the calling thread,
by next-due time: a heap of (due time, operation), one request at a time, sleeping only until
the earliest due poll. Async (:mod:`lrokit._async_many`, loaded with the other async names on
first use so that ``import lrokit`` does not import asyncio): :func:`async_wait_all` and
:func:`async_as_completed` run one task per operation (each respecting its own delays) and
bound the requests in flight with a semaphore (``max_in_flight``).

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

import heapq
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

# A generic NamedTuple needs Python 3.11; typing_extensions' backport works on 3.10.
from typing_extensions import NamedTuple

from ._base import Wait, bounded_step
from ._delay import DelayStrategy
from ._exceptions import LroError, OperationErrorGroup, WaitCancelledError, WaitTimeoutError
from ._sync import Operation

__all__ = ["WaitResult", "as_completed", "wait_all"]

OpT = TypeVar("OpT", bound="Operation[Any]")
ResultT = TypeVar("ResultT")


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


def unique(operations: Iterable[ResultT]) -> list[ResultT]:
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
    ops = unique(operations)
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
    ops = unique(operations)
    try:
        for _ in as_completed(
            ops, timeout=timeout, polling_interval=polling_interval, cancel=cancel
        ):
            pass
    except TimeoutError:
        pass  # the shared deadline: the operations left are pending
    except Exception as error:  # noqa: BLE001 - reported in the group below
        raise group([error], len(ops)) from None
    return split(ops)


def group(errors: Sequence[Exception], total: int) -> OperationErrorGroup:
    """The aggregate of the errors of several operations' waits (in the order given)."""
    named = ", ".join(
        f"{error.operation_id or '?'} ({type(error).__name__})"
        if isinstance(error, LroError)
        else type(error).__name__
        for error in errors
    )
    return OperationErrorGroup(f"{len(errors)} of {total} operations failed: {named}", errors)


def split(ops: Sequence[ResultT]) -> WaitResult[ResultT]:
    """The operations as a :class:`WaitResult`: completed ones, then those still pending."""
    done = [op for op in ops if finished(op)]
    pending = [op for op in ops if not finished(op)]
    return WaitResult(done, pending)


def finished(operation: Any) -> bool:
    """Whether nothing is left to send for ``operation`` (sync or async)."""
    return operation._start_request is None and operation.core.next_request_url is None
