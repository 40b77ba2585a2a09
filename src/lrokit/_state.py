"""The lifecycle of one long-running operation: states, triggers and the one transition table.

Every legal transition lives in :data:`TRANSITIONS`; nothing else in lrokit decides what state
follows what. The table is loaded into a single shared ``transitions.Machine`` at import time
(``auto_transitions=False``, ``ignore_invalid_triggers=False``), which validates it, and is
compiled into a lookup dictionary. Operations keep their own state in a slot and consult the
shared table instead of owning a ``Machine`` each: a machine per operation costs hundreds of
microseconds and tens of kilobytes, a table lookup costs well under a microsecond and nothing
per operation (see ``bench/bench_core.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from transitions import Machine

from ._exceptions import InvalidTransitionError

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "OperationState",
    "Trigger",
    "available_triggers",
    "next_state",
]


class OperationState(str, enum.Enum):
    """Where an operation is in its lifecycle.

    ``NOT_STARTED`` is the state before the service has accepted the start request;
    ``RUNNING`` after it did; the other three are terminal and have no way out.
    """

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        """``True`` for ``SUCCEEDED``, ``FAILED`` and ``CANCELED``."""
        return self in TERMINAL_STATES

    def __str__(self) -> str:
        return self.value


class Trigger(str, enum.Enum):
    """The named events that move an operation from one state to another."""

    START = "start"
    """The service accepted the operation and it is in progress."""
    SUCCEED = "succeed"
    """The service reports that the operation succeeded."""
    FAIL = "fail"
    """The service reports that the operation failed."""
    CANCEL = "cancel"
    """The service reports that the operation was canceled."""

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES: frozenset[OperationState] = frozenset(
    {OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELED}
)

_NS = OperationState.NOT_STARTED
_RUN = OperationState.RUNNING

#: Every legal transition: ``(trigger, sources, destination)``. A service may finish an
#: operation before it answers the start request, so ``NOT_STARTED`` may go straight to any
#: terminal state. Terminal states appear in no source list.
TRANSITIONS: tuple[tuple[Trigger, tuple[OperationState, ...], OperationState], ...] = (
    (Trigger.START, (_NS,), _RUN),
    (Trigger.SUCCEED, (_NS, _RUN), OperationState.SUCCEEDED),
    (Trigger.FAIL, (_NS, _RUN), OperationState.FAILED),
    (Trigger.CANCEL, (_NS, _RUN), OperationState.CANCELED),
)

#: The state every new operation starts in.
INITIAL_STATE = OperationState.NOT_STARTED


def _build_machine() -> Machine:
    return Machine(
        model=None,
        states=[state.value for state in OperationState],
        transitions=[
            {"trigger": trigger.value, "source": [s.value for s in sources], "dest": dest.value}
            for trigger, sources, dest in TRANSITIONS
        ],
        initial=INITIAL_STATE.value,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )


#: The shared machine, built once from :data:`TRANSITIONS`. It is used as a validated table,
#: never as a per-operation model.
MACHINE: Machine = _build_machine()


def _compile(machine: Machine) -> Mapping[tuple[OperationState, Trigger], OperationState]:
    table: dict[tuple[OperationState, Trigger], OperationState] = {}
    for trigger_name, event in machine.events.items():
        trigger = Trigger(trigger_name)
        for source_name, transitions in event.transitions.items():
            for transition in transitions:
                table[(OperationState(source_name), trigger)] = OperationState(transition.dest)
    return table


_NEXT = _compile(MACHINE)


def next_state(current: OperationState, trigger: Trigger) -> OperationState:
    """Return the state that ``trigger`` leads to from ``current``.

    Raises:
        InvalidTransitionError: the table has no such transition; nothing changes.
    """
    try:
        return _NEXT[(current, trigger)]
    except KeyError:
        raise InvalidTransitionError(current, trigger) from None


def available_triggers(current: OperationState) -> tuple[Trigger, ...]:
    """The triggers that are legal from ``current``, in table order (none for terminal states)."""
    return tuple(trigger for trigger, sources, _ in TRANSITIONS if current in sources)
