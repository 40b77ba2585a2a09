"""Observability: the ``lrokit`` loggers and the optional OpenTelemetry spans.

Logging is standard :mod:`logging`. Every response an operation processes (the start
response, each status poll, the final GET, a cancel answer) gives one ``DEBUG`` record on the
``lrokit.operation`` logger, with its fields both in the message and as attributes of the
record (``extra=``, names in :data:`RECORD_FIELDS`). Nothing is logged at ``INFO`` or above
while things go well; the only warnings are about unusable server input (an unreadable
``Retry-After`` on ``lrokit._parse``). With ``DEBUG`` off a response costs one
``isEnabledFor`` check.

Tracing is off until :func:`enable_tracing` is called; until then ``opentelemetry`` is not
imported and the drivers check a single module attribute. Once on, each wait
(``wait_for_completion``, ``poll_iter``, ``async_wait_all``'s waits) is a ``lrokit.wait``
span, and each request an operation makes is a ``lrokit.start`` or ``lrokit.poll`` span
(the final GET too), a child of its wait's span, or of the current span outside a wait. A
request span is the current span while the request is in flight, so the spans of an
instrumented HTTP client nest below it. The attributes are listed in
:data:`SPAN_ATTRIBUTES`; URLs are never recorded (they may carry signatures), and the
texts of recorded errors (the status description, the ``exception`` event's message and
stack trace, whose chained causes may be an HTTP library's errors quoting a URL) are
redacted with the token policy's rule (``TokenPolicy.redact_text``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ._core import Action, Decision
from ._delay import PollingDelay
from ._exceptions import WaitCancelledError, WaitTimeoutError

__all__ = [
    "LOGGER",
    "RECORD_FIELDS",
    "SPAN_ATTRIBUTES",
    "disable_tracing",
    "enable_tracing",
    "end_request_span",
    "end_wait_span",
    "log_response",
    "request_span",
    "span_response",
    "tracer",
    "tracing_enabled",
    "use_span",
    "wait_span",
]

#: The logger of per-response records (a child of ``lrokit``).
LOGGER = logging.getLogger("lrokit.operation")

#: The ``extra=`` attributes of each per-response record and what they hold.
RECORD_FIELDS: Mapping[str, str] = {
    "lrokit_operation_id": "the operation's id (also in its rehydration token)",
    "lrokit_operation_kind": "the operation's kind (its class, or its token_kind)",
    "lrokit_attempt": "status responses processed so far",
    "lrokit_state": "the state after the response (a string such as 'Running')",
    "lrokit_raw_status": "the status exactly as the service sent it, or None",
    "lrokit_percent_complete": "the progress the service reported, or None",
    "lrokit_http_status": "the response's HTTP status code, or None (apply_status)",
    "lrokit_next_action": "'poll', 'retry', 'fetch-final' or 'done'",
    "lrokit_delay": "seconds before the next request, or None when none is planned",
    "lrokit_delay_source": "the rule that chose the delay ('strategy', 'server', 'floor',"
    " 'cap'), or None",
}

#: The attributes of lrokit's spans (``lrokit.wait``: the first three and the wait's own;
#: ``lrokit.start`` and ``lrokit.poll``: all but the wait's).
SPAN_ATTRIBUTES: Mapping[str, str] = {
    "lrokit.operation.id": "the operation's id",
    "lrokit.operation.kind": "the operation's kind",
    "lrokit.state": "the state after the response (on a wait: at its end)",
    "lrokit.attempt": "status responses processed so far",
    "lrokit.status": "the raw status the service sent, when it sent one",
    "lrokit.percent_complete": "the progress the service reported, when it did",
    "lrokit.next_action": "'poll', 'retry', 'fetch-final' or 'done'",
    "lrokit.delay": "seconds before the next request, when one is planned",
    "lrokit.delay.source": "the rule that chose that delay",
    "http.request.method": "the request's method",
    "http.response.status_code": "the response's HTTP status code",
    "lrokit.wait.timeout": "the wait's timeout in seconds, when it has one",
    "lrokit.wait.outcome": "'completed', 'timeout', 'cancelled', 'stopped' (the task or"
    " generator was closed) or 'error'",
}

#: The tracer while tracing is enabled; None when it is off (the drivers test only this).
tracer: Any = None


def enable_tracing(tracer_provider: Any = None) -> None:
    """Record OpenTelemetry spans for every wait and every request of every operation.

    Args:
        tracer_provider: the ``TracerProvider`` to take lrokit's tracer from; the global
            one (``opentelemetry.trace.get_tracer_provider()``) when omitted.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (``pip install 'lrokit[otel]'``).
    """
    global tracer  # noqa: PLW0603 - one process-wide switch, read by the drivers
    try:
        from opentelemetry import trace  # noqa: PLC0415 - the otel extra is optional
    except ImportError as error:
        raise ImportError("tracing needs opentelemetry-api: pip install 'lrokit[otel]'") from error
    from . import __version__  # noqa: PLC0415 - the package imports this module first

    tracer = trace.get_tracer("lrokit", __version__, tracer_provider)


def disable_tracing() -> None:
    """Stop recording spans (spans already open are still ended)."""
    global tracer  # noqa: PLW0603 - see enable_tracing
    tracer = None


def tracing_enabled() -> bool:
    """Whether :func:`enable_tracing` is in effect."""
    return tracer is not None


# -- logging -------------------------------------------------------------------------------


def _next(decision: Decision, delay: PollingDelay | None) -> str:
    action = decision.action
    if action is Action.DONE:
        return "done"
    if action is Action.FETCH_FINAL:
        return "final GET next"
    word = "retry" if action is Action.RETRY else "poll"
    if delay is None:
        return f"{word} next"
    return f"{word} in {delay.seconds:g} s ({delay.source.value})"


def log_response(
    operation_id: str,
    kind: str,
    attempt: int,
    decision: Decision,
    *,
    delay: PollingDelay | None,
    http_status: int | None,
) -> None:
    """Write the DEBUG record of one processed response (the caller checked the level)."""
    status = decision.status
    raw_status = status.raw_status if status is not None else None
    percent = status.percent_complete if status is not None else None
    outcome = "transient fault" if decision.action is Action.RETRY else decision.state.value
    LOGGER.debug(
        "operation %s attempt %d: %s (status %r, HTTP %s); %s",
        operation_id,
        attempt,
        outcome,
        raw_status,
        http_status,
        _next(decision, delay),
        extra={
            "lrokit_operation_id": operation_id,
            "lrokit_operation_kind": kind,
            "lrokit_attempt": attempt,
            "lrokit_state": decision.state.value,
            "lrokit_raw_status": raw_status,
            "lrokit_percent_complete": percent,
            "lrokit_http_status": http_status,
            "lrokit_next_action": decision.action.value,
            "lrokit_delay": None if delay is None else delay.seconds,
            "lrokit_delay_source": None if delay is None else delay.source.value,
        },
    )


# -- tracing -------------------------------------------------------------------------------


def wait_span(operation_id: str, kind: str, state: str, timeout: float | None) -> Any:
    """Start the span of one wait (not made current: poll spans name it as their parent)."""
    attributes: dict[str, Any] = {
        "lrokit.operation.id": operation_id,
        "lrokit.operation.kind": kind,
        "lrokit.state": state,
    }
    if timeout is not None:
        attributes["lrokit.wait.timeout"] = timeout
    return tracer.start_span("lrokit.wait", attributes=attributes)


#: What makes a text safe to record (the pipeline's ``tokens.redact_text``).
Redact = Callable[[str], str]


def end_wait_span(
    span: Any, state: str, attempt: int, error: BaseException | None, redact: Redact
) -> None:
    """End a wait's span with its outcome."""
    span.set_attribute("lrokit.state", state)
    span.set_attribute("lrokit.attempt", attempt)
    if error is None:
        outcome = "completed"
    elif isinstance(error, WaitTimeoutError):
        outcome = "timeout"
    elif isinstance(error, WaitCancelledError):
        outcome = "cancelled"
    elif isinstance(error, Exception):
        outcome = "error"
    else:  # GeneratorExit (poll_iter left early), a cancelled task, KeyboardInterrupt
        outcome = "stopped"
    span.set_attribute("lrokit.wait.outcome", outcome)
    if isinstance(error, Exception):
        _failed(span, error, redact)
    span.end()


def request_span(name: str, operation_id: str, kind: str, method: str, parent: Any) -> Any:
    """Start the span of one request (``lrokit.start`` or ``lrokit.poll``)."""
    from opentelemetry import trace  # noqa: PLC0415 - imported already by enable_tracing

    context = trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(
        name,
        context=context,
        attributes={
            "lrokit.operation.id": operation_id,
            "lrokit.operation.kind": kind,
            "http.request.method": method,
        },
    )


def use_span(span: Any) -> Any:
    """A context manager making ``span`` current (without ending it or recording errors)."""
    from opentelemetry import trace  # noqa: PLC0415 - imported already by enable_tracing

    return trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    )


def span_response(
    span: Any,
    attempt: int,
    decision: Decision,
    *,
    delay: PollingDelay | None,
    http_status: int | None,
) -> None:
    """Record what a processed response decided on the span of its request."""
    status = decision.status
    span.set_attribute("lrokit.attempt", attempt)
    span.set_attribute("lrokit.state", decision.state.value)
    span.set_attribute("lrokit.next_action", decision.action.value)
    if status is not None and status.raw_status is not None:
        span.set_attribute("lrokit.status", status.raw_status)
    if status is not None and status.percent_complete is not None:
        span.set_attribute("lrokit.percent_complete", status.percent_complete)
    if delay is not None:
        span.set_attribute("lrokit.delay", delay.seconds)
        span.set_attribute("lrokit.delay.source", delay.source.value)
    if http_status is not None:
        span.set_attribute("http.response.status_code", http_status)
    if decision.action is Action.RETRY:  # the wait goes on, but this request failed
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415 - see request_span

        what = f"HTTP {http_status}" if http_status is not None else "no usable answer"
        span.set_status(Status(StatusCode.ERROR, f"transient fault ({what})"))


def end_request_span(span: Any, error: BaseException | None, redact: Redact) -> None:
    """End a request's span; ``error`` is what ended the request, or a transient fault."""
    if error is not None:
        _failed(span, error, redact)
    span.end()


def _failed(span: Any, error: BaseException, redact: Redact) -> None:
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415 - see request_span

    message = redact(str(error))
    span.record_exception(
        error,
        attributes={
            "exception.message": message,
            "exception.stacktrace": redact("".join(traceback.format_exception(error))),
        },
    )
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"))
