"""The sync driver: :class:`Operation`, the Python spelling of System.ClientModel's OperationResult.

The driver owns the loop: it asks the core for the next request, sends it through the
pipeline's ``requests.Session``, feeds the answer back (the shared logic in ``_base.py``
dispatches hooks once the core has finished the transition) and sleeps in the caller's thread.
It starts no threads.

Threads waiting on the same operation share its requests: one lock (the "turn") is held
around each request and the processing of its answer, never around a sleep. A waiter that
wakes to find that another one made a request meanwhile plans its next sleep again instead
of polling, so two waiters make the requests of one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

import requests
from typing_extensions import Self

from . import _observe
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
from ._core import Action, Decision, OperationCore, ProtocolOptions
from ._delay import DelaySource, DelayStrategy
from ._exceptions import LroError, PollTransportError, StartRejectedError
from ._parse import ResponseView
from ._pipeline import Pipeline, SupportsPipeline, view_of
from ._token import RehydrationToken

__all__ = ["Operation"]

T = TypeVar("T")

# Enum members as globals for the per-poll path (an Enum class attribute is slow to read).
_FETCH_FINAL = Action.FETCH_FINAL
_STRATEGY = DelaySource.STRATEGY

#: How often a thread queued behind another waiter's request checks its stop handle (s).
_TURN_SLICE = 0.05

#: Exceptions of ``requests`` that mean "no (complete) answer arrived": worth another try.
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class Operation(OperationBase[T]):
    """A long-running operation of a service, and the way to wait for its value.

    SDK authors subclass it once per LRO (the "LRO subclient"), usually only to name the type
    of the value: ``class CreateVectorStoreOperation(Operation[VectorStore]): value_type =
    VectorStore``. The final JSON is then decoded into ``value_type`` with msgspec; override
    :meth:`decode_value` for anything else.

    Create one with :meth:`start` (sends the start request), :meth:`prepare` (not sent yet),
    :meth:`from_response` (you sent it), :meth:`from_monitor` (only its status monitor URL is
    known), or :meth:`rehydrate` (from a token, no request).
    """

    token_kind: ClassVar[str | None] = PLAIN_KIND

    def __init__(
        self,
        pipeline: Pipeline,
        core: OperationCore,
        *,
        response: requests.Response | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap an existing core. Most code calls :meth:`start` or :meth:`rehydrate` instead."""
        super().__init__(pipeline, core, response)
        self._pipeline = pipeline
        self._headers = dict(headers) if headers else None
        # Held around each request and the processing of its answer (see the module doc).
        self._turn = threading.RLock()

    # -- construction --------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        client: SupportsPipeline,
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
        """Build the operation in ``NotStarted`` without sending anything.

        Hooks subscribed now see every transition, including ``NotStarted -> Running``. The
        start request is sent by :meth:`send_start`, or by the first :meth:`update_status` or
        :meth:`wait_for_completion`. Arguments are those of :meth:`start`.

        Raises:
            UntrustedOriginError: ``url`` is outside the trusted origins.
        """
        pipeline = client.pipeline
        absolute, trusted = pipeline._endpoint_url(url)
        if params:
            absolute = requests.Request(method, absolute, params=params).prepare().url or absolute
            trusted = False
        core = cls._new_core(pipeline, method, absolute, options, trusted=trusted)
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
    def start(
        cls,
        client: SupportsPipeline,
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
            client: the pipeline, or an SDK client holding one.
            method: the start request's HTTP method.
            url: the start request's URL; it may be relative to the endpoint.
            json: the start request's body, sent as JSON.
            params: the start request's query parameters.
            headers: the start request's headers.
            operation_headers: headers sent with the start request and with every poll and
                final request of this operation (for example ``x-ms-client-request-id``).
            options: protocol options; defaults to the class's ``protocol_options``.
            idempotent: send the operation's id in an ``Operation-Id`` header, so that a
                service honouring it treats a repeated start as the same operation; lrokit
                then retries the start after transient faults, as it always does for PUT
                and DELETE (an ``Operation-Id`` in ``headers`` counts too).
            request_kwargs: passed to ``requests`` for the start request only.

        Raises:
            StartRejectedError: the service answered with an HTTP error (after the retries
                allowed for a safe start, the last answer).
            requests.RequestException: the start got no answer (a start that is not safe to
                repeat is never retried: the service may have received it).
            ProtocolError: the answer gives no way to follow the operation.
            UntrustedOriginError: ``url`` or a polling URL is outside the trusted origins.
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
        operation.send_start()
        return operation

    def send_start(self) -> requests.Response:
        """Send the start request of a :meth:`prepare`-d operation and apply its answer.

        Raises:
            LroError: the operation was not prepared, or its start request was already sent.
            StartRejectedError: as for :meth:`start`; the operation then stays
                ``NotStarted`` and the start may be sent again.
            ProtocolError: as for :meth:`start`.
            UntrustedOriginError: as for :meth:`start`.
            HookError: as for :meth:`start`.
        """
        if not self._turn.acquire(False):
            self._take_turn(NO_WAIT, None)
        try:
            return self._send_start(NO_WAIT)
        finally:
            self._steps += 1
            self._turn.release()

    def _send_start(self, wait: Wait) -> requests.Response:
        if _observe.tracer is not None and self._span is None:
            return self._traced(self._send_start, "lrokit.start", wait)
        request = self._start_request
        core = self._core
        if request is None or core.next_action is not None:
            raise LroError("this operation has no start request left to send")
        if self._start_lost is not None:
            raise self._start_unknown_error()
        pipeline = self._pipeline
        while True:
            self._in_flight = True
            try:
                response = pipeline.send(
                    request.method,
                    request.url,
                    json=request.json,
                    headers=request.headers,
                    deadline=wait.deadline,
                    cap=pipeline.value_cap,
                    **request.kwargs,
                )
            except _TRANSPORT_ERRORS as error:
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
            except BaseException as error:  # an interrupt, an unreadable or oversized answer
                self._start_maybe_sent(lost_because(error))
                raise
            else:
                view = view_of(response)
                self._response = response
                delay = self._start_answer_fault(view)
                if delay is None:
                    break  # the core applies it (the last transient one: StartRejectedError)
            finally:
                self._in_flight = False
            self._sleep(bounded_step(delay, wait.deadline, pipeline.clock()), wait)
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
        return response

    def _sleep(self, step: WaitStep, wait: Wait) -> None:
        """Sleep one step of a wait, honouring its cancellation handle and deadline."""
        cancel = wait.cancel
        if cancel is not None and cancel.is_set():
            raise self._cancelled_error()
        if step.seconds > 0 and self._pipeline.sleep(step.seconds, cancel):
            raise self._cancelled_error()
        if step.timeout:
            raise self._timeout_error(wait.limit)

    @classmethod
    def from_response(
        cls,
        client: SupportsPipeline,
        response: requests.Response,
        *,
        core: OperationCore | None = None,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Build the operation from a start response the caller received itself."""
        pipeline = client.pipeline
        if core is None:
            request = response.request
            method, url = str(request.method or "GET"), str(request.url or response.url)
            core = cls._new_core(pipeline, method, url, options)
        operation = cls(pipeline, core, response=response, headers=operation_headers)
        operation._receive_polled(view_of(response), None, waiting=False)
        return operation

    @classmethod
    def from_monitor(
        cls,
        client: SupportsPipeline,
        url: str,
        *,
        method: str = "POST",
        start_url: str | None = None,
        location: str | None = None,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Follow an operation from its status monitor URL alone (no request is sent).

        For an operation started elsewhere: ``url`` is its ``Operation-Location`` (or
        ``Azure-AsyncOperation``). The operation is Running and its first
        :meth:`update_status` or wait polls ``url``. What the start request and its answer
        would have told is optional and decides where the final value is read from, as for
        :meth:`start`: ``method`` and ``start_url`` (default: ``url``) of the start request,
        and its ``Location`` header. With the defaults the value is the resource named by
        the monitor's ``resourceLocation``, else the monitor's ``result``.

        Raises:
            UntrustedOriginError: a URL is outside the trusted origins.
        """
        pipeline = client.pipeline
        core = cls._monitor_core(
            pipeline, url, method=method, start_url=start_url, location=location, options=options
        )
        return cls(pipeline, core, headers=operation_headers)

    @classmethod
    def rehydrate(
        cls,
        client: SupportsPipeline,
        token: RehydrationToken | str | bytes,
        *,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
        json: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        **request_kwargs: Any,
    ) -> Self:
        """Rebuild an operation from a token without sending a request or firing hooks.

        The next :meth:`update_status` or :meth:`wait_for_completion` polls (or fetches the
        final resource, if that was next).

        A token taken before the start response arrived (``NotStarted``) is restorable only
        when repeating the start is safe: PUT, DELETE, or a start that carried an
        ``Operation-Id`` (``idempotent=True``), which is sent again. Tokens never hold
        request bodies or headers, so such a restore needs the start request's ``json``
        (``None`` for no body), ``headers`` and ``request_kwargs`` again; the start is sent
        by the first :meth:`update_status`, :meth:`wait_for_completion` or :meth:`send_start`.
        For any other token these arguments are ignored.

        Raises:
            InvalidTokenError: the token is malformed, oversized, unsigned or altered (when
                the pipeline's token policy has a signer), of an unknown version, redacted,
                not restorable, or belongs to another operation class.
            TokenOriginError: a URL in the token is outside the client's trusted origins (an
                :class:`InvalidTokenError` and an :class:`UntrustedOriginError`).
            ValueError: a ``NotStarted`` token without ``json=``, or ``headers`` with an
                ``Operation-Id`` other than the token's.
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
    def pipeline(self) -> Pipeline:
        """The pipeline this operation sends requests through."""
        return self._pipeline

    def get_raw_response(self) -> requests.Response | None:
        """The last HTTP response received for this operation (None after rehydration)."""
        return self._response  # type: ignore[no-any-return]

    # -- I/O ------------------------------------------------------------------------------

    def update_status(self) -> requests.Response | None:
        """Make exactly one request for the operation's status and apply its answer.

        When the operation is waiting for its final resource, that request is the final GET;
        for a :meth:`prepare`-d operation that was not sent yet, it is the start request.
        It never sleeps, so a transient fault is not retried here; it is counted against
        the policy's ``max_retries`` and the state stays as it was.

        Returns:
            The response, including a transient one (HTTP 408/429/5xx, or a 2xx answer
                whose body is not JSON) after which the state is unchanged and
                :attr:`last_delay` says how long to back off; None only when the operation
                needs no more requests.

        Raises:
            PollTransportError: the request got no answer (connection error, timeout); the
                fault was counted, the state is unchanged, call again later.
            RetriesExhaustedError: more transient faults in a row than ``max_retries``.
            PollRejectedError: the service answered with a non-transient HTTP error.
            ProtocolError: the answer cannot be used; the state did not change.
            HookError: a hook raised; the state change stood.
        """
        self._take_turn(NO_WAIT, None)
        try:
            if self._start_request is not None:
                return self._send_start(NO_WAIT)
            if self._core.next_request_url is None:
                return None
            outcome = self._poll_once(NO_WAIT)
        finally:
            self._steps += 1
            self._turn.release()
        if isinstance(outcome, PollTransportError):
            raise outcome from outcome.__cause__
        return outcome

    def wait_for_completion(
        self,
        polling_interval: float | timedelta | DelayStrategy | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Self:
        """Poll until the operation completes; returns the operation itself.

        A :meth:`prepare`-d operation is started first. Each delay follows the pipeline's
        :class:`~lrokit.PollingPolicy`: ``clamp(max(strategy(attempt), server_hint), floor,
        cap)``. Transient faults are retried with back-off within the policy's budget.

        Args:
            polling_interval: seconds (or a ``timedelta``) between polls, or a delay
                strategy, for this wait; the policy's strategy when None. A longer server
                ``Retry-After`` wins; the policy's floor and cap still apply.
            timeout: a deadline on the pipeline's monotonic clock. The wait never sleeps
                past it and makes no request at or after it; a request in flight is bounded
                by the time left (and by the pipeline's ``request_timeout``).
            cancel: an event that, once set, stops the wait promptly, even mid-sleep. This
                stops *waiting*; :meth:`cancel` asks the service to cancel the operation.

        Raises:
            WaitTimeoutError: the deadline came; the operation is unchanged and resumable.
            WaitCancelledError: ``cancel`` was set; the operation is unchanged and resumable.
            RetriesExhaustedError: more transient faults in a row than ``max_retries``.
            PollRejectedError: see :meth:`update_status`.
            ProtocolError: see :meth:`update_status`.
            HookError: see :meth:`update_status`.

        A Failed or Canceled outcome does not raise here; reading :attr:`value` does.

        Several threads may wait on the same operation: they share its requests (one
        request per due poll, whoever makes it), and all return once it completes. An
        error that ends another thread's wait while this one waits (a rejected poll, a
        hook's error) ends this one too; a deadline or ``cancel`` is each waiter's own.
        """
        wait = self._new_wait(polling_interval, timeout, cancel)
        if _observe.tracer is not None:
            wait = self._traced_wait(wait)
        try:
            while self._step(wait, False):
                pass
        except BaseException as error:
            if wait.span is not None:
                self._wait_ended(wait, error)
            raise
        if wait.span is not None:
            self._wait_ended(wait, None)
        return self

    def poll_iter(
        self,
        polling_interval: float | timedelta | DelayStrategy | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[PollUpdate]:
        """Wait as :meth:`wait_for_completion` does, yielding each processed response.

        Each :class:`~lrokit.PollUpdate` has the state, the raw status, the percent
        complete where the service reports it and the next delay; the last one is the
        completing response. Leaving the loop early (``break``) stops polling; the
        operation stays resumable. A prepared operation's start is the first update.
        Arguments and errors are those of :meth:`wait_for_completion`.
        """
        wait = self._new_wait(polling_interval, timeout, cancel)
        if _observe.tracer is not None:
            wait = self._traced_wait(wait)
        try:
            while True:
                update = self._step(wait, True)
                if not isinstance(update, PollUpdate):
                    break
                yield update
        except BaseException as error:
            if wait.span is not None:
                self._wait_ended(wait, error)
            raise
        if wait.span is not None:
            self._wait_ended(wait, None)

    def _step(self, wait: Wait, report: bool) -> PollUpdate | bool:
        """One step of a wait: send the start request, or sleep and poll once.

        Returns False when no request is left, else the update (``report``) or True.
        The sleep happens outside the turn; a waiter that finds that another one made a
        request while it slept plans its sleep again instead of polling.
        """
        pipeline = self._pipeline
        core = self._core
        turn = self._turn
        while True:
            mark = self._steps
            if self._start_request is None:
                if core.next_request_url is None:
                    return False
                deadline = wait.deadline
                if deadline is None:
                    # No deadline: no clock read and no step to build unless sleeping.
                    interval, last = wait.interval, self._last_delay
                    if (
                        self._pending
                        and type(interval) is float
                        and last is not None
                        and last.seconds == interval
                        and last.source is _STRATEGY
                        and self._pending_hint is None
                        and core.next_action is not _FETCH_FINAL
                    ):
                        # _delay_seconds' shortcut (the same fixed delay again), inline.
                        self._planned_for, self._pending = interval, False
                        seconds = interval
                    else:
                        seconds = self._delay_seconds(interval)
                    if seconds > 0 or wait.cancel is not None:
                        self._sleep(WaitStep(seconds, False), wait)
                else:
                    step = self._wait_step(wait.interval, deadline, pipeline.clock())
                    if step.seconds > 0 or step.timeout or wait.cancel is not None:
                        self._sleep(step, wait)
            if not turn.acquire(blocking=False):
                self._take_turn(wait, mark)  # queued behind another waiter (and checks below)
            elif self._failure is not None:
                failure = self._shared_failure(mark)
                if failure is not None:
                    turn.release()
                    raise failure
            try:
                if self._steps != mark:
                    continue  # another waiter's request came first: plan again
                if self._start_request is not None:
                    self._send_start(wait)
                elif core.next_request_url is None:
                    return False
                else:
                    self._poll_once(wait)
                self._steps += 1
                return self._poll_update() if report else True
            except BaseException as error:
                self._step_failed(error)
                raise
            finally:
                turn.release()

    def _take_turn(self, wait: Wait, mark: int | None) -> None:
        """Hold the turn (see the module doc), honouring the wait's deadline and handle.

        With a ``mark``, an error that ended another waiter's step taken since then is
        raised here too (see :meth:`_shared_failure`).
        """
        turn = self._turn
        if not turn.acquire(blocking=False):
            pipeline = self._pipeline
            cancel = wait.cancel
            while True:
                if cancel is not None and cancel.is_set():
                    raise self._cancelled_error()
                timeout = _TURN_SLICE if cancel is not None else -1.0
                if wait.deadline is not None:
                    remaining = wait.deadline - pipeline.clock()
                    if remaining <= 0:
                        raise self._timeout_error(wait.limit)
                    timeout = remaining if timeout < 0 else min(timeout, remaining)
                if turn.acquire(timeout=timeout):
                    break
        if mark is not None:
            failure = self._shared_failure(mark)
            if failure is not None:
                turn.release()
                raise failure

    def _poll_once(self, wait: Wait) -> requests.Response | PollTransportError:
        if _observe.tracer is not None and self._span is None:
            return self._traced(self._poll_once, "lrokit.poll", wait)
        url = self._core.next_request_url
        assert url is not None
        pipeline = self._pipeline
        deadline = wait.deadline
        try:
            # A deadline bounds the request in flight too (headers and body), not just sleeps.
            response = pipeline.send(
                "GET", url, headers=self._headers, deadline=deadline, cap=self._body_cap()
            )
        except _TRANSPORT_ERRORS as error:
            if deadline is not None and pipeline.clock() >= deadline:
                raise self._timeout_error(wait.limit) from error
            return self._transport_failed(error)
        self._response = response
        self._receive_polled(view_of(response), wait.interval, waiting=wait is not NO_WAIT)
        return response

    def cancel(self) -> requests.Response:
        """Ask the service to cancel the operation (service side); returns its answer.

        This is not the same as stopping a wait (``wait_for_completion(cancel=...)``), which
        leaves the operation running at the service. The request is the one
        :meth:`cancel_target` describes (from the class's ``cancel_request``). The state
        becomes Canceled only when the service confirms: when this answer reports the
        status ``Canceled``, or later, when a poll does. Keep waiting to see the outcome;
        an operation that finished first ends Succeeded or Failed. Not retried.

        Raises:
            CancelNotSupportedError: no cancel request is configured (the default).
            InvalidTransitionError: the operation has already completed.
            LroError: the operation has not been started.
            CancelRejectedError: the service refused (e.g. HTTP 409); state unchanged.
            requests.RequestException: the request got no answer.
        """
        self._check_cancellable()
        method, url = self.cancel_target()
        pipeline = self._pipeline
        response = pipeline.send(
            method, url, headers=self._headers, cap=pipeline.body_cap(status=True)
        )
        self._take_turn(NO_WAIT, None)  # not during another thread's poll
        try:
            self._response = response
            self._cancel_answered(view_of(response))
        finally:
            self._turn.release()
        return response

    # -- manual driving ------------------------------------------------------------------

    def receive(self, response: requests.Response | ResponseView) -> Decision:
        """Feed a response into the operation without any I/O; returns the core's decision.

        Use it to drive an operation from responses obtained elsewhere. Hooks run as usual.
        """
        if isinstance(response, ResponseView):
            view = response
            if isinstance(response.raw, requests.Response):
                self._response = response.raw
        else:
            view = view_of(response)
            self._response = response
        return self._receive_given(view)
