"""lrokit: long-running operations over HTTP as explicit, resumable state machines.

Start with :class:`Operation` (subclass it per LRO) and :class:`Pipeline`; see the docs for
the six usage patterns, hooks, manual driving and rehydration.
"""

from __future__ import annotations

from ._async import AsyncOperation
from ._async_pipeline import (
    AsyncPipeline,
    AsyncSender,
    HttpxSender,
    SupportsAsyncPipeline,
)
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
from ._hooks import HookKind, PollEvent, StateChange, Subscription
from ._many import WaitResult, as_completed, async_as_completed, async_wait_all, wait_all
from ._observe import disable_tracing, enable_tracing
from ._parse import ResponseView, ServiceError, StatusUpdate, StatusVocabulary
from ._pipeline import BodyCap, Pipeline, SupportsPipeline
from ._signing import TokenSigner
from ._state import TERMINAL_STATES, TRANSITIONS, OperationState, Trigger
from ._sync import Operation
from ._token import RehydrationToken, TokenPolicy
from ._urls import OriginPolicy

__version__ = "0.1.0"

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
