"""Running a worker: the tracking workflow and its activities for a registry's classes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from ._activities import PollActivities
from ._registry import Registry
from ._workflow import TrackWorkflow

__all__ = ["create_worker", "run_worker"]


def create_worker(
    client: Client,
    *,
    task_queue: str,
    registry: Registry,
    max_concurrent_polls: int = 100,
    max_cached_workflows: int = 1000,
    sticky_timeout: float | None = None,
    **worker_options: Any,
) -> Worker:
    """A Temporal worker that tracks the operation classes of ``registry``.

    Run it with ``await worker.run()`` or ``async with worker: ...``. Requests of sync
    operation classes go through a thread pool of ``max_concurrent_polls`` threads (the
    worker's ``activity_executor``); :func:`run_worker` shuts it down when the worker
    stops; a caller running the worker itself shuts it down after the run
    (``worker.config()["activity_executor"].shutdown()``).

    Args:
        client: the Temporal client.
        task_queue: the task queue that :func:`~lrokit.temporal.track` starts workflows on.
        registry: the operation classes and the factories of their clients.
        max_concurrent_polls: polls in flight at most (Temporal's concurrent activities).
        max_cached_workflows: tracking workflows kept in memory between their polls; the
            others are replayed from their (short) history when their timer fires.
        sticky_timeout: seconds a workflow task waits for this worker before any worker may
            take it (Temporal's sticky schedule-to-start timeout); the SDK's default when
            None. Shorter means faster recovery after this worker dies.
        worker_options: passed to ``temporalio.worker.Worker``.
    """
    executor = ThreadPoolExecutor(max_concurrent_polls, thread_name_prefix="lrokit-poll")
    activities = PollActivities(registry, executor)
    if sticky_timeout is not None:
        worker_options["sticky_queue_schedule_to_start_timeout"] = timedelta(seconds=sticky_timeout)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TrackWorkflow],
        activities=activities.all,
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_polls,
        max_cached_workflows=max_cached_workflows,
        **worker_options,
    )


async def run_worker(
    address: str,
    *,
    task_queue: str,
    registry: Registry,
    namespace: str = "default",
    ready: Callable[[], object] | None = None,
    handle_signals: bool = True,
    **options: Any,
) -> None:
    """Connect to Temporal at ``address`` and run a tracking worker until SIGINT or SIGTERM.

    On a signal the worker stops taking tasks, lets the polls in flight finish, shuts its
    thread pool down, closes the registry's clients (:meth:`Registry.aclose`) and returns.

    Args:
        address: the Temporal frontend, ``host:port``.
        task_queue: the task queue to listen on.
        registry: the operation classes and client factories.
        namespace: the Temporal namespace.
        ready: called once the worker is polling.
        handle_signals: stop on SIGINT and SIGTERM (the main thread only).
        options: passed to :func:`create_worker`.

    Raises:
        ConnectionError: Temporal cannot be reached at ``address``.
    """
    try:
        client = await Client.connect(address, namespace=namespace)
    except RuntimeError as error:  # what the SDK's core raises for a failed connect
        raise ConnectionError(f"cannot connect to Temporal at {address}: {error}") from error
    worker = create_worker(client, task_queue=task_queue, registry=registry, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for number in handled:
        loop.add_signal_handler(number, stop.set)
    try:
        async with worker:
            if ready is not None:
                ready()
            await stop.wait()
    finally:
        for number in handled:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(number)
        executor = worker.config().get("activity_executor")
        if executor is not None:
            executor.shutdown(wait=False)  # the polls in flight have finished
        await registry.aclose()
