"""The activities of a tracking workflow: one poll, or one service-side cancel request.

Each activity rehydrates the operation from its token with the client the worker's
:class:`~lrokit.temporal.Registry` built, makes exactly one request (``update_status()`` or
``cancel()``) and returns the new token, the state and the delay before the next poll. The
protocol decisions are lrokit's own (the core and the shared waiting rules); this module
only maps their outcome onto Temporal:

* a transient fault (HTTP 408/429/5xx, no answer, an unreadable body) raises a retryable
  ``ApplicationError`` whose ``next_retry_delay`` is lrokit's back-off, never shorter than
  the server's Retry-After, so Temporal repeats the poll when the server asked;
* everything that ends tracking (the operation's outcome, a rejected poll, a protocol error,
  a refused token, a URL outside the trusted origins, an unknown kind) is a returned
  outcome carrying a :class:`FailureInfo`, which the workflow turns into a typed,
  non-retryable failure;
* a cancel request is sent once: a refusal or no answer at all is a remark (``note``) for
  the query, and tracking goes on.

Every text that reaches Temporal's history (messages, errors' texts) passes through the
client's token policy (``TokenPolicy.redact_text``), so no secret query value (a SAS
signature, say) of a URL in it is stored there.

Sync operation classes run in the worker's thread pool, async ones on its event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

import msgspec
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._base import OperationBase
from .._exceptions import (
    BodyTooLargeError,
    CancelNotSupportedError,
    CancelRejectedError,
    InvalidTokenError,
    InvalidTransitionError,
    LroError,
    OperationError,
    PollRejectedError,
    PollTransportError,
    ProtocolError,
    RetriesExhaustedError,
    UntrustedOriginError,
)
from .._state import OperationState
from .._token import DEFAULT_TOKEN_POLICY, TokenPolicy
from ._registry import PollRecord, Registry, UnknownKindError
from ._types import (
    CANCEL_ACTIVITY,
    POLL_ACTIVITY,
    FailureInfo,
    FailureType,
    PollOutcome,
    PollRequest,
)

__all__ = ["TRANSIENT_FAULT", "PollActivities"]

#: The ``type`` of the retryable error a poll raises after a transient fault.
TRANSIENT_FAULT = "TransientFault"


class PollActivities:
    """The poll and cancel activities of a worker, bound to its registry.

    Args:
        registry: the operation classes and client factories.
        executor: runs the requests of sync operation classes (a thread pool); None uses
            the event loop's default executor.
    """

    def __init__(self, registry: Registry, executor: Executor | None = None) -> None:
        self.registry = registry
        self.executor = executor

    @property
    def all(self) -> list[Callable[..., Any]]:
        """Both activities, for ``Worker(activities=...)``."""
        return [self.poll, self.cancel]

    @activity.defn(name=POLL_ACTIVITY)
    async def poll(self, request: PollRequest) -> PollOutcome:
        """Make one poll of the operation ``request.token`` describes."""
        return await self._run(request, cancel=False)

    @activity.defn(name=CANCEL_ACTIVITY)
    async def cancel(self, request: PollRequest) -> PollOutcome:
        """Ask the service once to cancel the operation ``request.token`` describes."""
        return await self._run(request, cancel=True)

    async def _run(self, request: PollRequest, *, cancel: bool) -> PollOutcome:
        started = time.time()
        try:
            operation_type, client = self.registry.resolve(request.kind)
        except UnknownKindError as error:
            return _failed(DEFAULT_TOKEN_POLICY, request, FailureType.UNKNOWN_KIND, error)
        try:
            operation = operation_type.rehydrate(client, request.token)
        except (InvalidTokenError, UntrustedOriginError) as error:
            tokens = client.pipeline.tokens
            return _failed(tokens, request, FailureType.INVALID_TOKEN, error)
        tokens = operation._settings.tokens
        note = None
        try:
            if cancel:
                note = await self._cancel(operation)
            else:
                await self._call(operation.update_status)
        except (PollTransportError, RetriesExhaustedError) as error:
            # No ``from error``: Temporal stores a cause's text as it is, unredacted.
            raise _transient(operation, None, error) from None
        except PollRejectedError as error:
            return _failed(
                tokens,
                request,
                FailureType.POLL_REJECTED,
                error,
                status_code=error.status_code,
                state=operation.state,
            )
        except ProtocolError as error:
            if operation.consecutive_failures:  # an unreadable 2xx body: transient
                raise _transient(operation, None, error) from None
            return _failed(tokens, request, FailureType.PROTOCOL, error)
        except UntrustedOriginError as error:  # a URL the service named is foreign
            return _failed(tokens, request, FailureType.UNTRUSTED_ORIGIN, error)
        if operation.consecutive_failures:  # HTTP 408/429/5xx: the state is unchanged
            raise _transient(operation, _status_code(operation), None)
        outcome = _outcome(operation, request.polling_interval)
        outcome.note = note
        if self.registry.on_poll is not None:
            info = activity.info()
            record = PollRecord(
                request.kind, outcome.state, request.due_at, started, time.time(), info.attempt
            )
            self.registry.on_poll(record)
        return outcome

    async def _call(self, method: Callable[[], Any]) -> Any:
        """Run a request-making method: awaited when async, in the executor when sync."""
        if inspect.iscoroutinefunction(method):
            return await method()
        return await asyncio.get_running_loop().run_in_executor(self.executor, method)

    async def _cancel(self, operation: OperationBase[Any]) -> str | None:
        """Send the cancel request, once; a refusal or no answer is a remark for the query,
        not a failure and not retried (the next poll shows how the operation ended)."""
        redact = operation._settings.tokens.redact_text
        try:
            await self._call(operation.cancel)  # type: ignore[attr-defined]
        except _CANCEL_REFUSED as error:
            return redact(f"the cancel request was not accepted: {error}")
        except LroError:
            raise
        except Exception as error:  # noqa: BLE001 - the sender's transport errors (no answer)
            return redact(
                "the cancel request got no answer (it may or may not have reached the"
                f" service; not sent again): {type(error).__name__}: {error}"
            )
        return None


#: Why a cancel request may come to nothing: no cancel request configured, refused by the
#: service (HTTP 409 once done), the operation already completed, a foreign cancel URL.
_CANCEL_REFUSED = (
    CancelNotSupportedError,
    CancelRejectedError,
    InvalidTransitionError,
    UntrustedOriginError,
)


def _outcome(operation: OperationBase[Any], interval: float | None) -> PollOutcome:
    """The outcome of a poll that got a usable answer."""
    core = operation.core
    token = str(operation.rehydration_token)
    status = core.status
    raw_status = status.raw_status if status is not None else None
    percent = status.percent_complete if status is not None else None
    state = core.state
    if core.next_request_url is not None:  # still polling (or the final GET is due)
        seconds = operation._delay_seconds(interval)
        delay = operation.last_delay
        source = delay.source.value if delay is not None else None
        return PollOutcome(token, state.value, raw_status, percent, seconds, source)
    if state is OperationState.SUCCEEDED:
        try:
            operation.value  # noqa: B018 - decoded once to check it against value_type
        except ProtocolError as error:
            tokens = operation._settings.tokens
            info = _info(tokens, FailureType.PROTOCOL, str(error), token, state, error=error)
            return PollOutcome(token, state.value, raw_status, percent, failure=info)
        return PollOutcome(token, state.value, raw_status, percent, value=core.payload)
    kind = FailureType.OPERATION_FAILED
    if state is OperationState.CANCELED:
        kind = FailureType.OPERATION_CANCELED
    service_error = core.error
    detail = f": {service_error}" if service_error is not None else ""
    verb = "failed" if state is OperationState.FAILED else "was canceled"
    info = _info(operation._settings.tokens, kind, f"the operation {verb}{detail}", token, state)
    if service_error is not None:
        info.service_error = msgspec.to_builtins(service_error)
    return PollOutcome(token, state.value, raw_status, percent, failure=info)


def _info(
    tokens: TokenPolicy,
    kind: FailureType,
    message: str,
    token: str | None,
    state: OperationState | None,
    *,
    status_code: int = 0,
    error: OperationError | None = None,
) -> FailureInfo:
    """The details of a typed failure; ``message`` is redacted with ``tokens``, since it
    is stored in the workflow's history."""
    message = tokens.redact_text(message)
    info = FailureInfo(kind.value, message, token, None if state is None else state.value)
    info.status_code = status_code
    if error is not None and error.service_error is not None:
        info.service_error = msgspec.to_builtins(error.service_error)
    if isinstance(error, ProtocolError) and type(error) is not ProtocolError:
        info.error_class = type(error).__name__
        if isinstance(error, BodyTooLargeError):
            info.limit, info.setting = error.limit, error.setting
    return info


def _failed(
    tokens: TokenPolicy,
    request: PollRequest,
    kind: FailureType,
    error: Exception,
    *,
    status_code: int = 0,
    state: OperationState | None = None,
) -> PollOutcome:
    """An outcome that ends tracking for ``error``; the token stays the one the poll
    started from."""
    service = error if isinstance(error, OperationError) else None
    message = str(error)
    info = _info(
        tokens, kind, message, request.token, state, status_code=status_code, error=service
    )
    return PollOutcome(request.token, (state or OperationState.RUNNING).value, failure=info)


def _status_code(operation: OperationBase[Any]) -> int:
    return int(getattr(operation.get_raw_response(), "status_code", 0) or 0)  # type: ignore[attr-defined]


def _transient(
    operation: OperationBase[Any], status_code: int | None, error: BaseException | None
) -> ApplicationError:
    """The retryable error for a transient fault, to be retried after lrokit's back-off for
    this attempt (never shorter than the server's hint, which ``last_delay`` holds)."""
    attempt = activity.info().attempt
    policy = operation._settings.polling
    seconds = policy.retry_delay(attempt).seconds
    last = operation.last_delay
    if last is not None:
        seconds = max(seconds, last.seconds)
    code = status_code if status_code is not None else _status_code(operation)
    what = f"HTTP {code}" if code else f"{type(error).__name__}: {error}"
    message = f"transient fault on attempt {attempt} ({what}); retried in {seconds:g} s"
    return ApplicationError(
        operation._settings.tokens.redact_text(message),
        {"status_code": code},
        type=TRANSIENT_FAULT,
        next_retry_delay=timedelta(seconds=seconds),
    )
