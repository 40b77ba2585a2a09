"""The sync transport context an operation polls through: session, endpoint, trust, timing."""

from __future__ import annotations

import contextvars
import functools
import http.client
import io
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import urljoin

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._delay import DEFAULT_POLICY, PollingPolicy
from ._exceptions import BodyTooLargeError
from ._parse import ResponseView
from ._token import DEFAULT_TOKEN_POLICY, TokenPolicy
from ._urls import OriginPolicy

__all__ = [
    "DEFAULT_MAX_STATUS_BODY_BYTES",
    "DEFAULT_MAX_VALUE_BODY_BYTES",
    "DEFAULT_REQUEST_TIMEOUT",
    "STOP_AT",
    "BasePipeline",
    "BodyCap",
    "CappedBody",
    "Clock",
    "Pipeline",
    "Sleeper",
    "SupportsPipeline",
    "UnreadableBodyError",
    "default_sleep",
]

#: The default bound on one whole request (seconds): connect, headers and body.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: The default cap on a status answer's decoded body (a status monitor's poll answer).
DEFAULT_MAX_STATUS_BODY_BYTES = 4 * 2**20
#: The default cap on a body that may hold the operation's value (start answers, Location
#: and resource polls, the final GET).
DEFAULT_MAX_VALUE_BODY_BYTES = 64 * 2**20
#: Bodies are read (and decoded) this many bytes at a time.
_CHUNK = 64 * 1024
#: Content-Encodings that lrokit decodes itself, within the cap, whatever urllib3 or httpx do.
_DECODED_HERE = frozenset({"gzip", "x-gzip", "deflate"})
_AS_IS = frozenset({"", "identity"})


class BodyCap(NamedTuple):
    """The cap on one answer's decoded body: ``limit`` bytes, set by the pipeline's
    ``setting`` (named in :class:`~lrokit.BodyTooLargeError`)."""

    limit: int
    setting: str


class UnreadableBodyError(ValueError):
    """A compressed body that does not decode (the drivers treat it as a transport fault)."""


class CappedBody:
    """The decoded bytes of one body, fed chunk by chunk and held only up to a cap.

    gzip and deflate are decoded here, at most a chunk at a time (``zlib``'s
    ``max_length``), so a small compressed "bomb" never expands in memory past the cap;
    any other encoding arrives decoded by the HTTP library. Shared by both pipelines.

    Raises (from :meth:`feed` and :meth:`finish`):
        BodyTooLargeError: more than ``cap.limit`` decoded bytes.
        UnreadableBodyError: a compressed body that does not decode.
    """

    __slots__ = ("_buffer", "_decoder", "_encoding", "_fed", "cap", "size", "url")

    def __init__(self, encoding: str, cap: BodyCap, url: str, length: str | None = None) -> None:
        if encoding in _AS_IS:
            encoding = ""
        self.cap = cap
        self.url = url
        self.size = 0
        expected = int(length) if length and length.isdigit() and len(length) < 20 else None
        if expected is not None and not encoding and expected > cap.limit:
            raise self.too_large(cap)  # a Content-Length over the cap: refused unread
        # A body of known length is held in a buffer of exactly that size (a growing one
        # may over-allocate by an eighth); BytesIO shares the zeros until written.
        sized = expected is not None and not encoding
        self._buffer = io.BytesIO(bytes(expected or 0)) if sized else io.BytesIO()
        self._encoding = encoding
        self._fed = False
        self._decoder: Any = self._new_decoder(encoding) if encoding in _DECODED_HERE else None

    @staticmethod
    def _new_decoder(encoding: str) -> Any:
        # 32 + 15: a gzip or zlib header, detected; raw deflate is tried on the first error.
        return zlib.decompressobj(32 + zlib.MAX_WBITS)

    @staticmethod
    def too_large(cap: BodyCap) -> BodyTooLargeError:
        """The error for a body over ``cap``."""
        return BodyTooLargeError(
            f"the answer's body is larger than {cap.limit} bytes (the pipeline's"
            f" {cap.setting}); it was not read further",
            limit=cap.limit,
            setting=cap.setting,
        )

    @staticmethod
    def decodes(encoding: str) -> bool:
        """Whether a body of this Content-Encoding is fed as it came (lrokit decodes it)."""
        return encoding in _DECODED_HERE or encoding in _AS_IS

    def feed(self, data: bytes) -> None:
        """Add one chunk of the body as it came over the wire."""
        if self._decoder is None:
            self._keep(data)
            return
        try:
            self._inflate(data)
        except zlib.error:
            if self._fed or self._encoding != "deflate" or self.size:
                raise UnreadableBodyError(f"the {self._encoding} body does not decode") from None
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no header
            try:
                self._inflate(data)
            except zlib.error:
                raise UnreadableBodyError("the deflate body does not decode") from None
        self._fed = True

    def _inflate(self, data: bytes) -> None:
        decoder = self._decoder
        while data:
            room = min(self.cap.limit - self.size + 1, _CHUNK)
            self._keep(decoder.decompress(data, room))
            data = decoder.unconsumed_tail
            if decoder.eof and decoder.unused_data:  # another gzip member follows
                data = decoder.unused_data
                decoder = self._decoder = self._new_decoder(self._encoding)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        size = self.size + len(data)
        if size > self.cap.limit:
            raise self.too_large(self.cap)
        self.size = size
        self._buffer.write(data)

    def finish(self) -> bytes:
        """The whole decoded body (no copy of the buffer)."""
        if self._decoder is not None:
            try:
                self._keep(self._decoder.flush())
            except zlib.error:
                raise UnreadableBodyError(f"the {self._encoding} body is truncated") from None
        buffer = self._buffer
        buffer.truncate(self.size)  # a sized buffer holds exactly what was read
        return buffer.getvalue()


# -- a bound on the whole request, for requests ------------------------------------------------

#: The time (``time.monotonic()``) by which the request being sent in this context must
#: have been read completely, or None. Set around one request by :meth:`Pipeline.send`, and
#: by the async pipeline's ``TimeBound`` (its sender checks it between chunks of a body).
STOP_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "lrokit_stop_at", default=None
)


class _TimedReader(io.RawIOBase):
    """A socket reader that gives up at a fixed time: before each ``recv`` the socket's
    timeout is cut to the time left, and none is left after it. A server that trickles its
    headers or body one byte at a time cannot stretch a request past its limit."""

    def __init__(self, raw: Any, sock: Any, stop_at: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._stop_at = stop_at
        self._base = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._stop_at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's time limit has passed")
        base = self._base
        self._sock.settimeout(left if base is None or left < base else base)
        return self._raw.readinto(buffer)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._raw.close()
        super().close()


class _TimedResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading through a :class:`_TimedReader` while a limit
    is set for the request in this context (else exactly the standard one)."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        stop_at = STOP_AT.get()
        if stop_at is not None:
            self.fp.close()
            self.fp = io.BufferedReader(
                _TimedReader(sock.makefile("rb", buffering=0), sock, stop_at)
            )


class _TimedHTTPConnection(HTTPConnection):
    response_class = _TimedResponse


class _TimedHTTPSConnection(HTTPSConnection):
    response_class = _TimedResponse


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTPConnection


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection


_TIMED_POOLS: dict[str, type[HTTPConnectionPool]] = {
    "http": _TimedHTTPPool,
    "https": _TimedHTTPSPool,
}


def _time_requests(session: requests.Session) -> None:
    """Make the session's ``requests`` adapters build connections that honour a request's
    limit (see :class:`_TimedReader`); other adapters, and a session-like object without
    ``adapters`` (a test double), are left alone."""
    adapters: dict[str, Any] = getattr(session, "adapters", {})
    for adapter in adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if (
            isinstance(manager, urllib3.PoolManager)
            and manager.pool_classes_by_scheme is not _TIMED_POOLS
        ):
            manager.clear()
            manager.pool_classes_by_scheme = _TIMED_POOLS


#: A monotonic clock in seconds.
Clock = Callable[[], float]
#: Waits ``seconds`` unless ``cancel`` is set first; returns True when it was cancelled.
Sleeper = Callable[[float, "threading.Event | None"], bool]


def default_sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep in the caller's thread; with an event, wake as soon as it is set."""
    if cancel is not None:
        return cancel.wait(seconds)
    time.sleep(seconds)
    return False


class BasePipeline:
    """The settings a sync :class:`Pipeline` and an ``AsyncPipeline`` share (no I/O).

    Args:
        endpoint: the service's base URL. Its origin (scheme, host, port) is the only one
            requests are sent to, unless ``allowed_origins`` adds more.
        allowed_origins: further URLs whose origins polling may go to.
        headers: headers sent with every request of every operation.
        request_timeout: the bound on each whole request, in seconds: connecting, sending,
            and reading the headers and the whole body (a ``(connect, read)`` pair bounds
            connecting by ``connect`` and all the rest by ``read``); None for no bound. A
            wait's deadline shortens it to the time left. Separate from any wait deadline.
        max_status_body_bytes: the cap on a status answer's body (a status monitor's
            poll answer, a cancel answer), in decoded bytes.
        max_value_body_bytes: the cap on a body that may hold the value (a start answer,
            a Location or resource poll, the final GET), in decoded bytes.
        polling: the default waiting rules.
        tokens: how rehydration tokens are written and read (see :class:`TokenPolicy`).
        clock: a monotonic clock (inject a fake one in tests).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        allowed_origins: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        request_timeout: float | tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
        max_status_body_bytes: int = DEFAULT_MAX_STATUS_BODY_BYTES,
        max_value_body_bytes: int = DEFAULT_MAX_VALUE_BODY_BYTES,
        polling: PollingPolicy = DEFAULT_POLICY,
        tokens: TokenPolicy = DEFAULT_TOKEN_POLICY,
        clock: Clock = time.monotonic,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.origin_policy = OriginPolicy(self.endpoint, allowed_origins)
        # (endpoint, origin policy, whether the policy trusts the endpoint): see _endpoint_url.
        self._endpoint_trust: tuple[str, OriginPolicy, bool] | None = None
        self.tokens = tokens
        self.headers = dict(headers or {})
        self.request_timeout = request_timeout
        if max_status_body_bytes < 1 or max_value_body_bytes < 1:
            raise ValueError("the body caps must be at least 1 byte")
        self.max_status_body_bytes = max_status_body_bytes
        self.max_value_body_bytes = max_value_body_bytes
        #: The caps as the reading code takes them (see :meth:`body_cap`).
        self.status_cap = BodyCap(max_status_body_bytes, "max_status_body_bytes")
        self.value_cap = BodyCap(max_value_body_bytes, "max_value_body_bytes")
        self.polling = polling
        self.clock = clock

    def body_cap(self, *, status: bool) -> BodyCap:
        """The cap on the body of a status answer (``status``) or of one that may hold the
        value."""
        return self.status_cap if status else self.value_cap

    def time_limit(self, deadline: float | None) -> float | None:
        """The seconds one whole request may take now: the ``request_timeout`` (the sum of
        a ``(connect, read)`` pair), cut to the time left before ``deadline`` (on
        :attr:`clock`); None when neither bounds it."""
        configured = self.request_timeout
        if deadline is None and not isinstance(configured, tuple):
            return configured  # every poll without a deadline: kept short
        total = sum(configured) if isinstance(configured, tuple) else configured
        if deadline is None:
            return total
        left = max(deadline - self.clock(), 0.0)
        return left if total is None or left < total else total

    def read_timeout(self, deadline: float | None) -> float | tuple[float, float] | None:
        """The timeout each phase (connect, each read) is given: the ``request_timeout``,
        cut to the time left before ``deadline``."""
        if deadline is None:
            return self.request_timeout
        return within(self.request_timeout, deadline - self.clock())

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` relative to the endpoint."""
        return self._endpoint_url(path)[0]

    def _endpoint_url(self, path: str) -> tuple[str, bool]:
        """:meth:`url`, and whether the URL's origin is trusted by construction.

        urljoin costs microseconds; for a plain relative reference (no scheme, no empty,
        dot or parameter segments, no fragment, whitespace, control characters or
        backslash) against an endpoint that joins by concatenation, its result is the
        concatenation. Such a URL has the endpoint's authority and nothing the origin
        check refuses, so when the endpoint passes the check, the URL does too.
        """
        relative = path.lstrip("/")
        endpoint = self.endpoint
        if _PLAIN_REFERENCE.fullmatch(relative) and _joins_plainly(endpoint):
            policy = self.origin_policy
            known = self._endpoint_trust
            if known is None or known[0] is not endpoint or known[1] is not policy:
                known = self._endpoint_trust = (endpoint, policy, policy.trusts(endpoint))
            return endpoint + relative, known[2]
        return urljoin(endpoint, relative), False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"


#: A relative reference that ``urljoin`` appends to a plain base unchanged: segments that are
#: not empty, do not start with a dot and hold no ``:`` ``;`` ``\\`` or whitespace, then an
#: optional query that is not empty (urljoin drops an empty one); no fragment.
_PLAIN_REFERENCE = re.compile(
    r"(?:(?!\.)[^\x00-\x20\x7f:/?#;\\]+/)*(?:(?!\.)[^\x00-\x20\x7f:/?#;\\]+)?(?:\?[^\x00-\x20\x7f#\\]+)?"
)


def within(
    configured: float | tuple[float, float] | None, remaining: float
) -> float | tuple[float, float]:
    """The per-phase timeout ``configured``, shortened to the time left before a deadline."""
    left = max(remaining, 0.001)  # transports refuse 0; the deadline check follows anyway
    if configured is None:
        return left
    if isinstance(configured, tuple):
        connect, read = configured
        return (min(connect, left), min(read, left))
    return min(configured, left)


@functools.lru_cache(maxsize=64)
def _joins_plainly(endpoint: str) -> bool:
    """Whether ``urljoin(endpoint, reference)`` is ``endpoint + reference`` for plain
    references (an endpoint without query, fragment or parameters, ending in ``/``)."""
    return endpoint.endswith("/") and urljoin(endpoint, "a/b?c") == endpoint + "a/b?c"


class Pipeline(BasePipeline):
    """How operations of one service talk to it.

    Args:
        endpoint: the service's base URL. Its origin (scheme, host, port) is the only one
            requests are sent to, unless ``allowed_origins`` adds more.
        session: the ``requests.Session`` to send through (its auth, cookies and adapters
            apply); a new one when omitted.
        allowed_origins: further URLs whose origins polling may go to.
        headers: headers sent with every request of every operation.
        request_timeout: the bound on each whole request (connect, headers and body), in
            seconds, or a ``(connect, read)`` pair; see :class:`BasePipeline`. It holds
            against a server that trickles its answer: the session's ``requests`` adapters
            are set up to give up at the limit (other adapters get only per-read timeouts).
        max_status_body_bytes: the cap on a status answer's decoded body.
        max_value_body_bytes: the cap on the decoded body of an answer that may hold the
            value. Over a cap, the connection is closed and :class:`BodyTooLargeError` raised.
        polling: the default waiting rules.
        tokens: how rehydration tokens are written and read: signing keys, the size limit,
            the query parameters never written into a token (see :class:`TokenPolicy`).
        clock: a monotonic clock (inject a fake one in tests).
        sleep: how to wait (inject a fake one in tests); see :data:`Sleeper`.
    """

    def __init__(
        self,
        endpoint: str,
        session: requests.Session | None = None,
        *,
        allowed_origins: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        request_timeout: float | tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
        max_status_body_bytes: int = DEFAULT_MAX_STATUS_BODY_BYTES,
        max_value_body_bytes: int = DEFAULT_MAX_VALUE_BODY_BYTES,
        polling: PollingPolicy = DEFAULT_POLICY,
        tokens: TokenPolicy = DEFAULT_TOKEN_POLICY,
        clock: Clock = time.monotonic,
        sleep: Sleeper = default_sleep,
    ) -> None:
        # Before the session: a refused endpoint or allowlist must not leave one open.
        super().__init__(
            endpoint,
            allowed_origins=allowed_origins,
            headers=headers,
            request_timeout=request_timeout,
            max_status_body_bytes=max_status_body_bytes,
            max_value_body_bytes=max_value_body_bytes,
            polling=polling,
            tokens=tokens,
            clock=clock,
        )
        self.session = session if session is not None else requests.Session()
        _time_requests(self.session)
        self.sleep = sleep

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline itself, so that a ``Pipeline`` is a :class:`SupportsPipeline`."""
        return self

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        cap: BodyCap | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request through the session with the pipeline's headers and limits.

        The whole request (connect, headers, body) ends within :meth:`time_limit`
        (``request_timeout``, cut to the time left before ``deadline`` on :attr:`clock`),
        or raises ``requests.ReadTimeout``. The body is read streamed against ``cap``
        (default: the value cap), decoded; over it the connection is closed and
        :class:`~lrokit.BodyTooLargeError` raised. ``kwargs`` go to ``requests``.

        Redirects are not followed (a 3xx is the request's answer, an HTTP error to the
        operation): following one would send the pipeline's headers to a URL that never
        passed the origin policy.
        """
        merged = {**self.headers, **headers} if headers else self.headers
        if "timeout" not in kwargs:
            kwargs["timeout"] = self.read_timeout(deadline)
        kwargs.setdefault("allow_redirects", False)
        kwargs.pop("stream", None)  # always streamed: the body is read here, within the cap
        seconds = self.time_limit(deadline)
        stop_at = None if seconds is None else time.monotonic() + seconds
        mark = STOP_AT.set(stop_at)
        try:
            response = self.session.request(method, url, headers=merged, stream=True, **kwargs)
            try:
                body = _read_body(response, cap or self.value_cap, stop_at)
            except BaseException:
                response.close()  # not fully read: the connection is not reused
                raise
        finally:
            STOP_AT.reset(mark)
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()  # hands the connection back to the pool
        return response

    @staticmethod
    def never_sent(error: BaseException) -> bool:
        """Whether a ``requests`` error proves that the request never left: the connection
        could not be made (refused, unreachable, connect timeout). Any other error may have
        come after the service received the request."""
        if isinstance(error, requests.ConnectTimeout):
            return True
        if not isinstance(error, requests.ConnectionError) or isinstance(
            error, requests.ReadTimeout
        ):
            return False
        cause = error.args[0] if error.args else None
        reason = getattr(cause, "reason", cause)
        return isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_body(response: requests.Response, cap: BodyCap, stop_at: float | None) -> bytes:
    """The decoded body of a streamed response, within ``cap`` and by ``stop_at``.

    Raises what ``requests`` raises when it reads a body itself (urllib3's errors turned
    into ``requests``' own), ``requests.ReadTimeout`` at ``stop_at``, and
    :class:`~lrokit.BodyTooLargeError` over the cap.
    """
    raw = response.raw
    headers = response.headers
    encoding = (headers.get("content-encoding") or "").strip().lower()
    ours = CappedBody.decodes(encoding)
    length = headers.get("content-length") if encoding in _AS_IS else None
    body = CappedBody(encoding if ours else "", cap, response.url, length)
    if not hasattr(raw, "stream"):  # an adapter whose raw is a plain file
        body.feed(response.content)
        return body.finish()
    try:
        for chunk in raw.stream(_CHUNK, decode_content=not ours):
            body.feed(chunk)
            if stop_at is not None and time.monotonic() >= stop_at:
                raise requests.ReadTimeout("the request's time limit passed while reading its body")
        return body.finish()
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.ReadTimeout(str(error)) from error
    except urllib3.exceptions.ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(str(error)) from error
    except urllib3.exceptions.DecodeError as error:
        raise requests.exceptions.ContentDecodingError(str(error)) from error
    except UnreadableBodyError as error:
        raise requests.exceptions.ContentDecodingError(str(error)) from error
    except urllib3.exceptions.SSLError as error:
        raise requests.exceptions.SSLError(str(error)) from error
    except TimeoutError as error:  # the socket timed out between urllib3's own checks
        raise requests.ReadTimeout(str(error)) from error


@runtime_checkable
class SupportsPipeline(Protocol):
    """Anything with a :class:`Pipeline`: a ``Pipeline`` itself, or an SDK client holding one."""

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline to send requests through."""
        ...


_CASE_INSENSITIVE: Any = requests.structures.CaseInsensitiveDict


def view_of(response: requests.Response) -> ResponseView:
    """The core's view of a ``requests`` response (no copy of the body).

    The headers become a plain dict with lower-case names: the core looks up several
    headers per response, most of them absent, and a miss in ``requests``' case-insensitive
    mapping costs a raised and caught ``KeyError`` (a dict lookup is 20 times cheaper).
    """
    headers: Any = response.headers
    if type(headers) is _CASE_INSENSITIVE:  # what requests builds: lower name -> (name, value)
        return ResponseView(
            response.status_code,
            {name: pair[1] for name, pair in headers._store.items()},
            response.content,
            response.url,
            response,
        )
    store = getattr(headers, "_store", None)  # CaseInsensitiveDict: lower name -> (name, value)
    if isinstance(store, dict):
        headers = {name: pair[1] for name, pair in store.items()}
    elif hasattr(headers, "lower_items"):
        headers = dict(headers.lower_items())
    return ResponseView(response.status_code, headers, response.content, response.url, response)
