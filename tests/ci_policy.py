"""What a test does when something it needs from the machine is missing: skip it on a
developer's machine, fail it in CI (the ``CI`` environment variable is set), where a skip
would hide that the suite did not run. Dependency-free, so that ``bench/bench_economy.py``
can load the conformance conftest that uses it.
"""

from __future__ import annotations

import os

import pytest


def missing(reason: str) -> None:
    """Skip the calling test for ``reason``, or fail it in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)
