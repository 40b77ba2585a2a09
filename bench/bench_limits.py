"""Per-request cost of the whole-request deadline and the body cap (issue 14).

Every request lrokit sends is bounded in time as a whole (``Pipeline(request_timeout=...)``,
cut to a wait's time left) and its body is read streamed against a cap. This measures what
that costs per request over loopback HTTP, against the minimal server of
``bench/_loopback_server.py`` (another process on 127.0.0.1):

* **sync**: ``Pipeline.send`` with a time limit (the socket reader checks the time before
  each ``recv``; the body is streamed and capped) next to ``Pipeline.send`` with
  ``request_timeout=None`` (no time limit: the plain socket reader, the body still capped),
  and ``requests.Session.get`` itself (the floor: no streaming, no cap, no limit);
* **async**: ``AsyncPipeline.send`` with a time limit (an ``asyncio`` timeout around the
  request) next to ``request_timeout=None``, and ``httpx.AsyncClient.get`` itself.

Figures are medians over interleaved repeats, in microseconds per request. Run
``python bench/bench_limits.py`` (or ``--quick``). Machine-specific: compare differences.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
import requests
from _report import gc_paused
from bench_polling import LoopbackServer

from lrokit import AsyncPipeline, Pipeline


def _per_request(run: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - started) / count * 1e6


async def _aper_request(run: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await run()
    return (time.perf_counter() - started) / count * 1e6


def sync_figures(endpoint: str, count: int, repeats: int) -> dict[str, float]:
    url = endpoint + "operations/op_1"
    results: dict[str, list[float]] = {"limited": [], "unlimited": [], "requests": []}
    with (
        Pipeline(endpoint) as limited,
        Pipeline(endpoint, request_timeout=None) as unlimited,
        requests.Session() as session,
    ):
        runs: dict[str, Callable[[], None]] = {
            "limited": lambda: limited.send("GET", url).close(),
            "unlimited": lambda: unlimited.send("GET", url).close(),
            "requests": lambda: session.get(url).close(),
        }
        for run in runs.values():  # warm the connections; check the answers
            run()
        assert limited.send("GET", url).status_code == 200
        for _ in range(repeats):
            for name, run in runs.items():
                with gc_paused():
                    results[name].append(_per_request(run, count))
    return {name: statistics.median(values) for name, values in results.items()}


async def async_figures(endpoint: str, count: int, repeats: int) -> dict[str, float]:
    url = endpoint + "operations/op_1"
    results: dict[str, list[float]] = {"limited": [], "unlimited": [], "httpx": []}
    async with (
        AsyncPipeline(endpoint) as limited,
        AsyncPipeline(endpoint, request_timeout=None) as unlimited,
        httpx.AsyncClient() as client,
    ):
        runs: dict[str, Callable[[], Awaitable[object]]] = {
            "limited": lambda: limited.send("GET", url),
            "unlimited": lambda: unlimited.send("GET", url),
            "httpx": lambda: client.get(url),
        }
        for run in runs.values():
            await run()
        assert (await limited.send("GET", url)).status_code == 200
        for _ in range(repeats):
            for name, run in runs.items():
                with gc_paused():
                    results[name].append(await _aper_request(run, count))
    return {name: statistics.median(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args()
    count, repeats = (100, 3) if args.quick else (1000, 7)
    server = LoopbackServer.start()
    try:
        sync = sync_figures(server.endpoint, count, repeats)
        asynchronous = asyncio.run(async_figures(server.endpoint, count, repeats))
    finally:
        server.stop()
    print(f"per-request cost over loopback, µs (median of {repeats} x {count} requests)")
    print(f"  sync  Pipeline.send, time limit + cap  {sync['limited']:8.1f}")
    print(f"  sync  Pipeline.send, cap only          {sync['unlimited']:8.1f}")
    print(f"  sync  requests.Session.get (floor)     {sync['requests']:8.1f}")
    print(f"  sync  cost of the time limit           {sync['limited'] - sync['unlimited']:8.1f}")
    print(f"  async AsyncPipeline.send, limit + cap  {asynchronous['limited']:8.1f}")
    print(f"  async AsyncPipeline.send, cap only     {asynchronous['unlimited']:8.1f}")
    print(f"  async httpx.AsyncClient.get (floor)    {asynchronous['httpx']:8.1f}")
    limit_cost = asynchronous["limited"] - asynchronous["unlimited"]
    print(f"  async cost of the time limit           {limit_cost:8.1f}")


if __name__ == "__main__":
    main()
