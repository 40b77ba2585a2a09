"""Printing an operation's life as it happens: hooks that write transitions and progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._delay import DELAY_LABELS
from .._hooks import PollEvent, StateChange, Subscription
from .._state import OperationState
from .._sync import Operation
from ._client import VectorStore

__all__ = ["Watcher", "describe_store"]


class Watcher:
    """Hooks that print each state change and each status poll of an operation.

    ``watcher.attach(operation)`` subscribes; :attr:`transitions` then lists every change
    the hooks saw, so callers can check what really happened rather than assume it.

    Args:
        write: where lines go (for example ``print``).
        indent: put before every line.
    """

    def __init__(self, write: Callable[[str], object], indent: str = "   ") -> None:
        self.write = write
        self.indent = indent
        self.transitions: list[tuple[OperationState, OperationState]] = []
        self._last_attempt = 0

    def attach(self, operation: Operation[Any]) -> list[Subscription]:
        """Subscribe the change and poll hooks to ``operation``."""
        self._last_attempt = operation.core.attempt
        return [operation.on_change(self._on_change), operation.on_poll(self._on_poll)]

    def _on_change(self, change: StateChange[Any]) -> None:
        self.transitions.append((change.previous, change.state))
        self.write(f"{self.indent}{change.previous.value} -> {change.state.value}")

    def _on_poll(self, event: PollEvent[Any]) -> None:
        # Only status-monitor answers advance the attempt count; the start response and
        # the final GET do not, and their effect is shown by the change hook.
        if event.attempt <= self._last_attempt or event.status is None:
            return
        self._last_attempt = event.attempt
        status = event.status
        progress = f" {status.percent_complete:.0f}%" if status.percent_complete is not None else ""
        wait = (
            f", next poll in {event.next_delay.seconds:.2f} s"
            f" ({DELAY_LABELS[event.next_delay.source]})"
            if event.next_delay is not None and not status.state.is_terminal
            else ""
        )
        raw = status.raw_status or status.state.value
        self.write(f"{self.indent}. poll {event.attempt}: {raw}{progress}{wait}")


def describe_store(store: VectorStore) -> str:
    """A one-line, readable description of a vector store."""
    counts = store.file_counts
    return (
        f"VectorStore id={store.id} name={store.name!r} status={store.status}"
        f" files={counts.completed}/{counts.total} created_at={store.created_at}"
    )
