"""Rehydration tokens: the wire format and its fixtures, round trips, refusals, signing, no
secrets, and tokens taken before the start response (``Operation.prepare``)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import responses

import lrokit._signing as signing_module
import lrokit._token as token_module
from lrokit import (
    InvalidTokenError,
    Operation,
    OperationCore,
    OperationState,
    OriginPolicy,
    Pipeline,
    ProtocolOptions,
    RehydrationToken,
    ResponseView,
    TokenOriginError,
    TokenPolicy,
    TokenSigner,
    UntrustedOriginError,
)
from lrokit._token import CURRENT_VERSION, KNOWN_VERSIONS, MAX_TOKEN_BYTES, TokenV1, TokenV2
from token_helpers import FIXTURE_SIGNER, FIXTURES, b64, unb64

ENDPOINT = "https://svc.example.com/"  # the conftest pipeline's endpoint
START = f"{ENDPOINT}jobs"
MONITOR = f"{ENDPOINT}operations/1"
KEY_A = b"A" * 32
KEY_B = b"B" * 32


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("v*.token"))


def running_core(
    tokens: TokenPolicy | None = None,
    policy: OriginPolicy | None = None,
    kind: str | None = None,
) -> OperationCore:
    core = OperationCore(
        "POST",
        f"{ENDPOINT}items?api-version=2024-01-01",
        origin_policy=policy or OriginPolicy(ENDPOINT),
        operation_id="op-1",
        kind=kind,
        created_at=1700000000.123456,
        token_policy=tokens,
    )
    headers = {"Operation-Location": f"{ENDPOINT}operations/1", "Location": "/results/1"}
    core.receive(ResponseView.build(202, headers, None, core.initial_url))
    return core


# -- fixtures of every released format version ---------------------------------------------


def test_every_known_version_has_a_fixture() -> None:
    versions = {int(name[1 : name.index("-")]) for name in fixture_names()}
    assert versions == set(KNOWN_VERSIONS)
    assert max(KNOWN_VERSIONS) == CURRENT_VERSION
    for name in fixture_names():
        assert (FIXTURES / f"{name}.json").is_file(), f"{name}.token has no expected fields"


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_decodes_to_its_fields(name: str) -> None:
    text = (FIXTURES / f"{name}.token").read_text().strip()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    signer = FIXTURE_SIGNER if "signed" in name else None
    token = RehydrationToken.from_str(text, signer=signer)
    assert msgspec.structs.asdict(token.fields) == expected
    assert str(token) == text  # the transport form is kept as it was read
    if name.startswith(f"v{CURRENT_VERSION}-"):
        # Encoding is stable within a version: the same fields give the same text.
        assert str(RehydrationToken(TokenV2(**expected), signer=signer)) == text


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_restores_on_a_client_of_its_service(name: str) -> None:
    text = (FIXTURES / f"{name}.token").read_text().strip()
    tokens = TokenPolicy(signer=FIXTURE_SIGNER if "signed" in name else None)

    class Fixture(Operation[Any]):
        @classmethod
        def kind(cls) -> str:
            return str(json.loads((FIXTURES / f"{name}.json").read_text())["kind"])

    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    with Pipeline(ENDPOINT, allowed_origins=["https://ops.example.org:8443"], tokens=tokens) as p:
        operation = Fixture.rehydrate(p, text, json=None)
    assert operation.state.value == expected["state"]
    core = operation.core
    url = core.initial_url if expected["pending"] == "start" else core.next_request_url
    assert url is not None
    assert url.startswith(("https://svc.example.com/", "https://ops.example.org:8443/"))
    assert "api-version=2024-01-01" in url
    if expected["start_operation_id"] is not None:  # sent again with the start
        assert operation._start_operation_id() == expected["start_operation_id"]


def test_version_1_is_read_and_upgraded() -> None:
    text = (FIXTURES / "v1-running-status-monitor.token").read_text().strip()
    assert unb64(text)["v"] == 1
    token = RehydrationToken.from_str(text)
    assert isinstance(token.fields, TokenV2)
    assert (
        token.fields.polling_url == "https://svc.example.com/operations/op1?api-version=2024-01-01"
    )
    assert token.fields.api_version is None  # the initial URL's query says it
    core = OperationCore.restore(token, origin_policy=OriginPolicy(ENDPOINT))
    assert core.api_version == "2024-01-01"
    assert core.options.final_state_via is not None
    assert core.options.final_state_via.value == "location"
    # Written again, it is version 2 with URLs relative to the origin.
    rewritten = unb64(str(core.token()))
    assert rewritten["v"] == 2
    assert rewritten["o"] == "https://svc.example.com"
    assert rewritten["pu"] == "/operations/op1?api-version=2024-01-01"


def test_version_1_fields_given_directly_are_upgraded() -> None:
    v1 = TokenV1("Running", "location", "POST", "https://svc.example.com/x", "retry")
    token = RehydrationToken(v1)
    assert isinstance(token.fields, TokenV2)
    assert token.fields.pending == "poll"  # a retry repeats the poll
    with pytest.raises(InvalidTokenError, match="version-1"):
        RehydrationToken(TokenV1("Paused", "location", "POST", "https://svc.example.com/x", "poll"))


# -- the wire format and round trips ---------------------------------------------------------


def test_transport_form_is_unpadded_base64url_json() -> None:
    text = str(running_core(kind="pkg.CreateThing").token())
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert unb64(text) == {
        "v": 2,
        "o": "https://svc.example.com",
        "s": "Running",
        "p": "status-monitor",
        "m": "POST",
        "u": "/items?api-version=2024-01-01",
        "n": "poll",
        "pu": "/operations/1?api-version=2024-01-01",
        "lu": "/results/1?api-version=2024-01-01",
        "c": 1700000000.123,
        "id": "op-1",
        "k": "pkg.CreateThing",
    }


def test_round_trip_through_str_bytes_and_parse() -> None:
    token = running_core().token()
    assert RehydrationToken.from_str(str(token)) == token
    assert RehydrationToken.from_bytes(token.to_bytes()) == token
    assert RehydrationToken.from_bytes(bytearray(token.to_bytes())) == token
    assert RehydrationToken.parse(str(token)) == token
    assert RehydrationToken.parse(token.to_bytes()) == token
    assert RehydrationToken.parse(token) is token
    assert RehydrationToken.from_str(f"  {token}\n") == token  # surrounding whitespace
    padded = str(token) + "=" * (-len(str(token)) % 4)
    assert RehydrationToken.from_str(padded) == token
    assert hash(RehydrationToken.parse(str(token))) == hash(token)
    assert token != str(token)
    assert "status-monitor" in repr(token)
    assert "signed=False" in repr(token)


def test_core_tokens_round_trip() -> None:
    core = running_core()
    parsed = RehydrationToken.parse(str(core.token()))
    assert parsed.fields == core.snapshot()
    restored = OperationCore.restore(parsed, origin_policy=OriginPolicy(ENDPOINT))
    assert restored.snapshot() == core.snapshot()
    assert restored.polling_url == core.polling_url
    assert restored.location_url == core.location_url
    assert restored.initial_url == core.initial_url


def test_defaults_are_omitted_and_restored() -> None:
    minimal = TokenV2(
        state="Running",
        protocol="location",
        method="POST",
        initial_url="https://h.example/x",
        pending="poll",
        created_at=1.5,
    )
    text = str(RehydrationToken(minimal))
    assert unb64(text) == {
        "v": 2,
        "s": "Running",
        "p": "location",
        "m": "POST",
        "u": "https://h.example/x",
        "n": "poll",
        "c": 1.5,
    }
    assert RehydrationToken.from_str(text).fields == minimal


def test_urls_of_other_origins_stay_absolute_and_user_info_never_travels() -> None:
    policy = OriginPolicy("https://user:pw@svc.example.com/", ["https://ops.example.org:8443"])
    core = OperationCore("PUT", "https://user:pw@svc.example.com/things/1", origin_policy=policy)
    headers = {"Azure-AsyncOperation": "https://ops.example.org:8443/status/1"}
    core.receive(ResponseView.build(201, headers, None, core.initial_url))
    text = str(core.token())
    document = unb64(text)
    assert "pw" not in json.dumps(document)
    assert document["o"] == "https://svc.example.com"
    assert document["u"] == "/things/1"
    assert document["pu"] == "https://ops.example.org:8443/status/1"
    restored = OperationCore.restore(RehydrationToken.from_str(text), origin_policy=policy)
    assert restored.polling_url == "https://ops.example.org:8443/status/1"
    assert restored.initial_url == "https://svc.example.com/things/1"


def test_same_origin_urls_spelled_differently_are_shortened_too() -> None:
    policy = OriginPolicy("https://svc.example.com/base/")
    assert policy.shorten("https://svc.example.com/a?b") == "/a?b"
    assert policy.shorten("HTTPS://SVC.example.com:443/a") == "/a"
    assert policy.shorten("https://svc.example.com?q=1") == "/?q=1"
    assert policy.shorten("https://svc.example.com//evil.example/x") is None  # would read as a host
    assert policy.shorten("https://svc.example.com:8443/a") is None
    assert policy.shorten("https://other.example/a") is None
    assert policy.origin_url == "https://svc.example.com"
    assert OriginPolicy("http://[0::1]:8080/").origin_url == "http://[::1]:8080"


def test_created_at_is_kept_to_the_millisecond_and_api_version_only_when_needed() -> None:
    core = running_core()
    assert core.snapshot().created_at == 1700000000.123
    assert core.snapshot().api_version is None
    core.api_version = "2099-01-01"  # differs from the initial URL's: written
    assert core.snapshot().api_version == "2099-01-01"
    restored = OperationCore.restore(core.token(), origin_policy=OriginPolicy(ENDPOINT))
    assert restored.api_version == "2099-01-01"


# -- refusals ------------------------------------------------------------------------------

VALID = {
    "v": 2,
    "s": "Running",
    "p": "location",
    "m": "POST",
    "u": "https://svc.example.com/x",
    "n": "poll",
    "pu": "https://svc.example.com/ops/1",
    "c": 1.0,
}
BAD_TOKENS: dict[str, tuple[Any, str]] = {
    "empty": ("", "JSON"),
    "not base64": ("!!!!$$$$", "base64"),
    "base64 with a stray character": (b64(VALID)[:10] + "*" + b64(VALID)[10:], "base64"),
    "impossible length": ("abcde", "base64"),
    "standard base64 alphabet": (
        base64.b64encode(json.dumps({**VALID, "u": "https://svc.example.com/?>>>"}).encode())
        .rstrip(b"=")
        .decode(),
        "base64",
    ),
    "two dots": (b64(VALID) + ".a.b.c", "signature is malformed"),
    "malformed signature": (b64(VALID) + ".kid.SECRETVALUE", "signature is malformed"),
    "not JSON": (b64(b"{this is not json"), "JSON"),
    "truncated JSON": (b64(json.dumps(VALID).encode()[:-7]), "JSON"),
    "JSON array": (b64([1, 2]), "format"),
    "JSON string": (b64("SECRETVALUE"), "format"),
    "wrong field type": (b64({**VALID, "m": ["SECRETVALUE"]}), "format"),
    "unknown state": (b64({**VALID, "s": "SECRETVALUE"}), "format"),
    "unknown protocol": (b64({**VALID, "p": "SECRETVALUE"}), "format"),
    "lower-case method": (b64({**VALID, "m": "post"}), "format"),
    "wrong attempt type": (b64({**VALID, "a": "SECRETVALUE"}), "format"),
    "negative attempt": (b64({**VALID, "a": -1}), "format"),
    "huge attempt": (b64({**VALID, "a": 2**40}), "format"),
    "negative created_at": (b64({**VALID, "c": -5.0}), "format"),
    "operation id with a newline": (b64({**VALID, "id": "SECRETVALUE\r\nX-Evil: 1"}), "format"),
    "origin with a path": (b64({**VALID, "o": "https://svc.example.com/SECRETVALUE"}), "format"),
    "origin with user info": (b64({**VALID, "o": "https://SECRETVALUE@svc.example.com"}), "format"),
    "URL too long": (b64({**VALID, "pu": "/" + "S" * 3000}), "exceeds"),
    "empty URL": (b64({**VALID, "pu": ""}), "format"),
    "missing field": (b64({k: v for k, v in VALID.items() if k != "u"}), "format"),
    "unknown field": (b64({**VALID, "SECRETVALUE": 1}), "format"),
    "unknown version": (b64({**VALID, "v": 99}), "version 99"),
    "huge version": (b64({**VALID, "v": 10**12}), "unknown version"),
    # Within the default size limit. Python 3.12 and older stop msgspec at about 1,000 levels
    # (RecursionError: "nests"); 3.13 follows about 10,000, so the document decodes and is
    # refused for its shape ("format"). Nesting past every Python's limit has its own test.
    "deeply nested": (
        b64(b'{"SECRETVALUE":' + b"[" * 1000 + b"]" * 1000 + b"}"),
        "nests|format",
    ),
    "bad UTF-8": (b64(json.dumps(VALID).encode().replace(b'"POST', b'"SECRETVALUE\xff')), "UTF-8"),
    "version as text": (b64({**VALID, "v": "2"}), "format"),
    "no version": (b64({k: v for k, v in VALID.items() if k != "v"}), "format"),
    "version 1 with version 2 fields": (b64({**VALID, "v": 1, "o": "https://h.example"}), "format"),
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
        assert len(message) < 300
        # Suppressed context: a traceback does not show the decoder's view of the input.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None or info.value.__suppress_context__
    with pytest.raises(InvalidTokenError, match=reason):
        RehydrationToken.from_str(text)


def test_nesting_past_the_decoders_limit_is_refused_as_such() -> None:
    # 20,000 levels: past the recursion limit msgspec meets on every supported Python.
    text = b64(b'{"SECRETVALUE":' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    with pytest.raises(InvalidTokenError, match="nests too deeply") as info:
        RehydrationToken.from_str(text, max_bytes=len(text))
    assert "SECRETVALUE" not in str(info.value)


@pytest.mark.parametrize("value", [None, 42, 1.5, ["x"], {"v": 1}])
def test_non_text_is_refused(value: Any) -> None:
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.parse(value)
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.from_str(value)
    with pytest.raises(InvalidTokenError, match="must be"):
        RehydrationToken.from_bytes(value)


def test_size_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object) -> bytes:
        raise AssertionError("an oversized token must not be decoded")

    monkeypatch.setattr(token_module, "_base64_decoder", SimpleNamespace(decode=no_decoding))
    monkeypatch.setattr(signing_module.hmac, "new", no_decoding)
    oversized = "A" * (MAX_TOKEN_BYTES + 1)
    with pytest.raises(InvalidTokenError, match="exceeds") as info:
        RehydrationToken.from_str(oversized)
    assert oversized not in str(info.value)
    with pytest.raises(InvalidTokenError, match="exceeds"):
        RehydrationToken.from_bytes(b"A" * 101, max_bytes=100)
    with pytest.raises(InvalidTokenError, match="exceeds"):
        RehydrationToken.from_str("A" * 10_000_000, signer=FIXTURE_SIGNER)


def test_a_token_at_the_size_limit_is_read() -> None:
    text = str(running_core().token())
    assert RehydrationToken.from_str(text, max_bytes=len(text)).fields.method == "POST"
    with pytest.raises(InvalidTokenError, match="exceeds"):
        RehydrationToken.from_str(text, max_bytes=len(text) - 1)


def test_the_pipeline_size_limit_applies_to_rehydrate(rsps: responses.RequestsMock) -> None:
    text = str(running_core().token())
    with (
        Pipeline(ENDPOINT, tokens=TokenPolicy(max_bytes=100)) as pipeline,
        pytest.raises(InvalidTokenError, match="exceeds"),
    ):
        Operation[Any].rehydrate(pipeline, text)
    with pytest.raises(ValueError, match="max_bytes"):
        TokenPolicy(max_bytes=10)
    assert len(rsps.calls) == 0


def test_fields_are_immutable() -> None:
    fields = running_core().snapshot()
    with pytest.raises(AttributeError):
        fields.state = "Succeeded"  # type: ignore[misc]
    assert msgspec.structs.replace(fields, attempt=4).attempt == 4


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"initial_url": "/x", "origin": None}, "no origin"),
        ({"polling_url": "//evil.example.net/x"}, "not an http"),
        ({"polling_url": "javascript:alert(1)"}, "not an http"),
        ({"origin": "https://svc.example.com/path"}, "origin is not"),
        ({"state": "NotStarted"}, "contradict"),
        ({"pending": "start"}, "contradict"),
    ],
)
def test_inconsistent_tokens_are_refused(changes: dict[str, Any], reason: str) -> None:
    fields = msgspec.structs.replace(running_core().snapshot(), **changes)
    with pytest.raises(InvalidTokenError, match=reason):
        OperationCore.restore(RehydrationToken(fields), origin_policy=OriginPolicy(ENDPOINT))


def test_a_token_of_another_origin_is_refused_with_a_typed_error() -> None:
    token = running_core().token()
    with pytest.raises(TokenOriginError) as info:
        OperationCore.restore(token, origin_policy=OriginPolicy("https://other.example/"))
    error = info.value
    assert isinstance(error, InvalidTokenError)
    assert isinstance(error, UntrustedOriginError)
    assert error.field == "origin"
    assert error.url == "https://svc.example.com/"
    assert "svc.example.com" not in str(error)  # the message names the field, not the URL
    # Trusting the origin explicitly restores it, to the same URLs.
    trusting = OriginPolicy("https://other.example/", [ENDPOINT])
    assert OperationCore.restore(token, origin_policy=trusting).polling_url == (
        "https://svc.example.com/operations/1?api-version=2024-01-01"
    )


# -- signing -----------------------------------------------------------------------------------


def signed_pipeline(signer: TokenSigner) -> Pipeline:
    return Pipeline(ENDPOINT, tokens=TokenPolicy(signer=signer))


def test_signed_tokens_round_trip_through_rehydrate(rsps: responses.RequestsMock) -> None:
    signer = TokenSigner({"k1": KEY_A})
    text = str(running_core(TokenPolicy(signer=signer)).token())
    payload, key_id, mac = text.split(".")
    assert key_id == "k1"
    assert len(mac) == 43
    assert unb64(payload)["v"] == 2
    with signed_pipeline(signer) as pipeline:
        operation = Operation[Any].rehydrate(pipeline, text)
        assert operation.state is OperationState.RUNNING
        again = str(operation.rehydration_token)
        assert again.split(".")[1] == "k1"
        assert Operation[Any].rehydrate(pipeline, again).core.polling_url == (
            operation.core.polling_url
        )
    assert len(rsps.calls) == 0


def flip(text: str, index: int) -> str:
    char = text[index]
    return text[:index] + ("B" if char != "B" else "C") + text[index + 1 :]


def test_unsigned_tampered_and_foreign_tokens_are_refused(rsps: responses.RequestsMock) -> None:
    signer = TokenSigner({"k1": KEY_A})
    good = str(running_core(TokenPolicy(signer=signer)).token())
    payload, _, mac = good.split(".")
    unsigned = str(running_core().token())
    forged = str(running_core(TokenPolicy(signer=TokenSigner({"k1": KEY_B}))).token())
    cases = {
        unsigned: "not signed",
        flip(good, 20): "altered",
        flip(good, len(good) - 5): "altered",
        f"{payload}.k2.{mac}": "does not have",  # the same MAC under another key id
        forged: "altered",  # right key id, wrong key
        f"{payload}.k1.": "malformed",
        f"{payload}..{mac}": "malformed",
    }
    with signed_pipeline(signer) as pipeline:
        for text, reason in cases.items():
            with pytest.raises(InvalidTokenError, match=reason):
                Operation[Any].rehydrate(pipeline, text)
        # A token object built from fields (never signed) is refused as well.
        with pytest.raises(InvalidTokenError, match="not signed"):
            Operation[Any].rehydrate(pipeline, RehydrationToken(running_core().snapshot()))
        # ... and one parsed elsewhere without a key is checked when it is restored.
        read_blind = RehydrationToken.from_str(forged)
        with pytest.raises(InvalidTokenError, match="altered"):
            Operation[Any].rehydrate(pipeline, read_blind)
    assert len(rsps.calls) == 0


def test_key_rotation() -> None:
    old = TokenSigner({"2024": KEY_A})
    rotated = TokenSigner({"2024": KEY_A, "2025": KEY_B}, signing_key_id="2025")
    retired = TokenSigner({"2025": KEY_B})
    from_old = str(running_core(TokenPolicy(signer=old)).token())
    from_new = str(running_core(TokenPolicy(signer=rotated)).token())
    assert from_new.split(".")[1] == "2025"
    assert RehydrationToken.from_str(from_old, signer=rotated).fields.method == "POST"
    assert RehydrationToken.from_str(from_new, signer=rotated).fields.method == "POST"
    assert RehydrationToken.from_str(from_new, signer=retired).fields.method == "POST"
    with pytest.raises(InvalidTokenError, match="does not have"):
        RehydrationToken.from_str(from_old, signer=retired)
    assert rotated.key_ids == ("2024", "2025")


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = signing_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing_module.hmac, "compare_digest", spy)
    signer = TokenSigner({"k1": KEY_A})
    text = str(running_core(TokenPolicy(signer=signer)).token())
    RehydrationToken.from_str(text, signer=signer)
    with pytest.raises(InvalidTokenError):
        RehydrationToken.from_str(flip(text, len(text) - 3), signer=signer)
    assert len(seen) == 2


def test_a_client_without_keys_reads_signed_tokens_and_keeps_the_signature() -> None:
    text = (FIXTURES / "v2-signed.token").read_text().strip()
    token = RehydrationToken.from_str(text)
    assert token.signed
    assert str(token) == text
    assert token.verify(FIXTURE_SIGNER) is token


@pytest.mark.parametrize(
    ("keys", "signing", "reason"),
    [
        ({}, None, "at least one"),
        ({"k1": b"short"}, None, "shorter than 32"),
        ({"k1": "A" * 32}, None, "must be bytes"),
        ({"bad id!": KEY_A}, None, "key ids"),
        ({"": KEY_A}, None, "key ids"),
        ({"k1": KEY_A, "k2": KEY_B}, None, "signing_key_id"),
        ({"k1": KEY_A}, "k2", "not one of"),
    ],
)
def test_signer_configuration_is_checked(
    keys: dict[str, Any], signing: str | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        TokenSigner(keys, signing_key_id=signing)


def test_signer_repr_never_shows_keys() -> None:
    text = repr(TokenSigner({"k1": KEY_A}))
    assert "k1" in text
    assert "AAAA" not in text
    assert "AAAA" not in repr(TokenPolicy(signer=TokenSigner({"k1": KEY_A})))


# -- no secrets ----------------------------------------------------------------------------


def test_token_holds_no_headers_cookies_or_bodies(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
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
    operation = Operation[Any].start(
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
    decoded = json.dumps(unb64(text))
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
    assert unb64(text)["pu"] == "/ops/1"


SAS_MONITOR = "https://svc.example.com/ops/1?sv=2024&se=2030&sp=r&sig=SAS%2BSECRET%3D"


def test_credentials_in_urls_are_never_written(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    rsps.post(
        "https://svc.example.com/jobs", status=202, headers={"Operation-Location": SAS_MONITOR}
    )
    operation = Operation[Any].start(pipeline, "POST", "jobs?api_key=KEY-SECRET")
    assert operation.core.polling_url == SAS_MONITOR  # polling itself uses the whole URL
    text = str(operation.rehydration_token)
    document = unb64(text)
    assert "SECRET" not in json.dumps(document)
    assert document["x"] is True
    assert document["pu"] == "/ops/1?sv=2024&se=2030&sp=r&sig="
    assert document["u"] == "/jobs?api_key="
    with pytest.raises(InvalidTokenError, match="credentials") as info:
        Operation[Any].rehydrate(pipeline, text)
    assert "SECRET" not in str(info.value)
    assert len(rsps.calls) == 1  # the start only


def test_keeping_url_credentials_is_an_explicit_choice(rsps: responses.RequestsMock) -> None:
    rsps.post(
        "https://svc.example.com/jobs", status=202, headers={"Operation-Location": SAS_MONITOR}
    )
    with Pipeline(ENDPOINT, tokens=TokenPolicy(secret_query_parameters=())) as pipeline:
        operation = Operation[Any].start(pipeline, "POST", "jobs")
        text = str(operation.rehydration_token)
        assert "x" not in unb64(text)
        assert Operation[Any].rehydrate(pipeline, text).core.polling_url == SAS_MONITOR


def test_secret_parameter_names_match_case_insensitively_and_percent_decoded() -> None:
    from lrokit._urls import redact_query

    names = frozenset({"sig"})
    assert redact_query("https://h/x?SIG=1&a=2", names) == ("https://h/x?SIG=&a=2", True)
    assert redact_query("https://h/x?si%67=1#f", names) == ("https://h/x?si%67=#f", True)
    assert redact_query("https://h/x?signature=1", names) == ("https://h/x?signature=1", False)
    assert redact_query("https://h/x", names) == ("https://h/x", False)


# -- tokens before the start response (Operation.prepare) ----------------------------------


def test_token_is_there_when_the_start_response_is(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    operation = Operation[Any].prepare(pipeline, "POST", "jobs", json={"n": 1})
    persisted: list[str] = []
    operation.on_change(lambda change: persisted.append(str(change.operation.rehydration_token)))
    operation.send_start()
    assert len(persisted) == 1  # written by the hook, before anything else happens
    resumed = Operation[Any].rehydrate(pipeline, persisted[0])
    assert resumed.core.next_request_url == MONITOR
    assert len(rsps.calls) == 1


def test_unanswered_post_without_operation_id_is_not_restorable(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    operation = Operation[Any].prepare(pipeline, "POST", "jobs", json={"n": 1})
    text = str(operation.rehydration_token)
    assert unb64(text)["n"] == "start"
    assert "oi" not in unb64(text)
    with pytest.raises(InvalidTokenError, match="not known to be safe"):
        Operation[Any].rehydrate(pipeline, text, json={"n": 1})
    assert len(rsps.calls) == 0


def test_unanswered_start_with_operation_id_is_sent_again_with_it(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    first = Operation[Any].prepare(pipeline, "POST", "jobs", json={"n": 1}, idempotent=True)
    text = str(first.rehydration_token)
    operation_id = first.core.operation_id
    assert unb64(text)["oi"] == operation_id
    # The first process dies here; nothing tells whether its start reached the service.
    resumed = Operation[Any].rehydrate(
        pipeline, text, json={"n": 1}, headers={"x-trace": "t"}, operation_headers={"x-op": "o"}
    )
    assert resumed.state is OperationState.NOT_STARTED
    assert len(rsps.calls) == 0  # restoring sent nothing
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Succeeded", "result": 7})
    assert resumed.wait_for_completion().value == 7
    start = rsps.calls[0].request
    assert start.method == "POST"
    assert start.headers["Operation-Id"] == operation_id
    assert start.headers["x-trace"] == "t"
    assert start.headers["x-op"] == "o"
    assert json.loads(start.body) == {"n": 1}
    assert resumed.core.operation_id == operation_id
    # Once answered, the token is an ordinary one and no longer carries the start's id.
    assert "oi" not in unb64(str(resumed.rehydration_token))


def test_unanswered_put_is_restorable_without_operation_id(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    thing = f"{ENDPOINT}things/1"
    text = str(Operation[Any].prepare(pipeline, "PUT", "things/1", json={"a": 1}).rehydration_token)
    resumed = Operation[Any].rehydrate(pipeline, text, json={"a": 1})
    rsps.put(thing, status=201, json={"properties": {"provisioningState": "Succeeded"}})
    resumed.update_status()
    assert resumed.state is OperationState.SUCCEEDED
    assert "Operation-Id" not in rsps.calls[0].request.headers
    assert json.loads(rsps.calls[0].request.body) == {"a": 1}


def test_restoring_an_unanswered_start_needs_its_body_and_its_own_id(
    rsps: responses.RequestsMock, pipeline: Pipeline
) -> None:
    first = Operation[Any].prepare(pipeline, "POST", "jobs", idempotent=True)
    text = str(first.rehydration_token)
    with pytest.raises(ValueError, match="json="):
        Operation[Any].rehydrate(pipeline, text)
    with pytest.raises(ValueError, match="other than the token's"):
        Operation[Any].rehydrate(pipeline, text, json=None, headers={"operation-id": "other"})
    same = Operation[Any].rehydrate(
        pipeline, text, json=None, headers={"operation-id": first.core.operation_id}
    )
    assert same.state is OperationState.NOT_STARTED
    # A token of a started operation ignores the start arguments.
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    first.send_start()
    started = Operation[Any].rehydrate(pipeline, str(first.rehydration_token), json={"x": 1})
    assert started.state is OperationState.RUNNING
    assert len(rsps.calls) == 1


def test_a_users_own_operation_id_header_travels_in_the_token(pipeline: Pipeline) -> None:
    operation = Operation[Any].prepare(pipeline, "POST", "jobs", headers={"Operation-Id": "mine-1"})
    assert unb64(str(operation.rehydration_token))["oi"] == "mine-1"
    unusable = Operation[Any].prepare(pipeline, "POST", "jobs", headers={"Operation-Id": "a b"})
    assert "oi" not in unb64(str(unusable.rehydration_token))  # not a safe header value


def test_token_kind_is_checked(pipeline: Pipeline) -> None:
    class Create(Operation[Any]):
        pass

    class Delete(Operation[Any]):
        pass

    core = running_core()
    core.kind = Create.kind()
    text = str(core.token())
    with pytest.raises(InvalidTokenError, match="kind field") as info:
        Delete.rehydrate(pipeline, text)
    assert "Create" not in str(info.value)  # the message names the field, not its value
    assert Create.rehydrate(pipeline, text).state is OperationState.RUNNING


def test_restored_core_keeps_final_state_via_and_options_win() -> None:
    core = running_core()
    core.options = ProtocolOptions(final_state_via="location")
    token = core.token()
    policy = OriginPolicy(ENDPOINT)
    restored = OperationCore.restore(token, origin_policy=policy)
    assert restored.options.final_state_via is not None
    mine = ProtocolOptions(final_state_via="original-uri")
    assert OperationCore.restore(token, origin_policy=policy, options=mine).options is mine
