"""A client of the demo vector-store service built on azure-core, as a generated Azure SDK is.

``begin_create_vector_store`` sends the start request through the client's pipeline and
returns azure-core's ``LROPoller`` with ``LROBasePolling``, or rebuilds that poller from a
continuation token: the code path of the ``begin_*`` methods of the Azure SDKs. It exists so
that the azure-core sample of ``docs/migration.md`` runs against a real service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AzureKeyCredentialPolicy, SansIOHTTPPolicy
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest

__all__ = ["API_VERSION", "VectorStore", "VectorStoresClient"]

#: The api-version the demo service accepts.
API_VERSION = "2024-01-01"


@dataclass(frozen=True)
class VectorStore:
    """A created vector store, as the SDK's model."""

    id: str
    name: str
    status: str

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> VectorStore:
        """The model of the service's JSON document."""
        return cls(id=document["id"], name=document["name"], status=document["status"])


class _ApiVersionPolicy(SansIOHTTPPolicy[Any, Any]):
    """Adds ``api-version`` to every request that lacks it.

    The demo service wants it on every URL, and the ``resourceLocation`` it answers with
    (which ``LROBasePolling`` gets as the final resource) has none.
    """

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if "api-version=" not in request.http_request.url:
            request.http_request.format_parameters({"api-version": API_VERSION})


class VectorStoresClient:
    """The vector-store client.

    Args:
        endpoint: the service's base URL.
        credential: the service's key, sent in the ``api-key`` header.
    """

    def __init__(self, endpoint: str, credential: AzureKeyCredential) -> None:
        policies = [
            _ApiVersionPolicy(),
            AzureKeyCredentialPolicy(credential, "api-key"),
        ]
        # As generated code does: the endpoint is a URL parameter, which also resolves the
        # relative URLs the service answers with (its Operation-Location is one).
        self._url_parameters = {"endpoint": endpoint.rstrip("/")}
        self._client: PipelineClient[Any, Any] = PipelineClient(
            "{endpoint}", per_call_policies=policies
        )

    def begin_create_vector_store(
        self,
        body: dict[str, Any] | None,
        *,
        polling_interval: float = 30,
        continuation_token: str | None = None,
    ) -> LROPoller[VectorStore]:
        """Start creating a vector store, or resume from ``continuation_token``.

        Args:
            body: the store to create (``{"name": ...}``); unused when resuming.
            polling_interval: seconds between polls when the service sends no Retry-After.
            continuation_token: a token of ``LROPoller.continuation_token()``.

        Raises:
            HttpResponseError: the service refused the start request.
        """
        polling = LROBasePolling(polling_interval, path_format_arguments=self._url_parameters)
        if continuation_token is not None:
            return LROPoller.from_continuation_token(
                polling_method=polling,
                continuation_token=continuation_token,
                client=self._client,
                deserialization_callback=_vector_store,
            )
        request = HttpRequest(
            "POST", "/vector_stores", params={"api-version": API_VERSION}, json=body
        )
        # What generated code does: the client's endpoint, then its pipeline.
        request.url = self._client.format_url(request.url, **self._url_parameters)
        initial = self._client._pipeline.run(request)
        if initial.http_response.status_code not in (200, 201, 202):
            raise HttpResponseError(response=initial.http_response)
        return LROPoller(self._client, initial, _vector_store, polling)

    def close(self) -> None:
        """Close the client's transport."""
        self._client.close()


def _vector_store(pipeline_response: PipelineResponse[Any, Any]) -> VectorStore:
    return VectorStore.from_json(pipeline_response.http_response.json())
