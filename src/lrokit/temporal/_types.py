"""What travels through Temporal: the inputs and outputs of the workflow and its activities.

Plain dataclasses of scalars (Temporal's default converter writes them as JSON into the
workflow's history). Nothing here is secret: a rehydration token holds URLs (with the values
of credential query parameters removed) and never a header, a key or a body; the SDK client
with its credentials is built inside the worker (see :class:`~lrokit.temporal.Registry`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FailureInfo",
    "FailureType",
    "PollOutcome",
    "PollRequest",
    "TrackRequest",
    "TrackResult",
    "TrackState",
]

#: The activity names a tracking workflow schedules (a worker registers both).
POLL_ACTIVITY = "lrokit.poll"
CANCEL_ACTIVITY = "lrokit.cancel"
#: The workflow type, its query and its signals.
WORKFLOW_NAME = "lrokit.track"
STATE_QUERY = "state"
STOP_SIGNAL = "stop_tracking"
CANCEL_SIGNAL = "cancel_operation"


class FailureType(str, enum.Enum):
    """The ``type`` of the ``ApplicationError`` a tracking workflow fails with.

    :class:`~lrokit.temporal.TrackHandle` turns each into lrokit's own error.
    """

    OPERATION_FAILED = "OperationFailed"
    """The service reports the operation Failed (``OperationFailedError``)."""
    OPERATION_CANCELED = "OperationCanceled"
    """The service reports the operation Canceled (``OperationCanceledError``)."""
    POLL_REJECTED = "PollRejected"
    """A poll was answered with a non-transient HTTP error (``PollRejectedError``)."""
    RETRIES_EXHAUSTED = "RetriesExhausted"
    """Transient faults on every attempt of a poll (``RetriesExhaustedError``)."""
    PROTOCOL = "ProtocolError"
    """An answer lrokit cannot use (``ProtocolError``)."""
    INVALID_TOKEN = "InvalidToken"
    """The worker refused the token: unsigned, altered, foreign origin (``InvalidTokenError``)."""
    UNTRUSTED_ORIGIN = "UntrustedOrigin"
    """A URL the service named (a moved Location, say) is outside the worker client's
    trusted origins; nothing was sent to it (``UntrustedOriginError``)."""
    DEADLINE = "DeadlineExceeded"
    """The tracking's ``timeout`` ran out first (``WaitTimeoutError``)."""
    UNKNOWN_KIND = "UnknownOperationKind"
    """No worker registry knows the operation class (``TrackingError``)."""
    POLL_FAILED = "PollFailed"
    """The poll activity raised something else, on every attempt (``TrackingError``)."""


@dataclass
class FailureInfo:
    """The details of a typed failure (the ``ApplicationError``'s first detail).

    Attributes:
        type: a :class:`FailureType` value.
        message: what happened.
        token: the operation's last rehydration token (resume from it), or None.
        state: the operation's last known state (an ``OperationState`` value).
        status_code: the HTTP status of a rejected poll, or 0.
        failures: consecutive transient faults (for ``RetriesExhausted``), or 0.
        service_error: the service's ``error`` object as JSON, or None.
        error_class: for a ``ProtocolError``, the name of its subclass
            (``MalformedBodyError``, ``MissingStatusError``, ``NothingToPollError``,
            ``BodyTooLargeError``), rebuilt by :class:`~lrokit.temporal.TrackHandle`; or None.
        limit: a ``BodyTooLargeError``'s cap in bytes, or 0.
        setting: a ``BodyTooLargeError``'s setting name, or None.
    """

    type: str
    message: str
    token: str | None = None
    state: str | None = None
    status_code: int = 0
    failures: int = 0
    service_error: dict[str, Any] | None = None
    error_class: str | None = None
    limit: int = 0
    setting: str | None = None


@dataclass
class TrackRequest:
    """The input of the tracking workflow (and of each run after a continue-as-new).

    Attributes:
        kind: the operation class's token kind (``Operation.kind()``); the worker's registry
            maps it to the class and the client factory.
        token: the operation's rehydration token (never ``NotStarted``).
        polling_interval: seconds between polls when the service gives no hint; None uses
            the worker client's polling policy.
        timeout: seconds from the first run's start until tracking gives up
            (``DeadlineExceeded``); None tracks without a deadline.
        deadline: the absolute deadline (seconds since the epoch, workflow time), set by the
            first run from ``timeout`` and carried over continue-as-new.
        first_delay: seconds to sleep before the first poll of this run (the delay the last
            response asked for).
        max_polls_per_run: polls after which the run continues as new, bounding its history.
        poll_timeout: seconds one poll activity may take (its start-to-close timeout); after
            a worker died mid-poll, the poll is retried on another worker after this long.
        max_attempts: attempts of one poll (transient faults are retried by Temporal, after
            the server's Retry-After when it sent one).
        polls: polls made by earlier runs.
        cancel_requested: a service-side cancel was asked for and not yet sent.
        state: the last known state, raw status and percent (for queries after a new run).
    """

    kind: str
    token: str
    polling_interval: float | None = None
    timeout: float | None = None
    deadline: float | None = None
    first_delay: float = 0.0
    max_polls_per_run: int = 100
    poll_timeout: float = 30.0
    max_attempts: int = 6
    polls: int = 0
    cancel_requested: bool = False
    state: str = "Running"
    raw_status: str | None = None
    percent_complete: float | None = None


@dataclass
class PollRequest:
    """The input of one poll (or cancel) activity.

    Attributes:
        kind: the operation class's token kind.
        token: the token to rehydrate from.
        polling_interval: as in :class:`TrackRequest`.
        due_at: when the workflow planned this poll (seconds since the epoch), for the
            lateness the worker's ``on_poll`` hook reports.
    """

    kind: str
    token: str
    polling_interval: float | None = None
    due_at: float | None = None


@dataclass
class PollOutcome:
    """What one poll (or cancel) activity returns.

    Attributes:
        token: the token after the poll.
        state: the state after the poll (an ``OperationState`` value).
        raw_status: the status string as the service sent it, or None.
        percent_complete: the progress the service reports, or None.
        next_delay: seconds before the next poll (None once the operation completed).
        delay_source: the rule that chose ``next_delay`` (a ``DelaySource`` value).
        value: the final JSON once the operation succeeded (validated against the
            class's value type).
        failure: a typed failure that ends tracking (the operation's own Failed or
            Canceled outcome, a rejected poll, a protocol error, a refused token).
        note: a remark for the query state (a refused cancel request), or None.
    """

    token: str
    state: str
    raw_status: str | None = None
    percent_complete: float | None = None
    next_delay: float | None = None
    delay_source: str | None = None
    value: Any = None
    failure: FailureInfo | None = None
    note: str | None = None


@dataclass
class TrackState:
    """What the workflow's ``state`` query answers.

    Attributes:
        state: the last known state (an ``OperationState`` value).
        raw_status: the last status string the service sent, or None.
        percent_complete: the last progress the service reported, or None.
        next_poll_at: when the next poll is due (seconds since the epoch), or None while a
            poll is in flight or once tracking has ended.
        polls: polls made so far, over every run.
        token: the last rehydration token (the operation resumes from it).
        tracking: False once the workflow has ended (completed, failed, stopped).
        stopped: whether tracking was stopped by the stop signal.
        cancel_requested: whether a service-side cancel was asked for.
        note: the last remark (a refused cancel request), or None.
    """

    state: str
    raw_status: str | None
    percent_complete: float | None
    next_poll_at: float | None
    polls: int
    token: str
    tracking: bool = True
    stopped: bool = False
    cancel_requested: bool = False
    note: str | None = None


@dataclass
class TrackResult:
    """What a tracking workflow returns when it does not fail.

    Attributes:
        outcome: ``"succeeded"`` (``value`` holds the final JSON) or ``"stopped"`` (the stop
            signal ended tracking; resume from ``token``).
        token: the last rehydration token.
        state: the last known state.
        polls: polls made over every run.
        value: the final JSON of a succeeded operation.
    """

    outcome: str
    token: str
    state: str
    polls: int
    value: Any = None
