"""The sans-I/O core of one operation: responses in, decisions out.

:class:`OperationCore` never sends a request and never sleeps. A driver asks it which request
to make next (:attr:`OperationCore.next_request_url`), makes it, wraps the answer in a
:class:`~lrokit.ResponseView` and hands it to :meth:`OperationCore.receive`, which parses it,
moves the state through the shared transition table and returns a :class:`Decision`.
The state never changes on a response that could not be parsed.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from ._exceptions import (
    InvalidTokenError,
    InvalidTransitionError,
    MalformedBodyError,
    MissingStatusError,
    NothingToPollError,
    PollRejectedError,
    ProtocolError,
    StartRejectedError,
    TokenOriginError,
)
from ._parse import (
    DEFAULT_VOCABULARY,
    ResponseView,
    ServiceError,
    StatusUpdate,
    StatusVocabulary,
    decode_json,
    extract,
    parse_retry_after,
    parse_service_error,
)
from ._state import INITIAL_STATE, TERMINAL_STATES, OperationState, Trigger, next_state
from ._token import (
    DEFAULT_TOKEN_POLICY,
    MAX_COUNT,
    MAX_URL_LENGTH,
    ORIGIN_FORM,
    Pending,
    RehydrationToken,
    TokenPolicy,
    TokenV2,
)
from ._token import Protocol as TokenProtocol
from ._token import State as TokenState
from ._token import Via as TokenVia
from ._urls import OriginPolicy, api_version_of, encode_unsafe, resolve, with_api_version

__all__ = [
    "Action",
    "Decision",
    "FinalStateVia",
    "OperationCore",
    "PollingProtocol",
    "ProtocolOptions",
    "start_is_retried",
]

_ACCEPTED_START = frozenset({200, 201, 202, 204})
#: An absolute http(s) URL that ``resolve`` returns as it is: a lower-case scheme, printable
#: ASCII only (whitespace is stripped or removed by the parser), no parameters or fragment,
#: not ending in an empty query (which urlunparse drops).
_PLAIN_ABSOLUTE = re.compile(r"https?://(?![/?])[!\"$-:<-\[\]-~]+(?<!\?)")
_DONE_CODES = frozenset({200, 201, 204})
#: Poll answers that mean "try the same request again later", not "the operation is broken".
TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
#: Start methods that are safe to send again: repeating them cannot start a second operation.
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})
_MONITOR_PATH = ("status",)
_RESOURCE_PATH = ("properties", "provisioningState")

_S = OperationState
_TRIGGER_FOR = {
    _S.SUCCEEDED: Trigger.SUCCEED,
    _S.FAILED: Trigger.FAIL,
    _S.CANCELED: Trigger.CANCEL,
}


def start_is_retried(status_code: int, *, idempotent: bool, retry_on: frozenset[int]) -> bool:
    """Whether a start request answered with ``status_code`` is sent again (within the
    policy's retry budget, after its back-off and the server's ``Retry-After``).

    ``retry_on`` (``PollingPolicy.retry_start_on``: 429, 500, 503 and 504 by default, the
    Azure SDKs' convention) is retried for every method; an ``idempotent`` start (PUT,
    DELETE, or one carrying an ``Operation-Id``) after any transient answer as well
    (408 and 502 too).
    """
    return status_code in retry_on or (idempotent and status_code in TRANSIENT_STATUS_CODES)


class PollingProtocol(str, enum.Enum):
    """How an operation's progress is observed, chosen from the start response."""

    STATUS_MONITOR = "status-monitor"
    """GET the Operation-Location / Azure-AsyncOperation URL; JSON ``status``."""
    LOCATION = "location"
    """GET the Location URL; 202 means running, 200/201/204 done."""
    RESOURCE = "resource"
    """GET the original URL; the resource's ``provisioningState`` (ARM PUT/PATCH)."""
    NONE = "none"
    """Nothing to poll: the start response was final."""


class FinalStateVia(str, enum.Enum):
    """Where the final result of a succeeded operation is read from (``final-state-via``)."""

    LOCATION = "location"
    AZURE_ASYNC_OPERATION = "azure-async-operation"
    OPERATION_LOCATION = "operation-location"
    ORIGINAL_URI = "original-uri"


class Action(str, enum.Enum):
    """What the driver should do next."""

    POLL = "poll"
    """GET :attr:`Decision.url` after the delay."""
    FETCH_FINAL = "fetch-final"
    """GET the final resource at :attr:`Decision.url` now."""
    RETRY = "retry"
    """The last request hit a transient error: repeat it after the delay."""
    DONE = "done"
    """Nothing more to request; the operation is terminal."""


# Enum members as module constants for the per-response path: reading an attribute of an Enum
# class costs about ten times as much as reading a global, and a poll reads a dozen.
_POLL, _FETCH_FINAL, _RETRY, _DONE = Action.POLL, Action.FETCH_FINAL, Action.RETRY, Action.DONE
_NOT_STARTED, _RUNNING, _SUCCEEDED = _S.NOT_STARTED, _S.RUNNING, _S.SUCCEEDED
_FAILED, _CANCELED = _S.FAILED, _S.CANCELED
_LOCATION, _RESOURCE = PollingProtocol.LOCATION, PollingProtocol.RESOURCE
_NO_PROTOCOL = PollingProtocol.NONE


class Decision(msgspec.Struct, frozen=True):
    """The core's answer to one response.

    Attributes:
        action: what to do next.
        url: the URL to request next (None for ``DONE``).
        retry_after: the server's polling hint in seconds, or None.
        previous: the state before this response.
        state: the state after it.
        status: the parsed status, where the response carried one.
    """

    action: Action
    url: str | None
    retry_after: float | None
    previous: OperationState
    state: OperationState
    status: StatusUpdate | None = None

    @property
    def changed(self) -> bool:
        """Whether the response moved the operation to another state."""
        return self.previous is not self.state


class ProtocolOptions:
    """Per-operation protocol settings.

    Args:
        final_state_via: where to read the final result of a succeeded operation; None
            follows the defaults of the Azure guidelines (see docs/protocols.md).
        status_path: keys leading to the status string in a JSON body, for services that do
            not use ``status`` / ``properties.provisioningState``.
        vocabulary: how status strings map to states.
    """

    __slots__ = ("final_state_via", "status_path", "vocabulary")

    def __init__(
        self,
        *,
        final_state_via: FinalStateVia | str | None = None,
        status_path: Sequence[str] | None = None,
        vocabulary: StatusVocabulary = DEFAULT_VOCABULARY,
    ) -> None:
        self.final_state_via = None if final_state_via is None else FinalStateVia(final_state_via)
        self.status_path = None if status_path is None else tuple(status_path)
        self.vocabulary = vocabulary


DEFAULT_OPTIONS = ProtocolOptions()


class OperationCore:
    """The state and protocol logic of one operation, with no I/O.

    Build one with the start request's method and URL, then feed it the start response with
    :meth:`receive`, and every later response the same way. Cheap to create: a handful of
    slots and no ``transitions.Machine`` of its own (see :mod:`lrokit._state`).
    """

    __slots__ = (
        "_operation_id",
        "_url_api_version",
        "_versioned_url",
        "api_version",
        "attempt",
        "created_at",
        "error",
        "final_document",
        "final_url",
        "has_payload",
        "initial_url",
        "kind",
        "location_url",
        "method",
        "next_action",
        "options",
        "origin_policy",
        "payload",
        "polling_url",
        "protocol",
        "state",
        "status",
        "token_policy",
    )

    def __init__(
        self,
        method: str,
        url: str,
        *,
        options: ProtocolOptions | None = None,
        origin_policy: OriginPolicy | None = None,
        operation_id: str | None = None,
        kind: str | None = None,
        created_at: float | None = None,
        token_policy: TokenPolicy | None = None,
    ) -> None:
        self.method = method.upper()
        self.initial_url = url
        self.options = options or DEFAULT_OPTIONS
        self.origin_policy = origin_policy
        self.token_policy = token_policy or DEFAULT_TOKEN_POLICY
        self._operation_id = operation_id
        self.kind = kind
        self.created_at = time.time() if created_at is None else created_at
        self.state: OperationState = INITIAL_STATE
        self.protocol = PollingProtocol.NONE
        self.next_action: Action | None = None
        self.polling_url: str | None = None
        self.location_url: str | None = None
        self.final_url: str | None = None
        # Kept with the URL it was read from: a token omits an api-version equal to it.
        self.api_version = self._url_api_version = api_version_of(url)
        self._versioned_url: str | None = url
        self.attempt = 0
        self.status: StatusUpdate | None = None
        self.error: ServiceError | None = None
        self.payload: Any = None
        self.has_payload = False
        self.final_document: Any = None

    # -- reading -------------------------------------------------------------------------

    @property
    def operation_id(self) -> str:
        """A unique id of this operation (a UUID4 string), made on first use to keep creation
        cheap; it travels in the token."""
        if self._operation_id is None:
            self._operation_id = str(uuid.uuid4())
        return self._operation_id

    @property
    def has_completed(self) -> bool:
        """Whether the operation is in a terminal state."""
        return self.state.is_terminal

    @property
    def next_request_url(self) -> str | None:
        """The URL of the next request the driver should make, or None when there is none."""
        action = self.next_action
        if action is _POLL or action is _RETRY:
            return self.polling_url
        if action is _FETCH_FINAL:
            return self.final_url
        return None

    # -- driving -------------------------------------------------------------------------

    def fire(self, trigger: Trigger | str) -> OperationState:
        """Fire a named transition; returns the previous state.

        Raises:
            InvalidTransitionError: not allowed from the current state; nothing changes.
        """
        previous = self.state
        if not isinstance(trigger, Trigger):
            try:
                trigger = Trigger(trigger)
            except ValueError:
                # An unknown name is as illegal as a known one from the wrong state.
                raise InvalidTransitionError(previous, trigger) from None
        self.state = next_state(previous, trigger)
        if self.state.is_terminal:
            self.next_action = Action.DONE
        elif self.next_action is None:
            self.next_action = Action.POLL
        return previous

    def receive(self, view: ResponseView) -> Decision:
        """Consume the response to the request the core asked for last.

        The first response is taken as the start response. Raises a
        :class:`~lrokit.ProtocolError` for an unusable response and an
        :class:`~lrokit.HttpResponseError` subclass for an HTTP error; the state is unchanged
        in both cases.
        """
        action = self.next_action
        if action is None:
            return self._receive_start(view)
        if action is _FETCH_FINAL:
            return self._receive_final(view)
        if action is _DONE:
            raise ProtocolError(
                "the operation has completed and expects no further response",
                response=view.raw,
                rehydration_token=self._token_or_none(),
            )
        return self._receive_poll(view)

    def apply_status(self, update: StatusUpdate, payload: Any = None) -> Decision:
        """Apply a status parsed elsewhere (custom protocols, tests); no final GET is planned.

        A non-terminal status starts the operation if needed; ``SUCCEEDED`` stores
        ``payload`` as the result; ``FAILED`` and ``CANCELED`` keep ``update.error``.

        Raises:
            InvalidTransitionError: the operation has already completed; nothing changes.
        """
        previous = self.state
        if previous.is_terminal:
            # Terminal states have no way out, not even back to Running; check before
            # touching anything so that a refused update changes nothing.
            trigger = _TRIGGER_FOR.get(update.state, Trigger.START)
            raise InvalidTransitionError(previous, trigger)
        self.attempt += 1
        self.status = update
        if update.state.is_terminal:
            self._finish(update.state, payload, update.error, payload)
            return self._decide(Action.DONE, None, update.retry_after, previous, update)
        self._ensure_running()
        return self._decide(Action.POLL, self.polling_url, update.retry_after, previous, update)

    # -- start -----------------------------------------------------------------------------

    def _receive_start(self, view: ResponseView) -> Decision:
        code = view.status_code
        previous = self.state
        if code not in _ACCEPTED_START:
            document = self._lenient_json(view.body)
            raise StartRejectedError(
                f"the service rejected the start request with HTTP {code}",
                status_code=code,
                response=view.raw,
                service_error=parse_service_error(document),
            )
        base = view.url or self.initial_url
        headers = view.headers
        monitor = headers.get("operation-location") or headers.get("azure-asyncoperation")
        location = headers.get("location")
        document = self._start_document(view)
        raw_status = self._status_string(document, (_MONITOR_PATH, _RESOURCE_PATH))
        body_state = None if raw_status is None else self.options.vocabulary(raw_status)
        hint = parse_retry_after(headers)

        if code in (200, 201) and body_state is not None and body_state.is_terminal:
            # A service that finished before answering: polling headers are irrelevant (not
            # even checked against the origin policy, since nothing will be sent to them).
            update = self._update(body_state, raw_status, document, hint)
            self._finish(body_state, document, update.error, document)
            return self._decide(Action.DONE, None, hint, previous, update)
        if location:
            self.location_url = self._accept(self._service_url(base, location))
        if monitor:
            self.protocol = PollingProtocol.STATUS_MONITOR
            self.polling_url = self._accept(self._service_url(base, monitor))
        elif self.location_url is not None:
            self.protocol = PollingProtocol.LOCATION
            self.polling_url = self.location_url
        elif self.method in ("PUT", "PATCH") and (
            code in (201, 202) or self._status_string(document, (_RESOURCE_PATH,)) is not None
        ):
            # ARM: a resource still provisioning is polled on its own URL, and a 201 or 202
            # without a terminal status is still provisioning (as azure-mgmt-core reads it).
            # Only provisioningState counts here; a plain "status" may be a field of the
            # resource.
            self.protocol = PollingProtocol.RESOURCE
            self.polling_url = self._accept(with_api_version(self.initial_url, self.api_version))
        elif code == 202 or (raw_status is not None and self.options.vocabulary.knows(raw_status)):
            # A body that says, in words the vocabulary knows, that work goes on, with no
            # URL to follow it, cannot be completed honestly.
            raise NothingToPollError(
                f"HTTP {code} start response to {self.method} gives no way to poll the operation"
                " (no Operation-Location, Azure-AsyncOperation or Location header)",
                response=view.raw,
            )
        else:
            # The status code alone: 200/201/204 without polling headers means done.
            update = StatusUpdate(_S.SUCCEEDED, raw_status, retry_after=hint)
            self.status = update
            self._finish(_S.SUCCEEDED, document, None, document)
            return self._decide(Action.DONE, None, hint, previous, update)
        update = self._update(body_state or _S.RUNNING, raw_status, document, hint)
        self._ensure_running()
        return self._decide(Action.POLL, self.polling_url, hint, previous, update)

    def _start_document(self, view: ResponseView) -> Any:
        if not view.body:
            return None
        try:
            return decode_json(view.body)
        except msgspec.DecodeError:
            if view.status_code in (202, 204):
                return None  # the body of an "accepted" answer carries nothing we need
            raise MalformedBodyError(
                f"the start response (HTTP {view.status_code}) has a body that is not JSON",
                response=view.raw,
            ) from None

    # -- polling ---------------------------------------------------------------------------

    def _receive_poll(self, view: ResponseView) -> Decision:
        code = view.status_code
        previous = self.state
        hint = parse_retry_after(view.headers)
        if code in TRANSIENT_STATUS_CODES:
            return self._decide(_RETRY, self.polling_url, hint, previous, None)
        protocol = self.protocol
        if protocol is _LOCATION:
            return self._receive_location_poll(view, hint, previous)
        if not 200 <= code < 300:
            self._reject(view, "status poll")
        if protocol is _RESOURCE and code == 204:
            # Checked before parsing: a 204 has no body to parse.
            self.attempt += 1
            return self._complete(
                _SUCCEEDED,
                raw_status=None,
                document=None,
                payload=None,
                hint=hint,
                previous=previous,
            )
        if protocol is _RESOURCE and not view.body:
            # An honest answer, not a garbled one (a monitor's empty body counts as garbled,
            # see docs/protocols.md): there is no resource to read a provisioningState from.
            raise MissingStatusError(
                f"the resource answered HTTP {code} with an empty body",
                response=view.raw,
                rehydration_token=self._token_or_none(),
            )
        document = self._poll_document(view)
        if protocol is _RESOURCE:
            raw_status = self._status_string(document, (_RESOURCE_PATH,))
            # An ARM resource without provisioningState has finished provisioning.
            state = _SUCCEEDED if raw_status is None else self.options.vocabulary(raw_status)
        else:
            raw_status = self._status_string(document, (_MONITOR_PATH,))
            if raw_status is None:
                raise MissingStatusError(
                    "the status monitor response has no readable status",
                    response=view.raw,
                    rehydration_token=self._token_or_none(),
                )
            state = self.options.vocabulary(raw_status)
        self.attempt += 1
        update = self._update(state, raw_status, document, hint)
        if not state.is_terminal:
            self._ensure_running()
            return self._decide(_POLL, self.polling_url, hint, previous, update)
        if state is not _SUCCEEDED:
            self._finish(state, None, update.error, document)
            return self._decide(_DONE, None, hint, previous, update)
        if protocol is _RESOURCE:
            self._finish(_SUCCEEDED, document, None, document)
            return self._decide(_DONE, None, hint, previous, update)
        return self._after_monitor_succeeded(document, update, hint, previous)

    def _receive_location_poll(
        self, view: ResponseView, hint: float | None, previous: OperationState
    ) -> Decision:
        # ARM's Location rules: the status code decides the outcome, the body is the result.
        code = view.status_code
        if code < 200 or 300 <= code < 400 or (code >= 400 and previous is _SUCCEEDED):
            # Not an outcome: an informational or redirect answer, or an error while
            # re-reading a restored result (which cannot fail now).
            self._reject(view, "status poll")
        if code >= 400:
            # The Location URL reports a failed operation by an HTTP error (the transient
            # codes were taken as retries before this).
            document = self._lenient_json(view.body)
            self.attempt += 1
            return self._complete(
                _FAILED,
                raw_status=None,
                document=document,
                payload=None,
                hint=hint,
                previous=previous,
            )
        if code not in _DONE_CODES:
            moved = view.headers.get("location")
            if moved:
                # A new Location on a 202 moves the operation: the old URL is never polled
                # again, and tokens written from now on carry the new one.
                url = self._accept(self._service_url(view.url or self.polling_url or "", moved))
                self.polling_url = self.location_url = url
            self.attempt += 1
            update = StatusUpdate(_S.RUNNING, None, retry_after=hint)
            self.status = update
            self._ensure_running()
            return self._decide(Action.POLL, self.polling_url, hint, previous, update)
        document = self._poll_document(view) if view.body else None
        self.attempt += 1  # counted only once the response proved usable
        # Whatever the body says (even provisioningState "Failed"): it is the result.
        return self._complete(
            _S.SUCCEEDED,
            raw_status=None,
            document=document,
            payload=document,
            hint=hint,
            previous=previous,
        )

    def _after_monitor_succeeded(
        self, document: Any, update: StatusUpdate, hint: float | None, previous: OperationState
    ) -> Decision:
        via = self.options.final_state_via
        method = self.method
        result = extract(document, ("result",))
        url: str | None = None
        # final-state-via: "location" only when there is a Location URL (as azure-core);
        # "azure-async-operation" for every method, the monitor's whole final answer (as
        # ARM's rule reads); "operation-location" only for POST, the monitor's ``result``
        # (Azure.Core's rule). Anything else falls back to the defaults.
        if via is FinalStateVia.LOCATION and self.location_url is not None:
            url = self.location_url
        elif via is FinalStateVia.AZURE_ASYNC_OPERATION:
            # The monitor's final answer is the result itself, whatever the method.
            self._finish(_S.SUCCEEDED, document, None, document)
            return self._decide(Action.DONE, None, hint, previous, update)
        elif via is FinalStateVia.OPERATION_LOCATION and method == "POST":
            url = None
        elif via is FinalStateVia.ORIGINAL_URI:
            url = self.initial_url
        elif update.resource_location:
            url = resolve(self.polling_url or self.initial_url, update.resource_location)
        elif method in ("PUT", "PATCH"):
            url = self.initial_url
        elif method != "DELETE":
            url = self.location_url
        if url is None:
            # The monitor itself is final: its ``result`` (or nothing, for DELETE).
            self._finish(_S.SUCCEEDED, None if method == "DELETE" else result, None, document)
            return self._decide(Action.DONE, None, hint, previous, update)
        self.final_url = self._accept(with_api_version(url, self.api_version))
        self.next_action = Action.FETCH_FINAL
        self._ensure_running()
        return self._decide(Action.FETCH_FINAL, self.final_url, None, previous, update)

    # -- final resource ----------------------------------------------------------------------

    def _receive_final(self, view: ResponseView) -> Decision:
        previous = self.state
        hint = parse_retry_after(view.headers)
        if view.status_code in TRANSIENT_STATUS_CODES:
            return self._decide(Action.RETRY, self.final_url, hint, previous, None)
        if not 200 <= view.status_code < 300:
            self._reject(view, "final resource request")
        document = self._poll_document(view) if view.body else None
        if self.state is _S.SUCCEEDED:  # re-reading the result of a restored operation
            self.payload, self.has_payload = document, True
            self.final_document = document
            self.next_action = Action.DONE
            return self._decide(Action.DONE, None, hint, previous, self.status)
        status = self.status or StatusUpdate(_S.SUCCEEDED)
        self._finish(_S.SUCCEEDED, document, None, document)
        return self._decide(Action.DONE, None, hint, previous, status)

    # -- helpers ---------------------------------------------------------------------------

    def _complete(
        self,
        state: OperationState,
        *,
        raw_status: str | None,
        document: Any,
        payload: Any,
        hint: float | None,
        previous: OperationState,
    ) -> Decision:
        update = self._update(state, raw_status, document, hint)
        self._finish(state, payload, update.error, document)
        return self._decide(Action.DONE, None, hint, previous, update)

    def _update(
        self, state: OperationState, raw_status: str | None, document: Any, hint: float | None
    ) -> StatusUpdate:
        percent = resource_location = error = None
        if isinstance(document, dict):
            value = document.get("percentComplete")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                percent = float(value)
            location = document.get("resourceLocation")
            if isinstance(location, str) and location:
                resource_location = location
            if state is _FAILED or state is _CANCELED:
                error = parse_service_error(document)
        update = StatusUpdate(state, raw_status, percent, error, resource_location, hint)
        self.status = update
        return update

    def _ensure_running(self) -> None:
        if self.state is _NOT_STARTED:
            self.state = next_state(self.state, Trigger.START)
        if self.next_action is None:
            self.next_action = _POLL

    def _finish(
        self, state: OperationState, payload: Any, error: ServiceError | None, document: Any
    ) -> None:
        # ``document``: the whole JSON of the answer that ended the operation (the value's
        # decoder may read more of it than ``payload``).
        self.final_document = document
        if self.state is not state:
            self.state = next_state(self.state, _TRIGGER_FOR[state])
        self.next_action = Action.DONE
        self.error = error
        if state is _S.SUCCEEDED:
            self.payload, self.has_payload = payload, True

    def _decide(
        self,
        action: Action,
        url: str | None,
        hint: float | None,
        previous: OperationState,
        status: StatusUpdate | None,
    ) -> Decision:
        if action is _POLL:
            self.next_action = _POLL
        return Decision(action, url, hint, previous, self.state, status)

    def _status_string(self, document: Any, paths: tuple[tuple[str, ...], ...]) -> str | None:
        if self.options.status_path is not None:
            paths = (self.options.status_path,)
        for path in paths:
            value = extract(document, path)
            if isinstance(value, str) and value:
                return value
        return None

    def _poll_document(self, view: ResponseView) -> Any:
        try:
            return decode_json(view.body)
        except msgspec.DecodeError:
            raise MalformedBodyError(
                f"the response from {self.token_policy.redact_text(view.url or 'the service')}"
                " is not valid JSON",
                response=view.raw,
                rehydration_token=self._token_or_none(),
            ) from None

    def cancel_report(self, view: ResponseView) -> tuple[Any, str | None]:
        """Read the answer to a service-side cancel request, changing nothing.

        Returns its JSON document (None when the body is empty or not JSON) and the status
        string it reports, found where a poll's would be (``options.status_path``, else
        ``status`` or ``properties.provisioningState``), or None.
        """
        document = self._lenient_json(view.body)
        return document, self._status_string(document, (_MONITOR_PATH, _RESOURCE_PATH))

    @staticmethod
    def _lenient_json(body: bytes) -> Any:
        try:
            return decode_json(body) if body else None
        except msgspec.DecodeError:
            return None

    def _reject(self, view: ResponseView, what: str) -> None:
        raise PollRejectedError(
            f"the service rejected the {what} with HTTP {view.status_code}",
            status_code=view.status_code,
            response=view.raw,
            service_error=parse_service_error(self._lenient_json(view.body)),
            rehydration_token=self._token_or_none(),
        )

    def _service_url(self, base: str, reference: str) -> str:
        # A URL from a response header: resolved, and carrying the start request's api-version.
        # Services mostly send absolute URLs, which urljoin (microseconds) returns unchanged
        # when they hold nothing it would normalise (see _PLAIN_ABSOLUTE).
        if _PLAIN_ABSOLUTE.fullmatch(reference):
            return with_api_version(reference, self.api_version)
        return with_api_version(resolve(base, encode_unsafe(reference)), self.api_version)

    def _accept(self, url: str) -> str:
        """``url`` if the operation may request it.

        Raises:
            UntrustedOriginError: outside the trusted origins.
        """
        if self.origin_policy is not None:
            self.origin_policy.check(url)
        return url

    # -- tokens ----------------------------------------------------------------------------

    def snapshot(self, *, start_operation_id: str | None = None) -> TokenV2:
        """The token fields describing this operation now.

        With an origin policy, URLs on the endpoint's origin are written as ``/path?query``
        and the origin once, as ``origin`` (user info never). Values of the token policy's
        secret query parameters are removed and the token marked ``redacted``.
        ``start_operation_id`` is the ``Operation-Id`` header of a start request not sent
        yet (the driver knows it); it is kept only while the operation waits for its start
        response, to make restoring such a token safe.
        """
        # Written out for each URL rather than looped over: this runs for every token.
        without_secrets = self.token_policy._redacted
        redacted = False
        initial_url = self.initial_url
        if (written := without_secrets(initial_url)) is not None:
            initial_url, redacted = written, True
        polling_url = self.polling_url
        if polling_url is not None and (written := without_secrets(polling_url)) is not None:
            polling_url, redacted = written, True
        location_url = self.location_url
        if location_url is not None and (written := without_secrets(location_url)) is not None:
            location_url, redacted = written, True
        final_url = self.final_url
        if final_url is not None and (written := without_secrets(final_url)) is not None:
            final_url, redacted = written, True
        origin: str | None = None
        origins = self.origin_policy
        if origins is not None:
            shorten = origins.shorten
            if (short := shorten(initial_url)) is not None:
                initial_url, origin = short, origins.origin_url
            if polling_url is not None and (short := shorten(polling_url)) is not None:
                polling_url, origin = short, origins.origin_url
            if location_url is not None and (short := shorten(location_url)) is not None:
                location_url, origin = short, origins.origin_url
            if final_url is not None and (short := shorten(final_url)) is not None:
                final_url, origin = short, origins.origin_url
        if self.initial_url is not self._versioned_url:  # assigned since: read it again
            self._url_api_version = api_version_of(self.initial_url)
            self._versioned_url = self.initial_url
        api_version = self.api_version
        action = self.next_action
        via = self.options.final_state_via
        # Positional, in the Struct's field order (keywords cost five times as much).
        return TokenV2(
            _STATE_NAMES[self.state],
            _PROTOCOL_NAMES[self.protocol],
            self.method,
            initial_url,
            _PENDING[action],
            # Milliseconds; int(x + 0.5) is round() for the positive times here, and cheaper.
            int(self.created_at * 1000 + 0.5) / 1000,
            origin,
            polling_url,
            location_url,
            final_url,
            # Written only when the initial URL's query does not already say it.
            None if api_version == self._url_api_version else api_version,
            None if via is None else _VIA_NAMES[via],
            min(self.attempt, MAX_COUNT),  # saturates: the reader's bound
            self._operation_id or self.operation_id,
            None if action is not None else start_operation_id,
            self.kind,
            redacted,
        )

    def token(self, *, start_operation_id: str | None = None) -> RehydrationToken:
        """This operation's rehydration token, signed when the token policy has a signer.

        Raises:
            InvalidTokenError: a URL of the operation is longer than a token holds (2,048
                characters as stored): such an operation is followed, but cannot be
                resumed from a token, and no token the reader would refuse is written.
        """
        fields = self.snapshot(start_operation_id=start_operation_id)
        for name in ("initial_url", "polling_url", "location_url", "final_url"):
            url = getattr(fields, name)
            if url is not None and len(url) > MAX_URL_LENGTH:
                raise InvalidTokenError(
                    f"no token can be written for this operation: its {name} has {len(url)}"
                    f" characters, more than the {MAX_URL_LENGTH} a token holds; it can be"
                    " followed, but not resumed from a token"
                )
        return RehydrationToken._written(fields, self.token_policy.signer)

    def _token_or_none(self) -> str | None:
        if self.next_action is None:
            return None
        try:
            return str(self.token())
        except InvalidTokenError:
            return None  # a URL longer than tokens hold: no token for this operation

    @classmethod
    def restore(
        cls,
        token: RehydrationToken,
        *,
        options: ProtocolOptions | None = None,
        origin_policy: OriginPolicy | None = None,
        kind: str | None = None,
        token_policy: TokenPolicy | None = None,
    ) -> OperationCore:
        """Rebuild a core from a token without any request and without firing hooks.

        The checks, in order: the signature (when ``token_policy`` has a signer and the
        token was not verified with it yet), the redaction mark, the kind, the values and
        their consistency, and every URL: a ``/path?query`` one is resolved against
        ``origin_policy``'s endpoint, and each must pass ``origin_policy``.

        A ``NotStarted`` token (its start request may or may not have reached the service)
        is restored only when repeating the start is safe: PUT or DELETE, or a start that
        carries an ``Operation-Id``. The restored core then waits for a start response,
        like a new one; the driver must send the start request again.

        Raises:
            InvalidTokenError: unsigned or altered (with a signer), redacted, inconsistent,
                meant for another kind of operation, or not restorable.
            TokenOriginError: a URL in the token is outside ``origin_policy`` (also an
                :class:`~lrokit.UntrustedOriginError`).
        """
        return cls._restore(
            token, options, origin_policy, kind, token_policy or DEFAULT_TOKEN_POLICY
        )

    @classmethod
    def _restore(
        cls,
        token: RehydrationToken,
        options: ProtocolOptions | None,
        origin_policy: OriginPolicy | None,
        kind: str | None,
        policy: TokenPolicy,
    ) -> OperationCore:
        # restore() with positional arguments, for drivers (keywords cost a fifth of it).
        if policy.signer is not None:
            token.verify(policy.signer)
        fields = token.fields
        if fields.redacted:
            raise InvalidTokenError(
                "token was written without the credentials in its URLs' query (secret query"
                " parameters such as a SAS 'sig' were removed), so it cannot poll; see"
                " TokenPolicy(secret_query_parameters=...) to keep them"
            )
        token_kind = fields.kind
        if kind is not None and token_kind is not None and token_kind != kind:
            # The token's own kind is not shown: messages never echo token content.
            raise InvalidTokenError(
                f"token's kind field names another operation class, not {kind!r}"
            )
        # Dictionary lookups rather than Enum(value), and members bound to module names
        # rather than read from their Enum classes: restoring is on the hot path of workers
        # that resume many operations, and a fields object may have been built by hand.
        state = _STATES.get(fields.state)
        protocol = _PROTOCOLS.get(fields.protocol)
        pending = _PENDING_ACTIONS.get(fields.pending, _UNKNOWN)
        via_name = fields.final_state_via
        via = None if via_name is None else _VIAS.get(via_name)
        if (
            state is None
            or protocol is None
            or pending is _UNKNOWN
            or (via is None and via_name is not None)
        ):
            raise InvalidTokenError("token has a value that is not allowed")
        if fields.attempt < 0:
            raise InvalidTokenError("token has a negative attempt count")
        not_started = state is _NOT_STARTED
        if not_started is not (pending is None):
            raise InvalidTokenError("token's state and pending request contradict each other")
        if not_started and not (
            fields.method in IDEMPOTENT_METHODS or fields.start_operation_id is not None
        ):
            raise InvalidTokenError(
                "token of an operation whose start response never came has no URL to poll, and"
                f" repeating its {fields.method} start is not known to be safe (only PUT, DELETE"
                " or a start with an Operation-Id header is)"
            )
        base = fields.origin
        if base is not None and (origin_policy is None or base != origin_policy.origin_url):
            # Not this client's own endpoint origin: its form and trust, once for every URL.
            if ORIGIN_FORM.fullmatch(base) is None:
                raise InvalidTokenError("token's origin is not of the form scheme://host[:port]")
            if origin_policy is not None and not origin_policy.trusts(base + "/"):
                raise TokenOriginError(base + "/", origin_policy.origins, "origin")
        initial_ref = fields.initial_url
        polling_ref = fields.polling_url
        if (
            base is not None
            and polling_ref is not None
            and initial_ref[:1] == "/" != initial_ref[1:2]
            and polling_ref[:1] == "/" != polling_ref[1:2]
            and (both := initial_ref + polling_ref).isprintable()
            and " " not in both
            and "\\" not in both
        ):
            # The usual token: both URLs are paths on its origin, checked as _token_url
            # would check each (see there), in one pass.
            initial_url, polling_url = base + initial_ref, base + polling_ref
        else:
            initial_url = _token_url(initial_ref, "initial_url", base, origin_policy)
            polling_url = None
            if polling_ref is not None:
                polling_url = _token_url(polling_ref, "polling_url", base, origin_policy)
        location_url = final_url = None
        if fields.location_url is not None:
            location_url = _token_url(fields.location_url, "location_url", base, origin_policy)
        if fields.final_url is not None:
            final_url = _token_url(fields.final_url, "final_url", base, origin_policy)
        if options is None:
            options = ProtocolOptions(final_state_via=via) if via else DEFAULT_OPTIONS
        api_version = fields.api_version
        if api_version is None:  # not written: the initial URL's (its query is in the token)
            api_version = api_version_of(fields.initial_url)
        if cls.__init__ is OperationCore.__init__:
            # Every slot set here as __init__ sets it, without a call with eight keywords
            # (three times as long); a test checks that restored cores have every slot.
            core = cls.__new__(cls)
            # Upper-case as __init__ makes it (fields may be hand-made); a read token's is.
            method = fields.method
            core.method = method if method.isupper() else method.upper()
            core.initial_url = initial_url
            core.options = options
            core.origin_policy = origin_policy
            core.token_policy = policy
            core.status = core.error = core.payload = core.final_document = None
            core.has_payload = False
            # The initial URL's api-version, when the token left it out (else read it when
            # a token is next written).
            core._url_api_version = api_version
            core._versioned_url = initial_url if fields.api_version is None else None
        else:  # a subclass's own __init__ runs
            core = cls(
                fields.method,
                initial_url,
                options=options,
                origin_policy=origin_policy,
                token_policy=policy,
            )
        core._operation_id = fields.operation_id
        core.kind = token_kind
        core.created_at = fields.created_at
        core.api_version = api_version
        core.attempt = fields.attempt
        if not_started:  # waits for the start response, like a new core
            core.state = INITIAL_STATE
            core.protocol = _NO_PROTOCOL
            core.next_action = core.polling_url = core.location_url = core.final_url = None
            return core
        core.state = state
        core.protocol = protocol
        core.polling_url = polling_url
        core.location_url = location_url
        core.final_url = final_url
        if state is _SUCCEEDED:
            # Bodies never travel in tokens: re-read the result when it is asked for, from
            # the final URL, else the resource itself (PUT/PATCH), else the monitor again.
            if core.method == "DELETE":
                core.has_payload, pending = True, _DONE  # a DELETE's result is None
            elif final_url:
                pending = _FETCH_FINAL
            elif core.options.final_state_via is _VIA_MONITOR and polling_url:
                pending = _POLL  # the monitor's final answer is the result: ask it again
            elif core.method in ("PUT", "PATCH"):
                core.final_url = core._accept(with_api_version(core.initial_url, core.api_version))
                pending = _FETCH_FINAL
            elif polling_url:
                pending = _POLL
            else:
                pending = _DONE  # the result came with the start response; it is gone
        elif state in TERMINAL_STATES:
            pending = _DONE
        elif pending is _DONE:
            raise InvalidTokenError("token of a running operation has nothing to poll")
        core.next_action = pending
        if (
            pending is not _DONE
            and (core.final_url if pending is _FETCH_FINAL else polling_url) is None
        ):
            raise InvalidTokenError("token of a running operation has no URL to poll")
        return core

    def __repr__(self) -> str:
        return (
            f"<OperationCore {self.method} {self.token_policy.redact_text(self.initial_url)}"
            f" state={self.state.value}"
            f" protocol={self.protocol.value} next={self.next_action and self.next_action.value}>"
        )


#: The token's ``pending`` for each next action (a retry repeats the poll; None: the start).
_PENDING: dict[Action | None, Pending] = {
    None: "start",
    Action.POLL: "poll",
    Action.RETRY: "poll",
    Action.FETCH_FINAL: "fetch-final",
    Action.DONE: "done",
}


_STATES = {state.value: state for state in OperationState}
_STATE_NAMES: dict[OperationState, TokenState] = {state: state.value for state in OperationState}
_PROTOCOL_NAMES: dict[PollingProtocol, TokenProtocol] = {p: p.value for p in PollingProtocol}
_PROTOCOLS = {protocol.value: protocol for protocol in PollingProtocol}
_VIAS = {via.value: via for via in FinalStateVia}
_VIA_NAMES: dict[FinalStateVia, TokenVia] = {via: via.value for via in FinalStateVia}
_UNKNOWN: Any = object()
_VIA_MONITOR = FinalStateVia.AZURE_ASYNC_OPERATION
_PENDING_ACTIONS: dict[str, Action | None] = {
    "start": None,
    "poll": Action.POLL,
    "retry": Action.POLL,
    "fetch-final": Action.FETCH_FINAL,
    "done": Action.DONE,
}


def _token_url(reference: str, field: str, base: str | None, policy: OriginPolicy | None) -> str:
    """The absolute URL of a token's URL field, checked against ``policy``.

    A ``/path?query`` reference is relative to the token's ``origin`` (``base``): the URL
    goes where it went for the client that wrote the token, and only if this client trusts
    that origin too.
    """
    if reference.startswith("/") and not reference.startswith("//"):
        if base is None:
            raise InvalidTokenError(f"token's {field} is relative, but the token has no origin")
        # The origin (already checked) ends the authority and the reference starts with one
        # "/": only characters that URL parsers read differently are left to refuse.
        if not reference.isprintable() or " " in reference or "\\" in reference:
            raise InvalidTokenError(f"token's {field} holds spaces, control characters or '\\'")
        return base + reference
    if not reference[:8].lower().startswith(("http://", "https://")):
        raise InvalidTokenError(f"token's {field} is not an http(s) URL")
    if policy is not None and not policy.trusts(reference):
        raise TokenOriginError(reference, policy.origins, field)
    return reference
