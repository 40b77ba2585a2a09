"""A runnable example of lrokit: an embedded LRO service and a sample SDK client for it.

:class:`DemoService` is a small vector-store service on ``127.0.0.1`` that answers like an
Azure long-running-operation service (``Operation-Location``, a status monitor, a final
resource). :class:`VectorStoreClient` is what an SDK author would write on top of lrokit:
a client holding a :class:`lrokit.Pipeline` and one :class:`lrokit.Operation` subclass,
:class:`CreateVectorStoreOperation`, per LRO.

``lrokit demo`` runs the six usage patterns of the .NET System.ClientModel
``OperationResult`` pattern against it; ``lrokit serve`` serves
it until interrupted.
"""

from __future__ import annotations

from ._client import CreateVectorStoreOperation, FileCounts, VectorStore, VectorStoreClient
from ._service import API_VERSION, DemoService, Fault, FaultPlan, OperationRecord, RecordedRequest

__all__ = [
    "API_VERSION",
    "CreateVectorStoreOperation",
    "DemoService",
    "Fault",
    "FaultPlan",
    "FileCounts",
    "OperationRecord",
    "RecordedRequest",
    "VectorStore",
    "VectorStoreClient",
]
