"""Helpers that test modules of more than one directory share, imported by name (``from
suite_helpers import ...``) as ``token_helpers`` and ``async_helpers`` are; the fixtures they
go with are in ``conftest.py``.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name`` (of the ``spans`` fixture's exporter), in order."""
    return [s for s in exporter.get_finished_spans() if s.name == name]
