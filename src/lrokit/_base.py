"""What the sync and async operations share: everything but sending and sleeping.

:class:`OperationBase` holds an operation's core, hooks and waiting state. It decides, without
I/O, how long to wait and when a deadline has come, dispatches hooks after each transition,
and decodes the value. ``Operation`` (``_sync.py``) and ``AsyncOperation`` add only the loop
that sends requests and sleeps.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import msgspec
from typing_extensions import Self

from . import _observe
from ._core import (
    IDEMPOTENT_METHODS,
    Action,
    Decision,
    OperationCore,
    PollingProtocol,
    ProtocolOptions,
    start_is_retried,
)
from ._delay import (
    DelaySource,
    DelayStrategy,
    Interval,
    PollingDelay,
    PollingPolicy,
    as_seconds,
)
from ._exceptions import (
    CancelNotSupportedError,
    CancelRejectedError,
    HookError,
    InvalidTokenError,
    InvalidTransitionError,
    LroError,
    MalformedBodyError,
    OperationCanceledError,
    OperationError,
    OperationFailedError,
    OperationNotCompleteError,
    PollTransportError,
    ProtocolError,
    RetriesExhaustedError,
    StartOutcomeUnknownError,
    StartRejectedError,
    WaitCancelledError,
    WaitTimeoutError,
)
from ._hooks import HookKind, Hooks, PollEvent, ResponseEvent, StateChange, Subscription
from ._parse import (
    ResponseView,
    StatusUpdate,
    parse_retry_after,
    parse_service_error,
)
from ._pipeline import BodyCap, within
from ._state import OperationState, Trigger, available_triggers
from ._token import RehydrationToken, TokenPolicy
from ._urls import OriginPolicy, encode_unsafe, with_api_version

__all__ = [
    "NO_BODY",
    "NO_WAIT",
    "OPERATION_ID_HEADER",
    "PLAIN_KIND",
    "OperationBase",
    "PipelineSettings",
    "PollUpdate",
    "StartRequest",
    "Wait",
    "WaitStep",
    "bounded_step",
    "lost_because",
    "within",
]

#: The request header that makes a start request idempotent on services that honour it
#: (Microsoft REST API guidelines); lrokit sends the operation's own id in it on request.
OPERATION_ID_HEADER = "Operation-Id"
#: The kind in the tokens of a plain ``Operation`` and ``AsyncOperation``: the name lrokit
#: 0.1.0 wrote, kept since the class is shown as ``lrokit.Operation``.
PLAIN_KIND = "lrokit._sync.Operation"
#: The module names of a program run directly: ``python script.py`` or ``python -m mod`` make
#: ``__main__``, multiprocessing's spawned children ``__mp_main__``.
_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})
_OPERATION_ID_LOWER = OPERATION_ID_HEADER.lower()
#: Start requests that may be repeated without an ``Operation-Id``: idempotent by HTTP.
_POLLING_ACTIONS = frozenset({Action.POLL, Action.RETRY, Action.FETCH_FINAL})
#: What a token accepts as an Operation-Id: visible ASCII, at most 256 characters.
_TOKEN_WORD = re.compile(r"[!-~]{1,256}")
#: ``json=`` not given to ``rehydrate`` (None is a valid body: no body).
NO_BODY: Any = object()

T = TypeVar("T")
R = TypeVar("R")

_LOG = _observe.LOGGER
_DEBUG = logging.DEBUG
#: Decisions after which a delay is planned (the one the per-response record reports).
_DELAYED = frozenset({Action.POLL, Action.RETRY})
# Enum members as globals for the per-response path (an Enum class attribute costs ten times
# as much to read).
_POLL, _RETRY, _FETCH_FINAL = Action.POLL, Action.RETRY, Action.FETCH_FINAL
_STRATEGY = DelaySource.STRATEGY
_SUCCEEDED = OperationState.SUCCEEDED


class PipelineSettings(Protocol):
    """What the shared logic reads from a sync or async pipeline."""

    @property
    def origin_policy(self) -> OriginPolicy:
        """The trusted origins."""
        ...

    @property
    def polling(self) -> PollingPolicy:
        """The waiting rules."""
        ...

    @property
    def tokens(self) -> TokenPolicy:
        """How rehydration tokens are written and read (signing, size, secrets)."""
        ...

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock that deadlines are measured on."""
        ...

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` relative to the endpoint."""
        ...

    def body_cap(self, *, status: bool) -> BodyCap:
        """The cap on a status answer's body (``status``) or on one that may hold the value."""
        ...


class WaitStep(NamedTuple):
    """What a wait loop does next: sleep ``seconds``, then poll, or raise ``timeout``."""

    seconds: float
    timeout: bool


def bounded_step(delay: float, deadline: float | None, now: float) -> WaitStep:
    """Sleep ``delay`` then go on, unless that would reach ``deadline``: then sleep only
    until the deadline and time out (no request is made at or after a deadline)."""
    if deadline is not None:
        remaining = deadline - now
        if remaining <= 0 or delay >= remaining:
            return WaitStep(max(0.0, remaining), True)
    return WaitStep(delay, False)


def lost_because(error: BaseException) -> str:
    """How a start request in flight ended without an answer, in a few words."""
    if isinstance(error, Exception):
        return f"{type(error).__name__} while it was in flight"
    return "cancelled while it was in flight"


class Wait(NamedTuple):
    """The settings of one wait (``wait_for_completion``, ``poll_iter``), or none at all.

    ``cancel`` is the driver's cancellation handle (a ``threading.Event`` or an
    ``asyncio.Event``); ``limiter`` an async context manager bounding requests in flight
    (``async_wait_all``'s semaphore), None elsewhere; ``span`` the wait's OpenTelemetry
    span while tracing is enabled (see ``_observe.py``), else None.
    """

    interval: Interval
    deadline: float | None
    limit: float
    cancel: Any
    limiter: Any = None
    span: Any = None


#: Single requests (``update_status``, ``send_start``): no interval, deadline or handle.
NO_WAIT = Wait(None, None, 0.0, None)
_new_tuple = tuple.__new__


class StartRequest(NamedTuple):
    """The start request of an operation that was prepared (or restored) but not sent."""

    method: str
    url: str
    json: Any
    headers: dict[str, str]
    kwargs: dict[str, Any]


class PollUpdate(msgspec.Struct, frozen=True):
    """One processed response, as ``poll_iter()`` yields it.

    Attributes:
        state: the operation's state after the response.
        raw_status: the status string exactly as the service sent it, or None (a transient
            fault, or an answer without a status such as a final resource).
        percent_complete: the progress the service reports (0-100), or None.
        next_delay: the delay before the next request and the rule that chose it; None
            once no further request is due.
        attempt: how many status responses the operation has processed.
        status: the whole parsed status, or None.
        response: the raw response.
    """

    state: OperationState
    raw_status: str | None
    percent_complete: float | None
    next_delay: PollingDelay | None
    attempt: int
    status: StatusUpdate | None = None
    response: Any = None

    @property
    def has_completed(self) -> bool:
        """Whether the operation is in a terminal state after this response."""
        return self.state.is_terminal


@functools.cache
def _importable_name(main: str) -> str:
    """The module name under which the program running as ``main`` would be imported, or
    ``main`` itself when it has no file (an interactive session, ``python -c``)."""
    module = sys.modules.get(main)
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.name not in _MAIN_MODULES:
        return str(spec.name)  # python -m pkg.tool (python -m pkg: pkg.__main__)
    path = getattr(module, "__file__", None)
    if not path:
        return main
    file = Path(path).resolve()
    parts = [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts))


class OperationBase(Generic[T]):
    """The I/O-free half of an operation; see ``Operation`` and ``AsyncOperation``."""

    #: The type the final JSON is decoded into (any type msgspec can convert to). None keeps
    #: the decoded JSON as it is.
    value_type: ClassVar[Any] = None
    #: Protocol options for every operation of this class (None: the Azure defaults).
    protocol_options: ClassVar[ProtocolOptions | None] = None
    #: How to ask the service to cancel an operation of this class: ``(method, URL
    #: template)``, such as ``("POST", "{monitor}:cancel")`` or ``("DELETE", "{monitor}")``.
    #: None (the default) means the service offers no cancellation; see :meth:`cancel_target`.
    cancel_request: ClassVar[tuple[str, str] | None] = None
    #: The name written into tokens (see :meth:`kind`); read from the class itself only, not
    #: inherited. Give an async twin its sync class's kind (``token_kind =
    #: CreateVectorStoreOperation.kind()``) so that tokens resume on either side.
    token_kind: ClassVar[str | None] = None
    #: Whether hooks may be coroutines (the async driver awaits them).
    _awaits_hooks: ClassVar[bool] = False
    #: The span of the request in flight, while tracing is enabled (an instance attribute
    #: only then: a class default costs an operation nothing).
    _span: Any = None

    def __init__(self, pipeline: PipelineSettings, core: OperationCore, response: Any) -> None:
        self._settings = pipeline
        self._core = core
        self._response = response
        self._hooks: Hooks | None = None
        self._value: Any = _UNSET
        self._failures = 0
        self._last_delay: PollingDelay | None = None
        # The polling_interval that _last_delay was planned for (_UNSET: re-plan it).
        self._planned_for: Any = _UNSET
        # Whether the last response's delay is still to be planned, for the interval in
        # _planned_for and the hint in _pending_hint (_last_delay is then the previous one).
        # Nobody sees a delay between a response and the next sleep unless hooks, logging or
        # tracing are on, and a wait with its own polling_interval would plan it again.
        self._pending = False
        self._pending_hint: float | None = None
        # Whether the start request carries an Operation-Id, which makes it safe to repeat.
        self._start_has_operation_id = False
        self._start_request: StartRequest | None = None
        # Why the start's outcome is unknown (it may have reached the service; see
        # start_outcome_unknown), or None; and whether a request (the async driver's start
        # or poll, the sync driver's start) is in flight: async_wait_all lets it finish.
        self._start_lost: str | None = None
        self._in_flight = False
        # The decision of the last processed response (what poll_iter yields from).
        self._decision: Decision | None = None
        # Awaitables returned by coroutine hooks, for the async driver to await (a list once
        # an async operation has hooks).
        self._awaitables: list[Awaitable[object]] | None = None
        # Shared waiting: steps taken by any waiter, and the error that ended the last
        # failed one (step number, error), re-raised to waiters that queued behind it.
        self._steps = 0
        self._failure: tuple[int, BaseException] | None = None

    # -- construction helpers ----------------------------------------------------------------

    @classmethod
    def kind(cls) -> str:
        """The name stored in tokens, so a token cannot be restored as another operation.

        The class's own ``token_kind`` when it sets one, else ``module.QualifiedName``, where
        the module of a class defined in a program run directly (``__main__``) is the name
        that program's file is imported under elsewhere (``python -m pkg.tool``:
        ``pkg.tool``; ``python tool.py``: ``tool``, within its package if its directory has
        an ``__init__.py``). So a token written by a script resumes in a process that
        imports the script's class.
        """
        own = cls.__dict__.get("token_kind")
        if isinstance(own, str):
            return own
        module = cls.__module__
        if module in _MAIN_MODULES:
            module = _importable_name(module)
        return f"{module}.{cls.__qualname__}"

    @classmethod
    def _new_core(
        cls,
        pipeline: PipelineSettings,
        method: str,
        url: str,
        options: ProtocolOptions | None,
        *,
        trusted: bool = False,
    ) -> OperationCore:
        # trusted: the pipeline built ``url`` from its trusted endpoint (see _endpoint_url).
        url = encode_unsafe(url)  # as every URL a service sends: tokens read it back alike
        return OperationCore(
            method,
            url if trusted else pipeline.origin_policy.check(url),
            options=options or cls.protocol_options,
            origin_policy=pipeline.origin_policy,
            kind=cls.kind(),
            token_policy=pipeline.tokens,
        )

    @classmethod
    def _restore_core(
        cls,
        pipeline: PipelineSettings,
        token: RehydrationToken,
        options: ProtocolOptions | None,
    ) -> OperationCore:
        # The caller has read the token with the pipeline's token policy (size, signature,
        # format); the core checks the values, the kind and every URL's origin. No I/O.
        return OperationCore._restore(
            token,
            options or cls.protocol_options,
            pipeline.origin_policy,
            cls.kind(),
            pipeline.tokens,
        )

    @classmethod
    def _monitor_core(
        cls,
        pipeline: PipelineSettings,
        url: str,
        *,
        method: str,
        start_url: str | None,
        location: str | None,
        options: ProtocolOptions | None,
    ) -> OperationCore:
        """A Running core that follows the status monitor ``url`` (``from_monitor``).

        It is fed the start response the service would have sent (202 with
        ``Operation-Location``, and ``Location`` when given), so that every rule (origin
        checks, api-version, final-state-via) is the one a real start response meets.
        """
        monitor = pipeline.url(url)
        initial = pipeline.url(start_url) if start_url is not None else monitor
        core = cls._new_core(pipeline, method, initial, options)
        headers = {"operation-location": monitor}
        if location is not None:
            headers["location"] = location
        core.receive(ResponseView(202, headers, b"", initial))
        return core

    def _start_operation_id(self) -> str | None:
        """The ``Operation-Id`` of the start request not sent yet, if it is usable in a token."""
        request = self._start_request
        if request is None:
            return None
        for name, value in request.headers.items():
            if name.lower() == _OPERATION_ID_LOWER:
                return value if _TOKEN_WORD.fullmatch(value) else None
        return None

    def _plan_start(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        headers: Mapping[str, str] | None,
        operation_headers: Mapping[str, str] | None,
        idempotent: bool,
        kwargs: dict[str, Any],
    ) -> None:
        """Keep the start request of a prepared operation (``idempotent``: add the id)."""
        merged = {**(operation_headers or {}), **(headers or {})}
        given = bool(merged) and any(name.lower() == _OPERATION_ID_LOWER for name in merged)
        if idempotent and not given:
            merged[OPERATION_ID_HEADER] = self._core.operation_id
        self._start_has_operation_id = idempotent or given
        # StartRequest's own constructor is a Python function: skip it.
        self._start_request = _new_tuple(StartRequest, (method, url, json, merged, kwargs))

    def _plan_restart(
        self,
        start_operation_id: str | None,
        json: Any,
        headers: Mapping[str, str] | None,
        operation_headers: Mapping[str, str] | None,
        kwargs: dict[str, Any],
    ) -> None:
        """Rebuild the start request of a restored ``NotStarted`` token (sent again later).

        Raises:
            ValueError: no ``json=`` was given, or ``headers`` carry an ``Operation-Id``
                other than the token's.
        """
        if json is NO_BODY and not kwargs:
            raise ValueError(
                "this token was taken before the start response arrived: pass the start"
                " request's body again with json= (None for no body)"
            )
        merged = {**(operation_headers or {}), **(headers or {})}
        if start_operation_id is not None:
            for name in [n for n in merged if n.lower() == _OPERATION_ID_LOWER]:
                if merged.pop(name) != start_operation_id:
                    raise ValueError("headers carry an Operation-Id other than the token's")
            merged[OPERATION_ID_HEADER] = start_operation_id
        self._start_has_operation_id = start_operation_id is not None
        body = None if json is NO_BODY else json
        core = self._core
        self._start_request = StartRequest(core.method, core.initial_url, body, merged, kwargs)

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
    def start_outcome_unknown(self) -> bool:
        """Whether the start request may have reached the service without its answer
        arriving (cancelled in flight, connection lost after sending, deadline).

        Such an operation stays ``NotStarted`` and is never sent again by lrokit unless
        its start is safe to repeat (PUT, DELETE, an ``Operation-Id``): every
        request-making call raises :class:`~lrokit.StartOutcomeUnknownError`. A safe start
        never enters this condition; it is sent again by the next wait.
        """
        return self._start_lost is not None

    @property
    def status(self) -> StatusUpdate | None:
        """The last parsed status report, or None before the first one."""
        return self._core.status

    @property
    def final_document(self) -> Any:
        """The whole decoded JSON of the answer that completed the operation, or None.

        :meth:`decode_value` gets the value's part of it (for example a monitor's
        ``result`` member); an override may read the rest here. None before completion,
        after rehydration until the result was read again, and for a body-less answer.
        """
        return self._core.final_document

    @property
    def operation_id(self) -> str:
        """lrokit's id of the operation: a UUID made on first use unless the core was given
        one (it is the ``Operation-Id`` header that ``idempotent=True`` adds to the start
        request). It travels in the token, and logs and spans name the operation by it. The
        service's own id, where it has one, is in :attr:`polling_url` or the status
        document."""
        return self._core.operation_id

    @property
    def polling_url(self) -> str | None:
        """The absolute URL the operation's status is read from: the service's
        ``Operation-Location``, ``Azure-AsyncOperation`` or ``Location`` header (resolved
        against the request), or the resource's own URL for ``provisioningState`` polling.
        None until a start response named one, and for an operation that completed in its
        start response; kept once the operation completed."""
        return self._core.polling_url

    @property
    def core(self) -> OperationCore:
        """The sans-I/O core (for inspection and advanced driving)."""
        return self._core

    @property
    def last_delay(self) -> PollingDelay | None:
        """The delay chosen after the last response (or fault) and the rule that chose it.

        None before the first response and once no further request is due.
        """
        if self._pending:
            self._pending = False
            return self._plan(self._planned_for, self._pending_hint)
        return self._last_delay

    @property
    def consecutive_failures(self) -> int:
        """Transient faults in a row on the current request (0 after any usable answer)."""
        return self._failures

    @property
    def rehydration_token(self) -> RehydrationToken:
        """A token from which :meth:`rehydrate` can resume this operation elsewhere.

        Available from the moment the operation exists; persist it as soon as the start
        response arrived (an ``on_change`` hook runs then) to resume after a crash. Before
        that, a token restores only when repeating the start is safe (PUT, DELETE or an
        ``Operation-Id``). Signed when the pipeline's token policy has a signer.
        """
        core = self._core
        if core.next_action is None:
            return core.token(start_operation_id=self._start_operation_id())
        return core.token()

    def _token_text(self) -> str | None:
        """The token's text for an error, or None when no token can be written (a URL
        longer than tokens hold: see :meth:`OperationCore.token`)."""
        try:
            return str(self.rehydration_token)
        except InvalidTokenError:
            return None

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
        if state is _SUCCEEDED and core.has_payload:
            self._value = self._decode(core.payload)
            return self._value  # type: ignore[no-any-return]
        if state is OperationState.FAILED:
            raise self._outcome_error(OperationFailedError, "failed")
        if state is OperationState.CANCELED:
            raise self._outcome_error(OperationCanceledError, "was canceled")
        if state is OperationState.SUCCEEDED and core.next_request_url is None:
            raise OperationNotCompleteError(
                "the operation succeeded but no result is available and there is nothing to"
                " request it from: it was moved to Succeeded by hand (fire() carries no"
                " result; use apply_status() with a payload), or it was restored from a token"
                " and its result came with the start response (tokens never carry bodies)"
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
                rehydration_token=self._token_text(),
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
            rehydration_token=self._token_text(),
        )

    # -- waiting (no I/O) ---------------------------------------------------------------------

    def _new_wait(
        self,
        polling_interval: float | timedelta | DelayStrategy | None,
        timeout: float | timedelta | None,
        cancel: Any,
        limiter: Any = None,
    ) -> Wait:
        """The settings of one wait; its deadline is counted from now on the pipeline clock."""
        interval: Interval = polling_interval
        if isinstance(polling_interval, (int, float, timedelta)):
            interval = as_seconds(polling_interval)
        if timeout is None:  # Wait's own constructor is a Python function: skip it
            return _new_tuple(Wait, (interval, None, 0.0, cancel, limiter, None))
        limit = as_seconds(timeout)
        return Wait(interval, self._settings.clock() + limit, limit, cancel, limiter)

    def _wait_step(self, interval: Interval, deadline: float | None, now: float) -> WaitStep:
        """How long to sleep before the next request, and whether the deadline comes first.

        The final GET is not delayed (unless it is being retried); when the next delay would
        reach the deadline, the loop sleeps only until the deadline and then times out, so a
        wait never ends later than its deadline and never polls at it.
        """
        return bounded_step(self._delay_seconds(interval), deadline, now)

    def _delay_seconds(self, interval: Interval) -> float:
        """The seconds to sleep before the next request (see :meth:`_wait_step`)."""
        if self._core.next_action is _FETCH_FINAL and self._failures == 0:
            return 0.0
        if self._pending and self._pending_hint is None and type(interval) is float:
            last = self._last_delay
            if last is not None and last.source is _STRATEGY and last.seconds == interval:
                # _plan's shortcut (the same fixed delay again), without the calls: most
                # polls of a busy waiter.
                self._planned_for, self._pending = interval, False
                return interval
        return self._next_delay(interval).seconds

    def _next_delay(self, interval: Interval) -> PollingDelay:
        """The delay before the next request; planned once per response, so that the delay
        a poll hook was shown is the one slept (jittered strategies draw only once)."""
        if self._pending:  # the last response's delay, planned now for this wait's interval
            self._pending = False
            return self._plan(interval, self._pending_hint)
        if self._last_delay is not None and (self._failures or self._planned_for == interval):
            return self._last_delay  # backing off after a fault, or already planned
        status = self._core.status
        return self._plan(interval, status.retry_after if status is not None else None)

    def _plan(self, interval: Interval, hint: float | None) -> PollingDelay:
        last = self._last_delay
        if (
            hint is None
            and type(interval) is float
            and last is not None
            and last.source is _STRATEGY
            and last.seconds == interval
        ):
            # A fixed interval without a server hint, within floor and cap last time too:
            # the same delay again (this is most polls of a busy waiter).
            self._planned_for, self._pending = interval, False
            return last
        delay = self._settings.polling.delay(interval, hint, attempt=self._core.attempt + 1)
        self._last_delay, self._planned_for, self._pending = delay, interval, False
        return delay

    def _back_off(self, hint: float | None) -> PollingDelay:
        delay = self._settings.polling.retry_delay(self._failures, hint)
        self._last_delay, self._planned_for, self._pending = delay, _UNSET, False
        return delay

    def _timeout_error(self, timeout: float) -> WaitTimeoutError:
        state = self._core.state
        return WaitTimeoutError(
            f"the operation did not complete within {timeout} s (state {state.value})",
            state=state,
            rehydration_token=self._token_text(),
            status=self._core.status,
        )

    def _cancelled_error(self) -> WaitCancelledError:
        return WaitCancelledError(
            f"the wait was cancelled (state {self._core.state.value}); the operation can be "
            "waited on again or resumed from its token",
            state=self._core.state,
            rehydration_token=self._token_text(),
            status=self._core.status,
        )

    # -- transient faults (no I/O) -------------------------------------------------------

    def _count_fault(self, status_code: int, response: Any, cause: str) -> None:
        """Count one transient fault; raise once there were more than ``max_retries``."""
        self._failures += 1
        limit = self._settings.polling.max_retries
        if self._failures > limit:
            failures, self._failures = self._failures, 0
            self._last_delay, self._planned_for, self._pending = None, _UNSET, False
            raise RetriesExhaustedError(
                f"{failures} transient faults in a row (the policy tolerates {limit}); last:"
                f" {cause}",
                status_code=status_code,
                failures=failures,
                response=response,
                rehydration_token=self._token_text(),
            )

    def _transport_failed(self, error: Exception) -> PollTransportError:
        """Count a poll that got no answer (connection error, timeout).

        Returns the error that ``update_status`` raises (``wait_for_completion`` just backs
        off); raises :class:`RetriesExhaustedError` once the retry budget is spent.
        """
        said = self._settings.tokens.redact_text(f"{type(error).__name__}: {error}")
        try:
            self._count_fault(0, None, f"no answer ({said})")
        except RetriesExhaustedError as exhausted:
            raise exhausted from error
        self._back_off(None)
        self._decision = None  # no answer: poll_iter reports a fault without a status
        limit = self._settings.polling.max_retries
        failure = PollTransportError(
            f"the request got no answer ({said}); transient fault"
            f" {self._failures} of at most {limit} in a row, the state is unchanged",
            failures=self._failures,
            retries_left=limit - self._failures,
            rehydration_token=self._token_text(),
        )
        failure.__cause__ = error
        return failure

    def _is_garbled(self, view: ResponseView, error: ProtocolError) -> bool:
        """Whether an answer the core refused is a transport accident worth retrying: a 2xx
        poll or final-resource answer whose body is not JSON (truncated, an HTML page)."""
        return (
            isinstance(error, MalformedBodyError)
            and self._core.next_action in _POLLING_ACTIONS
            and 200 <= view.status_code < 300
        )

    def _request_name(self) -> str:
        """Which request the core waits the answer of (a :class:`ResponseEvent`'s
        ``request``)."""
        action = self._core.next_action
        if action is None:
            return "start"
        return "final" if action is _FETCH_FINAL else "poll"

    def _heard(self, view: ResponseView, request: str, apply: Callable[[], R]) -> R:
        """Tell the response hooks about ``view``, then ``apply`` it; returns what ``apply``
        returns.

        A response hook's error is raised (in one :class:`HookError`, with those of the
        hooks ``apply`` notified) only once the answer has been applied, so a raising hook
        never makes the operation lose an answer. When applying it raised, that error wins
        and the hooks' :class:`HookError` is its ``__context__``.
        """
        hooks = self._hooks
        if hooks is None or not hooks.hears_responses:
            return apply()
        event = ResponseEvent(self, request, view.status_code, view.url, view.raw)
        errors = hooks.notify_response(event, self._awaitables)
        if not errors:
            return apply()
        try:
            apply()
        except HookError as later:
            raise HookError([*errors, *later.errors]) from errors[0]
        except BaseException as error:
            error.__context__ = HookError(errors)
            raise
        raise HookError(errors) from errors[0]

    def _receive_polled(self, view: ResponseView, interval: Interval, *, waiting: bool) -> Decision:
        """Apply the answer to a request the operation made itself (start, poll, final GET),
        once the response hooks have heard it.

        A 2xx poll answer whose body is not JSON (truncated, an HTML error page) counts as a
        transient fault, like a 503, and the state does not change. While ``waiting`` it is
        then retried after a back-off like any other; otherwise (``update_status``) the
        :class:`ProtocolError` is raised after counting it.
        """
        if self._hooks is not None:
            request = self._request_name()
            return self._heard(view, request, lambda: self._apply(view, interval, waiting))
        return self._apply(view, interval, waiting)

    def _receive_given(self, view: ResponseView) -> Decision:
        """Apply a response fed by hand (the drivers' ``receive``), once the response hooks
        have heard it."""

        def apply() -> Decision:
            decision = self._core.receive(view)
            if self._core.next_action is not None:
                self._start_request = None  # the start response was fed by hand: not sent
            self._after(decision, view.raw, None, view.status_code)
            return decision

        if self._hooks is None:
            return apply()
        return self._heard(view, self._request_name(), apply)

    def _apply(self, view: ResponseView, interval: Interval, waiting: bool) -> Decision:
        """:meth:`_receive_polled` once the response hooks have heard the answer."""
        try:
            decision = self._core.receive(view)
        except ProtocolError as error:
            if not self._is_garbled(view, error):
                raise
            try:
                self._count_fault(view.status_code, view.raw, "an unreadable body")
            except RetriesExhaustedError as exhausted:
                raise exhausted from error
            hint = parse_retry_after(view.headers)
            self._back_off(hint)
            if not waiting:
                raise
            state = self._core.state
            decision = Decision(Action.RETRY, self._core.next_request_url, hint, state, state)
            self._notify(decision, view.raw)
            return decision
        if self._start_request is not None and self._core.next_action is not None:
            self._start_request = None  # the start was answered and taken: nothing to resend
        if (
            decision.action is _POLL
            and self._hooks is None
            and _observe.tracer is None
            and not _LOG.isEnabledFor(_DEBUG)
        ):
            # _after's first case, without the call: most answers of a wait.
            self._failures = 0
            self._planned_for, self._pending_hint = interval, decision.retry_after
            self._pending = True
            self._decision = decision
            return decision
        self._after(decision, view.raw, interval, view.status_code)
        return decision

    def _start_is_safe(self, method: str) -> bool:
        """Whether a start request may be sent again after a fault: PUT and DELETE are
        idempotent, and an ``Operation-Id`` header makes a POST so on services honouring it."""
        return method.upper() in IDEMPOTENT_METHODS or self._start_has_operation_id

    def _start_answer_fault(self, view: ResponseView) -> float | None:
        """Decide about the answer to a start request before the core sees it: the seconds
        to wait before sending the start again (see :func:`~lrokit._core.start_is_retried`
        and the policy's ``retry_start_on``), or None to apply the answer (after the retry
        budget, the last transient answer becomes a ``StartRejectedError``).

        A retried answer is heard by the response hooks here; one that is applied is heard
        when it is applied.

        Raises:
            HookError: a response hook raised on a retried answer; the start is not sent
                again (the operation stays ``NotStarted`` and the start may be sent later).
        """
        request = self._start_request
        assert request is not None
        code = view.status_code
        idempotent = self._start_is_safe(request.method)
        if not start_is_retried(
            code, idempotent=idempotent, retry_on=self._settings.polling.retry_start_on
        ):
            return None
        try:
            self._count_fault(code, view.raw, f"start request, HTTP {code}")
        except RetriesExhaustedError:
            return None
        hint = parse_retry_after(view.headers)
        return self._heard(view, "start", lambda: self._back_off(hint).seconds)

    def _start_maybe_sent(self, reason: str) -> StartOutcomeUnknownError | None:
        """Record that the start request may have reached the service but its answer is
        lost (``reason``: what happened). A start that is safe to repeat stays planned
        (None is returned: it is sent again); any other is never sent again, and the
        error that says so is returned (see :attr:`start_outcome_unknown`)."""
        request = self._start_request
        if request is None or self._core.next_action is not None:
            return None  # the answer was applied after all
        if self._start_is_safe(request.method):
            return None
        self._start_lost = reason
        return self._start_unknown_error()

    def _start_unknown_error(self) -> StartOutcomeUnknownError:
        """The error of an operation whose start's outcome is unknown (a new one each time)."""
        request = self._start_request
        core = self._core
        method = request.method if request is not None else core.method
        url = self._settings.tokens.redact_text(core.initial_url)
        error = StartOutcomeUnknownError(
            f"the {method} start request of operation {core.operation_id} may have reached"
            f" the service, but its answer was lost ({self._start_lost}); lrokit does not"
            " send it again, since a second one could start a second operation. Find out"
            " at the service whether it exists, then follow it (from_monitor) or prepare a"
            " new operation",
            method=method,
            url=url,
            reason=self._start_lost or "unknown",
        )
        error._belongs_to(self, core.operation_id)
        return error

    def _own(self, error: BaseException) -> None:
        """Name this operation on an error one of its calls raises (and its token, when the
        error carries none and the operation has one that restores)."""
        if isinstance(error, LroError):
            error._belongs_to(self, self._core.operation_id)
            if (
                isinstance(error, OperationError)
                and error.rehydration_token is None
                and self._core.next_action is not None
                and not isinstance(error, StartRejectedError)
            ):
                error.rehydration_token = self._token_text()

    def _body_cap(self) -> BodyCap:
        """The cap on the answer to the next request: the status cap for a status monitor's
        poll, else the value cap (start answers, Location and resource polls and the final
        GET may carry the value)."""
        core = self._core
        action = core.next_action
        status = (
            action is not None
            and action is not _FETCH_FINAL
            and core.protocol is PollingProtocol.STATUS_MONITOR
        )
        return self._settings.body_cap(status=status)

    def _start_fault(self, method: str, status_code: int, hint: float | None) -> float | None:
        """Decide about a start request that hit a transient fault (``status_code`` 0: no
        answer): the seconds to wait before sending it again, or None to give up."""
        if not self._start_is_safe(method):
            return None
        try:
            self._count_fault(status_code, None, f"start request, HTTP {status_code}")
        except RetriesExhaustedError:
            return None
        return self._back_off(hint).seconds

    # -- service-side cancellation (no I/O) ------------------------------------------------

    def cancel_target(self) -> tuple[str, str]:
        """The method and absolute URL of the request that asks the service to cancel.

        The default reads the class attribute :attr:`cancel_request`, a ``(method,
        template)`` pair. The template may use ``{monitor}`` (the status monitor URL),
        ``{initial}`` (the start request's URL), both without their query, and
        ``{operation_id}``; the query of the URL used (or, for a relative template, the
        endpoint) is kept, and the operation's ``api-version`` is carried over. Override
        this method for services with other rules.

        Raises:
            CancelNotSupportedError: no cancel request is configured, or the template needs
                a monitor URL this operation does not have.
            UntrustedOriginError: the URL is outside the trusted origins.
        """
        request = type(self).cancel_request
        if request is None:
            raise CancelNotSupportedError(
                f"{type(self).__name__} has no cancel request: the service may not support"
                " cancellation; set cancel_request (e.g. ('POST', '{monitor}:cancel')) or"
                " override cancel_target() or cancel(). To stop waiting instead, pass"
                " cancel=threading.Event() to wait_for_completion()"
            )
        method, template = request
        core = self._core
        if "{monitor}" in template and core.polling_url is None:
            raise CancelNotSupportedError(
                "the cancel request needs the status monitor URL, which this operation has not"
                f" got (protocol {core.protocol.value})"
            )
        monitor_path, _, monitor_query = (core.polling_url or "").partition("?")
        initial_path, _, initial_query = core.initial_url.partition("?")
        try:
            url = template.format(
                monitor=monitor_path, initial=initial_path, operation_id=core.operation_id
            )
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"bad cancel_request template {template!r}: {error}") from None
        query = monitor_query if "{monitor}" in template else ""
        if "{initial}" in template:
            query = initial_query
        if query and "?" not in url:
            url = f"{url}?{query}"
        url = with_api_version(self._settings.url(url), core.api_version)
        return method.upper(), self._settings.origin_policy.check(url)

    def _check_cancellable(self) -> None:
        state = self._core.state
        if state.is_terminal:
            raise InvalidTransitionError(state, Trigger.CANCEL)
        if self._core.next_action is None:
            raise LroError(
                "the operation has not been started, so there is nothing to cancel at the"
                " service; fire('cancel') abandons it locally"
            )

    def _cancel_answered(self, view: ResponseView) -> Decision | None:
        """Apply the answer to a cancel request.

        The state becomes Canceled only when the answer itself reports ``Canceled`` (read
        with the operation's status path and vocabulary); any other 2xx answer changes
        nothing, and a later poll reports the outcome. Returns the decision, or None.

        Raises:
            CancelRejectedError: the service answered with an HTTP error; state unchanged.
        """
        return self._heard(view, "cancel", lambda: self._apply_cancel_answer(view))

    def _apply_cancel_answer(self, view: ResponseView) -> Decision | None:
        code = view.status_code
        document, raw_status = self._core.cancel_report(view)
        if not 200 <= code < 300:
            raise CancelRejectedError(
                f"the service rejected the cancel request with HTTP {code}",
                status_code=code,
                response=view.raw,
                service_error=parse_service_error(document),
                rehydration_token=self._token_text(),
            )
        vocabulary = self._core.options.vocabulary
        if raw_status is None or vocabulary(raw_status) is not OperationState.CANCELED:
            return None
        update = StatusUpdate(
            OperationState.CANCELED, raw_status, error=parse_service_error(document)
        )
        decision = self._core.apply_status(update)
        self._after(decision, view.raw, None)
        return decision

    # -- processing one response ---------------------------------------------------------

    def _after(
        self, decision: Decision, raw: Any, interval: Interval, status_code: int = 0
    ) -> None:
        action = decision.action
        if action is _POLL:
            self._failures = 0
            if self._hooks is None and _observe.tracer is None and not _LOG.isEnabledFor(_DEBUG):
                # Nobody is shown this delay now: plan it when it is needed (see _pending),
                # and there is nothing else to notify.
                self._planned_for, self._pending_hint = interval, decision.retry_after
                self._pending = True
                self._decision = decision
                return
            self._plan(interval, decision.retry_after)
        elif action is _RETRY:
            what = "an unreadable body" if 200 <= status_code < 300 else f"HTTP {status_code}"
            self._count_fault(status_code, raw, what)
            self._back_off(decision.retry_after)
        else:
            self._failures = 0
            self._last_delay, self._planned_for, self._pending = None, _UNSET, False
        self._notify(decision, raw)

    def _notify(self, decision: Decision, raw: Any) -> None:
        self._decision = decision
        if _observe.tracer is not None or _LOG.isEnabledFor(_DEBUG):
            self._observe(decision, raw)
        if self._hooks is not None and len(self._hooks):
            change = (
                StateChange(self, decision.previous, decision.state) if decision.changed else None
            )
            poll = PollEvent(
                self, decision.state, decision.status, self._core.attempt, self.last_delay, raw
            )
            self._hooks.notify(poll, change, self._awaitables)

    def _observe(self, decision: Decision, raw: Any) -> None:
        """Log a processed response at DEBUG and record it on its request's span."""
        core = self._core
        delay = self.last_delay if decision.action in _DELAYED else None
        http_status = getattr(raw, "status_code", None)
        if _LOG.isEnabledFor(_DEBUG):
            kind = core.kind or type(self).kind()
            _observe.log_response(
                core.operation_id,
                kind,
                core.attempt,
                decision,
                delay=delay,
                http_status=http_status,
            )
        span = self._span
        if span is not None:
            _observe.span_response(
                span, core.attempt, decision, delay=delay, http_status=http_status
            )

    def _poll_update(self) -> PollUpdate:
        """What ``poll_iter`` yields for the last processed response."""
        decision = self._decision
        if decision is None:  # the last request got no answer (or none was made yet)
            core = self._core
            return PollUpdate(core.state, None, None, self.last_delay, core.attempt)
        status = decision.status
        if status is None:
            raw_status = percent = None
        else:
            raw_status, percent = status.raw_status, status.percent_complete
        return PollUpdate(
            decision.state,
            raw_status,
            percent,
            self.last_delay,
            self._core.attempt,
            status,
            self._response,
        )

    # -- shared waiting (no I/O) ---------------------------------------------------------

    def _shared_failure(self, mark: int) -> BaseException | None:
        """The error that ended a step taken after step ``mark`` by another waiter, if any:
        a waiter that queued behind it raises it too, rather than repeating the requests
        that a single waiter would not have made."""
        failure = self._failure
        if failure is not None and failure[0] > mark:
            return failure[1]
        return None

    def _step_failed(self, error: BaseException) -> None:
        """Count a step that raised, and remember its error for the waiters queued behind
        it (drivers count a step that did not raise with ``_steps += 1``). A waiter's own
        deadline or cancellation stays its own."""
        self._steps += 1
        self._own(error)
        if isinstance(error, Exception) and not isinstance(error, _PERSONAL):
            self._failure = (self._steps, error)

    # -- tracing (only while _observe.tracer is set) --------------------------------------

    def _traced_wait(self, wait: Wait) -> Wait:
        """``wait`` with a span of its own (drivers end it with :meth:`_wait_ended`)."""
        core = self._core
        timeout = wait.limit if wait.deadline is not None else None
        kind = core.kind or type(self).kind()
        span = _observe.wait_span(core.operation_id, kind, core.state.value, timeout)
        return wait._replace(span=span)

    def _wait_ended(self, wait: Wait, error: BaseException | None) -> None:
        """End the span of a wait that returned (``error`` None) or raised ``error``."""
        _observe.end_wait_span(
            wait.span,
            self._core.state.value,
            self._core.attempt,
            error,
            self._settings.tokens.redact_text,
        )

    def _request_span(self, name: str, wait: Wait) -> Any:
        core = self._core
        method = core.method if name == "lrokit.start" else "GET"
        kind = core.kind or type(self).kind()
        span = self._span = _observe.request_span(name, core.operation_id, kind, method, wait.span)
        return span

    def _traced(self, request: Callable[[Wait], R], name: str, wait: Wait) -> R:
        """Run a driver's request-making ``request`` (``_poll_once``, ``_send_start``, which
        call this when tracing is on and no span is open) inside a span of its own."""
        span = self._request_span(name, wait)
        try:
            with _observe.use_span(span):
                outcome = request(wait)
        except BaseException as error:
            _observe.end_request_span(span, error, self._settings.tokens.redact_text)
            raise
        finally:
            self._span = None
        # A poll without an answer returns its PollTransportError instead of raising it.
        failure = outcome if isinstance(outcome, Exception) else None
        _observe.end_request_span(span, failure, self._settings.tokens.redact_text)
        return outcome

    async def _atraced(self, request: Callable[[Wait], Awaitable[R]], name: str, wait: Wait) -> R:
        """:meth:`_traced` for the async driver."""
        span = self._request_span(name, wait)
        try:
            with _observe.use_span(span):
                outcome = await request(wait)
        except BaseException as error:
            _observe.end_request_span(span, error, self._settings.tokens.redact_text)
            raise
        finally:
            self._span = None
        failure = outcome if isinstance(outcome, Exception) else None
        _observe.end_request_span(span, failure, self._settings.tokens.redact_text)
        return outcome

    # -- manual driving ------------------------------------------------------------------

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
            change = StateChange(self, previous, self._core.state)
            self._hooks.notify(None, change, self._awaitables)
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
            self._hooks = Hooks(accepts_coroutines=self._awaits_hooks)
            if self._awaits_hooks:
                self._awaitables = []
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

    def on_response(self, callback: Callable[[ResponseEvent[Self]], object]) -> Subscription:
        """Call ``callback`` with a :class:`ResponseEvent` for every response the operation
        receives, in order, before lrokit acts on it: retried start answers, rejected and
        unusable polls, the final GET and cancel answers too."""
        return self._subscribe(HookKind.RESPONSE, callback, None)

    def __repr__(self) -> str:
        url = self._settings.tokens.redact_text(self._core.initial_url)
        return f"<{type(self).__name__} state={self._core.state.value} {url}>"


class _Unset:
    __slots__ = ()


#: Errors that end one waiter's wait only (its own deadline or stop handle).
_PERSONAL = (WaitTimeoutError, WaitCancelledError)


_UNSET: Any = _Unset()
