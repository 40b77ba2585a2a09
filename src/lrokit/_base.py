"""What the sync and async operations share: everything but sending and sleeping.

:class:`OperationBase` holds an operation's core, hooks and waiting state. It decides, without
I/O, how long to wait and when a deadline has come, dispatches hooks after each transition,
and decodes the value. ``Operation`` (``_sync.py``) and ``AsyncOperation`` add only the loop
that sends requests and sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import msgspec
from typing_extensions import Self

from ._core import Action, Decision, OperationCore, ProtocolOptions
from ._delay import PollingDelay, PollingPolicy
from ._exceptions import (
    OperationCanceledError,
    OperationFailedError,
    OperationNotCompleteError,
    PollRejectedError,
    ProtocolError,
    WaitCancelledError,
    WaitTimeoutError,
)
from ._hooks import HookKind, Hooks, PollEvent, StateChange, Subscription
from ._parse import StatusUpdate
from ._state import OperationState, Trigger, available_triggers
from ._token import RehydrationToken
from ._urls import OriginPolicy

__all__ = ["OperationBase", "PipelineSettings", "WaitStep"]

T = TypeVar("T")


class PipelineSettings(Protocol):
    """What the shared logic reads from a sync or async pipeline."""

    @property
    def origin_policy(self) -> OriginPolicy:
        """The trusted origins."""
        ...

    @property
    def polling(self) -> PollingPolicy:
        """The waiting rules."""
        ...

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` relative to the endpoint."""
        ...


class WaitStep(NamedTuple):
    """What a wait loop does next: sleep ``seconds``, then poll, or raise ``timeout``."""

    seconds: float
    timeout: bool


class OperationBase(Generic[T]):
    """The I/O-free half of an operation; see ``Operation`` and ``AsyncOperation``."""

    #: The type the final JSON is decoded into (any type msgspec can convert to). None keeps
    #: the decoded JSON as it is.
    value_type: ClassVar[Any] = None
    #: Protocol options for every operation of this class (None: the Azure defaults).
    protocol_options: ClassVar[ProtocolOptions | None] = None

    def __init__(self, pipeline: PipelineSettings, core: OperationCore, response: Any) -> None:
        self._settings = pipeline
        self._core = core
        self._response = response
        self._hooks: Hooks | None = None
        self._value: Any = _UNSET
        self._failures = 0
        self._last_delay: PollingDelay | None = None

    # -- construction helpers ----------------------------------------------------------------

    @classmethod
    def kind(cls) -> str:
        """The name stored in tokens, so a token cannot be restored as another operation."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def _new_core(
        cls, pipeline: PipelineSettings, method: str, url: str, options: ProtocolOptions | None
    ) -> OperationCore:
        return OperationCore(
            method,
            pipeline.origin_policy.check(url),
            options=options or cls.protocol_options,
            origin_policy=pipeline.origin_policy,
            kind=cls.kind(),
        )

    @classmethod
    def _restore_core(
        cls,
        pipeline: PipelineSettings,
        token: RehydrationToken | str | bytes,
        options: ProtocolOptions | None,
    ) -> OperationCore:
        return OperationCore.restore(
            RehydrationToken.parse(token),
            options=options or cls.protocol_options,
            origin_policy=pipeline.origin_policy,
            kind=cls.kind(),
        )

    # -- reading (no I/O) ----------------------------------------------------------------

    @property
    def state(self) -> OperationState:
        """The current lifecycle state."""
        return self._core.state

    @property
    def has_completed(self) -> bool:
        """Whether the operation reached Succeeded, Failed or Canceled. Makes no request."""
        return self._core.state.is_terminal

    @property
    def status(self) -> StatusUpdate | None:
        """The last parsed status report, or None before the first one."""
        return self._core.status

    @property
    def core(self) -> OperationCore:
        """The sans-I/O core (for inspection and advanced driving)."""
        return self._core

    @property
    def last_delay(self) -> PollingDelay | None:
        """The delay chosen after the last response and the rule that chose it."""
        return self._last_delay

    @property
    def rehydration_token(self) -> RehydrationToken:
        """A token from which :meth:`rehydrate` can resume this operation elsewhere."""
        return self._core.token()

    @property
    def value(self) -> T:
        """The operation's result.

        Raises:
            OperationNotCompleteError: the operation has not succeeded yet (or was restored
                and its result not re-read yet: call :meth:`wait_for_completion`).
            OperationFailedError: the service reports that the operation failed.
            OperationCanceledError: the service reports that the operation was canceled.
        """
        if self._value is not _UNSET:
            return self._value  # type: ignore[no-any-return]
        core = self._core
        state = core.state
        if state is OperationState.SUCCEEDED and core.has_payload:
            self._value = self._decode(core.payload)
            return self._value  # type: ignore[no-any-return]
        if state is OperationState.FAILED:
            raise self._outcome_error(OperationFailedError, "failed")
        if state is OperationState.CANCELED:
            raise self._outcome_error(OperationCanceledError, "was canceled")
        if state is OperationState.SUCCEEDED and core.next_request_url is None:
            raise OperationNotCompleteError(
                "the operation succeeded with its start response, whose body was its result;"
                " tokens never carry response bodies, so a restored operation cannot read it"
            )
        if state is OperationState.SUCCEEDED:
            raise OperationNotCompleteError(
                "the operation succeeded but its result has not been read since it was "
                "restored; call update_status() or wait_for_completion() first"
            )
        raise OperationNotCompleteError(
            f"the operation has not completed (state {state.value}); call "
            "wait_for_completion() or poll with update_status() until has_completed"
        )

    def decode_value(self, payload: Any) -> T:
        """Turn the final JSON (already decoded) into the value; override for custom types."""
        value_type = type(self).value_type
        if value_type is None:
            return payload  # type: ignore[no-any-return]
        return msgspec.convert(payload, value_type, strict=False)  # type: ignore[no-any-return]

    def _decode(self, payload: Any) -> T:
        try:
            return self.decode_value(payload)
        except msgspec.ValidationError as error:
            raise ProtocolError(
                f"the operation's result does not match {type(self).value_type!r}: {error}",
                response=self._response,
                rehydration_token=str(self.rehydration_token),
            ) from error

    def _outcome_error(
        self, error_type: type[OperationFailedError] | type[OperationCanceledError], verb: str
    ) -> Exception:
        service_error = self._core.error
        detail = f": {service_error}" if service_error is not None else ""
        return error_type(
            f"the operation {verb}{detail}",
            response=self._response,
            service_error=service_error,
            rehydration_token=str(self.rehydration_token),
        )

    # -- waiting (no I/O) ---------------------------------------------------------------------

    def _wait_step(self, interval: float | None, deadline: float | None, now: float) -> WaitStep:
        """How long to sleep before the next request, and whether the deadline comes first.

        The final GET is not delayed (unless it is being retried); when the next delay would
        reach the deadline, the loop sleeps only until the deadline and then times out.
        """
        if self._core.next_action is Action.FETCH_FINAL and self._failures == 0:
            delay = 0.0
        else:
            delay = self._next_delay(interval).seconds
        if deadline is not None:
            remaining = deadline - now
            if remaining <= 0 or delay >= remaining:
                return WaitStep(max(0.0, remaining), True)
        return WaitStep(delay, False)

    def _timeout_error(self, timeout: float) -> WaitTimeoutError:
        state = self._core.state
        return WaitTimeoutError(
            f"the operation did not complete within {timeout} s (state {state.value})",
            state=state,
            rehydration_token=str(self.rehydration_token),
        )

    def _cancelled_error(self) -> WaitCancelledError:
        return WaitCancelledError(
            f"the wait was cancelled (state {self._core.state.value}); the operation can be "
            "waited on again or resumed from its token",
            state=self._core.state,
            rehydration_token=str(self.rehydration_token),
        )

    def _transport_failed(self, error: Exception) -> None:
        """Count a request that got no answer; raise once the retry budget is spent."""
        self._failures += 1
        policy = self._settings.polling
        if self._failures > policy.max_retries:
            self._failures = 0
            raise PollRejectedError(
                f"the status request failed {policy.max_retries + 1} times in a row: {error}",
                status_code=0,
                rehydration_token=str(self.rehydration_token),
            ) from error
        self._last_delay = policy.retry_delay(self._failures, None)

    def _next_delay(self, interval: float | None) -> PollingDelay:
        if self._failures and self._last_delay is not None:
            return self._last_delay  # backing off after a transient error
        status = self._core.status
        hint = status.retry_after if status is not None else None
        self._last_delay = self._settings.polling.delay(interval, hint)
        return self._last_delay

    # -- processing one response ---------------------------------------------------------

    def _after(self, decision: Decision, raw: Any, interval: float | None) -> None:
        policy = self._settings.polling
        if decision.action is Action.RETRY:
            self._failures += 1
            if self._failures > policy.max_retries:
                self._failures = 0
                status_code = raw.status_code if raw is not None else 0
                raise PollRejectedError(
                    f"the service kept answering with transient errors (last HTTP {status_code})"
                    f" {policy.max_retries + 1} times in a row",
                    status_code=status_code,
                    response=raw,
                    rehydration_token=str(self.rehydration_token),
                )
            self._last_delay = policy.retry_delay(self._failures, decision.retry_after)
        else:
            self._failures = 0
            if decision.action is Action.POLL:
                self._last_delay = policy.delay(interval, decision.retry_after)
            else:
                self._last_delay = None
        if self._hooks is not None and len(self._hooks):
            change = (
                StateChange(self, decision.previous, decision.state) if decision.changed else None
            )
            poll = PollEvent(
                self, decision.state, decision.status, self._core.attempt, self._last_delay, raw
            )
            self._hooks.notify(poll, change)

    # -- manual driving ------------------------------------------------------------------

    def apply_status(self, update: StatusUpdate, payload: Any = None) -> Decision:
        """Apply a status you parsed yourself (custom protocols); hooks run as usual."""
        decision = self._core.apply_status(update, payload)
        self._after(decision, None, None)
        return decision

    def fire(self, trigger: Trigger | str) -> OperationState:
        """Fire a named transition by hand; returns the new state.

        Raises:
            InvalidTransitionError: not allowed from the current state; nothing changes.
            HookError: a change or enter hook raised; the transition stood.
        """
        previous = self._core.fire(trigger)
        if self._hooks is not None and len(self._hooks):
            self._hooks.notify(None, StateChange(self, previous, self._core.state))
        return self._core.state

    @property
    def available_triggers(self) -> tuple[Trigger, ...]:
        """The triggers that :meth:`fire` accepts in the current state."""
        return available_triggers(self._core.state)

    # -- hooks ---------------------------------------------------------------------------

    def _subscribe(
        self, kind: HookKind, callback: Callable[[Any], object], state: OperationState | None
    ) -> Subscription:
        if self._hooks is None:
            self._hooks = Hooks()
        return self._hooks.add(kind, callback, state)

    def on_change(self, callback: Callable[[StateChange[Self]], object]) -> Subscription:
        """Call ``callback`` with a :class:`StateChange` after every state change."""
        return self._subscribe(HookKind.CHANGE, callback, None)

    def on_enter(
        self, state: OperationState | str, callback: Callable[[StateChange[Self]], object]
    ) -> Subscription:
        """Call ``callback`` with a :class:`StateChange` whenever the operation enters ``state``."""
        return self._subscribe(HookKind.ENTER, callback, OperationState(state))

    def on_poll(self, callback: Callable[[PollEvent[Self]], object]) -> Subscription:
        """Call ``callback`` with a :class:`PollEvent` after every processed response."""
        return self._subscribe(HookKind.POLL, callback, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} state={self._core.state.value} {self._core.initial_url}>"


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()
