"""The TypeSpec spector mock server of the Azure HTTP specs, one per test session.

``npm ci --prefix tests/conformance`` installs the pinned ``@typespec/spector`` and
``@azure-tools/azure-http-specs`` (``.ci/run`` does it). Without ``node`` or those packages the
conformance tests are skipped with the reason; with ``CI`` set they fail instead, so that a
CI run cannot pass without them.

Facts about the server that shape this fixture:

- ``spector serve`` runs ``git rev-parse HEAD`` in the specs folder and dies outside a git
  checkout: it gets a throw-away repository with one empty commit through ``GIT_DIR``.
- It has no host option and would listen on every interface: the ``listen-loopback.mjs``
  preload (``node --import``) forces 127.0.0.1. It is started with ``--port 0`` and the port
  it reports is read from its log.
- Its mocks keep poll counters in server-wide state: one fresh server per session, and the
  scenarios run one at a time.
- It logs every request it answers (method, URL as received, status) on stdout, which goes
  to a file; :meth:`SpectorServer.checkpoint` reads the requests since a mark, after a
  ``GET /.coverage`` that also returns the server's own verdict per scenario.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_policy import missing

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
SPECTOR_CLI = MODULES / "@typespec" / "spector" / "cmd" / "cli.mjs"
SPECS = MODULES / "@azure-tools" / "azure-http-specs" / "specs"
PRELOAD = HERE / "listen-loopback.mjs"

#: Bounds on waiting for the server (seconds); polled in small real sleeps.
START_TIMEOUT = 60.0
LOG_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_POLL = 0.02

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: morgan's "dev" format: ``info METHOD URL STATUS TIME ms - LENGTH``.
_REQUEST_LINE = re.compile(r"^info (?P<method>[A-Z]+) (?P<url>\S+) (?P<status>\d{3}) ")
_STARTED = re.compile(r"Started server on (\d+)")
COVERAGE_PATH = "/.coverage"


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server logged it."""

    method: str
    url: str
    status: int

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status}"


@dataclass
class Checkpoint:
    """What the server saw between a mark and now."""

    requests: list[SeenRequest]
    warnings: list[str]
    coverage: dict[str, str]


@dataclass
class SpectorServer:
    """A running spector server: its endpoint and its request log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def record(self, name: str, operations: int, seen: list[SeenRequest], lro: int) -> None:
        """Add a passed scenario to the session's tally (printed at the end)."""
        RECORDS.append(ScenarioRecord(name, operations, seen, lro))

    def mark(self) -> int:
        """A position in the log; :meth:`checkpoint` reports what came after it."""
        return self.log_path.stat().st_size

    def log_text(self, start: int = 0) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(start)
            return _ANSI.sub("", handle.read().decode("utf-8", "replace"))

    def coverage(self) -> dict[str, str]:
        """Spector's verdict per scenario: "pass", "fail" or "not-implemented"."""
        response = self.session.get(self.endpoint.rstrip("/") + COVERAGE_PATH, timeout=10)
        response.raise_for_status()
        results: dict[str, str] = {}
        for report in response.json():
            results.update(report["results"])
        return results

    def scenario_names(self) -> list[str]:
        """Every scenario the server knows."""
        return sorted(self.coverage())

    def checkpoint(self, start: int) -> Checkpoint:
        """Ask for the coverage, wait until that request is logged, and parse the log since
        ``start``: every request before it has been logged by then (the server logs each
        one as it finishes answering it, in order)."""
        coverage = self.coverage()
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            seen, warnings = self._parse(self.log_text(start))
            if seen and seen[-1].url == COVERAGE_PATH:
                return Checkpoint(seen[:-1], warnings, coverage)
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not log {COVERAGE_PATH} in time")
            time.sleep(_POLL)

    @staticmethod
    def _parse(text: str) -> tuple[list[SeenRequest], list[str]]:
        seen: list[SeenRequest] = []
        warnings: list[str] = []
        for line in text.splitlines():
            match = _REQUEST_LINE.match(line)
            if match:
                seen.append(SeenRequest(match["method"], match["url"], int(match["status"])))
            elif line.startswith(("warn", "error")):
                warnings.append(line)
        return seen, warnings


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        missing("spector conformance needs Node.js: `node` is not on PATH")
    assert node is not None
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < 20:
        missing(f"spector conformance needs Node.js >= 20 (for --import), found {version}")
    if not SPECTOR_CLI.is_file() or not SPECS.is_dir():
        missing("the spector packages are not installed: run `npm ci --prefix tests/conformance`")
    return node


def _throwaway_git(directory: Path) -> Path:
    """A repository with one empty commit, for spector's ``git rev-parse HEAD``."""
    git = shutil.which("git")
    if git is None:
        missing("spector conformance needs `git` (the server reads a commit id)")
    assert git is not None
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "lrokit tests",
        "GIT_AUTHOR_EMAIL": "tests@lrokit.invalid",
        "GIT_COMMITTER_NAME": "lrokit tests",
        "GIT_COMMITTER_EMAIL": "tests@lrokit.invalid",
    }
    env.pop("GIT_DIR", None)
    subprocess.run([git, "init", "-q", str(directory)], check=True, env=env, timeout=30)
    subprocess.run(
        [git, "-C", str(directory), "commit", "-q", "--allow-empty", "-m", "spector"],
        check=True,
        env=env,
        timeout=30,
    )
    return directory / ".git"


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log_path.read_text("utf-8", "replace")
        match = _STARTED.search(_ANSI.sub("", text))
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"spector exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(_POLL)
    raise RuntimeError(f"spector did not start within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: TERM, then KILL after a bounded wait."""
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def run_spector(node: str, workdir: Path) -> Iterator[SpectorServer]:
    """A spector server on 127.0.0.1 working in ``workdir``, stopped (its whole process
    group) on exit. The ``spector`` fixture and ``bench/bench_economy.py`` both use it."""
    git_dir = _throwaway_git(workdir / "repo")
    log_path = workdir / "server.log"
    env = {**os.environ, "GIT_DIR": str(git_dir), "NO_COLOR": "1"}
    command = [
        node,
        "--import",
        PRELOAD.as_uri(),
        str(SPECTOR_CLI),
        "serve",
        str(SPECS),
        "--port",
        "0",
        "--coverageFile",
        str(workdir / "coverage.json"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    server: SpectorServer | None = None
    try:
        port = _wait_for_port(process, log_path)
        server = SpectorServer(process, log_path, port)
        yield server
    finally:
        if server is not None:
            server.session.close()
        _stop(process)


@pytest.fixture(scope="session")
def spector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpectorServer]:
    """A fresh spector server on 127.0.0.1 for the whole session, stopped at the end."""
    with run_spector(_node(), tmp_path_factory.mktemp("spector")) as server:
        yield server


# -- the session's tally, printed at the end -------------------------------------------------


@dataclass
class ScenarioRecord:
    """One scenario's result, for the terminal summary."""

    name: str
    operations: int
    requests: list[SeenRequest]
    lro_requests: int


RECORDS: list[ScenarioRecord] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many spector scenarios ran and the requests each needed."""
    if not RECORDS:
        return
    total = sum(len(r.requests) for r in RECORDS)
    lro = sum(r.lro_requests for r in RECORDS)
    operations = sum(r.operations for r in RECORDS)
    terminalreporter.section("spector conformance")
    terminalreporter.write_line(
        f"{len(RECORDS)} scenarios passed, {operations} operations, {total} requests"
        f" ({lro} by the operations, {total - lro} reading further pages)"
    )
    width = max(len(r.name) for r in RECORDS)
    for record in RECORDS:
        codes = ", ".join(f"{r.method} {r.status}" for r in record.requests)
        terminalreporter.write_line(f"  {record.name:<{width}}  {len(record.requests):>2}  {codes}")
