"""The lifecycle graph and every (state, trigger) pair, on the table, the core and the driver."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from transitions import MachineError

from lrokit import (
    TERMINAL_STATES,
    TRANSITIONS,
    InvalidTransitionError,
    Operation,
    OperationCore,
    OperationState,
    Pipeline,
    Trigger,
)
from lrokit._core import Action
from lrokit._state import _NEXT, INITIAL_STATE, MACHINE, available_triggers, next_state

S = OperationState
T = Trigger

#: The lifecycle the design prescribes, written out independently of ``TRANSITIONS`` so that a
#: change to the table has to be made twice, on purpose.
EXPECTED: dict[tuple[OperationState, Trigger], OperationState] = {
    (S.NOT_STARTED, T.START): S.RUNNING,
    (S.NOT_STARTED, T.SUCCEED): S.SUCCEEDED,
    (S.NOT_STARTED, T.FAIL): S.FAILED,
    (S.NOT_STARTED, T.CANCEL): S.CANCELED,
    (S.RUNNING, T.SUCCEED): S.SUCCEEDED,
    (S.RUNNING, T.FAIL): S.FAILED,
    (S.RUNNING, T.CANCEL): S.CANCELED,
}

ALL_PAIRS = list(itertools.product(OperationState, Trigger))
LEGAL = [pair for pair in ALL_PAIRS if pair in EXPECTED]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def _edges() -> set[tuple[OperationState, Trigger, OperationState]]:
    return {(src, trigger, dest) for trigger, sources, dest in TRANSITIONS for src in sources}


def _successors(state: OperationState) -> set[OperationState]:
    return {dest for src, _, dest in _edges() if src is state}


def _reachable(start: OperationState) -> set[OperationState]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in _successors(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


# -- the graph ----------------------------------------------------------------------------


def test_table_is_the_designed_lifecycle() -> None:
    assert {(src, trig): dest for src, trig, dest in _edges()} == EXPECTED
    # No (state, trigger) pair appears twice with different destinations.
    assert len(_edges()) == len(EXPECTED)


def test_exactly_one_initial_state() -> None:
    targets = {dest for _, _, dest in _edges()}
    without_incoming = [s for s in OperationState if s not in targets]
    assert without_incoming == [INITIAL_STATE]
    assert INITIAL_STATE is S.NOT_STARTED
    assert MACHINE.initial == INITIAL_STATE.value
    assert OperationCore("GET", "https://h/x").state is INITIAL_STATE


def test_every_state_is_reachable_from_the_initial_state() -> None:
    assert _reachable(INITIAL_STATE) == set(OperationState)


def test_no_edges_out_of_terminal_states() -> None:
    for state in TERMINAL_STATES:
        assert _successors(state) == set()
        assert available_triggers(state) == ()
    # Terminal is exactly "no way out".
    assert {s for s in OperationState if not _successors(s)} == TERMINAL_STATES


def test_every_non_terminal_state_can_reach_a_terminal_one() -> None:
    for state in OperationState:
        if not state.is_terminal:
            assert _reachable(state) & TERMINAL_STATES, state


def test_terminal_flag_and_text() -> None:
    assert {s for s in OperationState if s.is_terminal} == {S.SUCCEEDED, S.FAILED, S.CANCELED}
    assert str(S.CANCELED) == "Canceled"
    assert str(T.START) == "start"


# -- the table against the shared transitions.Machine (the source of truth) ---------------


def test_compiled_table_equals_machine_events() -> None:
    from_machine = {
        (OperationState(src), Trigger(name), OperationState(t.dest))
        for name, event in MACHINE.events.items()
        for src, transitions in event.transitions.items()
        for t in transitions
    }
    compiled = {(src, trig, dest) for (src, trig), dest in _NEXT.items()}
    assert compiled == from_machine == _edges()


def test_machine_has_no_auto_transitions_and_rejects_invalid_triggers() -> None:
    assert set(MACHINE.events) == {t.value for t in Trigger}  # no "to_Running" helpers
    assert MACHINE.ignore_invalid_triggers is False
    assert set(MACHINE.states) == {s.value for s in OperationState}


class _Model:
    state: str


@pytest.mark.parametrize(("state", "trigger"), ALL_PAIRS)
def test_next_state_agrees_with_driving_the_machine(
    state: OperationState, trigger: Trigger
) -> None:
    model = _Model()
    MACHINE.add_model(model, initial=state.value)
    try:
        try:
            model.trigger(trigger.value)  # type: ignore[attr-defined]
        except MachineError:
            machine_result = None
        else:
            machine_result = OperationState(model.state)
    finally:
        MACHINE.remove_model(model)
    if machine_result is None:
        with pytest.raises(InvalidTransitionError):
            next_state(state, trigger)
    else:
        assert next_state(state, trigger) is machine_result


# -- every pair on OperationCore.fire ----------------------------------------------------


def _core_in(state: OperationState) -> OperationCore:
    core = OperationCore("PUT", "https://svc.example.com/items/1")
    core.state = state  # test setup only: place the core anywhere in the graph
    return core


@pytest.mark.parametrize(("state", "trigger"), LEGAL)
def test_core_fire_legal_pair(state: OperationState, trigger: Trigger) -> None:
    core = _core_in(state)
    assert core.fire(trigger) is state  # returns the previous state
    assert core.state is EXPECTED[(state, trigger)]
    assert core.has_completed is core.state.is_terminal
    assert (core.next_action is Action.DONE) is core.state.is_terminal


@pytest.mark.parametrize(("state", "trigger"), LEGAL)
def test_core_fire_accepts_trigger_names(state: OperationState, trigger: Trigger) -> None:
    core = _core_in(state)
    core.fire(trigger.value)
    assert core.state is EXPECTED[(state, trigger)]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL)
def test_core_fire_illegal_pair(state: OperationState, trigger: Trigger) -> None:
    core = _core_in(state)
    core.next_action = Action.POLL if not state.is_terminal else Action.DONE
    before = core.snapshot()
    with pytest.raises(InvalidTransitionError) as info:
        core.fire(trigger)
    assert info.value.state is state
    assert info.value.trigger is trigger
    assert core.state is state
    assert core.snapshot() == before


@pytest.mark.parametrize("name", ["bogus", "Succeeded", "", "START "])
def test_core_fire_unknown_trigger_name(name: str) -> None:
    core = _core_in(S.RUNNING)
    with pytest.raises(InvalidTransitionError):
        core.fire(name)
    assert core.state is S.RUNNING


# -- every pair on Operation.fire --------------------------------------------------------


def _operation_in(state: OperationState) -> Operation[object]:
    # No request is made by fire(); the pipeline only satisfies the constructor.
    return Operation(Pipeline("https://svc.example.com/"), _core_in(state))


@pytest.mark.parametrize(("state", "trigger"), LEGAL)
def test_operation_fire_legal_pair(state: OperationState, trigger: Trigger) -> None:
    operation = _operation_in(state)
    assert trigger in operation.available_triggers
    seen: list[tuple[OperationState, OperationState, OperationState]] = []
    operation.on_change(
        lambda change: seen.append((change.previous, change.state, operation.state))
    )
    new = operation.fire(trigger)
    expected = EXPECTED[(state, trigger)]
    assert new is expected
    assert operation.state is expected
    assert seen == [(state, expected, expected)]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL)
def test_operation_fire_illegal_pair(state: OperationState, trigger: Trigger) -> None:
    operation = _operation_in(state)
    assert trigger not in operation.available_triggers
    seen: list[object] = []
    operation.on_change(seen.append)
    with pytest.raises(InvalidTransitionError):
        operation.fire(trigger)
    assert operation.state is state
    assert seen == []


@pytest.mark.parametrize("state", list(OperationState))
def test_available_triggers_are_exactly_the_legal_ones(state: OperationState) -> None:
    assert set(available_triggers(state)) == {t for (s, t) in EXPECTED if s is state}
