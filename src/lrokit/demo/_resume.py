"""The second process of usage pattern 6: resume a vector-store creation from its token.

Run as ``python -m lrokit.demo._resume ENDPOINT [TOKEN]`` (the token is read from standard
input when omitted or ``-``). It rehydrates a :class:`CreateVectorStoreOperation` without any
request, waits for completion and prints what happened. Exit status 0 when the operation
succeeded, 1 when it failed, was canceled or could not be resumed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from .._delay import PollingPolicy
from .._exceptions import LroError, OperationError
from .._state import OperationState
from ._client import CreateVectorStoreOperation, VectorStoreClient
from ._display import Watcher, describe_store

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lrokit.demo._resume",
        description=(
            "Resume a vector-store creation from its rehydration token and wait for it to "
            "complete (usage pattern 6, second process)."
        ),
    )
    parser.add_argument("endpoint", help="base URL of the vector-store service")
    parser.add_argument(
        "token", nargs="?", default="-", help="the rehydration token, or - to read stdin"
    )
    parser.add_argument(
        "--polling-interval", type=float, default=None, metavar="S", help="seconds between polls"
    )
    parser.add_argument(
        "--max-delay",
        type=float,
        default=None,
        metavar="S",
        help="cap on every delay, even one the server asks for",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of text lines"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Resume, wait and report; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    token = sys.stdin.read() if args.token == "-" else args.token
    token = token.strip()
    lines: list[str] = []
    write = lines.append if args.json else _print
    pipeline_kwargs: dict[str, Any] = {}
    if args.max_delay is not None:
        pipeline_kwargs["polling"] = PollingPolicy(cap=args.max_delay)
    watcher = Watcher(write)
    report: dict[str, Any] = {"state": None, "transitions": [], "value": None, "error": None}
    code = 1
    with VectorStoreClient(args.endpoint, **pipeline_kwargs) as client:
        try:
            operation = CreateVectorStoreOperation.rehydrate(client, token)
            write(f"   resumed from the token without a request: state {operation.state.value}")
            watcher.attach(operation)
            operation.wait_for_completion(args.polling_interval, timeout=args.timeout)
            report["state"] = operation.state.value
            store = operation.value
        except OperationError as error:
            report["state"] = report["state"] or "error"
            report["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "service_error": msgspec.to_builtins(error.service_error),
            }
            write(f"   {type(error).__name__}: {error}")
        except LroError as error:
            report["error"] = {"type": type(error).__name__, "message": str(error)}
            write(f"   {type(error).__name__}: {error}")
        else:
            report["value"] = msgspec.to_builtins(store)
            write(f"   value: {describe_store(store)}")
            code = 0 if operation.state is OperationState.SUCCEEDED else 1
    report["transitions"] = [[a.value, b.value] for a, b in watcher.transitions]
    if args.json:
        report["log"] = lines
        print(json.dumps(report))
    return code


def _print(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
