"""A fleet on Temporal: N pending operations tracked durably by 2 worker processes.

Run ``python bench/bench_fleet.py`` (N = 10,000, operations of 180 s polled every 60 s;
about ten minutes) or ``--quick`` (N = 200,
for CI). It needs the temporal extra (``pip install -e '.[temporal]'``). Everything runs on
127.0.0.1: a Temporal dev server of the extra (in memory), the demo service (in this
process), two ``lrokit worker`` processes. The operations are created here (one start
request each), then tracked with ``lrokit.temporal.track``; when half have completed, one
worker is SIGKILLed and the other finishes. Reported:

- worker memory: each worker's RSS when idle and with all N operations pending, and the
  growth per pending operation (the workflows a worker keeps between polls are bounded by
  its ``max_cached_workflows``; the state lives in Temporal);
- worker CPU per poll (user + system time of both workers over the run / polls) and polls
  per second per worker core (its inverse);
- lateness from due time to poll (median, p99): when a worker began a poll minus when the
  workflow's durable timer planned it;
- lost operations and duplicate creations after the kill (targets: 0 and 0).

Baseline, in the same run: the same N through in-process ``async_wait_all`` (one child
process, the same service), with its memory per pending operation and CPU per poll. It is
faster and leaner per poll; it also loses every pending operation when its process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _report import print_machine

from lrokit.demo import DemoService, VectorStoreClient

BENCH = Path(__file__).resolve().parent
KIB = 1024


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux ``/proc``), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def create(service: DemoService, count: int) -> list[Any]:
    """Start ``count`` operations (one POST each), 16 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [VectorStoreClient(service.endpoint) for _ in range(16)]

    def one(index: int) -> Any:
        client = clients[index % len(clients)]
        return client.create_vector_store(f"store-{index:06d}", wait_until_completed=False)

    with ThreadPoolExecutor(16) as pool:
        operations = list(pool.map(one, range(count)))
    for client in clients:
        client.close()
    return operations


async def fleet(args: argparse.Namespace, service: DemoService, log_base: str) -> dict[str, Any]:
    from temporalio.client import Client

    from lrokit.temporal import DevServer, track
    from lrokit.temporal._fleet_demo import WorkerProcess

    figures: dict[str, Any] = {}
    with DevServer() as server:
        env = {
            **os.environ,
            "LROKIT_DEMO_ENDPOINT": service.endpoint,
            "LROKIT_BENCH_POLL_LOG": log_base,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
        }
        queue = "bench-fleet"
        options = ["--sticky-timeout", "2", "--max-concurrent-polls", "200"]
        workers = [
            WorkerProcess(server.address, queue, "_fleet_registry", env=env, options=options)
            for _ in range(2)
        ]
        try:
            for worker in workers:
                worker.wait_ready()
            await asyncio.sleep(1)
            idle = [rss_kib(w.pid) for w in workers]
            cpu_before = [cpu_seconds(w.pid) for w in workers]
            client = await Client.connect(server.address)
            began = time.monotonic()
            operations = await asyncio.to_thread(create, service, args.n)
            created_in = time.monotonic() - began
            gate = asyncio.Semaphore(64)

            async def start(operation: Any) -> Any:
                async with gate:
                    return await track(client, operation, task_queue=queue, poll_timeout=10)

            handles = await asyncio.gather(*(start(op) for op in operations))
            tracked_in = time.monotonic() - began - created_in
            print(
                f"created {args.n} in {created_in:.0f} s, tracked in {tracked_in:.0f} s", flush=True
            )
            await asyncio.sleep(min(5.0, args.duration / 4))
            pending = [rss_kib(w.pid) for w in workers]
            completed = 0
            killed_cpu = 0.0

            # Each result() waiting for a pending workflow is a long poll of the server, which
            # limits them per namespace: wait for a bounded number at a time.
            waiting = asyncio.Semaphore(256)

            async def finish(index: int, handle: Any) -> None:
                nonlocal completed, killed_cpu
                async with waiting:
                    value = await handle.result()
                if value.name == f"store-{index:06d}":
                    completed += 1
                if completed == args.n // 2 and workers[0].process.poll() is None:
                    killed_cpu = cpu_seconds(workers[0].pid) - cpu_before[0]
                    workers[0].kill()
                    print(f"killed worker {workers[0].pid} at {completed} completed", flush=True)

            await asyncio.gather(*(finish(i, h) for i, h in enumerate(handles)))
            figures["total_s"] = time.monotonic() - began
            cpu = killed_cpu + cpu_seconds(workers[1].pid) - cpu_before[1]
        finally:
            for worker in workers:
                worker.stop()
    lateness: list[float] = []
    for path in Path(log_base).parent.glob(Path(log_base).name + ".*"):
        lateness += [float(line) for line in path.read_text().split()]
    records = service.operations()
    figures.update(
        created_s=created_in,
        tracked_s=tracked_in,
        idle_kib=idle,
        pending_kib=pending,
        per_op_bytes=(sum(pending) - sum(idle)) * KIB / args.n,
        polls=len(lateness),
        cpu_s=cpu,
        cpu_per_poll_ms=cpu / max(1, len(lateness)) * 1000,
        late_median_ms=statistics.median(lateness) * 1000 if lateness else float("nan"),
        late_p99_ms=percentile(lateness, 0.99) * 1000 if lateness else float("nan"),
        completed=completed,
        lost=args.n - completed,
        duplicates=len(records) - len({r.name for r in records}) + (len(records) - args.n),
    )
    return figures


BASELINE_CHILD = """
import asyncio, json, os, sys, time
from lrokit import AsyncPipeline, async_wait_all
from lrokit.demo import CreateVectorStoreOperation
from lrokit import AsyncOperation

class Op(AsyncOperation):
    token_kind = CreateVectorStoreOperation.kind()

def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def main():
    endpoint, urls = json.load(sys.stdin)
    idle = rss()
    cpu0 = time.process_time()
    async with AsyncPipeline(endpoint) as pipeline:
        ops = [Op.from_monitor(pipeline, url) for url in urls]
        task = asyncio.ensure_future(async_wait_all(ops, max_in_flight=200))
        await asyncio.sleep(float(sys.argv[1]))
        pending = rss()
        await task
    cpu = time.process_time() - cpu0
    polls = sum(op.core.attempt for op in ops)
    print(json.dumps({"idle_kib": idle, "pending_kib": pending, "cpu_s": cpu, "polls": polls,
                      "ok": sum(op.state.value == "Succeeded" for op in ops)}))

asyncio.run(main())
"""


def baseline(args: argparse.Namespace, service: DemoService) -> dict[str, Any]:
    operations = create(service, args.n)
    urls = [op.core.polling_url for op in operations]
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", BASELINE_CHILD, str(min(5.0, args.duration / 4))],
        input=json.dumps([service.endpoint, urls]),
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout)
    figures["total_s"] = time.monotonic() - began
    figures["per_op_bytes"] = (figures["pending_kib"] - figures["idle_kib"]) * KIB / args.n
    figures["cpu_per_poll_ms"] = figures["cpu_s"] / max(1, figures["polls"]) * 1000
    return figures


def report(args: argparse.Namespace, fleet_figures: dict[str, Any], base: dict[str, Any]) -> str:
    f, b = fleet_figures, base
    cores_note = "(1 core each)"
    lines = [
        f"N = {args.n} operations, service duration {args.duration:g} s, Retry-After"
        f" {args.retry_after:g} s; 2 workers, one SIGKILLed at half",
        "",
        "| figure | fleet (2 Temporal workers) | in-process async_wait_all |",
        "| --- | --- | --- |",
        f"| memory per pending operation | {f['per_op_bytes'] / KIB:.2f} KiB (worker RSS"
        f" {f['idle_kib'][0] / KIB:.0f} -> {f['pending_kib'][0] / KIB:.0f} MiB,"
        f" {f['idle_kib'][1] / KIB:.0f} -> {f['pending_kib'][1] / KIB:.0f} MiB) |"
        f" {b['per_op_bytes'] / KIB:.2f} KiB (RSS {b['idle_kib'] / KIB:.0f} ->"
        f" {b['pending_kib'] / KIB:.0f} MiB) |",
        f"| polls | {f['polls']} | {b['polls']} |",
        f"| CPU per poll | {f['cpu_per_poll_ms']:.2f} ms (workers) |"
        f" {b['cpu_per_poll_ms']:.2f} ms |",
        f"| polls per second per core {cores_note} | {1000 / f['cpu_per_poll_ms']:.0f} |"
        f" {1000 / b['cpu_per_poll_ms']:.0f} |",
        f"| lateness due -> poll, median / p99 | {f['late_median_ms']:.0f} ms /"
        f" {f['late_p99_ms']:.0f} ms | n/a |",
        f"| wall time (create + track + finish) | {f['total_s']:.0f} s (tracking started in"
        f" {f['tracked_s']:.0f} s) | {b['total_s']:.0f} s |",
        f"| completed / lost / duplicate creations | {f['completed']} / {f['lost']} /"
        f" {f['duplicates']} | {b['ok']} / {args.n - b['ok']} / 0 |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 200, short operations")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 200 if args.quick else 10_000
    args.duration = 6.0 if args.quick else 180.0
    args.retry_after = 2.0 if args.quick else 60.0
    print_machine()
    with tempfile.TemporaryDirectory(prefix="lrokit-fleet-") as workdir:
        with DemoService(duration=args.duration, retry_after=args.retry_after) as service:
            fleet_figures = asyncio.run(fleet(args, service, str(Path(workdir) / "polls")))
        with DemoService(duration=args.duration, retry_after=args.retry_after) as service:
            base = baseline(args, service)
    table = report(args, fleet_figures, base)
    print(table)
    if args.output:
        Path(args.output).write_text(table + "\n")
    ok = fleet_figures["lost"] == 0 and fleet_figures["duplicates"] == 0
    print("lost 0 and duplicates 0:", "OK" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
