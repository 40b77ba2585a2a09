"""The worker's registry: which operation classes it tracks, and how it builds their clients.

The SDK client (with its credentials) is built inside the worker process, by a factory that
user code registers; a tracking workflow's history holds only the token and the operation's
kind, never a header, a key or a client setting.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._async import AsyncOperation
from .._sync import Operation

__all__ = ["OperationClass", "PollRecord", "Registry", "UnknownKindError", "load_registry"]

#: What a registry tracks: an LRO subclient, sync or async.
OperationClass = type[Operation[Any]] | type[AsyncOperation[Any]]


class UnknownKindError(LookupError):
    """No operation class of that kind is registered with the worker's registry."""


@dataclass(frozen=True)
class PollRecord:
    """One poll a worker made, as :class:`Registry`'s ``on_poll`` hook receives it.

    Attributes:
        kind: the operation class's token kind.
        state: the state after the poll (an ``OperationState`` value).
        due_at: when the workflow planned the poll (seconds since the epoch), or None.
        started_at: when the worker began it (seconds since the epoch).
        finished_at: when its answer had been applied.
        attempt: the activity attempt (1 unless the poll is being retried).
    """

    kind: str
    state: str
    due_at: float | None
    started_at: float
    finished_at: float
    attempt: int


class _Entry:
    """One registered class and its client, built on first use and then shared."""

    __slots__ = ("client", "factory", "lock", "operation_type")

    def __init__(self, operation_type: OperationClass, factory: Callable[[], Any]):
        self.operation_type = operation_type
        self.factory = factory
        self.client: Any = None
        self.lock = threading.Lock()

    def get_client(self) -> Any:
        if self.client is None:
            with self.lock:
                if self.client is None:
                    self.client = self.factory()
        return self.client


class Registry:
    """The operation classes a worker can track, each with the factory of its SDK client.

    Register each LRO subclient (an :class:`~lrokit.Operation` or
    :class:`~lrokit.AsyncOperation` subclass) with a function that builds the client its
    ``rehydrate`` takes. The factory runs in the worker, once, on the first poll of that
    kind: read credentials there (environment, a secret store), and configure token signing
    on the client's pipeline (``tokens=TokenPolicy(signer=...)``) so that a worker refuses
    tokens altered in Temporal's history.

    Args:
        on_poll: called with a :class:`PollRecord` after every poll the worker makes
            (metrics); it runs on the worker's event loop and must not block.
    """

    def __init__(self, *, on_poll: Callable[[PollRecord], object] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self.on_poll = on_poll

    def register(self, operation_type: OperationClass, client: Callable[[], Any]) -> None:
        """Track operations of ``operation_type`` with the client ``client()`` builds.

        Raises:
            ValueError: a class of the same kind is registered already.
        """
        kind = operation_type.kind()
        known = self._entries.get(kind)
        if known is not None and known.operation_type is not operation_type:
            raise ValueError(f"another operation class of kind {kind!r} is registered")
        self._entries[kind] = _Entry(operation_type, client)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds registered, sorted."""
        return tuple(sorted(self._entries))

    def resolve(self, kind: str) -> tuple[OperationClass, Any]:
        """The class registered for ``kind`` and its client (built now if it was not).

        Raises:
            UnknownKindError: nothing is registered for ``kind``.
        """
        entry = self._entries.get(kind)
        if entry is None:
            raise UnknownKindError(
                f"this worker has no operation class of kind {kind!r} (it knows"
                f" {list(self.kinds)}); register it with Registry.register()"
            )
        return entry.operation_type, entry.get_client()

    def close(self) -> None:
        """Close the clients built so far (those with a ``close()`` method)."""
        for entry in self._entries.values():
            client, entry.client = entry.client, None
            close = getattr(client, "close", None)
            if callable(close):
                close()

    async def aclose(self) -> None:
        """Close the clients built so far: ``await aclose()`` (async clients), else
        ``close()``."""
        for entry in self._entries.values():
            client, entry.client = entry.client, None
            aclose = getattr(client, "aclose", None)
            if callable(aclose):
                await aclose()
                continue
            close = getattr(client, "close", None)
            if callable(close):
                close()

    def __repr__(self) -> str:
        return f"Registry(kinds={list(self.kinds)})"


def load_registry(target: str) -> Registry:
    """The registry named by ``target``: ``package.module`` or ``package.module:attribute``.

    Without an attribute, the module's ``registry`` is used, else its only
    :class:`Registry`.

    Raises:
        ValueError: the module has no such registry.
        ImportError: the module cannot be imported.
    """
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, Registry):
            raise ValueError(f"{target!r} is not a lrokit.temporal.Registry")
        return found
    named = getattr(module, "registry", None)
    if isinstance(named, Registry):
        return named
    registries = [value for value in vars(module).values() if isinstance(value, Registry)]
    if len(registries) != 1:
        raise ValueError(
            f"module {module_name!r} has {len(registries)} lrokit.temporal.Registry objects:"
            " name one as MODULE:ATTRIBUTE"
        )
    return registries[0]
