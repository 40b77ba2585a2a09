"""The ``lrokit`` command: ``poll``, ``resume`` and ``token inspect`` for real services, and
``demo``, ``serve`` and ``statechart``.

Exit status: see :class:`ExitCode` (0 on success, 2 for usage errors; ``demo`` and ``serve``
exit 1 when something failed).
"""

from __future__ import annotations

import argparse
import enum
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from ._cli_temporal import add_commands as add_temporal_commands
from ._urls import OriginPolicy

__all__ = ["ExitCode", "UsageError", "build_parser", "main"]


class ExitCode(enum.IntEnum):
    """The exit status of ``lrokit poll``, ``resume`` and ``token inspect``."""

    SUCCEEDED = 0
    """The operation succeeded (or: the command did what it was asked)."""
    FAILED = 1
    """The operation failed."""
    USAGE = 2
    """Bad arguments, or a token or key file that cannot be read."""
    CANCELED = 3
    """The operation was canceled."""
    TIMED_OUT = 4
    """``--timeout`` ran out first; the operation goes on at the service."""
    PROTOCOL = 5
    """The service rejected a request, answered unusably, or did not answer."""
    TOKEN_REFUSED = 6
    """A token that is malformed, altered, badly signed or of an untrusted origin."""
    INTERRUPTED = 130
    """Ctrl-C."""
    TERMINATED = 143
    """SIGTERM (128 + 15, as a shell reports a process it ended)."""


class UsageError(Exception):
    """A usage error found after parsing (exit status 2)."""


#: The .NET type whose usage patterns ``lrokit demo`` runs.
_OPERATION_RESULT_URL = (
    "https://learn.microsoft.com/dotnet/api/system.clientmodel.primitives.operationresult"
)

#: The exit statuses of the commands that wait, as their epilogs show them.
_EXIT_CODES_HEAD = """\
exit status:
  0    the operation succeeded; its final JSON is on stdout
  1    the operation failed; its last status document (with the error) is on stdout
  2    usage error: bad arguments, a token or key file that cannot be read
  3    the operation was canceled; its last status document is on stdout
  4    --timeout ran out; the operation goes on (a resume command is on stderr)
  5    protocol or HTTP error: the service rejected a request, answered unusably,
       or did not answer (after the --retries); a resume command is on stderr when
       the service may recover
"""
_EXIT_CODE_TOKEN = """\
  6    the token was refused: malformed, altered, signed with another key, or
       naming an origin other than --endpoint and --allow-origin
"""
_EXIT_CODES_TAIL = """\
  130  interrupted (Ctrl-C); a resume command is on stderr
  143  terminated (SIGTERM); a resume command is on stderr
"""
#: The exit statuses of ``poll``, which reads no token: it never exits 6.
POLL_EXIT_CODES_HELP = _EXIT_CODES_HEAD + _EXIT_CODES_TAIL
#: The exit statuses of ``resume``.
RESUME_EXIT_CODES_HELP = _EXIT_CODES_HEAD + _EXIT_CODE_TOKEN + _EXIT_CODES_TAIL

_POLL_EPILOG = f"""\
examples:
  lrokit poll 'https://svc.example.com/operations/42?api-version=2024-01-01'
  lrokit poll "$MONITOR" --header "Authorization: Bearer $TOKEN" --timeout 600 > result.json
  lrokit poll "$MONITOR" --interval 5 --save-token op.token
  lrokit poll "$MONITOR" --final-state-via location --location "$LOCATION"

The first poll is sent at once; later ones follow --interval (default: 1, 1, 1, 2, 4, ...
up to 32 s), never sooner than the service's Retry-After. The progress line names what
chose each delay: (interval), (server's Retry-After), the policy's (floor) or (cap), or
(back-off) after a request that failed. Requests go only to the URL's own origin and to
--allow-origin origins. Header values are never printed.

Tokens (--save-token, resume commands) record the start request as --method (default
POST) to --original-uri (default: the monitor URL), which decide where a resumed
operation reads its final JSON.

{POLL_EXIT_CODES_HELP}"""

_RESUME_EPILOG = f"""\
examples:
  lrokit resume "$TOKEN" --endpoint https://svc.example.com
  lrokit resume @op.token --endpoint https://svc.example.com --wait > result.json
  my-app print-token | lrokit resume - --endpoint https://svc.example.com --wait
  lrokit resume @op.token --endpoint https://svc.example.com --signing-key-file token.key

Without --wait, nothing is sent: the token is checked (format, signature with a key,
every URL against --endpoint and --allow-origin) and the operation's state printed.
Exit status without --wait: 0, or 6 when the token is refused.

{RESUME_EXIT_CODES_HELP}"""

_INSPECT_EPILOG = """\
examples:
  lrokit token inspect "$TOKEN"
  lrokit token inspect @op.token --json
  lrokit token inspect @op.token --signing-key-file token.key

signature status:
  unsigned            the token carries no signature
  signed-unverified   signed, but no key was given to check it
  signed-valid        signed, and the given key verifies it
  signed-invalid      signed, and the given key does not verify it (altered,
                      or signed with another key)

Nothing is sent. Query values that are credentials (sig, access_token, ...) are blanked
in the URLs shown; keys are never printed.

exit status:
  0    the token decodes (and verifies, when a key is given)
  2    usage error
  6    the token is malformed, over the size limit, unsigned or signed-invalid
       with a key given
"""


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


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair (an argparse type)."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    if not all(33 <= ord(c) <= 126 and c not in '"(),/:;<=>?@[\\]{}' for c in name):
        raise argparse.ArgumentTypeError(f"not a valid header name: {name!r}")
    value = value.strip()
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise argparse.ArgumentTypeError(f"header {name} holds control characters")
    return name, value


def http_url(text: str) -> str:
    """An absolute ``http(s)://host/...`` URL (an argparse type)."""
    try:
        OriginPolicy(text)
        userinfo = urlsplit(text).username is not None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an absolute http(s) URL with a host: {text!r}"
        ) from None
    if userinfo:
        raise argparse.ArgumentTypeError(
            "a URL with user info is refused: send credentials with --header"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lrokit`` command."""
    parser = argparse.ArgumentParser(
        prog="lrokit",
        description="lrokit: long-running HTTP operations as explicit, resumable state machines.",
        epilog="Run 'lrokit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_service_commands(commands)
    add_temporal_commands(commands)  # worker, fleet-demo (the temporal extra)

    demo = commands.add_parser(
        "demo",
        help="run the six LRO usage patterns against an embedded service",
        description=(
            "Start the embedded vector-store service on 127.0.0.1, run the six usage "
            "patterns of the .NET System.ClientModel OperationResult pattern (linked "
            "below) against it over real HTTP (printing every "
            "state transition and status poll), then stop it. Pattern 6 resumes the "
            "operation in a second Python process from its rehydration token. Exits 0 when "
            "all six patterns went NotStarted -> Running -> Succeeded."
        ),
        epilog=f"the OperationResult pattern:\n  {_OPERATION_RESULT_URL}\n",
        formatter_class=_EpilogAsWritten,
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
        help="the client's polling interval, also the Retry-After the service sends "
        "(default: %(default)s s)",
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


def _add_service_commands(commands: Any) -> None:
    """The commands for real services: ``poll``, ``resume`` and ``token inspect``."""
    raw = _EpilogAsWritten

    poll = commands.add_parser(
        "poll",
        help="follow a status-monitor URL until the operation completes",
        description=(
            "Poll the status monitor URL of a long-running operation (the Operation-Location "
            "or Azure-AsyncOperation of its start response) until it completes, showing "
            "progress on stderr, then print its final JSON on stdout: the resource named by "
            "the monitor's resourceLocation, else the monitor's result."
        ),
        epilog=_POLL_EPILOG,
        formatter_class=raw,
    )
    poll.add_argument("url", type=http_url, metavar="URL", help="the status monitor URL")
    _add_request_options(poll)
    _add_wait_options(poll)
    poll.add_argument(
        "--final-state-via",
        choices=[
            "location",
            "operation-location",
            "azure-async-operation",
            "original-uri",
        ],
        default=None,
        metavar="VIA",
        help="where the final JSON is read: 'location' (the --location URL), "
        "'operation-location' or 'azure-async-operation' (the monitor's own result), "
        "'original-uri' (the --original-uri URL); default: the monitor's resourceLocation, "
        "else --location, else the monitor's result",
    )
    poll.add_argument(
        "--location",
        type=http_url,
        metavar="URL",
        help="the Location header of the start response, if it had one",
    )
    poll.add_argument(
        "--original-uri",
        type=http_url,
        metavar="URL",
        help="the URL of the start request (for --final-state-via original-uri, or the "
        "resource of a --method PUT or PATCH)",
    )
    poll.add_argument(
        "--method",
        choices=["POST", "PUT", "PATCH", "DELETE"],
        default="POST",
        help="the method of the start request, if known (default: %(default)s); PUT and "
        "PATCH read the final JSON from --original-uri, DELETE reads none",
    )
    _add_key_options(poll, "sign the tokens written (--save-token, resume hints) with")
    poll.set_defaults(handler=_run_poll, command_parser=poll)

    resume = commands.add_parser(
        "resume",
        help="check a rehydration token, print its state, or --wait for the outcome",
        description=(
            "Restore an operation from its rehydration token against --endpoint and print "
            "its state without sending anything; with --wait, poll until it completes and "
            "print its final JSON on stdout, as 'lrokit poll' does. Any operation's token "
            "is accepted; statuses are read as Azure services write them."
        ),
        epilog=_RESUME_EPILOG,
        formatter_class=raw,
    )
    resume.add_argument(
        "token", metavar="TOKEN", help="the token, '-' to read it from stdin, or @FILE"
    )
    resume.add_argument(
        "--endpoint",
        type=http_url,
        required=True,
        metavar="URL",
        help="the service's endpoint: the token's URLs must be on its origin (or on an "
        "--allow-origin origin)",
    )
    _add_request_options(resume)
    resume.add_argument("--wait", action="store_true", help="poll until the operation completes")
    _add_wait_options(resume)
    resume.add_argument(
        "--json", action="store_true", help="without --wait: print the state as JSON"
    )
    _add_key_options(resume, "verify the token (and sign new ones) with")
    resume.set_defaults(handler=_run_resume, command_parser=resume)

    token = commands.add_parser(
        "token",
        help="work with rehydration tokens (inspect)",
        description="Work with rehydration tokens.",
    )
    token_commands = token.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    token.set_defaults(handler=_run_token_without_subcommand, command_parser=token)
    inspect = token_commands.add_parser(
        "inspect",
        help="show a token's fields, version, size and signature status",
        description=(
            "Decode a rehydration token and show its fields, format version, size and "
            "signature status. Nothing is sent and no endpoint is needed."
        ),
        epilog=_INSPECT_EPILOG,
        formatter_class=raw,
    )
    inspect.add_argument(
        "token", metavar="TOKEN", help="the token, '-' to read it from stdin, or @FILE"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    _add_key_options(inspect, "verify the signature with", signs=False)
    inspect.set_defaults(handler=_run_token_inspect, command_parser=inspect)


class _EpilogAsWritten(argparse.HelpFormatter):
    """Wraps a one-paragraph description, keeps text with line breaks (the epilogs' example
    and exit-status tables) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _add_request_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--header",
        "-H",
        type=parse_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header sent with every request (repeatable); values are never printed",
    )
    command.add_argument(
        "--allow-origin",
        type=http_url,
        action="append",
        default=[],
        metavar="URL",
        help="also send requests to this URL's origin (repeatable)",
    )


def _add_wait_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--interval",
        type=_positive,
        default=None,
        metavar="S",
        help="seconds between polls (a longer Retry-After of the service wins)",
    )
    command.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        metavar="S",
        help="give up waiting after S seconds (exit 4; the operation goes on)",
    )
    command.add_argument(
        "--retries",
        type=_whole,
        default=None,
        metavar="N",
        help="give up after N retries in a row of a request that got no answer or a "
        "transient HTTP error (default: 5; 0 gives up at the first)",
    )
    command.add_argument(
        "--retry-backoff",
        type=_positive,
        default=None,
        metavar="S",
        help="wait S seconds before the first retry, doubling for each next one "
        "(default: 0.5 s, doubling up to 30 s)",
    )
    command.add_argument(
        "--save-token",
        metavar="FILE",
        default=None,
        help="keep the operation's latest rehydration token in FILE (replaced after "
        "every poll), to resume it later with 'lrokit resume @FILE'",
    )
    command.add_argument("--quiet", "-q", action="store_true", help="no progress display on stderr")


def _add_key_options(command: argparse.ArgumentParser, purpose: str, *, signs: bool = True) -> None:
    command.add_argument(
        "--signing-key-file",
        metavar="PATH",
        default=None,
        help=f"{purpose} the key in PATH (its exact bytes, at least 32; e.g. made with "
        "'head -c 32 /dev/urandom > token.key')",
    )
    command.add_argument(
        "--key-id",
        metavar="ID",
        default=None,
        help="the key's id (default: the id the token names"
        + ("; 'default' for new tokens)" if signs else ")"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lrokit`` command with ``argv`` (default: ``sys.argv[1:]``); returns the status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits for --help (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(
            "lrokit: error: a command is required (poll, resume, token, demo, serve or statechart)",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.handler(args))
    except UsageError as error:
        command = args.command_parser
        command.print_usage(sys.stderr)
        print(f"{command.prog}: error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


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


def _run_poll(args: argparse.Namespace) -> int:
    from ._cli_service import run_poll  # noqa: PLC0415

    return run_poll(args)


def _run_resume(args: argparse.Namespace) -> int:
    from ._cli_service import run_resume  # noqa: PLC0415

    return run_resume(args)


def _run_token_inspect(args: argparse.Namespace) -> int:
    from ._cli_service import run_token_inspect  # noqa: PLC0415

    return run_token_inspect(args)


def _run_token_without_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("a subcommand is required (inspect)")


def _run_statechart(args: argparse.Namespace) -> int:
    from ._statechart import render_mermaid, render_scxml  # noqa: PLC0415

    text = render_mermaid() if args.format == "mermaid" else render_scxml()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
