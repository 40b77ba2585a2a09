"""``lrokit fleet-demo``: a thousand operations tracked by two workers, one of them killed.

It starts everything on 127.0.0.1 (a Temporal dev server from the extra, the demo service,
two ``lrokit worker`` processes), creates the operations (one start request each, sent by
this process), tracks them, SIGKILLs one worker when half have completed, and checks that
every operation finished with its value and that the service created each exactly once.
Everything it started is stopped by its process id, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from temporalio.client import Client

from ..demo import DemoService, VectorStore, VectorStoreClient
from ._client import TrackHandle, track
from ._devserver import DevServer

__all__ = ["WorkerProcess", "run_fleet_demo"]

#: Seconds a poll may take in the demo: a poll cut off by the killed worker is retried
#: after this long on the other one.
DEMO_POLL_TIMEOUT = 5.0


class WorkerProcess:
    """An ``lrokit worker`` in a child process, started and stopped by its process id.

    Args:
        address: the Temporal frontend.
        task_queue: the task queue.
        target: the registry's ``MODULE[:ATTRIBUTE]``.
        env: the environment of the worker (its credentials, for instance).
        options: more ``lrokit worker`` options.
    """

    def __init__(
        self,
        address: str,
        task_queue: str,
        target: str,
        *,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        command = [sys.executable, "-m", "lrokit", "worker", "--temporal", address]
        command += ["--task-queue", task_queue, *options, target]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the worker's ready line.

        Reads the worker's output as it comes (never blocking past ``timeout``); the caller
        stops the worker when this raises.

        Raises:
            RuntimeError: the worker exited, or was not ready within ``timeout``.
        """
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"worker {self.pid} exited with {self.process.wait()}")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if any(line.startswith(b"lrokit worker tracking") for line in lines):
                    return
        raise RuntimeError(f"worker {self.pid} was not ready within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the worker (no clean shutdown: polls in flight are cut off)."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the worker and wait for it (SIGKILL after 15 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


def run_fleet_demo(
    out: Callable[[str], object],
    *,
    operations: int = 1000,
    duration: float = 3.0,
    retry_after: float = 1.0,
) -> int:
    """Run the demo, printing with ``out``; returns 0 when nothing was lost or duplicated."""
    api_key = secrets.token_hex(16)  # sent by the workers, never in Temporal's history
    with DevServer() as server, DemoService(duration=duration, retry_after=retry_after) as svc:
        out(f"Temporal dev server on {server.address} (pid {server.pid})")
        out(f"demo service on {svc.endpoint}")
        env = {**os.environ, "LROKIT_DEMO_ENDPOINT": svc.endpoint, "LROKIT_DEMO_API_KEY": api_key}
        task_queue = "lrokit-fleet-demo"
        workers: list[WorkerProcess] = []
        try:
            for _ in range(2):
                workers.append(
                    WorkerProcess(
                        server.address,
                        task_queue,
                        "lrokit.temporal.demo",
                        env=env,
                        options=["--sticky-timeout", "2"],
                    )
                )
            for worker in workers:
                worker.wait_ready()
                out(f"worker ready (pid {worker.pid})")
            counts = asyncio.run(
                _drive(out, server.address, task_queue, svc, workers[0], operations, api_key)
            )
        finally:
            for worker in workers:
                worker.stop()
        created = len(svc.operations())
        names = [record.name for record in svc.operations()]
    duplicates = created - len(set(names))
    lost = operations - counts["completed"]
    out(
        f"started {operations}, completed {counts['completed']}, lost {lost},"
        f" duplicate creations {duplicates} (service created {created} operations)"
    )
    out("stopped the workers, the demo service and the Temporal dev server")
    return 0 if lost == 0 and duplicates == 0 and created == operations else 1


async def _drive(  # noqa: PLR0917 - one private call site
    out: Callable[[str], object],
    address: str,
    task_queue: str,
    service: DemoService,
    victim: WorkerProcess,
    operations: int,
    api_key: str,
) -> dict[str, int]:
    client = await Client.connect(address)
    sdk = VectorStoreClient(service.endpoint, headers={"Authorization": f"Bearer {api_key}"})
    started = time.monotonic()
    gate = asyncio.Semaphore(32)

    async def start(index: int) -> TrackHandle[VectorStore]:
        async with gate:
            name = f"store-{index:05d}"
            operation = await asyncio.to_thread(
                sdk.create_vector_store, name, wait_until_completed=False
            )
            return await track(
                client, operation, task_queue=task_queue, poll_timeout=DEMO_POLL_TIMEOUT
            )

    handles = await asyncio.gather(*(start(i) for i in range(operations)))
    out(f"created and tracking {operations} operations ({time.monotonic() - started:.1f} s)")
    completed = 0
    killed = False

    # Each result() of a pending workflow is a long poll of the server, which limits them
    # per namespace: a bounded number wait at a time.
    waiting = asyncio.Semaphore(256)

    async def finish(index: int, handle: TrackHandle[VectorStore]) -> None:
        nonlocal completed, killed
        async with waiting:
            value = await handle.result()
        if value.name == f"store-{index:05d}":
            completed += 1
        if not killed and completed >= operations // 2:
            killed = True
            victim.kill()
            out(f"killed worker pid {victim.pid} with SIGKILL after {completed} completed")

    async def progress() -> None:
        while True:
            await asyncio.sleep(2)
            out(f"  {completed}/{operations} completed ({time.monotonic() - started:.0f} s)")

    reporter = asyncio.ensure_future(progress())
    try:
        await asyncio.gather(*(finish(i, h) for i, h in enumerate(handles)))
    finally:
        reporter.cancel()
        sdk.close()
    out(f"all {operations} tracked operations ended ({time.monotonic() - started:.1f} s)")
    return {"completed": completed}
