"""Helpers that test modules of more than one directory share, imported by name (``from
suite_helpers import ...``) as ``token_helpers`` and ``async_helpers`` are; the fixtures they
go with are in ``conftest.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name`` (of the ``spans`` fixture's exporter), in order."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


def exception_name(event: Event) -> str:
    """The class name an exception event records: the SDK writes ``exception.type`` bare in
    older releases (1.20) and with the module in newer ones; lrokit's contract is the class."""
    recorded = event.attributes["exception.type"] if event.attributes else ""
    assert isinstance(recorded, str)
    return recorded.rsplit(".", 1)[-1]


@functools.cache
def load_checker() -> ModuleType:
    """``docs/check_snippets.py``, the one implementation of the docs' block rules (it is a
    script, not a package module, so it is loaded from its path)."""
    path = Path(__file__).resolve().parents[1] / "docs" / "check_snippets.py"
    spec = importlib.util.spec_from_file_location("check_snippets", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module
