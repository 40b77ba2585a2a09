"""Every error lrokit raises.

::

    LroError                          base of everything below
    ├── InvalidTransitionError        a trigger that the transition table does not allow
    ├── OperationNotCompleteError     ``value`` read before the operation reached a terminal state
    ├── HookError                     one or more hooks raised; the state change itself stood
    ├── InvalidTokenError             a rehydration token that cannot be trusted or read
    │   └── TokenOriginError          ... because a URL in it is outside the trusted origins
    ├── UntrustedOriginError          a URL outside the client's endpoint and allowlist
    │   └── TokenOriginError          (both: a token's URL is an untrusted origin)
    ├── WaitTimeoutError              ``wait_for_completion(timeout=...)`` ran out
    ├── WaitCancelledError            the caller stopped the wait with a cancellation handle
    ├── CancelNotSupportedError       ``cancel()`` on an operation class without a cancel request
    ├── OperationErrorGroup           ``wait_all``/``async_wait_all``: every operation's error
    │                                 (also an ``ExceptionGroup``)
    └── OperationError                carries the last response, the service error, the token
        ├── OperationFailedError      the service says the operation Failed
        ├── OperationCanceledError    the service says the operation was Canceled
        ├── ProtocolError             a response lrokit cannot use (no readable status, ...)
        │   ├── MalformedBodyError    ... its body is not decodable JSON
        │   ├── MissingStatusError    ... its body has no readable status (or none at all)
        │   ├── NothingToPollError    ... it says work goes on but gives no way to poll
        │   └── BodyTooLargeError     ... a body over the pipeline's cap (decoded bytes)
        ├── PollTransportError        a poll got no answer; within the retry budget
        ├── StartOutcomeUnknownError  a start that may have reached the service lost its
        │                             answer; it is never sent again by itself
        └── HttpResponseError         the service answered a request with an HTTP error
            ├── StartRejectedError    ... the request that starts the operation
            ├── CancelRejectedError   ... the request that asks the service to cancel
            └── PollRejectedError     ... a status poll or the final GET
                └── RetriesExhaustedError  transient faults, more than ``max_retries`` in a row

Nothing here imports ``requests``: the last raw response is whatever object the driver
attached (a ``requests.Response`` for the sync driver).

Every error that a request-making call of an operation raises names its operation:
``error.operation`` is the operation object and ``error.operation_id`` its id (None on errors
raised outside any operation). No message holds a secret query value or user info of a URL:
they are redacted with the token policy's rule (``TokenPolicy.redact_text``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import builtins

    _ExceptionGroup = builtins.ExceptionGroup
else:  # pragma: no cover - the backport on Python 3.10
    from exceptiongroup import ExceptionGroup as _ExceptionGroup

if TYPE_CHECKING:
    from ._parse import ServiceError, StatusUpdate
    from ._state import OperationState, Trigger

__all__ = [
    "BodyTooLargeError",
    "CancelNotSupportedError",
    "CancelRejectedError",
    "HookError",
    "HttpResponseError",
    "InvalidTokenError",
    "InvalidTransitionError",
    "LroError",
    "MalformedBodyError",
    "MissingStatusError",
    "NothingToPollError",
    "OperationCanceledError",
    "OperationError",
    "OperationErrorGroup",
    "OperationFailedError",
    "OperationNotCompleteError",
    "PollRejectedError",
    "PollTransportError",
    "ProtocolError",
    "RetriesExhaustedError",
    "StartOutcomeUnknownError",
    "StartRejectedError",
    "TokenOriginError",
    "UntrustedOriginError",
    "WaitCancelledError",
    "WaitTimeoutError",
]


class LroError(Exception):
    """Base class of every error raised by lrokit.

    Attributes:
        operation: the operation whose call raised it (None outside an operation's call).
        operation_id: that operation's id (``operation.core.operation_id``), or None.
    """

    operation: Any = None
    operation_id: str | None = None

    def _belongs_to(self, operation: Any, operation_id: str) -> None:
        """Name the operation this error belongs to (once; drivers call it)."""
        if self.operation is None:
            self.operation = operation
            self.operation_id = operation_id


class InvalidTransitionError(LroError):
    """A trigger was fired that the transition table does not allow from the current state.

    The operation's state is unchanged.
    """

    def __init__(self, state: OperationState | str, trigger: Trigger | str) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(f"trigger {str(trigger)!r} is not allowed in state {str(state)!r}")


class OperationNotCompleteError(LroError):
    """The value was requested before the operation completed."""


class HookError(LroError):
    """One or more hooks raised while being notified.

    The state change that the hooks were told about has already happened and stands; every
    hook was called. ``errors`` holds each exception in call order; the first one is also the
    ``__cause__``.
    """

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} hook(s) raised; first: {errors[0]!r}")


class InvalidTokenError(LroError):
    """A rehydration token is malformed, too large, of an unknown version or not trusted.

    The message never echoes the token itself. No request was sent.
    """


class UntrustedOriginError(LroError):
    """A URL points outside the client's endpoint and allowlist; no request was sent to it."""

    def __init__(self, url: str, allowed: tuple[str, ...]) -> None:
        self.url = url
        self.allowed = allowed
        # Only the origin goes into the message: paths and queries may carry secrets (a SAS
        # signature, say) and messages end up in logs. ``url`` keeps the whole value.
        super().__init__(
            f"refusing to send a request to {_origin_for_message(url)}: origin not in"
            f" {list(allowed)}"
        )


def _origin_for_message(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "a URL that is not absolute"
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    authority = authority.rpartition("@")[2]  # never show user info
    shown = f"{scheme}://{authority}"
    return repr(shown if len(shown) <= 120 else shown[:120] + "...")


class TokenOriginError(InvalidTokenError, UntrustedOriginError):
    """A rehydration token holds a URL outside the client's trusted origins.

    Both an :class:`InvalidTokenError` (the token is refused, nothing is restored) and an
    :class:`UntrustedOriginError` (``url`` and ``allowed`` say what was refused). The
    message names the token field but, like every token error, not the URL.
    """

    def __init__(self, url: str, allowed: tuple[str, ...], field: str) -> None:
        UntrustedOriginError.__init__(self, url, allowed)
        self.field = field
        Exception.__init__(
            self, f"token's {field} is outside the client's trusted origins {list(allowed)}"
        )


class _WithToken(LroError):
    def __init__(self, message: str, *, rehydration_token: str | None = None) -> None:
        super().__init__(message)
        self.rehydration_token = rehydration_token


class WaitTimeoutError(_WithToken, TimeoutError):
    """``wait_for_completion`` reached its deadline before the operation completed.

    The operation is untouched and can be waited on again or resumed from
    ``rehydration_token``. ``state`` is the last known state, ``status`` the last parsed
    status report (None when there was none).
    """

    def __init__(
        self,
        message: str,
        *,
        state: OperationState,
        rehydration_token: str | None,
        status: StatusUpdate | None = None,
    ) -> None:
        super().__init__(message, rehydration_token=rehydration_token)
        self.state = state
        self.status = status


class WaitCancelledError(_WithToken):
    """The caller stopped ``wait_for_completion``; the operation stays resumable.

    ``state`` and ``status`` are as for :class:`WaitTimeoutError`. This stops the *wait*
    only; asking the service to cancel the operation is ``Operation.cancel()``.
    """

    def __init__(
        self,
        message: str,
        *,
        state: OperationState,
        rehydration_token: str | None,
        status: StatusUpdate | None = None,
    ) -> None:
        super().__init__(message, rehydration_token=rehydration_token)
        self.state = state
        self.status = status


class CancelNotSupportedError(LroError, NotImplementedError):
    """``cancel()`` was called on an operation class that has no cancel request configured.

    Set the class attribute ``cancel_request`` (for example ``("POST", "{monitor}:cancel")``)
    or override ``cancel_target()`` for services that support cancellation. No request was
    sent.
    """


class OperationError(LroError):
    """An error about one operation, with what is needed to diagnose or resume it.

    Attributes:
        response: the last raw response (``requests.Response`` in the sync driver), or None.
        service_error: the service's parsed ``error`` object, or None.
        rehydration_token: the operation's token at the time of the error, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        response: Any = None,
        service_error: ServiceError | None = None,
        rehydration_token: str | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.service_error = service_error
        self.rehydration_token = rehydration_token


class OperationFailedError(OperationError):
    """The service reports that the operation failed."""


class OperationCanceledError(OperationError):
    """The service reports that the operation was canceled."""


class ProtocolError(OperationError):
    """A response that lrokit cannot use: no readable status, invalid JSON, a missing URL.

    The operation's state did not change because of it. Its subclasses say which kind of
    unusable answer it was; catching ``ProtocolError`` catches them all.
    """


class MalformedBodyError(ProtocolError):
    """The answer's body is not decodable JSON where lrokit needs to read one."""


class MissingStatusError(ProtocolError):
    """The answer's body has no readable status where one is needed (a status monitor
    without ``status``, or an empty body where a resource was expected)."""


class NothingToPollError(ProtocolError):
    """The start answer says the operation goes on but gives no way to follow it (no
    ``Operation-Location``, ``Azure-AsyncOperation`` or ``Location`` header)."""


class BodyTooLargeError(ProtocolError):
    """A response body went over the pipeline's cap on decoded bytes.

    ``limit`` is the cap in bytes (``Pipeline(max_status_body_bytes=...)`` for status
    answers, ``max_value_body_bytes`` for answers that may hold the value) and ``setting``
    its name. The body was read streamed and the connection closed at the cap, so no more
    than ``limit`` bytes were held. The operation's state did not change and it stays
    resumable.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        setting: str,
        response: Any = None,
        rehydration_token: str | None = None,
    ) -> None:
        super().__init__(message, response=response, rehydration_token=rehydration_token)
        self.limit = limit
        self.setting = setting


class StartOutcomeUnknownError(OperationError):
    """The start request may have reached the service, but its answer never came.

    The request was cancelled while in flight (a cancelled task, a deadline, an interrupt),
    or the connection broke after it was sent. The service may have created the operation,
    or not; sending the start again could create a second one, so lrokit never does that
    for a start that is not safe to repeat (only PUT, DELETE and starts with an
    ``Operation-Id`` are retried). The operation stays ``NotStarted`` with
    ``start_outcome_unknown`` set, and every later request-making call raises this error
    again. Find out at the service whether the operation exists (by the request's own id, a
    listing, ...), then follow it with ``from_monitor`` or prepare a new one.

    Attributes:
        method: the start request's method.
        url: the start request's URL, with secret query values redacted.
        reason: what happened (``"cancelled"``, ``"deadline"``, ``"connection lost"``, ...).
    """

    def __init__(self, message: str, *, method: str, url: str, reason: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.reason = reason


class HttpResponseError(OperationError):
    """The service answered a request with an HTTP error status.

    ``status_code`` is the HTTP status of that answer.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: Any = None,
        service_error: ServiceError | None = None,
        rehydration_token: str | None = None,
    ) -> None:
        super().__init__(
            message,
            response=response,
            service_error=service_error,
            rehydration_token=rehydration_token,
        )
        self.status_code = status_code


class StartRejectedError(HttpResponseError):
    """The request that starts the operation was answered with an HTTP error."""


class PollRejectedError(HttpResponseError):
    """A status poll or the final-resource request was answered with an HTTP error."""


class RetriesExhaustedError(PollRejectedError):
    """A request hit transient faults more than the policy's ``max_retries`` times in a row.

    Transient faults are HTTP 408, 429, 500, 502, 503 and 504 answers, connection errors,
    timeouts and answers whose body could not be read. ``status_code`` is the last HTTP
    status, or 0 when the last attempt got no answer (its exception is the ``__cause__``).
    ``failures`` is the number of consecutive faults. The operation's state is unchanged;
    the count starts over, so it can be waited on again or resumed from the token.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        failures: int,
        response: Any = None,
        service_error: ServiceError | None = None,
        rehydration_token: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            response=response,
            service_error=service_error,
            rehydration_token=rehydration_token,
        )
        self.failures = failures


class PollTransportError(OperationError):
    """``update_status()`` sent its request but got no answer (connection error, timeout).

    The fault is counted against the policy's retry budget and the state is unchanged: call
    ``update_status()`` again after ``operation.last_delay``. ``failures`` is the number of
    consecutive faults so far and ``retries_left`` how many more are tolerated before
    :class:`RetriesExhaustedError`. The transport's exception is the ``__cause__``.
    ``wait_for_completion`` never raises this; it retries by itself.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: int,
        retries_left: int,
        rehydration_token: str | None = None,
    ) -> None:
        super().__init__(message, rehydration_token=rehydration_token)
        self.failures = failures
        self.retries_left = retries_left


class CancelRejectedError(HttpResponseError):
    """The service answered the request to cancel the operation with an HTTP error.

    The operation's state is unchanged (a service often answers 409 when the operation has
    already completed; poll to see how it ended).
    """


class OperationErrorGroup(_ExceptionGroup, LroError):
    """The errors of every operation that failed in ``wait_all`` or ``async_wait_all``.

    An ``ExceptionGroup`` (the ``exceptiongroup`` backport on Python 3.10), so ``except*``
    picks out one kind (``except* PollRejectedError``), and an :class:`LroError`, so
    ``except LroError`` catches it. ``exceptions`` holds one error per failed operation, in
    the order the operations were given; each names its operation (``operation``,
    ``operation_id``). The other operations were left as they were, resumable.
    """

    def __new__(cls, message: str, errors: Sequence[Exception]) -> OperationErrorGroup:
        return super().__new__(cls, message, errors)

    def derive(self, errors: Sequence[Exception]) -> OperationErrorGroup:  # type: ignore[override]
        """The group's split halves stay :class:`OperationErrorGroup` s."""
        return OperationErrorGroup(self.message, errors)
