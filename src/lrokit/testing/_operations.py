"""Operations that have already completed, for testing code that receives operations.

They are built with lrokit's public manual-driving API only: a core, the operation class's
own constructor, ``receive`` of the start answer a service would send (202 with
``Operation-Location``) and ``apply_status`` of the final status. So they behave as an
operation that really got there: ``has_completed``, ``value`` (or its error), the token,
``update_status()`` returning None, hooks subscribed afterwards never firing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import requests

from .._async import AsyncOperation
from .._async_pipeline import AsyncPipeline
from .._core import OperationCore
from .._parse import ResponseView, ServiceError, StatusUpdate
from .._pipeline import Pipeline
from .._state import OperationState
from .._sync import Operation

__all__ = ["TEST_ENDPOINT", "canceled_operation", "completed_operation", "failed_operation"]

OpT = TypeVar("OpT", bound="Operation[Any] | AsyncOperation[Any]")

#: The endpoint of the pipelines lrokit.testing builds when given none (example.com is
#: reserved for examples: nothing is ever sent there).
TEST_ENDPOINT = "https://lro.example.com/"
_UNSET: Any = object()
#: The errors of failed_operation and canceled_operation when none is given (as a script's).
FAILED_ERROR = ServiceError("OperationFailed", "the operation failed")
CANCELED_ERROR = ServiceError("OperationCanceled", "the operation was canceled")


class _Offline(requests.adapters.BaseAdapter):
    """A ``requests`` adapter refusing every request: these pipelines send nothing."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.method} {request.url}: an operation built by lrokit.testing has no"
            " service; pass pipeline= to send requests"
        )

    def close(self) -> None:
        """Nothing to release."""


class _OfflineSender:
    """The async twin of :class:`_Offline` (an ``AsyncSender``)."""

    transport_errors: tuple[type[BaseException], ...] = ()

    async def send(self, method: str, url: str, **kwargs: Any) -> ResponseView:
        raise AssertionError(
            f"{method} {url}: an operation built by lrokit.testing has no service; pass"
            " pipeline= to send requests"
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def _pipeline(cls: type[Any], given: Any) -> Any:
    if given is not None:
        return given.pipeline  # a Pipeline is its own .pipeline; an SDK client holds one
    if issubclass(cls, AsyncOperation):
        return AsyncPipeline(TEST_ENDPOINT, _OfflineSender())
    session = requests.Session()
    session.mount("http://", _Offline())
    session.mount("https://", _Offline())
    return Pipeline(TEST_ENDPOINT, session)


def _finished(
    cls: type[OpT],
    pipeline: Any,
    update: StatusUpdate,
    payload: Any,
    *,
    method: str,
    url: str | None,
) -> OpT:
    pipe = _pipeline(cls, pipeline)
    start = pipe.url(url or "lro-testing/start")
    core = OperationCore(
        method,
        start,
        origin_policy=pipe.origin_policy,
        kind=cls.kind(),
        token_policy=pipe.tokens,
    )
    operation = cls(pipe, core)
    monitor = pipe.url(f"lro-testing/operations/{core.operation_id}")
    operation.receive(ResponseView.build(202, {"Operation-Location": monitor}, b"", start))
    operation.apply_status(update, payload)
    return operation


def completed_operation(
    cls: type[OpT],
    value: Any = _UNSET,
    *,
    payload: Any = _UNSET,
    pipeline: Any = None,
    raw_status: str = "Succeeded",
    method: str = "POST",
    url: str | None = None,
) -> OpT:
    """An operation of class ``cls`` that has succeeded with ``value``.

    Args:
        cls: the operation class (``Operation``, ``AsyncOperation`` or a subclass).
        value: the value: what ``operation.value`` should equal. It becomes the final JSON
            with ``msgspec.to_builtins`` and is decoded back by the class (``value_type``,
            ``decode_value``), as a real result would be.
        payload: instead of ``value``, the final JSON exactly as the service sends it.
        pipeline: the pipeline (or an SDK client holding one) the operation belongs to;
            one that sends nothing when None.
        raw_status: the status word the service reported.
        method: the method of the start request the operation stands for.
        url: the URL of that start request, relative to the pipeline's endpoint.

    Raises:
        TypeError: both ``value`` and ``payload`` were given, or ``value`` cannot be
            converted to JSON (pass ``payload=`` then).
    """
    if value is not _UNSET and payload is not _UNSET:
        raise TypeError("give value or payload, not both")
    if value is not _UNSET:
        payload = msgspec.to_builtins(value)
    elif payload is _UNSET:
        payload = None
    update = StatusUpdate(OperationState.SUCCEEDED, raw_status)
    return _finished(cls, pipeline, update, payload, method=method, url=url)


def _service_error(
    error: ServiceError | Mapping[str, Any] | str | None, default: ServiceError
) -> ServiceError:
    if error is None:
        return default
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, str):
        return ServiceError(message=error)
    return msgspec.convert(dict(error), ServiceError)


def failed_operation(
    cls: type[OpT],
    error: ServiceError | Mapping[str, Any] | str | None = None,
    *,
    pipeline: Any = None,
    raw_status: str = "Failed",
    method: str = "POST",
    url: str | None = None,
) -> OpT:
    """An operation of class ``cls`` that has failed with ``error``.

    Reading its ``value`` raises :class:`~lrokit.OperationFailedError` carrying the error.

    Args:
        cls: the operation class.
        error: the service's error: a :class:`~lrokit.ServiceError`, its JSON (``{"code":
            ..., "message": ...}``) or a message; a generic one when None.
        pipeline: as for :func:`completed_operation`.
        raw_status: as for :func:`completed_operation`.
        method: as for :func:`completed_operation`.
        url: as for :func:`completed_operation`.
    """
    update = StatusUpdate(
        OperationState.FAILED, raw_status, error=_service_error(error, FAILED_ERROR)
    )
    return _finished(cls, pipeline, update, None, method=method, url=url)


def canceled_operation(
    cls: type[OpT],
    error: ServiceError | Mapping[str, Any] | str | None = None,
    *,
    pipeline: Any = None,
    raw_status: str = "Canceled",
    method: str = "POST",
    url: str | None = None,
) -> OpT:
    """An operation of class ``cls`` that the service canceled.

    Reading its ``value`` raises :class:`~lrokit.OperationCanceledError`. Arguments as for
    :func:`failed_operation`.
    """
    update = StatusUpdate(
        OperationState.CANCELED, raw_status, error=_service_error(error, CANCELED_ERROR)
    )
    return _finished(cls, pipeline, update, None, method=method, url=url)
