"""An embedded vector-store service that answers like an Azure LRO service, on 127.0.0.1.

Standard library only (``http.server``). Endpoints, all requiring ``?api-version=2024-01-01``:

* ``POST /vector_stores`` with ``{"name": ..., "file_ids": [...]}`` -> 202 with an
  ``Operation-Location`` header, a polling hint and a small status body.
* ``GET /operations/<id>`` -> the status monitor ``{"id", "status", "percentComplete",
  "resourceLocation" (once succeeded), "error" (once failed or canceled)}``.
* ``GET /vector_stores/<id>`` -> the created vector store, once its operation succeeded.

* ``POST /operations/<id>:cancel`` -> cancels a running operation and answers with its
  status monitor (``Canceled``); 409 once it has completed.

An operation completes after ``duration`` seconds of the service's clock, or, when
``polls_to_complete`` is set, on that status poll (so tests need no waiting at all). A store
whose name starts with ``fail`` ends Failed, one starting with ``cancel`` ends Canceled.
A start request with an ``Operation-Id`` header that the service has seen before is
answered with the operation it created then, not a new one.

ARM behaviours (``/arm/...``, the same ``api-version``), each completing on the poll that
``polls_to_complete`` (or ``duration``) says:

* ``POST /arm/jobs`` with ``{"name": ..., "start_faults": [500, ...], "moves": n,
  "outcome": 200, "result": {...}}`` -> the first starts of that name are answered with the
  ``start_faults`` statuses (with a Retry-After; the start is not processed), then 202 with
  a ``Location`` header. ``GET`` of the Location URL answers 202 while running, each of the
  first ``moves`` times with a new ``Location`` (a relative one, on a new path): an old URL
  answers 404 once the operation has moved on. Done, it answers ``outcome`` (200, 201, 204,
  or an error status) with ``result`` as the body (an ``error`` object for an error status).
* ``POST /arm/exports`` with ``{"name": ...}`` -> 202 with ``Azure-AsyncOperation`` and
  ``Location``; the monitor answers ``InProgress``, then ``Succeeded`` with the export itself
  in the same answer (``id``, ``name``, ``properties``); the Location URL answers 200 too.
* ``PUT /arm/resources/<name>`` -> a bare 201 (no polling header, no provisioningState);
  ``GET`` of the same URL answers ``provisioningState`` ``Creating``, then ``Succeeded``.

Unusable answers, on purpose: ``"no_poll": true`` in a ``/arm/jobs`` start gets a bare 202
(nothing to poll); a resource whose name starts with ``html`` is answered 200 with an HTML
page instead of JSON, one starting with ``empty`` is polled with empty 200 answers.

Fault injection (``faults=FaultPlan(...)``) makes some answers go wrong on purpose: 503 or
429 with a Retry-After, a connection closed without an answer, a late answer, a truncated or
non-JSON body; see :class:`FaultPlan`.
"""

from __future__ import annotations

import contextlib
import enum
import json
import random
import socket
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

__all__ = [
    "API_VERSION",
    "DemoService",
    "Fault",
    "FaultPlan",
    "OperationRecord",
    "RecordedRequest",
]

#: The only ``api-version`` the demo service accepts.
API_VERSION = "2024-01-01"

_MAX_BODY = 64 * 1024
#: An answer: status, headers, and a JSON document (bytes: a body that is sent as it is).
_Outcome = tuple[int, dict[str, str], dict[str, Any] | bytes | None]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the service received.

    Attributes:
        method: the HTTP method.
        path: the path with its query string, as sent.
        headers: the request headers, names lower-cased.
        body: the request body.
        fault: the fault injected into the answer (a :class:`Fault` value), or None.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    fault: str | None = None


class Fault(str, enum.Enum):
    """A way in which the demo service answers badly on purpose."""

    UNAVAILABLE = "unavailable"
    """HTTP 503 with a Retry-After hint; the request is not processed."""
    THROTTLED = "throttled"
    """HTTP 429 with a Retry-After hint; the request is not processed."""
    DROPPED = "dropped"
    """The connection is closed without an answer. A start request *is* processed first
    (the answer is lost, not the request), which is what makes blind retries dangerous."""
    SLOW = "slow"
    """The right answer, :attr:`FaultPlan.slow_seconds` late."""
    TRUNCATED = "truncated"
    """HTTP 200 whose JSON body is cut off half-way; a poll is not processed."""
    INVALID = "invalid"
    """HTTP 200 with an HTML page instead of JSON; a poll is not processed."""


@dataclass(frozen=True)
class FaultPlan:
    """How often the demo service injects each :class:`Fault`.

    Each rate is the probability that one request gets that fault (their sum is at most 1).
    Faults hit status polls and final-resource GETs, and start requests too when ``starts``.
    The draw for a request depends only on ``seed``, the operation's name and how many
    requests for that operation and resource came before, so a run with the same names and
    seed meets the same faults whatever the thread timing.

    Args:
        unavailable, throttled, dropped, slow, truncated, invalid: the rates.
        retry_after: the hint sent with 503 and 429, in seconds (a fraction goes out as
            ``retry-after-ms``, a whole number as ``Retry-After``).
        slow_seconds: how late a slow answer is.
        seed: the seed of the draws.
        starts: inject faults into start requests as well (a start with a truncated or
            invalid body keeps its headers, so it can still be followed).
    """

    unavailable: float = 0.0
    throttled: float = 0.0
    dropped: float = 0.0
    slow: float = 0.0
    truncated: float = 0.0
    invalid: float = 0.0
    retry_after: float = 1.0
    slow_seconds: float = 0.05
    seed: int = 0
    starts: bool = False

    def __post_init__(self) -> None:
        rates = self.rates()
        if any(not 0.0 <= rate <= 1.0 for rate in rates.values()):
            raise ValueError("every fault rate is between 0 and 1")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("retry_after and slow_seconds must be >= 0")

    @classmethod
    def spread(cls, rate: float, **settings: Any) -> FaultPlan:
        """A plan that gives each of the six faults an equal share of ``rate``."""
        share = rate / len(Fault)
        rates: dict[str, Any] = {fault.value: share for fault in Fault}
        return cls(**rates, **settings)

    def rates(self) -> dict[Fault, float]:
        """Each fault's rate."""
        return {fault: float(getattr(self, fault.value)) for fault in Fault}

    @property
    def total(self) -> float:
        """The probability that a request gets some fault."""
        return sum(self.rates().values())

    def draw(self, key: str) -> Fault | None:
        """The fault for the request identified by ``key`` (deterministic), or None."""
        # A string seed is hashed with SHA-512 by random.Random: stable across runs and
        # independent of PYTHONHASHSEED.
        point = random.Random(f"{self.seed}|{key}").random()
        for fault, rate in self.rates().items():
            if point < rate:
                return fault
            point -= rate
        return None


@dataclass(frozen=True)
class OperationRecord:
    """What the service knows about one operation it created.

    Attributes:
        id: the operation's id (``/operations/<id>``).
        store_id: the id of the vector store it creates.
        name: the requested name.
        status: its status now.
        polls: the status polls it has answered.
        operation_id: the ``Operation-Id`` header of its start request, or None.
    """

    id: str
    store_id: str
    name: str
    status: str
    polls: int
    operation_id: str | None


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
    operation_id: str | None = None


@dataclass
class _ArmJob:
    """An operation of the ``/arm/...`` endpoints (see the module doc)."""

    id: str
    name: str
    started: float
    outcome: int = 200
    result: Any = None
    moves: int = 0
    step: int = 0  # the Location path that is current: /arm/results/<id>/<step>
    polls: int = 0


@dataclass
class _State:
    jobs: dict[str, _Job] = field(default_factory=dict)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Start requests by their Operation-Id header: a repeated start finds its operation.
    by_operation_id: dict[str, str] = field(default_factory=dict)
    # Requests seen per fault key, so that each repetition gets a draw of its own.
    fault_counts: dict[str, int] = field(default_factory=dict)
    arm_jobs: dict[str, _ArmJob] = field(default_factory=dict)
    # ARM start requests seen per name (for ``start_faults``), and PUT resources by name.
    arm_starts: dict[str, int] = field(default_factory=dict)
    arm_resources: dict[str, _ArmJob] = field(default_factory=dict)


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
    # Handler threads end with their connection; wait for them on close.
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Open (keep-alive) connections, shut down on stop so that no handler thread waits
        # for a next request that will never come.
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (their handler threads then finish)."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


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
        faults: the fault-injection plan; None (the default) answers every request well.
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
        faults: FaultPlan | None = None,
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
        self.faults = faults
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
        server.close_connections()
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

    def operations(self) -> list[OperationRecord]:
        """Every operation the service has created, in creation order."""
        with self._state.lock:
            return [
                OperationRecord(j.id, j.store_id, j.name, j.status, j.polls, j.operation_id)
                for j in self._state.jobs.values()
            ]

    # -- request handling (called from handler threads) ------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)

    def _handle(
        self, method: str, target: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> _Outcome:
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
        if segments[:1] == ["arm"]:
            return self._arm(method, segments[1:], body)
        if segments == ["vector_stores"]:
            if method != "POST":
                raise _HttpError(405, "MethodNotAllowed", f"{method} is not supported here")
            return self._create(body, (headers or {}).get("operation-id"))
        if len(segments) == 2 and segments[0] == "operations" and segments[1].endswith(":cancel"):
            if method != "POST":
                raise _HttpError(405, "MethodNotAllowed", f"{method} is not supported here")
            return self._cancel(segments[1][: -len(":cancel")])
        if len(segments) == 2 and segments[0] in ("operations", "vector_stores"):
            if method != "GET":
                raise _HttpError(405, "MethodNotAllowed", f"{method} is not supported here")
            if segments[0] == "operations":
                return self._monitor(segments[1])
            return self._store(segments[1])
        raise _HttpError(404, "NotFound", f"no such resource: {parts.path}")

    def _create(self, body: bytes, operation_id: str | None = None) -> _Outcome:
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
            operation_id=operation_id,
        )
        with self._state.lock:
            known = self._state.by_operation_id.get(operation_id) if operation_id else None
            if known is not None:
                job = self._state.jobs[known]  # a repeated start: the same operation
            else:
                self._state.jobs[job.id] = job
                if operation_id:
                    self._state.by_operation_id[operation_id] = job.id
        headers = {"Operation-Location": f"/operations/{job.id}?api-version={API_VERSION}"}
        headers.update(self._hint_headers())
        return 202, headers, {"id": job.id, "status": job.status}

    def _monitor(self, job_id: str) -> _Outcome:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                raise _HttpError(404, "OperationNotFound", f"no operation {job_id!r}")
            if job.status in ("NotStarted", "Running"):
                self._advance(job)
            document = self._status_document(job)
            terminal = job.status in ("Succeeded", "Failed", "Canceled")
        return 200, ({} if terminal else self._hint_headers()), document

    def _cancel(self, job_id: str) -> _Outcome:
        with self._state.lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                raise _HttpError(404, "OperationNotFound", f"no operation {job_id!r}")
            if job.status in ("Succeeded", "Failed", "Canceled"):
                raise _HttpError(
                    409, "OperationCompleted", f"the operation has already {job.status.lower()}"
                )
            job.status = "Canceled"
            document = self._status_document(job)
        return 200, {}, document

    @staticmethod
    def _status_document(job: _Job) -> dict[str, Any]:
        """The status monitor of ``job``: what a poll and a cancel request answer with."""
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
        return document

    def _progress(self, polls: int, started: float) -> tuple[bool, float]:
        """Whether an operation started at ``started`` is done on its poll number ``polls``,
        and the fraction of its work done."""
        if self.polls_to_complete is not None:
            return polls >= self.polls_to_complete, polls / self.polls_to_complete
        elapsed = self.clock() - started
        return elapsed >= self.duration, elapsed / self.duration if self.duration else 1.0

    def _advance(self, job: _Job) -> None:
        """Move ``job`` on by one status poll (the lock is held)."""
        job.polls += 1
        done, fraction = self._progress(job.polls, job.started)
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

    # -- ARM behaviours (/arm/...) ---------------------------------------------------------

    def _arm(self, method: str, segments: list[str], body: bytes) -> _Outcome:
        route = (method, segments[0] if segments else "", len(segments))
        if route in (("POST", "jobs", 1), ("POST", "exports", 1)):
            return self._arm_start(segments[0], body)
        if route == ("GET", "results", 3):
            return self._arm_location(segments[1], segments[2])
        if route == ("GET", "asyncops", 2):
            return self._arm_monitor(segments[1])
        if route[1:] == ("resources", 2) and method in ("PUT", "GET"):
            return self._arm_resource(method, segments[1])
        raise _HttpError(404, "NotFound", f"no such ARM resource: {'/'.join(segments)}")

    def _arm_start(self, kind: str, body: bytes) -> _Outcome:
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise _HttpError(400, "InvalidJson", "the request body is not valid JSON") from None
        name = document.get("name") if isinstance(document, dict) else None
        if not isinstance(name, str) or not name:
            raise _HttpError(400, "InvalidName", "'name' must be a non-empty string")
        faults = document.get("start_faults", [])
        if document.get("no_poll"):
            return 202, {}, None  # accepted, with nothing to follow it by
        with self._state.lock:
            seen = self._state.arm_starts.get(name, 0)
            self._state.arm_starts[name] = seen + 1
            if seen < len(faults):  # answered with an error, not processed
                code = int(faults[seen])
                return code, self._hint_headers(), {"error": {"code": "Busy", "message": "later"}}
            job = _ArmJob(
                uuid.uuid4().hex,
                name,
                self.clock(),
                outcome=int(document.get("outcome", 200)),
                result=document.get("result", {"name": name}),
                moves=int(document.get("moves", 0)),
            )
            self._state.arm_jobs[job.id] = job
        query = f"?api-version={API_VERSION}"
        headers = {"Location": f"/arm/results/{job.id}/0{query}", **self._hint_headers()}
        if kind == "exports":
            headers["Azure-AsyncOperation"] = f"/arm/asyncops/{job.id}{query}"
        return 202, headers, None

    def _arm_job(self, job_id: str) -> _ArmJob:
        job = self._state.arm_jobs.get(job_id)
        if job is None:
            raise _HttpError(404, "OperationNotFound", f"no operation {job_id!r}")
        return job

    def _arm_location(self, job_id: str, step: str) -> _Outcome:
        with self._state.lock:
            job = self._arm_job(job_id)
            if step != str(job.step):
                # An earlier URL still answers, as ARM's do (a client resuming from an older
                # token must not read the move as a failure): still running, and where.
                headers = {
                    **self._hint_headers(),
                    "Location": f"{job.step}?api-version={API_VERSION}",
                }
                return 202, headers, None
            job.polls += 1
            done, _ = self._progress(job.polls, job.started)
            if not done or job.step < job.moves:
                headers = self._hint_headers()
                if job.step < job.moves:
                    job.step += 1  # relative to this URL: the next step's path
                    headers["Location"] = f"{job.step}?api-version={API_VERSION}"
                return 202, headers, None
        if job.outcome >= 400:
            failure = {"code": "OperationFailed", "message": f"{job.name!r} failed"}
            return job.outcome, {}, {"error": failure}
        return job.outcome, {}, None if job.outcome == 204 else job.result

    def _arm_monitor(self, job_id: str) -> _Outcome:
        with self._state.lock:
            job = self._arm_job(job_id)
            job.polls += 1
            done, _ = self._progress(job.polls, job.started)
        if not done:
            return 200, self._hint_headers(), {"id": job.id, "status": "InProgress"}
        export = {"kind": "export", "output": f"exports/{job.name}.json"}
        document = {"id": job.id, "name": job.name, "status": "Succeeded", "properties": export}
        return 200, {}, document

    def _arm_resource(self, method: str, name: str) -> _Outcome:
        with self._state.lock:
            if method == "PUT":
                if name.startswith("html"):
                    return 200, {}, b"<html><body>Created</body></html>"  # not JSON
                self._state.arm_resources[name] = _ArmJob(name, name, self.clock())
                return 201, {}, {"name": name}  # nothing says it is still being created
            job = self._state.arm_resources.get(name)
            if job is None:
                raise _HttpError(404, "ResourceNotFound", f"no resource {name!r}")
            job.polls += 1
            done, _ = self._progress(job.polls, job.started)
        if name.startswith("empty"):
            return 200, {}, None  # no body: no provisioningState to read
        state = "Succeeded" if done else "Creating"
        headers = {} if done else self._hint_headers()
        return 200, headers, {"name": name, "properties": {"provisioningState": state}}

    def _store(self, store_id: str) -> _Outcome:
        with self._state.lock:
            store = self._state.stores.get(store_id)
        if store is None:
            raise _HttpError(404, "VectorStoreNotFound", f"no vector store {store_id!r}")
        return 200, {}, store

    def _hint_headers(self, hint: float | None = None) -> dict[str, str]:
        hint = self.retry_after if hint is None else hint
        if hint is None:
            return {}
        if float(hint).is_integer():
            return {"Retry-After": str(int(hint))}
        return {"retry-after-ms": str(round(hint * 1000))}

    # -- fault injection -------------------------------------------------------------------

    def _fault_for(self, method: str, target: str, body: bytes) -> Fault | None:
        """The fault to inject into the answer to this request, or None."""
        plan = self.faults
        if plan is None:
            return None
        segments = [s for s in urlsplit(target).path.split("/") if s]
        if method == "POST" and segments == ["vector_stores"]:
            if not plan.starts:
                return None
            try:
                name = json.loads(body or b"null").get("name")
            except (ValueError, AttributeError):
                return None
            subject = f"start:{name}"
        elif method == "GET" and len(segments) == 2:
            with self._state.lock:
                if segments[0] == "operations":
                    job = self._state.jobs.get(segments[1])
                    name = job.name if job is not None else None
                else:
                    store = self._state.stores.get(segments[1])
                    name = store["name"] if store is not None else None
            if name is None:
                return None
            subject = f"{segments[0]}:{name}"
        else:
            return None
        with self._state.lock:
            count = self._state.fault_counts.get(subject, 0)
            self._state.fault_counts[subject] = count + 1
        return plan.draw(f"{subject}:{count}")


def _make_handler(service: DemoService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keep-alive: thousands of concurrent operations need not open a connection
        # per request (and run out of ports). stop() shuts open connections down, and an idle
        # one closes after ``timeout`` seconds, so no handler thread outlives the service.
        protocol_version = "HTTP/1.1"
        timeout = 10
        # Headers and body are written separately: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK hold each answer back ~40 ms on a kept-alive socket.
        disable_nagle_algorithm = True
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
                outcome: _Outcome = _error(
                    _HttpError(400, "InvalidContentLength", "bad or too large Content-Length")
                )
                fault = None
            else:
                body = self.rfile.read(length) if length else b""
                outcome = (0, {}, None)
                fault = service._fault_for(self.command, self.path, body)
            service._record(
                RecordedRequest(
                    self.command,
                    self.path,
                    MappingProxyType(headers),
                    body,
                    None if fault is None else fault.value,
                )
            )
            plan = service.faults
            if plan is not None and fault in (Fault.UNAVAILABLE, Fault.THROTTLED):
                code = 503 if fault is Fault.UNAVAILABLE else 429
                why = _HttpError(code, "ServiceBusy", "injected fault: try again later")
                busy = _error(why)
                self._answer(
                    busy[0], {**busy[1], **service._hint_headers(plan.retry_after)}, busy[2]
                )
                return
            is_poll = self.command == "GET"
            if fault in (Fault.TRUNCATED, Fault.INVALID) and is_poll:
                # A broken answer that the service never produced: the poll is not counted.
                self._garbled(fault, b'{"id": "op", "status": "Succeeded", "result": {"id"')
                return
            if fault is Fault.DROPPED and is_poll:
                self.close_connection = True  # nothing is written: the client sees a reset
                return
            if outcome[0] == 0:
                try:
                    outcome = service._handle(self.command, self.path, body, headers)
                except _HttpError as error:
                    outcome = _error(error)
            if fault is Fault.DROPPED:
                self.close_connection = True  # processed, then the answer is lost
                return
            if plan is not None and fault is Fault.SLOW:
                time.sleep(plan.slow_seconds)
            status, extra, document = outcome
            if fault in (Fault.TRUNCATED, Fault.INVALID):
                payload = json.dumps(document).encode() if document is not None else b"{}"
                self._garbled(fault, payload, status, extra)
                return
            self._answer(status, extra, document)

        def _answer(
            self, status: int, extra: dict[str, str], document: dict[str, Any] | bytes | None
        ) -> None:
            if isinstance(document, bytes):
                payload, kind = document, "text/html"
            else:
                payload = json.dumps(document).encode() if document is not None else b""
                kind = "application/json"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if document is not None:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _garbled(
            self,
            fault: Fault,
            payload: bytes,
            status: int = 200,
            extra: dict[str, str] | None = None,
        ) -> None:
            if fault is Fault.TRUNCATED:
                body, kind = payload[: max(1, len(payload) // 2)], "application/json"
            else:
                body, kind = b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
            self.send_response(status)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if service.log is not None:
                service.log(f"{self.address_string()} {format % args}")

    return Handler


def _error(error: _HttpError) -> tuple[int, dict[str, str], dict[str, Any]]:
    return error.status, {}, {"error": {"code": error.code, "message": error.message}}
