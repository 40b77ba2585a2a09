"""Starting to track an operation, and the handle that reads its outcome.

:func:`track` starts (or finds) the tracking workflow of an operation: its workflow id is
derived from the operation's identity (its kind and its status monitor URL, or the id its
tokens carry when it is followed on a Location URL that may move), so tracking the same
operation twice attaches to the one workflow. :class:`TrackHandle` reads the result
(decoded with the operation class's ``value_type``, or lrokit's typed error), queries
the state and sends the stop and cancel signals.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Generic, TypeVar

import msgspec
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from .._base import OperationBase
from .._core import PollingProtocol
from .._delay import as_seconds
from .._exceptions import (
    BodyTooLargeError,
    InvalidTokenError,
    LroError,
    MalformedBodyError,
    MissingStatusError,
    NothingToPollError,
    OperationCanceledError,
    OperationFailedError,
    PollRejectedError,
    ProtocolError,
    RetriesExhaustedError,
    UntrustedOriginError,
    WaitCancelledError,
    WaitTimeoutError,
)
from .._parse import ServiceError
from .._state import OperationState
from .._token import RehydrationToken
from ._types import (
    CANCEL_SIGNAL,
    STATE_QUERY,
    STOP_SIGNAL,
    WORKFLOW_NAME,
    FailureInfo,
    FailureType,
    TrackRequest,
    TrackResult,
    TrackState,
)

__all__ = ["TrackHandle", "TrackingError", "track", "workflow_id_for"]

T = TypeVar("T")

#: Workflow ids start with this, then the kind's last name and a digest of the identity.
WORKFLOW_ID_PREFIX = "lro"


class TrackingError(LroError):
    """Tracking itself failed: no worker knows the operation class, or the poll activity
    kept raising something other than an HTTP fault.

    Attributes:
        failure_type: the :class:`~lrokit.temporal.FailureType` value.
        rehydration_token: the operation's last token (it can be resumed from it).
    """

    def __init__(self, message: str, *, failure_type: str, rehydration_token: str | None):
        super().__init__(message)
        self.failure_type = failure_type
        self.rehydration_token = rehydration_token


def workflow_id_for(kind: str, token: RehydrationToken | str) -> str:
    """The tracking workflow id of an operation: the same for every token of it.

    The identity is the operation's kind and what names it for good: its status monitor URL
    (which never changes, and which ``from_monitor`` follows too); for an operation followed
    on its Location URL, which a 202 may move, the operation id its tokens carry (the
    Location URL for an old token without one); else its method and start URL (a PUT or
    PATCH of a resource), each absolute. Tokens taken at different times (other attempt
    counts, states and Locations) give the same id; signatures do not take part.
    """
    fields = RehydrationToken.parse(token).fields if isinstance(token, str) else token.fields
    origin = fields.origin or ""

    def absolute(url: str) -> str:
        return origin + url if url.startswith("/") else url

    if fields.protocol == PollingProtocol.LOCATION.value and fields.operation_id is not None:
        identity = f"operation {fields.operation_id}"
    elif fields.polling_url is not None:
        identity = absolute(fields.polling_url)
    elif fields.location_url is not None:
        identity = absolute(fields.location_url)
    else:
        identity = f"{fields.method} {absolute(fields.initial_url)}"
    digest = hashlib.sha256(f"{kind}\n{identity}".encode()).hexdigest()[:32]
    return f"{WORKFLOW_ID_PREFIX}-{kind.rpartition('.')[2]}-{digest}"


async def track(
    client: Client,
    operation: OperationBase[T] | RehydrationToken | str,
    *,
    task_queue: str,
    operation_type: type[OperationBase[T]] | None = None,
    polling_interval: float | timedelta | None = None,
    timeout: float | timedelta | None = None,
    workflow_id: str | None = None,
    poll_timeout: float | timedelta = 30.0,
    max_polls_per_run: int = 100,
    max_attempts: int = 6,
) -> TrackHandle[T]:
    """Track a started operation durably on Temporal; returns its handle.

    The operation's start must have been sent (by the caller, once): a token taken before
    the start response is refused, since a start that is not idempotent must never be
    repeated by a retrying worker. Tracking the same operation again (from any of its
    tokens) attaches to the running workflow instead of starting a second one.

    Args:
        client: the Temporal client.
        operation: a started operation, or its rehydration token.
        task_queue: the task queue the workers listen on.
        operation_type: the operation class (for a token: names its kind when the token
            does not, and decodes the value); an operation's own class by default.
        polling_interval: seconds between polls when the service gives no Retry-After; the
            worker client's polling policy when None.
        timeout: give up after this long (the handle raises ``WaitTimeoutError``); the
            operation goes on at the service.
        workflow_id: the workflow id; by default :func:`workflow_id_for` the operation.
        poll_timeout: how long one poll may take; a poll cut off by a worker's death is
            retried on another worker after this long.
        max_polls_per_run: polls after which the workflow continues as new.
        max_attempts: attempts of one poll that meets transient faults before tracking
            fails with ``RetriesExhaustedError``.

    Raises:
        ValueError: the operation was not started, or has already completed with nothing
            left to request; the token names no kind and no ``operation_type`` is given; or
            ``max_polls_per_run`` or ``max_attempts`` is below 1.
        InvalidTokenError: the token cannot be read.
    """
    if max_polls_per_run < 1 or max_attempts < 1:
        raise ValueError("max_polls_per_run and max_attempts must be at least 1")
    first_delay = 0.0
    if isinstance(operation, OperationBase):
        operation_type = operation_type or type(operation)
        parsed = operation.rehydration_token
        if operation.core.next_request_url is not None:
            first_delay = operation._delay_seconds(_interval(polling_interval))
    else:
        parsed = RehydrationToken.parse(operation)
    fields = parsed.fields
    if fields.state == OperationState.NOT_STARTED.value:
        raise ValueError(
            "the operation has not been started: send its start request first (a start is"
            " sent once, by the caller), then track it"
        )
    if fields.pending == "done":
        raise ValueError("the operation has completed and needs no more requests")
    kind = operation_type.kind() if operation_type is not None else fields.kind
    if kind is None:
        raise ValueError("the token names no operation kind: pass operation_type=")
    token = str(parsed)
    request = TrackRequest(
        kind=kind,
        token=token,
        polling_interval=_interval(polling_interval),
        timeout=None if timeout is None else as_seconds(timeout),
        first_delay=first_delay,
        max_polls_per_run=max_polls_per_run,
        poll_timeout=as_seconds(poll_timeout),
        max_attempts=max_attempts,
        state=fields.state,
    )
    identifier = workflow_id or workflow_id_for(kind, parsed)
    await client.start_workflow(
        WORKFLOW_NAME,
        request,
        id=identifier,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return TrackHandle(
        client.get_workflow_handle(identifier, result_type=TrackResult), operation_type
    )


def _interval(value: float | timedelta | None) -> float | None:
    return None if value is None else as_seconds(value)


class TrackHandle(Generic[T]):
    """The handle of one tracked operation (what :func:`track` returns).

    Args:
        handle: the Temporal handle of the tracking workflow (without a run id, so that it
            follows continue-as-new runs).
        operation_type: the operation class whose ``decode_value`` decodes the result; None
            returns the final JSON as it is.
    """

    def __init__(
        self,
        handle: WorkflowHandle[Any, TrackResult],
        operation_type: type[OperationBase[T]] | None,
    ) -> None:
        self.workflow_handle = handle
        self.operation_type = operation_type

    @property
    def workflow_id(self) -> str:
        """The tracking workflow's id."""
        return self.workflow_handle.id

    async def result(self, *, value_type: Any = None) -> T:
        """Wait for the outcome; returns the operation's value.

        The final JSON is decoded with ``value_type`` when given, else with the operation
        class's ``decode_value`` (its ``value_type``).

        Raises:
            OperationFailedError: the service reports the operation Failed.
            OperationCanceledError: the service reports it Canceled.
            PollRejectedError: a poll was answered with a non-transient HTTP error.
            RetriesExhaustedError: every attempt of a poll met transient faults.
            ProtocolError: an answer lrokit cannot use, or a value not of the value type.
            InvalidTokenError: the worker refused the token (unsigned, altered, foreign).
            UntrustedOriginError: the service named a URL outside the worker client's
                trusted origins (a moved Location, say); nothing was sent to it.
            WaitTimeoutError: the tracking's ``timeout`` ran out.
            WaitCancelledError: tracking was stopped; resume from the error's token.
            TrackingError: no worker knows the class, or the poll kept failing otherwise.
        """
        try:
            outcome = await self.workflow_handle.result()
        except WorkflowFailureError as error:
            raise _lrokit_error(error) from error
        if outcome.outcome == "stopped":
            state = OperationState(outcome.state)
            raise WaitCancelledError(
                f"tracking was stopped (state {state.value}); resume it from its token",
                state=state,
                rehydration_token=outcome.token,
            )
        return self._decode(outcome.value, value_type, outcome.token)

    def _decode(self, payload: Any, value_type: Any, token: str) -> T:
        try:
            if value_type is not None:
                return msgspec.convert(payload, value_type, strict=False)  # type: ignore[no-any-return]
            operation_type = self.operation_type
            if operation_type is None:
                return payload  # type: ignore[no-any-return]
            # decode_value reads the class (its value_type), not the instance's state.
            return operation_type.__new__(operation_type).decode_value(payload)
        except msgspec.ValidationError as error:
            raise ProtocolError(
                f"the operation's result does not match the value type: {error}",
                rehydration_token=token,
            ) from error

    async def state(self) -> TrackState:
        """The last known state, raw status, percent complete and next poll time (a query:
        answered by a worker)."""
        state: TrackState = await self.workflow_handle.query(STATE_QUERY, result_type=TrackState)
        return state

    async def stop(self) -> None:
        """Stop tracking; the operation goes on at the service and resumes from its token."""
        await self.workflow_handle.signal(STOP_SIGNAL)

    async def cancel(self) -> None:
        """Ask the service to cancel the operation; tracking goes on to its outcome."""
        await self.workflow_handle.signal(CANCEL_SIGNAL)

    def __repr__(self) -> str:
        return f"<TrackHandle {self.workflow_id}>"


#: The ProtocolError subclasses a failure may name (``FailureInfo.error_class``).
_PROTOCOL_ERRORS: dict[str, type[ProtocolError]] = {
    cls.__name__: cls for cls in (MalformedBodyError, MissingStatusError, NothingToPollError)
}


def _lrokit_error(error: WorkflowFailureError) -> Exception:
    """lrokit's own error for a failed tracking workflow."""
    cause = error.cause
    if not isinstance(cause, ApplicationError) or not cause.details:
        return TrackingError(
            f"the tracking workflow failed: {cause or error}",
            failure_type=FailureType.POLL_FAILED.value,
            rehydration_token=None,
        )
    info = msgspec.convert(cause.details[0], FailureInfo)
    service_error = (
        msgspec.convert(info.service_error, ServiceError, strict=False)
        if info.service_error is not None
        else None
    )
    token = info.token
    kind = FailureType(info.type)
    if kind is FailureType.OPERATION_FAILED:
        return OperationFailedError(
            info.message, service_error=service_error, rehydration_token=token
        )
    if kind is FailureType.OPERATION_CANCELED:
        return OperationCanceledError(
            info.message, service_error=service_error, rehydration_token=token
        )
    if kind is FailureType.RETRIES_EXHAUSTED:
        return RetriesExhaustedError(
            info.message,
            status_code=info.status_code,
            failures=info.failures,
            rehydration_token=token,
        )
    if kind is FailureType.POLL_REJECTED:
        return PollRejectedError(
            info.message,
            status_code=info.status_code,
            service_error=service_error,
            rehydration_token=token,
        )
    if kind is FailureType.PROTOCOL:
        if info.error_class == BodyTooLargeError.__name__:
            return BodyTooLargeError(
                info.message,
                limit=info.limit,
                setting=info.setting or "",
                rehydration_token=token,
            )
        protocol_class = _PROTOCOL_ERRORS.get(info.error_class or "", ProtocolError)
        return protocol_class(info.message, service_error=service_error, rehydration_token=token)
    if kind is FailureType.INVALID_TOKEN:
        return InvalidTokenError(info.message)
    if kind is FailureType.UNTRUSTED_ORIGIN:
        # The refused URL is not carried (its query may hold a secret); the message names
        # its origin.
        refused = UntrustedOriginError("", ())
        refused.args = (info.message,)
        return refused
    if kind is FailureType.DEADLINE:
        return WaitTimeoutError(
            info.message,
            state=OperationState(info.state or OperationState.RUNNING.value),
            rehydration_token=token,
        )
    return TrackingError(info.message, failure_type=kind.value, rehydration_token=token)
