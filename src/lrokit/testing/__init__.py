"""lrokit.testing: test code that uses lrokit without waiting and without a service.

- :class:`FakeClock` and :class:`AsyncFakeClock`: a monotonic clock and a sleeper sharing
  one fake time, for ``Pipeline(clock=..., sleep=...)`` and ``AsyncPipeline``: waits return
  at once and the delays asked for are recorded.
- :class:`LroScript`: a list of statuses becomes the HTTP exchange of one operation (start
  answer, status answers, final resource), served to ``responses`` (:meth:`LroScript.register`)
  or to ``httpx`` (:meth:`LroScript.transport`), with every request recorded. Variants for
  status monitors, ``Location`` polling and ARM resources (``provisioningState``).
- :func:`completed_operation`, :func:`failed_operation`, :func:`canceled_operation`:
  operations that have already finished, for testing code that receives operations.
- A pytest plugin (loaded automatically once lrokit is installed) with the fixtures
  ``lrokit_clock``, ``lrokit_async_clock``, ``lrokit_policy``, ``lrokit_endpoint``,
  ``lrokit_pipeline`` and ``lrokit_responses``; see :mod:`lrokit.testing.pytest_plugin`.

``responses`` and ``httpx`` are imported only by what uses them (``pip install
'lrokit[testing]'`` for ``responses``; ``httpx`` comes with ``lrokit[async]``).
"""

from __future__ import annotations

from ._clock import AsyncFakeClock, FakeClock
from ._operations import TEST_ENDPOINT, canceled_operation, completed_operation, failed_operation
from ._script import LroScript, Poll, RecordedRequest, mock_transport

__all__ = [
    "TEST_ENDPOINT",
    "AsyncFakeClock",
    "FakeClock",
    "LroScript",
    "Poll",
    "RecordedRequest",
    "canceled_operation",
    "completed_operation",
    "failed_operation",
    "mock_transport",
]
