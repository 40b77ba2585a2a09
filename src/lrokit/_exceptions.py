"""Every error lrokit raises.

::

    LroError                          base of everything below
    ├── InvalidTransitionError        a trigger that the transition table does not allow
    ├── OperationNotCompleteError     ``value`` read before the operation reached a terminal state
    ├── HookError                     one or more hooks raised; the state change itself stood
    ├── InvalidTokenError             a rehydration token that cannot be trusted or read
    ├── UntrustedOriginError          a URL outside the client's endpoint and allowlist
    ├── WaitTimeoutError              ``wait_for_completion(timeout=...)`` ran out
    ├── WaitCancelledError            the caller stopped the wait with a cancellation handle
    └── OperationError                carries the last response, the service error, the token
        ├── OperationFailedError      the service says the operation Failed
        ├── OperationCanceledError    the service says the operation was Canceled
        ├── ProtocolError             a response lrokit cannot use (no readable status, ...)
        └── HttpResponseError         the service answered a request with an HTTP error
            ├── StartRejectedError    ... the request that starts the operation
            └── PollRejectedError     ... a status poll or the final GET

Nothing here imports ``requests``: the last raw response is whatever object the driver
attached (a ``requests.Response`` for the sync driver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._parse import ServiceError
    from ._state import OperationState, Trigger

__all__ = [
    "HookError",
    "HttpResponseError",
    "InvalidTokenError",
    "InvalidTransitionError",
    "LroError",
    "OperationCanceledError",
    "OperationError",
    "OperationFailedError",
    "OperationNotCompleteError",
    "PollRejectedError",
    "ProtocolError",
    "StartRejectedError",
    "UntrustedOriginError",
    "WaitCancelledError",
    "WaitTimeoutError",
]


class LroError(Exception):
    """Base class of every error raised by lrokit."""


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
        shown = url if len(url) <= 200 else url[:200] + "..."
        super().__init__(f"refusing to send a request to {shown!r}: origin not in {list(allowed)}")


class _WithToken(LroError):
    def __init__(self, message: str, *, rehydration_token: str | None = None) -> None:
        super().__init__(message)
        self.rehydration_token = rehydration_token


class WaitTimeoutError(_WithToken, TimeoutError):
    """``wait_for_completion`` reached its deadline before the operation completed.

    The operation is untouched and can be waited on again or resumed from
    ``rehydration_token``. ``state`` is the last known state.
    """

    def __init__(
        self, message: str, *, state: OperationState, rehydration_token: str | None
    ) -> None:
        super().__init__(message, rehydration_token=rehydration_token)
        self.state = state


class WaitCancelledError(_WithToken):
    """The caller stopped ``wait_for_completion``; the operation stays resumable."""

    def __init__(
        self, message: str, *, state: OperationState, rehydration_token: str | None
    ) -> None:
        super().__init__(message, rehydration_token=rehydration_token)
        self.state = state


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

    The operation's state did not change because of it.
    """


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
