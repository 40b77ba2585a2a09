"""The sample SDKs of ``docs/sample_sdks`` behave as SDKs built on their libraries do.

``docs/migration.md`` compares lrokit with azure-core and google-api-core through these two
clients, and its samples only have to exit cleanly; here each client's values, errors,
cancellation and requests are checked against the demo service on 127.0.0.1, so the
comparison shows those libraries' real behaviour.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lrokit.demo import DemoService

SAMPLE_SDKS = Path(__file__).resolve().parents[1] / "docs" / "sample_sdks"


@pytest.fixture
def service() -> Iterator[DemoService]:
    # Operations complete on their third status poll: no waiting on the service's clock.
    with DemoService(polls_to_complete=3, retry_after=None) as running:
        yield running


def _import(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(SAMPLE_SDKS))
    return importlib.import_module(name)


def _paths(service: DemoService) -> list[str]:
    return [f"{request.method} {request.path.split('?')[0]}" for request in service.requests]


# -- contoso.vectorstores: azure-core ------------------------------------------------------


@pytest.fixture
def contoso(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _import(monkeypatch, "contoso.vectorstores")


def test_contoso_poller_gets_the_store_through_azure_core(
    contoso: ModuleType, service: DemoService
) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure.core.polling import LROPoller

    client = contoso.VectorStoresClient(service.endpoint, AzureKeyCredential("secret"))
    poller = client.begin_create_vector_store({"name": "docs"}, polling_interval=0)
    assert isinstance(poller, LROPoller)
    store = poller.result(timeout=10)
    client.close()

    assert store == contoso.VectorStore(id=store.id, name="docs", status="completed")
    assert poller.done()
    assert poller.status() == "Succeeded"
    (operation_id,) = {path.split("/")[2] for path in _paths(service)[1:-1]}
    assert _paths(service) == [
        "POST /vector_stores",
        *[f"GET /operations/{operation_id}"] * 3,
        f"GET /vector_stores/{store.id}",  # the resourceLocation, as LROBasePolling does
    ]
    assert all(request.headers["api-key"] == "secret" for request in service.requests)
    assert all("api-version=2024-01-01" in request.path for request in service.requests)


def test_contoso_resumes_from_a_continuation_token(
    contoso: ModuleType, service: DemoService
) -> None:
    from azure.core.credentials import AzureKeyCredential

    client = contoso.VectorStoresClient(service.endpoint, AzureKeyCredential("secret"))
    first = client.begin_create_vector_store({"name": "docs"}, polling_interval=0)
    token = first.continuation_token()
    resumed = client.begin_create_vector_store(None, continuation_token=token, polling_interval=0)
    assert resumed.result(timeout=10) == first.result(timeout=10)
    client.close()
    assert [path for path in _paths(service) if path.startswith("POST")] == ["POST /vector_stores"]


def test_contoso_failed_operation_raises_http_response_error(
    contoso: ModuleType, service: DemoService
) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError

    client = contoso.VectorStoresClient(service.endpoint, AzureKeyCredential("secret"))
    poller = client.begin_create_vector_store({"name": "fail-docs"}, polling_interval=0)
    with pytest.raises(HttpResponseError):
        poller.result(timeout=10)
    client.close()
    assert poller.status() == "Failed"


def test_contoso_refused_start_raises(contoso: ModuleType, service: DemoService) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError

    client = contoso.VectorStoresClient(service.endpoint, AzureKeyCredential("secret"))
    with pytest.raises(HttpResponseError) as raised:
        client.begin_create_vector_store({"no_name": True}, polling_interval=0)
    client.close()
    assert raised.value.status_code == 400


# -- example_cloud.vectorstores: google-api-core -------------------------------------------


@pytest.fixture
def example_cloud(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _import(monkeypatch, "example_cloud.vectorstores")


def _no_delay() -> object:
    from google.api_core.future.polling import DEFAULT_POLLING

    return DEFAULT_POLLING.with_delay(initial=0.001, maximum=0.001, multiplier=1.0)


def test_example_cloud_operation_gets_the_store_through_google_api_core(
    example_cloud: ModuleType, service: DemoService
) -> None:
    from google.api_core import operation
    from google.protobuf import struct_pb2

    client = example_cloud.VectorStoresClient(client_options={"api_endpoint": service.endpoint})
    future = client.create_vector_store(name="docs", polling=_no_delay())
    assert isinstance(future, operation.Operation)
    assert future.metadata["status"] == "NotStarted"
    store = future.result(timeout=10)
    client.close()

    assert isinstance(store, struct_pb2.Struct)
    assert store["name"] == "docs"
    assert store["id"].startswith("vs_")
    assert future.metadata["status"] == "Succeeded"
    assert future.metadata["percentComplete"] == 100
    assert _paths(service)[0] == "POST /vector_stores"
    assert _paths(service)[-1] == f"GET /vector_stores/{store['id']}"
    assert _paths(service).count(f"GET /operations/{future.operation.name}") == 3


def test_example_cloud_failed_operation_raises_the_services_error(
    example_cloud: ModuleType, service: DemoService
) -> None:
    from google.api_core import exceptions

    client = example_cloud.VectorStoresClient(client_options={"api_endpoint": service.endpoint})
    future = client.create_vector_store(name="fail-docs", polling=_no_delay())
    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        future.result(timeout=10)
    client.close()
    assert "could not be created" in raised.value.message
    assert not future.cancelled()


def test_example_cloud_cancel_asks_the_service(
    example_cloud: ModuleType, service: DemoService
) -> None:
    client = example_cloud.VectorStoresClient(client_options={"api_endpoint": service.endpoint})
    future = client.create_vector_store(name="docs", polling=_no_delay())
    assert future.cancel() is True
    assert future.cancelled() is True
    assert future.cancel() is False  # already complete: no second cancel request
    client.close()
    name = future.operation.name
    assert _paths(service).count(f"POST /operations/{name}:cancel") == 1


def test_example_cloud_needs_an_endpoint(example_cloud: ModuleType) -> None:
    with pytest.raises(ValueError, match="api_endpoint"):
        example_cloud.VectorStoresClient(client_options={})
