"""Origin pinning: which URLs a client may send requests (and credentials) to.

The unit half checks :class:`OriginPolicy` on the spellings that make URL parsers disagree.
The integration half runs a second HTTP server on 127.0.0.1 that counts every request it
gets: tampered tokens and hostile Operation-Location / Azure-AsyncOperation / Location /
resourceLocation URLs must end with a typed error and zero requests to it, while an
allowlisted origin is reached (so the counter is known to count).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lrokit import (
    InvalidTokenError,
    LroError,
    Operation,
    OperationCore,
    OperationState,
    OriginPolicy,
    Pipeline,
    PollingPolicy,
    ResponseView,
    TokenOriginError,
    TokenPolicy,
    TokenSigner,
    UntrustedOriginError,
)
from lrokit._urls import origin_of, resolve, with_api_version
from lrokit.demo import CreateVectorStoreOperation, DemoService, VectorStoreClient
from token_helpers import b64, unb64

# -- the policy on its own -------------------------------------------------------------------

ENDPOINT = "https://svc.example.com/base/"


@pytest.mark.parametrize(
    "url",
    [
        "https://svc.example.com/x",
        "https://SVC.Example.COM/x",  # ASCII host names are case-insensitive
        "HTTPS://svc.example.com/x",
        "https://svc.example.com:443/x",  # the default port, explicit
        "https://svc.example.com:0443/x",  # ... with a leading zero: still 443 for everyone
        "https://svc.example.com",
        "https://svc.example.com?x=1",
        "https://svc.example.com#f",
        "https://ops.example.org:8443/poll",
        "https://[::1]:8443/x",
        "https://[0:0:0:0:0:0:0:1]:8443/x",  # the same IPv6 address, spelled out
        "https://bücher.example/x",  # a non-ASCII host, spelled exactly as trusted
    ],
)
def test_trusted_urls(url: str) -> None:
    allowed = ["https://ops.example.org:8443", "https://[::1]:8443", "https://bücher.example"]
    assert OriginPolicy(ENDPOINT, allowed).check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://svc.example.com/x",  # https -> http downgrade
        "https://svc.example.com:8443/x",  # another port
        "https://svc.example.com:99999/x",  # no such port
        "https://svc.example.com:44a3/x",
        "https://svc.example.com:+443/x",
        "https://svc.example.com:-1/x",
        "https://ops.example.org/x",  # allowed only on 8443
        "https://svc.example.com.evil.example/x",
        "https://evil.example/https://svc.example.com/x",
        "https://svc.example.com@evil.example/x",  # user info: the host is evil.example
        "https://evil.example@svc.example.com/x",  # user info on the right host: refused
        "https://user:pw@svc.example.com/x",
        "https://evil.example\\@svc.example.com/x",  # urllib3 stops the host at the backslash
        "https://evil.example\\.svc.example.com/x",
        "https://svc.example.com\\@evil.example/x",
        "https://svc.exa\tmple.com/x",  # urlsplit deletes tabs and newlines, urllib3 does not
        "https://svc.exa\nmple.com/x",
        " https://svc.example.com/x",
        "https://svc.example.com/x y",
        "https://svc.example.com/\x00",
        "https://svc.example.com./x",  # a trailing dot: another name to TLS and to HTTP
        "https://svc%2eexample.com/x",  # percent-encoded host
        "https://svc.example.com%00.evil.example/x",
        "https://\uff53\uff56\uff43.example.com/x",  # full-width letters (IDNA maps them to ASCII)
        "https://svc\u3002example\u3002com/x",  # ideographic full stops (IDNA maps them to '.')
        "https://xn--bcher-kva.example/x",  # the punycode of a trusted Unicode host
        "https://BÜCHER.example/x",  # Unicode case folding differs between IDNA libraries
        "https://[::1]/x",
        "https://[::1/x",  # a broken IPv6 literal
        "https://[evil.example]/x",
        "ftp://svc.example.com/x",
        "//svc.example.com/x",
        "/relative/x",
        "svc.example.com/x",
        "",
    ],
)
def test_refused_urls(url: str) -> None:
    policy = OriginPolicy(ENDPOINT, ["https://ops.example.org:8443", "https://bücher.example"])
    assert not policy.trusts(url)
    with pytest.raises(UntrustedOriginError) as info:
        policy.check(url)
    assert info.value.url == url
    assert info.value.allowed == policy.origins


def test_origins_are_normalised() -> None:
    assert origin_of("https://Svc.Example.COM/a") == "https://svc.example.com:443"
    assert origin_of("http://[0:0::1]:80/") == "http://[::1]:80"
    assert origin_of("https://bücher.example") == "https://bücher.example:443"
    assert origin_of("https://BÜCHER.example") == "https://BÜCHER.example:443"  # kept exactly
    assert origin_of("https://svc.example.com:x/") == "https://svc.example.com:-1"
    assert origin_of("/relative") == ""
    assert origin_of("https://[::1") == ""


def test_user_info_of_the_endpoint_itself_is_accepted_only_there() -> None:
    policy = OriginPolicy("https://me:pw@svc.example.com/", ["https://ops.example.org"])
    assert policy.trusts("https://me:pw@svc.example.com/x")
    assert policy.trusts("https://svc.example.com/x")
    assert not policy.trusts("https://you:pw@svc.example.com/x")
    assert not policy.trusts("https://me:pw@ops.example.org/x")  # never to another origin


@pytest.mark.parametrize(
    ("endpoint", "allowed", "reason"),
    [
        ("https://svc.example.com/", ["http://svc.example.com"], "unencrypted"),
        ("https://svc.example.com/", ["http://ops.example.org"], "unencrypted"),
        ("https://svc.example.com/", ["ftp://ops.example.org"], "not an http"),
        ("https://svc.example.com/", ["ops.example.org"], "not an http"),
        ("https://svc.example.com:99999/", [], "valid host"),
        ("https://svc example.com/", [], "valid host"),
        ("https://svc.example.com/a b", [], "whitespace"),
        ("ftp://svc.example.com/", [], "valid host"),
    ],
)
def test_policies_that_would_leak_are_not_built(
    endpoint: str, allowed: list[str], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        OriginPolicy(endpoint, allowed)


def test_an_http_endpoint_may_allow_https_and_http_origins() -> None:
    policy = OriginPolicy("http://127.0.0.1:8080/", ["https://ops.example.org", "http://[::1]:9"])
    assert policy.trusts("https://ops.example.org/x")
    assert policy.trusts("http://[::1]:9/x")


def test_unreadable_service_urls_become_typed_refusals() -> None:
    # urlsplit raises ValueError on these; the core must answer with UntrustedOriginError.
    assert resolve("https://svc.example.com/", "https://[::1") == "https://[::1"
    assert with_api_version("https://[::1", "1") == "https://[::1"
    for hostile in ("https://[::1", "http://[evil]/x", "https://svc.example.com:99999/x"):
        core = OperationCore(
            "POST", "https://svc.example.com/jobs", origin_policy=OriginPolicy(ENDPOINT)
        )
        view = ResponseView.build(202, {"Operation-Location": hostile}, None, core.initial_url)
        with pytest.raises(UntrustedOriginError):
            core.receive(view)
        assert core.state is OperationState.NOT_STARTED


# -- two servers on 127.0.0.1: the service, and one that must never be contacted --------------


class Server:
    """A scripted HTTP server on 127.0.0.1 that records every request.

    ``routes`` maps ``(method, path)`` (path with its query) to ``(status, headers, body)``;
    anything else is answered with 404. ``{self}`` and ``{other}`` in header values and
    bodies are replaced by this server's and ``other``'s ``host:port``.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.other: Server | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with server.lock:
                    server.requests.append(
                        (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                status, headers, body = server.routes.get(
                    (self.command, self.path), (404, {}, {"error": {"code": "NotFound"}})
                )
                data = server.fill(json.dumps(body) if body is not None else "").encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, server.fill(value))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def hostport(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.hostport}/"

    def fill(self, text: str) -> str:
        other = self.other.hostport if self.other is not None else ""
        return text.replace("{self}", self.hostport).replace("{other}", other)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """(service, hostile): the client's service, and a server that counts what it gets."""
    service, hostile = Server(), Server()
    service.other, hostile.other = hostile, service
    for server in (service, hostile):
        server.thread.start()
    hostile.routes[("GET", "/ops/1")] = (200, {}, {"status": "Succeeded"})
    hostile.routes[("GET", "/r/1")] = (200, {}, {"stolen": True})
    try:
        yield service, hostile
    finally:
        service.stop()
        hostile.stop()
        assert not service.thread.is_alive()
        assert not hostile.thread.is_alive()


def pipeline_for(service: Server, **kwargs: Any) -> Pipeline:
    instant = PollingPolicy(interval=0.0, floor=0.0, max_retries=0)
    return Pipeline(service.endpoint, polling=instant, request_timeout=5.0, **kwargs)


HOSTILE_STARTS: dict[str, dict[str, str]] = {
    "Operation-Location": {"Operation-Location": "http://{other}/ops/1"},
    "Azure-AsyncOperation": {"Azure-AsyncOperation": "http://{other}/ops/1"},
    "Location": {"Location": "http://{other}/ops/1"},
    "network-path reference": {"Operation-Location": "//{other}/ops/1"},
    "user info on the service": {"Operation-Location": "http://{self}@{other}/ops/1"},
    "backslash": {"Operation-Location": "http://{other}\\@{self}/ops/1"},
    "localhost spelling": {"Operation-Location": "http://localhost:{otherport}/ops/1"},
    "https of the service": {"Operation-Location": "https://{self}/ops/1"},
}


@pytest.mark.integration
@pytest.mark.parametrize("headers", HOSTILE_STARTS.values(), ids=HOSTILE_STARTS.keys())
def test_hostile_polling_urls_are_never_requested(
    servers: tuple[Server, Server], headers: dict[str, str]
) -> None:
    service, hostile = servers
    port = hostile.hostport.rpartition(":")[2]
    headers = {k: v.replace("{otherport}", port) for k, v in headers.items()}
    service.routes[("POST", "/jobs")] = (202, headers, {"status": "Running"})
    with (
        pipeline_for(service, headers={"Authorization": "Bearer CLIENT-SECRET"}) as pipeline,
        pytest.raises(UntrustedOriginError),
    ):
        Operation[Any].start(pipeline, "POST", "jobs").wait_for_completion(timeout=5)
    assert [r[:2] for r in service.requests] == [("POST", "/jobs")]
    assert hostile.requests == []


@pytest.mark.integration
def test_hostile_resource_location_is_never_requested(servers: tuple[Server, Server]) -> None:
    service, hostile = servers
    service.routes[("PUT", "/things/1")] = (201, {"Operation-Location": "/ops/9"}, None)
    service.routes[("GET", "/ops/9")] = (
        200,
        {},
        {"status": "Succeeded", "resourceLocation": "http://{other}/r/1"},
    )
    with pipeline_for(service) as pipeline:
        operation = Operation[Any].start(pipeline, "PUT", "things/1")
        with pytest.raises(UntrustedOriginError):
            operation.wait_for_completion(timeout=5)
    assert [r[:2] for r in service.requests] == [("PUT", "/things/1"), ("GET", "/ops/9")]
    assert hostile.requests == []


@pytest.mark.integration
def test_a_redirect_to_another_origin_is_not_followed(servers: tuple[Server, Server]) -> None:
    service, hostile = servers
    service.routes[("POST", "/jobs")] = (202, {"Operation-Location": "/ops/2"}, None)
    service.routes[("GET", "/ops/2")] = (307, {"Location": "http://{other}/ops/1"}, None)
    with pipeline_for(service, headers={"Authorization": "Bearer CLIENT-SECRET"}) as pipeline:
        operation = Operation[Any].start(pipeline, "POST", "jobs")
        with pytest.raises(LroError):
            operation.wait_for_completion(timeout=5)
    assert hostile.requests == []


@pytest.mark.integration
def test_the_counter_counts_an_allowlisted_origin(servers: tuple[Server, Server]) -> None:
    # The same hostile header, but the client trusts that origin: it is polled. This is what
    # makes the zero counts above mean something.
    service, hostile = servers
    service.routes[("POST", "/jobs")] = (202, {"Operation-Location": "http://{other}/ops/1"}, None)
    with pipeline_for(service, allowed_origins=[hostile.endpoint]) as pipeline:
        operation = Operation[Any].start(pipeline, "POST", "jobs").wait_for_completion(timeout=5)
    assert operation.state is OperationState.SUCCEEDED
    assert [r[:2] for r in hostile.requests] == [("GET", "/ops/1")]


def forge(text: str, **changes: Any) -> str:
    return b64({**unb64(text), **changes})


@pytest.fixture
def demo() -> Iterator[DemoService]:
    with DemoService(polls_to_complete=2, retry_after=None) as service:
        yield service
    assert not service.running


@pytest.mark.integration
def test_tampered_tokens_never_reach_another_server(
    demo: DemoService, servers: tuple[Server, Server]
) -> None:
    _, hostile = servers
    instant = PollingPolicy(interval=0.0, floor=0.0)
    with VectorStoreClient(demo.endpoint, polling=instant, request_timeout=5.0) as client:
        operation = client.create_vector_store("pinned", wait_until_completed=False)
        text = str(operation.rehydration_token)
        assert unb64(text)["o"] == demo.endpoint.rstrip("/")
        forgeries = {
            "origin": forge(text, o=hostile.endpoint.rstrip("/")),
            "polling URL": forge(text, pu=f"{hostile.endpoint}ops/1"),
            "final URL": forge(text, fu=f"{hostile.endpoint}r/1", n="fetch-final"),
            "backslash": forge(text, pu=f"{hostile.endpoint[:-1]}\\@{demo.endpoint[7:]}ops"),
        }
        for forged in forgeries.values():
            with pytest.raises(InvalidTokenError) as info:
                CreateVectorStoreOperation.rehydrate(client, forged)
            assert isinstance(info.value, TokenOriginError)
            assert isinstance(info.value, UntrustedOriginError)
        # Byte-level damage anywhere is refused too, before anything is sent.
        for index in range(0, len(text), 7):
            damaged = text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]
            try:
                resumed = CreateVectorStoreOperation.rehydrate(client, damaged)
            except InvalidTokenError:
                continue
            # A change that still decodes (a digit of the attempt count, say) is harmless:
            # every URL passed the origin check.
            assert resumed.core.next_request_url is not None
            assert resumed.core.next_request_url.startswith(demo.endpoint)
        # The untouched token still finishes the operation with its value.
        resumed = CreateVectorStoreOperation.rehydrate(client, text)
        assert resumed.wait_for_completion(timeout=5).value.name == "pinned"
    assert hostile.requests == []


@pytest.mark.integration
def test_with_signing_any_change_is_refused(
    demo: DemoService, servers: tuple[Server, Server]
) -> None:
    _, hostile = servers
    tokens = TokenPolicy(signer=TokenSigner({"k1": b"k" * 32}))
    instant = PollingPolicy(interval=0.0, floor=0.0)
    with VectorStoreClient(
        demo.endpoint, polling=instant, request_timeout=5.0, tokens=tokens
    ) as client:
        text = str(
            client.create_vector_store("signed", wait_until_completed=False).rehydration_token
        )
        before = len(demo.requests)
        payload = text.partition(".")[0]
        for forged in (
            forge(payload, a=0) + text[len(payload) :],  # a harmless change, still refused
            forge(payload, pu=f"{hostile.endpoint}ops/1") + text[len(payload) :],
            payload,  # the signature dropped
        ):
            with pytest.raises(InvalidTokenError):
                CreateVectorStoreOperation.rehydrate(client, forged)
        assert len(demo.requests) == before
        resumed = CreateVectorStoreOperation.rehydrate(client, text)
        assert resumed.wait_for_completion(timeout=5).value.name == "signed"
    assert hostile.requests == []
