"""A missing machine tool skips a test locally and fails it in CI."""

from __future__ import annotations

import pytest

from ci_policy import missing


def test_missing_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs curl"):
        missing("needs curl")


def test_missing_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"needs curl \(required in CI\)"):
        missing("needs curl")
