"""The sync driver: :class:`Operation`, the Python spelling of System.ClientModel's OperationResult.

The driver owns the loop: it asks the core for the next request, sends it through the
pipeline's ``requests.Session``, feeds the answer back, dispatches hooks once the core has
finished the transition, and sleeps in the caller's thread. It starts no threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import msgspec
import requests
from typing_extensions import Self

from ._core import Action, Decision, OperationCore, ProtocolOptions
from ._delay import PollingDelay, as_seconds
from ._exceptions import (
    LroError,
    OperationCanceledError,
    OperationFailedError,
    OperationNotCompleteError,
    PollRejectedError,
    ProtocolError,
    WaitCancelledError,
    WaitTimeoutError,
)
from ._hooks import HookKind, Hooks, PollEvent, StateChange, Subscription
from ._parse import ResponseView, StatusUpdate
from ._pipeline import Pipeline, SupportsPipeline, view_of
from ._state import OperationState, Trigger, available_triggers
from ._token import RehydrationToken

__all__ = ["Operation"]

T = TypeVar("T")

_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout)


class Operation(Generic[T]):
    """A long-running operation of a service, and the way to wait for its value.

    SDK authors subclass it once per LRO (the "LRO subclient"), usually only to name the type
    of the value: ``class CreateVectorStoreOperation(Operation[VectorStore]): value_type =
    VectorStore``. The final JSON is then decoded into ``value_type`` with msgspec; override
    :meth:`decode_value` for anything else.

    Create one with :meth:`start` (sends the start request), :meth:`from_response` (you sent
    it), or :meth:`rehydrate` (from a token, without a request).
    """

    #: The type the final JSON is decoded into (any type msgspec can convert to). None keeps
    #: the decoded JSON as it is.
    value_type: ClassVar[Any] = None
    #: Protocol options for every operation of this class (None: the Azure defaults).
    protocol_options: ClassVar[ProtocolOptions | None] = None

    def __init__(
        self,
        pipeline: Pipeline,
        core: OperationCore,
        *,
        response: requests.Response | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap an existing core. Most code calls :meth:`start` or :meth:`rehydrate` instead."""
        self._pipeline = pipeline
        self._core = core
        self._response = response
        self._headers = dict(headers) if headers else None
        self._hooks: Hooks | None = None
        self._value: Any = _UNSET
        self._failures = 0
        self._last_delay: PollingDelay | None = None
        self._start_request: _StartRequest | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def kind(cls) -> str:
        """The name stored in tokens, so a token cannot be restored as another operation."""
        return f"{cls.__module__}.{cls.__qualname__}"

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
        absolute = pipeline.origin_policy.check(pipeline.url(url))
        if params:
            absolute = requests.Request(method, absolute, params=params).prepare().url or absolute
        core = OperationCore(
            method,
            absolute,
            options=options or cls.protocol_options,
            origin_policy=pipeline.origin_policy,
            kind=cls.kind(),
        )
        operation = cls(pipeline, core, headers=operation_headers)
        merged = {**(operation_headers or {}), **(headers or {})}
        operation._start_request = _StartRequest(method, absolute, json, merged, request_kwargs)
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
        **request_kwargs: Any,
    ) -> Self:
        """Send the start request and return the operation (Running, or already terminal).

        Args:
            client: the pipeline, or an SDK client holding one.
            method, url: the start request; ``url`` may be relative to the endpoint.
            json, params, headers: the start request's body, query and headers.
            operation_headers: headers sent with the start request and with every poll and
                final request of this operation (for example ``x-ms-client-request-id``).
            options: protocol options; defaults to the class's ``protocol_options``.
            request_kwargs: passed to ``requests`` for the start request only.

        Raises:
            StartRejectedError: the service answered with an HTTP error.
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
            **request_kwargs,
        )
        operation.send_start()
        return operation

    def send_start(self) -> requests.Response:
        """Send the start request of a :meth:`prepare`-d operation and apply its answer.

        Raises:
            LroError: the operation was not prepared, or its start request was already sent.
            StartRejectedError, ProtocolError, UntrustedOriginError, HookError: as for
                :meth:`start`; after a ``StartRejectedError`` the operation stays
                ``NotStarted`` and the start may be sent again.
        """
        request = self._start_request
        if request is None or self._core.next_action is not None:
            raise LroError("this operation has no start request left to send")
        response = self._pipeline.send(
            request.method,
            request.url,
            json=request.json,
            headers=request.headers,
            **request.kwargs,
        )
        self._response = response
        self._process(view_of(response), interval=None)
        self._start_request = None
        return response

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
            core = OperationCore(
                str(request.method or "GET"),
                str(request.url or response.url),
                options=options or cls.protocol_options,
                origin_policy=pipeline.origin_policy,
                kind=cls.kind(),
            )
        operation = cls(pipeline, core, response=response, headers=operation_headers)
        operation._process(view_of(response), interval=None)
        return operation

    @classmethod
    def rehydrate(
        cls,
        client: SupportsPipeline,
        token: RehydrationToken | str | bytes,
        *,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Rebuild an operation from a token without sending a request or firing hooks.

        The next :meth:`update_status` or :meth:`wait_for_completion` polls.

        Raises:
            InvalidTokenError: the token is malformed, of an unknown version, or belongs to
                another operation class.
            UntrustedOriginError: the token points outside the client's trusted origins.
        """
        pipeline = client.pipeline
        parsed = RehydrationToken.parse(token)
        core = OperationCore.restore(
            parsed,
            options=options or cls.protocol_options,
            origin_policy=pipeline.origin_policy,
            kind=cls.kind(),
        )
        return cls(pipeline, core, headers=operation_headers)

    # -- reading (no I/O) ----------------------------------------------------------------

    @property
    def state(self) -> OperationState:
        """The current lifecycle state."""
        return self._core.state

    @property
    def has_completed(self) -> bool:
        """Whether the operation reached Succeeded, Failed or Canceled. Makes no request."""
        return self._core.state.is_terminal

    @property
    def status(self) -> StatusUpdate | None:
        """The last parsed status report, or None before the first one."""
        return self._core.status

    @property
    def core(self) -> OperationCore:
        """The sans-I/O core (for inspection and advanced driving)."""
        return self._core

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline this operation sends requests through."""
        return self._pipeline

    @property
    def last_delay(self) -> PollingDelay | None:
        """The delay chosen after the last response and the rule that chose it."""
        return self._last_delay

    @property
    def rehydration_token(self) -> RehydrationToken:
        """A token from which :meth:`rehydrate` can resume this operation elsewhere."""
        return self._core.token()

    def get_raw_response(self) -> requests.Response | None:
        """The last HTTP response received for this operation (None after rehydration)."""
        return self._response

    @property
    def value(self) -> T:
        """The operation's result.

        Raises:
            OperationNotCompleteError: the operation has not succeeded yet (or was restored
                and its result not re-read yet: call :meth:`wait_for_completion`).
            OperationFailedError: the service reports that the operation failed.
            OperationCanceledError: the service reports that the operation was canceled.
        """
        if self._value is not _UNSET:
            return self._value  # type: ignore[no-any-return]
        core = self._core
        state = core.state
        if state is OperationState.SUCCEEDED and core.has_payload:
            self._value = self._decode(core.payload)
            return self._value  # type: ignore[no-any-return]
        if state is OperationState.FAILED:
            raise self._outcome_error(OperationFailedError, "failed")
        if state is OperationState.CANCELED:
            raise self._outcome_error(OperationCanceledError, "was canceled")
        if state is OperationState.SUCCEEDED and core.next_request_url is None:
            raise OperationNotCompleteError(
                "the operation succeeded with its start response, whose body was its result;"
                " tokens never carry response bodies, so a restored operation cannot read it"
            )
        if state is OperationState.SUCCEEDED:
            raise OperationNotCompleteError(
                "the operation succeeded but its result has not been read since it was "
                "restored; call update_status() or wait_for_completion() first"
            )
        raise OperationNotCompleteError(
            f"the operation has not completed (state {state.value}); call "
            "wait_for_completion() or poll with update_status() until has_completed"
        )

    def decode_value(self, payload: Any) -> T:
        """Turn the final JSON (already decoded) into the value; override for custom types."""
        value_type = type(self).value_type
        if value_type is None:
            return payload  # type: ignore[no-any-return]
        return msgspec.convert(payload, value_type, strict=False)  # type: ignore[no-any-return]

    def _decode(self, payload: Any) -> T:
        try:
            return self.decode_value(payload)
        except msgspec.ValidationError as error:
            raise ProtocolError(
                f"the operation's result does not match {type(self).value_type!r}: {error}",
                response=self._response,
                rehydration_token=str(self.rehydration_token),
            ) from error

    def _outcome_error(
        self, error_type: type[OperationFailedError] | type[OperationCanceledError], verb: str
    ) -> Exception:
        service_error = self._core.error
        detail = f": {service_error}" if service_error is not None else ""
        return error_type(
            f"the operation {verb}{detail}",
            response=self._response,
            service_error=service_error,
            rehydration_token=str(self.rehydration_token),
        )

    # -- I/O ------------------------------------------------------------------------------

    def update_status(self) -> requests.Response | None:
        """Make exactly one request for the operation's status and apply its answer.

        When the operation is waiting for its final resource, that request is the final GET;
        for a :meth:`prepare`-d operation that was not sent yet, it is the start request.
        Returns the response, or None when the operation needs no more requests.

        Raises:
            PollRejectedError: the service answered with a non-transient HTTP error, or with
                transient ones more times in a row than the policy's ``max_retries``.
            ProtocolError: the answer cannot be used; the state did not change.
            HookError: a hook raised; the state change stood.
        """
        if self._start_request is not None:
            return self.send_start()
        if self._core.next_request_url is None:
            return None
        return self._poll_once(None)

    def wait_for_completion(
        self,
        polling_interval: float | timedelta | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Self:
        """Poll until the operation completes; returns the operation itself.

        A :meth:`prepare`-d operation is started first.

        Args:
            polling_interval: seconds (or a ``timedelta``) between polls; the pipeline
                policy's interval when None. A longer server ``Retry-After`` wins.
            timeout: a deadline on the monotonic clock; never slept past.
            cancel: an event that, once set, stops the wait promptly.

        Raises:
            WaitTimeoutError: the deadline passed; the operation is unchanged and resumable.
            WaitCancelledError: ``cancel`` was set; the operation is unchanged and resumable.
            PollRejectedError, ProtocolError, HookError: see :meth:`update_status`.

        A Failed or Canceled outcome does not raise here; reading :attr:`value` does.
        """
        interval = None if polling_interval is None else as_seconds(polling_interval)
        pipeline = self._pipeline
        clock = pipeline.clock
        deadline = None if timeout is None else clock() + as_seconds(timeout)
        core = self._core
        if self._start_request is not None:
            self.send_start()
        while core.next_request_url is not None:
            if core.next_action is Action.FETCH_FINAL and self._failures == 0:
                delay = 0.0
            else:
                delay = self._next_delay(interval).seconds
            if deadline is not None:
                remaining = deadline - clock()
                if remaining <= 0 or delay >= remaining:
                    if remaining > 0 and pipeline.sleep(remaining, cancel):
                        self._raise_cancelled()
                    raise WaitTimeoutError(
                        f"the operation did not complete within {as_seconds(timeout or 0)} s"
                        f" (state {core.state.value})",
                        state=core.state,
                        rehydration_token=str(self.rehydration_token),
                    )
            if cancel is not None and cancel.is_set():
                self._raise_cancelled()
            if delay > 0 and pipeline.sleep(delay, cancel):
                self._raise_cancelled()
            self._poll_once(interval)
        return self

    def _poll_once(self, interval: float | None) -> requests.Response | None:
        url = self._core.next_request_url
        assert url is not None
        try:
            response = self._pipeline.send("GET", url, headers=self._headers)
        except _TRANSPORT_ERRORS as error:
            self._failures += 1
            policy = self._pipeline.polling
            if self._failures > policy.max_retries:
                self._failures = 0
                raise PollRejectedError(
                    f"the status request failed {policy.max_retries + 1} times in a row: {error}",
                    status_code=0,
                    rehydration_token=str(self.rehydration_token),
                ) from error
            self._last_delay = policy.retry_delay(self._failures, None)
            return None
        self._response = response
        self._process(view_of(response), interval)
        return response

    def _raise_cancelled(self) -> None:
        raise WaitCancelledError(
            f"the wait was cancelled (state {self._core.state.value}); the operation can be "
            "waited on again or resumed from its token",
            state=self._core.state,
            rehydration_token=str(self.rehydration_token),
        )

    def _next_delay(self, interval: float | None) -> PollingDelay:
        if self._failures and self._last_delay is not None:
            return self._last_delay  # backing off after a transient error
        status = self._core.status
        hint = status.retry_after if status is not None else None
        self._last_delay = self._pipeline.polling.delay(interval, hint)
        return self._last_delay

    # -- processing one response ---------------------------------------------------------

    def _process(self, view: ResponseView, interval: float | None) -> Decision:
        decision = self._core.receive(view)
        self._after(decision, view.raw, interval)
        return decision

    def _after(self, decision: Decision, raw: Any, interval: float | None) -> None:
        policy = self._pipeline.polling
        if decision.action is Action.RETRY:
            self._failures += 1
            if self._failures > policy.max_retries:
                self._failures = 0
                status_code = raw.status_code if raw is not None else 0
                raise PollRejectedError(
                    f"the service kept answering with transient errors (last HTTP {status_code})"
                    f" {policy.max_retries + 1} times in a row",
                    status_code=status_code,
                    response=raw,
                    rehydration_token=str(self.rehydration_token),
                )
            self._last_delay = policy.retry_delay(self._failures, decision.retry_after)
        else:
            self._failures = 0
            if decision.action is Action.POLL:
                self._last_delay = policy.delay(interval, decision.retry_after)
            else:
                self._last_delay = None
        if self._hooks is not None and len(self._hooks):
            change = (
                StateChange(self, decision.previous, decision.state) if decision.changed else None
            )
            poll = PollEvent(
                self, decision.state, decision.status, self._core.attempt, self._last_delay, raw
            )
            self._hooks.notify(poll, change)

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
        decision = self._core.receive(view)
        self._after(decision, view.raw, None)
        return decision

    def apply_status(self, update: StatusUpdate, payload: Any = None) -> Decision:
        """Apply a status you parsed yourself (custom protocols); hooks run as usual."""
        decision = self._core.apply_status(update, payload)
        self._after(decision, None, None)
        return decision

    def fire(self, trigger: Trigger | str) -> OperationState:
        """Fire a named transition by hand; returns the new state.

        Raises:
            InvalidTransitionError: not allowed from the current state; nothing changes.
            HookError: a change or enter hook raised; the transition stood.
        """
        previous = self._core.fire(trigger)
        if self._hooks is not None and len(self._hooks):
            self._hooks.notify(None, StateChange(self, previous, self._core.state))
        return self._core.state

    @property
    def available_triggers(self) -> tuple[Trigger, ...]:
        """The triggers that :meth:`fire` accepts in the current state."""
        return available_triggers(self._core.state)

    # -- hooks ---------------------------------------------------------------------------

    def _subscribe(
        self, kind: HookKind, callback: Callable[[Any], object], state: OperationState | None
    ) -> Subscription:
        if self._hooks is None:
            self._hooks = Hooks()
        return self._hooks.add(kind, callback, state)

    def on_change(self, callback: Callable[[StateChange[Self]], object]) -> Subscription:
        """Call ``callback`` with a :class:`StateChange` after every state change."""
        return self._subscribe(HookKind.CHANGE, callback, None)

    def on_enter(
        self, state: OperationState | str, callback: Callable[[StateChange[Self]], object]
    ) -> Subscription:
        """Call ``callback`` with a :class:`StateChange` whenever the operation enters ``state``."""
        return self._subscribe(HookKind.ENTER, callback, OperationState(state))

    def on_poll(self, callback: Callable[[PollEvent[Self]], object]) -> Subscription:
        """Call ``callback`` with a :class:`PollEvent` after every processed response."""
        return self._subscribe(HookKind.POLL, callback, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self._core.state.value} {self._core.initial_url}>"


class _StartRequest(NamedTuple):
    method: str
    url: str
    json: Any
    headers: dict[str, str]
    kwargs: dict[str, Any]


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()
