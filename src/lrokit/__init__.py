"""lrokit: long-running operations over HTTP as explicit, resumable state machines.

Start with :class:`Operation` (subclass it per LRO) and :class:`Pipeline`; see the docs for
the six usage patterns, hooks, manual driving and rehydration.

The async names (:class:`AsyncOperation`, :class:`AsyncPipeline`, ...) are loaded on first
use (PEP 562), so that ``import lrokit`` does not import asyncio for sync-only programs.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import TYPE_CHECKING, Any

from ._base import PollUpdate
from ._core import Action, Decision, FinalStateVia, OperationCore, PollingProtocol, ProtocolOptions
from ._delay import (
    DelaySequence,
    DelaySource,
    DelayStrategy,
    ExponentialDelay,
    FixedDelay,
    PollingDelay,
    PollingPolicy,
)
from ._exceptions import (
    BodyTooLargeError,
    CancelNotSupportedError,
    CancelRejectedError,
    HookError,
    HttpResponseError,
    InvalidTokenError,
    InvalidTransitionError,
    LroError,
    MalformedBodyError,
    MissingStatusError,
    NothingToPollError,
    OperationCanceledError,
    OperationError,
    OperationErrorGroup,
    OperationFailedError,
    OperationNotCompleteError,
    PollRejectedError,
    PollTransportError,
    ProtocolError,
    RetriesExhaustedError,
    StartOutcomeUnknownError,
    StartRejectedError,
    TokenOriginError,
    UntrustedOriginError,
    WaitCancelledError,
    WaitTimeoutError,
)
from ._hooks import HookKind, PollEvent, ResponseEvent, StateChange, Subscription
from ._many import WaitResult, as_completed, wait_all
from ._observe import disable_tracing, enable_tracing
from ._parse import ResponseView, ServiceError, StatusUpdate, StatusVocabulary
from ._pipeline import BodyCap, Pipeline, SupportsPipeline
from ._signing import TokenSigner
from ._state import TERMINAL_STATES, TRANSITIONS, OperationState, Trigger
from ._sync import Operation
from ._token import RehydrationToken, TokenPolicy
from ._urls import OriginPolicy

if TYPE_CHECKING:  # loaded by __getattr__ below at run time
    from ._async import AsyncOperation
    from ._async_many import async_as_completed, async_wait_all
    from ._async_pipeline import AsyncPipeline, AsyncSender, HttpxSender, SupportsAsyncPipeline

#: The single source of the version (the package metadata reads it from here).
__version__ = "0.1.0"

#: The names loaded on first use, and the private module each is defined in.
_ASYNC_NAMES = {
    "AsyncOperation": "._async",
    "AsyncPipeline": "._async_pipeline",
    "AsyncSender": "._async_pipeline",
    "HttpxSender": "._async_pipeline",
    "SupportsAsyncPipeline": "._async_pipeline",
    "async_as_completed": "._async_many",
    "async_wait_all": "._async_many",
}

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Action",
    "AsyncOperation",
    "AsyncPipeline",
    "AsyncSender",
    "BodyCap",
    "BodyTooLargeError",
    "CancelNotSupportedError",
    "CancelRejectedError",
    "Decision",
    "DelaySequence",
    "DelaySource",
    "DelayStrategy",
    "ExponentialDelay",
    "FinalStateVia",
    "FixedDelay",
    "HookError",
    "HookKind",
    "HttpResponseError",
    "HttpxSender",
    "InvalidTokenError",
    "InvalidTransitionError",
    "LroError",
    "MalformedBodyError",
    "MissingStatusError",
    "NothingToPollError",
    "Operation",
    "OperationCanceledError",
    "OperationCore",
    "OperationError",
    "OperationErrorGroup",
    "OperationFailedError",
    "OperationNotCompleteError",
    "OperationState",
    "OriginPolicy",
    "Pipeline",
    "PollEvent",
    "PollRejectedError",
    "PollTransportError",
    "PollUpdate",
    "PollingDelay",
    "PollingPolicy",
    "PollingProtocol",
    "ProtocolError",
    "ProtocolOptions",
    "RehydrationToken",
    "ResponseEvent",
    "ResponseView",
    "RetriesExhaustedError",
    "ServiceError",
    "StartOutcomeUnknownError",
    "StartRejectedError",
    "StateChange",
    "StatusUpdate",
    "StatusVocabulary",
    "Subscription",
    "SupportsAsyncPipeline",
    "SupportsPipeline",
    "TokenOriginError",
    "TokenPolicy",
    "TokenSigner",
    "Trigger",
    "UntrustedOriginError",
    "WaitCancelledError",
    "WaitResult",
    "WaitTimeoutError",
    "as_completed",
    "async_as_completed",
    "async_wait_all",
    "disable_tracing",
    "enable_tracing",
    "wait_all",
    "__version__",
]


def _make_public(obj: Any) -> None:
    """Show ``obj`` as ``lrokit.Name`` in reprs, tracebacks and the docs (its defining module
    is private).

    A class's own annotations are resolved first, where they were written: they are strings
    (``from __future__ import annotations``) that ``typing.get_type_hints`` and msgspec would
    otherwise look up among this package's names, where the private ones they use are not.
    """
    if not hasattr(obj, "__qualname__"):  # classes and functions, not constants or aliases
        return
    own = inspect.get_annotations(obj) if isinstance(obj, type) else {}
    if own:
        try:
            hints = typing.get_type_hints(obj, include_extras=True)
        except NameError:  # a name only type checkers import: it never resolved at run time
            hints = {}
        obj.__annotations__ = {name: hints.get(name, value) for name, value in own.items()}
    obj.__module__ = __name__


if not TYPE_CHECKING:  # type checkers see the imports above, and flag any other name

    def __getattr__(name: str) -> Any:
        """Load an async name on first use (PEP 562) and keep it in the package's namespace."""
        module_name = _ASYNC_NAMES.get(name)
        if module_name is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(module_name, __name__)
        for loaded, source in _ASYNC_NAMES.items():
            if source == module_name:
                value = getattr(module, loaded)
                _make_public(value)
                globals()[loaded] = value
        return globals()[name]


def __dir__() -> list[str]:
    """Every public name, the async ones included before they are loaded."""
    return sorted({*globals(), *__all__})


for _name in __all__:
    if _name not in _ASYNC_NAMES and _name != "__version__":
        _make_public(globals()[_name])
del _name
