"""``lrokit worker`` and ``lrokit fleet-demo``: the Temporal commands (the ``temporal`` extra).

Registered by ``_cli.py`` with :func:`add_commands`; nothing here imports ``temporalio``
until a command runs, so the other commands work without the extra.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["add_commands"]

_WORKER_EPILOG = """\
examples:
  lrokit worker --temporal 127.0.0.1:7233 --task-queue lro myapp.sdk
  lrokit worker --temporal 127.0.0.1:7233 --task-queue lro myapp.sdk:lro_registry

MODULE is imported in the worker; it holds a lrokit.temporal.Registry (named 'registry',
or the only one, or MODULE:ATTRIBUTE) that maps each operation class to the factory of its
SDK client. Credentials are read there, in the worker, and never enter Temporal's history.
Run as many workers as you like on one task queue; stop one with Ctrl-C or SIGTERM (polls
in flight finish first).

exit status: 0 once stopped; 2 when the registry cannot be loaded, the temporal extra is
missing or Temporal cannot be reached at HOST:PORT.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def add_commands(commands: Any) -> None:
    """Add ``worker`` and ``fleet-demo`` to the ``lrokit`` command's subparsers."""
    worker = commands.add_parser(
        "worker",
        help="run a Temporal worker that tracks operations durably (the temporal extra)",
        description=(
            "Run a Temporal worker for lrokit's tracking workflow and poll activities, for "
            "the operation classes of MODULE's registry, until Ctrl-C or SIGTERM."
        ),
        epilog=_WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("target", metavar="MODULE[:ATTRIBUTE]", help="where the registry is")
    worker.add_argument(
        "--temporal",
        default="127.0.0.1:7233",
        metavar="HOST:PORT",
        help="the Temporal frontend (default: %(default)s)",
    )
    worker.add_argument("--namespace", default="default", help="(default: %(default)s)")
    worker.add_argument("--task-queue", default="lro", metavar="NAME", help="(default: lro)")
    worker.add_argument(
        "--max-concurrent-polls",
        type=_positive_int,
        default=100,
        metavar="N",
        help="polls in flight at most (default: %(default)s)",
    )
    worker.add_argument(
        "--max-cached-workflows",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="tracking workflows kept in memory between polls (default: %(default)s)",
    )
    worker.add_argument(
        "--sticky-timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds before another worker may take a workflow task meant for this one "
        "(default: the SDK's)",
    )
    worker.set_defaults(handler=_run_worker)

    demo = commands.add_parser(
        "fleet-demo",
        help="track 1,000 operations on a local Temporal with two workers, killing one",
        description=(
            "Start a Temporal dev server (from the temporal extra) on 127.0.0.1, two worker "
            "processes and the demo service; start and track --operations operations, kill "
            "one worker half-way, and show that every operation finished with its value "
            "(started, completed, lost, duplicate creations); then stop everything it "
            "started. Exits 0 when nothing was lost or created twice."
        ),
    )
    demo.add_argument(
        "--operations", type=_positive_int, default=1000, metavar="N", help="(default: 1000)"
    )
    demo.add_argument(
        "--duration",
        type=_seconds,
        default=3.0,
        metavar="S",
        help="how long each operation runs on the service (default: %(default)s)",
    )
    demo.add_argument(
        "--retry-after",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="the service's polling hint (default: %(default)s)",
    )
    demo.set_defaults(handler=_run_fleet_demo)


def _run_worker(args: argparse.Namespace) -> int:
    try:
        from .temporal import load_registry, run_worker  # noqa: PLC0415
    except ImportError as error:
        print(f"lrokit worker: {error}: pip install 'lrokit[temporal]'", file=sys.stderr)
        return 2
    try:
        registry = load_registry(args.target)
    except (ImportError, ValueError) as error:
        print(f"lrokit worker: cannot load {args.target!r}: {error}", file=sys.stderr)
        return 2

    def ready() -> None:
        print(
            f"lrokit worker tracking {', '.join(registry.kinds)} on task queue"
            f" {args.task_queue!r} at {args.temporal}",
            flush=True,
        )

    try:
        asyncio.run(
            run_worker(
                args.temporal,
                task_queue=args.task_queue,
                registry=registry,
                namespace=args.namespace,
                ready=ready,
                max_concurrent_polls=args.max_concurrent_polls,
                max_cached_workflows=args.max_cached_workflows,
                sticky_timeout=args.sticky_timeout,
            )
        )
    except ConnectionError as error:
        print(f"lrokit worker: {error}", file=sys.stderr)
        return 2
    print("lrokit worker stopped", flush=True)
    return 0


def _run_fleet_demo(args: argparse.Namespace) -> int:
    try:
        from .temporal._fleet_demo import run_fleet_demo  # noqa: PLC0415
    except ImportError as error:
        print(f"lrokit fleet-demo: {error}: pip install 'lrokit[temporal]'", file=sys.stderr)
        return 2
    return run_fleet_demo(
        lambda line: print(line, flush=True),
        operations=args.operations,
        duration=args.duration,
        retry_after=args.retry_after,
    )
