"""The sync transport context an operation polls through: session, endpoint, trust, timing."""

from __future__ import annotations

import functools
import re
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
        # (endpoint, origin policy, whether the policy trusts the endpoint): see _endpoint_url.
        self._endpoint_trust: tuple[str, OriginPolicy, bool] | None = None
        self.tokens = tokens
        self.headers = dict(headers or {})
        self.request_timeout = request_timeout
        self.polling = polling
        self.clock = clock

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
        if not kwargs:  # a poll: nothing to merge
            return self.session.request(
                method, url, headers=merged, timeout=self.request_timeout, allow_redirects=False
            )
        if "timeout" not in kwargs:
            kwargs["timeout"] = self.request_timeout
        if "allow_redirects" not in kwargs:
            kwargs["allow_redirects"] = False
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
