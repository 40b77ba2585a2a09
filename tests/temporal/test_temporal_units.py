"""lrokit.temporal without a server: workflow ids, argument checks, registries, the CLI."""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any

import msgspec
import pytest

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
