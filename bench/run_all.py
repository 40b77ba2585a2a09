"""The whole benchmark in one command: lrokit next to azure-core, google-api-core and floors.

``python bench/run_all.py`` runs every section (a few minutes on a 2-CPU machine), prints
each table with PASS/MISS next to every target, and writes ``docs/performance.md`` with its
plots in ``docs/img/``. ``--quick`` runs everything with tiny sizes (CI's smoke run) and
writes into a temporary directory unless ``--output`` says where; ``--check`` exits with 1
when a target is missed (otherwise the exit code is 0 unless something crashed).

Sections (each reuses its own bench script; see bench/README.md):

1. per-poll CPU in memory (``bench_polling.py``);
2. end to end over loopback HTTP (``bench_polling.py``, server in another process);
3. creation and memory of 100,000 operations (``bench_core.py``);
4. rehydration tokens next to azure-core's continuation token (``bench_tokens.py``);
5. 10,000 concurrent async operations (``bench_async.py``);
6. request economy on the spector conformance scenarios (``bench_economy.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(ROOT / "src"))

import _report  # noqa: E402
import bench_polling  # noqa: E402
from _report import Check, Section  # noqa: E402

from lrokit import Pipeline  # noqa: E402

KIB = 1024
MIB = 1024 * KIB

# Targets of issue 7 (ratios from the same run).
MEMORY_POLL_FLOOR_RATIO = 3.0  # lrokit per poll <= 3x the hand-written loop
MEMORY_POLL_AZURE_FACTOR = 20.0  # ... and at least 20x less than azure-core's poller
LOOPBACK_RATIO = 1.10  # lrokit per poll <= 1.10x the hand-written requests loop
CREATE_COUNT = 100_000
CREATE_SECONDS = 1.0  # 100,000 operations in under 1 s of CPU ...
CREATE_BYTES = 100 * MIB  # ... and under 100 MiB
TARGET_K = 10  # the per-poll targets are judged at K=10 polls per operation

PREAMBLE = """
How much does it cost to follow a long-running operation with lrokit, next to the other ways
of doing it in Python: azure-core's `LROPoller`, google-api-core's `Operation`, and the loop
people write by hand? This page is generated, tables and plots, by one command from a
checkout (`pip install -e '.[bench]'` first, and `npm ci --prefix tests/conformance` for the
request-economy section):

```sh
python bench/run_all.py
```

Each section says exactly what it measures; `bench/README.md` describes the scripts. Every
contestant is checked to return the right value before it is timed, and every time is the
**median** of repeats that are **interleaved** (each variant once per repeat, in turn), so a
slow moment of the machine hits all of them alike.

## Fleet

Tracking across worker processes on Temporal (`lrokit.temporal`) is measured by a benchmark
of its own, not by this page's command: `python bench/bench_fleet.py` (it needs the
`temporal` extra, `pip install -e '.[temporal]'`, and about ten minutes). Its figures,
next to in-process `async_wait_all` in the same run (memory per pending operation, CPU per
poll, lateness from due time to poll, lost and duplicated operations after a worker is
killed), are on [Fleet on Temporal](fleet.md#measured).
"""


@dataclass(frozen=True)
class Sizes:
    """How big each section runs."""

    polling: bench_polling.Settings
    core: Any  # bench_core.Settings
    token_calls: int
    token_repeats: int
    async_settings: Any  # bench_async.Settings


def full_sizes() -> Sizes:
    import bench_async
    import bench_core

    return Sizes(
        polling=bench_polling.FULL,
        core=bench_core.Settings(CREATE_COUNT, 2_000, 5, 4, 2_000, 20),
        token_calls=10_000,
        token_repeats=7,
        async_settings=bench_async.Settings(10_000, 10, 3, 2_000, 8),
    )


def quick_sizes() -> Sizes:
    import bench_async
    import bench_core

    return Sizes(
        polling=bench_polling.QUICK,
        core=bench_core.Settings(2_000, 50, 2, 1, 50, 5),
        token_calls=200,
        token_repeats=2,
        async_settings=bench_async.Settings(300, 5, 1, 60, 8),
    )


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f}"


def times(value: float) -> str:
    return f"{value:.2f}x"


# -- 1 and 2: per poll -----------------------------------------------------------------------------


def polling_sections(sizes: Sizes) -> list[Section]:
    results = bench_polling.run(sizes.polling)
    return [memory_section(results), loopback_section(results)]


def memory_section(results: bench_polling.PollingResults) -> Section:
    memory = results.memory
    section = Section("memory", "1. Per-poll CPU, in memory")
    section.intro = f"""
One operation's life, for K = 1 and K = 10 status polls: a `POST` answered with 202 and an
`Operation-Location` status monitor, then K polls of the monitor (`Running` until the K-th,
which says `Succeeded` and carries the `result`: the value, no final GET). **No sockets**:
every contestant goes through its own transport code down to the same fake
`requests.Session`, which returns prebuilt `requests.Response` objects (no `Retry-After`, so
nobody sleeps). What runs for each operation:

- **hand-written loop** (the baseline): `session.request("POST", ...)`, then
  `session.request("GET", monitor)`, `json.loads(response.content)` and a check of
  `status` until `Succeeded`;
- **lrokit core, driven by hand**: `OperationCore.receive(view_of(response))` for the start
  and every poll, sending to the URL of each `Decision` (the manual-driving API);
- **lrokit `Operation`**: `Operation.start(pipeline, "POST", path, json=...)`,
  `wait_for_completion(polling_interval=0)`, `.value`, over `Pipeline(endpoint,
  session=fake)`;
- **azure-core**: the start through `PipelineClient._pipeline.run(HttpRequest(...))` (what
  generated SDKs' `begin_*` do), then `LROPoller(client, initial, callback,
  LROBasePolling(timeout=0)).result()`; the client's default policies and its
  `RequestsTransport(session=fake)`. `LROPoller` polls in a thread it starts; CPU time is
  the whole process's, so that thread is counted;
- **google-api-core**: `operation.from_http_json(start, api_request, Struct,
  polling=DEFAULT_POLLING.with_delay(0, 0, 1)).result()`, where `api_request` decodes the
  fake session's answer with `json.loads` (what `google.cloud._http`'s `api_request` returns).
  The answers are the same life in the `google.longrunning.Operation` JSON form (`done`,
  `metadata`, the result packed in `response` as a `google.protobuf.Struct`), so it parses
  its own protocol, not the Azure one: a fair comparison of the per-poll work of its
  `Operation`, not of the same bytes.

CPU is `time.process_time()` around a batch of operations (counts calibrated to about
{results.settings.memory_batch:g} s per batch), with the garbage collector paused; medians of
{results.settings.repeats} interleaved repeats. "Per poll" is the operation's time divided by
K (the start is included, shared by the K polls); "marginal poll" is the difference between
K = 10 and K = 1, divided by 9: the cost of one more poll.
"""
    labels = dict(bench_polling.MEMORY_VARIANTS)
    rows = [
        [
            "contestant",
            "K",
            "per operation (µs)",
            "per poll (µs)",
            "x hand-written",
            "marginal poll (µs)",
        ]
    ]
    for key, label in bench_polling.MEMORY_VARIANTS:
        if (key, 1) not in memory:
            continue
        marginal = (memory[(key, 10)].cpu - memory[(key, 1)].cpu) / 9
        for polls in bench_polling.KS:
            sample = memory[(key, polls)]
            floor = memory[("hand", polls)]
            rows.append(
                [
                    label,
                    str(polls),
                    us(sample.cpu),
                    us(sample.cpu / polls),
                    times(sample.cpu / floor.cpu),
                    us(marginal) if polls == 10 else "",
                ]
            )
    section.table = rows
    hand = memory[("hand", TARGET_K)].cpu
    for key in ("operation", "core"):
        value = memory[(key, TARGET_K)].cpu
        section.checks.append(
            Check(
                f"{labels[key]}, per poll (K={TARGET_K}), x hand-written loop",
                times(value / hand),
                f"≤ {MEMORY_POLL_FLOOR_RATIO:g}x",
                value / hand <= MEMORY_POLL_FLOOR_RATIO,
            )
        )
    # The same comparison without the start: one more poll (K = 10 against K = 1).
    hand_marginal = (memory[("hand", 10)].cpu - memory[("hand", 1)].cpu) / 9
    op_marginal = (memory[("operation", 10)].cpu - memory[("operation", 1)].cpu) / 9
    section.checks.append(
        Check(
            f"{labels['operation']}, marginal poll (start excluded), x the loop's",
            times(op_marginal / hand_marginal),
            f"≤ {MEMORY_POLL_FLOOR_RATIO:g}x",
            op_marginal / hand_marginal <= MEMORY_POLL_FLOOR_RATIO,
        )
    )
    if ("azure", TARGET_K) in memory:
        azure = memory[("azure", TARGET_K)].cpu
        for key in ("operation", "core"):
            value = memory[(key, TARGET_K)].cpu
            section.checks.append(
                Check(
                    f"azure-core's poller per poll (K={TARGET_K}) ÷ {labels[key]}",
                    f"{azure / value:.1f}x",
                    f"≥ {MEMORY_POLL_AZURE_FACTOR:g}x",
                    azure / value >= MEMORY_POLL_AZURE_FACTOR,
                )
            )
    else:
        section.notes.append("azure-core is not installed (`pip install -e '.[bench]'`).")
    if ("google", 1) not in memory:
        section.notes.append("google-api-core is not installed (`pip install -e '.[bench]'`).")

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        keys = [key for key, _ in bench_polling.MEMORY_VARIANTS if (key, 1) in memory]
        names = [_short(labels[key]) for key in keys]
        fig, ax = plt.subplots(figsize=(8, 0.55 * len(keys) + 1.4))
        height = 0.38
        for offset, polls, color in ((-height / 2, 1, "#9ecae1"), (height / 2, 10, "#3182bd")):
            values = [memory[(key, polls)].cpu / polls * 1e6 for key in keys]
            bars = ax.barh(
                [i + offset for i in range(len(keys))],
                values,
                height,
                color=color,
                label=f"K = {polls}",
            )
            floor = memory[("hand", polls)].cpu / polls * 1e6
            for bar, value in zip(bars, values, strict=True):
                ax.text(
                    value * 1.08,
                    bar.get_y() + bar.get_height() / 2,
                    f"{value:,.1f} µs ({value / floor:.1f}x)",
                    va="center",
                    fontsize=8,
                )
        ax.set_yticks(range(len(keys)), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(right=ax.get_xlim()[1] * 6)
        ax.set_xlabel("CPU per poll, µs (log scale; start included, shared by the K polls)")
        ax.set_title("In memory: CPU per poll (x the hand-written loop at the same K)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    section.notes.append(profile_note(results.settings))
    section.notes.append(OPTIMISATION_NOTE)
    return section


OPTIMISATION_NOTE = """
What the request path was tuned with (profiles like the one above): header lookups on a
plain lower-case dict instead of `requests`' case-insensitive mapping, whose every miss
raised and caught a `KeyError` (about 2 µs per response for the three `Retry-After`
spellings); enum members read as module globals on the per-response path (reading an
attribute of an `Enum` class costs ten times as much); `urljoin` skipped for plain relative
paths and plain absolute header URLs, whose result it would not change (property-tested
against `urljoin`); the start URL's origin check skipped when the pipeline built it by
appending a plain path to its trusted endpoint; no sleep call for a zero delay. What remains
per poll is the driver's bookkeeping (the turn lock that lets threads share one operation's
requests, the delay plan, hooks and logging checks), the core's parsing into typed
`StatusUpdate` and `Decision` values, and the `ResponseView`; per operation, the origin
checks of the start and monitor URLs and the delay planning.
"""


def profile_note(settings: bench_polling.Settings, polls: int = TARGET_K) -> str:
    """cProfile of lrokit's Operation over the in-memory session: where the time goes."""
    import cProfile
    import pstats

    session = bench_polling.MemorySession(bench_polling.azure_answers())
    session.polls = polls
    pipeline = Pipeline(bench_polling.ENDPOINT, session=session)  # type: ignore[arg-type]
    path = f"start?api-version={bench_polling.API_VERSION}"
    count = 2_000 if settings.repeats > 3 else 100
    for _ in range(50):
        bench_polling.lrokit_operation(pipeline, path)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        bench_polling.lrokit_operation(pipeline, path)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in entries.values())
    rows = [["function", "calls per operation", "own time (share)", "with callees (share)"]]
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    for (filename, line, name), (_, calls, own, cumulative, _) in ranked[:15]:
        where = Path(filename).name if filename != "~" else ""
        label = f"`{where}:{line} {name}`" if where else f"`{name}`"
        rows.append(
            [
                label,
                f"{calls / count:g}",
                f"{own / total:.1%}",
                f"{cumulative / total:.1%}",
            ]
        )
    return (
        f"Where lrokit's `Operation` spends its time (cProfile of {count:,} operations at"
        f" K = {polls} over the in-memory session, the 15 functions with the most own time;"
        " profiling inflates every call, so only the shares mean something):\n\n"
        + _report.markdown_table(rows)
    )


def _short(label: str) -> str:
    return (
        label.replace(" (json.loads + status check)", "")
        .replace(" + wait_for_completion", "")
        .replace(" + LROBasePolling", "\n+ LROBasePolling")
        .replace(" (from_http_json)", "")
        .replace(", driven by hand", "\n(manual driving)")
        .replace("floor: requests.Session requests only", "floor: requests only")
    )


def loopback_section(results: bench_polling.PollingResults) -> Section:
    loop = results.loopback
    section = Section("loopback", "2. End to end over loopback HTTP")
    section.intro = f"""
The same life against a real HTTP server: `bench/_loopback_server.py`, a minimal asyncio
HTTP/1.1 server (keep-alive, TCP_NODELAY, prebuilt answers, no `Retry-After`) on 127.0.0.1
in **a separate process**. Each contestant has its own `requests` connection: the
hand-written loop (`requests.Session`, `json.loads`, status check; the baseline), lrokit's
`Operation` (default `Pipeline`), azure-core's `LROPoller` + `LROBasePolling(timeout=0)`
over its default `RequestsTransport`, and the floor of `requests` itself: the same requests
with nothing decoded or checked. Time is wall-clock (`time.perf_counter`) per poll (the
operation's time divided by K, the start included); the client's CPU (`process_time` of
the benchmark process, not the server's) is shown beside it. Medians of
{results.settings.repeats} interleaved repeats of batches of about
{results.settings.loopback_batch:g} s.
"""
    rows = [
        [
            "contestant",
            "K",
            "wall per poll (µs)",
            "x hand-written",
            "client CPU per poll (µs)",
            "CPU x hand-written",
        ]
    ]
    for key, label in bench_polling.LOOPBACK_VARIANTS:
        for polls in bench_polling.KS:
            sample = loop.get((key, polls))
            if sample is None:
                continue
            floor = loop[("hand", polls)]
            rows.append(
                [
                    label,
                    str(polls),
                    us(sample.wall / polls),
                    f"{sample.wall / floor.wall:.3f}x",
                    us(sample.cpu / polls),
                    f"{sample.cpu / floor.cpu:.2f}x",
                ]
            )
    section.table = rows
    ratio = loop[("operation", TARGET_K)].wall / loop[("hand", TARGET_K)].wall
    section.checks.append(
        Check(
            f"lrokit Operation, wall per poll (K={TARGET_K}), x hand-written requests loop",
            f"{ratio:.3f}x",
            f"≤ {LOOPBACK_RATIO:.2f}x",
            ratio <= LOOPBACK_RATIO,
        )
    )

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        keys = [key for key, _ in bench_polling.LOOPBACK_VARIANTS if (key, 1) in loop]
        labels = dict(bench_polling.LOOPBACK_VARIANTS)
        fig, ax = plt.subplots(figsize=(8, 0.55 * len(keys) + 1.4))
        height = 0.38
        for offset, polls, color in ((-height / 2, 1, "#a1d99b"), (height / 2, 10, "#31a354")):
            values = [loop[(key, polls)].wall / polls * 1e6 for key in keys]
            floor = loop[("hand", polls)].wall / polls * 1e6
            bars = ax.barh(
                [i + offset for i in range(len(keys))],
                values,
                height,
                color=color,
                label=f"K = {polls}",
            )
            for bar, value in zip(bars, values, strict=True):
                ax.text(
                    value + max(values) * 0.01,
                    bar.get_y() + bar.get_height() / 2,
                    f"{value:,.0f} µs ({value / floor:.2f}x)",
                    va="center",
                    fontsize=8,
                )
        ax.set_yticks(range(len(keys)), [_short(labels[key]) for key in keys])
        ax.invert_yaxis()
        ax.set_xlim(right=ax.get_xlim()[1] * 1.35)
        ax.set_xlabel("wall time per poll, µs (start included, shared by the K polls)")
        ax.set_title("Loopback HTTP: time per poll (x the hand-written requests loop)")
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    return section


# -- 3: creation ---------------------------------------------------------------------------------


def creation_section(sizes: Sizes) -> Section:
    import bench_core

    settings = sizes.core
    with Pipeline(bench_core.ENDPOINT) as pipeline:
        t, m = bench_core.measure_creation(settings, bench_core.make_creators(pipeline))
    n = settings.operations
    section = Section("creation", f"3. Creating {CREATE_COUNT:,} operations")
    extrapolated = "" if n == CREATE_COUNT else f" (measured on {n:,}, scaled to {CREATE_COUNT:,})"
    section.intro = f"""
`bench/bench_core.py`'s creation measurement: N = {n:,} operations are created and kept
alive, each from its own URL (with `api-version`) and id made beforehand. Time:
`time.perf_counter` around the loop with the collector paused (single-threaded and
CPU-bound, so it is CPU time), median of {settings.time_repeats} interleaved repeats.
Memory: what `tracemalloc` still counts as allocated once all N exist, divided by N. The
baseline (the floor) is a dict with the same 19 fields as the core's slots. "As
`Operation.start` builds it" adds the `str(uuid.uuid4())` id it makes (and the floor then
makes one too); no request is sent in any row.
"""
    rows = [
        [
            "what is created",
            "time per operation (µs)",
            "x floor",
            "retained per operation (B)",
            "x floor",
            f"{CREATE_COUNT:,} operations: CPU (s)",
            f"{CREATE_COUNT:,} operations: memory (MiB)",
        ]
    ]
    start_time = t["uuid"] + t["operation"]
    start_memory = m["uuid"] + m["operation"]
    entries = [
        ("floor: a dict of 19 fields", t["floor"], m["floor"], t["floor"], m["floor"]),
        ("`OperationCore(...)`", t["core"], m["core"], t["floor"], m["floor"]),
        (
            "`Operation(pipeline, OperationCore(...))`",
            t["operation"],
            m["operation"],
            t["floor"],
            m["floor"],
        ),
        (
            "as `Operation.start` builds it (+ uuid4 id)",
            start_time,
            start_memory,
            t["floor"] + t["uuid"],
            m["floor"] + m["uuid"],
        ),
    ]
    for label, seconds, size, floor_time, floor_size in entries:
        rows.append(
            [
                label,
                us(seconds),
                times(seconds / floor_time),
                f"{size:,.0f}",
                times(size / floor_size),
                f"{seconds * CREATE_COUNT:.3f}",
                f"{size * CREATE_COUNT / MIB:.1f}",
            ]
        )
    section.table = rows
    total_time = start_time * CREATE_COUNT
    total_memory = start_memory * CREATE_COUNT
    section.checks += [
        Check(
            f"{CREATE_COUNT:,} operations as Operation.start builds them, CPU{extrapolated}",
            f"{total_time:.3f} s",
            f"< {CREATE_SECONDS:g} s",
            total_time < CREATE_SECONDS,
        ),
        Check(
            f"{CREATE_COUNT:,} operations as Operation.start builds them, memory{extrapolated}",
            f"{total_memory / MIB:.1f} MiB",
            f"< {CREATE_BYTES / MIB:g} MiB",
            total_memory < CREATE_BYTES,
        ),
    ]

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        labels = ["floor\n(dict)", "OperationCore", "Operation\n+ core", "Operation.start\n+ id"]
        seconds = [e[1] * CREATE_COUNT for e in entries]
        sizes_mib = [e[2] * CREATE_COUNT / MIB for e in entries]
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
        colors = ["#bdbdbd", "#6baed6", "#3182bd", "#08519c"]
        for ax, values, limit, unit, title in (
            (left, seconds, CREATE_SECONDS, "s", f"CPU to create {CREATE_COUNT:,}"),
            (right, sizes_mib, CREATE_BYTES / MIB, "MiB", f"memory of {CREATE_COUNT:,}"),
        ):
            bars = ax.bar(labels, values, color=colors)
            ax.axhline(limit, color="#de2d26", linestyle="--", linewidth=1)
            ax.text(
                3.45,
                limit,
                f"target < {limit:g} {unit}",
                color="#de2d26",
                ha="right",
                va="bottom",
                fontsize=8,
            )
            for bar, value in zip(bars, values, strict=True):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    value,
                    f"{value:.2f} {unit}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
            ax.set_ylim(0, max(limit, *values) * 1.18)
            ax.set_title(title)
            ax.set_ylabel(unit)
            ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    return section


# -- 4: tokens -------------------------------------------------------------------------------------


def token_section(sizes: Sizes) -> Section:
    import bench_tokens

    with_azure = importlib.util.find_spec("azure.core") is not None
    section = Section("tokens", "4. Rehydration tokens")
    section.intro = f"""
`bench/bench_tokens.py`'s measurement: for each operation, lrokit and azure-core receive
**the very same start response**, replayed from memory (the embedded demo service's answer
to `create_vector_store`, captured over HTTP at the start of the run, and an ARM `PUT`
answered with 201, `Azure-AsyncOperation` and the resource body). lrokit: `Operation.receive`;
azure-core: `LROBasePolling.initialize` over a `RequestsTransport` whose session answers from
memory. Rows: the token's size in characters; **encode**: `str(operation.rehydration_token)`
vs `LROBasePolling.get_continuation_token()`; **read**: `RehydrationToken.from_str` vs
`LROBasePolling.from_continuation_token`; **ready to poll**: `Operation.rehydrate(client,
token)` (which also checks every URL's origin and the operation class, and builds the
operation) vs `from_continuation_token` + `initialize` on a new `LROBasePolling`, which is
what `LROPoller.from_continuation_token` does before it starts its polling thread. The
thread itself is left out, in azure-core's favour: it would also poll. Medians of
{sizes.token_repeats} interleaved repeats of {sizes.token_calls:,} calls, collector paused.
Targets (issue 5): lrokit at most a quarter of azure-core's time and two thirds of its size.
"""
    rows = [["operation", "figure", "lrokit", "azure-core", "lrokit ÷ azure-core", "target"]]
    plot_data: list[tuple[str, str, float, float]] = []
    for start in (bench_tokens.demo_start(), bench_tokens.arm_start()):
        ours = bench_tokens.Lrokit(start)
        variants: dict[str, Callable[[], object]] = {
            "lrokit encode": ours.encode,
            "lrokit read": ours.read,
            "lrokit restore": ours.restore,
        }
        theirs = bench_tokens.Azure(start) if with_azure else None
        if theirs is not None:
            variants |= {
                "azure encode": theirs.encode,
                "azure read": theirs.read,
                "azure restore": theirs.restore,
            }
        measured = bench_tokens.medians(variants, sizes.token_calls, sizes.token_repeats)
        name = start.name.split(":")[0]
        figures: list[tuple[str, float, float | None, float]] = [
            (
                "size (characters)",
                float(len(ours.token)),
                float(len(theirs.token)) if theirs else None,
                bench_tokens.SIZE_TARGET,
            ),
        ]
        for key, label in (("encode", "encode"), ("read", "read"), ("restore", "ready to poll")):
            figures.append(
                (
                    f"{label} (µs)",
                    measured[f"lrokit {key}"],
                    measured[f"azure {key}"] if theirs else None,
                    bench_tokens.TIME_TARGET,
                )
            )
        for label, mine, other, target in figures:
            is_size = label.startswith("size")
            shown = f"{mine:,.0f}" if is_size else us(mine)
            if other is None:
                rows.append([name, label, shown, "-", "-", "-"])
                continue
            other_shown = f"{other:,.0f}" if is_size else us(other)
            ratio = mine / other
            rows.append([name, label, shown, other_shown, f"{ratio:.2f}", f"≤ {target:.2f}"])
            section.checks.append(
                Check(
                    f"{name}: {label}, lrokit ÷ azure-core",
                    f"{ratio:.2f}",
                    f"≤ {target:.2f}",
                    ratio <= target,
                )
            )
            plot_data.append((name, label.split(" (")[0], ratio, target))
    section.table = rows
    if not with_azure:
        section.notes.append("azure-core is not installed: lrokit's figures only.")
        return section

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        fig, ax = plt.subplots(figsize=(8, 3.6))
        names = sorted({d[0] for d in plot_data}, key=[d[0] for d in plot_data].index)
        figures = sorted({d[1] for d in plot_data}, key=[d[1] for d in plot_data].index)
        width = 0.8 / len(names)
        colors = ["#756bb1", "#bcbddc"]
        for n, name in enumerate(names):
            values = [next(d[2] for d in plot_data if d[0] == name and d[1] == f) for f in figures]
            xs = [i + (n - (len(names) - 1) / 2) * width for i in range(len(figures))]
            bars = ax.bar(xs, values, width, label=name, color=colors[n % 2])
            for bar, value in zip(bars, values, strict=True):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    value,
                    f"{value:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        for i, label in enumerate(figures):
            target = next(d[3] for d in plot_data if d[1] == label)
            ax.hlines(target, i - 0.45, i + 0.45, colors="#de2d26", linestyles="--", linewidth=1)
        ax.set_xticks(range(len(figures)), figures)
        ax.set_ylabel("lrokit ÷ azure-core (lower is better)")
        ax.set_title("Tokens: lrokit as a fraction of azure-core (red: the target)")
        ax.set_ylim(0, 1.0)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    return section


# -- 5: async --------------------------------------------------------------------------------------


def async_section(sizes: Sizes) -> Section:
    import bench_async

    settings = sizes.async_settings
    memory = asyncio.run(bench_async.measure_memory_side(settings))
    with bench_async.service_process() as service:
        http = asyncio.run(bench_async.measure_http_side(service, settings))
    m = {name: statistics.median(values) for name, values in memory.items()}
    floor = m["floor"]
    section = Section("async", f"5. {settings.operations:,} concurrent async operations")
    section.intro = f"""
`bench/bench_async.py`'s measurement, with these sizes: **{settings.operations:,}**
`AsyncOperation`s pending at once in one event loop, polling an in-process sender (one
`asyncio.sleep(0)` per request, prebuilt answers: {settings.running_polls} `Running`, then
`Succeeded` with the result), through `asyncio.gather(op.wait_for_completion() ...)` and
through `async_wait_all`. The floor: one task per operation doing `await asyncio.sleep(0)`,
`json.loads` and a status check per poll. CPU is `process_time` per poll with the collector
paused, median of {settings.repeats} interleaved repeats. Memory per pending operation is what
`tracemalloc` counts while all are pending (a request in flight, or sleeping before the next
poll), next to a floor of a task awaiting its answer plus a state dict. Over loopback:
{settings.http_operations:,} concurrent operations against the embedded `DemoService` in
a process of its own, through httpx with {settings.http_in_flight} requests in flight,
next to plain httpx GETs with a JSON decode and a status check. Targets (issue 6): at most
3x the floor per poll and at most 4 KiB per pending operation.
"""
    rows = [["figure", "floor", "lrokit", "x floor"]]
    rows.append(
        [
            "CPU per poll, in memory, `gather(wait_for_completion())` (µs)",
            us(floor),
            us(m["wait"]),
            times(m["wait"] / floor),
        ]
    )
    rows.append(
        [
            "CPU per poll, in memory, `async_wait_all` (µs)",
            us(floor),
            us(m["wait_all"]),
            times(m["wait_all"] / floor),
        ]
    )
    rows.append(
        [
            "memory per pending operation, request in flight (B)",
            f"{m['floor_mem']:,.0f}",
            f"{m['in_flight_mem']:,.0f}",
            times(m["in_flight_mem"] / m["floor_mem"]),
        ]
    )
    rows.append(
        [
            "memory per pending operation, sleeping (B)",
            f"{m['floor_mem']:,.0f}",
            f"{m['sleeping_mem']:,.0f}",
            times(m["sleeping_mem"] / m["floor_mem"]),
        ]
    )
    rows.append(
        [
            "CPU per request over loopback, vs httpx GET + json.loads (µs)",
            us(http["floor"]),
            us(http["lrokit"]),
            times(http["lrokit"] / http["floor"]),
        ]
    )
    rows.append(
        [
            "memory per pending operation over loopback, without httpx's share (B)",
            f"{m['floor_mem']:,.0f}",
            f"{http['own']:,.0f}",
            times(http["own"] / m["floor_mem"]),
        ]
    )
    section.table = rows
    worst = max(m["in_flight_mem"], m["sleeping_mem"])
    target = bench_async.POLL_RATIO_TARGET
    pending = bench_async.PENDING_BYTES_TARGET
    section.checks += [
        Check(
            "in memory, wait_for_completion, CPU per poll x floor",
            times(m["wait"] / floor),
            f"≤ {target:g}x",
            m["wait"] / floor <= target,
        ),
        Check(
            "in memory, async_wait_all, CPU per poll x floor",
            times(m["wait_all"] / floor),
            f"≤ {target:g}x",
            m["wait_all"] / floor <= target,
        ),
        Check(
            "loopback, CPU per request x the httpx floor",
            times(http["lrokit"] / http["floor"]),
            f"≤ {target:g}x",
            http["lrokit"] / http["floor"] <= target,
        ),
        Check(
            "memory per pending operation (worse of in flight and sleeping)",
            f"{worst:,.0f} B",
            f"≤ {pending / KIB:g} KiB",
            worst <= pending,
        ),
    ]

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
        labels = ["floor", "gather(wait)", "async_wait_all"]
        values = [floor * 1e6, m["wait"] * 1e6, m["wait_all"] * 1e6]
        bars = left.bar(labels, values, color=["#bdbdbd", "#fd8d3c", "#e6550d"])
        left.axhline(floor * 1e6 * target, color="#de2d26", linestyle="--", linewidth=1)
        for bar, value in zip(bars, values, strict=True):
            left.text(
                bar.get_x() + bar.get_width() / 2,
                value,
                f"{value:.1f} µs ({value / values[0]:.1f}x)",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        left.set_title(f"CPU per poll, {settings.operations:,} concurrent (red: 3x floor)")
        left.set_ylabel("µs")
        left.set_ylim(0, max(*values, floor * 1e6 * target) * 1.2)
        labels = ["floor", "in flight", "sleeping"]
        values = [m["floor_mem"], m["in_flight_mem"], m["sleeping_mem"]]
        bars = right.bar(labels, values, color=["#bdbdbd", "#fd8d3c", "#e6550d"])
        right.axhline(pending, color="#de2d26", linestyle="--", linewidth=1)
        for bar, value in zip(bars, values, strict=True):
            right.text(
                bar.get_x() + bar.get_width() / 2,
                value,
                f"{value:,.0f} B",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        right.set_title("memory per pending operation (red: 4 KiB)")
        right.set_ylabel("bytes")
        right.set_ylim(0, max(*values, pending) * 1.2)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    return section


# -- 6: request economy ----------------------------------------------------------------------------


def economy_section(sizes: Sizes) -> Section:
    import bench_economy

    section = Section("economy", "6. Request economy on the conformance scenarios")
    section.intro = """
Every LRO scenario of the Azure HTTP specs that lrokit's conformance suite runs (the table in
`tests/conformance/test_spector.py`), against one spector mock server started as the
conformance fixture starts it. lrokit: `Operation.start` + `wait_for_completion` with its
default options (a fake clock: no real sleeping). azure-core: the start request through a
`PipelineClient`, then `LROPoller` with `LROBasePolling(timeout=0)` for the Azure.Core
scenarios and azure-mgmt-core's `ARMPolling(timeout=0)` for the ARM ones (what ARM SDKs
use), with their default options, and a transport whose `sleep` returns at once (the mocks
send `Retry-After: 1` in places). azure-core does not carry the start request's
`api-version` onto polling URLs that lack it, which the Azure.Core mocks require, so its
client gets a per-call policy that adds it, as an SDK would. Counted: the requests each
side sent for its operations (the paging scenario's `nextLink` page, read by a pager, is not
part of it); "value" says whether the operation's value equals the conformance table's.
"""
    try:
        outcomes = bench_economy.run()
    except bench_economy.Unavailable as error:
        section.skipped = str(error)
        return section
    rows = [["scenario", "operations", "conformance table", "lrokit", "azure-core", "values"]]
    for o in outcomes:
        theirs = "-" if o.azure is None else f"{o.azure} ({o.azure_polling})"
        values = "lrokit ✓" if o.lrokit_correct else "lrokit ✗"
        if o.azure_correct is not None:
            values += ", azure-core ✓" if o.azure_correct else ", azure-core ✗"
        rows.append(
            [f"`{o.name}`", str(o.operations), str(o.expected), str(o.lrokit), theirs, values]
        )
    total_ours = sum(o.lrokit for o in outcomes)
    compared = [o for o in outcomes if o.azure is not None]
    total_theirs = sum(o.azure or 0 for o in compared)
    rows.append(
        [
            "**all scenarios**",
            str(sum(o.operations for o in outcomes)),
            str(sum(o.expected for o in outcomes)),
            str(total_ours),
            str(total_theirs) if compared else "-",
            "",
        ]
    )
    section.table = rows
    more = [o.name for o in compared if o.lrokit > (o.azure or 0)]
    section.checks.append(
        Check(
            "scenarios where lrokit makes more requests than azure-core",
            f"{len(more)} of {len(compared)}",
            "0",
            not more and bool(compared),
        )
    )
    section.checks.append(
        Check(
            "scenarios where lrokit's requests or value differ from the conformance table",
            str(sum(o.lrokit != o.expected or not o.lrokit_correct for o in outcomes)),
            "0",
            all(o.lrokit == o.expected and o.lrokit_correct for o in outcomes),
        )
    )
    wrong = [o.name for o in compared if not o.azure_correct]
    if wrong:
        section.notes.append("azure-core's value differs from the table in: " + ", ".join(wrong))
    if not compared:
        section.notes.append("azure-core / azure-mgmt-core are not installed: lrokit only.")
        return section

    def plot(path: Path) -> None:
        plt: Any = _report.pyplot()
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(outcomes) + 1.2))
        ys = range(len(outcomes))
        height = 0.4
        ax.barh(
            [y - height / 2 for y in ys],
            [o.lrokit for o in outcomes],
            height,
            label="lrokit",
            color="#3182bd",
        )
        ax.barh(
            [y + height / 2 for y in ys],
            [o.azure or 0 for o in outcomes],
            height,
            label="azure-core",
            color="#fdae6b",
        )
        names = [_scenario_label(o.name) for o in outcomes]
        ax.set_yticks(list(ys), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("requests per scenario (fewer is better)")
        ax.set_title("Requests per spector LRO scenario")
        ax.legend(loc="lower right", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    section.plot = plot
    return section


def _scenario_label(name: str) -> str:
    for prefix in ("Azure_ResourceManager_", "Azure_Core_"):
        name = name.removeprefix(prefix)
    return name.replace("OperationTemplates_", "OpTemplates_").replace("MultiService", "MS")


# -- the run ---------------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[Sizes], list[Section]]] = {
    "polling": polling_sections,
    "creation": lambda sizes: [creation_section(sizes)],
    "tokens": lambda sizes: [token_section(sizes)],
    "async": lambda sizes: [async_section(sizes)],
    "economy": lambda sizes: [economy_section(sizes)],
}


def _load_average() -> str:
    """The 1-minute load average, or "unknown" where the system does not say."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "unknown"


def method_text(quick: bool, load: str) -> str:
    return f"""
The 1-minute load average was {load} (on {os.cpu_count()} CPUs: above that count, other
processes were competing with the benchmark for the CPUs, which moves ratios between small
figures most).

How to read the tables: every figure is shown with its ratio to the baseline of its section
(the hand-written loop, a floor, or azure-core), measured in the same run; targets are
printed with **PASS** or **MISS**. The per-poll targets are judged at K = {TARGET_K} polls per
operation (each poll's own cost plus a tenth of the start); K = 1, where the start
dominates, is shown beside them. {"This was a quick (smoke) run with tiny sizes: its figures are noisy and not a result." if quick else ""}
"""  # noqa: E501


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sections, print them, write the page; 1 on a MISS only with ``--check``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--output",
        type=Path,
        help="directory for performance.md and img/ (default: docs/, or a temporary"
        " directory with --quick)",
    )
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (of {', '.join(BUILDERS)})"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = quick_sizes() if args.quick else full_sizes()
    chosen = list(BUILDERS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [name for name in chosen if name not in BUILDERS]
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    temporary = None
    if args.output is not None:
        output = args.output
    elif args.quick:
        temporary = tempfile.TemporaryDirectory(prefix="lrokit-bench-")
        output = Path(temporary.name)
    else:
        output = ROOT / "docs"
    began = time.perf_counter()
    load_before = _load_average()
    print(f"lrokit benchmark ({'quick' if args.quick else 'full'} mode)")
    _report.print_machine()

    sections: list[Section] = []
    for name in chosen:
        section_began = time.perf_counter()
        built = BUILDERS[name](sizes)
        for section in built:
            _report.print_section(section)
        print(f"  ({name}: {time.perf_counter() - section_began:.1f} s)")
        sections += built

    images = output / "img"
    if _report.pyplot() is None:
        print("\nmatplotlib is not installed (pip install -e '.[bench]'): no plots")
    else:
        images.mkdir(parents=True, exist_ok=True)
        for section in sections:
            if section.plot is None:
                continue
            path = images / f"perf-{section.key}.png"
            section.plot(path)
            section.image = f"img/{path.name}"
    elapsed = time.perf_counter() - began
    load = f"{load_before} at the start, {_load_average()} at the end"
    command = "python bench/run_all.py" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {shlex.quote(args.only)}"
    page = output / "performance.md"
    _report.write_markdown(
        page,
        sections,
        command=command,
        mode="quick" if args.quick else "full",
        method=method_text(args.quick, load),
        elapsed=elapsed,
        preamble=PREAMBLE,
    )
    missed = [c for s in sections for c in s.checks if not c.ok]
    print()
    print(f"wrote {page} and {len([s for s in sections if s.image])} plots in {images}")
    print(
        f"finished in {elapsed:.0f} s; "
        + (f"{len(missed)} target(s) missed" if missed else "all targets met")
    )
    if temporary is not None:
        temporary.cleanup()
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
