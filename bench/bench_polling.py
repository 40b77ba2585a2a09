"""Per-poll cost of lrokit next to azure-core, google-api-core and a hand-written loop.

Two settings, the same operation life in both: a ``POST`` answered with 202 and an
``Operation-Location`` status monitor, then K status polls (``Running`` until the K-th,
which is ``Succeeded`` with a ``result``: the value, no final GET), for K = 1 and K = 10.

* **In memory** (CPU, no sockets): every contestant sends through its own ``requests``-based
  transport code down to the same fake ``requests.Session`` (:class:`MemorySession`), which
  answers each request with a prebuilt ``requests.Response``. lrokit: its core driven by hand
  and ``Operation`` (``Pipeline(session=...)``); azure-core: ``LROPoller`` +
  ``LROBasePolling(timeout=0)`` over a ``PipelineClient`` whose ``RequestsTransport`` has that
  session; google-api-core: ``operation.from_http_json`` + ``Operation.result()`` with a zero
  polling delay, whose ``api_request`` decodes the same kind of answers in google's
  ``google.longrunning`` JSON form; the floor: a hand-written loop doing ``session.request``,
  ``json.loads`` and a status check.
* **Loopback** (wall time and the client's CPU): the same lrokit ``Operation``, azure-core
  ``LROPoller`` over its default ``RequestsTransport`` and the hand-written loop over a
  ``requests.Session``, against one minimal HTTP server on 127.0.0.1 in another process
  (``bench/_loopback_server.py``); plus the floor of ``requests`` itself: the same requests
  with no JSON decoding and no status check.

Every variant's value is checked before anything is timed. Figures are medians of repeats
that are interleaved (each variant and K once per repeat, in turn), with the collector paused.
Run ``python bench/bench_polling.py`` or ``--quick``; ``bench/run_all.py`` runs it with the
other sections and writes docs/performance.md. Figures are machine-specific: compare ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import requests
from _report import gc_paused
from requests.structures import CaseInsensitiveDict

from lrokit import Operation, OperationCore, Pipeline
from lrokit._core import Action
from lrokit._pipeline import view_of

HERE = Path(__file__).resolve().parent
ENDPOINT = "https://bench.example.test/"
API_VERSION = "2024-05-01"
MONITOR = f"{ENDPOINT}operations/op_1?api-version={API_VERSION}"
START_BODY = {"name": "store", "file_ids": ["file-1", "file-2"]}
RESULT = {"id": "vs_1", "name": "store", "file_counts": {"completed": 3, "failed": 0}}
KS = (1, 10)

#: The in-memory rows, in table order: (key, label).
MEMORY_VARIANTS = (
    ("hand", "hand-written loop (json.loads + status check)"),
    ("core", "lrokit OperationCore, driven by hand"),
    ("operation", "lrokit Operation.start + wait_for_completion"),
    ("azure", "azure-core LROPoller + LROBasePolling"),
    ("google", "google-api-core Operation (from_http_json)"),
)
#: The loopback rows: (key, label).
LOOPBACK_VARIANTS = (
    ("raw", "floor: requests.Session requests only"),
    ("hand", "hand-written requests loop"),
    ("operation", "lrokit Operation.start + wait_for_completion"),
    ("azure", "azure-core LROPoller + LROBasePolling"),
)


# -- the in-memory service --------------------------------------------------------------------


class _Raw:
    """What azure-core's RequestsTransport touches on ``response.raw``."""

    enforce_content_length = False

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _response(status: int, headers: dict[str, str], body: object, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Accepted" if status == 202 else "OK"
    content = json.dumps(body, separators=(",", ":")).encode()
    # The headers the loopback server sends too (a real service sends a few more).
    response.headers = CaseInsensitiveDict(
        {"Content-Type": "application/json", "Content-Length": str(len(content)), **headers}
    )
    response._content = content
    response._content_consumed = True
    response.encoding = "utf-8"
    response.url = url
    response.raw = _Raw()
    return response


@dataclass
class Answers:
    """One protocol's prebuilt answers: the start, the Running polls and the final one."""

    start: requests.Response
    running: list[requests.Response]
    done: requests.Response


def azure_answers() -> Answers:
    start_url = f"{ENDPOINT}start?api-version={API_VERSION}"
    return Answers(
        _response(
            202, {"Operation-Location": MONITOR}, {"id": "op_1", "status": "NotStarted"}, start_url
        ),
        [
            _response(200, {}, {"id": "op_1", "status": "Running", "percentComplete": p}, MONITOR)
            for p in range(100)
        ],
        _response(200, {}, {"id": "op_1", "status": "Succeeded", "result": RESULT}, MONITOR),
    )


def google_answers() -> Answers:
    """The same life in google.longrunning's JSON form (``done`` and a packed ``response``)."""
    name = "operations/op_1"
    url = f"{ENDPOINT}v1/{name}"
    metadata = "type.googleapis.com/google.protobuf.Struct"
    return Answers(
        _response(200, {}, {"name": name, "done": False}, url),
        [
            _response(
                200,
                {},
                {"name": name, "done": False, "metadata": {"@type": metadata, "value": {"p": p}}},
                url,
            )
            for p in range(100)
        ],
        _response(
            200,
            {},
            {"name": name, "done": True, "response": {"@type": metadata, "value": RESULT}},
            url,
        ),
    )


class MemorySession:
    """A stand-in for ``requests.Session`` that answers from memory (no sockets).

    A ``POST`` starts the operation; the K-th ``GET`` after it answers the final status.
    Every contestant sends through it, so the cost of answering is the same for all.
    """

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.polls = 1
        self.count = 0
        self.requests = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.requests += 1
        if method == "POST":
            self.count = 0
            return self.answers.start
        self.count += 1
        if self.count >= self.polls:
            return self.answers.done
        return self.answers.running[min(self.count, 99)]

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        pass


# -- the contestants: each runs one whole operation and returns its value ---------------------


class BenchOperation(Operation[Any]):
    """The lrokit operation class of the benchmark (the value is the decoded JSON)."""


def hand_written(session: Any, start_url: str) -> Any:
    """What a careful user writes without a library: start, then poll the monitor."""
    response = session.request("POST", start_url, json=START_BODY, timeout=30)
    if response.status_code != 202:
        raise RuntimeError(f"start failed: HTTP {response.status_code}")
    monitor = response.headers["Operation-Location"]
    while True:
        response = session.request("GET", monitor, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"poll failed: HTTP {response.status_code}")
        document = json.loads(response.content)
        status = document["status"]
        if status == "Succeeded":
            return document["result"]
        if status in ("Failed", "Canceled"):
            raise RuntimeError(f"operation {status}")


def raw_requests(session: Any, start_url: str, polls: int) -> None:
    """The floor of ``requests`` itself: the same requests, nothing decoded or checked."""
    response = session.request("POST", start_url, json=START_BODY, timeout=30)
    monitor = response.headers["Operation-Location"]
    for _ in range(polls):
        session.request("GET", monitor, timeout=30)


def lrokit_core(pipeline: Pipeline, start_url: str) -> Any:
    """lrokit's sans-I/O core driven by hand (manual driving): the driver's least work."""
    core = OperationCore("POST", start_url, origin_policy=pipeline.origin_policy)
    send = pipeline.session.request
    decision = core.receive(view_of(send("POST", start_url, json=START_BODY, timeout=30)))
    while decision.action is not Action.DONE:
        url = decision.url
        assert url is not None
        decision = core.receive(view_of(send("GET", url, timeout=30)))
    return core.payload


def lrokit_operation(pipeline: Pipeline, start_path: str) -> Any:
    """lrokit's public path: ``Operation.start``, ``wait_for_completion``, ``value``."""
    operation = BenchOperation.start(pipeline, "POST", start_path, json=START_BODY)
    return operation.wait_for_completion(polling_interval=0).value


@dataclass
class AzureClient:
    """azure-core's documented polling path, as generated SDK clients use it."""

    client: Any
    start_url: str

    @classmethod
    def build(cls, endpoint: str, start_url: str, session: Any | None) -> AzureClient:
        from azure.core import PipelineClient
        from azure.core.pipeline.transport import RequestsTransport

        transport = (
            RequestsTransport()
            if session is None
            else RequestsTransport(session=session, session_owner=False)
        )
        return cls(PipelineClient(endpoint, transport=transport), start_url)

    def run(self) -> Any:
        from azure.core.polling import LROPoller
        from azure.core.polling.base_polling import LROBasePolling
        from azure.core.rest import HttpRequest

        # A generated SDK's begin_*: send the start through the client's pipeline, then an
        # LROPoller with LROBasePolling(polling_interval) and a deserialization callback.
        initial = self.client._pipeline.run(HttpRequest("POST", self.start_url, json=START_BODY))
        poller = LROPoller(self.client, initial, _azure_result, LROBasePolling(timeout=0))
        return poller.result()

    def close(self) -> None:
        self.client.close()


def _azure_result(pipeline_response: Any) -> Any:
    return pipeline_response.http_response.json()["result"]


@dataclass
class GoogleClient:
    """google-api-core's HTTP/JSON path: ``from_http_json`` with an ``api_request`` callable."""

    session: MemorySession
    polling: Any = field(init=False)

    def __post_init__(self) -> None:
        from google.api_core.future.polling import DEFAULT_POLLING

        # The documented knob for the delays between polls: none at all here.
        self.polling = DEFAULT_POLLING.with_delay(initial=0.0, maximum=0.0, multiplier=1.0)

    def api_request(self, method: str, path: str, **kwargs: Any) -> Any:
        # What google.cloud._http.JSONConnection.api_request does after the transport:
        # the decoded JSON of the answer.
        return json.loads(self.session.request(method, f"{ENDPOINT}v1/{path}").content)

    def run(self) -> Any:
        from google.api_core import operation
        from google.protobuf import struct_pb2

        started = self.api_request("POST", "stores")
        future = operation.from_http_json(
            started, self.api_request, struct_pb2.Struct, polling=self.polling
        )
        return future.result()


def _google_value(value: Any) -> Any:
    from google.protobuf.json_format import MessageToDict

    document = MessageToDict(value)
    counts = document.get("file_counts", {})
    document["file_counts"] = {k: int(v) for k, v in counts.items()}  # Struct numbers are floats
    return document


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    repeats: int
    memory_batch: float  # seconds of work per in-memory batch (counts are calibrated)
    loopback_batch: float


FULL = Settings(repeats=9, memory_batch=0.25, loopback_batch=0.3)
QUICK = Settings(repeats=3, memory_batch=0.02, loopback_batch=0.03)


@dataclass
class Sample:
    """Medians per operation of one variant at one K."""

    cpu: float
    wall: float
    count: int  # operations per batch

    def per_poll(self, polls: int, wall: bool = False) -> float:
        return (self.wall if wall else self.cpu) / polls


Runner = Callable[[int], Callable[[], Any]]  # K -> one operation


def _batch(run: Callable[[], Any], count: int) -> tuple[float, float]:
    """CPU and wall seconds per operation over ``count`` operations, collector paused."""
    with gc_paused():
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            run()
        return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def measure(
    variants: dict[str, Runner], batch_seconds: float, repeats: int
) -> dict[tuple[str, int], Sample]:
    """Median CPU and wall time per operation of every variant and K, repeats interleaved."""
    counts: dict[tuple[str, int], int] = {}
    for name, make in variants.items():
        for polls in KS:
            run = make(polls)
            run()  # warm up (imports, caches, connections)
            _, wall = _batch(run, 3)
            counts[(name, polls)] = max(3, int(batch_seconds / max(wall, 1e-7)))
    cpu: dict[tuple[str, int], list[float]] = {key: [] for key in counts}
    wall_times: dict[tuple[str, int], list[float]] = {key: [] for key in counts}
    for _ in range(repeats):
        for name, make in variants.items():
            for polls in KS:
                c, w = _batch(make(polls), counts[(name, polls)])
                cpu[(name, polls)].append(c)
                wall_times[(name, polls)].append(w)
    return {
        key: Sample(statistics.median(cpu[key]), statistics.median(wall_times[key]), counts[key])
        for key in counts
    }


def with_polls(session: MemorySession, polls: int, run: Callable[[], Any]) -> Callable[[], Any]:
    def one() -> Any:
        session.polls = polls
        return run()

    return one


def memory_variants(with_azure: bool, with_google: bool) -> dict[str, Runner]:
    """The in-memory contestants, each over its own MemorySession; values checked first."""
    start_path = f"start?api-version={API_VERSION}"
    start_url = ENDPOINT + start_path
    variants: dict[str, Runner] = {}

    hand_session = MemorySession(azure_answers())
    variants["hand"] = lambda k: with_polls(
        hand_session, k, lambda: hand_written(hand_session, start_url)
    )
    core_session = MemorySession(azure_answers())
    core_pipeline = Pipeline(ENDPOINT, session=core_session)  # type: ignore[arg-type]
    variants["core"] = lambda k: with_polls(
        core_session, k, lambda: lrokit_core(core_pipeline, start_url)
    )
    op_session = MemorySession(azure_answers())
    op_pipeline = Pipeline(ENDPOINT, session=op_session)  # type: ignore[arg-type]
    variants["operation"] = lambda k: with_polls(
        op_session, k, lambda: lrokit_operation(op_pipeline, start_path)
    )
    if with_azure:
        azure_session = MemorySession(azure_answers())
        azure = AzureClient.build(ENDPOINT, start_url, azure_session)
        variants["azure"] = lambda k: with_polls(azure_session, k, azure.run)
    if with_google:
        google_session = MemorySession(google_answers())
        google = GoogleClient(google_session)
        variants["google"] = lambda k: with_polls(google_session, k, google.run)

    sessions = {
        "hand": hand_session,
        "core": core_session,
        "operation": op_session,
        **({"azure": azure_session} if with_azure else {}),
        **({"google": google_session} if with_google else {}),
    }
    for name, make in variants.items():
        for polls in KS:
            session = sessions[name]
            before = session.requests
            value = make(polls)()
            value = _google_value(value) if name == "google" else value
            assert value == RESULT, (name, value)
            made = session.requests - before
            assert made == polls + 1, f"{name} made {made} requests for K={polls}"
    return variants


@dataclass
class LoopbackServer:
    """The minimal server in its own process; stopped by :meth:`stop`."""

    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls) -> LoopbackServer:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "_loopback_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            process.wait(timeout=10)
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        return cls(process, int(line.split()[1]))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server's signal to shut down
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def loopback_variants(endpoint: str, with_azure: bool) -> tuple[dict[str, Runner], list[Any]]:
    """The loopback contestants (each with its own connection); values checked first.

    Returns the variants and the things to close afterwards.
    """

    def start_path(polls: int) -> str:
        return f"start?polls={polls}&api-version={API_VERSION}"

    def start_url(polls: int) -> str:
        return endpoint + start_path(polls)

    raw_session = requests.Session()
    hand_session = requests.Session()
    pipeline = Pipeline(endpoint)
    closers: list[Any] = [raw_session, hand_session, pipeline]
    variants: dict[str, Runner] = {
        "raw": lambda k: lambda: raw_requests(raw_session, start_url(k), k),
        "hand": lambda k: lambda: hand_written(hand_session, start_url(k)),
        "operation": lambda k: lambda: lrokit_operation(pipeline, start_path(k)),
    }
    if with_azure:
        clients = {k: AzureClient.build(endpoint, start_url(k), None) for k in KS}
        closers.extend(clients.values())
        variants["azure"] = lambda k: clients[k].run
    for name, make in variants.items():
        if name != "raw":
            for polls in KS:
                assert make(polls)() == RESULT, name
    return variants, closers


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class PollingResults:
    """Everything sections 1 and 2 of the report need."""

    memory: dict[tuple[str, int], Sample]
    loopback: dict[tuple[str, int], Sample]
    settings: Settings
    with_azure: bool
    with_google: bool


def run(settings: Settings) -> PollingResults:
    """Measure both settings."""
    with_azure = available("azure.core")
    with_google = available("google.api_core") and available("google.protobuf")
    memory = measure(
        memory_variants(with_azure, with_google), settings.memory_batch, settings.repeats
    )
    server = LoopbackServer.start()
    try:
        variants, closers = loopback_variants(server.endpoint, with_azure)
        try:
            loopback = measure(variants, settings.loopback_batch, settings.repeats)
        finally:
            for closer in closers:
                closer.close()
    finally:
        server.stop()
    return PollingResults(memory, loopback, settings, with_azure, with_google)


def print_results(results: PollingResults) -> None:
    """A plain-text table of both settings."""
    print("in memory: CPU per operation and per poll (us), ratio to the hand-written loop")
    for key, label in MEMORY_VARIANTS:
        for polls in KS:
            sample = results.memory.get((key, polls))
            if sample is None:
                continue
            floor = results.memory[("hand", polls)]
            print(
                f"  {label:50} K={polls:<2} {sample.cpu * 1e6:10.1f}"
                f" {sample.cpu / polls * 1e6:9.2f}  {sample.cpu / floor.cpu:6.2f}x"
            )
    print("loopback: wall per poll (us), ratio to the hand-written loop; client CPU per poll")
    for key, label in LOOPBACK_VARIANTS:
        for polls in KS:
            sample = results.loopback.get((key, polls))
            if sample is None:
                continue
            floor = results.loopback[("hand", polls)]
            print(
                f"  {label:50} K={polls:<2} {sample.wall / polls * 1e6:9.1f}"
                f"  {sample.wall / floor.wall:6.3f}x  cpu {sample.cpu / polls * 1e6:8.1f}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both settings and print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    args = parser.parse_args(argv)
    print_results(run(QUICK if args.quick else FULL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
