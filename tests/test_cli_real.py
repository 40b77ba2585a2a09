"""``lrokit poll``, ``lrokit resume`` and ``lrokit token inspect`` end to end.

Each command runs against the embedded demo service on 127.0.0.1, which completes an
operation on its third status poll and asks for 10 ms between polls; the commands poll
every 20 ms, so no test sleeps for more than a few hundredths of a second at a time.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_policy import missing
from cli_helpers import run, start
from lrokit import Operation, Pipeline, TokenPolicy, TokenSigner, _cli_service
from lrokit._cli import ExitCode, main
from lrokit.demo import API_VERSION, DemoService, FaultPlan
from lrokit.testing import FakeClock
from suite_helpers import load_checker
from token_helpers import FIXTURES, b64, unb64

FAST = ["--interval", "0.02"]
KEY = bytes(range(32))

pytestmark = pytest.mark.integration


@pytest.fixture
def service() -> Iterator[DemoService]:
    """A demo service whose operations complete on their third status poll."""
    with DemoService(polls_to_complete=3, retry_after=0.01) as svc:
        yield svc


@pytest.fixture
def slow_service() -> Iterator[DemoService]:
    """A demo service whose operations run for a thousand polls."""
    with DemoService(polls_to_complete=1000, retry_after=0.01) as svc:
        yield svc


def polls(service: DemoService) -> list[str]:
    return [r.path for r in service.requests if r.method == "GET"]


def key_file(tmp_path: Path, key: bytes = KEY) -> str:
    path = tmp_path / "token.key"
    path.write_bytes(key)
    return str(path)


def token_of(service: DemoService, name: str = "store") -> str:
    """The token of an operation started on ``service`` (no request made for the token)."""
    with Pipeline(service.endpoint) as pipeline:
        return str(Operation.from_monitor(pipeline, start(service, name)).rehydration_token)


def tampered(token: str) -> str:
    """``token`` with one field changed and its original signature kept."""
    payload, key_id, mac = token.split(".")
    document = unb64(payload)
    document["a"] = 99  # the attempt count
    return f"{b64(document)}.{key_id}.{mac}"


# -- poll ------------------------------------------------------------------------------------


def test_poll_prints_progress_and_the_final_json(service, capsys):
    url = start(service, "docs")

    code, out, err = run(capsys, "poll", url, *FAST)

    assert code == ExitCode.SUCCEEDED == 0
    value = json.loads(out)
    assert value["name"] == "docs"
    assert value["object"] == "vector_store"
    lines = err.splitlines()
    assert lines[0] == "[1] Running, 33%, next poll in 0.02 s (interval)"
    assert lines[1] == "[2] Running, 66%, next poll in 0.02 s (interval)"
    assert lines[2] == "[3] Running, status Succeeded, 100%, fetching the result"
    assert lines[3] == "[4] Succeeded, 100%"
    assert len(lines) == 4
    # The first poll went out at once; then the monitor twice more and the resource.
    paths = polls(service)
    assert len(paths) == 4
    assert paths[-1].startswith(f"/vector_stores/{value['id']}?api-version={API_VERSION}")


def test_poll_shows_the_servers_retry_after_when_it_is_longer(service, capsys):
    code, _, err = run(capsys, "poll", start(service), "--interval", "0.001")

    assert code == 0
    assert "next poll in 0.01 s (server's Retry-After)" in err


@pytest.mark.parametrize(
    ("name", "code", "error_code", "verb"),
    [
        ("fail-store", ExitCode.FAILED, "VectorStoreCreationFailed", "failed"),
        ("cancel-store", ExitCode.CANCELED, "OperationCanceled", "was canceled"),
    ],
)
def test_poll_exit_status_and_output_of_a_failure(service, capsys, name, code, error_code, verb):
    exit_code, out, err = run(capsys, "poll", start(service, name), *FAST)

    assert exit_code == code
    document = json.loads(out)  # the last status document, with the service's error
    assert document["error"]["code"] == error_code
    assert document["status"] in ("Failed", "Canceled")
    assert f"lrokit: the operation {verb}: {error_code}: " in err


def test_poll_times_out_with_exit_4_and_a_resume_command(slow_service, capsys):
    url = start(slow_service)

    code, out, err = run(capsys, "poll", url, "--interval", "0.02", "--timeout", "0.1")

    assert code == ExitCode.TIMED_OUT == 4
    assert out == ""
    assert "lrokit: no outcome within 0.1 s (state Running)" in err
    command = re.search(r"lrokit resume (\S+) --endpoint (\S+) --wait", err)
    assert command is not None, err
    assert command.group(2) == slow_service.endpoint
    # The token in the hint resumes the same operation, without a request.
    before = len(slow_service.requests)
    code, out, _ = run(capsys, "resume", command.group(1), "--endpoint", command.group(2))
    assert code == 0
    assert "state:        Running" in out
    assert len(slow_service.requests) == before


def test_poll_sends_every_header_and_never_prints_their_values(service, capsys):
    url = start(service)

    code, out, err = run(
        capsys,
        "poll",
        url,
        *FAST,
        "--header",
        "x-ms-client-request-id: req-7",
        "-H",
        "Authorization: Bearer top-secret-value",
    )

    assert code == 0
    gets = [r for r in service.requests if r.method == "GET"]
    assert len(gets) == 4
    for request in gets:
        assert request.headers["x-ms-client-request-id"] == "req-7"
        assert request.headers["authorization"] == "Bearer top-secret-value"
    assert "top-secret-value" not in out + err


def test_poll_of_a_missing_operation_exits_5(service, capsys):
    url = f"{service.endpoint}operations/nope?api-version={API_VERSION}"

    code, out, err = run(capsys, "poll", url, *FAST)

    assert code == ExitCode.PROTOCOL == 5
    assert out == ""
    assert "rejected the status poll with HTTP 404" in err


def test_poll_final_state_via_operation_location_keeps_the_monitor(service, capsys):
    code, out, _ = run(
        capsys, "poll", start(service), *FAST, "--final-state-via", "operation-location"
    )

    assert code == 0
    assert json.loads(out) is None  # the demo monitor has no result, and it was not left
    assert not any(path.startswith("/vector_stores/") for path in polls(service))


def test_poll_final_state_via_location_reads_the_given_location(service, capsys):
    code, out, _ = run(capsys, "poll", start(service, "other"), *FAST, "--quiet")
    assert code == 0
    location = f"{service.endpoint}vector_stores/{json.loads(out)['id']}"

    code, out, _ = run(
        capsys,
        "poll",
        start(service, "mine"),
        *FAST,
        "--final-state-via",
        "location",
        "--location",
        location,
    )

    assert code == 0
    assert json.loads(out)["name"] == "other"  # read from --location, not resourceLocation
    # The start's api-version is carried onto the Location URL, as for a real start.
    assert polls(service)[-1] == location.removeprefix(service.endpoint.rstrip("/")) + (
        f"?api-version={API_VERSION}"
    )


def test_poll_saves_the_latest_token(service, capsys, tmp_path):
    saved = tmp_path / "op.token"

    code, _, _ = run(capsys, "poll", start(service), *FAST, "--save-token", str(saved))

    assert code == 0
    token = saved.read_text()
    assert token.endswith("\n")
    code, out, _ = run(capsys, "token", "inspect", f"@{saved}", "--json")
    described = json.loads(out)
    assert described["fields"]["state"] == "Succeeded"
    assert described["fields"]["attempt"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["op.token"]  # no temporary left


def test_poll_live_display_is_one_updating_line_on_a_terminal(service, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    code = main(["poll", start(service), *FAST])

    assert code == 0
    shown = terminal.getvalue()
    assert shown.count("\n") == 1
    assert shown.endswith("\n")
    frames = shown.rstrip("\n").split("\r\x1b[2K")[1:]
    assert frames[0] == "[1] Running, 33%, next poll in 0.02 s (interval)"
    assert frames[-1] == "[4] Succeeded, 100%"
    # The sleeps count the next poll down on the same line.
    assert any(
        re.fullmatch(r"\[2\] Running, 66%, next poll in [\d.]+ s \(interval\)", f) for f in frames
    )
    assert json.loads(capsys.readouterr().out)["object"] == "vector_store"


def test_poll_quiet_shows_no_progress(service, capsys):
    code, out, err = run(capsys, "poll", start(service), *FAST, "--quiet")

    assert code == 0
    assert err == ""
    assert json.loads(out)["object"] == "vector_store"


def test_poll_in_a_real_process_exits_with_the_outcome(service):
    finished = subprocess.run(
        [sys.executable, "-m", "lrokit", "poll", start(service, "fail-real"), *FAST],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == ExitCode.FAILED
    assert json.loads(finished.stdout)["status"] == "Failed"
    assert finished.stderr.splitlines()[0].startswith("[1] Running")  # plain lines
    assert "\x1b" not in finished.stderr


def no_sleep(monkeypatch) -> FakeClock:
    """Make the command's sleeps instant; the clock's ``sleeps`` are the delays it asked for."""
    clock = FakeClock()
    monkeypatch.setattr(_cli_service, "default_sleep", clock.sleep)
    return clock


def test_poll_retries_transient_faults_then_exits_5(capsys, monkeypatch):
    clock = no_sleep(monkeypatch)
    faults = FaultPlan(unavailable=1.0, retry_after=0.01)
    with DemoService(polls_to_complete=1, retry_after=0.01, faults=faults) as busy:
        url = start(busy)
        code, out, err = run(capsys, "poll", url, *FAST)
        tries = len(polls(busy))

    assert code == ExitCode.PROTOCOL
    assert out == ""
    assert tries == 6  # the first poll and five retries: the default policy's budget
    lines = err.splitlines()
    assert lines[0].startswith("[1] Running, HTTP 503, retry 1 of 5, next poll in ")
    assert "(back-off)" in lines[0]
    assert "6 transient faults in a row" in err
    assert "lrokit resume " in err  # worth resuming once the service recovers
    assert len(clock.sleeps) == 5


def test_poll_of_a_service_that_does_not_answer_exits_5(capsys, monkeypatch):
    no_sleep(monkeypatch)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/operations/1?api-version={API_VERSION}"

    code, out, err = run(capsys, "poll", url, *FAST)

    assert code == ExitCode.PROTOCOL
    assert out == ""
    assert "[1] Running, no answer, retry 1 of 5" in err
    assert "no answer" in err.splitlines()[-3]


def test_ctrl_c_exits_130_with_a_resume_command(slow_service, capsys, monkeypatch):
    def interrupted(seconds: float, cancel: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli_service, "default_sleep", interrupted)

    code, out, err = run(capsys, "poll", start(slow_service), *FAST)

    assert code == ExitCode.INTERRUPTED == 130
    assert out == ""
    assert "lrokit: interrupted (state Running)" in err
    assert re.search(r"lrokit resume \S+ --endpoint \S+ --wait", err)
    assert len(polls(slow_service)) == 1  # the first poll, then Ctrl-C during the sleep


# -- resume ----------------------------------------------------------------------------------


def test_resume_prints_the_state_without_a_request(service, capsys):
    token = token_of(service)
    before = len(service.requests)

    code, out, err = run(capsys, "resume", token, "--endpoint", service.endpoint)

    assert code == 0
    assert len(service.requests) == before
    rows = dict(line.split(": ", 1) for line in out.splitlines())
    assert rows["state"].strip() == "Running"
    assert rows["next_request"].strip() == "poll"
    assert rows["url"].strip().startswith(f"{service.endpoint}operations/")
    assert rows["signature"].strip() == "unsigned"
    assert err == ""


def test_resume_json(service, capsys):
    code, out, _ = run(
        capsys, "resume", token_of(service), "--endpoint", service.endpoint, "--json"
    )

    assert code == 0
    described = json.loads(out)
    assert described["state"] == "Running"
    assert described["attempt"] == 0
    assert described["kind"] == "lrokit._sync.Operation"


def test_resume_wait_prints_the_final_json(service, capsys):
    code, out, err = run(
        capsys,
        "resume",
        token_of(service, "resumed"),
        "--endpoint",
        service.endpoint,
        "--wait",
        *FAST,
    )

    assert code == 0
    assert json.loads(out)["name"] == "resumed"
    assert err.splitlines()[-1] == "[4] Succeeded, 100%"


def test_resume_reads_the_token_from_stdin(service, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(token_of(service, "piped") + "\n"))

    code, out, _ = run(capsys, "resume", "-", "--endpoint", service.endpoint, "--wait", *FAST)

    assert code == 0
    assert json.loads(out)["name"] == "piped"


def test_resume_reads_the_token_from_a_file(service, capsys, tmp_path):
    path = tmp_path / "op.token"
    path.write_text(token_of(service, "filed") + "\n")

    code, out, _ = run(
        capsys, "resume", f"@{path}", "--endpoint", service.endpoint, "--wait", *FAST
    )

    assert code == 0
    assert json.loads(out)["name"] == "filed"


def test_resume_sends_the_headers(service, capsys):
    token = token_of(service)
    service.clear_requests()

    code, _, _ = run(
        capsys,
        "resume",
        token,
        "--endpoint",
        service.endpoint,
        "--wait",
        *FAST,
        "-H",
        "x-trace: t1",
    )

    assert code == 0
    assert [r.headers.get("x-trace") for r in service.requests] == ["t1"] * 4


def test_resume_refuses_a_token_of_another_origin(service, slow_service, capsys):
    token = token_of(slow_service)  # written against another service's origin
    before = (len(service.requests), len(slow_service.requests))

    code, out, err = run(capsys, "resume", token, "--endpoint", service.endpoint, "--wait")

    assert code == ExitCode.TOKEN_REFUSED == 6
    assert out == ""
    assert "the token was refused" in err
    assert "origin" in err
    assert (len(service.requests), len(slow_service.requests)) == before


def test_resume_trusts_an_allowed_origin(capsys):
    token = (FIXTURES / "v2-running-other-origin.token").read_text()
    endpoint = "https://svc.example.com/"

    refused, _, _ = run(capsys, "resume", token, "--endpoint", endpoint)
    allowed, out, _ = run(
        capsys,
        "resume",
        token,
        "--endpoint",
        endpoint,
        "--allow-origin",
        "https://ops.example.org:8443",
    )

    assert (refused, allowed) == (ExitCode.TOKEN_REFUSED, 0)
    assert "https://ops.example.org:8443/status/s1" in out


def test_resume_of_a_failed_operation_exits_1(service, capsys, tmp_path):
    saved = tmp_path / "op.token"
    run(capsys, "poll", start(service, "fail-once"), *FAST, "--save-token", str(saved))
    before = len(service.requests)

    code, out, err = run(capsys, "resume", f"@{saved}", "--endpoint", service.endpoint, "--wait")

    assert code == ExitCode.FAILED
    assert json.loads(out) == {"status": "Failed"}  # tokens never carry the error body
    assert "the operation failed" in err
    assert len(service.requests) == before


def test_resume_wait_refuses_a_token_taken_before_the_start_was_answered(service, capsys):
    with Pipeline(service.endpoint) as pipeline:
        prepared = Operation.prepare(pipeline, "PUT", "vector_stores/x?api-version=1")
        token = str(prepared.rehydration_token)

    shown, out, _ = run(capsys, "resume", token, "--endpoint", service.endpoint)
    waited, _, err = run(capsys, "resume", token, "--endpoint", service.endpoint, "--wait")

    assert shown == 0
    assert "next_request: start" in out
    assert waited == ExitCode.TOKEN_REFUSED
    assert "before the start request was answered" in err
    assert service.requests == []


def test_resume_accepts_any_operation_class(capsys):
    # The fixture was written by 'pkg.CreateThing'; the CLI reads any kind.
    token = (FIXTURES / "v1-running-status-monitor.token").read_text()

    code, out, _ = run(capsys, "resume", token, "--endpoint", "https://svc.example.com", "--json")

    assert code == 0
    assert json.loads(out)["kind"] == "pkg.CreateThing"


# -- signed tokens ---------------------------------------------------------------------------


def signed_token(service: DemoService, tmp_path: Path, capsys, name: str = "signed") -> Path:
    """The file of the signed token that ``poll --save-token`` left (a Succeeded one)."""
    saved = tmp_path / "op.token"
    code, _, _ = run(
        capsys,
        "poll",
        start(service, name),
        *FAST,
        "--signing-key-file",
        key_file(tmp_path),
        "--key-id",
        "k1",
        "--save-token",
        str(saved),
        "--quiet",
    )
    assert code == 0
    return saved


def test_poll_signs_the_tokens_it_writes(service, capsys, tmp_path):
    saved = signed_token(service, tmp_path, capsys)

    _payload, key_id, _ = saved.read_text().strip().split(".")
    assert key_id == "k1"
    with Pipeline(
        service.endpoint, tokens=TokenPolicy(signer=TokenSigner({"k1": KEY}))
    ) as pipeline:
        assert Operation.rehydrate(pipeline, saved.read_text()).state.value == "Succeeded"


def test_resume_verifies_a_signed_token_with_the_key(service, capsys, tmp_path):
    saved = signed_token(service, tmp_path, capsys, "verified")
    key = key_file(tmp_path)

    code, out, err = run(
        capsys,
        "resume",
        f"@{saved}",
        "--endpoint",
        service.endpoint,
        "--signing-key-file",
        key,
        "--wait",
        *FAST,
    )

    assert code == 0, err
    assert json.loads(out)["name"] == "verified"
    assert "not checked" not in err


def test_resume_without_the_key_says_the_signature_was_not_checked(service, capsys, tmp_path):
    saved = signed_token(service, tmp_path, capsys)

    code, out, err = run(capsys, "resume", f"@{saved}", "--endpoint", service.endpoint)

    assert code == 0
    assert "signed-unverified" in out
    assert "signature was not checked" in err


def test_resume_refuses_a_tampered_signed_token(service, capsys, tmp_path):
    saved = signed_token(service, tmp_path, capsys)
    before = len(service.requests)

    code, out, err = run(
        capsys,
        "resume",
        tampered(saved.read_text().strip()),
        "--endpoint",
        service.endpoint,
        "--signing-key-file",
        key_file(tmp_path),
        "--wait",
    )

    assert code == ExitCode.TOKEN_REFUSED
    assert out == ""
    assert "signature does not match" in err
    assert len(service.requests) == before


# -- token inspect ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.token")))
def test_inspect_json_shows_every_field_of_each_released_token(capsys, fixture):
    expected = json.loads((FIXTURES / f"{fixture}.json").read_text())
    token = (FIXTURES / f"{fixture}.token").read_text().strip()

    code, out, _ = run(capsys, "token", "inspect", token, "--json")

    assert code == 0
    described = json.loads(out)
    assert described["fields"] == expected
    assert described["version"] == int(fixture[1])
    assert described["size"] == len(token)
    status = "signed-unverified" if fixture == "v2-signed" else "unsigned"
    assert described["signature"]["status"] == status


def test_inspect_human_readable(service, capsys):
    token = token_of(service)

    code, out, _ = run(capsys, "token", "inspect", token)

    assert code == 0
    rows = {
        name: value.strip() for name, value in (line.split(":", 1) for line in out.splitlines())
    }
    assert rows["version"] == "2"
    assert rows["size"] == f"{len(token)} bytes (limit 4096)"
    assert rows["signature"] == "unsigned"
    assert rows["state"] == "Running"
    assert rows["polling_url"].startswith("/operations/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", rows["created_at"])


def test_inspect_signature_status(service, capsys, tmp_path):
    token = signed_token(service, tmp_path, capsys).read_text().strip()
    key = key_file(tmp_path)
    other_key = tmp_path / "other.key"
    other_key.write_bytes(b"x" * 32)

    def status(*argv: str) -> tuple[int, str, str]:
        code, out, err = run(capsys, "token", "inspect", *argv, "--json")
        return code, json.loads(out)["signature"]["status"], err

    assert status(token) == (0, "signed-unverified", "")
    assert status(token, "--signing-key-file", key) == (0, "signed-valid", "")
    code, shown, err = status(tampered(token), "--signing-key-file", key)
    assert (code, shown) == (ExitCode.TOKEN_REFUSED, "signed-invalid")
    assert "signature does not match" in err
    code, shown, _ = status(token, "--signing-key-file", str(other_key))
    assert (code, shown) == (ExitCode.TOKEN_REFUSED, "signed-invalid")
    code, shown, _ = status(token, "--signing-key-file", key, "--key-id", "k2")
    assert (code, shown) == (ExitCode.TOKEN_REFUSED, "signed-invalid")
    code, shown, err = status(token_of(service), "--signing-key-file", key)
    assert (code, shown) == (ExitCode.TOKEN_REFUSED, "unsigned")
    assert "not signed" in err


def test_inspect_shows_a_tampered_token_as_invalid_in_words(service, capsys, tmp_path):
    token = tampered(signed_token(service, tmp_path, capsys).read_text().strip())

    code, out, _ = run(capsys, "token", "inspect", token, "--signing-key-file", key_file(tmp_path))

    assert code == ExitCode.TOKEN_REFUSED
    assert re.search(r"^signature: +signed-invalid \(key id k1\)$", out, re.MULTILINE)
    assert re.search(r"^attempt: +99$", out, re.MULTILINE)  # the altered field, shown


def test_inspect_never_prints_credentials_or_keys(capsys, tmp_path):
    with Pipeline("https://svc.example.com/", tokens=TokenPolicy(secret_query_parameters=())) as p:
        operation = Operation.from_monitor(p, "operations/1?api-version=1&sig=SAS-SECRET-VALUE")
        token = str(operation.rehydration_token)
    assert "SAS-SECRET-VALUE" in json.dumps(unb64(token))

    shown = "".join(run(capsys, "token", "inspect", token, *extra)[1] for extra in ([], ["--json"]))

    assert "SAS-SECRET-VALUE" not in shown
    assert "sig=" in shown
    signer = TokenSigner({"k": KEY})
    with Pipeline("https://svc.example.com/", tokens=TokenPolicy(signer=signer)) as p:
        signed = str(Operation.from_monitor(p, "operations/1").rehydration_token)
    code, out, err = run(
        capsys, "token", "inspect", signed, "--signing-key-file", key_file(tmp_path)
    )
    assert code == 0
    mac = signed.rsplit(".", 1)[1]
    for secret in (KEY.hex(), mac, repr(KEY)):
        assert secret not in out + err


@pytest.mark.parametrize(
    "garbage", ["not a token!", "eyJ2Ijo5OX0", "x" * 5000, "eyJ2IjoyfQ.k1.short"]
)
def test_inspect_refuses_what_is_not_a_token(capsys, garbage):
    code, out, err = run(capsys, "token", "inspect", garbage)

    assert code == ExitCode.TOKEN_REFUSED
    assert out == ""
    assert err.startswith("lrokit token inspect: not a readable token: ")
    assert garbage not in err


def test_inspect_reads_stdin(capsys, monkeypatch):
    token = (FIXTURES / "v2-fetch-final.token").read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(token))

    code, out, _ = run(capsys, "token", "inspect", "-", "--json")

    assert code == 0
    assert json.loads(out)["fields"]["pending"] == "fetch-final"


# -- help and usage errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["poll"],
            ["URL", "--header", "--interval", "--timeout", "--final-state-via", "exit status:"],
        ),
        (
            ["resume"],
            ["TOKEN", "--endpoint", "--wait", "--signing-key-file", "@op.token", "exit status:"],
        ),
        (["token", "inspect"], ["signed-unverified", "signed-invalid", "--json", "exit status:"]),
    ],
)
def test_each_command_has_help_with_examples_and_exit_codes(capsys, argv, expected):
    code, out, _ = run(capsys, *argv, "--help")

    assert code == 0
    assert out.startswith(f"usage: lrokit {' '.join(argv)}")
    assert "examples:\n  lrokit " + argv[0] in out
    for word in expected:
        assert word in out
    if argv[0] != "token":
        # poll reads no token, so it cannot exit 6 and its help does not say it may.
        token_refused = ("6 ",) if argv[0] == "resume" else ()
        for status in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", *token_refused, "130 ", "143 "):
            assert re.search(rf"^  {status}", out, re.MULTILINE), status
        assert bool(re.search(r"^  6 ", out, re.MULTILINE)) == bool(token_refused)


def test_the_top_level_help_lists_the_new_commands(capsys):
    _, out, _ = run(capsys, "--help")
    for command in ("poll", "resume", "token"):
        assert re.search(rf"^    {command} ", out, re.MULTILINE), command


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["poll"], "the following arguments are required: URL"),
        (["poll", "ftp://svc.example.com/op"], "not an absolute http(s) URL"),
        (["poll", "https://user:pw@svc.example.com/op"], "user info is refused"),
        (["poll", "https://svc.example.com/op", "-H", "NoColon"], "a header is 'Name: value'"),
        (["poll", "https://svc.example.com/op", "-H", "Bad Name: x"], "not a valid header name"),
        (["poll", "https://svc.example.com/op", "--interval", "0"], "must be a positive number"),
        (["poll", "https://svc.example.com/op", "--final-state-via", "body"], "invalid choice"),
        (
            ["poll", "https://svc.example.com/op", "--final-state-via", "location"],
            "needs --location URL",
        ),
        (
            ["poll", "https://svc.example.com/op", "--final-state-via", "original-uri"],
            "needs --original-uri URL",
        ),
        (
            ["poll", "https://svc.example.com/op", "--original-uri", "https://svc.example.com/x"],
            "only with --final-state-via original-uri",
        ),
        (
            ["poll", "https://svc.example.com/op", "--location", "https://evil.example.net/x"],
            "trust it with --allow-origin",
        ),
        (
            ["poll", "https://svc.example.com/op", "--allow-origin", "http://plain.example.com"],
            "http next to an https endpoint",
        ),
        (
            ["poll", "https://svc.example.com/op", "--key-id", "k1"],
            "--key-id needs --signing-key-file",
        ),
        (["resume", "T"], "the following arguments are required: --endpoint"),
        (
            ["resume", "T", "--endpoint", "https://svc.example.com", "--timeout", "1"],
            "--timeout need --wait",
        ),
        (
            ["resume", "T", "--endpoint", "https://svc.example.com", "--wait", "--json"],
            "--json prints the state",
        ),
        (
            ["resume", "@/nonexistent/op.token", "--endpoint", "https://svc.example.com"],
            "cannot read the token file",
        ),
        (["token"], "a subcommand is required (inspect)"),
        (
            ["token", "inspect", "T", "--signing-key-file", "/nonexistent/key"],
            "cannot read the key file",
        ),
    ],
)
def test_usage_errors_exit_2(capsys, argv, complaint):
    code, out, err = run(capsys, *argv)

    assert code == ExitCode.USAGE == 2
    assert out == ""
    assert complaint in err
    assert err.startswith("usage: lrokit ")


def test_a_short_signing_key_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(
        capsys, "token", "inspect", "T", "--signing-key-file", key_file(tmp_path, b"short")
    )

    assert code == 2
    assert "shorter than 32 bytes" in err


def test_exit_codes_are_distinct():
    values = [code.value for code in ExitCode]
    assert len(set(values)) == len(values)
    assert values[:3] == [0, 1, 2]  # success, failure and usage errors as usual


# -- the documentation's examples ------------------------------------------------------------

CLI_PAGE = Path(__file__).parent.parent / "docs" / "cli.md"


def test_every_shell_example_of_the_cli_page_runs(tmp_path):
    if not (shutil.which("bash") and shutil.which("curl")):
        missing("the CLI page's examples need bash and curl")
    blocks = [b.code for b in load_checker().blocks(CLI_PAGE) if b.language == "shell"]
    assert len(blocks) >= 8
    # `lrokit` is this interpreter's lrokit, whatever is installed elsewhere on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "lrokit"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lrokit "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "session"
    work.mkdir()
    # One session, as a reader would type it; operations complete on their first poll, so
    # nothing sleeps.
    script = "set -euo pipefail\n" + "\n".join(blocks)
    with DemoService(polls_to_complete=1, retry_after=0.01) as service:
        env = {
            **os.environ,
            "ENDPOINT": service.endpoint,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        finished = subprocess.run(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        seen = service.requests
        names = sorted(record.name for record in service.operations())

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "Traceback" not in finished.stderr
    # What the page says happens, happened.
    assert names == sorted(
        ["fail-store", "my-store", "saved-store", "signed-store", "with-headers"]
    )
    assert json.loads((work / "store.json").read_text())["name"] == "signed-store"
    assert json.loads((work / "again.json").read_text())["name"] == "saved-store"
    assert json.loads((work / "outcome.json").read_text())["status"] == "Failed"
    assert "exit status 1\n" in finished.stdout
    assert "exit status 6\n" in finished.stdout
    assert json.loads((work / "fields.json").read_text())["signature"]["status"] == "unsigned"
    assert re.search(r"^signature: +signed-valid \(key id k1\)$", finished.stdout, re.MULTILINE)
    assert any(r.headers.get("x-ms-client-request-id") == "docs-42" for r in seen)
