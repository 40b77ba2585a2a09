"""``lrokit demo``: the six usage patterns of .NET's ``OperationResult``, run over real HTTP
against the service.

Each pattern prints its code, the transitions its hooks really saw, one line per status poll
and the final value. A pattern counts as passed only when its hooks saw NotStarted ->
Running -> Succeeded and a completed vector store came back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .._delay import DELAY_LABELS, DelaySource, PollingPolicy
from .._state import OperationState
from ._client import CreateVectorStoreOperation, VectorStore, VectorStoreClient
from ._display import Watcher, describe_store
from ._service import DemoService

__all__ = ["run_demo"]

Write = Callable[[str], object]

_NS, _RUN, _OK = OperationState.NOT_STARTED, OperationState.RUNNING, OperationState.SUCCEEDED
_EXPECTED = [(_NS, _RUN), (_RUN, _OK)]


@dataclass
class _Context:
    client: VectorStoreClient
    endpoint: str
    interval: float
    deadline: float
    write: Write

    def watcher(self) -> Watcher:
        return Watcher(self.write)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError("the pattern took too long")


def _pattern_1(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    store = ctx.client.create_vector_store(
        "demo-1", wait_until_completed=True, before_start=watch.attach
    ).value
    return store, watch.transitions


def _pattern_2(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    operation = ctx.client.create_vector_store(
        "demo-2", wait_until_completed=False, before_start=watch.attach
    )
    operation.wait_for_completion(timeout=ctx.deadline - time.monotonic())
    return operation.value, watch.transitions


def _pattern_3(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    operation = ctx.client.create_vector_store(
        "demo-3", wait_until_completed=False, before_start=watch.attach
    )
    operation.wait_for_completion(
        polling_interval=2 * ctx.interval, timeout=ctx.deadline - time.monotonic()
    )
    return operation.value, watch.transitions


def _pattern_4(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    operation = ctx.client.create_vector_store(
        "demo-4", wait_until_completed=False, before_start=watch.attach
    )
    while not operation.has_completed:
        ctx.check_time()
        time.sleep(ctx.interval)
        operation.update_status()
    return operation.value, watch.transitions


def _pattern_5(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    operation = ctx.client.create_vector_store(
        "demo-5", wait_until_completed=False, before_start=watch.attach
    )
    _print_http_details(ctx, operation)
    while not operation.has_completed:
        ctx.check_time()
        time.sleep(ctx.interval)
        operation.update_status()
        _print_http_details(ctx, operation)
    return operation.value, watch.transitions


def _print_http_details(ctx: _Context, operation: CreateVectorStoreOperation) -> None:
    response = operation.get_raw_response()
    if response is not None:
        request = response.request
        ctx.write(f"   Status code: {response.status_code}  ({request.method} {request.path_url})")


def _pattern_6(ctx: _Context) -> tuple[VectorStore, list[tuple[OperationState, OperationState]]]:
    watch = ctx.watcher()
    ctx.write("   [process 1]")
    operation = ctx.client.create_vector_store(
        "demo-6", wait_until_completed=False, before_start=watch.attach
    )
    token = str(operation.rehydration_token)
    ctx.write(f"   persisted token ({len(token)} chars): {token[:32]}...")
    command = [
        sys.executable,
        "-m",
        "lrokit.demo._resume",
        ctx.endpoint,
        "-",
        "--polling-interval",
        str(ctx.interval),
        "--json",
    ]
    ctx.write("   [process 2] python -m lrokit.demo._resume ENDPOINT - < token")
    finished = subprocess.run(
        command,
        input=token,
        capture_output=True,
        text=True,
        timeout=max(1.0, ctx.deadline - time.monotonic()),
        check=False,
    )
    report = _read_report(finished.stdout)
    for line in report.get("log", []):
        ctx.write(f"   | {line.strip()}")
    if finished.returncode != 0 or report.get("value") is None:
        detail = finished.stderr.strip().splitlines()[-1:] or [str(report.get("error"))]
        raise RuntimeError(f"the second process exited with {finished.returncode}: {detail[0]}")
    transitions = list(watch.transitions)
    transitions += [(OperationState(a), OperationState(b)) for a, b in report["transitions"]]
    store = msgspec.convert(report["value"], VectorStore)
    return store, transitions


def _read_report(stdout: str) -> dict[str, Any]:
    """The JSON report the second process prints last; empty when there is none."""
    lines = stdout.strip().splitlines()
    if not lines:
        return {}
    try:
        report = json.loads(lines[-1])
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


#: How the demo builds its client (printed before the patterns, which all use it).
_CLIENT_CODE = "client = VectorStoreClient(endpoint, polling=PollingPolicy(interval={interval}))"

_Pattern = Callable[[_Context], tuple[VectorStore, list[tuple[OperationState, OperationState]]]]

#: (title, the code it runs, the function).
PATTERNS: tuple[tuple[str, str, _Pattern], ...] = (
    (
        "Start LRO, return when completed",
        'store = client.create_vector_store("demo-1", wait_until_completed=True).value',
        _pattern_1,
    ),
    (
        "Start LRO, wait for completion via LRO subclient",
        'operation = client.create_vector_store("demo-2", wait_until_completed=False)\n'
        "operation.wait_for_completion()\n"
        "store = operation.value",
        _pattern_2,
    ),
    (
        "Start LRO, wait for completion using custom polling interval",
        'operation = client.create_vector_store("demo-3", wait_until_completed=False)\n'
        "operation.wait_for_completion(polling_interval={interval2})\n"
        "store = operation.value",
        _pattern_3,
    ),
    (
        "Start LRO, manually poll for updates (advanced)",
        'operation = client.create_vector_store("demo-4", wait_until_completed=False)\n'
        "while not operation.has_completed:\n"
        "    time.sleep({interval})\n"
        "    operation.update_status()\n"
        "store = operation.value",
        _pattern_4,
    ),
    (
        "Start LRO, view HTTP response details (advanced)",
        'operation = client.create_vector_store("demo-5", wait_until_completed=False)\n'
        "print_http_details(operation.get_raw_response())\n"
        "while not operation.has_completed:\n"
        "    time.sleep({interval})\n"
        "    operation.update_status()\n"
        "    print_http_details(operation.get_raw_response())\n"
        "store = operation.value",
        _pattern_5,
    ),
    (
        'Start LRO, wait for completion from a different process ("Rehydrate") (advanced)',
        "# process 1\n"
        'operation = client.create_vector_store("demo-6", wait_until_completed=False)\n'
        "persist(str(operation.rehydration_token))\n"
        "# process 2\n"
        "operation = CreateVectorStoreOperation.rehydrate(client, read_persisted())\n"
        "operation.wait_for_completion()\n"
        "store = operation.value",
        _pattern_6,
    ),
)


def run_demo(
    write: Write = print,
    *,
    duration: float = 0.8,
    interval: float = 0.2,
    pattern_timeout: float = 30.0,
) -> int:
    """Run the six patterns against a fresh :class:`DemoService`; returns the exit status.

    Args:
        write: where output lines go.
        duration: how long each operation runs on the service, in seconds.
        interval: the polling interval, also sent by the service as its polling hint.
        pattern_timeout: the most any one pattern may take.
    """
    failures = 0
    with DemoService(duration=duration, retry_after=interval) as service:
        write(f"lrokit demo: vector-store service at {service.endpoint}")
        write(
            f"each operation runs for {duration:g} s; the service sends Retry-After: "
            f"{interval:g} s while it runs."
        )
        write(
            f"every pattern runs on this client, which polls every {interval:g} s"
            " (a longer Retry-After wins):"
        )
        write(f"   >>> {_CLIENT_CODE.format(interval=interval)}")
        interval_label = DELAY_LABELS[DelaySource.STRATEGY]
        server_label = DELAY_LABELS[DelaySource.SERVER]
        write(f'"next poll in S s ({interval_label})": the client\'s polling interval chose it;')
        write(f'"({server_label})": the service asked for a longer delay.')
        write("every pattern subscribes hooks before the start request (before_start=watch),")
        write("so each transition below is printed by an on_change hook as it happens;")
        write(f"waits are bounded by a {pattern_timeout:g} s timeout per pattern.")
        client = VectorStoreClient(service.endpoint, polling=PollingPolicy(interval=interval))
        with client:
            for number, (title, code, function) in enumerate(PATTERNS, start=1):
                write("")
                write(f"== Pattern {number}: {title} ==")
                for line in code.format(interval=interval, interval2=2 * interval).splitlines():
                    write(f"   >>> {line}")
                context = _Context(
                    client, service.endpoint, interval, time.monotonic() + pattern_timeout, write
                )
                try:
                    store, transitions = function(context)
                except Exception as error:  # noqa: BLE001 - reported, and the demo goes on
                    failures += 1
                    write(f"   FAILED: {type(error).__name__}: {error}")
                    continue
                write(f"   value: {describe_store(store)}")
                if transitions != _EXPECTED or store.status != "completed":
                    failures += 1
                    seen = ", ".join(f"{a.value} -> {b.value}" for a, b in transitions)
                    write(f"   FAILED: unexpected outcome (transitions seen: {seen or 'none'})")
                else:
                    write("   ok: NotStarted -> Running -> Succeeded")
    write("")
    if failures:
        write(f"{failures} of {len(PATTERNS)} patterns failed")
        return 1
    write(f"all {len(PATTERNS)} patterns completed; the service has stopped")
    return 0
