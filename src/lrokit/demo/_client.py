"""A sample SDK client built on lrokit: the Python spelling of the vector-store client
of the .NET System.ClientModel ``OperationResult`` samples.

This is what an SDK author writes per service: a client that holds a :class:`lrokit.Pipeline`,
one :class:`lrokit.Operation` subclass per LRO (the "LRO subclient") naming the value type,
and service methods taking ``wait_until_completed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
import requests

from .._pipeline import Pipeline
from .._sync import Operation
from ._service import API_VERSION

__all__ = ["CreateVectorStoreOperation", "FileCounts", "VectorStore", "VectorStoreClient"]


class FileCounts(msgspec.Struct, frozen=True):
    """How many files of a vector store are in each processing state."""

    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(msgspec.Struct, frozen=True):
    """A created vector store: the value of a :class:`CreateVectorStoreOperation`."""

    id: str
    name: str
    status: str
    file_counts: FileCounts = FileCounts()
    created_at: int = 0


class CreateVectorStoreOperation(Operation[VectorStore]):
    """The LRO subclient of :meth:`VectorStoreClient.create_vector_store`.

    Everything comes from :class:`lrokit.Operation`; this class only names the value type
    and the kind its tokens carry. Resume one elsewhere with
    ``CreateVectorStoreOperation.rehydrate(client, token)``.
    """

    value_type = VectorStore
    #: The name in its tokens, fixed so that moving or renaming the class keeps them valid.
    token_kind = "lrokit.demo.CreateVectorStoreOperation"


class VectorStoreClient:
    """A client of the demo vector-store service (see :class:`lrokit.demo.DemoService`).

    Args:
        endpoint: the service's base URL.
        session: the ``requests.Session`` to use; a new one when omitted.
        api_version: the ``api-version`` sent with the start request (lrokit carries it
            onto polling URLs that lack it).
        pipeline_kwargs: passed to :class:`lrokit.Pipeline` (``polling``, ``clock``,
            ``sleep``, ``headers``, ...).
    """

    def __init__(
        self,
        endpoint: str,
        session: requests.Session | None = None,
        *,
        api_version: str = API_VERSION,
        **pipeline_kwargs: Any,
    ) -> None:
        self.pipeline = Pipeline(endpoint, session, **pipeline_kwargs)
        self.api_version = api_version

    def create_vector_store(
        self,
        name: str,
        *,
        wait_until_completed: bool,
        polling_interval: float | timedelta | None = None,
        file_ids: Sequence[str] = (),
        before_start: Callable[[CreateVectorStoreOperation], object] | None = None,
    ) -> CreateVectorStoreOperation:
        """Start creating a vector store; with ``wait_until_completed``, also wait for it.

        Args:
            name: the store's name.
            wait_until_completed: poll until the operation completes before returning.
            polling_interval: the interval for that wait (a longer server hint wins).
            file_ids: files to add to the store.
            before_start: called with the operation before the start request is sent, to
                subscribe hooks that should see its first transition (NotStarted -> Running).

        Returns:
            The operation: completed when ``wait_until_completed``, else usually Running.

        Raises:
            lrokit.StartRejectedError: the service refused the request.
            lrokit.HookError: a hook raised (the operation's state is still consistent).
        """
        query = urlencode({"api-version": self.api_version})
        operation = CreateVectorStoreOperation.prepare(
            self,
            "POST",
            f"vector_stores?{query}",
            json={"name": name, "file_ids": list(file_ids)},
        )
        if before_start is not None:
            before_start(operation)
        operation.send_start()
        if wait_until_completed:
            operation.wait_for_completion(polling_interval)
        return operation

    def close(self) -> None:
        """Close the underlying session."""
        self.pipeline.close()

    def __enter__(self) -> VectorStoreClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VectorStoreClient({self.pipeline.endpoint!r})"
