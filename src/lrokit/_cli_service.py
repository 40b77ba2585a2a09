"""``lrokit poll``, ``lrokit resume`` and ``lrokit token inspect``: the CLI for real services.

Each command builds a :class:`~lrokit.Pipeline` from its arguments, drives a plain
:class:`~lrokit.Operation` (the value is the final JSON as it is) and maps the outcome to
an :class:`~lrokit._cli.ExitCode`. Progress goes to stderr, the final JSON to stdout, so
``lrokit poll URL > result.json`` keeps the document clean.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any, cast

import msgspec
import requests

from ._base import PollUpdate
from ._cli import ExitCode, UsageError
from ._core import FinalStateVia, ProtocolOptions
from ._delay import (
    DEFAULT_POLICY,
    DELAY_LABELS,
    DelaySource,
    DelayStrategy,
    FixedDelay,
    PollingPolicy,
)
from ._exceptions import (
    HttpResponseError,
    InvalidTokenError,
    LroError,
    OperationError,
    RetriesExhaustedError,
    UntrustedOriginError,
    WaitTimeoutError,
)
from ._parse import decode_json
from ._pipeline import Pipeline, default_sleep
from ._signing import _KEY_ID, TokenSigner
from ._state import OperationState
from ._sync import Operation
from ._token import DEFAULT_TOKEN_POLICY, RehydrationToken, TokenPolicy
from ._urls import OriginPolicy

__all__ = ["Progress", "run_poll", "run_resume", "run_token_inspect"]

#: The most a token argument read from stdin or a file may be; tokens are refused well
#: below this (TokenPolicy.max_bytes), it only bounds the read.
_MAX_TOKEN_INPUT = 64 * 1024
#: The key id of tokens that ``poll`` signs when ``--key-id`` is not given.
DEFAULT_KEY_ID = "default"
_OUTCOME_CODES = {
    OperationState.SUCCEEDED: ExitCode.SUCCEEDED,
    OperationState.FAILED: ExitCode.FAILED,
    OperationState.CANCELED: ExitCode.CANCELED,
}
#: A key id as TokenSigner accepts it.
#: How often a live progress line counts down (seconds).
_TICK = 0.25


# -- arguments ---------------------------------------------------------------------------


def read_token_argument(argument: str) -> str:
    """The token text from ``TOKEN`` (as it is), ``-`` (stdin) or ``@FILE``.

    Raises:
        UsageError: the file cannot be read.
    """
    if argument == "-":
        text = sys.stdin.read(_MAX_TOKEN_INPUT + 1)
    elif argument.startswith("@"):
        path = argument[1:]
        try:
            with open(path, encoding="ascii", errors="replace") as file:
                text = file.read(_MAX_TOKEN_INPUT + 1)
        except OSError as error:
            raise UsageError(f"cannot read the token file {path!r}: {error.strerror}") from None
    else:
        text = argument
    return text.strip()


def _read_key(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read the key file {path!r}: {error.strerror}") from None


def _signer(args: argparse.Namespace, key_id: str | None) -> TokenSigner | None:
    """The signer of ``--signing-key-file`` (None without it).

    Raises:
        UsageError: the file cannot be read, or the key or key id is not usable.
    """
    if args.signing_key_file is None:
        if args.key_id is not None:
            raise UsageError("--key-id needs --signing-key-file")
        return None
    key = _read_key(args.signing_key_file)
    try:
        return TokenSigner({args.key_id or key_id or DEFAULT_KEY_ID: key})
    except ValueError as error:
        raise UsageError(f"unusable signing key: {error}") from None


def _pipeline(
    endpoint: str, args: argparse.Namespace, signer: TokenSigner | None, progress: Progress
) -> Pipeline:
    polling = PollingPolicy(
        max_retries=DEFAULT_POLICY.max_retries if args.retries is None else args.retries,
        retry_backoff=args.retry_backoff,
    )
    try:
        return Pipeline(
            endpoint,
            allowed_origins=args.allow_origin,
            headers=dict(args.header),
            tokens=TokenPolicy(signer=signer),
            sleep=progress.sleep,
            polling=polling,
        )
    except ValueError as error:  # an allowlist the origin policy refuses
        raise UsageError(str(error)) from None


def _key_id_of(text: str) -> str | None:
    """The key id a signed token names (``PAYLOAD.KID.MAC``), or None (unsigned, or not a
    key id: the signature check then refuses the token)."""
    parts = text.split(".")
    if len(parts) == 3 and _KEY_ID.fullmatch(parts[1]):
        return parts[1]
    return None


# -- progress ------------------------------------------------------------------------------


class Progress:
    """The progress display on stderr: one updating line on a terminal, plain lines otherwise.

    Each line says the operation's state, the raw status, the percent complete and when the
    next request is due. On a terminal, :meth:`sleep` (the pipeline's sleeper) counts the
    next poll down on that line.

    Args:
        stream: where to write (stderr).
        enabled: False shows no progress (``--quiet``); :meth:`note` still writes.
        live: one updating line; default: whether ``stream`` is a terminal.
    """

    def __init__(self, stream: IO[str], *, enabled: bool = True, live: bool | None = None) -> None:
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and (stream.isatty() if live is None else live)
        #: The policy's retry budget, shown with transient faults.
        self.max_retries = 0
        #: Responses (and faults) shown so far.
        self.requests = 0
        self._countdown: tuple[str, str] | None = None  # the live line's head, delay's rule
        self._last_response: Any = None
        self._open = False  # a live line is on screen without its newline

    def update(self, operation: Operation[Any], update: PollUpdate) -> None:
        """Show what one request (or a request that got no answer) brought."""
        self.requests += 1
        response = operation.get_raw_response()
        fresh = response is not self._last_response
        self._last_response = response
        if not self.enabled:
            return
        state = update.state
        parts = [state.value]
        failures = operation.consecutive_failures
        if failures:
            code = getattr(response, "status_code", 0) if fresh else 0
            what = f"HTTP {code}" if code >= 300 else "unreadable answer" if fresh else "no answer"
            parts.append(f"{what}, retry {failures} of {self.max_retries}")
        else:
            raw = update.raw_status
            if raw is not None and raw.casefold() != state.value.casefold():
                parts.append(f"status {raw}")  # only a word other than the state's
            if update.percent_complete is not None:
                parts.append(f"{update.percent_complete:.0f}%")
        head = f"[{self.requests}] " + ", ".join(parts)
        self._countdown = None
        delay = update.next_delay
        if state.is_terminal or operation.core.next_request_url is None:
            self._show(head)
        elif delay is None:
            self._show(f"{head}, fetching the result")
        else:
            rule = "back-off" if failures and delay.source is DelaySource.STRATEGY else None
            rule = rule or DELAY_LABELS[delay.source]
            self._countdown = (head, rule)
            self._show(f"{head}, {_next_poll(delay.seconds, rule)}")

    def note(self, text: str) -> None:
        """Write a message line, ending a live line first (shown even with ``--quiet``)."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line, if one is on screen."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _show(self, text: str) -> None:
        if self.live:
            width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
            self.stream.write("\r\x1b[2K" + text[:width])
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        """The pipeline's sleeper: on a live line, counts the next poll down while waiting."""
        countdown = self._countdown
        if not self.live or countdown is None:
            return default_sleep(seconds, cancel)
        head, rule = countdown
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            self._show(f"{head}, {_next_poll(remaining, rule)}")
            if default_sleep(min(remaining, _TICK), cancel):
                return True


def _next_poll(seconds: float, rule: str) -> str:
    shown = f"{seconds:.2f}" if seconds < 1 else f"{seconds:.1f}"
    return f"next poll in {shown.rstrip('0').rstrip('.') or '0'} s ({rule})"


# -- waiting ---------------------------------------------------------------------------------


class _AtOnceThen:
    """A delay strategy: the first poll at once (whoever runs the CLI has waited already),
    then ``then``."""

    def __init__(self, first_attempt: int, then: DelayStrategy) -> None:
        self.first_attempt = first_attempt
        self.then = then

    def __call__(self, attempt: int, /) -> float:
        return 0.0 if attempt <= self.first_attempt else self.then(attempt)


class _TokenFile:
    """``--save-token``: the latest token, replaced atomically after every request."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def save(self, operation: Operation[Any]) -> None:
        if self.path is None:
            return
        target = Path(self.path)
        text = f"{operation.rehydration_token}\n"
        temporary: str | None = None
        try:
            # Written beside the target and renamed over it: a reader (or a crash) never
            # sees half a token.
            descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(text)
            os.replace(temporary, target)
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            raise UsageError(
                f"cannot write the token file {self.path!r}: {error.strerror}"
            ) from None


def _wait(
    operation: Operation[Any],
    args: argparse.Namespace,
    progress: Progress,
    out: IO[str],
) -> int:
    """Wait for ``operation`` with the progress display; print the outcome; the exit code."""
    tokens = _TokenFile(args.save_token)
    tokens.save(operation)
    then: DelayStrategy = (
        FixedDelay(args.interval)
        if args.interval is not None
        else operation.pipeline.polling.strategy
    )
    interval = _AtOnceThen(operation.core.attempt + 1, then)
    try:
        try:
            with _sigterm_interrupts():
                for update in operation.poll_iter(interval, timeout=args.timeout):
                    progress.update(operation, update)
                    tokens.save(operation)
        finally:
            progress.close()
    except WaitTimeoutError:
        progress.note(
            f"lrokit: no outcome within {args.timeout:g} s (state {operation.state.value});"
            " the operation goes on at the service"
        )
        _suggest_resume(progress, operation, args)
        return ExitCode.TIMED_OUT
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, _Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        progress.note(f"lrokit: {what} (state {operation.state.value})")
        _suggest_resume(progress, operation, args)
        return ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
    except RetriesExhaustedError as error:  # the service may recover: worth resuming later
        if error.status_code == 0 and error.__cause__ is not None:  # the last try: no answer
            progress.note(
                f"lrokit: no answer from {args.endpoint_used} ({_no_answer(error.__cause__)});"
                f" gave up after {error.failures} tries in a row"
            )
        else:
            progress.note(f"lrokit: {error}")
        _suggest_resume(progress, operation, args)
        return ExitCode.PROTOCOL
    except (HttpResponseError, OperationError, UntrustedOriginError) as error:
        progress.note(f"lrokit: {error}")
        return ExitCode.PROTOCOL
    except requests.RequestException as error:
        progress.note(f"lrokit: no answer from {args.endpoint_used} ({_no_answer(error)})")
        _suggest_resume(progress, operation, args)
        return ExitCode.PROTOCOL
    return _print_outcome(operation, progress, out)


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived while waiting: handled as Ctrl-C is (the operation stays resumable)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While waiting, SIGTERM interrupts the wait as Ctrl-C does (in the main thread; signal
    handlers can be set nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _no_answer(error: BaseException) -> str:
    """Why a request got no answer, in a few words: the socket's own reason where the chain
    of wrapped errors (requests, urllib3, socket) has one, such as "Connection refused"."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    seen: set[int] = set()
    current = error
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or getattr(current, "reason", None)
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if not isinstance(inner, BaseException):
            break
        current = inner
    if isinstance(current, OSError) and current.strerror:
        return current.strerror
    return type(current).__name__


def _suggest_resume(
    progress: Progress, operation: Operation[Any], args: argparse.Namespace
) -> None:
    """Show the command that resumes the operation (header values are never shown)."""
    command = f"lrokit resume {operation.rehydration_token} --endpoint {args.endpoint_used}"
    for origin in args.allow_origin:
        command += f" --allow-origin {origin}"
    if args.header:
        command += " --header ..."
    if args.signing_key_file is not None:
        command += " --signing-key-file ..."
    progress.note(f"resume it with:\n  {command} --wait")


def _print_outcome(operation: Operation[Any], progress: Progress, out: IO[str]) -> int:
    state = operation.state
    if state is OperationState.SUCCEEDED:
        try:
            document = operation.value
        except LroError as error:  # a restored operation whose result is gone
            progress.note(f"lrokit: {error}")
            return ExitCode.PROTOCOL
    else:
        document = _last_document(operation)
        service_error = operation.core.error
        detail = f": {service_error}" if service_error is not None else ""
        verb = "failed" if state is OperationState.FAILED else "was canceled"
        progress.note(f"lrokit: the operation {verb}{detail}")
    _print_json(document, out)
    return _OUTCOME_CODES[state]


def _last_document(operation: Operation[Any]) -> Any:
    """The last status document received (it holds the service's ``error``), or a summary."""
    response = operation.get_raw_response()
    if response is not None:
        try:
            document = decode_json(response.content)
        except msgspec.DecodeError:  # not JSON: summarised below
            document = None
        if isinstance(document, dict):
            return document
    summary: dict[str, Any] = {"status": operation.state.value}
    if operation.core.error is not None:
        summary["error"] = msgspec.to_builtins(operation.core.error)
    return summary


def _print_json(document: Any, out: IO[str]) -> None:
    text = msgspec.json.format(msgspec.json.encode(document), indent=2).decode()
    out.write(text + "\n")
    out.flush()


# -- poll ------------------------------------------------------------------------------------


def run_poll(args: argparse.Namespace) -> int:
    """``lrokit poll URL``."""
    url: str = args.url
    via = args.final_state_via
    if via == FinalStateVia.LOCATION.value and args.location is None:
        raise UsageError("--final-state-via location needs --location URL")
    if via == FinalStateVia.ORIGINAL_URI.value and args.original_uri is None:
        raise UsageError("--final-state-via original-uri needs --original-uri URL")
    reads_resource = args.method in ("PUT", "PATCH")
    if (
        args.original_uri is not None
        and via != FinalStateVia.ORIGINAL_URI.value
        and not reads_resource
    ):
        raise UsageError(
            "--original-uri is read only with --final-state-via original-uri or"
            " --method PUT or PATCH"
        )
    if reads_resource and args.original_uri is None and via is None:
        raise UsageError(f"--method {args.method} needs --original-uri URL (the resource)")
    endpoint = args.endpoint_used = OriginPolicy(url).origin_url + "/"
    progress = Progress(sys.stderr, enabled=not args.quiet)
    signer = _signer(args, None)
    pipeline = _pipeline(endpoint, args, signer, progress)
    with pipeline:
        progress.max_retries = pipeline.polling.max_retries
        try:
            operation: Operation[Any] = Operation.from_monitor(
                pipeline,
                url,
                method=args.method,
                start_url=args.original_uri,
                location=args.location,
                options=ProtocolOptions(final_state_via=via),
            )
        except UntrustedOriginError as error:
            raise UsageError(f"{error}; trust it with --allow-origin") from None
        return _wait(operation, args, progress, sys.stdout)


# -- resume ----------------------------------------------------------------------------------


def run_resume(args: argparse.Namespace) -> int:
    """``lrokit resume TOKEN``."""
    if not args.wait:
        given = [
            option
            for option, value in (
                ("--interval", args.interval),
                ("--timeout", args.timeout),
                ("--save-token", args.save_token),
                ("--retries", args.retries),
                ("--retry-backoff", args.retry_backoff),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{', '.join(given)} need --wait")
    elif args.json:
        raise UsageError("--json prints the state without --wait; with --wait the output is JSON")
    text = read_token_argument(args.token)
    signer = _signer(args, _key_id_of(text))
    progress = Progress(sys.stderr, enabled=not args.quiet)
    args.endpoint_used = args.endpoint
    pipeline = _pipeline(args.endpoint, args, signer, progress)
    with pipeline:
        progress.max_retries = pipeline.polling.max_retries
        try:
            token = pipeline.tokens.read(text)
            not_started = token.fields.state == OperationState.NOT_STARTED.value
            if not_started and args.wait:
                raise InvalidTokenError(
                    "the token was taken before the start request was answered; only the"
                    " application that holds the request body can send it again"
                )
            # Any operation class's token: the CLI reads the value as plain JSON.
            kind = token.fields.kind
            cls: type[Operation[Any]] = Operation
            if kind is not None:
                cls = cast(
                    "type[Operation[Any]]",
                    type("ResumedOperation", (Operation,), {"token_kind": kind}),
                )
            operation = cls.rehydrate(pipeline, token, json=None)
        except InvalidTokenError as error:
            progress.note(f"lrokit resume: the token was refused: {error}")
            return ExitCode.TOKEN_REFUSED
        if signer is None and token.signature is not None:
            progress.note(
                "lrokit resume: note: the token is signed; without --signing-key-file its"
                " signature was not checked"
            )
        if not args.wait:
            _print_state(operation, token, signer, args.json, sys.stdout)
            return ExitCode.SUCCEEDED
        return _wait(operation, args, progress, sys.stdout)


def _print_state(
    operation: Operation[Any],
    token: RehydrationToken,
    signer: TokenSigner | None,
    as_json: bool,
    out: IO[str],
) -> None:
    core = operation.core
    pending = "start" if core.next_action is None else core.next_action.value
    url = core.initial_url if core.next_action is None else core.next_request_url
    described = {
        "state": operation.state.value,
        "next_request": pending,
        "url": None if url is None else _shown_url(url),
        "protocol": core.protocol.value,
        "attempt": core.attempt,
        "operation_id": core.operation_id,
        "kind": core.kind,
        "signature": _signature_status(token, signer)[0],
    }
    if as_json:
        _print_json(described, out)
        return
    _print_table(described, out)


# -- token inspect --------------------------------------------------------------------------


def run_token_inspect(args: argparse.Namespace) -> int:
    """``lrokit token inspect TOKEN``."""
    text = read_token_argument(args.token)
    signer = _signer(args, _key_id_of(text))
    try:
        token = RehydrationToken.from_str(text, max_bytes=_MAX_TOKEN_INPUT)
    except InvalidTokenError as error:
        print(f"lrokit token inspect: not a readable token: {error}", file=sys.stderr)
        return ExitCode.TOKEN_REFUSED
    status, key_id, problem = _signature_status(token, signer)
    size = len(token.to_bytes())
    fields = {
        name: _shown_field(name, value)
        for name, value in msgspec.structs.asdict(token.fields).items()
    }
    described: dict[str, Any] = {
        "version": _version_of(token),
        "size": size,
        "signature": {"status": status, "key_id": key_id},
        "fields": fields,
    }
    if args.json:
        _print_json(described, sys.stdout)
    else:
        limit = DEFAULT_TOKEN_POLICY.max_bytes
        over = "" if size <= limit else ", over the limit: clients refuse it"
        table: dict[str, Any] = {
            "version": described["version"],
            "size": f"{size} bytes (limit {limit}{over})",
            "signature": status + (f" (key id {key_id})" if key_id else ""),
        }
        table.update(fields)
        if fields["created_at"] is not None:
            stamp = datetime.datetime.fromtimestamp(token.fields.created_at, datetime.timezone.utc)
            table["created_at"] = f"{stamp.isoformat(timespec='milliseconds')}"
        _print_table(table, sys.stdout)
    if problem is not None:
        print(f"lrokit token inspect: {problem}", file=sys.stderr)
        return ExitCode.TOKEN_REFUSED
    if size > DEFAULT_TOKEN_POLICY.max_bytes:
        return ExitCode.TOKEN_REFUSED
    return ExitCode.SUCCEEDED


def _signature_status(
    token: RehydrationToken, signer: TokenSigner | None
) -> tuple[str, str | None, str | None]:
    """(status, key id, why a client with ``signer`` would refuse it, or None)."""
    signature = token.signature
    key_id = None if signature is None else signature.partition(b".")[0].decode("ascii")
    if signature is None:
        if signer is None:
            return "unsigned", None, None
        return "unsigned", None, "the token is not signed, and a key was given"
    if signer is None:
        return "signed-unverified", key_id, None
    try:
        signer.verify(token.payload, signature)
    except InvalidTokenError as error:
        return "signed-invalid", key_id, str(error)
    return "signed-valid", key_id, None


def _version_of(token: RehydrationToken) -> int | None:
    """The version the token was written in (version-1 tokens are read as version 2)."""
    payload = token.payload
    try:
        decoded = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
        version = msgspec.json.decode(decoded, type=_Version).v
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return version


class _Version(msgspec.Struct):
    v: int


def _shown_url(url: str) -> str:
    """``url`` without the values of credential query parameters (sig, access_token, ...)."""
    return DEFAULT_TOKEN_POLICY.redact(url)[0]


def _shown_field(name: str, value: Any) -> Any:
    if isinstance(value, str) and name.endswith("_url"):
        return _shown_url(value)
    return value


def _print_table(rows: Mapping[str, Any], out: IO[str]) -> None:
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        shown = "-" if value is None else str(value).lower() if isinstance(value, bool) else value
        out.write(f"{name + ':':<{width + 1}} {shown}\n")
    out.flush()
