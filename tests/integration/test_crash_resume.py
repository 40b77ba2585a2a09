"""Crash-safe resume across processes, with signed tokens.

Process A (a subprocess) starts an operation against the embedded ``DemoService`` running in
this test process, persists its token to a file (atomically, from a hook, as soon as the
start response arrived) and is killed with SIGKILL in the middle of its wait. Process B
(another subprocess) restores the operation from the file and finishes it with the right
value. The service's clock is a fake one that this test moves, so the operation cannot
complete while A is alive and completes at once for B.

The second test covers the narrower window before the start response: A persists the
``NotStarted`` token of an ``idempotent`` start, and B sends the start again with the same
``Operation-Id``, which the service recognises: one operation, not two.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lrokit import RehydrationToken, TokenSigner
from lrokit.demo import DemoService

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

#: Bounds of every wait in this module (seconds).
PROCESS_TIMEOUT = 30.0
STEP = 0.02

PROCESS_A = textwrap.dedent(
    """
    import os, sys
    from lrokit import PollingPolicy, TokenPolicy, TokenSigner
    from lrokit.demo import CreateVectorStoreOperation, VectorStoreClient

    endpoint, path, name, mode = sys.argv[1:5]
    signer = TokenSigner({"crash": bytes.fromhex(os.environ["LROKIT_TEST_KEY"])})

    def persist(token):
        # Atomic: a kill leaves the old file or the new one, never half a token.
        with open(path + ".tmp", "w") as f:
            f.write(str(token))
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)

    policy = PollingPolicy(interval=0.02, floor=0.0)
    with VectorStoreClient(endpoint, polling=policy, tokens=TokenPolicy(signer=signer)) as client:
        if mode == "after-start":
            # The hook runs as soon as the start response is applied, before any wait.
            client.create_vector_store(
                name,
                wait_until_completed=True,
                polling_interval=0.02,
                before_start=lambda op: op.on_change(
                    lambda change: persist(change.operation.rehydration_token)
                ),
            )
        else:
            operation = CreateVectorStoreOperation.prepare(
                client,
                "POST",
                "vector_stores?api-version=2024-01-01",
                json={"name": name, "file_ids": []},
                idempotent=True,
            )
            persist(operation.rehydration_token)  # before the start is sent
            operation.wait_for_completion(polling_interval=0.02)
    print("completed", flush=True)  # never reached: the test kills this process first
    """
)

PROCESS_B = textwrap.dedent(
    """
    import json, os, sys
    from lrokit import TokenPolicy, TokenSigner
    from lrokit.demo import CreateVectorStoreOperation, VectorStoreClient

    endpoint, path, name = sys.argv[1:4]
    signer = TokenSigner({"crash": bytes.fromhex(os.environ["LROKIT_TEST_KEY"])})
    with open(path) as f:
        token = f.read()
    with VectorStoreClient(endpoint, tokens=TokenPolicy(signer=signer)) as client:
        operation = CreateVectorStoreOperation.rehydrate(
            client, token, json={"name": name, "file_ids": []}
        )
        restored_state = operation.state.value
        store = operation.wait_for_completion(polling_interval=0.02, timeout=20).value
    print(json.dumps({"restored": restored_state, "id": store.id, "name": store.name}))
    """
)


class ServiceClock:
    """The demo service's monotonic clock; only this test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ServiceClock:
    return ServiceClock()


@pytest.fixture
def service(clock: ServiceClock) -> Iterator[DemoService]:
    with DemoService(duration=60.0, clock=clock, retry_after=None) as svc:
        yield svc
    assert not svc.running


@pytest.fixture
def key() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def run_python(key: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -c CODE ARGS...`` with the test key; every process is ended afterwards."""
    started: list[subprocess.Popen[str]] = []
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "LROKIT_TEST_KEY": key,
        "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p),
    }

    def run(code: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=PROCESS_TIMEOUT)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(STEP)


def polls(service: DemoService) -> int:
    return sum(r.method == "GET" and r.path.startswith("/operations/") for r in service.requests)


def kill(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGKILL)
    stdout, _ = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert "completed" not in stdout
    return stdout


def finish(
    run_python: Callable[..., subprocess.Popen[str]], service: DemoService, path: Path, name: str
) -> dict[str, str]:
    process = run_python(PROCESS_B, service.endpoint, str(path), name)
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 0, stderr
    return json.loads(stdout)  # type: ignore[no-any-return]


def test_killed_mid_wait_resumes_in_another_process(
    service: DemoService,
    clock: ServiceClock,
    key: str,
    run_python: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    a = run_python(PROCESS_A, service.endpoint, str(path), "crash-safe", "after-start")
    # A has persisted its token and is polling: it is in the middle of its wait.
    wait_until(lambda: (path.exists() and polls(service) >= 3) or a.poll() is not None, "A")
    assert a.poll() is None, a.communicate()[1]
    kill(a)
    polls_by_a = polls(service)

    token = RehydrationToken.from_str(
        path.read_text(), signer=TokenSigner({"crash": bytes.fromhex(key)})
    )
    assert token.fields.state == "Running"
    assert token.fields.polling_url is not None
    assert token.fields.polling_url.startswith("/operations/")

    clock.now += 120.0  # the service finishes the work while nobody is watching
    result = finish(run_python, service, path, "crash-safe")
    assert result["restored"] == "Running"
    assert result["name"] == "crash-safe"
    (record,) = service.operations()
    assert record.status == "Succeeded"
    assert result["id"] == record.store_id
    starts = [r for r in service.requests if r.method == "POST"]
    assert len(starts) == 1  # B did not start the operation again
    assert polls(service) > polls_by_a


def test_killed_before_the_start_was_answered_resumes_without_a_second_operation(
    service: DemoService,
    clock: ServiceClock,
    run_python: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    a = run_python(PROCESS_A, service.endpoint, str(path), "exactly-once", "before-start")
    wait_until(lambda: polls(service) >= 2 or a.poll() is not None, "A to start and poll")
    assert a.poll() is None, a.communicate()[1]
    kill(a)
    document = path.read_text()
    assert document.count(".") == 2  # signed

    clock.now += 120.0
    result = finish(run_python, service, path, "exactly-once")
    assert result["restored"] == "NotStarted"
    assert result["name"] == "exactly-once"
    (record,) = service.operations()  # the repeated start found A's operation
    assert record.operation_id is not None
    starts = [r for r in service.requests if r.method == "POST"]
    assert len(starts) == 2
    assert {r.headers["operation-id"] for r in starts} == {record.operation_id}
