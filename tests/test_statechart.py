"""The committed statecharts are exactly what the transition table generates."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from lrokit import _state
from lrokit._state import INITIAL_STATE, TERMINAL_STATES, TRANSITIONS, OperationState, Trigger
from lrokit._statechart import (
    STATECHART_FILES,
    edges,
    render_mermaid,
    render_scxml,
    write_statecharts,
)

STATECHARTS = Path(__file__).resolve().parents[1] / "statecharts"
SCXML_NS = "{http://www.w3.org/2005/07/scxml}"
REGENERATE = (
    "regenerate it from the repository root with "
    "`lrokit statechart --format mermaid > statecharts/lifecycle.mmd` and "
    "`lrokit statechart --format scxml > statecharts/lifecycle.scxml` (or "
    'python -c "from lrokit._statechart import write_statecharts; '
    "write_statecharts('statecharts')\")"
)

Edge = tuple[str, str, str]


def table_edges() -> set[Edge]:
    """(source, event, target) straight from the table, independently of the renderer."""
    return {
        (source.value, trigger.value, dest.value)
        for trigger, sources, dest in _state.TRANSITIONS
        for source in sources
    }


def scxml_facts(text: str) -> tuple[str, set[str], set[str], set[Edge]]:
    """(initial, non-final state ids, final ids, transitions) of an SCXML document."""
    root = ET.fromstring(text.encode())
    assert root.tag == f"{SCXML_NS}scxml"
    assert root.get("version") == "1.0"
    states = {el.get("id", "") for el in root.findall(f"{SCXML_NS}state")}
    finals = {el.get("id", "") for el in root.findall(f"{SCXML_NS}final")}
    transitions: set[Edge] = set()
    count = 0
    for el in root.findall(f"{SCXML_NS}state"):
        for tr in el.findall(f"{SCXML_NS}transition"):
            transitions.add((el.get("id", ""), tr.get("event", ""), tr.get("target", "")))
            count += 1
    assert count == len(transitions), "a transition is listed twice"
    for el in root.findall(f"{SCXML_NS}final"):
        assert el.find(f"{SCXML_NS}transition") is None, "a final state has a way out"
    return root.get("initial", ""), states, finals, transitions


_MERMAID_EDGE = re.compile(r"^ {4}(\w+) --> (\w+) : (\w+)$")
_MERMAID_START = re.compile(r"^ {4}\[\*\] --> (\w+)$")
_MERMAID_END = re.compile(r"^ {4}(\w+) --> \[\*\]$")


def mermaid_facts(text: str) -> tuple[list[str], set[str], set[Edge]]:
    """(initial states, terminal states, transitions) of the Mermaid diagram."""
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    initial: list[str] = []
    terminal: set[str] = set()
    found: list[Edge] = []
    for line in lines[1:]:
        if line.strip().startswith("%%"):
            continue
        if match := _MERMAID_EDGE.match(line):
            source, target, event = match.groups()
            found.append((source, event, target))
        elif match := _MERMAID_START.match(line):
            initial.append(match.group(1))
        elif match := _MERMAID_END.match(line):
            terminal.add(match.group(1))
        else:
            pytest.fail(f"unexpected Mermaid line: {line!r}")
    assert len(found) == len(set(found)), "a transition is drawn twice"
    return initial, terminal, set(found)


@pytest.mark.parametrize("name", sorted(STATECHART_FILES))
def test_committed_file_is_the_generated_one(name: str) -> None:
    path = STATECHARTS / name
    assert path.is_file(), f"statecharts/{name} is missing; {REGENERATE}"
    committed = path.read_bytes().decode("utf-8")
    assert committed == STATECHART_FILES[name](), (
        f"statecharts/{name} is out of date with lrokit._state.TRANSITIONS; {REGENERATE}"
    )


def test_write_statecharts_writes_the_renderings_byte_for_byte(tmp_path: Path) -> None:
    paths = write_statecharts(tmp_path)
    assert sorted(p.name for p in paths) == sorted(STATECHART_FILES)
    for path in paths:
        assert path.read_bytes() == STATECHART_FILES[path.name]().encode("utf-8")


def test_scxml_transitions_are_the_table() -> None:
    for text in (render_scxml(), (STATECHARTS / "lifecycle.scxml").read_text("utf-8")):
        initial, states, finals, transitions = scxml_facts(text)
        assert initial == INITIAL_STATE.value
        assert finals == {s.value for s in TERMINAL_STATES}
        assert states == {s.value for s in OperationState if s not in TERMINAL_STATES}
        assert transitions == table_edges()


def test_mermaid_edges_are_the_table() -> None:
    for text in (render_mermaid(), (STATECHARTS / "lifecycle.mmd").read_text("utf-8")):
        initial, terminal, transitions = mermaid_facts(text)
        assert initial == [INITIAL_STATE.value]
        assert terminal == {s.value for s in TERMINAL_STATES}
        assert transitions == table_edges()


def test_edges_follow_state_order_then_table_order() -> None:
    order = list(OperationState)
    got = edges()
    assert [order.index(source) for source, _, _ in got] == sorted(
        order.index(source) for source, _, _ in got
    )
    rows = [trigger for trigger, _, _ in TRANSITIONS]
    for state in OperationState:
        triggers = [trigger for source, trigger, _ in got if source is state]
        assert triggers == [t for t in rows if t in triggers]


@pytest.mark.parametrize("render", [render_mermaid, render_scxml])
def test_rendering_is_deterministic_and_ends_with_one_newline(render: Callable[[], str]) -> None:
    first = render()
    assert first == render()
    assert first.endswith("\n")
    assert not first.endswith("\n\n")


@pytest.mark.parametrize("name", sorted(STATECHART_FILES))
def test_a_table_change_that_is_not_regenerated_is_caught(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = (STATECHARTS / name).read_text("utf-8")
    dropped = next(row for row in TRANSITIONS if row[0] is Trigger.CANCEL)
    monkeypatch.setattr(_state, "TRANSITIONS", tuple(r for r in TRANSITIONS if r is not dropped))
    rendered = STATECHART_FILES[name]()
    assert rendered != committed
    lost = {(s.value, dropped[0].value, dropped[2].value) for s in dropped[1]}
    facts = scxml_facts if name.endswith(".scxml") else mermaid_facts
    before, after = facts(committed)[-1], facts(rendered)[-1]
    assert isinstance(before, set)
    assert isinstance(after, set)
    # Exactly the dropped row's edges differ; the rest of the rendering still follows the table.
    assert before - after == lost
    assert after == table_edges()


def test_a_new_row_shows_up_in_both_renderings(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = (Trigger.START, (OperationState.RUNNING,), OperationState.RUNNING)
    monkeypatch.setattr(_state, "TRANSITIONS", (*TRANSITIONS, extra))
    edge = ("Running", "start", "Running")
    assert edge in scxml_facts(render_scxml())[3]
    assert edge in mermaid_facts(render_mermaid())[2]
    assert "    Running --> Running : start\n" in render_mermaid()


def test_names_that_would_break_the_formats_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fake:
        value = 'Not "Started"'

    monkeypatch.setattr(_state, "INITIAL_STATE", Fake())
    with pytest.raises(ValueError, match="cannot be rendered"):
        render_mermaid()
    with pytest.raises(ValueError, match="cannot be rendered"):
        render_scxml()
