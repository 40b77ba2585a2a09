"""The sync transport context an operation polls through: session, endpoint, trust, timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urljoin

import requests

from ._delay import DEFAULT_POLICY, PollingPolicy
from ._parse import ResponseView
from ._token import DEFAULT_TOKEN_POLICY, TokenPolicy
from ._urls import OriginPolicy

__all__ = ["BasePipeline", "Clock", "Pipeline", "Sleeper", "SupportsPipeline", "default_sleep"]

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
        request_timeout: the per-request HTTP timeout (seconds, or a ``(connect, read)``
            pair); separate from any wait deadline.
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
        request_timeout: float | tuple[float, float] | None = 30.0,
        polling: PollingPolicy = DEFAULT_POLICY,
        tokens: TokenPolicy = DEFAULT_TOKEN_POLICY,
        clock: Clock = time.monotonic,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.origin_policy = OriginPolicy(self.endpoint, allowed_origins)
        self.tokens = tokens
        self.headers = dict(headers or {})
        self.request_timeout = request_timeout
        self.polling = polling
        self.clock = clock

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` relative to the endpoint."""
        return urljoin(self.endpoint, path.lstrip("/"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"


class Pipeline(BasePipeline):
    """How operations of one service talk to it.

    Args:
        endpoint: the service's base URL. Its origin (scheme, host, port) is the only one
            requests are sent to, unless ``allowed_origins`` adds more.
        session: the ``requests.Session`` to send through (its auth, cookies and adapters
            apply); a new one when omitted.
        allowed_origins: further URLs whose origins polling may go to.
        headers: headers sent with every request of every operation.
        request_timeout: the per-request HTTP timeout given to ``requests`` (seconds, or a
            ``(connect, read)`` pair); separate from any wait deadline.
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
        request_timeout: float | tuple[float, float] | None = 30.0,
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
            polling=polling,
            tokens=tokens,
            clock=clock,
        )
        self.session = session if session is not None else requests.Session()
        self.sleep = sleep

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline itself, so that a ``Pipeline`` is a :class:`SupportsPipeline`."""
        return self

    def send(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send one request through the session with the pipeline's headers and timeout.

        Redirects are not followed (a 3xx is the request's answer, an HTTP error to the
        operation): following one would send the pipeline's headers to a URL that never
        passed the origin policy.
        """
        merged = {**self.headers, **headers} if headers else self.headers
        kwargs.setdefault("timeout", self.request_timeout)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, url, headers=merged, **kwargs)

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@runtime_checkable
class SupportsPipeline(Protocol):
    """Anything with a :class:`Pipeline`: a ``Pipeline`` itself, or an SDK client holding one."""

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline to send requests through."""
        ...


def view_of(response: requests.Response) -> ResponseView:
    """The core's view of a ``requests`` response (no copy of headers or body)."""
    return ResponseView(
        response.status_code, response.headers, response.content, response.url, response
    )
