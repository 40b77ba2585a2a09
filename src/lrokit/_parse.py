"""Turning HTTP responses into typed facts: no I/O, no state, no clocks of its own.

Status strings from services are normalised here, exactly once, into :class:`OperationState`
through a :class:`StatusVocabulary`; nothing after this module compares status strings.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ._state import OperationState

__all__ = [
    "DEFAULT_VOCABULARY",
    "ResponseView",
    "ServiceError",
    "StatusUpdate",
    "StatusVocabulary",
    "decode_json",
    "extract",
    "parse_retry_after",
    "parse_service_error",
]

#: The upper bound for a server's polling hint; a larger value is treated as garbage.
MAX_SERVER_HINT_SECONDS = 24 * 3600.0

_log = logging.getLogger(__name__)


class ResponseView(msgspec.Struct, frozen=True):
    """The part of an HTTP response that lrokit's core reads.

    Attributes:
        status_code: the HTTP status code.
        headers: a mapping whose ``get`` answers lower-case header names (a dict with
            lower-case keys, or a case-insensitive mapping such as ``requests``' headers).
        body: the raw body bytes (``b""`` for none).
        url: the URL of the request that produced the response (relative URLs in headers
            are resolved against it).
        raw: the transport's own response object, attached to errors for diagnosis.
    """

    status_code: int
    headers: Mapping[str, str]
    body: bytes = b""
    url: str = ""
    raw: Any = None

    @classmethod
    def build(
        cls,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        url: str = "",
        raw: Any = None,
    ) -> ResponseView:
        """Build a view from plain values, lower-casing header names and encoding a str body."""
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        data = body.encode() if isinstance(body, str) else (body or b"")
        return cls(status_code, lowered, data, url, raw)


class ServiceError(msgspec.Struct, frozen=True):
    """The ``error`` object a service reports with a failed operation or a rejected request."""

    code: str | None = None
    message: str | None = None
    target: str | None = None
    details: tuple[ServiceError, ...] = ()
    innererror: Any = None

    def __str__(self) -> str:
        parts = [p for p in (self.code, self.message) if p]
        return ": ".join(parts) if parts else "(no error details)"


class StatusUpdate(msgspec.Struct, frozen=True):
    """One parsed status report.

    Attributes:
        state: the normalised state the service reports.
        raw_status: the status string exactly as the service sent it, or None.
        percent_complete: progress the service reports (0-100), or None.
        error: the parsed service error, for failures.
        resource_location: the monitor's ``resourceLocation``, or None.
        retry_after: the server's polling hint in seconds, or None.
    """

    state: OperationState
    raw_status: str | None = None
    percent_complete: float | None = None
    error: ServiceError | None = None
    resource_location: str | None = None
    retry_after: float | None = None


class StatusVocabulary:
    """Maps a service's status strings, case-insensitively, to :class:`OperationState`.

    Strings that are not in the map mean ``default`` (``RUNNING``: any unknown status is
    treated as "not finished yet", as the Azure guidelines require). Pass ``extra`` to add or
    override words, for example ``StatusVocabulary({"done": OperationState.SUCCEEDED})``.
    """

    __slots__ = ("_map", "default")

    def __init__(
        self,
        extra: Mapping[str, OperationState] | None = None,
        *,
        include_defaults: bool = True,
        default: OperationState = OperationState.RUNNING,
    ) -> None:
        base: dict[str, OperationState] = dict(_DEFAULT_WORDS) if include_defaults else {}
        for word, state in (extra or {}).items():
            base[word.lower()] = OperationState(state)
        self._map = base
        self.default = default

    def __call__(self, raw: str) -> OperationState:
        """Return the state that ``raw`` means."""
        return self._map.get(raw.lower(), self.default)

    def knows(self, raw: str) -> bool:
        """Whether ``raw`` is one of the vocabulary's words (rather than mapped by default)."""
        return raw.lower() in self._map

    def __repr__(self) -> str:
        return f"StatusVocabulary({self._map!r}, default={self.default!r})"


_DEFAULT_WORDS: dict[str, OperationState] = {
    "notstarted": OperationState.NOT_STARTED,
    "running": OperationState.RUNNING,
    # ARM's non-terminal provisioning states and the Azure.Core spelling of "running".
    "inprogress": OperationState.RUNNING,
    "accepted": OperationState.RUNNING,
    "creating": OperationState.RUNNING,
    "updating": OperationState.RUNNING,
    "deleting": OperationState.RUNNING,
    "provisioning": OperationState.RUNNING,
    "succeeded": OperationState.SUCCEEDED,
    "failed": OperationState.FAILED,
    "canceled": OperationState.CANCELED,
    "cancelled": OperationState.CANCELED,
}

#: The vocabulary of the Microsoft REST API guidelines and ARM's provisioningState.
DEFAULT_VOCABULARY = StatusVocabulary()

_decoder = msgspec.json.Decoder()


def decode_json(body: bytes) -> Any:
    """Decode a JSON body; raises ``msgspec.DecodeError`` on any malformed input.

    msgspec before 0.23 raises ``UnicodeDecodeError`` for bad UTF-8 in a string, and every
    release raises ``RecursionError`` for nesting deeper than it follows (about 1000 levels);
    both are malformed bodies here,
    so one ``except msgspec.DecodeError`` in each caller covers every hostile answer.
    """
    try:
        return _decoder.decode(body)
    except (UnicodeDecodeError, RecursionError) as error:
        raise msgspec.DecodeError(f"JSON is malformed: {error}") from None


def extract(document: Any, path: Sequence[str]) -> Any:
    """Follow ``path`` (a sequence of keys) into nested objects; None where it breaks off."""
    node = document
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def parse_service_error(document: Any) -> ServiceError | None:
    """Read the ``error`` object of a JSON document (or a bare error object), leniently."""
    if not isinstance(document, dict):
        return None
    node = document.get("error", document if "code" in document else None)
    if not isinstance(node, dict):
        return None
    return _to_service_error(node, depth=0)


def _to_service_error(node: dict[str, Any], depth: int) -> ServiceError:
    raw_details = node.get("details")
    details: tuple[ServiceError, ...] = ()
    if depth < 8 and isinstance(raw_details, list):
        details = tuple(_to_service_error(d, depth + 1) for d in raw_details if isinstance(d, dict))
    return ServiceError(
        code=_str_or_none(node.get("code")),
        message=_str_or_none(node.get("message")),
        target=_str_or_none(node.get("target")),
        details=details,
        innererror=node.get("innererror"),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's polling hint in seconds, or None when absent or unusable.

    Reads ``retry-after-ms`` and ``x-ms-retry-after-ms`` (milliseconds) first, then
    ``Retry-After`` as (fractional) seconds or an HTTP-date, which is measured against ``now``
    (seconds since the epoch; the wall clock when None, read only for a date, since most
    answers carry no date and this runs once per response). Negative, non-finite,
    unparseable or absurd (over a day) values count as absent, each with a WARNING record on
    the ``lrokit._parse`` logger; they never raise.
    """
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = headers.get(name)
        if raw is not None:
            seconds = _number(raw)
            sane = None if seconds is None else _sane(seconds / 1000.0)
            if sane is not None:  # an unusable value counts as absent: try the next header
                return sane
            _ignored(name, raw)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            when = None
        if when is None or when.tzinfo is None:
            _ignored("retry-after", raw)
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    sane = _sane(seconds)
    if sane is None:
        _ignored("retry-after", raw)
    return sane


def _ignored(name: str, raw: str) -> None:
    # %r and a length limit: the value comes from the network and goes into someone's logs.
    _log.warning("ignoring unusable %s header value %r", name, raw[:64])


def _number(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _sane(seconds: float) -> float | None:
    return seconds if 0.0 <= seconds <= MAX_SERVER_HINT_SECONDS else None
