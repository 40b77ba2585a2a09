"""State hooks: what each hook is told, in which order, and what a raising hook does."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from lrokit import (
    Action,
    HookError,
    HookKind,
    Operation,
    OperationCore,
    OperationState,
    Pipeline,
    PollEvent,
    PollingDelay,
    PollingPolicy,
    ProtocolError,
    ResponseView,
    ServiceError,
    StateChange,
    StatusUpdate,
    Trigger,
)
from lrokit._delay import DelaySource
from lrokit._hooks import Hooks

S = OperationState
HOST = "https://svc.example.com"
START = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"


def view(code: int, body: Any = None, headers: Mapping[str, str] | None = None) -> ResponseView:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return ResponseView.build(code, headers, body, START, raw=("raw", code, body))


@pytest.fixture
def offline() -> Iterator[Pipeline]:
    """A pipeline that is never used to send: these tests feed responses by hand."""
    with Pipeline(HOST, polling=PollingPolicy(interval=2.0)) as pipeline:
        yield pipeline


@pytest.fixture
def operation(offline: Pipeline) -> Operation[Any]:
    return Operation(offline, OperationCore("POST", START, origin_policy=offline.origin_policy))


class Recorder:
    """Collects (hook name, event, state seen on the operation at call time)."""

    def __init__(self, operation: Operation[Any]) -> None:
        self.operation = operation
        self.calls: list[tuple[str, Any, OperationState]] = []

    def hook(self, name: str) -> Any:
        def record(event: Any) -> None:
            self.calls.append((name, event, self.operation.state))

        return record

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


# -- what is called, with what, in which order ----------------------------------------------


def test_events_and_order_through_a_whole_operation(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    # Subscribed in "wrong" order on purpose: poll hooks still run first.
    operation.on_enter(S.SUCCEEDED, rec.hook("enter-succeeded"))
    operation.on_change(rec.hook("change"))
    operation.on_enter("Running", rec.hook("enter-running"))
    operation.on_poll(rec.hook("poll"))

    operation.receive(view(202, None, {"Operation-Location": MONITOR, "Retry-After": "5"}))
    assert rec.names == ["poll", "change", "enter-running"]
    _, poll, seen = rec.calls[0]
    assert isinstance(poll, PollEvent)
    assert poll.operation is operation
    assert poll.state is S.RUNNING
    assert seen is S.RUNNING  # the transition completed before any hook ran
    assert poll.attempt == 0
    assert poll.next_delay == PollingDelay(5.0, DelaySource.SERVER)
    assert poll.response == ("raw", 202, None)
    assert poll.status is not None
    assert poll.status.retry_after == 5.0
    _, change, seen = rec.calls[1]
    assert change == StateChange(operation, S.NOT_STARTED, S.RUNNING)
    assert seen is S.RUNNING
    assert rec.calls[2][1] is change

    rec.calls.clear()
    operation.receive(view(200, {"status": "Running", "percentComplete": 50}))
    assert rec.names == ["poll"]  # no change: only the poll hook
    poll = rec.calls[0][1]
    assert poll.attempt == 1
    assert poll.status.percent_complete == 50.0
    assert poll.next_delay == PollingDelay(2.0, DelaySource.INTERVAL)

    rec.calls.clear()
    operation.receive(view(200, {"status": "Succeeded", "result": {"n": 1}}))
    assert rec.names == ["poll", "enter-succeeded", "change"]
    assert all(seen is S.SUCCEEDED for _, _, seen in rec.calls)
    assert rec.calls[0][1].next_delay is None  # completed: no further delay
    assert rec.calls[1][1] == StateChange(operation, S.RUNNING, S.SUCCEEDED)


def test_hook_can_read_the_value_of_the_completed_operation(operation: Operation[Any]) -> None:
    values: list[Any] = []
    operation.on_enter(S.SUCCEEDED, lambda change: values.append(change.operation.value))
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    operation.receive(view(200, {"status": "Succeeded", "result": [1, 2]}))
    assert values == [[1, 2]]


def test_enter_hooks_fire_only_for_their_state(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    operation.on_enter(S.FAILED, rec.hook("failed"))
    operation.on_enter(S.CANCELED, rec.hook("canceled"))
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    operation.receive(view(200, {"status": "Failed", "error": {"code": "E"}}))
    assert rec.names == ["failed"]
    assert rec.calls[0][1].state is S.FAILED
    assert rec.calls[0][1].operation.core.error == ServiceError("E")


def test_retry_responses_reach_poll_hooks_without_status(operation: Operation[Any]) -> None:
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    rec = Recorder(operation)
    operation.on_poll(rec.hook("poll"))
    operation.on_change(rec.hook("change"))
    decision = operation.receive(view(503, None, {"Retry-After": "3"}))
    assert decision.action is Action.RETRY
    assert rec.names == ["poll"]
    event = rec.calls[0][1]
    assert event.status is None
    assert event.next_delay == PollingDelay(3.0, DelaySource.SERVER)


def test_unusable_responses_fire_no_hooks(operation: Operation[Any]) -> None:
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    rec = Recorder(operation)
    operation.on_poll(rec.hook("poll"))
    operation.on_change(rec.hook("change"))
    with pytest.raises(ProtocolError):
        operation.receive(view(200, {}))
    assert rec.calls == []


def test_fire_and_apply_status_notify(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    operation.on_poll(rec.hook("poll"))
    operation.on_change(rec.hook("change"))
    operation.on_enter(S.CANCELED, rec.hook("enter"))
    operation.apply_status(StatusUpdate(S.RUNNING, "Queued"))
    assert rec.names == ["poll", "change"]
    assert rec.calls[0][1].response is None
    rec.calls.clear()
    assert operation.fire(Trigger.CANCEL) is S.CANCELED
    assert rec.names == ["change", "enter"]  # fire() reports no poll
    assert rec.calls[0][1] == StateChange(operation, S.RUNNING, S.CANCELED)


# -- unsubscribing ---------------------------------------------------------------------------


def test_unsubscribe_twice_and_with_block(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    subscription = operation.on_change(rec.hook("a"))
    with operation.on_change(rec.hook("b")) as scoped:
        assert scoped.active
    assert not scoped.active
    assert subscription.active
    subscription.unsubscribe()
    subscription.unsubscribe()  # harmless
    assert not subscription.active
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    assert rec.calls == []


def test_unsubscribe_from_inside_a_hook(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    once: list[Any] = []

    def only_once(event: Any) -> None:
        once.append(event)
        subscription.unsubscribe()
        subscription.unsubscribe()

    subscription = operation.on_poll(only_once)
    operation.on_poll(rec.hook("after"))  # later hooks still run in the same dispatch
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    operation.receive(view(200, {"status": "Running"}))
    assert len(once) == 1
    assert rec.names == ["after", "after"]


def test_a_hook_unsubscribed_by_an_earlier_hook_is_not_called(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    operation.on_poll(lambda event: victim.unsubscribe())
    victim = operation.on_poll(rec.hook("victim"))
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    assert rec.calls == []


def test_subscribing_from_inside_a_hook_takes_effect_next_time(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    operation.on_poll(lambda event: operation.on_poll(rec.hook("late")) if not rec.calls else None)
    operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    assert rec.calls == []
    operation.receive(view(200, {"status": "Running"}))
    assert rec.names == ["late"]


# -- raising hooks ---------------------------------------------------------------------------


def test_raising_hooks_do_not_stop_others_nor_corrupt_state(operation: Operation[Any]) -> None:
    rec = Recorder(operation)
    first, second = ValueError("first"), RuntimeError("second")

    def bad(error: Exception) -> Any:
        def hook(event: Any) -> None:
            rec.calls.append(("bad", event, operation.state))
            raise error

        return hook

    operation.on_poll(bad(first))
    operation.on_poll(rec.hook("poll"))
    operation.on_change(bad(second))
    operation.on_change(rec.hook("change"))

    with pytest.raises(HookError) as info:
        operation.receive(view(202, None, {"Operation-Location": MONITOR}))
    assert info.value.errors == [first, second]
    assert info.value.__cause__ is first
    assert rec.names == ["bad", "poll", "bad", "change"]
    # The transition stood and the core is consistent.
    assert operation.state is S.RUNNING
    assert operation.core.next_action is Action.POLL
    assert operation.core.next_request_url == MONITOR
    assert operation.rehydration_token.fields.state == "Running"

    # The operation continues; the hooks keep being called (and keep raising).
    rec.calls.clear()
    with pytest.raises(HookError) as info:
        operation.receive(view(200, {"status": "Succeeded", "result": 7}))
    assert info.value.errors == [first, second]
    assert operation.state is S.SUCCEEDED
    assert operation.value == 7
    assert rec.names == ["bad", "poll", "bad", "change"]


def test_raising_hook_on_fire_keeps_the_transition(operation: Operation[Any]) -> None:
    operation.on_enter(S.FAILED, lambda change: 1 / 0)
    with pytest.raises(HookError) as info:
        operation.fire("fail")
    assert isinstance(info.value.errors[0], ZeroDivisionError)
    assert operation.state is S.FAILED
    assert operation.available_triggers == ()


# -- restoring fires nothing ---------------------------------------------------------------


class HookedOperation(Operation[Any]):
    """An SDK-style subclass that subscribes a hook as soon as it exists."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Any] = []
        self.on_change(self.seen.append)
        self.on_poll(self.seen.append)
        for state in OperationState:
            self.on_enter(state, self.seen.append)


@pytest.mark.parametrize("body", [{"status": "Running"}, {"status": "Failed"}])
def test_rehydrating_fires_no_hooks(offline: Pipeline, body: dict[str, str]) -> None:
    original = HookedOperation(
        offline,
        OperationCore(
            "POST", START, origin_policy=offline.origin_policy, kind=HookedOperation.kind()
        ),
    )
    original.receive(view(202, None, {"Operation-Location": MONITOR}))
    original.receive(view(200, body))
    assert original.seen  # the subscriptions work ...
    restored = HookedOperation.rehydrate(offline, original.rehydration_token)
    assert restored.state is original.state
    assert restored.seen == []  # ... and restoring told them nothing


# -- the Hooks registry itself ------------------------------------------------------------------


def test_hooks_registry_validation() -> None:
    hooks = Hooks()
    with pytest.raises(TypeError):
        hooks.add(HookKind.CHANGE, "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="enter"):
        hooks.add(HookKind.ENTER, print)
    with pytest.raises(ValueError, match="enter"):
        hooks.add(HookKind.CHANGE, print, S.RUNNING)
    assert len(hooks) == 0
    subscription = hooks.add(HookKind.POLL, print)
    assert len(hooks) == 1
    subscription.unsubscribe()
    assert len(hooks) == 0
    hooks.notify(None, None)  # nothing to call, nothing raised
