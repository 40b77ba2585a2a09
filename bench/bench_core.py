"""What one lrokit operation costs: creation time, retained memory, and CPU per poll.

Run ``python bench/bench_core.py`` (full, well under a minute) or ``--quick`` (seconds).
Every figure is the median over several repeats; the repeats of all variants are
interleaved, so a slow moment of the machine hits every variant alike, and each figure is
shown with its ratio to a floor (the least a Python program could do) measured in the same
run. ``--check`` exits with 1 when a target is missed; otherwise the exit code is 0, since
this is a report. Figures are specific to the machine: compare ratios, not microseconds.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _report import gc_paused, print_machine, ratio, us, verdict
from transitions import Machine

from lrokit import Operation, OperationCore, Pipeline, ResponseView
from lrokit._core import Action
from lrokit._state import INITIAL_STATE, TRANSITIONS, OperationState
from lrokit._urls import api_version_of

ENDPOINT = "https://bench.example.test/"
API = "api-version=2024-05-01"
KIND = "bench.CreateVectorStoreOperation"
KIB = 1024

# Targets (see bench/README.md).
CREATE_US_TARGET = 5.0
CREATE_BYTES_TARGET = 1 * KIB
POLL_RATIO_TARGET = 3.0


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    operations: int  # operations created per creation measurement
    machine_operations: int  # operations for the (slow) transitions.Machine variants
    time_repeats: int
    memory_repeats: int
    poll_operations: int  # operations driven through the status sequence per repeat
    running_polls: int  # K: Running monitor bodies between start and Succeeded


FULL = Settings(100_000, 2_000, 5, 4, 2_000, 20)
QUICK = Settings(10_000, 200, 3, 2, 300, 20)


# -- the floor: a plain dict per operation and a dict transition table ----------------------

#: (state, reported status) -> next state, as plain strings; derived from the real table,
#: plus "still running" self-loops, which the lrokit table handles without a transition.
FLOOR_NEXT: dict[tuple[str, str], str] = {
    (source.value, dest.value): dest.value for _, sources, dest in TRANSITIONS for source in sources
}
_RUNNING = OperationState.RUNNING.value
FLOOR_NEXT[(_RUNNING, _RUNNING)] = _RUNNING
FLOOR_INITIAL = INITIAL_STATE.value


def floor_operation(method: str, url: str, operation_id: str) -> dict[str, Any]:
    """What the core stores, as a plain dict (the same 19 fields as OperationCore's slots)."""
    return {
        "state": FLOOR_INITIAL,
        "method": method,
        "initial_url": url,
        "options": None,
        "origin_policy": None,
        "operation_id": operation_id,
        "kind": KIND,
        "created_at": time.time(),
        "protocol": "none",
        "next_action": None,
        "polling_url": None,
        "location_url": None,
        "final_url": None,
        "api_version": None,
        "attempt": 0,
        "status": None,
        "error": None,
        "payload": None,
        "has_payload": False,
    }


# -- creation --------------------------------------------------------------------------------


class _MachineModel:
    """A bare model object for the one-Machine-per-operation variants."""


_MACHINE_STATES = [state.value for state in OperationState]
_MACHINE_TRANSITIONS = [
    {"trigger": trigger.value, "source": [s.value for s in sources], "dest": dest.value}
    for trigger, sources, dest in TRANSITIONS
]


Creator = Callable[[str, str], object]


def make_creators(pipeline: Pipeline) -> dict[str, Creator]:
    """Functions creating one operation from its URL and id, each the way its variant would.

    The ids are made beforehand, like the URLs: generating one is the caller's cost
    (``Operation.start`` uses ``str(uuid.uuid4())``), measured on its own as ``uuid``.
    """
    policy = pipeline.origin_policy

    def floor(url: str, operation_id: str) -> object:
        return floor_operation("PUT", url, operation_id)

    def core(url: str, operation_id: str) -> OperationCore:
        # What Operation.start builds before sending the request.
        return OperationCore("PUT", url, origin_policy=policy, operation_id=operation_id, kind=KIND)

    def operation(url: str, operation_id: str) -> object:
        return Operation(pipeline, core(url, operation_id))

    def uuid_id(url: str, operation_id: str) -> object:
        return str(uuid.uuid4())

    def api_version(url: str, operation_id: str) -> object:
        return api_version_of(url)

    def machine_each(url: str, operation_id: str) -> object:
        model = _MachineModel()
        Machine(
            model=model,
            states=_MACHINE_STATES,
            transitions=_MACHINE_TRANSITIONS,
            initial=INITIAL_STATE.value,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        return model

    return {
        "floor": floor,
        "core": core,
        "operation": operation,
        "uuid": uuid_id,
        "api_version": api_version,
        "machine": machine_each,
    }


def inputs(count: int) -> list[tuple[str, str]]:
    """Distinct absolute URLs with api-version, and operation ids, built beforehand."""
    return [(f"{ENDPOINT}vectorStores/vs_{i}?{API}", str(uuid.uuid4())) for i in range(count)]


def time_creation(create: Creator, targets: Sequence[tuple[str, str]]) -> float:
    """Seconds per operation to create (and keep) one operation per input."""
    kept: list[object] = [None] * len(targets)
    with gc_paused():
        start = time.perf_counter()
        for i, (url, operation_id) in enumerate(targets):
            kept[i] = create(url, operation_id)
        elapsed = time.perf_counter() - start
    del kept
    return elapsed / len(targets)


def memory_creation(
    create: Creator, targets: Sequence[tuple[str, str]], kept: list[object]
) -> float:
    """Bytes retained per operation once all operations exist (tracemalloc).

    ``kept`` (as long as ``targets``, allocated by the caller so it is not counted) receives
    the operations, which the caller may keep alive after the measurement.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, (url, operation_id) in enumerate(targets):
            kept[i] = create(url, operation_id)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / len(targets)


def shared_machine_add_model(count: int) -> tuple[float, float]:
    """Seconds and bytes per operation to add ``count`` models to one shared Machine."""
    results: list[float] = []
    for measure_memory in (False, True):
        machine = Machine(
            model=None,
            states=_MACHINE_STATES,
            transitions=_MACHINE_TRANSITIONS,
            initial=INITIAL_STATE.value,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        models = [_MachineModel() for _ in range(count)]
        gc.collect()
        if measure_memory:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for model in models:
            machine.add_model(model)
        elapsed = time.perf_counter() - start
        if measure_memory:
            gc.collect()
            results.append((tracemalloc.get_traced_memory()[0] - before) / count)
            tracemalloc.stop()
        else:
            results.append(elapsed / count)
        machine.remove_model(models)
    return results[0], results[1]


# -- polling ---------------------------------------------------------------------------------


def status_sequence(running_polls: int) -> list[ResponseView]:
    """A 202 start, ``running_polls`` Running monitor bodies, then Succeeded with a result."""
    monitor = f"{ENDPOINT}operations/op_1?{API}"
    start = ResponseView.build(
        202,
        {"Operation-Location": monitor, "Retry-After": "1"},
        b'{"id":"op_1","status":"NotStarted"}',
        url=f"{ENDPOINT}vectorStores?{API}",
    )
    views = [start]
    for i in range(running_polls):
        body = json.dumps({"id": "op_1", "status": "Running", "percentComplete": i * 5})
        views.append(ResponseView.build(200, {"Retry-After": "1"}, body, url=monitor))
    result = {"id": "vs_1", "name": "store", "file_counts": {"completed": 3, "failed": 0}}
    body = json.dumps({"id": "op_1", "status": "Succeeded", "result": result})
    views.append(ResponseView.build(200, {}, body, url=monitor))
    return views


def new_cores(count: int, policy: Any) -> list[OperationCore]:
    """Fresh cores for a POST whose monitor's ``result`` is final (no final GET)."""
    url = f"{ENDPOINT}vectorStores?{API}"
    return [
        OperationCore("POST", url, origin_policy=policy, operation_id=str(i), kind=KIND)
        for i in range(count)
    ]


def time_core_polls(cores: list[OperationCore], views: Sequence[ResponseView]) -> float:
    """Seconds per response for ``OperationCore.receive`` over the whole sequence."""
    with gc_paused():
        start = time.perf_counter()
        for core in cores:
            receive = core.receive
            for view in views:
                receive(view)
        elapsed = time.perf_counter() - start
    return elapsed / (len(cores) * len(views))


def time_floor_polls(operations: list[dict[str, Any]], bodies: Sequence[bytes]) -> float:
    """Seconds per response for ``json.loads`` + ``doc["status"]`` + a dict-table lookup."""
    table = FLOOR_NEXT
    loads = json.loads
    with gc_paused():
        start = time.perf_counter()
        for op in operations:
            for body in bodies:
                doc = loads(body)
                status = doc["status"]
                op["state"] = table.get((op["state"], status), op["state"])
        elapsed = time.perf_counter() - start
    return elapsed / (len(operations) * len(bodies))


def check_sequence(views: Sequence[ResponseView], policy: Any) -> None:
    """Both sides must really finish the operation, or the timings mean nothing."""
    core = new_cores(1, policy)[0]
    for view in views:
        decision = core.receive(view)
    assert decision.action is Action.DONE, decision
    assert core.state is OperationState.SUCCEEDED
    assert core.payload == json.loads(views[-1].body)["result"]
    op = floor_operation("POST", "", "op_1")
    for view in views:
        op["state"] = FLOOR_NEXT.get((op["state"], json.loads(view.body)["status"]), op["state"])
    assert op["state"] == OperationState.SUCCEEDED.value


# -- reporting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One creation variant: its label, size group, and whether its memory is measured."""

    label: str
    name: str
    small: bool = False  # measured on ``machine_operations`` instead of ``operations``
    memory: bool = True  # False: time only


CREATION_ROWS = (
    Row("floor: dict of 19 fields, dict table", "floor"),
    Row("OperationCore(method, url, policy, id, kind)", "core"),
    Row("Operation(pipeline, OperationCore(...))", "operation"),
    # Memory not measured: urlsplit's own cache would be counted at small N.
    Row("info: of which api_version_of(url)", "api_version", memory=False),
    Row("info: str(uuid.uuid4()) id (Operation.start)", "uuid"),
    Row("info: one transitions.Machine each", "machine", small=True),
)


def measure_creation(
    settings: Settings, creators: dict[str, Creator]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds and bytes per operation of every creation row, repeats interleaved.

    Time: every repeat creates all N operations of each row. Memory: tracemalloc makes
    creation 10-30 times slower, so each memory repeat creates one slice of the N
    operations and keeps it alive; after the last repeat all N of each row exist at once.
    """
    full = inputs(settings.operations)
    small = full[: settings.machine_operations]
    times: dict[str, list[float]] = {row.name: [] for row in CREATION_ROWS}
    memory: dict[str, list[float]] = {row.name: [] for row in CREATION_ROWS}
    alive: list[list[object]] = []
    repeats = settings.memory_repeats
    for repeat in range(settings.time_repeats):
        for row in CREATION_ROWS:
            times[row.name].append(time_creation(creators[row.name], small if row.small else full))
        if repeat < repeats:
            for row in CREATION_ROWS:
                if not row.memory:
                    continue
                # Under tracemalloc a uuid4 costs ~30 us (its temporaries are traced too),
                # and the id's retained size does not depend on N: the small size will do.
                sized = small if row.small or row.name == "uuid" else full
                part = sized[repeat * len(sized) // repeats : (repeat + 1) * len(sized) // repeats]
                alive.append([None] * len(part))
                memory[row.name].append(memory_creation(creators[row.name], part, alive[-1]))
    del alive
    return (
        {name: statistics.median(values) for name, values in times.items()},
        {name: statistics.median(values) for name, values in memory.items() if values},
    )


def measure_polling(settings: Settings, policy: Any) -> tuple[float, float, int]:
    """Median seconds per response of the core and of the floor, and the responses per run."""
    views = status_sequence(settings.running_polls)
    check_sequence(views, policy)
    bodies = [view.body for view in views]
    core_polls: list[float] = []
    floor_polls: list[float] = []
    for _ in range(settings.time_repeats):
        cores = new_cores(settings.poll_operations, policy)
        floor_ops = [floor_operation("POST", "", str(i)) for i in range(settings.poll_operations)]
        core_polls.append(time_core_polls(cores, views))
        floor_polls.append(time_floor_polls(floor_ops, bodies))
    return statistics.median(core_polls), statistics.median(floor_polls), len(views)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report; with ``--check``, 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    began = time.perf_counter()

    print(f"lrokit core benchmark ({'quick' if args.quick else 'full'} mode)")
    print_machine()
    print(
        f"method: medians of {settings.time_repeats} interleaved time repeats"
        f" ({settings.memory_repeats} for memory); time.perf_counter with gc paused;"
        "\n  memory = tracemalloc bytes still allocated after creating N operations, / N"
    )

    with Pipeline(ENDPOINT) as pipeline:
        t, m = measure_creation(settings, make_creators(pipeline))
        shared_time, shared_memory = shared_machine_add_model(settings.machine_operations)
        poll_core, poll_floor, responses = measure_polling(settings, pipeline.origin_policy)
    poll_ratio = poll_core / poll_floor

    print()
    print(
        f"creation, per operation (N={settings.operations:,}; Machine rows and the uuid's"
        f" memory N={settings.machine_operations:,})"
    )
    print(f"  {'':46} {'time':>12} {'':8} {'retained':>10}")
    for row in CREATION_ROWS:
        time_mark = "" if row.name == "floor" else ratio(t[row.name], t["floor"])
        if row.name not in m:
            print(f"  {row.label:46} {us(t[row.name])} {time_mark:8} {'-':>10}")
            continue
        mem_mark = "" if row.name == "floor" else ratio(m[row.name], m["floor"])
        print(f"  {row.label:46} {us(t[row.name])} {time_mark:8} {m[row.name]:8,.0f} B {mem_mark}")
    print(
        f"  {'info: shared Machine.add_model (1 run)':46} {us(shared_time)}"
        f" {ratio(shared_time, t['floor']):8} {shared_memory:8,.0f} B"
        f" {ratio(shared_memory, m['floor'])}"
    )
    start_time = t["uuid"] + t["operation"]
    start_memory = m["uuid"] + m["operation"]
    print(
        f"  {'Operation.start builds: id + Operation (sum)':46} {us(start_time)}"
        f" {ratio(start_time, t['floor'] + t['uuid']):8} {start_memory:8,.0f} B"
        f" {ratio(start_memory, m['floor'] + m['uuid'])}"
    )

    print()
    print(
        f"polling, CPU per response ({settings.poll_operations:,} operations x {responses}"
        f" responses: 202 start, {settings.running_polls} Running with Retry-After,"
        " Succeeded with result)"
    )
    print(f"  {'floor: json.loads + doc[status] + dict table':46} {us(poll_floor)}")
    print(f"  {'OperationCore.receive':46} {us(poll_core)} {ratio(poll_core, poll_floor)}")

    creation_time = f"creation <= {CREATE_US_TARGET:g} us"
    creation_memory = f"creation <= {CREATE_BYTES_TARGET:,} B"
    checks = [
        (creation_time, "OperationCore", f"{t['core'] * 1e6:.2f} us", t["core"] * 1e6),
        (creation_time, "Operation + core", f"{t['operation'] * 1e6:.2f} us", t["operation"] * 1e6),
        (creation_time, "Operation.start (+ id)", f"{start_time * 1e6:.2f} us", start_time * 1e6),
        (creation_memory, "OperationCore", f"{m['core']:,.0f} B", m["core"]),
        (creation_memory, "Operation + core", f"{m['operation']:,.0f} B", m["operation"]),
        (creation_memory, "Operation.start (+ id)", f"{start_memory:,.0f} B", start_memory),
        (
            f"poll CPU <= {POLL_RATIO_TARGET:g}x floor",
            "OperationCore.receive",
            f"{poll_ratio:.2f}x",
            poll_ratio,
        ),
    ]
    limits = {creation_time: CREATE_US_TARGET, creation_memory: CREATE_BYTES_TARGET}
    print()
    print("targets")
    missed = 0
    for label, subject, shown, value in checks:
        ok = value <= limits.get(label, POLL_RATIO_TARGET)
        missed += not ok
        print(f"  {verdict(ok)}  {label:24} {subject:24} {shown:>10}")
    print()
    outcome = f"{missed} target(s) missed" if missed else "all targets met"
    print(f"finished in {time.perf_counter() - began:.1f} s; {outcome}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
