"""The async transport context: :class:`AsyncPipeline`, the :class:`AsyncSender` protocol and
the default sender over ``httpx.AsyncClient`` (the ``lrokit[async]`` extra).

lrokit's async operations never talk to an HTTP library directly: they hand each request to
the pipeline's sender, an object with two coroutine methods (``send`` and ``aclose``) and a
tuple ``transport_errors``. :class:`HttpxSender` is the default; anything else (aiohttp, a
test double, an in-memory service) plugs in by implementing :class:`AsyncSender`. This
module imports ``httpx`` only when the default sender is built.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from ._delay import DEFAULT_POLICY, PollingPolicy
from ._parse import ResponseView
from ._pipeline import (
    DEFAULT_MAX_STATUS_BODY_BYTES,
    DEFAULT_MAX_VALUE_BODY_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    STOP_AT,
    BasePipeline,
    BodyCap,
    CappedBody,
    Clock,
    UnreadableBodyError,
)
from ._token import DEFAULT_TOKEN_POLICY, TokenPolicy

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AsyncPipeline",
    "AsyncSender",
    "AsyncSleeper",
    "HttpxSender",
    "TimeBound",
    "SupportsAsyncPipeline",
    "default_async_sleep",
    "httpx_view",
]

#: Waits ``seconds`` unless ``cancel`` is set first; returns True when it was cancelled.
AsyncSleeper = Callable[[float, "asyncio.Event | None"], Awaitable[bool]]
_encode_json = msgspec.json.Encoder().encode
#: ``timeout=`` not given to :meth:`AsyncPipeline.send`: the pipeline's ``request_timeout``.
_PIPELINE_TIMEOUT: Any = object()


#: How often the watchdog looks for requests past their time limit (seconds): the most a
#: request may outlive its limit, besides the event loop's own latency.
WATCHDOG_TICK = 0.02


class _Watchdog:
    """Ends the requests of one :class:`AsyncPipeline` that outlive their time limit.

    Each request in flight with a limit is filed in a bucket by the tick after its limit;
    one task on the event loop, alive only while requests are filed, wakes every
    :data:`WATCHDOG_TICK` seconds and cancels the tasks of the buckets that came due. A
    request costs a set insertion and removal: an ``asyncio.timeout`` per request (a timer
    handle in the loop's heap) cost 4-8 us, more than all of lrokit's own work per poll.
    """

    __slots__ = ("_buckets", "_ticker")

    def __init__(self) -> None:
        self._buckets: dict[int, set[TimeBound]] = {}
        self._ticker: asyncio.Task[None] | None = None

    def file(self, bound: TimeBound) -> None:
        """Watch ``bound`` until :meth:`unfile` (or until it expires)."""
        index = int(bound.stop_at / WATCHDOG_TICK) + 1
        bound.index = index
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = set()
        bucket.add(bound)
        ticker = self._ticker
        if ticker is None or ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._watch())

    def unfile(self, bound: TimeBound) -> None:
        """Stop watching ``bound`` (its request ended in time)."""
        bucket = self._buckets.get(bound.index)
        if bucket is not None:
            bucket.discard(bound)
            if not bucket:
                del self._buckets[bound.index]

    async def _watch(self) -> None:
        buckets = self._buckets
        while buckets:
            await asyncio.sleep(WATCHDOG_TICK)
            due = int(time.monotonic() / WATCHDOG_TICK)
            for index in [index for index in buckets if index <= due]:
                for bound in buckets.pop(index):
                    bound.expire()


class TimeBound:
    """``async with pipeline.time_bound(deadline):`` ends the block (the request in it) at
    its time limit, raising ``TimeoutError``; a cancellation from elsewhere stays a
    cancellation. A context manager rather than a coroutine, so that a request in flight
    keeps no extra frame alive."""

    __slots__ = ("_mark", "_task", "_watchdog", "expired", "index", "stop_at")

    def __init__(self, watchdog: _Watchdog, seconds: float | None) -> None:
        self._watchdog = watchdog
        self.stop_at = -1.0 if seconds is None else time.monotonic() + seconds
        self.expired = False
        self.index = 0
        self._task: asyncio.Task[Any] | None = None
        self._mark: Any = None

    async def __aenter__(self) -> TimeBound:
        if self.stop_at >= 0:
            self._task = asyncio.current_task()
            self._watchdog.file(self)
            # A sender reading a body that never pauses checks this between chunks (the
            # watchdog's task may not get a turn while data keeps arriving).
            self._mark = STOP_AT.set(self.stop_at)
        return self

    def expire(self) -> None:
        """The limit passed: cancel the request (the watchdog calls this)."""
        self.expired = True
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self._mark is not None:
            STOP_AT.reset(self._mark)
        if not self.expired:
            if self._task is not None:
                self._watchdog.unfile(self)
            return
        if kind is not asyncio.CancelledError:
            return  # the answer came just as the limit passed: it stands
        task = self._task
        if sys.version_info >= (3, 11) and task is not None and task.uncancel() > 0:
            return  # also cancelled from elsewhere: that cancellation goes on
        raise TimeoutError("the request ran past its time limit") from error


async def default_async_sleep(seconds: float, cancel: asyncio.Event | None) -> bool:
    """Sleep in the caller's task; with an event, wake as soon as it is set."""
    if cancel is None:
        await asyncio.sleep(seconds)
        return False
    if cancel.is_set():
        return True
    try:
        await asyncio.wait_for(cancel.wait(), seconds)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        return False
    return True


@runtime_checkable
class AsyncSender(Protocol):
    """What an :class:`AsyncPipeline` sends requests through.

    Implement it to use another HTTP library (aiohttp, ...) or no network at all. A sender:

    - sends exactly the request it is given and does **not follow redirects** (a 3xx is
      the answer: following one would send the pipeline's headers to a URL that never
      passed the origin policy);
    - reads the whole body and returns a :class:`~lrokit.ResponseView` whose ``headers``
      answer ``get`` with lower-case names (any case-insensitive mapping does) and whose
      ``raw`` is the library's own response (what ``get_raw_response()`` returns);
    - raises one of :attr:`transport_errors` when no complete answer arrived (refused or
      reset connection, timeout, truncated body): those are retried as transient faults;
      anything else it raises ends the wait;
    - optionally, with a true ``reads_capped`` attribute, accepts ``cap=`` (a
      :class:`~lrokit.BodyCap`) and reads the body streamed, raising
      :class:`~lrokit.BodyTooLargeError` past ``cap.limit`` decoded bytes (as
      :class:`HttpxSender` does); for other senders the pipeline checks the size of the
      body they return, after the fact;
    - optionally, with an ``unsent_errors`` tuple, names the errors that prove the request
      never left (connection refused): a start that is not safe to repeat and fails with
      any other error is never sent again (see ``StartOutcomeUnknownError``).

    The pipeline bounds every call of ``send`` by its time limit (``request_timeout``, cut
    to a wait's deadline) by cancelling it: a sender must let a cancelled request go.

    Example, over aiohttp (not a dependency of lrokit)::

        class AiohttpSender:
            transport_errors = (aiohttp.ClientConnectionError, asyncio.TimeoutError)

            def __init__(self, session: aiohttp.ClientSession) -> None:
                self.session = session

            async def send(self, method, url, *, headers, body, timeout, **options):
                seconds = timeout[1] if isinstance(timeout, tuple) else timeout
                async with self.session.request(
                    method, url, headers=headers, data=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=seconds), **options,
                ) as response:
                    content = await response.read()
                return ResponseView(response.status, response.headers, content,
                                    str(response.url), response)

            async def aclose(self) -> None:
                await self.session.close()
    """

    #: Exception types meaning "no (complete) answer arrived"; retried as transient faults.
    transport_errors: tuple[type[BaseException], ...]

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | tuple[float, float] | None,
        **options: Any,
    ) -> ResponseView:
        """Send one request and return its whole answer.

        ``timeout`` bounds each phase of the request (seconds, or ``(connect, read)``);
        ``options`` are the ``request_kwargs`` given to ``AsyncOperation.start``.
        """
        ...

    async def aclose(self) -> None:
        """Release the sender's connections."""
        ...


class HttpxSender:
    """The default :class:`AsyncSender`, over an ``httpx.AsyncClient``.

    Args:
        client: the client to send through (its auth, cookies, limits and transport
            apply; it is not closed by :meth:`aclose`); a new one when omitted, closed by
            :meth:`aclose`.
        client_kwargs: passed to ``httpx.AsyncClient`` when lrokit creates it.

    Raises:
        ImportError: httpx is not installed (``pip install 'lrokit[async]'``).
    """

    def __init__(self, client: httpx.AsyncClient | None = None, **client_kwargs: Any) -> None:
        try:
            import httpx  # noqa: PLC0415 - the async extra is optional
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the default async sender needs httpx: pip install 'lrokit[async]', or pass"
                " an AsyncSender of your own to AsyncPipeline"
            ) from error
        if client is not None and client_kwargs:
            raise ValueError("give either a client or client_kwargs, not both")
        self.client = client if client is not None else httpx.AsyncClient(**client_kwargs)
        self._owns_client = client is None
        self._timeout = httpx.Timeout
        self._decoding_error = httpx.DecodingError
        self._client_default: Any = httpx.USE_CLIENT_DEFAULT
        #: Bodies are read streamed against ``cap`` (see :class:`AsyncSender`).
        self.reads_capped = True
        #: Errors proving the request never left (no connection was made).
        self.unsent_errors: tuple[type[BaseException], ...] = (
            httpx.ConnectError,
            httpx.ConnectTimeout,
        )
        #: httpx's "no complete answer" errors (its ProtocolError only when the server broke
        #: the protocol: a local misuse is a bug, not a transient fault).
        self.transport_errors: tuple[type[BaseException], ...] = (
            httpx.TimeoutException,
            httpx.NetworkError,
            httpx.RemoteProtocolError,
            httpx.ProxyError,
            httpx.DecodingError,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | tuple[float, float] | None,
        cap: BodyCap | None = None,
        **options: Any,
    ) -> ResponseView:
        """Send through the client without following redirects; see :class:`AsyncSender`.

        The body is read streamed; with ``cap``, at most ``cap.limit`` decoded bytes of it
        (gzip and deflate are decoded within the cap) before the connection is closed and
        :class:`~lrokit.BodyTooLargeError` raised.
        """
        if isinstance(timeout, tuple):
            connect, read = timeout
            limits: Any = self._timeout(read, connect=connect)
        else:
            limits = timeout
        sending = {
            "follow_redirects": options.pop("follow_redirects", False),
            "auth": options.pop("auth", self._client_default),
        }
        request = self.client.build_request(
            method, url, headers=headers, content=body, timeout=limits, **options
        )
        response = await self.client.send(request, stream=True, **sending)
        try:
            if cap is None:
                await response.aread()
            elif response.is_stream_consumed:  # a transport that read it already (mocks)
                if len(await response.aread()) > cap.limit:
                    raise CappedBody.too_large(cap)
            else:
                encoding = (response.headers.get("content-encoding") or "").strip().lower()
                ours = CappedBody.decodes(encoding)
                length = response.headers.get("content-length") if not encoding else None
                reader = CappedBody(encoding if ours else "", cap, url, length)
                chunks = response.aiter_raw() if ours else response.aiter_bytes()
                stop_at = STOP_AT.get()
                async for chunk in chunks:
                    reader.feed(chunk)
                    if stop_at is not None and time.monotonic() >= stop_at:
                        raise TimeoutError("the request ran past its time limit")
                response._content = reader.finish()
        except UnreadableBodyError as error:
            raise self._decoding_error(str(error), request=request) from error
        finally:
            await response.aclose()  # closes the connection if the body was not all read
        return httpx_view(response)

    async def aclose(self) -> None:
        """Close the client, if lrokit created it."""
        if self._owns_client:
            await self.client.aclose()

    def __repr__(self) -> str:
        return f"HttpxSender({self.client!r})"


def httpx_view(response: Any) -> ResponseView:
    """The core's view of an ``httpx.Response`` whose body has been read (no copies)."""
    return ResponseView(
        response.status_code, response.headers, response.content, str(response.url), response
    )


class AsyncPipeline(BasePipeline):
    """How async operations of one service talk to it: :class:`~lrokit.Pipeline`'s twin.

    Args:
        endpoint: the service's base URL. Its origin (scheme, host, port) is the only one
            requests are sent to, unless ``allowed_origins`` adds more.
        sender: an :class:`AsyncSender`, or an ``httpx.AsyncClient`` to send through; a new
            :class:`HttpxSender` when omitted (needs the ``lrokit[async]`` extra).
        allowed_origins: further URLs whose origins polling may go to.
        headers: headers sent with every request of every operation.
        request_timeout: the bound on each whole request (connect, headers and body), in
            seconds, or a ``(connect, read)`` pair (given to the sender per phase, and
            their sum bounds the whole); cut to a wait's time left. The request is
            cancelled at the bound by the pipeline's watchdog (see :class:`TimeBound`),
            whatever the server does.
        max_status_body_bytes: the cap on a status answer's decoded body.
        max_value_body_bytes: the cap on the decoded body of an answer that may hold the
            value; see :class:`~lrokit.Pipeline`.
        polling: the default waiting rules.
        tokens: how rehydration tokens are written and read (see :class:`TokenPolicy`).
        clock: a monotonic clock (inject a fake one in tests).
        sleep: how to wait (inject a fake one in tests); see :data:`AsyncSleeper`.
    """

    def __init__(
        self,
        endpoint: str,
        sender: AsyncSender | httpx.AsyncClient | None = None,
        *,
        allowed_origins: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        request_timeout: float | tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
        max_status_body_bytes: int = DEFAULT_MAX_STATUS_BODY_BYTES,
        max_value_body_bytes: int = DEFAULT_MAX_VALUE_BODY_BYTES,
        polling: PollingPolicy = DEFAULT_POLICY,
        tokens: TokenPolicy = DEFAULT_TOKEN_POLICY,
        clock: Clock = time.monotonic,
        sleep: AsyncSleeper = default_async_sleep,
    ) -> None:
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
        if sender is None:
            sender = HttpxSender()
        elif not isinstance(sender, AsyncSender):
            sender = HttpxSender(sender)
        self.sender: AsyncSender = sender
        self.sleep = sleep
        #: The errors after which a request counts as a transient fault: the sender's, and
        #: ``TimeoutError``, which :meth:`time_bound` raises at the request's time limit.
        self.transport_errors: tuple[type[BaseException], ...] = (
            *sender.transport_errors,
            TimeoutError,
        )
        self._unsent: tuple[type[BaseException], ...] = tuple(getattr(sender, "unsent_errors", ()))
        self._reads_capped = bool(getattr(sender, "reads_capped", False))
        self._watchdog = _Watchdog()

    @property
    def pipeline(self) -> AsyncPipeline:
        """The pipeline itself, so that it is a :class:`SupportsAsyncPipeline`."""
        return self

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: Any = _PIPELINE_TIMEOUT,
        deadline: float | None = None,
        cap: BodyCap | None = None,
        **options: Any,
    ) -> ResponseView:
        """Send one request through the sender with the pipeline's headers and limits.

        ``json`` (any value msgspec encodes, None for no body) is sent as
        ``application/json``. Redirects are not followed. The whole request ends within
        :meth:`time_limit` of ``deadline`` (or raises ``TimeoutError``) and its body within
        ``cap`` (default: the value cap).
        """
        merged = {**self.headers, **headers} if headers else self.headers
        body = None
        if json is not None:
            body = _encode_json(json)
            if not any(name.lower() == "content-type" for name in merged):
                merged = {**merged, "Content-Type": "application/json"}
        limit = self.read_timeout(deadline) if timeout is _PIPELINE_TIMEOUT else timeout
        cap = cap or self.value_cap
        async with self.time_bound(deadline):
            view = await self.request(
                method, url, headers=merged, body=body, timeout=limit, cap=cap, options=options
            )
        return self.checked(view, cap)

    def time_bound(self, deadline: float | None) -> TimeBound:
        """The bound on one whole request made now: :meth:`time_limit` of ``deadline``,
        enforced by cancelling the request (a :class:`TimeBound`; ``async with`` it)."""
        return TimeBound(self._watchdog, self.time_limit(deadline))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Any,
        cap: BodyCap,
        options: dict[str, Any],
    ) -> Awaitable[ResponseView]:
        """The sender's call for one request: the caller bounds it in time with
        :meth:`time_bound` and passes its answer through :meth:`checked`. A sender that
        reads capped (see :class:`AsyncSender`) is given ``cap``."""
        if self._reads_capped:
            return self.sender.send(
                method, url, headers=headers, body=body, timeout=timeout, cap=cap, **options
            )
        return self.sender.send(method, url, headers=headers, body=body, timeout=timeout, **options)

    def checked(self, view: ResponseView, cap: BodyCap) -> ResponseView:
        """``view``, once its body is known to be within ``cap`` (a sender that does not read
        capped returned it whole: this is checked after the fact)."""
        if not self._reads_capped and len(view.body) > cap.limit:
            raise CappedBody.too_large(cap)
        return view

    def never_sent(self, error: BaseException) -> bool:
        """Whether ``error`` proves that the request never left (the sender's
        ``unsent_errors``); any other error may have come after the service received it."""
        return isinstance(error, self._unsent)

    async def aclose(self) -> None:
        """Close the sender (an ``httpx.AsyncClient`` lrokit created)."""
        await self.sender.aclose()

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@runtime_checkable
class SupportsAsyncPipeline(Protocol):
    """Anything with an :class:`AsyncPipeline`: the pipeline itself, or an SDK client."""

    @property
    def pipeline(self) -> AsyncPipeline:
        """The pipeline to send requests through."""
        ...
