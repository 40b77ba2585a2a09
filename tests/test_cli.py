"""The ``lrokit`` command: ``demo`` end to end, ``statechart``, ``serve`` and usage errors."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests

from lrokit import OperationState
from lrokit._cli import main
from lrokit._statechart import render_mermaid, render_scxml
from lrokit.demo import API_VERSION, VectorStore, _walkthrough

STATE_NAMES = [state.value for state in OperationState]


def sections(output: str) -> list[str]:
    """The output of each pattern, split at its heading."""
    return re.split(r"^== Pattern \d: .*==$", output, flags=re.MULTILINE)[1:]


# -- demo ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_demo_runs_all_six_patterns_end_to_end(capsys):
    # Short durations: every real sleep in the demo is the 0.05 s interval.
    code = main(["demo", "--duration", "0.2", "--interval", "0.05"])

    output = capsys.readouterr().out
    assert code == 0, output
    parts = sections(output)
    assert len(parts) == 6, output
    for number, part in enumerate(parts, start=1):
        lines = [line.strip().lstrip("| ") for line in part.splitlines()]
        transitions = [line for line in lines if re.fullmatch(r"\w+ -> \w+", line)]
        assert transitions == ["NotStarted -> Running", "Running -> Succeeded"], (number, part)
        assert "ok: NotStarted -> Running -> Succeeded" in part
        assert re.search(
            rf"value: VectorStore id=vs_\w+ name='demo-{number}' status=completed", part
        )
        assert re.search(r"\. poll 1: ", part), part  # progress is shown per poll
    pattern_5 = parts[4]
    codes = re.findall(r"Status code: (\d{3})", pattern_5)
    assert codes[0] == "202"
    assert set(codes[1:]) == {"200"}
    assert len(codes) >= 3  # the start, at least one poll, the final GET
    # Pattern 6: the second process did the waiting and its output is shown.
    pattern_6 = parts[5]
    assert "[process 2]" in pattern_6
    assert "| Running -> Succeeded" in pattern_6
    assert "| resumed from the token without a request: state Running" in pattern_6
    assert "all 6 patterns completed" in output


def _broken(ctx):
    raise RuntimeError("this pattern is broken")


def _dishonest(ctx):
    # A store but no transitions seen: the demo must not claim success.
    return VectorStore(id="vs_x", name="x", status="completed"), []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_broken, "FAILED: RuntimeError: this pattern is broken"),
        (_dishonest, "FAILED: unexpected outcome (transitions seen: none)"),
    ],
)
def test_demo_exits_non_zero_when_a_pattern_fails(monkeypatch, capsys, function, message):
    good = _walkthrough.PATTERNS[0]
    monkeypatch.setattr(_walkthrough, "PATTERNS", (good, ("Broken", "broken()", function)))

    code = main(["demo", "--duration", "0.05", "--interval", "0.05"])

    output = capsys.readouterr().out
    assert code == 1
    assert message in output
    assert "1 of 2 patterns failed" in output


# -- statechart ------------------------------------------------------------------------------


def test_statechart_mermaid_is_the_default(capsys):
    assert main(["statechart"]) == 0
    default = capsys.readouterr().out
    assert main(["statechart", "--format", "mermaid"]) == 0
    explicit = capsys.readouterr().out

    assert default == explicit == render_mermaid()
    assert default.startswith("stateDiagram-v2")
    for name in STATE_NAMES:
        assert name in default


def test_statechart_scxml(capsys):
    assert main(["statechart", "--format", "scxml"]) == 0
    output = capsys.readouterr().out

    assert output == render_scxml()
    root = ET.fromstring(output)
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    assert set(STATE_NAMES) <= ids


def test_python_dash_m_lrokit_runs_the_command():
    finished = subprocess.run(
        [sys.executable, "-m", "lrokit", "statechart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == render_mermaid()


# -- help and usage errors -------------------------------------------------------------------


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    output = capsys.readouterr().out
    for command in ("demo", "serve", "statechart"):
        assert command in output


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("demo", ["--duration", "--interval", "six"]),
        ("serve", ["--port", "--duration", "--polls", "--retry-after", "Ctrl-C"]),
        ("statechart", ["--format", "mermaid", "scxml"]),
    ],
)
def test_each_command_has_help(capsys, command, expected):
    assert main([command, "--help"]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"usage: lrokit {command}")
    for word in expected:
        assert word in output


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "a command is required"),
        (["frobnicate"], "invalid choice"),
        (["statechart", "--format", "dot"], "invalid choice"),
        (["demo", "--duration", "-1"], "must be a positive number"),
        (["demo", "--interval", "soon"], "not a number"),
        (["serve", "--port", "70000"], "between 0 and 65535"),
        (["serve", "--polls", "0"], "at least 1"),
        (["serve", "--duration", "nan"], "must be zero or a positive number"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, complaint):
    assert main(argv) == 2
    assert complaint in capsys.readouterr().err


def test_usage_error_exit_status_from_a_real_process():
    finished = subprocess.run(
        [sys.executable, "-m", "lrokit", "statechart", "--format", "dot"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "usage: lrokit statechart" in finished.stderr


# -- serve -----------------------------------------------------------------------------------


class Served:
    """A ``lrokit serve`` subprocess whose output lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lrokit", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.result: tuple[int, str] | None = None
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout: float = 30.0) -> str:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the server exited: " + self.stop()[1]
        return line

    def stop(self) -> tuple[int, str]:
        """Make sure the process is gone; returns its exit status and stderr (idempotent)."""
        if self.result is None:
            if self.process.poll() is None:
                self.process.kill()
            code = self.process.wait(timeout=30)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            self.reader.join(timeout=30)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.result = (code, stderr)
        return self.result


@pytest.fixture
def served() -> Iterator[type[Served]]:
    started: list[Served] = []

    class Tracked(Served):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


signals = [pytest.param(signal.SIGTERM, id="SIGTERM")]
if sys.platform != "win32":
    signals.append(pytest.param(signal.SIGINT, id="SIGINT"))


@pytest.mark.integration
@pytest.mark.parametrize("signum", signals)
def test_serve_serves_until_signalled(served, signum):
    server = served("--polls", "1")
    first = server.next_line()
    match = re.fullmatch(r"lrokit demo service listening on (http://127\.0\.0\.1:\d+/)\n", first)
    assert match, first
    endpoint = match.group(1)
    assert "curl" in server.next_line()
    assert "Ctrl-C" in server.next_line()

    with requests.Session() as http:
        started = http.post(
            f"{endpoint}vector_stores?api-version={API_VERSION}", json={"name": "cli"}, timeout=10
        )
        assert started.status_code == 202
        location = started.headers["Operation-Location"]
        monitor = http.get(endpoint + location.lstrip("/"), timeout=10).json()
    assert monitor["status"] == "Succeeded"  # --polls 1

    server.process.send_signal(signum)
    code = server.process.wait(timeout=30)
    assert code == 0
    assert server.next_line() == "lrokit demo service stopped\n"
    _, stderr = server.stop()
    # Requests are logged to stderr unless --quiet.
    assert "POST /vector_stores" in stderr
    assert "Traceback" not in stderr


@pytest.mark.integration
def test_serve_quiet_logs_nothing(served):
    server = served("--quiet")
    endpoint = server.next_line().rsplit(" ", 1)[1].strip()
    assert (
        requests.get(f"{endpoint}nowhere?api-version={API_VERSION}", timeout=10).status_code == 404
    )
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    _, stderr = server.stop()
    assert stderr == ""


def test_serve_reports_a_port_in_use(capsys):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        previous = signal.getsignal(signal.SIGTERM)

        code = main(["serve", "--port", str(port)])

        assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert code == 1
    assert f"cannot listen on port {port}" in capsys.readouterr().err
