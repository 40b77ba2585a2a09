"""What the command line tells a newcomer: the demo prints the code it runs and names its
delays as ``lrokit poll`` does; ``poll``, ``resume`` and ``token inspect`` say what happened
(a key that does not verify, a dead port, SIGTERM) and record what they were told."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import run, start
from lrokit import PollingPolicy
from lrokit._cli import ExitCode, main
from lrokit._delay import DELAY_LABELS
from lrokit.demo import DemoService, VectorStoreClient


@pytest.mark.integration
def test_demo_prints_the_client_it_polls_with(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "0.2", "--interval", "0.05"]) == 0
    output = capsys.readouterr().out
    (client_line,) = re.findall(r"^   >>> (client = .*)$", output, re.MULTILINE)
    # The printed line is code that runs, and builds the client the patterns poll with ...
    namespace = {"VectorStoreClient": VectorStoreClient, "PollingPolicy": PollingPolicy}
    built: dict[str, object] = {"endpoint": "http://127.0.0.1:1/"}
    exec(client_line, namespace, built)
    client = built["client"]
    assert isinstance(client, VectorStoreClient)
    assert client.pipeline.polling.strategy(1) == 0.05
    # ... whose 0.05 s interval (not the 1 s default) is what the polls of pattern 1 wait.
    pattern_1 = output.split("== Pattern 1")[1].split("== Pattern 2")[0]
    delays = re.findall(r"next poll in ([\d.]+) s \(([^)]+)\)", pattern_1)
    assert delays
    assert set(delays) == {("0.05", "interval")}


@pytest.mark.integration
def test_demo_names_delays_with_the_words_of_lrokit_poll(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--duration", "0.2", "--interval", "0.05"]) == 0
    output = capsys.readouterr().out
    labels = set(re.findall(r"next poll in [\d.]+ s \(([^)]+)\)", output))
    assert labels
    assert labels <= set(DELAY_LABELS.values())
    assert "(strategy)" not in output
    for label in ("interval", "server's Retry-After"):  # the header explains both
        assert f"({label})" in output.split("== Pattern 1")[0]


def test_demo_help_names_the_pattern_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "seed" not in out
    assert ".NET System.ClientModel OperationResult pattern" in " ".join(out.split())
    assert "https://learn.microsoft.com/dotnet/api/system.clientmodel" in out


# -- poll, resume and token inspect ----------------------------------------------------------

KEY = bytes(range(32))


@pytest.fixture
def service() -> Iterator[DemoService]:
    """A demo service whose operations complete on their third status poll."""
    with DemoService(polls_to_complete=3, retry_after=0.01) as svc:
        yield svc


def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.integration
def test_inspect_with_another_key_says_it_may_be_signed_with_another_key(
    service: DemoService, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine, theirs = tmp_path / "mine.key", tmp_path / "theirs.key"
    mine.write_bytes(KEY)
    theirs.write_bytes(bytes(reversed(KEY)))
    saved = tmp_path / "op.token"
    url = start(service)
    args = ["--interval", "0.02", "--quiet", "--save-token", str(saved)]
    assert run(capsys, "poll", url, *args, "--signing-key-file", str(mine))[0] == 0

    code, out, err = run(capsys, "token", "inspect", f"@{saved}", "--signing-key-file", str(theirs))

    assert code == ExitCode.TOKEN_REFUSED
    assert "signed-invalid" in out
    assert "the token was altered, or signed with another key" in err


@pytest.mark.integration
def test_a_dead_port_fails_in_one_line_after_the_retries_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = f"http://127.0.0.1:{refused_port()}/"
    code, out, err = run(
        capsys,
        "poll",
        f"{endpoint}operations/1",
        "--retries",
        "1",
        "--retry-backoff",
        "0.01",
    )

    assert code == ExitCode.PROTOCOL
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "[1] Running, no answer, retry 1 of 1, next poll in 0.01 s (back-off)"
    assert lines[1] == (
        f"lrokit: no answer from {endpoint} (Connection refused); gave up after 2 tries in a row"
    )
    assert lines[2] == "resume it with:"
    assert "HTTPConnectionPool" not in err
    assert len(lines) == 4


def test_retries_must_be_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "poll", "https://svc.example.com/op", "--retries", "-1")
    assert code == ExitCode.USAGE
    assert "--retries: must be 0 or more, not -1" in err


@pytest.mark.integration
def test_tokens_of_poll_record_the_start_request_given(
    service: DemoService, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = tmp_path / "op.token"
    url = start(service)
    resource = f"{service.endpoint}vector_stores/original"
    code, _, err = run(
        capsys,
        "poll",
        url,
        "--quiet",
        "--timeout",
        "0.001",
        "--interval",
        "5",
        "--method",
        "PUT",
        "--original-uri",
        resource,
        "--save-token",
        str(saved),
    )
    assert code == ExitCode.TIMED_OUT, err

    code, out, _ = run(capsys, "token", "inspect", f"@{saved}", "--json")
    assert code == 0
    fields = json.loads(out)["fields"]
    # URLs on the token's origin are kept as paths.
    assert (fields["method"], fields["initial_url"]) == ("PUT", "/vector_stores/original")


def test_method_put_needs_the_resource(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "poll", "https://svc.example.com/op", "--method", "PUT")
    assert code == ExitCode.USAGE
    assert "--method PUT needs --original-uri URL (the resource)" in err


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is not a signal there")
def test_sigterm_ends_poll_with_a_resume_command_and_exit_143(tmp_path: Path) -> None:
    with DemoService(polls_to_complete=1000, retry_after=0.01) as service:
        url = start(service)
        command = [sys.executable, "-m", "lrokit", "poll", url, "--interval", "0.05"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
        )
        try:
            assert process.stderr is not None
            first = process.stderr.readline()  # the first poll was answered
            assert first.startswith("[1] Running"), first
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    assert process.returncode == ExitCode.TERMINATED == 143
    assert "lrokit: terminated (SIGTERM) (state Running)" in err
    assert re.search(r"^  lrokit resume \S+ --endpoint http://127\.0\.0\.1:\d+/ --wait$", err, re.M)


def test_resume_takes_the_retry_options_only_with_wait(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "resume", "TOKEN", "--endpoint", "https://svc.example.com", "--retries", "2"
    )
    assert code == ExitCode.USAGE
    assert "--retries need --wait" in err
