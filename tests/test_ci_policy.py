"""How the suite behaves on a machine: a missing machine tool skips a test locally and fails
it in CI; no test writes past pytest's capture, so ``pytest -q`` shows only its progress."""

from __future__ import annotations

import re
from pathlib import Path

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


#: Ways around pytest's capture: a test's figures belong in its captured output (shown by
#: ``pytest -rA``) or in ``record_property``, not among the progress dots.
_UNCAPTURED = re.compile(r"capsys\.disabled|capfd\.disabled|sys\.__std(?:out|err)__|/dev/tty")


def test_no_test_writes_past_the_capture() -> None:
    suite = Path(__file__).resolve().parent
    offenders = [
        f"{path.relative_to(suite)}:{number}"
        for path in sorted(suite.rglob("*.py"))
        if "node_modules" not in path.parts and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _UNCAPTURED.search(line)
    ]
    assert offenders == []
