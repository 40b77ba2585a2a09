"""State hooks: who is told what, and what happens when a hook raises.

Hooks are called by the driver after the core has finished a transition, so the state a hook
sees is final and a raising hook cannot leave the operation half-changed. Every subscribed
hook is called even when an earlier one raises; the errors are then raised together as one
:class:`~lrokit.HookError` from the call that caused the notification (``update_status``,
``wait_for_completion``, ``receive``, ``fire``). The operation stays valid and resumable.

A hook of an ``AsyncOperation`` may be a coroutine function (or return any awaitable): its
awaitable is collected during the dispatch and awaited by the async driver afterwards, in
call order. A sync ``Operation`` cannot await: such a hook is refused when subscribed, and
an awaitable returned anyway is closed and reported as a :class:`TypeError` in the
``HookError``.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import msgspec

from ._delay import PollingDelay
from ._exceptions import HookError
from ._parse import StatusUpdate
from ._state import OperationState

__all__ = ["HookKind", "Hooks", "PollEvent", "ResponseEvent", "StateChange", "Subscription"]

OpT = TypeVar("OpT")


class HookKind(str, enum.Enum):
    """What a hook listens to."""

    CHANGE = "change"
    """Every state change."""
    ENTER = "enter"
    """Entering one given state."""
    POLL = "poll"
    """Every parsed status response, whether or not the state changed."""
    RESPONSE = "response"
    """Every response the operation receives, usable or not, before lrokit acts on it."""


class StateChange(msgspec.Struct, Generic[OpT], frozen=True):
    """Sent to change and enter hooks: ``operation`` moved from ``previous`` to ``state``."""

    operation: OpT
    previous: OperationState
    state: OperationState


class PollEvent(msgspec.Struct, Generic[OpT], frozen=True):
    """Sent to poll hooks after each response has been processed.

    Attributes:
        operation: the operation.
        state: its state after the response.
        status: the parsed status (None for a response that carried none, such as a retry).
        attempt: how many status responses the operation has processed.
        next_delay: the delay before the next request and the rule that chose it; None
            when the operation has completed.
        response: the raw response.
    """

    operation: OpT
    state: OperationState
    status: StatusUpdate | None
    attempt: int
    next_delay: PollingDelay | None
    response: Any = None


class ResponseEvent(msgspec.Struct, Generic[OpT], frozen=True):
    """Sent to response hooks for every response an operation receives, in arrival order.

    A response hook hears each answer before lrokit acts on it: transient start answers
    that are retried, every poll (transient, rejected or unusable ones too), the final GET
    and the answer to a cancel request. Requests that got no answer send no event.

    Attributes:
        operation: the operation.
        request: which request was answered: ``"start"``, ``"poll"``, ``"final"`` (the GET
            of the final resource) or ``"cancel"``.
        status_code: the answer's HTTP status.
        url: the URL of the request that was answered (as the transport reports it).
        response: the raw response (``requests.Response`` in the sync driver).
    """

    operation: OpT
    request: str
    status_code: int
    url: str
    response: Any = None


class Subscription:
    """The handle returned by a subscription; :meth:`unsubscribe` (or ``with``) removes it."""

    __slots__ = ("_entry", "_hooks")

    def __init__(self, hooks: Hooks, entry: _Entry) -> None:
        self._hooks: Hooks | None = hooks
        self._entry = entry

    @property
    def active(self) -> bool:
        """Whether the hook is still subscribed."""
        return self._hooks is not None

    def unsubscribe(self) -> None:
        """Stop calling the hook. Calling this twice is harmless."""
        if self._hooks is not None:
            self._hooks._remove(self._entry)
            self._hooks = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()


class _Entry:
    __slots__ = ("callback", "kind", "state")

    def __init__(
        self, kind: HookKind, callback: Callable[[Any], object], state: OperationState | None
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.state = state


class Hooks:
    """The subscriptions of one operation (created on first subscription)."""

    __slots__ = ("_entries", "accepts_coroutines")

    def __init__(self, *, accepts_coroutines: bool = False) -> None:
        self._entries: list[_Entry] = []
        #: Whether coroutine hooks may subscribe (an async operation's hooks).
        self.accepts_coroutines = accepts_coroutines

    def add(
        self,
        kind: HookKind,
        callback: Callable[[Any], object],
        state: OperationState | None = None,
    ) -> Subscription:
        """Subscribe ``callback``; ``state`` is required for ``ENTER`` hooks only."""
        if not callable(callback):
            raise TypeError("a hook must be callable")
        if not self.accepts_coroutines and inspect.iscoroutinefunction(callback):
            raise TypeError(
                f"{callback!r} is a coroutine function, which a sync Operation cannot await;"
                " use a plain function, or an AsyncOperation"
            )
        if (kind is HookKind.ENTER) != (state is not None):
            raise ValueError("a state is given for enter hooks, and only for them")
        entry = _Entry(kind, callback, state)
        self._entries.append(entry)
        return Subscription(self, entry)

    def _remove(self, entry: _Entry) -> None:
        self._entries = [e for e in self._entries if e is not entry]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hears_responses(self) -> bool:
        """Whether any response hook is subscribed."""
        return any(entry.kind is HookKind.RESPONSE for entry in self._entries)

    def notify_response(
        self, event: ResponseEvent[Any], awaitables: list[Awaitable[object]] | None = None
    ) -> list[BaseException]:
        """Call every response hook with ``event``; returns their errors, in call order.

        The errors are returned rather than raised: the caller raises them (as one
        :class:`~lrokit.HookError`) once the response has been applied, so that a raising
        hook cannot make the operation lose an answer. Awaitables are handled as in
        :meth:`notify`.
        """
        errors: list[BaseException] = []
        for entry in tuple(self._entries):
            if entry.kind is not HookKind.RESPONSE or entry not in self._entries:
                continue
            try:
                result = entry.callback(event)
            except Exception as error:  # noqa: BLE001 - returned to the caller
                errors.append(error)
                continue
            if result is not None and inspect.isawaitable(result):
                if awaitables is not None:
                    awaitables.append(result)
                else:
                    errors.append(_unawaitable(entry.callback, result))
        return errors

    def notify(
        self,
        poll: PollEvent[Any] | None,
        change: StateChange[Any] | None,
        awaitables: list[Awaitable[object]] | None = None,
    ) -> None:
        """Call poll hooks with ``poll``, then change and enter hooks with ``change``.

        A hook that returns an awaitable (a coroutine hook) has it appended to
        ``awaitables``, for the async driver to await; with ``awaitables`` None (the sync
        driver) the awaitable is closed and counted as the hook's error.

        Raises:
            HookError: after all hooks were called, when any of them raised.
        """
        errors: list[BaseException] = []
        # Two passes so that poll hooks run first whatever the subscription order. Iterate
        # over a copy (a hook may unsubscribe) but skip entries removed meanwhile, so that no
        # hook is called after its unsubscribe() returned.
        for wanted in (HookKind.POLL, None):
            for entry in tuple(self._entries):
                if wanted is HookKind.POLL:
                    if entry.kind is not HookKind.POLL:
                        continue
                    event: Any = poll
                elif change is not None and (
                    entry.kind is HookKind.CHANGE
                    or (entry.kind is HookKind.ENTER and entry.state is change.state)
                ):
                    event = change
                else:
                    continue
                if event is None or entry not in self._entries:
                    continue
                try:
                    result = entry.callback(event)
                except Exception as error:  # noqa: BLE001 - collected and re-raised below
                    errors.append(error)
                    continue
                if result is not None and inspect.isawaitable(result):
                    if awaitables is not None:
                        awaitables.append(result)
                    else:
                        errors.append(_unawaitable(entry.callback, result))
        if errors:
            raise HookError(errors) from errors[0]


def _unawaitable(callback: Callable[[Any], object], result: Awaitable[object]) -> TypeError:
    """Close an awaitable that a sync operation's hook returned, and say why it is an error."""
    close = getattr(result, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn when collected
    return TypeError(
        f"hook {callback!r} returned an awaitable, which a sync Operation cannot await;"
        " use a plain function, or an AsyncOperation"
    )
