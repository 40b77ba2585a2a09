"""Many concurrent async operations: CPU per poll and memory per pending operation.

Run ``python bench/bench_async.py`` (10,000 concurrent operations in memory and over loopback
HTTP against the embedded demo service; a couple of minutes) or ``--quick`` (small sizes, for
CI). Every figure is printed next to a floor measured in the same run, as a ratio, and each
time figure is the median of interleaved repeats. ``--check`` exits with 1 when a target is
missed; otherwise the exit code is 0, since this is a report. See ``bench/README.md``.

- in memory: the operations poll an in-process sender (one ``asyncio.sleep(0)`` per request,
  prebuilt answers), so the figure is lrokit's own cost. Floor: one task per operation doing
  ``await asyncio.sleep(0)``, ``json.loads`` and a status check per poll.
- loopback: the operations start, poll and fetch their result from ``DemoService`` on
  127.0.0.1 through httpx. The service runs in a process of its own, so that neither its CPU
  nor its memory is counted. Floors: the in-memory one, and plain httpx GETs of the same
  service with a JSON decode and a status check (the least an httpx poller does).
- memory: ``tracemalloc`` bytes still allocated while all operations are pending, / N: the
  operation, its core and the task waiting on it, when every one is waiting for an answer
  (a request in flight) or sleeping before its next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import multiprocessing
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
from _report import gc_paused, print_machine, ratio, us, verdict

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    OperationState,
    PollingPolicy,
    ResponseView,
    async_wait_all,
)
from lrokit.demo import API_VERSION, CreateVectorStoreOperation, DemoService, VectorStore

ENDPOINT = "https://bench.example.test/"
KIB = 1024
TERMINAL = frozenset({"Succeeded", "Failed", "Canceled"})

# Targets (see bench/README.md).
POLL_RATIO_TARGET = 3.0
PENDING_BYTES_TARGET = 4 * KIB


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    operations: int  # concurrent operations in memory
    running_polls: int  # Running answers before Succeeded, in memory
    repeats: int
    http_operations: int  # concurrent operations over loopback
    http_in_flight: int  # the bound on requests in flight over loopback


FULL = Settings(10_000, 20, 3, 10_000, 8)
QUICK = Settings(1_000, 20, 3, 200, 8)


class AsyncCreateVectorStore(AsyncOperation[VectorStore]):
    """The async twin of the demo's LRO subclient."""

    value_type = VectorStore
    token_kind = CreateVectorStoreOperation.kind()


# -- in memory -------------------------------------------------------------------------------


def monitor_bodies(running_polls: int) -> list[bytes]:
    """What each operation's monitor answers, in order: Running with progress, Succeeded."""
    bodies = [
        json.dumps({"id": "op", "status": "Running", "percentComplete": i}).encode()
        for i in range(running_polls)
    ]
    result = {"id": "vs_1", "name": "store", "file_counts": {"completed": 3, "failed": 0}}
    bodies.append(json.dumps({"id": "op", "status": "Succeeded", "result": result}).encode())
    return bodies


class MemoryService:
    """An AsyncSender answering each operation's polls from prebuilt views."""

    transport_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, bodies: list[bytes]) -> None:
        self.views = [ResponseView.build(200, {}, body) for body in bodies]
        self.last = len(self.views) - 1
        self.polls: dict[str, int] = {}
        self.requests = 0

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Any,
        **options: Any,
    ) -> ResponseView:
        await asyncio.sleep(0)  # one turn of the event loop, as a real request takes
        self.requests += 1
        count = self.polls.get(url, 0)
        self.polls[url] = count + 1
        return self.views[min(count, self.last)]

    async def aclose(self) -> None:
        pass


class Gate:
    """An AsyncSender whose requests wait until the gate opens (requests in flight)."""

    transport_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.answer = ResponseView.build(200, {}, b'{"status": "Succeeded", "result": 1}')

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Any,
        **options: Any,
    ) -> ResponseView:
        await self.open.wait()
        return self.answer

    async def aclose(self) -> None:
        pass


def running_operations(pipeline: AsyncPipeline, count: int) -> list[AsyncOperation[Any]]:
    """Operations whose 202 start response has been received (fed by hand: no request)."""
    operations = []
    for number in range(count):
        monitor = f"{ENDPOINT}operations/op_{number}?api-version={API_VERSION}"
        start = ResponseView.build(202, {"Operation-Location": monitor}, b"", ENDPOINT)
        operation: AsyncOperation[Any] = AsyncOperation.prepare(pipeline, "POST", "vector_stores")
        operation.receive(start)
        operations.append(operation)
    return operations


async def cpu_of(run: Callable[[], Awaitable[int]]) -> float:
    """CPU seconds per poll of ``run`` (which returns its number of polls), gc paused."""
    with gc_paused():
        began = time.process_time()
        polls = await run()
        elapsed = time.process_time() - began
    return elapsed / polls


async def memory_floor_poll(settings: Settings) -> float:
    bodies = monitor_bodies(settings.running_polls)

    async def one() -> int:
        done = 0
        while True:
            await asyncio.sleep(0)
            document = json.loads(bodies[done])
            done += 1
            if document["status"] in TERMINAL:
                return done

    async def run() -> int:
        return sum(await asyncio.gather(*(one() for _ in range(settings.operations))))

    return await cpu_of(run)


async def memory_lrokit_poll(settings: Settings, helper: bool) -> float:
    service = MemoryService(monitor_bodies(settings.running_polls))
    async with AsyncPipeline(ENDPOINT, service, polling=PollingPolicy(interval=0)) as pipeline:
        operations = running_operations(pipeline, settings.operations)

        async def run() -> int:
            if helper:
                await async_wait_all(operations, max_in_flight=settings.operations)
            else:
                await asyncio.gather(*(op.wait_for_completion() for op in operations))
            return service.requests

        seconds = await cpu_of(run)
    expected = {"id": "vs_1", "name": "store", "file_counts": {"completed": 3, "failed": 0}}
    assert all(op.value == expected for op in operations), "every operation must succeed"
    assert service.requests == settings.operations * (settings.running_polls + 1)
    return seconds


async def pending_floor(count: int) -> float:
    """Bytes per pending floor operation: a task awaiting its answer, and its state."""
    gate = asyncio.Event()

    async def one(state: dict[str, str]) -> str:
        await gate.wait()
        state["status"] = json.loads(b'{"status": "Succeeded"}')["status"]
        return state["status"]

    urls = [f"{ENDPOINT}operations/op_{n}?api-version={API_VERSION}" for n in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(one({"url": url, "status": "Running"})) for url in urls]
    await asyncio.sleep(0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gate.set()
    await asyncio.gather(*tasks)
    return (after - before) / count


async def pending_lrokit(count: int, sleeping: bool) -> float:
    """Bytes per pending operation (created in the measurement): one request in flight each,
    or each sleeping before its next poll."""
    gate = Gate()
    interval = 3600.0 if sleeping else 0.0
    async with AsyncPipeline(
        ENDPOINT, gate, polling=PollingPolicy(interval=interval, cap=3600)
    ) as pipeline:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        operations = running_operations(pipeline, count)
        tasks = [asyncio.ensure_future(op.wait_for_completion()) for op in operations]
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gate.open.set()
        if sleeping:
            for task in tasks:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    if not sleeping:
        assert all(op.value == 1 for op in operations)
    else:
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
    return (after - before) / count


# -- loopback HTTP -----------------------------------------------------------------------------


def serve(connection: Connection) -> None:
    """The demo service in a child process, answering the parent's questions until "stop"."""
    with DemoService(polls_to_complete=1, retry_after=None) as service:
        connection.send(service.endpoint)
        while True:
            question = connection.recv()
            if question == "requests":
                connection.send(len(service.requests))
            elif question == "monitors":
                connection.send(
                    [
                        f"{service.endpoint}operations/{record.id}?api-version={API_VERSION}"
                        for record in service.operations()
                    ]
                )
            else:
                return


class RemoteService:
    """The parent's handle on the service process."""

    def __init__(self, connection: Connection, endpoint: str) -> None:
        self.connection = connection
        self.endpoint = endpoint

    def ask(self, question: str) -> Any:
        self.connection.send(question)
        return self.connection.recv()


@contextmanager
def service_process() -> Iterator[RemoteService]:
    """Start the demo service in a child process on 127.0.0.1; stop it afterwards."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child,), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the demo service process did not start within 60 s")
        yield RemoteService(parent, parent.recv())
    finally:
        parent.send("stop")
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join(5)


def http_client(settings: Settings) -> httpx.AsyncClient:
    size = settings.http_in_flight
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size)
    )


async def http_lrokit(service: RemoteService, settings: Settings) -> tuple[float, int]:
    """CPU seconds per request for N operations started, polled and read."""
    async with (
        http_client(settings) as client,
        AsyncPipeline(service.endpoint, client, polling=PollingPolicy(interval=0.001)) as p,
    ):
        operations = [
            AsyncCreateVectorStore.prepare(
                p,
                "POST",
                f"vector_stores?api-version={API_VERSION}",
                json={"name": f"store-{n}"},
            )
            for n in range(settings.http_operations)
        ]
        before = service.ask("requests")
        gc.collect()
        began = time.process_time()
        result = await async_wait_all(operations, max_in_flight=settings.http_in_flight)
        elapsed = time.process_time() - began
        requests = service.ask("requests") - before
    assert not result.pending
    assert [op.value.name for op in operations] == [
        f"store-{n}" for n in range(settings.http_operations)
    ]
    return elapsed / requests, requests


async def http_floor(settings: Settings, urls: list[str]) -> float:
    """CPU seconds per request of plain httpx GETs with a JSON decode and a status check."""
    async with http_client(settings) as client:
        limiter = asyncio.Semaphore(settings.http_in_flight)

        async def one(url: str) -> int:
            async with limiter:
                response = await client.get(url)
            return 1 if json.loads(response.content)["status"] in TERMINAL else 0

        gc.collect()
        began = time.process_time()
        done = await asyncio.gather(*(one(url) for url in urls))
        elapsed = time.process_time() - began
    assert sum(done) == len(urls)
    return elapsed / len(urls)


async def http_pending(service: RemoteService, settings: Settings) -> tuple[float, float]:
    """Bytes per operation pending over loopback (started, sleeping before its first poll),
    and the part of them that is the last ``httpx.Response`` (with its request), which each
    operation keeps for ``get_raw_response()``: measured by dropping those references."""
    async with (
        http_client(settings) as client,
        AsyncPipeline(
            service.endpoint, client, polling=PollingPolicy(interval=3600, cap=3600)
        ) as p,
    ):
        await client.get(f"{service.endpoint}warm-up")  # one-time imports and the pool
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        operations = [
            AsyncCreateVectorStore.prepare(
                p, "POST", f"vector_stores?api-version={API_VERSION}", json={"name": f"s{n}"}
            )
            for n in range(settings.http_operations)
        ]
        task = asyncio.ensure_future(
            async_wait_all(operations, max_in_flight=settings.http_in_flight)
        )
        while any(op.state is OperationState.NOT_STARTED for op in operations):
            await asyncio.sleep(0.01)
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - before
        kept = [op._response for op in operations]
        for operation in operations:
            operation._response = None
        del kept
        gc.collect()
        without = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    count = settings.http_operations
    return total / count, (total - without) / count


# -- reporting -------------------------------------------------------------------------------


async def measure_memory_side(settings: Settings) -> dict[str, list[float]]:
    """Repeats of the in-memory figures, interleaved so that a slow moment hits all alike."""
    figures: dict[str, list[float]] = {
        "floor": [],
        "wait": [],
        "wait_all": [],
        "floor_mem": [],
        "in_flight_mem": [],
        "sleeping_mem": [],
    }
    for repeat in range(settings.repeats):
        figures["floor"].append(await memory_floor_poll(settings))
        figures["wait"].append(await memory_lrokit_poll(settings, helper=False))
        figures["wait_all"].append(await memory_lrokit_poll(settings, helper=True))
        if repeat < 2:
            figures["floor_mem"].append(await pending_floor(settings.operations))
            figures["in_flight_mem"].append(await pending_lrokit(settings.operations, False))
            figures["sleeping_mem"].append(await pending_lrokit(settings.operations, True))
    return figures


async def measure_http_side(service: RemoteService, settings: Settings) -> dict[str, float]:
    per_request, requests = await http_lrokit(service, settings)
    urls = service.ask("monitors")
    floor = await http_floor(settings, urls + urls)
    pending, client_part = await http_pending(service, settings)
    return {
        "lrokit": per_request,
        "floor": floor,
        "requests": requests,
        "pending": pending,
        "client_part": client_part,
        "own": pending - client_part,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report; with ``--check``, 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    began = time.perf_counter()
    print(f"lrokit async benchmark ({'quick' if args.quick else 'full'} mode)")
    print_machine()
    print(
        f"method: medians of {settings.repeats} interleaved repeats (memory: 2);"
        " CPU = process time / polls (gc paused in memory; the service's own process is"
        " not counted);"
        "\n  memory = tracemalloc bytes allocated while all N operations are pending, / N"
    )

    memory = asyncio.run(measure_memory_side(settings))
    with service_process() as service:
        http = asyncio.run(measure_http_side(service, settings))
    m = {name: statistics.median(values) for name, values in memory.items()}
    floor = m["floor"]

    print()
    print(
        f"in memory: {settings.operations:,} concurrent operations x"
        f" {settings.running_polls + 1} polls ({settings.running_polls} Running, then"
        " Succeeded with its result), CPU per poll"
    )
    print(f"  {'floor: sleep(0) + json.loads + status check':52} {us(floor)}")
    print(f"  {'gather(op.wait_for_completion() for op in ops)':52} {us(m['wait'])}"
          f" {ratio(m['wait'], floor)}")  # fmt: skip
    print(f"  {'async_wait_all(ops)':52} {us(m['wait_all'])} {ratio(m['wait_all'], floor)}")
    print()
    print(f"memory per pending operation ({settings.operations:,} pending at once)")
    print(f"  {'floor: a task awaiting its answer + a state dict':52} {m['floor_mem']:8,.0f} B")
    for key, label in (
        ("in_flight_mem", "operation + core + task, request in flight"),
        ("sleeping_mem", "operation + core + task, sleeping before a poll"),
    ):
        print(f"  {label:52} {m[key]:8,.0f} B {ratio(m[key], m['floor_mem'])}")
    print()
    print(
        f"loopback HTTP: {settings.http_operations:,} concurrent operations against"
        f" DemoService on 127.0.0.1, {settings.http_in_flight} requests in flight, httpx;"
        f" {http['requests']:,.0f} requests (start, poll, final GET)"
    )
    print(f"  {'floor: sleep(0) + json.loads + status check':52} {us(floor)}")
    print(f"  {'floor: httpx GET + json.loads + status check':52} {us(http['floor'])}"
          f" {ratio(http['floor'], floor)}")  # fmt: skip
    print(f"  {'lrokit: async_wait_all, per request':52} {us(http['lrokit'])}"
          f" {ratio(http['lrokit'], floor)}"
          f" {ratio(http['lrokit'], http['floor'])} of httpx")  # fmt: skip
    print(f"  {'memory per pending operation (sleeping)':52} {http['pending']:8,.0f} B"
          f" {ratio(http['pending'], m['floor_mem'])}")  # fmt: skip
    print(f"  {'  of which the last httpx.Response, kept':52} {http['client_part']:8,.0f} B")
    print(f"  {'  without it':52} {http['own']:8,.0f} B"
          f" {ratio(http['own'], m['floor_mem'])}")  # fmt: skip

    pending_worst = max(m["in_flight_mem"], m["sleeping_mem"])
    checks = [
        (f"poll CPU <= {POLL_RATIO_TARGET:g}x floor", "in memory, wait_for_completion",
         m["wait"] / floor, POLL_RATIO_TARGET, f"{m['wait'] / floor:.2f}x"),
        (f"poll CPU <= {POLL_RATIO_TARGET:g}x floor", "in memory, async_wait_all",
         m["wait_all"] / floor, POLL_RATIO_TARGET, f"{m['wait_all'] / floor:.2f}x"),
        (f"poll CPU <= {POLL_RATIO_TARGET:g}x floor", "loopback, of the httpx floor",
         http["lrokit"] / http["floor"], POLL_RATIO_TARGET,
         f"{http['lrokit'] / http['floor']:.2f}x"),
        (f"pending <= {PENDING_BYTES_TARGET / KIB:g} KiB", "in memory (worse of the two)",
         pending_worst, PENDING_BYTES_TARGET, f"{pending_worst:,.0f} B"),
        (f"pending <= {PENDING_BYTES_TARGET / KIB:g} KiB", "loopback, without the response",
         http["own"], PENDING_BYTES_TARGET, f"{http['own']:,.0f} B"),
    ]  # fmt: skip
    print()
    print("targets")
    missed = 0
    for label, subject, value, limit, shown in checks:
        ok = value <= limit
        missed += not ok
        print(f"  {verdict(ok)}  {label:24} {subject:34} {shown:>10}")
    print()
    outcome = f"{missed} target(s) missed" if missed else "all targets met"
    print(f"finished in {time.perf_counter() - began:.1f} s; {outcome}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
