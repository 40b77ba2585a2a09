"""The operation lifecycle as a statechart, generated from the one transition table.

Both renderings are derived only from :data:`lrokit._state.TRANSITIONS`,
:class:`~lrokit.OperationState`, ``INITIAL_STATE`` and :data:`~lrokit.TERMINAL_STATES`, read at
call time, so the files under ``statecharts/`` cannot drift from the code without
``tests/test_statechart.py`` noticing. Output is deterministic: states in enum order, and for
each source state its transitions in table order; every rendering ends with a newline.

Regenerate the committed files with ``lrokit statechart --format mermaid`` and
``--format scxml`` (see ``statecharts/README.md``) or :func:`write_statecharts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

from . import _state
from ._state import OperationState, Trigger

__all__ = [
    "STATECHART_FILES",
    "edges",
    "render_mermaid",
    "render_scxml",
    "write_statecharts",
]

#: The header comment of every generated file. No state names (those come from the table)
#: and no "--", which XML forbids inside a comment.
_NOTICE = "Generated from lrokit._state.TRANSITIONS; do not edit (see statecharts/README.md)."

# State names become Mermaid state ids and SCXML ``id`` attributes (xsd:ID, an NCName);
# trigger names become Mermaid labels and SCXML event descriptors. Restricting both to
# identifiers keeps each rendering valid without any escaping rules of its own.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _checked(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} cannot be rendered: use letters, digits and '_'")
    return name


def edges() -> list[tuple[OperationState, Trigger, OperationState]]:
    """Every transition of the table as ``(source, trigger, destination)``.

    Ordered by source state (enum order), then by the table's row order.
    """
    rows = _state.TRANSITIONS
    return [
        (source, trigger, dest)
        for source in OperationState
        for trigger, sources, dest in rows
        if source in sources
    ]


def _terminal_states() -> list[OperationState]:
    return [state for state in OperationState if state in _state.TERMINAL_STATES]


def render_mermaid() -> str:
    """The lifecycle as a Mermaid ``stateDiagram-v2``, ending with a newline.

    ``[*] --> <initial>``, one ``source --> destination : trigger`` line per transition and
    ``<terminal> --> [*]`` for each terminal state. Write it out verbatim (no extra newline).
    """
    lines = [
        # The diagram type comes first: older Mermaid versions reject a leading comment.
        "stateDiagram-v2",
        f"    %% {_NOTICE}",
        f"    [*] --> {_checked(_state.INITIAL_STATE.value, 'state')}",
    ]
    for source, trigger, dest in edges():
        lines.append(
            f"    {_checked(source.value, 'state')} --> {_checked(dest.value, 'state')}"
            f" : {_checked(trigger.value, 'trigger')}"
        )
    lines.extend(f"    {_checked(state.value, 'state')} --> [*]" for state in _terminal_states())
    return "\n".join(lines) + "\n"


def render_scxml() -> str:
    """The lifecycle as an SCXML 1.0 document, ending with a newline.

    ``initial`` names the initial state; each non-terminal state is a ``<state>`` holding one
    ``<transition event=... target=...>`` per outgoing transition; each terminal state is a
    ``<final>``. Write it out verbatim (no extra newline).
    """
    outgoing: dict[OperationState, list[tuple[Trigger, OperationState]]] = {}
    for source, trigger, dest in edges():
        outgoing.setdefault(source, []).append((trigger, dest))
    terminal = _state.TERMINAL_STATES
    initial = _checked(_state.INITIAL_STATE.value, "state")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- {_NOTICE} -->",
        '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"'
        f" initial={quoteattr(initial)}>",
    ]
    for state in OperationState:
        state_id = quoteattr(_checked(state.value, "state"))
        if state in terminal:
            lines.append(f"  <final id={state_id}/>")
            continue
        transitions = outgoing.get(state, [])
        if not transitions:
            lines.append(f"  <state id={state_id}/>")
            continue
        lines.append(f"  <state id={state_id}>")
        lines.extend(
            f"    <transition event={quoteattr(_checked(trigger.value, 'trigger'))}"
            f" target={quoteattr(_checked(dest.value, 'state'))}/>"
            for trigger, dest in transitions
        )
        lines.append("  </state>")
    lines.append("</scxml>")
    return "\n".join(lines) + "\n"


#: The committed statechart files (names inside ``statecharts/``) and their renderers.
STATECHART_FILES: dict[str, Callable[[], str]] = {
    "lifecycle.mmd": render_mermaid,
    "lifecycle.scxml": render_scxml,
}


def write_statecharts(directory: str | Path) -> list[Path]:
    """Write every file of :data:`STATECHART_FILES` into ``directory``; returns their paths."""
    target = Path(directory)
    written = []
    for name, render in STATECHART_FILES.items():
        path = target / name
        # newline="" so the files are byte-identical to the renderings on every platform.
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(render())
        written.append(path)
    return written
