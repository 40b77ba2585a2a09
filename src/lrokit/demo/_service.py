"""An embedded vector-store service that answers like an Azure LRO service, on 127.0.0.1.

Standard library only (``http.server``). Endpoints, all requiring ``?api-version=2024-01-01``:

* ``POST /vector_stores`` with ``{"name": ..., "file_ids": [...]}`` -> 202 with an
  ``Operation-Location`` header, a polling hint and a small status body.
* ``GET /operations/<id>`` -> the status monitor ``{"id", "status", "percentComplete",
  "resourceLocation" (once succeeded), "error" (once failed or canceled)}``.
* ``GET /vector_stores/<id>`` -> the created vector store, once its operation succeeded.

An operation completes after ``duration`` seconds of the service's clock, or, when
``polls_to_complete`` is set, on that status poll (so tests need no waiting at all). A store
whose name starts with ``fail`` ends Failed, one starting with ``cancel`` ends Canceled.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from typing_extensions import Self

__all__ = ["API_VERSION", "DemoService", "RecordedRequest"]

#: The only ``api-version`` the demo service accepts.
API_VERSION = "2024-01-01"

_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request the service received.

    Attributes:
        method: the HTTP method.
        path: the path with its query string, as sent.
        headers: the request headers, names lower-cased.
        body: the request body.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass
class _Job:
    id: str
    store_id: str
    name: str
    file_ids: list[str]
    started: float
    polls: int = 0
    status: str = "NotStarted"
    percent: int = 0


@dataclass
class _State:
    jobs: dict[str, _Job] = field(default_factory=dict)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections from a burst of concurrent clients, which
    # then stall for a SYN retransmit (about a second).
    request_queue_size = 128
    # Handler threads end with their (HTTP/1.0) connection; wait for them on close.
    block_on_close = True


class DemoService:
    """A vector-store LRO service on ``127.0.0.1`` in a background thread it owns.

    Use it as a context manager (``with DemoService() as svc: ...``) or call :meth:`start`
    and :meth:`stop`. :attr:`endpoint` is the base URL; :attr:`requests` lists every request
    seen so far.

    Args:
        port: the TCP port; 0 picks a free one.
        duration: seconds (of ``clock``) after which an operation completes.
        polls_to_complete: when set, an operation completes on this status poll instead,
            whatever the time (1 = the first poll already reports the outcome).
        retry_after: the polling hint sent while an operation is not terminal, in seconds:
            a whole number goes out as ``Retry-After``, a fraction as ``retry-after-ms``;
            None sends no hint.
        clock: a monotonic clock for ``duration`` (inject a fake one in tests).
        log: called with one line per request (None: silent).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        duration: float = 2.0,
        polls_to_complete: int | None = None,
        retry_after: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], object] | None = None,
    ) -> None:
        if duration < 0:
            raise ValueError("duration must be >= 0")
        if polls_to_complete is not None and polls_to_complete < 1:
            raise ValueError("polls_to_complete must be >= 1")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        self.port = port
        self.duration = duration
        self.polls_to_complete = polls_to_complete
        self.retry_after = retry_after
        self.clock = clock
        self.log = log
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the service is accepting requests."""
        return self._server is not None

    @property
    def endpoint(self) -> str:
        """The base URL, such as ``http://127.0.0.1:51234/``."""
        if self._server is None:
            raise RuntimeError("the service is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> Self:
        """Bind 127.0.0.1 and serve in a background thread; returns the service."""
        if self._server is not None:
            raise RuntimeError("the service is already running")
        server = _Server(("127.0.0.1", self.port), _make_handler(self))
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lrokit-demo-service:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and release the port; harmless when not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint if self._server is not None else "stopped"
        return f"<DemoService {where}>"

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests (operations and stores are kept)."""
        with self._state.lock:
            self._state.requests.clear()

    # -- request handling (called from handler threads) ------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)

    def _handle(
        self, method: str, target: str, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        parts = urlsplit(target)
        segments = [s for s in parts.path.split("/") if s]
        versions = parse_qs(parts.query).get("api-version")
        if not versions:
            raise _HttpError(
                400, "MissingApiVersionParameter", "the api-version query parameter is required"
            )
        if versions != [API_VERSION]:
            raise _HttpError(
                400,
                "UnsupportedApiVersionValue",
                f"unsupported api-version {versions[0]!r}; use {API_VERSION!r}",
            )
        if segments == ["vector_stores"]:
            if method != "POST":
                raise _HttpError(405, "MethodNotAllowed", f"{method} is not supported here")
            return self._create(body)
        if len(segments) == 2 and segments[0] in ("operations", "vector_stores"):
            if method != "GET":
                raise _HttpError(405, "MethodNotAllowed", f"{method} is not supported here")
            if segments[0] == "operations":
                return self._monitor(segments[1])
            return self._store(segments[1])
        raise _HttpError(404, "NotFound", f"no such resource: {parts.path}")

    def _create(self, body: bytes) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise _HttpError(400, "InvalidJson", "the request body is not valid JSON") from None
        if not isinstance(document, dict):
            raise _HttpError(400, "InvalidRequest", "the request body must be a JSON object")
        name = document.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _HttpError(400, "InvalidName", "'name' must be a non-empty string")
        file_ids = document.get("file_ids", [])
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise _HttpError(400, "InvalidFileIds", "'file_ids' must be a list of strings")
        job = _Job(
            id=uuid.uuid4().hex,
            store_id="vs_" + uuid.uuid4().hex[:24],
            name=name,
            file_ids=file_ids,
            started=self.clock(),
        )
        with self._state.lock:
            self._state.jobs[job.id] = job
        headers = {"Operation-Location": f"/operations/{job.id}?api-version={API_VERSION}"}
        headers.update(self._hint_headers())
        return 202, headers, {"id": job.id, "status": job.status}

    def _monitor(self, job_id: str) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                raise _HttpError(404, "OperationNotFound", f"no operation {job_id!r}")
            if job.status in ("NotStarted", "Running"):
                self._advance(job)
            document: dict[str, Any] = {
                "id": job.id,
                "status": job.status,
                "percentComplete": job.percent,
            }
            if job.status == "Succeeded":
                document["resourceLocation"] = f"/vector_stores/{job.store_id}"
            elif job.status == "Failed":
                document["error"] = {
                    "code": "VectorStoreCreationFailed",
                    "message": f"vector store {job.name!r} could not be created",
                }
            elif job.status == "Canceled":
                document["error"] = {
                    "code": "OperationCanceled",
                    "message": f"the creation of vector store {job.name!r} was canceled",
                }
            terminal = job.status in ("Succeeded", "Failed", "Canceled")
        return 200, ({} if terminal else self._hint_headers()), document

    def _advance(self, job: _Job) -> None:
        """Move ``job`` on by one status poll (the lock is held)."""
        job.polls += 1
        if self.polls_to_complete is not None:
            done = job.polls >= self.polls_to_complete
            fraction = job.polls / self.polls_to_complete
        else:
            elapsed = self.clock() - job.started
            done = elapsed >= self.duration
            fraction = elapsed / self.duration if self.duration else 1.0
        if not done:
            job.status = "Running"
            job.percent = max(0, min(99, int(fraction * 100)))
            return
        lowered = job.name.lower()
        if lowered.startswith("fail"):
            job.status = "Failed"
        elif lowered.startswith("cancel"):
            job.status = "Canceled"
        else:
            job.status = "Succeeded"
            job.percent = 100
            count = len(job.file_ids)
            self._state.stores[job.store_id] = {
                "id": job.store_id,
                "object": "vector_store",
                "name": job.name,
                "status": "completed",
                "file_counts": {
                    "in_progress": 0,
                    "completed": count,
                    "failed": 0,
                    "cancelled": 0,
                    "total": count,
                },
                "created_at": int(time.time()),
            }

    def _store(self, store_id: str) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        with self._state.lock:
            store = self._state.stores.get(store_id)
        if store is None:
            raise _HttpError(404, "VectorStoreNotFound", f"no vector store {store_id!r}")
        return 200, {}, store

    def _hint_headers(self) -> dict[str, str]:
        hint = self.retry_after
        if hint is None:
            return {}
        if float(hint).is_integer():
            return {"Retry-After": str(int(hint))}
        return {"retry-after-ms": str(round(hint * 1000))}


def _make_handler(service: DemoService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no handler thread outlives stop().
        protocol_version = "HTTP/1.0"
        server_version = "lrokit-demo/1"
        sys_version = ""

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def do_PUT(self) -> None:
            self._dispatch()

        def do_PATCH(self) -> None:
            self._dispatch()

        def do_DELETE(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                length = int(headers.get("content-length", "0") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_BODY:
                body = b""
                outcome: tuple[int, dict[str, str], dict[str, Any] | None] = _error(
                    _HttpError(400, "InvalidContentLength", "bad or too large Content-Length")
                )
            else:
                body = self.rfile.read(length) if length else b""
                outcome = (0, {}, None)
            service._record(
                RecordedRequest(self.command, self.path, MappingProxyType(headers), body)
            )
            if outcome[0] == 0:
                try:
                    outcome = service._handle(self.command, self.path, body)
                except _HttpError as error:
                    outcome = _error(error)
            status, extra, document = outcome
            payload = json.dumps(document).encode() if document is not None else b""
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if document is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            if service.log is not None:
                service.log(f"{self.address_string()} {format % args}")

    return Handler


def _error(error: _HttpError) -> tuple[int, dict[str, str], dict[str, Any]]:
    return error.status, {}, {"error": {"code": error.code, "message": error.message}}
