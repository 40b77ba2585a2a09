"""Scripted services: a sequence of statuses becomes the HTTP exchange of one operation.

An :class:`LroScript` knows the answers a service gives to one operation's requests (the
start request, each status request, the final GET) and serves them to ``responses`` (sync)
or to an ``httpx.MockTransport`` (async), recording every request it answers. Neither
library is imported until it is used.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from .._parse import ServiceError, StatusVocabulary
from .._state import OperationState
from .._urls import api_version_of, resolve, with_api_version
from ._operations import CANCELED_ERROR, FAILED_ERROR

if TYPE_CHECKING:
    import httpx
    import requests
    import responses

__all__ = ["LroScript", "Poll", "RecordedRequest", "mock_transport"]

_JSON = {"Content-Type": "application/json"}
_encode = msgspec.json.encode
_FAILURES = (OperationState.FAILED, OperationState.CANCELED)


@dataclass(frozen=True)
class Poll:
    """One scripted answer to a status request, where a plain status word is not enough.

    Args:
        status: a status word (``"Running"``, ``"Succeeded"``, read with the script's
            vocabulary), or an HTTP status code for a bare answer without a status (``503``
            is a transient fault lrokit retries, ``404`` a rejected poll).
        percent_complete: the ``percentComplete`` of a status monitor answer.
        retry_after: the answer's ``Retry-After`` header: seconds, or a string sent as it
            is (an HTTP-date, or garbage to test how it is ignored); None uses the script's.
        headers: further response headers.
        json: the whole JSON body instead of the one the script would build.
    """

    status: str | int
    percent_complete: float | None = None
    retry_after: float | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class RecordedRequest:
    """A request a script answered.

    Attributes:
        method: the HTTP method, upper-case.
        url: the full URL, query included.
        headers: the request headers, names lower-cased.
        body: the request body (``b""`` for none).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    what: str  # for unserved()


@dataclass
class _Route:
    method: str
    url: str
    answers: list[_Answer]
    served: int = 0


def _key(method: str, url: str) -> tuple[str, str, str, str, tuple[tuple[str, str], ...]]:
    """A URL compared as a service would: scheme and host case-insensitively, query sorted."""
    parts = urlsplit(url)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return method.upper(), parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", query


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_body(error: ServiceError | Mapping[str, Any] | None, state: OperationState) -> Any:
    if error is None:
        error = FAILED_ERROR if state is OperationState.FAILED else CANCELED_ERROR
    if isinstance(error, ServiceError):
        built = msgspec.to_builtins(error)
        return {k: v for k, v in built.items() if v not in (None, [], ())}
    return dict(error)


def _slug(method: str, url: str) -> str:
    """A short, stable name for an operation's URLs (distinct for distinct starts)."""
    return hashlib.sha256(f"{method.upper()} {url}".encode()).hexdigest()[:12]


class LroScript:
    """The HTTP exchange of one operation, built from a list of statuses.

    Build one with :meth:`status_monitor`, :meth:`location` or :meth:`resource`; serve it
    with :meth:`register` (``responses``, for :class:`~lrokit.Operation`) or
    :meth:`transport` (``httpx``, for :class:`~lrokit.AsyncOperation`). Each status in the
    list is the answer to one status request, in order; the last answer is repeated if the
    operation asks again (as a service would repeat a final status). Every request the script
    answers is recorded in :attr:`requests`. A status request beyond the last answer and
    :attr:`repeat_limit` repeats of it raises ``AssertionError``, which ends the wait: with a
    fake clock, an operation that never completes would otherwise poll for ever.

    Attributes:
        method: the start request's method.
        start_url: the start request's URL.
        polling_url: the URL the status requests go to (with the start's api-version).
        final_url: the URL of the final GET, or None when the value comes with a status.
        requests: every request answered, in order.
        repeat_limit: how often the last answer to a URL is repeated (100; set it on the
            script to change it).
    """

    repeat_limit: int = 100

    def __init__(
        self,
        method: str,
        start_url: str,
        polling_url: str,
        final_url: str | None,
        routes: list[_Route],
    ) -> None:
        """Prefer the constructors; ``routes`` are answered in order per method and URL."""
        self.method = method.upper()
        self.start_url = start_url
        self.polling_url = polling_url
        self.final_url = final_url
        self.requests: list[RecordedRequest] = []
        self._routes = {_key(r.method, r.url): r for r in routes}
        self._lock = threading.Lock()

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def status_monitor(
        cls,
        url: str,
        statuses: Sequence[str | int | Poll],
        *,
        method: str = "POST",
        result: Any = None,
        error: ServiceError | Mapping[str, Any] | None = None,
        monitor_url: str | None = None,
        location: str | None = None,
        header: str = "Operation-Location",
        retry_after: float | str | None = None,
        percent_complete: Sequence[float | None] | None = None,
        start_status: int = 202,
        vocabulary: StatusVocabulary | None = None,
    ) -> LroScript:
        """An operation followed through a status monitor (``Operation-Location``).

        The start request (``method url``) is answered ``start_status`` (202) with the
        monitor's URL in ``header`` (``Azure-AsyncOperation`` works too) and ``Location``
        when ``location`` is given; each status request with ``{"status": word}`` (plus
        ``percentComplete``, the ``error`` of a Failed or Canceled status, and the
        ``result`` of a Succeeded one when it is read from the monitor). ``result`` is
        served where lrokit's default rules read the value: the final GET of the original
        URL for PUT and PATCH, of ``location`` for a POST that has one, otherwise the
        monitor's ``result``; DELETE has no value.

        Args:
            url: the start request's absolute URL.
            statuses: the answers to the status requests, in order: status words, HTTP
                codes for bare answers (``503``), or :class:`Poll` answers.
            method: the start request's method.
            result: the operation's final JSON (or anything ``msgspec.to_builtins``
                converts, such as the value's Struct).
            error: the ``error`` of a Failed or Canceled status (a default when None).
            monitor_url: the monitor's URL as the header gives it (absolute or relative);
                a stable URL on the start's host when None.
            location: a ``Location`` header to send with the start answer.
            header: the header naming the monitor.
            retry_after: ``Retry-After`` for the start answer and every answer that is not
                final (seconds, or a string sent as it is).
            percent_complete: a ``percentComplete`` per status, in the same order.
            start_status: the start answer's HTTP status.
            vocabulary: how status words map to states (the default vocabulary if None).
        """
        method = method.upper()
        api_version = api_version_of(url)
        slug = _slug(method, url)
        monitor = monitor_url or resolve(url, f"/lro-operations/{slug}")
        polling = with_api_version(resolve(url, monitor), api_version)
        headers = {header: monitor}
        if location is not None:
            headers["Location"] = location
        final: str | None = None
        if method in ("PUT", "PATCH"):
            final = with_api_version(url, api_version)
        elif location is not None and method != "DELETE":
            final = with_api_version(resolve(url, location), api_version)
        in_monitor = final is None and method != "DELETE"
        words = vocabulary or StatusVocabulary()
        payload = None if result is None else msgspec.to_builtins(result)

        def body(word: str, state: OperationState) -> Any:
            document: dict[str, Any] = {"status": word}
            if state in _FAILURES:
                document["error"] = _error_body(error, state)
            elif state is OperationState.SUCCEEDED and in_monitor and payload is not None:
                document["result"] = payload
            return document

        polls = _answers(statuses, percent_complete, retry_after, words, body, with_percent=True)
        routes = [
            _Route(method, url, [_start(start_status, headers, retry_after, b"")]),
            _Route("GET", polling, polls),
        ]
        if final is not None:
            routes.append(_Route("GET", final, [_json_answer(200, payload, "final GET")]))
        return cls(method, url, polling, final, routes)

    @classmethod
    def location(
        cls,
        url: str,
        statuses: Sequence[str | int | Poll],
        *,
        method: str = "POST",
        result: Any = None,
        error: ServiceError | Mapping[str, Any] | None = None,
        location_url: str | None = None,
        retry_after: float | str | None = None,
        start_status: int = 202,
        vocabulary: StatusVocabulary | None = None,
    ) -> LroScript:
        """An operation followed through its ``Location`` header alone.

        The start answer is ``start_status`` (202) with ``Location``; each status request is
        answered 202 (no body) while the status is not final, 200 with ``result`` for
        Succeeded (204 when ``result`` is None), and HTTP 400 with ``{"error": ...}`` for
        Failed and Canceled (a Location URL reports a failure by its status code, so both
        end ``Failed``). Arguments as for :meth:`status_monitor`;
        ``location_url`` is the header's value (a stable URL on the start's host if None).
        """
        method = method.upper()
        api_version = api_version_of(url)
        target = location_url or resolve(url, f"/lro-results/{_slug(method, url)}")
        polling = with_api_version(resolve(url, target), api_version)
        words = vocabulary or StatusVocabulary()
        payload = None if result is None else msgspec.to_builtins(result)

        def body(word: str, state: OperationState) -> Any:
            if state in _FAILURES:
                return {"error": _error_body(error, state)}
            if state is OperationState.SUCCEEDED:
                return payload
            return _NO_BODY

        polls = _answers(
            statuses, None, retry_after, words, body, with_percent=False, failure_code=400
        )
        routes = [
            _Route(method, url, [_start(start_status, {"Location": target}, retry_after, b"")]),
            _Route("GET", polling, polls),
        ]
        return cls(method, url, polling, None, routes)

    @classmethod
    def resource(
        cls,
        url: str,
        statuses: Sequence[str | int | Poll],
        *,
        method: str = "PUT",
        result: Any = None,
        error: ServiceError | Mapping[str, Any] | None = None,
        initial_status: str = "Accepted",
        retry_after: float | str | None = None,
        start_status: int = 201,
        vocabulary: StatusVocabulary | None = None,
    ) -> LroScript:
        """An ARM resource provisioning: the resource's own URL is polled.

        The start request (``PUT url``) is answered ``start_status`` (201) with the
        resource whose ``properties.provisioningState`` is ``initial_status``; each status
        request (``GET url``) with the resource in the next state, Failed and Canceled with
        an ``error``. ``result`` is the resource (a JSON object); the value of a Succeeded
        operation is it with ``provisioningState`` ``"Succeeded"`` (or the word given).
        Other arguments as for :meth:`status_monitor`.
        """
        method = method.upper()
        polling = with_api_version(url, api_version_of(url))
        words = vocabulary or StatusVocabulary()
        resource = {} if result is None else msgspec.to_builtins(result)
        if not isinstance(resource, dict):
            raise TypeError("a resource result must be a JSON object")

        def body(word: str, state: OperationState) -> Any:
            properties = dict(resource.get("properties") or {})
            properties["provisioningState"] = word
            document = {**resource, "properties": properties}
            if state in _FAILURES:
                document["error"] = _error_body(error, state)
            return document

        start = _start(start_status, {}, retry_after, _encode(body(initial_status, _RUNNING)))
        polls = _answers(statuses, None, retry_after, words, body, with_percent=False)
        routes = [_Route(method, url, [start]), _Route("GET", polling, polls)]
        return cls(method, url, polling, None, routes)

    # -- serving ---------------------------------------------------------------------------

    def respond(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Record the request and return its scripted answer (status, headers, body), or
        None when this script has no answer for ``method url`` (nothing is recorded).

        Raises:
            AssertionError: the last answer of ``method url`` was already repeated
                :attr:`repeat_limit` times (a wait that would never end, on a fake clock).
        """
        route = self._routes.get(_key(method, url))
        if route is None:
            return None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method.upper(), url, {k.lower(): v for k, v in headers.items()}, body
                )
            )
            last = len(route.answers) - 1
            if route.served - last > self.repeat_limit:
                raise AssertionError(
                    f"{method} {url} was requested {route.served + 1} times, more than"
                    f" {last + 1} scripted answers and {self.repeat_limit} repeats of the"
                    f" last ({route.answers[-1].what}): end the statuses with a final one,"
                    " or wait with a timeout"
                )
            answer = route.answers[min(route.served, last)]
            route.served += 1
        return answer.status, dict(answer.headers), answer.body

    def register(self, mock: responses.RequestsMock | None = None) -> LroScript:
        """Serve the script to ``requests`` through ``mock`` (``responses``' default mock,
        as used by ``@responses.activate``, when None); returns the script."""
        import responses  # noqa: PLC0415 - only this method needs it (the testing extra)
        from responses import matchers  # noqa: PLC0415

        target = responses.mock if mock is None else mock
        for route in self._routes.values():
            base, _, query = route.url.partition("?")
            target.add_callback(
                route.method,
                base,
                callback=self._requests_callback,
                content_type=None,
                match=[matchers.query_string_matcher(query or None)],
            )
        return self

    def _requests_callback(
        self, request: requests.PreparedRequest
    ) -> tuple[int, dict[str, str], bytes]:
        body = request.body or b""
        answer = self.respond(
            str(request.method),
            str(request.url),
            dict(request.headers),
            body.encode() if isinstance(body, str) else body,
        )
        if answer is None:  # responses matched a route of ours, so this cannot happen
            raise AssertionError(f"no scripted answer to {request.method} {request.url}")
        return answer

    def transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` serving this script (see :func:`mock_transport`)."""
        return mock_transport(self)

    def async_client(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` over :meth:`transport`, for an ``AsyncPipeline``."""
        import httpx  # noqa: PLC0415 - the async extra

        return httpx.AsyncClient(transport=self.transport())

    # -- assertions --------------------------------------------------------------------------

    def requests_to(self, url: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests to ``url`` (compared with a sorted query), of ``method``."""
        wanted = _key(method or "GET", url)[1:]
        return [
            r
            for r in self.requests
            if _key(r.method, r.url)[1:] == wanted and (method is None or r.method == method)
        ]

    def unserved(self) -> list[str]:
        """The scripted answers no request has received yet (empty once all were given)."""
        return [
            f"{route.method} {route.url}: {answer.what}"
            for route in self._routes.values()
            for answer in route.answers[route.served :]
        ]

    def assert_finished(self) -> None:
        """Raise AssertionError naming the scripted answers that were never requested."""
        missing = self.unserved()
        if missing:
            raise AssertionError("scripted answers never requested:\n  " + "\n  ".join(missing))

    def __repr__(self) -> str:
        return f"<LroScript {self.method} {self.start_url}: {len(self.requests)} requests>"


def mock_transport(*scripts: LroScript) -> httpx.MockTransport:
    """An ``httpx.MockTransport`` answering the requests of several scripts.

    A request no script has an answer for fails the test: the transport raises
    ``AssertionError``, which ends the operation's wait (it is not a transport error).
    """
    import httpx  # noqa: PLC0415 - the async extra

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.read()
        for script in scripts:
            answer = script.respond(request.method, str(request.url), request.headers, body)
            if answer is not None:
                status, headers, content = answer
                return httpx.Response(status, headers=headers, content=content)
        raise AssertionError(f"no scripted answer to {request.method} {request.url}")

    return httpx.MockTransport(handle)


# -- building answers ----------------------------------------------------------------------

_RUNNING = OperationState.RUNNING
#: A body builder's "no body at all" (a 202 of Location polling).
_NO_BODY: Any = object()


def _start(
    status: int, headers: Mapping[str, str], retry_after: float | str | None, body: bytes
) -> _Answer:
    sent = dict(headers)
    if retry_after is not None:
        sent["Retry-After"] = _retry_after(retry_after)
    if body:
        sent.update(_JSON)
    return _Answer(status, sent, body, "start")


def _json_answer(status: int, document: Any, what: str) -> _Answer:
    if document is None:
        return _Answer(204 if status == 200 else status, {}, b"", what)
    return _Answer(status, dict(_JSON), _encode(document), what)


def _answers(
    statuses: Sequence[str | int | Poll],
    percents: Sequence[float | None] | None,
    retry_after: float | str | None,
    vocabulary: StatusVocabulary,
    body: Callable[[str, OperationState], Any],
    *,
    with_percent: bool,
    failure_code: int = 200,
) -> list[_Answer]:
    if not statuses:
        raise ValueError("a script needs at least one status")
    if percents is not None and len(percents) != len(statuses):
        raise ValueError("percent_complete needs one entry per status")
    answers = []
    for index, item in enumerate(statuses):
        poll = item if isinstance(item, Poll) else Poll(item)
        percent = poll.percent_complete
        if percent is None and percents is not None:
            percent = percents[index]
        headers = dict(poll.headers)
        hint = poll.retry_after
        if isinstance(poll.status, int):
            code, what = poll.status, f"HTTP {poll.status}"
            document = poll.json
            final = False
        else:
            state = vocabulary(poll.status)
            final = state.is_terminal
            what = poll.status
            document = poll.json if poll.json is not None else body(poll.status, state)
            if with_percent and percent is not None and isinstance(document, dict):
                document = {**document, "percentComplete": percent}
            code = 202 if document is _NO_BODY else 200
            if state in _FAILURES:
                code = failure_code
        if hint is None and not final:
            hint = retry_after
        if hint is not None:
            headers["Retry-After"] = _retry_after(hint)
        if document is _NO_BODY or (document is None and isinstance(poll.status, int)):
            answers.append(_Answer(code, headers, b"", what))
            continue
        answer = _json_answer(code, document, what)
        answer.headers.update(headers)
        answers.append(answer)
    return answers
