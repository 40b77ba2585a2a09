"""The worker registry of ``bench_fleet.py``: the demo operation, and every poll's lateness
(seconds from the time the workflow planned it to the time the worker began it) appended
to the file ``$LROKIT_BENCH_POLL_LOG.<pid>``."""

from __future__ import annotations

import os

from lrokit.demo import CreateVectorStoreOperation
from lrokit.temporal import PollRecord, Registry
from lrokit.temporal.demo import make_client

_log = open(f"{os.environ['LROKIT_BENCH_POLL_LOG']}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115


def record(poll: PollRecord) -> None:
    """One line per poll: its lateness in seconds."""
    if poll.due_at is not None:
        _log.write(f"{poll.started_at - poll.due_at:.6f}\n")


registry = Registry(on_poll=record)
registry.register(CreateVectorStoreOperation, make_client)
