"""The sync driver: :class:`Operation`, the Python spelling of System.ClientModel's OperationResult.

The driver owns the loop: it asks the core for the next request, sends it through the
pipeline's ``requests.Session``, feeds the answer back (the shared logic in ``_base.py``
dispatches hooks once the core has finished the transition) and sleeps in the caller's thread.
It starts no threads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

import requests
from typing_extensions import Self

from ._base import OperationBase
from ._core import Decision, OperationCore, ProtocolOptions
from ._delay import as_seconds
from ._exceptions import LroError
from ._parse import ResponseView
from ._pipeline import Pipeline, SupportsPipeline, view_of
from ._token import RehydrationToken

__all__ = ["Operation"]

T = TypeVar("T")

_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout)


class Operation(OperationBase[T]):
    """A long-running operation of a service, and the way to wait for its value.

    SDK authors subclass it once per LRO (the "LRO subclient"), usually only to name the type
    of the value: ``class CreateVectorStoreOperation(Operation[VectorStore]): value_type =
    VectorStore``. The final JSON is then decoded into ``value_type`` with msgspec; override
    :meth:`decode_value` for anything else.

    Create one with :meth:`start` (sends the start request), :meth:`prepare` (not sent yet),
    :meth:`from_response` (you sent it), or :meth:`rehydrate` (from a token, no request).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        core: OperationCore,
        *,
        response: requests.Response | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Wrap an existing core. Most code calls :meth:`start` or :meth:`rehydrate` instead."""
        super().__init__(pipeline, core, response)
        self._pipeline = pipeline
        self._headers = dict(headers) if headers else None
        self._start_request: _StartRequest | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        client: SupportsPipeline,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        operation_headers: Mapping[str, str] | None = None,
        options: ProtocolOptions | None = None,
        **request_kwargs: Any,
    ) -> Self:
        """Build the operation in ``NotStarted`` without sending anything.

        Hooks subscribed now see every transition, including ``NotStarted -> Running``. The
        start request is sent by :meth:`send_start`, or by the first :meth:`update_status` or
        :meth:`wait_for_completion`. Arguments are those of :meth:`start`.

        Raises:
            UntrustedOriginError: ``url`` is outside the trusted origins.
        """
        pipeline = client.pipeline
        absolute = pipeline.url(url)
        if params:
            absolute = requests.Request(method, absolute, params=params).prepare().url or absolute
        core = cls._new_core(pipeline, method, absolute, options)
        operation = cls(pipeline, core, headers=operation_headers)
        merged = {**(operation_headers or {}), **(headers or {})}
        operation._start_request = _StartRequest(method, absolute, json, merged, request_kwargs)
        return operation

    @classmethod
    def start(
        cls,
        client: SupportsPipeline,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        operation_headers: Mapping[str, str] | None = None,
        options: ProtocolOptions | None = None,
        **request_kwargs: Any,
    ) -> Self:
        """Send the start request and return the operation (Running, or already terminal).

        Args:
            client: the pipeline, or an SDK client holding one.
            method, url: the start request; ``url`` may be relative to the endpoint.
            json, params, headers: the start request's body, query and headers.
            operation_headers: headers sent with the start request and with every poll and
                final request of this operation (for example ``x-ms-client-request-id``).
            options: protocol options; defaults to the class's ``protocol_options``.
            request_kwargs: passed to ``requests`` for the start request only.

        Raises:
            StartRejectedError: the service answered with an HTTP error.
            ProtocolError: the answer gives no way to follow the operation.
            UntrustedOriginError: ``url`` or a polling URL is outside the trusted origins.
        """
        operation = cls.prepare(
            client,
            method,
            url,
            json=json,
            params=params,
            headers=headers,
            operation_headers=operation_headers,
            options=options,
            **request_kwargs,
        )
        operation.send_start()
        return operation

    def send_start(self) -> requests.Response:
        """Send the start request of a :meth:`prepare`-d operation and apply its answer.

        Raises:
            LroError: the operation was not prepared, or its start request was already sent.
            StartRejectedError, ProtocolError, UntrustedOriginError, HookError: as for
                :meth:`start`; after a ``StartRejectedError`` the operation stays
                ``NotStarted`` and the start may be sent again.
        """
        request = self._start_request
        if request is None or self._core.next_action is not None:
            raise LroError("this operation has no start request left to send")
        response = self._pipeline.send(
            request.method,
            request.url,
            json=request.json,
            headers=request.headers,
            **request.kwargs,
        )
        self._response = response
        self._process(view_of(response), interval=None)
        self._start_request = None
        return response

    @classmethod
    def from_response(
        cls,
        client: SupportsPipeline,
        response: requests.Response,
        *,
        core: OperationCore | None = None,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Build the operation from a start response the caller received itself."""
        pipeline = client.pipeline
        if core is None:
            request = response.request
            method, url = str(request.method or "GET"), str(request.url or response.url)
            core = cls._new_core(pipeline, method, url, options)
        operation = cls(pipeline, core, response=response, headers=operation_headers)
        operation._process(view_of(response), interval=None)
        return operation

    @classmethod
    def rehydrate(
        cls,
        client: SupportsPipeline,
        token: RehydrationToken | str | bytes,
        *,
        options: ProtocolOptions | None = None,
        operation_headers: Mapping[str, str] | None = None,
    ) -> Self:
        """Rebuild an operation from a token without sending a request or firing hooks.

        The next :meth:`update_status` or :meth:`wait_for_completion` polls.

        Raises:
            InvalidTokenError: the token is malformed, of an unknown version, or belongs to
                another operation class.
            UntrustedOriginError: the token points outside the client's trusted origins.
        """
        pipeline = client.pipeline
        core = cls._restore_core(pipeline, token, options)
        return cls(pipeline, core, headers=operation_headers)

    # -- reading ---------------------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline this operation sends requests through."""
        return self._pipeline

    def get_raw_response(self) -> requests.Response | None:
        """The last HTTP response received for this operation (None after rehydration)."""
        return self._response  # type: ignore[no-any-return]

    # -- I/O ------------------------------------------------------------------------------

    def update_status(self) -> requests.Response | None:
        """Make exactly one request for the operation's status and apply its answer.

        When the operation is waiting for its final resource, that request is the final GET;
        for a :meth:`prepare`-d operation that was not sent yet, it is the start request.
        Returns the response, or None when the operation needs no more requests.

        Raises:
            PollRejectedError: the service answered with a non-transient HTTP error, or with
                transient ones more times in a row than the policy's ``max_retries``.
            ProtocolError: the answer cannot be used; the state did not change.
            HookError: a hook raised; the state change stood.
        """
        if self._start_request is not None:
            return self.send_start()
        if self._core.next_request_url is None:
            return None
        return self._poll_once(None)

    def wait_for_completion(
        self,
        polling_interval: float | timedelta | None = None,
        *,
        timeout: float | timedelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Self:
        """Poll until the operation completes; returns the operation itself.

        A :meth:`prepare`-d operation is started first.

        Args:
            polling_interval: seconds (or a ``timedelta``) between polls; the pipeline
                policy's interval when None. A longer server ``Retry-After`` wins.
            timeout: a deadline on the monotonic clock; never slept past.
            cancel: an event that, once set, stops the wait promptly.

        Raises:
            WaitTimeoutError: the deadline passed; the operation is unchanged and resumable.
            WaitCancelledError: ``cancel`` was set; the operation is unchanged and resumable.
            PollRejectedError, ProtocolError, HookError: see :meth:`update_status`.

        A Failed or Canceled outcome does not raise here; reading :attr:`value` does.
        """
        interval = None if polling_interval is None else as_seconds(polling_interval)
        limit = None if timeout is None else as_seconds(timeout)
        pipeline = self._pipeline
        deadline = None if limit is None else pipeline.clock() + limit
        if self._start_request is not None:
            self.send_start()
        while self._core.next_request_url is not None:
            step = self._wait_step(interval, deadline, pipeline.clock())
            if cancel is not None and cancel.is_set():
                raise self._cancelled_error()
            if step.seconds > 0 and pipeline.sleep(step.seconds, cancel):
                raise self._cancelled_error()
            if step.timeout:
                raise self._timeout_error(limit or 0.0)
            self._poll_once(interval)
        return self

    def _poll_once(self, interval: float | None) -> requests.Response | None:
        url = self._core.next_request_url
        assert url is not None
        try:
            response = self._pipeline.send("GET", url, headers=self._headers)
        except _TRANSPORT_ERRORS as error:
            self._transport_failed(error)
            return None
        self._response = response
        self._process(view_of(response), interval)
        return response

    def _process(self, view: ResponseView, interval: float | None) -> Decision:
        decision = self._core.receive(view)
        self._after(decision, view.raw, interval)
        return decision

    # -- manual driving ------------------------------------------------------------------

    def receive(self, response: requests.Response | ResponseView) -> Decision:
        """Feed a response into the operation without any I/O; returns the core's decision.

        Use it to drive an operation from responses obtained elsewhere. Hooks run as usual.
        """
        if isinstance(response, ResponseView):
            view = response
            if isinstance(response.raw, requests.Response):
                self._response = response.raw
        else:
            view = view_of(response)
            self._response = response
        decision = self._core.receive(view)
        self._after(decision, view.raw, None)
        return decision


class _StartRequest(NamedTuple):
    method: str
    url: str
    json: Any
    headers: dict[str, str]
    kwargs: dict[str, Any]
