"""The tracking workflow: follows one operation from its token until it completes.

::

    run(TrackRequest)
      loop:
        sleep the delay the last answer asked for    durable timer (wait_condition), cut
                                                     short by the stop and cancel signals
        stop signal?      -> return "stopped" (the operation resumes from the last token)
        cancel signal?    -> activity lrokit.cancel (one request, one attempt: a cancel is
                             never sent twice), then go on polling
        deadline reached? -> fail DeadlineExceeded
        activity lrokit.poll (exactly one request; transient faults are its retries,
                              bounded by the deadline too)
        Succeeded -> return the value; Failed, Canceled, rejected, ... -> typed failure
        after max_polls_per_run polls -> continue-as-new with the token (bounded history)

The token is the whole state: what a run carries into the next one is the token, the
counts and the deadline. Time is workflow time (``workflow.now()``), so replay is
deterministic; the deadline and delay arithmetic is lrokit's own (``bounded_step``).
The workflow runs outside Temporal's sandbox: it is library code without I/O, and the
sandbox would re-import lrokit for every workflow run a worker loads.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

from .._base import bounded_step
from ._activities import TRANSIENT_FAULT
from ._types import (
    CANCEL_ACTIVITY,
    CANCEL_SIGNAL,
    POLL_ACTIVITY,
    STATE_QUERY,
    STOP_SIGNAL,
    WORKFLOW_NAME,
    FailureInfo,
    FailureType,
    PollOutcome,
    PollRequest,
    TrackRequest,
    TrackResult,
    TrackState,
)

__all__ = ["TrackWorkflow"]


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class TrackWorkflow:
    """Tracks one long-running operation; see the module docstring for the loop."""

    def __init__(self) -> None:
        self._request = TrackRequest(kind="", token="")
        self._next_poll_at: float | None = None
        self._polls = 0
        self._stop = False
        self._cancel = False
        self._note: str | None = None
        self._tracking = True

    @workflow.run
    async def run(self, request: TrackRequest) -> TrackResult:
        """Track the operation until it completes, fails, is stopped or runs out of time."""
        self._request = request
        self._polls = request.polls
        # A signal may have come with the first task, before run() began: keep it.
        self._cancel = self._cancel or request.cancel_requested
        if request.deadline is None and request.timeout is not None:
            request.deadline = workflow.now().timestamp() + request.timeout
        delay = request.first_delay
        polls_this_run = 0
        while True:
            timed_out = await self._sleep(delay)
            if self._stop:
                return self._finish("stopped")
            if self._cancel:
                self._cancel = False
                outcome = await self._activity(CANCEL_ACTIVITY)
                result = self._apply(outcome)
                if result is not None:
                    return result
                delay = outcome.next_delay or 0.0
                continue
            if timed_out:
                self._fail(self._deadline_failure())
            outcome = await self._activity(POLL_ACTIVITY)
            self._polls += 1
            polls_this_run += 1
            result = self._apply(outcome)
            if result is not None:
                return result
            delay = outcome.next_delay or 0.0
            if self._stop:
                return self._finish("stopped")
            if (
                polls_this_run >= request.max_polls_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                workflow.continue_as_new(
                    dataclasses.replace(
                        request,
                        first_delay=delay,
                        polls=self._polls,
                        cancel_requested=self._cancel,
                    )
                )

    async def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` on a durable timer (not past the deadline); True when the deadline
        has come. A stop or cancel signal ends the sleep early."""
        now = workflow.now().timestamp()
        step = bounded_step(delay, self._request.deadline, now)
        if step.seconds > 0 and not (self._stop or self._cancel):
            self._next_poll_at = now + step.seconds
            try:
                await workflow.wait_condition(
                    lambda: self._stop or self._cancel, timeout=timedelta(seconds=step.seconds)
                )
            except asyncio.TimeoutError:
                pass
            else:
                return False  # a signal came first: the deadline is checked after it
            finally:
                self._next_poll_at = None
        return step.timeout

    def _deadline_failure(self) -> FailureInfo:
        request = self._request
        return FailureInfo(
            FailureType.DEADLINE.value,
            f"the operation did not complete within {request.timeout} s of tracking (state"
            f" {request.state})",
            request.token,
            request.state,
        )

    async def _activity(self, name: str) -> PollOutcome:
        """Run one poll or cancel activity; its failures become typed ones. With a deadline,
        the activity and its retries are bounded by it (no request after it)."""
        request = self._request
        now = workflow.now().timestamp()
        poll = PollRequest(request.kind, request.token, request.polling_interval, now)
        until_deadline = None
        if request.deadline is not None:
            until_deadline = timedelta(seconds=max(request.deadline - now, 0.001))
        try:
            outcome: PollOutcome = await workflow.execute_activity(
                name,
                poll,
                result_type=PollOutcome,
                start_to_close_timeout=timedelta(seconds=request.poll_timeout),
                schedule_to_close_timeout=until_deadline,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=60),
                    # A cancel request is not idempotent at every service: sent once.
                    maximum_attempts=1 if name == CANCEL_ACTIVITY else request.max_attempts,
                ),
            )
        except ActivityError as error:
            cause = error.cause
            if until_deadline is not None and (
                error.retry_state is RetryState.TIMEOUT
                or (
                    isinstance(cause, ActivityTimeoutError)
                    and cause.type is TimeoutType.SCHEDULE_TO_CLOSE
                )
            ):
                self._fail(self._deadline_failure())
            if name == CANCEL_ACTIVITY:  # its one attempt failed (a worker died in it, say)
                note = f"the cancel request may not have been sent (not retried): {cause}"
                return PollOutcome(request.token, request.state, next_delay=0.0, note=note)
            if isinstance(cause, ApplicationError) and cause.type == TRANSIENT_FAULT:
                details = cause.details[0] if cause.details else {}
                code = details.get("status_code", 0) if isinstance(details, dict) else 0
                info = FailureInfo(
                    FailureType.RETRIES_EXHAUSTED.value,
                    f"{request.max_attempts} attempts of a poll met transient faults; last:"
                    f" {cause.message}",
                    request.token,
                    request.state,
                    status_code=int(code),
                    failures=request.max_attempts,
                )
            else:
                message = str(cause) if cause is not None else str(error)
                info = FailureInfo(
                    FailureType.POLL_FAILED.value,
                    f"the {name} activity failed: {message}",
                    request.token,
                    request.state,
                )
            self._fail(info)
        return outcome

    def _apply(self, outcome: PollOutcome) -> TrackResult | None:
        """Take in an outcome; the result once the operation succeeded (raises for a typed
        failure), else None."""
        request = self._request
        request.token = outcome.token
        request.state = outcome.state
        if outcome.raw_status is not None:
            request.raw_status = outcome.raw_status
        if outcome.percent_complete is not None:
            request.percent_complete = outcome.percent_complete
        if outcome.note is not None:
            self._note = outcome.note
        if outcome.failure is not None:
            self._fail(outcome.failure)
        if outcome.next_delay is None:
            return self._finish("succeeded", outcome.value)
        return None

    def _finish(self, how: str, value: object = None) -> TrackResult:
        self._tracking = False
        self._stop = self._stop or how == "stopped"
        request = self._request
        return TrackResult(how, request.token, request.state, self._polls, value)

    def _fail(self, info: FailureInfo) -> NoReturn:
        self._tracking = False
        raise ApplicationError(info.message, info, type=info.type, non_retryable=True)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> TrackState:
        """The operation's last known state, progress, next poll time and token."""
        request = self._request
        return TrackState(
            request.state,
            request.raw_status,
            request.percent_complete,
            self._next_poll_at,
            self._polls,
            request.token,
            tracking=self._tracking,
            stopped=self._stop,
            cancel_requested=self._cancel,
            note=self._note,
        )

    @workflow.signal(name=STOP_SIGNAL)
    def stop_tracking(self) -> None:
        """Stop tracking after the poll in flight, if any; the operation resumes from the
        last token (``TrackHandle.result()`` raises ``WaitCancelledError`` with it)."""
        self._stop = True

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel_operation(self) -> None:
        """Ask the service to cancel the operation (one request), then keep tracking it to
        its outcome (Canceled, unless it completed first)."""
        if self._tracking:
            self._cancel = True
