"""Rehydration tokens: the v1 wire format, round trips, refusal of anything else, no secrets."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
import responses

import lrokit._token as token_module
from lrokit import InvalidTokenError, Operation, OperationCore, RehydrationToken, ResponseView
from lrokit._token import MAX_TOKEN_BYTES, TokenV1

#: A version-1 token as released. It must keep decoding to FIELDS_V1, and FIELDS_V1 must keep
#: encoding to it: a format change cannot slip through unnoticed.
TOKEN_V1 = (
    "eyJ2IjoxLCJzIjoiUnVubmluZyIsInAiOiJzdGF0dXMtbW9uaXRvciIsIm0iOiJQT1NUIiwidSI6Imh0dHBzOi8vc3Zj"
    "LmV4YW1wbGUuY29tL2l0ZW1zP2FwaS12ZXJzaW9uPTIwMjQtMDEtMDEiLCJuIjoicG9sbCIsInB1IjoiaHR0cHM6Ly9z"
    "dmMuZXhhbXBsZS5jb20vb3BlcmF0aW9ucy9vcDE_YXBpLXZlcnNpb249MjAyNC0wMS0wMSIsImx1IjoiaHR0cHM6Ly9z"
    "dmMuZXhhbXBsZS5jb20vcmVzdWx0cy9vcDE_YXBpLXZlcnNpb249MjAyNC0wMS0wMSIsImF2IjoiMjAyNC0wMS0wMSIs"
    "ImZ2IjoibG9jYXRpb24iLCJhIjozLCJjIjoxNzAwMDAwMDAwLjUsImlkIjoiN2YxYyIsImsiOiJwa2cuQ3JlYXRlVGhp"
    "bmcifQ"
)
FIELDS_V1 = TokenV1(
    state="Running",
    protocol="status-monitor",
    method="POST",
    initial_url="https://svc.example.com/items?api-version=2024-01-01",
    pending="poll",
    polling_url="https://svc.example.com/operations/op1?api-version=2024-01-01",
    location_url="https://svc.example.com/results/op1?api-version=2024-01-01",
    api_version="2024-01-01",
    final_state_via="location",
    attempt=3,
    created_at=1700000000.5,
    operation_id="7f1c",
    kind="pkg.CreateThing",
)
VALID = {
    "v": 1,
    "s": "Running",
    "p": "location",
    "m": "POST",
    "u": "https://svc.example.com/x",
    "n": "poll",
    "pu": "https://svc.example.com/ops/1",
}


def encode(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- the wire format and round trips -------------------------------------------------------------


def test_released_v1_token_still_decodes_and_encodes_identically() -> None:
    assert RehydrationToken.from_str(TOKEN_V1).fields == FIELDS_V1
    assert str(RehydrationToken(FIELDS_V1)) == TOKEN_V1


def test_transport_form_is_unpadded_base64url() -> None:
    text = str(RehydrationToken(FIELDS_V1))
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert RehydrationToken(FIELDS_V1).to_bytes() == text.encode("ascii")


def test_round_trip_through_str_bytes_and_parse() -> None:
    token = RehydrationToken(FIELDS_V1)
    assert RehydrationToken.from_str(str(token)) == token
    assert RehydrationToken.from_bytes(token.to_bytes()) == token
    assert RehydrationToken.from_bytes(bytearray(token.to_bytes())) == token
    assert RehydrationToken.parse(str(token)) == token
    assert RehydrationToken.parse(token.to_bytes()) == token
    assert RehydrationToken.parse(token) is token
    assert RehydrationToken.from_str(f"  {token}\n") == token  # surrounding whitespace
    assert hash(RehydrationToken.parse(str(token))) == hash(token)
    assert token != str(token)
    assert "status-monitor" in repr(token)


def test_defaults_are_omitted_and_restored() -> None:
    minimal = TokenV1("Running", "location", "POST", "https://svc.example.com/x", "poll")
    text = str(RehydrationToken(minimal))
    decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    assert decoded == {
        "v": 1,
        "s": "Running",
        "p": "location",
        "m": "POST",
        "u": "https://svc.example.com/x",
        "n": "poll",
    }
    assert RehydrationToken.from_str(text).fields == minimal


def test_core_tokens_round_trip() -> None:
    core = OperationCore("PUT", "https://svc.example.com/items/1?api-version=1", kind="k")
    core.receive(ResponseView.build(202, {"Operation-Location": "/ops/1"}, None, core.initial_url))
    parsed = RehydrationToken.parse(str(core.token()))
    assert parsed.fields == core.snapshot()
    assert OperationCore.restore(parsed).snapshot() == core.snapshot()


# -- refusals ----------------------------------------------------------------------------------


def test_size_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object) -> bytes:
        raise AssertionError("an oversized token must not be decoded")

    monkeypatch.setattr(token_module.base64, "urlsafe_b64decode", no_decoding)
    oversized = "A" * (MAX_TOKEN_BYTES + 1)
    with pytest.raises(InvalidTokenError, match="exceeds") as info:
        RehydrationToken.from_str(oversized)
    assert oversized not in str(info.value)
    with pytest.raises(InvalidTokenError, match="exceeds"):
        RehydrationToken.from_bytes(b"A" * 101, max_bytes=100)


def test_a_token_at_the_size_limit_is_read() -> None:
    text = str(RehydrationToken(FIELDS_V1))
    assert RehydrationToken.from_str(text, max_bytes=len(text)).fields == FIELDS_V1


BAD_TOKENS: dict[str, tuple[Any, str]] = {
    "empty": ("", "JSON"),
    "not base64": ("!!!!$$$$", "base64"),
    "base64 with a stray character": (encode(VALID)[:10] + "*" + encode(VALID)[10:], "base64"),
    "impossible length": ("abcde", "base64"),
    "standard base64 alphabet": (
        base64.b64encode(json.dumps({**VALID, "u": "https://svc.example.com/?>>>"}).encode())
        .rstrip(b"=")
        .decode(),
        "base64",
    ),
    "not JSON": (encode(b"{this is not json"), "JSON"),
    "JSON array": (encode([1, 2]), "format"),
    "JSON string": (encode("SECRETVALUE"), "format"),
    "wrong field type": (encode({**VALID, "s": ["SECRETVALUE"]}), "format"),
    "wrong attempt type": (encode({**VALID, "a": "SECRETVALUE"}), "format"),
    "missing field": (encode({k: v for k, v in VALID.items() if k != "u"}), "format"),
    "unknown field": (encode({**VALID, "zz": "SECRETVALUE"}), "format"),
    "unknown version": (encode({**VALID, "v": 2}), "unknown version"),
    "version as text": (encode({**VALID, "v": "1"}), "format"),
    "no version": (encode({k: v for k, v in VALID.items() if k != "v"}), "format"),
    "non-ASCII": ("eyJ2Ijox€", "ASCII"),
}


@pytest.mark.parametrize(("text", "reason"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_malformed_tokens_are_refused_without_echoing_them(text: str, reason: str) -> None:
    for attempt in (
        lambda: RehydrationToken.from_str(text),
        lambda: RehydrationToken.parse(text),
        lambda: RehydrationToken.from_bytes(text.encode()),
    ):
        with pytest.raises(InvalidTokenError) as info:
            attempt()
        message = str(info.value)
        if text:
            assert text not in message
        assert "SECRETVALUE" not in message
        assert "svc.example.com" not in message
        # Suppressed context: a traceback does not show the decoder's view of the input.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
    with pytest.raises(InvalidTokenError, match=reason):
        RehydrationToken.from_str(text)


@pytest.mark.parametrize("value", [None, 42, 1.5, ["x"], {"v": 1}])
def test_non_text_is_refused(value: Any) -> None:
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.parse(value)
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.from_str(value)
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.from_bytes(value)


def test_fields_are_immutable() -> None:
    with pytest.raises(AttributeError):
        FIELDS_V1.state = "Succeeded"  # type: ignore[misc]
    assert msgspec.structs.replace(FIELDS_V1, attempt=4).attempt == 4


# -- no secrets ------------------------------------------------------------------------------


def test_token_holds_no_headers_cookies_or_bodies(rsps: responses.RequestsMock, pipeline) -> None:
    pipeline.session.cookies.set("session", "COOKIE-SECRET", domain="svc.example.com")
    rsps.post(
        "https://svc.example.com/jobs",
        status=202,
        json={"status": "Running", "echo": "RESPONSE-SECRET"},
        headers={
            "Operation-Location": "https://svc.example.com/ops/1",
            "Set-Cookie": "sid=SETCOOKIE-SECRET",
            "x-ms-request-id": "HEADER-SECRET",
        },
    )
    operation = Operation.start(
        pipeline,
        "POST",
        "jobs",
        json={"password": "BODY-SECRET"},
        headers={"Authorization": "Bearer AUTH-SECRET"},
        operation_headers={"x-ms-client-request-id": "CLIENT-HEADER-SECRET"},
    )
    # The request really carried the secrets ...
    sent = rsps.calls[0].request
    assert sent.headers["Authorization"] == "Bearer AUTH-SECRET"
    assert b"BODY-SECRET" in sent.body
    assert "COOKIE-SECRET" in sent.headers["Cookie"]
    # ... and the token carries none of them.
    text = str(operation.rehydration_token)
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    for secret in (
        "AUTH-SECRET",
        "Bearer",
        "BODY-SECRET",
        "password",
        "COOKIE-SECRET",
        "SETCOOKIE-SECRET",
        "RESPONSE-SECRET",
        "HEADER-SECRET",
        "CLIENT-HEADER-SECRET",
    ):
        assert secret not in decoded
        assert secret not in text
    assert json.loads(decoded)["pu"] == "https://svc.example.com/ops/1"
