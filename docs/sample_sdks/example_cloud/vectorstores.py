"""A client of the demo vector-store service built on google-api-core's HTTP/JSON path.

``create_vector_store`` returns google-api-core's ``Operation`` made by
``google.api_core.operation.from_http_json``, whose refresh and cancel calls go through this
client's ``api_request``, as the Google Cloud HTTP clients do. The demo service answers in
the Azure status-monitor form, so ``api_request`` translates each answer into a
``google.longrunning.Operation`` document (``name``, ``done``, ``metadata``, and a
``response`` or an ``error``) before google-api-core reads it. It exists so that the
google-api-core sample of ``docs/migration.md`` runs against a real service.
"""

from __future__ import annotations

from typing import Any

import requests
from google.api_core import exceptions, operation
from google.api_core.client_options import ClientOptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.api_core.retry import Retry
from google.protobuf import struct_pb2
from google.rpc import code_pb2

__all__ = ["API_VERSION", "VectorStoresClient"]

#: The api-version the demo service accepts.
API_VERSION = "2024-01-01"

#: The type of the operations' metadata and result: a JSON object.
_STRUCT = "type.googleapis.com/google.protobuf.Struct"
_TERMINAL = frozenset({"Succeeded", "Failed", "Canceled"})


class VectorStoresClient:
    """The vector-store client.

    Args:
        client_options: ``api_endpoint`` is the service's base URL.
        session: the ``requests.Session`` to use; a new one when omitted.
    """

    def __init__(
        self,
        *,
        client_options: ClientOptions | dict[str, Any],
        session: requests.Session | None = None,
    ) -> None:
        if isinstance(client_options, dict):
            client_options = ClientOptions(**client_options)
        if not client_options.api_endpoint:
            raise ValueError("client_options needs an api_endpoint")
        self._endpoint = client_options.api_endpoint.rstrip("/")
        self._session = session or requests.Session()

    def create_vector_store(
        self, *, name: str, polling: Retry = DEFAULT_POLLING
    ) -> operation.Operation:
        """Start creating a vector store named ``name``.

        The operation's ``metadata`` and ``result()`` are ``google.protobuf.Struct``
        messages: the service's status and progress, and the created store.

        Raises:
            google.api_core.exceptions.GoogleAPICallError: the service refused the request.
        """
        started = self.api_request("POST", "vector_stores", json={"name": name})
        return operation.from_http_json(
            started,
            self.api_request,
            struct_pb2.Struct,
            metadata_type=struct_pb2.Struct,
            polling=polling,
        )

    def api_request(
        self, method: str, path: str, json: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        """Send one request; the answer as a ``google.longrunning.Operation`` document.

        google-api-core calls it with ``operations/<name>`` (refresh) and
        ``operations/<name>:cancel``, the demo service's own paths.
        """
        document = self._send(method, path, json)
        status = document["status"]
        translated: dict[str, Any] = {
            "name": document["id"],
            "done": status in _TERMINAL,
            "metadata": {
                "@type": _STRUCT,
                "value": {"status": status, "percentComplete": document.get("percentComplete", 0)},
            },
        }
        if status == "Succeeded":
            store = self._send("GET", document["resourceLocation"].lstrip("/"), None)
            translated["response"] = {"@type": _STRUCT, "value": store}
        elif status in ("Failed", "Canceled"):
            translated["error"] = {
                "code": code_pb2.CANCELLED if status == "Canceled" else code_pb2.UNKNOWN,
                "message": document["error"]["message"],
            }
        return translated

    def _send(self, method: str, path: str, json: dict[str, Any] | None) -> dict[str, Any]:
        response = self._session.request(
            method,
            f"{self._endpoint}/{path}",
            params={"api-version": API_VERSION},
            json=json,
            timeout=30,
        )
        if not response.ok:
            raise exceptions.from_http_response(response)
        document: dict[str, Any] = response.json()
        return document

    def close(self) -> None:
        """Close the client's session."""
        self._session.close()
