"""The async driver: :class:`AsyncOperation`, the asyncio twin of :class:`~lrokit.Operation`.

Same core, same decisions (``_base.py``), same tokens and errors; only the loop differs: it
awaits the pipeline's :class:`~lrokit.AsyncSender` and sleeps with ``asyncio``. Cancelling
the task that waits stops the wait at once (mid-sleep or mid-request) and leaves the
operation as it was before that request: it can be waited on again or resumed from its token.

Tasks waiting on the same operation share its requests, as threads do on the sync side: a
"turn" (a small first-come-first-served lock, free of any await when nobody else holds it)
is held around each request and the processing of its answer, never around a sleep.
Coroutine hooks are awaited after the transition, outside the turn.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from typing_extensions import Self

from . import _observe
from ._async_pipeline import (
    AsyncPipeline,
    SupportsAsyncPipeline,
    default_async_sleep,
    httpx_view,
)
from ._base import (
    NO_BODY,
    NO_WAIT,
    PLAIN_KIND,
    OperationBase,
    PollUpdate,
    Wait,
    WaitStep,
    bounded_step,
    lost_because,
)
from ._core import Decision, OperationCore, ProtocolOptions
from ._delay import DelayStrategy
from ._exceptions import HookError, LroError, PollTransportError, StartRejectedError
from ._parse import ResponseView
from ._token import RehydrationToken
from ._urls import with_params

__all__ = ["AsyncOperation", "Limiter"]

T = TypeVar("T")


class AsyncOperation(OperationBase[T]):
    """A long-running operation driven with asyncio: :class:`~lrokit.Operation`'s twin.

    Subclass it once per LRO exactly as the sync class (``value_type``, ``protocol_options``,
    ``cancel_request``, ``decode_value``). The methods that make requests are coroutines
    (:meth:`start`, :meth:`send_start`, :meth:`update_status`, :meth:`wait_for_completion`,
    :meth:`cancel`) and :meth:`poll_iter` is an async generator; everything else is the same
    and makes no I/O. Hooks may be plain functions or coroutine functions.

    Tokens cross sides: ``AsyncOperation`` writes the kind of ``Operation``, so their tokens
    resume on either. A subclass that is the twin of a sync subclass says so with
    ``token_kind = CreateVectorStoreOperation.kind()``.
    """

    token_kind: ClassVar[str | None] = PLAIN_KIND
    _awaits_hooks: ClassVar[bool] = True

    def __init__(
        self,
        pipeline: AsyncPipeline,
        core: OperationCore,
        *,
        response: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap an existing core. Most code calls :meth:`start` or :meth:`rehydrate` instead."""
        super().__init__(pipeline, core, response)
        self._pipeline = pipeline
        self._headers = dict(headers) if headers else None
        # The turn: held by one task at a time; tasks queued for it wait on these futures.
        self._busy = False
        self._queue: deque[asyncio.Future[None]] | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        client: SupportsAsyncPipeline,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        operation_headers: Mapping[str, str] | None = None,
        options: ProtocolOptions | None = None,
        idempotent: bool = False,
        **request_kwargs: Any,
    ) -> Self:
        """Build the operation in ``NotStarted`` without sending anything (no I/O).

        The start request is sent by :meth:`send_start`, or by the first
        :meth:`update_status`, :meth:`wait_for_completion` or :meth:`poll_iter`. Arguments
        are those of :meth:`start`.

        Raises:
            UntrustedOriginError: ``url`` is outside the trusted origins.
        """
        pipeline = client.pipeline
        absolute = with_params(pipeline.url(url), params)
        core = cls._new_core(pipeline, method, absolute, options)
        operation = cls(pipeline, core, headers=operation_headers)
        operation._plan_start(
            method,
            absolute,
            json=json,
            headers=headers,
            operation_headers=operation_headers,
            idempotent=idempotent,
            kwargs=request_kwargs,
        )
        return operation

    @classmethod
    async def start(
        cls,
        client: SupportsAsyncPipeline,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        operation_headers: Mapping[str, str] | None = None,
        options: ProtocolOptions | None = None,
        idempotent: bool = False,
        **request_kwargs: Any,
    ) -> Self:
        """Send the start request and return the operation (Running, or already terminal).

        Args:
            client: the async pipeline, or an SDK client holding one.
            method: the start request's HTTP method.
            url: the start request's URL; it may be relative to the endpoint.
            json: the start request's body, encoded with msgspec.
            params: the start request's query parameters.
            headers: the start request's headers.
            operation_headers: headers sent with the start request and with every poll and
                final request of this operation.
            options: protocol options; defaults to the class's ``protocol_options``.
            idempotent: send the operation's id in an ``Operation-Id`` header and retry the
                start after transient faults, as for PUT and DELETE.
            request_kwargs: passed to the sender's ``send`` for the start request only.

        Raises:
            StartRejectedError: the service answered with an HTTP error.
            Exception: one of the sender's ``transport_errors``: the start got no answer (a
                start that is not safe to repeat is never retried).
            ProtocolError: as for ``Operation.start``.
            UntrustedOriginError: as for ``Operation.start``.
        """
        operation = cls.prepare(
            client,
            method,
            url,
            json=json,
            params=params,
            headers=headers,
            operation_headers=operation_headers,
            options=options,
            idempotent=idempotent,
            **request_kwargs,
        )
        await operation.send_start()
        return operation

    async def send_start(self) -> Any:
        """Send the start request of a :meth:`prepare`-d operation; returns the raw response.

        Raises:
            LroError: the operation was not prepared, or its start was already sent.
            StartRejectedError: as for :meth:`start`; the start may then be sent again.
            ProtocolError: as for :meth:`start`.
            UntrustedOriginError: as for :meth:`start`.
            HookError: as for :meth:`start`.
        """
        return await self._single(self._send_start, NO_WAIT)

    async def _send_start(self, wait: Wait) -> Any:
        if _observe.tracer is not None and self._span is None:
            return await self._atraced(self._send_start, "lrokit.start", wait)
        request = self._start_request
        core = self._core
        if request is None or core.next_action is not None:
            raise LroError("this operation has no start request left to send")
        if self._start_lost is not None:
            raise self._start_unknown_error()
        pipeline = self._pipeline
        errors = pipeline.transport_errors
        limiter = wait.limiter
        while True:
            if limiter is not None and not limiter.try_take():
                await limiter.take()  # not sent yet: cancelling here loses nothing
            self._in_flight = True
            try:
                view = await pipeline.send(
                    request.method,
                    request.url,
                    headers=request.headers,
                    json=request.json,
                    deadline=wait.deadline,
                    cap=pipeline.value_cap,
                    **request.kwargs,
                )
            except errors as error:
                timed_out = wait.deadline is not None and pipeline.clock() >= wait.deadline
                if not pipeline.never_sent(error):
                    lost = self._start_maybe_sent("deadline" if timed_out else "no answer")
                    if lost is not None:
                        raise lost from error
                if timed_out:
                    raise self._timeout_error(wait.limit) from error
                delay = self._start_fault(request.method, 0, None)
                if delay is None:
                    raise
            except BaseException as error:  # a cancelled task, an oversized answer, ...
                self._start_maybe_sent(lost_because(error))
                raise
            else:
                self._response = _raw(view)
                delay = self._start_answer_fault(view)
                if delay is None:
                    break  # the core applies it (the last transient one: StartRejectedError)
            finally:
                self._in_flight = False
                if limiter is not None:
                    limiter.give()
            await self._sleep(bounded_step(delay, wait.deadline, pipeline.clock()), wait)
        try:
            self._receive_polled(view, wait.interval, waiting=wait is not NO_WAIT)
        except StartRejectedError:
            raise  # the service said no: the start may be sent again
        except BaseException:
            self._start_maybe_sent("the answer could not be used")
            raise
        finally:
            if core.next_action is not None:
                self._start_request = None
        return self._response

    async def _sleep(self, step: WaitStep, wait: Wait) -> None:
        """Sleep one step of a wait, honouring its stop handle and deadline."""
        cancel = wait.cancel
        if cancel is not None and cancel.is_set():
            raise self._cancelled_error()
        if step.seconds > 0 and await self._pipeline.sleep(step.seconds, cancel):
            raise self._cancelled_error()
        if step.timeout:
            raise self._timeout_error(wait.limit)

    @classmethod
    def from_response(
        cls,
        client: SupportsAsyncPipeline,
        response: Any,
        *,
        method: str | None = None,
        core: OperationCore | None = None,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Build the operation from a start response the caller received itself (no I/O).

        ``response`` is an ``httpx.Response`` (whose request gives the method and URL) or a
        :class:`~lrokit.ResponseView` (then pass ``method``; its ``url`` is the request's).
        """
        pipeline = client.pipeline
        view = response if isinstance(response, ResponseView) else httpx_view(response)
        if core is None:
            if method is None:
                request = getattr(view.raw, "request", None)
                if request is None:
                    raise ValueError("pass method= with a ResponseView")
                method = str(request.method)
            core = cls._new_core(pipeline, method, view.url, options)
        operation = cls(pipeline, core, response=_raw(view), headers=operation_headers)
        operation._receive_polled(view, None, waiting=False)
        return operation

    @classmethod
    def from_monitor(
        cls,
        client: SupportsAsyncPipeline,
        url: str,
        *,
        method: str = "POST",
        start_url: str | None = None,
        location: str | None = None,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Follow an operation from its status monitor URL alone (no I/O).

        Exactly ``Operation.from_monitor``; not a coroutine, since it makes no request.
        """
        pipeline = client.pipeline
        core = cls._monitor_core(
            pipeline, url, method=method, start_url=start_url, location=location, options=options
        )
        return cls(pipeline, core, headers=operation_headers)

    @classmethod
    def rehydrate(
        cls,
        client: SupportsAsyncPipeline,
        token: RehydrationToken | str | bytes,
        *,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
        json: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        **request_kwargs: Any,
    ) -> Self:
        """Rebuild an operation from a token without sending a request or firing hooks.

        Exactly ``Operation.rehydrate`` (the same tokens, checks and errors), and a token
        written by either side resumes on either; not a coroutine, since it makes no I/O.
        """
        pipeline = client.pipeline
        parsed = pipeline.tokens.read(token)
        core = cls._restore_core(pipeline, parsed, options)
        operation = cls(pipeline, core, headers=operation_headers)
        if core.next_action is None:  # NotStarted: the start is to be sent again
            operation._plan_restart(
                parsed.fields.start_operation_id, json, headers, operation_headers, request_kwargs
            )
        return operation

    # -- reading ---------------------------------------------------------------------------

    @property
    def pipeline(self) -> AsyncPipeline:
        """The pipeline this operation sends requests through."""
        return self._pipeline

    def get_raw_response(self) -> Any:
        """The last response received (the sender's own object, such as an
        ``httpx.Response``; the ``ResponseView`` when it has none); None after rehydration."""
        return self._response

    # -- I/O ------------------------------------------------------------------------------

    async def update_status(self) -> Any:
        """Make exactly one request for the operation's status and apply its answer.

        The same contract as ``Operation.update_status`` (the start request first for a
        prepared operation, the final GET when it is due, no sleep, transient faults
        counted); returns the raw response, or None when no request is needed.

        Raises:
            PollTransportError: as ``Operation.update_status``.
            RetriesExhaustedError: as ``Operation.update_status``.
            PollRejectedError: as ``Operation.update_status``.
            ProtocolError: as ``Operation.update_status``.
            HookError: as ``Operation.update_status``.
        """
        outcome = await self._single(self._request_once, NO_WAIT)
        if isinstance(outcome, PollTransportError):
            raise outcome from outcome.__cause__
        return outcome

    async def _request_once(self, wait: Wait) -> Any:
        if self._start_request is not None:
            return await self._send_start(wait)
        if self._core.next_request_url is None:
            return None
        return await self._poll_once(wait)

    async def _single(self, action: Any, wait: Wait) -> Any:
        """Run one request-making ``action`` in the turn, then the coroutine hooks."""
        if self._busy:
            await self._queue_for_turn(wait)
        else:
            self._busy = True
        failure: BaseException | None = None
        try:
            return await action(wait)
        except BaseException as error:
            failure = error
            self._own(error)
            raise
        finally:
            self._steps += 1
            self._release_turn()
            if self._awaitables:
                await self._await_hooks(failure)

    async def wait_for_completion(
        self,
        polling_interval: float | timedelta | DelayStrategy | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: asyncio.Event | None = None,
    ) -> Self:
        """Poll until the operation completes; returns the operation itself.

        The same rules as ``Operation.wait_for_completion`` (delays, deadlines, transient
        faults, safe start retries). Cancelling the awaiting task stops the wait at once,
        mid-sleep or mid-request; the operation is left as before that request, resumable.

        Args:
            polling_interval: seconds, a ``timedelta`` or a delay strategy; see
                ``Operation.wait_for_completion``.
            timeout: a deadline on the pipeline's clock; no request at or after it.
            cancel: an ``asyncio.Event`` that stops the wait once set.

        Raises:
            WaitTimeoutError: as ``Operation.wait_for_completion``.
            WaitCancelledError: as ``Operation.wait_for_completion``.
            RetriesExhaustedError: as ``Operation.wait_for_completion``.
            PollRejectedError: as ``Operation.wait_for_completion``.
            ProtocolError: as ``Operation.wait_for_completion``.
            HookError: as ``Operation.wait_for_completion``.
            asyncio.CancelledError: the awaiting task was cancelled.
        """
        wait = self._new_wait(polling_interval, timeout, cancel)
        if _observe.tracer is not None:
            await self._traced_loop(wait)
            return self
        step = self._step  # the loop is inlined here and in _wait: a pending wait's frames
        while await step(wait, False):  # are most of what a pending operation costs
            pass
        return self

    async def _wait(self, wait: Wait) -> None:
        """``wait_for_completion`` with ready-made settings (``async_wait_all``'s)."""
        if _observe.tracer is not None:
            await self._traced_loop(wait)
            return
        step = self._step
        while await step(wait, False):
            pass

    async def _traced_loop(self, wait: Wait) -> None:
        """The loop of a wait inside a ``lrokit.wait`` span (only while tracing is on)."""
        wait = self._traced_wait(wait)
        try:
            while await self._step(wait, False):
                pass
        except BaseException as error:
            self._wait_ended(wait, error)
            raise
        self._wait_ended(wait, None)

    async def poll_iter(
        self,
        polling_interval: float | timedelta | DelayStrategy | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: asyncio.Event | None = None,
    ) -> AsyncIterator[PollUpdate]:
        """Wait as :meth:`wait_for_completion` does, yielding each processed response.

        ``async for update in operation.poll_iter(): ...``; see ``Operation.poll_iter``.
        Leaving the loop stops polling once the generator is closed (at once with
        ``contextlib.aclosing``); the operation stays resumable.
        """
        wait = self._new_wait(polling_interval, timeout, cancel)
        if _observe.tracer is not None:
            wait = self._traced_wait(wait)
        try:
            while True:
                update = await self._step(wait, True)
                if not isinstance(update, PollUpdate):
                    break
                yield update
        except BaseException as error:
            if wait.span is not None:
                self._wait_ended(wait, error)
            raise
        if wait.span is not None:
            self._wait_ended(wait, None)

    async def _step(self, wait: Wait, report: bool) -> PollUpdate | bool:
        """One step of a wait: send the start request, or sleep and poll once.

        Returns False when no request is left, else the update (``report``) or True.
        """
        pipeline = self._pipeline
        while True:
            mark = self._steps
            if self._start_request is None:
                if self._core.next_request_url is None:
                    return False
                step = self._wait_step(wait.interval, wait.deadline, pipeline.clock())
                cancel = wait.cancel
                if cancel is not None and cancel.is_set():
                    raise self._cancelled_error()
                if step.seconds > 0:
                    # Inlined (no frame of its own while pending): see _sleep.
                    if cancel is None and pipeline.sleep is default_async_sleep:
                        await asyncio.sleep(step.seconds)
                    elif await pipeline.sleep(step.seconds, cancel):
                        raise self._cancelled_error()
                if step.timeout:
                    raise self._timeout_error(wait.limit)
            if self._busy:
                await self._queue_for_turn(wait)
            else:
                self._busy = True
            failure: BaseException | None = self._shared_failure(mark)
            if failure is not None:
                self._release_turn()
                raise failure
            try:
                if self._steps != mark:
                    continue  # another waiter's request came first: plan again
                if self._start_request is not None:
                    await self._send_start(wait)
                elif self._core.next_request_url is None:
                    return False
                else:
                    await self._poll_once(wait)
                self._steps += 1
                return self._poll_update() if report else True
            except BaseException as error:
                failure = error
                self._step_failed(error)
                raise
            finally:
                self._release_turn()
                if self._awaitables:
                    await self._await_hooks(failure)

    async def _queue_for_turn(self, wait: Wait) -> None:
        """Wait until the task holding the turn hands it over, honouring the wait's deadline
        and stop handle (a task cancelled meanwhile passes a turn it was given on)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._queue is None:
            self._queue = deque()
        self._queue.append(future)
        if wait.deadline is None and wait.cancel is None:
            try:
                await future
            except BaseException:
                self._give_up(future)
                raise
            return
        waiting: set[asyncio.Future[Any]] = {future}
        stop = None
        if wait.cancel is not None:
            stop = asyncio.ensure_future(wait.cancel.wait())
            waiting.add(stop)
        remaining = None
        if wait.deadline is not None:
            remaining = max(0.0, wait.deadline - self._pipeline.clock())
        try:
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._give_up(future)
            raise
        finally:
            if stop is not None:
                stop.cancel()
        if future.done() and not future.cancelled():
            return  # handed over: this task holds the turn
        future.cancel()
        if wait.cancel is not None and wait.cancel.is_set():
            raise self._cancelled_error()
        raise self._timeout_error(wait.limit)

    def _give_up(self, future: asyncio.Future[None]) -> None:
        """Leave the queue for the turn; a turn handed over meanwhile goes to the next."""
        if future.done() and not future.cancelled():
            self._release_turn()
        else:
            future.cancel()

    def _release_turn(self) -> None:
        """Hand the turn to the first task still queued for it, or free it."""
        queue = self._queue
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(None)  # the turn stays taken: it is that task's now
                return
        self._busy = False

    async def _await_hooks(self, failure: BaseException | None) -> None:
        """Await the awaitables of coroutine hooks in call order; their errors (with those
        of plain hooks in ``failure``, when it is a ``HookError``) become one ``HookError``."""
        pending = self._awaitables or []
        self._awaitables = []
        errors: list[BaseException] = []
        for index, awaitable in enumerate(pending):
            try:
                await awaitable
            except Exception as error:  # noqa: BLE001 - collected and re-raised below
                errors.append(error)
            except BaseException:
                for left in pending[index + 1 :]:
                    close = getattr(left, "close", None)
                    if callable(close):
                        close()
                raise
        if errors:
            if isinstance(failure, HookError):
                errors = [*failure.errors, *errors]
            raise HookError(errors) from errors[0]

    async def flush_hooks(self) -> None:
        """Await coroutine hooks that manual driving (:meth:`receive`, ``apply_status``,
        ``fire``, which make no I/O and are not coroutines) has queued.

        The next request-making call awaits them too; call this when none follows.

        Raises:
            HookError: one or more of them raised.
        """
        if self._awaitables:
            await self._await_hooks(None)

    async def _poll_once(self, wait: Wait) -> Any:
        if _observe.tracer is not None and self._span is None:
            return await self._atraced(self._poll_once, "lrokit.poll", wait)
        url = self._core.next_request_url
        assert url is not None
        pipeline = self._pipeline
        deadline = wait.deadline
        # A deadline bounds the request in flight too (headers and body), not just sleeps.
        timeout = pipeline.request_timeout if deadline is None else pipeline.read_timeout(deadline)
        # The sender's call is made here, not through _send and AsyncPipeline.send: their
        # two extra coroutine frames stay alive while each of thousands of polls is in
        # flight (measured: 3.2 -> 4.0 KB per pending operation, 2.1x -> 2.6x the CPU floor).
        headers = {**pipeline.headers, **self._headers} if self._headers else pipeline.headers
        cap = self._body_cap()
        limiter = wait.limiter
        try:
            if limiter is not None and not limiter.try_take():
                await limiter.take()
            self._in_flight = True
            try:
                async with pipeline.time_bound(deadline):
                    view = await pipeline.request(
                        "GET", url, headers=headers, body=None, timeout=timeout, cap=cap, options={}
                    )
            finally:
                if limiter is not None:
                    limiter.give()
        except pipeline.transport_errors as error:
            if wait.deadline is not None and pipeline.clock() >= wait.deadline:
                raise self._timeout_error(wait.limit) from error
            return self._transport_failed(error)  # type: ignore[arg-type]
        finally:
            self._in_flight = False
        raw = self._response = _raw(pipeline.checked(view, cap))
        self._receive_polled(view, wait.interval, waiting=wait is not NO_WAIT)
        return raw

    async def cancel(self) -> Any:
        """Ask the service to cancel the operation (service side); returns its answer.

        The same contract as ``Operation.cancel``: not the same as stopping a wait (cancel
        the waiting task, or set the wait's ``cancel`` event, for that).

        Raises:
            CancelNotSupportedError: as ``Operation.cancel``.
            InvalidTransitionError: as ``Operation.cancel``.
            LroError: as ``Operation.cancel``.
            CancelRejectedError: as ``Operation.cancel``.
            Exception: one of the sender's ``transport_errors``: there was no answer.
        """
        self._check_cancellable()
        method, url = self.cancel_target()
        pipeline = self._pipeline
        view = await pipeline.send(
            method, url, headers=self._headers, cap=pipeline.body_cap(status=True)
        )

        async def apply(wait: Wait) -> Any:
            self._response = _raw(view)
            self._cancel_answered(view)
            return self._response

        return await self._single(apply, NO_WAIT)

    # -- manual driving ------------------------------------------------------------------

    def receive(self, response: Any) -> Decision:
        """Feed a response (an ``httpx.Response`` or a ``ResponseView``) into the operation
        without any I/O; returns the core's decision. Plain hooks run now; coroutine hooks
        are awaited by the next request-making call or :meth:`flush_hooks`."""
        view = response if isinstance(response, ResponseView) else httpx_view(response)
        if view.raw is not None:
            self._response = view.raw
        return self._receive_given(view)


def _raw(view: ResponseView) -> Any:
    """What ``get_raw_response`` returns for ``view``: the sender's object, else the view."""
    return view.raw if view.raw is not None else view


class Limiter:
    """A bound on requests in flight (``async_wait_all``'s ``max_in_flight``): a semaphore
    whose uncontended take is a plain call, first come first served."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a place at once if one is free and nobody queues; True when taken."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Queue for a place (a task cancelled meanwhile passes a place it was given on)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.give()
            else:
                future.cancel()
            raise

    def give(self) -> None:
        """Hand the place to the first task queued for one, or free it."""
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.free += 1
