"""The ``lrokit`` command: ``demo``, ``serve`` and ``statechart``.

Exit status: 0 on success, 1 when the command ran and something failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

__all__ = ["build_parser", "main"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or a positive number: {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lrokit`` command."""
    parser = argparse.ArgumentParser(
        prog="lrokit",
        description="lrokit: long-running HTTP operations as explicit, resumable state machines.",
        epilog="Run 'lrokit COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the six LRO usage patterns against an embedded service",
        description=(
            "Start the embedded vector-store service on 127.0.0.1, run the six usage "
            "patterns of the LRO client seed against it over real HTTP (printing every "
            "state transition and status poll), then stop it. Pattern 6 resumes the "
            "operation in a second Python process from its rehydration token. Exits 0 when "
            "all six patterns went NotStarted -> Running -> Succeeded."
        ),
    )
    demo.add_argument(
        "--duration",
        type=_positive,
        default=0.8,
        metavar="S",
        help="how long each operation runs on the service (default: %(default)s s)",
    )
    demo.add_argument(
        "--interval",
        type=_positive,
        default=0.2,
        metavar="S",
        help="polling interval, also the service's Retry-After hint (default: %(default)s s)",
    )
    demo.set_defaults(handler=_run_demo)

    serve = commands.add_parser(
        "serve",
        help="serve the embedded vector-store LRO service until Ctrl-C",
        description=(
            "Serve the demo vector-store service on 127.0.0.1 until interrupted (Ctrl-C or "
            'SIGTERM). POST /vector_stores?api-version=2024-01-01 with {"name": ...} '
            "starts an operation; follow its Operation-Location header. Names starting "
            "with 'fail' or 'cancel' end Failed or Canceled."
        ),
    )
    serve.add_argument(
        "--port", type=_port, default=0, metavar="N", help="TCP port (default: a free one)"
    )
    serve.add_argument(
        "--duration",
        type=_non_negative,
        default=10.0,
        metavar="S",
        help="seconds until an operation completes (default: %(default)s)",
    )
    serve.add_argument(
        "--polls",
        type=_count,
        default=None,
        metavar="N",
        help="complete on the N-th status poll instead of after --duration",
    )
    serve.add_argument(
        "--retry-after",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="polling hint sent while running; fractions go out as retry-after-ms "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--faults",
        type=_fraction,
        default=0.0,
        metavar="RATE",
        help="answer this fraction of polls badly, spread evenly over 503 and 429 with "
        "Retry-After, dropped connections, slow answers, truncated and non-JSON bodies "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--fault-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the fault draws, for reproducible runs (default: %(default)s)",
    )
    serve.add_argument(
        "--fault-starts",
        action="store_true",
        help="inject faults into start requests too",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    serve.set_defaults(handler=_run_serve)

    chart = commands.add_parser(
        "statechart",
        help="print the operation lifecycle statechart",
        description=(
            "Print the lifecycle statechart (NotStarted -> Running -> Succeeded/Failed/"
            "Canceled), generated from lrokit's one transition table."
        ),
    )
    chart.add_argument(
        "--format",
        choices=("mermaid", "scxml"),
        default="mermaid",
        help="output format (default: %(default)s)",
    )
    chart.set_defaults(handler=_run_statechart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lrokit`` command with ``argv`` (default: ``sys.argv[1:]``); returns the status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits for --help (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("lrokit: error: a command is required (demo, serve or statechart)", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _out(line: str) -> None:
    print(line, flush=True)


def _run_demo(args: argparse.Namespace) -> int:
    # Imported on use, so that each command loads only what it needs.
    from .demo._walkthrough import run_demo  # noqa: PLC0415

    return run_demo(_out, duration=args.duration, interval=args.interval)


def _run_serve(args: argparse.Namespace) -> int:
    from .demo import API_VERSION, DemoService, FaultPlan  # noqa: PLC0415

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    service = DemoService(
        port=args.port,
        duration=args.duration,
        polls_to_complete=args.polls,
        retry_after=args.retry_after,
        log=None if args.quiet else log,
        faults=FaultPlan.spread(
            args.faults,
            retry_after=args.retry_after,
            seed=args.fault_seed,
            starts=args.fault_starts,
        )
        if args.faults
        else None,
    )
    handled = [signal.SIGINT, signal.SIGTERM]
    previous = {number: signal.signal(number, on_signal) for number in handled}
    try:
        try:
            service.start()
        except OSError as error:
            print(f"lrokit serve: cannot listen on port {args.port}: {error}", file=sys.stderr)
            return 1
        try:
            endpoint = service.endpoint
            _out(f"lrokit demo service listening on {endpoint}")
            _out(
                f"try: curl -i -X POST -H 'Content-Type: application/json' "
                f'-d \'{{"name": "my-store"}}\' \'{endpoint}vector_stores?api-version='
                f"{API_VERSION}'"
            )
            if service.faults is not None:
                scope = "polls and starts" if args.fault_starts else "polls"
                _out(f"injecting faults into {args.faults:.0%} of {scope} (seed {args.fault_seed})")
            _out("press Ctrl-C to stop")
            # A bounded wait, so a signal is acted on promptly on every platform.
            while not stop.wait(0.2):
                pass
        finally:
            service.stop()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    _out("lrokit demo service stopped")
    return 0


def _run_statechart(args: argparse.Namespace) -> int:
    from ._statechart import render_mermaid, render_scxml  # noqa: PLC0415

    text = render_mermaid() if args.format == "mermaid" else render_scxml()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
