"""lrokit.temporal without a server: workflow ids, argument checks, registries, the CLI."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import types
from typing import Any

import msgspec
import pytest
import responses

import lrokit
from ci_policy import missing
from lrokit import Operation, Pipeline, RehydrationToken
from lrokit._cli import main
from lrokit.demo import API_VERSION, CreateVectorStoreOperation, VectorStoreClient

ENDPOINT = "https://svc.example.com/"


@pytest.fixture(scope="module")
def lt() -> Any:
    """The ``lrokit.temporal`` package (skipped without the extra; failed in CI)."""
    try:
        import lrokit.temporal as module
    except ImportError as error:
        missing(f"the temporal extra is not installed ({error})")
    return module


def _monitor_token(client: VectorStoreClient, job: str, attempt: int = 0) -> RehydrationToken:
    """A token of the operation whose monitor is ``/operations/<job>``, after ``attempt``."""
    operation = CreateVectorStoreOperation.from_monitor(
        client, f"operations/{job}?api-version={API_VERSION}"
    )
    fields = operation.rehydration_token.fields
    return RehydrationToken(msgspec.structs.replace(fields, attempt=attempt))


def test_workflow_id_is_the_operations_identity(lt: Any) -> None:
    client = VectorStoreClient(ENDPOINT)
    kind = CreateVectorStoreOperation.kind()
    early = _monitor_token(client, "a", attempt=0)
    later = _monitor_token(client, "a", attempt=7)
    other = _monitor_token(client, "b")
    assert lt.workflow_id_for(kind, early) == lt.workflow_id_for(kind, later)
    assert lt.workflow_id_for(kind, str(early)) == lt.workflow_id_for(kind, early)
    assert lt.workflow_id_for(kind, early) != lt.workflow_id_for(kind, other)
    assert lt.workflow_id_for(kind, early) != lt.workflow_id_for("other.Kind", early)
    assert lt.workflow_id_for(kind, early).startswith("lro-CreateVectorStoreOperation-")
    client.close()


def test_track_refuses_an_operation_whose_start_was_not_sent(lt: Any) -> None:
    client = VectorStoreClient(ENDPOINT)
    prepared = CreateVectorStoreOperation.prepare(
        client, "POST", f"vector_stores?api-version={API_VERSION}", json={"name": "x"}
    )
    with pytest.raises(ValueError, match="not been started"):
        asyncio.run(lt.track(None, prepared, task_queue="q"))
    running = CreateVectorStoreOperation.from_monitor(client, "operations/a")
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(lt.track(None, running, task_queue="q", max_attempts=0))
    client.close()


def test_registry_resolves_builds_once_and_refuses_unknown_kinds(lt: Any) -> None:
    built: list[Pipeline] = []

    def factory() -> Any:
        client = types.SimpleNamespace(pipeline=Pipeline(ENDPOINT))
        built.append(client.pipeline)
        return client

    registry = lt.Registry()
    registry.register(CreateVectorStoreOperation, factory)
    kind = CreateVectorStoreOperation.kind()
    assert registry.kinds == (kind,)
    first = registry.resolve(kind)
    assert registry.resolve(kind) == first
    assert len(built) == 1
    with pytest.raises(lt.UnknownKindError, match="no operation class"):
        registry.resolve("nobody.Knows")

    class Impostor(Operation[Any]):
        token_kind = kind

    with pytest.raises(ValueError, match="another operation class"):
        registry.register(Impostor, factory)
    registry.close()


def test_load_registry_by_module_attribute_and_sole_instance(lt: Any) -> None:
    assert lt.load_registry("lrokit.temporal.demo") is sys.modules["lrokit.temporal.demo"].registry
    assert lt.load_registry("lrokit.temporal.demo:registry").kinds == (
        CreateVectorStoreOperation.kind(),
    )
    with pytest.raises(ValueError, match="is not a"):
        lt.load_registry("lrokit.temporal.demo:make_client")
    with pytest.raises(ValueError, match=r"0 lrokit\.temporal\.Registry"):
        lt.load_registry("lrokit.demo")


def test_worker_command_is_registered_and_refuses_a_bad_target(
    lt: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--help"]) == 0
    assert "MODULE" in capsys.readouterr().out
    assert main(["worker", "--temporal", "127.0.0.1:1", "no_such_module_here"]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["fleet-demo", "--help"]) == 0


# -- the activities, run without a server (temporalio.testing.ActivityEnvironment) ----------

SECRET = "S3CR3TSIG"


def _activity_run(lt: Any, operation_type: Any, client: Any, token: str, *, cancel: bool) -> Any:
    """Run the poll (or cancel) activity once for ``token``; its outcome or its error."""
    from temporalio.testing import ActivityEnvironment

    from lrokit.temporal._activities import PollActivities
    from lrokit.temporal._types import PollRequest

    registry = lt.Registry()
    registry.register(operation_type, lambda: client)
    activities = PollActivities(registry)
    request = PollRequest(operation_type.kind(), token)
    run = activities.cancel if cancel else activities.poll
    try:
        return asyncio.run(ActivityEnvironment().run(run, request))
    finally:
        registry.close()


def _started_on_location(client: VectorStoreClient, location: str) -> Any:
    """A demo operation whose start was answered 202 with ``location``."""
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            re.compile(r".*/vector_stores.*"),
            status=202,
            headers={"Location": location},
        )
        return CreateVectorStoreOperation.start(
            client, "POST", f"vector_stores?api-version={API_VERSION}", json={"name": "x"}
        )


class _Cancellable(CreateVectorStoreOperation):
    cancel_request = ("POST", "{monitor}:cancel")


def _signing_client() -> VectorStoreClient:
    """A client whose session adds ``sig=SECRET`` to every request's URL: tokens never see
    it, but the transport's error texts and the answers' URLs do."""
    import requests

    session = requests.Session()
    session.params = {"sig": SECRET}
    return VectorStoreClient(ENDPOINT, session=session)


def _texts(error: BaseException | None) -> str:
    """The texts of ``error`` and of its causes (Temporal stores the whole chain)."""
    texts = []
    while error is not None:
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__
    return "\n".join(texts)


@pytest.mark.parametrize("answer", ["not json", "no answer"])
def test_a_faulty_poll_keeps_the_urls_secret_out_of_the_failure(lt: Any, answer: str) -> None:
    import requests
    from temporalio.exceptions import ApplicationError

    client = _signing_client()
    operation = CreateVectorStoreOperation.from_monitor(
        client, f"operations/a?api-version={API_VERSION}"
    )
    token = str(operation.rehydration_token)
    url = re.compile(r".*/operations/a.*")
    with responses.RequestsMock() as mocked:
        if answer == "not json":
            mocked.add(responses.GET, url, body="<html>oops</html>", content_type="text/html")
        else:
            lost = requests.ConnectionError(
                "HTTPSConnectionPool(host='svc.example.com', port=443): Max retries exceeded"
                f" with url: /operations/a?api-version={API_VERSION}&sig={SECRET}"
            )
            mocked.add(responses.GET, url, body=lost)
        with pytest.raises(ApplicationError) as raised:
            _activity_run(lt, CreateVectorStoreOperation, client, token, cancel=False)
    assert raised.value.type == "TransientFault"
    assert "transient fault" in _texts(raised.value)
    assert SECRET not in _texts(raised.value)
    client.close()


def test_a_cancel_without_answer_is_a_redacted_note_not_a_retry(lt: Any) -> None:
    import requests

    client = _signing_client()
    operation = _Cancellable.from_monitor(client, f"operations/a?api-version={API_VERSION}")
    token = str(operation.rehydration_token)
    lost = requests.ConnectionError(
        "HTTPSConnectionPool(host='svc.example.com', port=443): Max retries exceeded with"
        f" url: /operations/a:cancel?sig={SECRET}"
    )
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, re.compile(r".*:cancel.*"), body=lost)
        outcome = _activity_run(lt, _Cancellable, client, token, cancel=True)
    assert outcome.failure is None
    assert outcome.note is not None
    assert "no answer" in outcome.note
    assert "ConnectionError" in outcome.note
    assert SECRET not in outcome.note
    client.close()


def test_a_location_moved_to_a_foreign_origin_ends_tracking_typed(lt: Any) -> None:
    client = _signing_client()
    operation = _started_on_location(client, f"{ENDPOINT}ops/1")
    token = str(operation.rehydration_token)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.GET,
            re.compile(r".*/ops/1.*"),
            status=202,
            headers={"Location": f"https://evil.example.net/ops/1?sig={SECRET}"},
        )
        outcome = _activity_run(lt, CreateVectorStoreOperation, client, token, cancel=False)
    assert outcome.failure is not None
    assert outcome.failure.type == "UntrustedOrigin"
    assert SECRET not in outcome.failure.message
    assert outcome.token == token  # resumable from where it was
    error = _rebuilt(outcome.failure)
    assert isinstance(error, lrokit.UntrustedOriginError)
    assert "evil.example.net" in str(error)
    client.close()


def _rebuilt(info: Any) -> Exception:
    """The error TrackHandle.result() raises for a workflow failed with ``info``."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    from lrokit.temporal._client import _lrokit_error

    cause = ApplicationError(info.message, msgspec.to_builtins(info), type=info.type)
    return _lrokit_error(WorkflowFailureError(cause=cause))


def test_workflow_id_stays_the_same_after_the_location_moves(lt: Any) -> None:
    client = VectorStoreClient(ENDPOINT)
    kind = CreateVectorStoreOperation.kind()
    operation = _started_on_location(client, f"{ENDPOINT}ops/1")
    before = lt.workflow_id_for(kind, operation.rehydration_token)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.GET,
            re.compile(r".*/ops/1.*"),
            status=202,
            headers={"Location": f"{ENDPOINT}ops/2"},
        )
        operation.update_status()
    moved = operation.rehydration_token
    assert moved.fields.location_url is not None
    assert "ops/2" in moved.fields.location_url
    assert lt.workflow_id_for(kind, moved) == before
    # Another operation started the same way is another workflow.
    other = _started_on_location(client, f"{ENDPOINT}ops/1")
    assert lt.workflow_id_for(kind, other.rehydration_token) != before
    client.close()


def test_wait_ready_gives_up_after_its_timeout_on_a_silent_worker(lt: Any) -> None:
    from lrokit.temporal._fleet_demo import WorkerProcess

    worker = WorkerProcess.__new__(WorkerProcess)
    worker.process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    pid = worker.pid
    try:
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="not ready within"):
            worker.wait_ready(timeout=0.5)
        assert time.monotonic() - began < 30  # it used to block until the child wrote
    finally:
        worker.stop()
    assert worker.process.returncode is not None
    assert worker.pid == pid


def test_worker_command_exits_2_with_one_line_when_temporal_is_unreachable(
    lt: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a free port, closed again: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["worker", "--temporal", f"127.0.0.1:{port}", "lrokit.temporal.demo"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"lrokit worker: cannot connect to Temporal at 127.0.0.1:{port}")
    assert "Traceback" not in captured.err


def test_a_protocol_errors_subclass_survives_the_trip_through_temporal(lt: Any) -> None:
    client = VectorStoreClient(ENDPOINT)
    operation = CreateVectorStoreOperation.from_monitor(
        client, f"operations/a?api-version={API_VERSION}"
    )
    token = str(operation.rehydration_token)
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, re.compile(r".*/operations/a.*"), json={"no": "status"})
        outcome = _activity_run(lt, CreateVectorStoreOperation, client, token, cancel=False)
    assert outcome.failure is not None
    assert outcome.failure.type == "ProtocolError"
    assert outcome.failure.error_class == "MissingStatusError"
    error = _rebuilt(outcome.failure)
    assert isinstance(error, lrokit.MissingStatusError)
    assert error.rehydration_token == token
    too_large = lt.FailureInfo(
        "ProtocolError",
        "too big",
        token,
        error_class="BodyTooLargeError",
        limit=10,
        setting="max_status_body_bytes",
    )
    rebuilt = _rebuilt(too_large)
    assert isinstance(rebuilt, lrokit.BodyTooLargeError)
    assert (rebuilt.limit, rebuilt.setting) == (10, "max_status_body_bytes")
    plain = _rebuilt(lt.FailureInfo("ProtocolError", "odd", token))
    assert type(plain) is lrokit.ProtocolError
    client.close()
