"""The shortcuts that make tokens fast give the same results as the plain ways.

``OperationCore.restore`` sets a restored core's slots itself rather than calling
``__init__`` (a subclass with its own ``__init__`` still gets it called); a core keeps the
api-version of its initial URL from construction on; ``api_version_of`` reads the usual
query without splitting it; reading decodes base64 with msgspec after one translation.
Each is compared here with the general path it replaces.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import random
from typing import Any
from urllib.parse import unquote_plus

import msgspec
import pytest

from lrokit import (
    InvalidTokenError,
    OperationCore,
    OriginPolicy,
    RehydrationToken,
    ResponseView,
    TokenPolicy,
    TokenSigner,
)
from lrokit._token import TokenV2
from lrokit._urls import api_version_of
from token_helpers import FIXTURE_SIGNER, FIXTURES

ENDPOINT = "https://svc.example.com/"
POLICY = OriginPolicy(ENDPOINT, ["https://ops.example.org:8443"])


class OwnInit(OperationCore):
    """A subclass with its own ``__init__``: restore must call it."""

    __slots__ = ("extra",)

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        super().__init__(method, url, **kwargs)
        self.extra = "set by __init__"


def all_slots(core: OperationCore) -> dict[str, Any]:
    names = [n for cls in type(core).__mro__ for n in getattr(cls, "__slots__", ())]
    return {name: getattr(core, name) for name in names}  # AttributeError: a slot left unset


def all_slots_of_options(options: Any) -> dict[str, Any]:
    return {name: getattr(options, name) for name in type(options).__slots__}


def tokens() -> list[RehydrationToken]:
    """Every fixture, and tokens of live cores in each shape a core can be in."""
    found = []
    for path in sorted(FIXTURES.glob("v*.token")):
        signer = FIXTURE_SIGNER if "signed" in path.name else None
        found.append(RehydrationToken.from_str(path.read_text().strip(), signer=signer))
    start = f"{ENDPOINT}items?api-version=2024-01-01"
    for method, status, headers, body in [
        ("PUT", 201, {"Azure-AsyncOperation": "/ops/1"}, b'{"status": "Running"}'),
        ("POST", 202, {"Operation-Location": "/ops/2", "Location": "/r/2"}, None),
        ("DELETE", 202, {"Location": "/ops/3?api-version=2025-05-05"}, None),
        ("PATCH", 200, {}, b'{"properties": {"provisioningState": "Updating"}}'),
    ]:
        core = OperationCore(method, start, origin_policy=POLICY, operation_id="op", kind="k")
        found.append(core.token())  # NotStarted
        core.receive(ResponseView.build(status, headers, body, start))
        found.append(core.token())
        if core.next_request_url is not None:
            done = b'{"status": "Succeeded", "properties": {"provisioningState": "Succeeded"}}'
            core.receive(ResponseView.build(200, {}, done, core.next_request_url))
            found.append(core.token())
    return found


@pytest.mark.parametrize("token", tokens(), ids=lambda t: f"{t.fields.state}-{t.fields.pending}")
def test_a_restored_core_has_every_slot_as_the_constructor_path_sets_it(
    token: RehydrationToken,
) -> None:
    fields = token.fields
    if fields.state == "NotStarted" and not (
        fields.method in ("PUT", "DELETE") or fields.start_operation_id
    ):
        with pytest.raises(InvalidTokenError):
            OperationCore.restore(token, origin_policy=POLICY)
        return
    fast = OperationCore.restore(token, origin_policy=POLICY)
    plain = OwnInit.restore(token, origin_policy=POLICY)
    assert type(plain) is OwnInit
    assert plain.extra == "set by __init__"
    slots, expected = all_slots(fast), all_slots(plain)
    del expected["extra"]
    # Options made for the token's final-state-via are equal, not the same object.
    assert all_slots_of_options(slots.pop("options")) == all_slots_of_options(
        expected.pop("options")
    )
    assert slots == expected
    assert fast.token().fields == plain.token().fields


def test_the_api_version_of_a_reassigned_initial_url_is_read_again() -> None:
    core = OperationCore("PUT", f"{ENDPOINT}a?api-version=1", origin_policy=POLICY)
    assert core.token().fields.api_version is None
    core.initial_url = f"{ENDPOINT}a?api-version=2"  # api_version stays "1"
    assert core.token().fields.api_version == "1"
    core.api_version = "2"
    assert core.token().fields.api_version is None


def test_a_token_with_its_own_api_version_keeps_it_through_a_restore() -> None:
    core = OperationCore("PUT", f"{ENDPOINT}a?api-version=1", origin_policy=POLICY)
    core.api_version = "2099-01-01"
    written = core.token()
    assert written.fields.api_version == "2099-01-01"
    restored = OperationCore.restore(RehydrationToken.from_str(str(written)), origin_policy=POLICY)
    assert restored.api_version == "2099-01-01"
    assert restored.token().fields == written.fields


def test_reading_decodes_exactly_what_the_standard_base64_decoder_accepts() -> None:
    # The one-pass translation and msgspec's decoder against binascii on the same text,
    # for valid payloads of every length and for texts with one byte changed.
    rng = random.Random(5)
    documents = [{"v": 2, "s": "Running", "x": "y" * n} for n in range(8)]
    for document in documents:
        text = base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=")
        variants = [text, text + b"=", text + b"==", text + b"===", b"=" + text]
        for _ in range(60):
            position = rng.randrange(len(text))
            variants.append(text[:position] + bytes([rng.randrange(256)]) + text[position + 1 :])
        for variant in variants:
            expected: Any
            try:
                expected = _standard_decode(variant)
            except ValueError:
                expected = ValueError
            try:
                got: Any = _decoded_by_lrokit(variant)
            except InvalidTokenError as error:
                got = ValueError if "base64" in str(error) else str(error)
            assert got == expected, variant


def _standard_decode(text: bytes) -> bytes:
    """The reference: surrounding whitespace dropped, padding only at the end (at most
    two), then the base64url alphabet."""
    text = text.strip()
    stripped = text[:-2] if text.endswith(b"==") else text[:-1] if text.endswith(b"=") else text
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if stripped.translate(None, alphabet):
        raise ValueError("not base64url")
    try:
        return binascii.a2b_base64(
            stripped.translate(bytes.maketrans(b"-_", b"+/")) + b"=" * (-len(stripped) % 4)
        )
    except binascii.Error:
        raise ValueError("not base64") from None


def _decoded_by_lrokit(text: bytes) -> bytes:
    """What reading gives to the JSON decoder (captured by a decoder that refuses all)."""
    import lrokit._token as token_module

    captured: list[bytes] = []

    class Capture:
        def decode(self, data: bytes) -> Any:
            captured.append(data)
            raise InvalidTokenError("captured")

    original = token_module._decoder
    token_module._decoder = Capture()  # type: ignore[assignment]
    try:
        token_module.RehydrationToken.from_bytes(text)
    except InvalidTokenError:
        if not captured:  # refused before the JSON decoder
            raise
    finally:
        token_module._decoder = original
    return captured[0]


def test_a_signed_token_still_restores_through_the_fast_paths() -> None:
    tokens_policy = TokenPolicy(signer=TokenSigner({"k": b"K" * 32}))
    core = OperationCore(
        "PUT", f"{ENDPOINT}a?api-version=1", origin_policy=POLICY, token_policy=tokens_policy
    )
    core.receive(
        ResponseView.build(201, {"Azure-AsyncOperation": "/ops/9"}, None, core.initial_url)
    )
    text = str(core.token())
    restored = OperationCore.restore(
        tokens_policy.read(text), origin_policy=POLICY, token_policy=tokens_policy
    )
    assert restored.polling_url == f"{ENDPOINT}ops/9?api-version=1"
    assert str(restored.token()) == text


def _api_version_by_splitting(url: str) -> str | None:
    """The reference: the first ``api-version`` field of the query (before any ``#``)."""
    query = url.partition("#")[0].partition("?")[2]
    for field in query.split("&"):
        if field.startswith("api-version="):
            value = field[len("api-version=") :]
            return unquote_plus(value) if "%" in value or "+" in value else value
    return None


def test_api_version_of_agrees_with_splitting_the_query() -> None:
    # Its shortcut for a query that is the api-version alone, against the general reading,
    # on URLs made of the pieces that could confuse it.
    pieces = ["api-version=", "x-api-version=", "?", "&", "#", "=", "a", "1", "%20", "+", "/p"]
    rng = random.Random(7)
    found = 0
    for _ in range(20_000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert api_version_of(url) == _api_version_by_splitting(url), url
        found += api_version_of(url) is not None
    assert found > 200  # the shapes with a value were reached, not only the refusals
    assert api_version_of("https://h/x?api-version=2024-01-01") == "2024-01-01"
    assert api_version_of("https://h/x#f?api-version=2024-01-01") is None
    assert api_version_of("https://h/x?api-version=a+b%21") == "a b!"


def test_each_url_of_a_token_is_redacted_and_shortened_as_the_plain_loop_does() -> None:
    # The four URL fields are written out one by one in snapshot(): every combination of
    # a secret, another origin and an absent URL gives what the public methods give.
    tokens_policy = TokenPolicy()
    choices = [
        None,
        f"{ENDPOINT}plain?api-version=1",
        f"{ENDPOINT}sas?sv=1&sig=SECRET",
        "https://ops.example.org:8443/x?Signature=SECRET&b=2",
        "https://ops.example.org:8443/y",
    ]
    for initial, polling, location, final in itertools.product(choices[1:], *[choices] * 3):
        core = OperationCore("PUT", initial, origin_policy=POLICY, token_policy=tokens_policy)
        core.polling_url, core.location_url, core.final_url = polling, location, final
        fields = core.snapshot()
        expected: list[str | None] = []
        origin = None
        redacted = False
        for url in (initial, polling, location, final):
            reference = url
            if reference is not None:
                reference, removed = tokens_policy.redact(reference)
                redacted = redacted or removed
                short = POLICY.shorten(reference)
                if short is not None:
                    reference, origin = short, POLICY.origin_url
            expected.append(reference)
        written = [fields.initial_url, fields.polling_url, fields.location_url, fields.final_url]
        assert written == expected
        assert (fields.origin, fields.redacted) == (origin, redacted)
        assert "SECRET" not in str(core.token())


@pytest.mark.parametrize("bad", [" ", "\\", "\t", "\x7f", "\u2028", "\x00"])
@pytest.mark.parametrize("field", ["initial_url", "polling_url"])
def test_the_two_usual_paths_checked_at_once_refuse_what_each_check_refuses(
    bad: str, field: str
) -> None:
    # restore checks the initial and polling paths of the usual token in one pass; a bad
    # character in either is refused as the check of that one field refuses it.
    good = {"initial_url": "/a?api-version=1", "polling_url": "/ops/1?api-version=1"}
    values = {**good, field: good[field].replace("?", bad + "?")}
    fields = TokenV2(
        "Running", "status-monitor", "PUT", values["initial_url"], "poll", 1.0,
        origin="https://svc.example.com", polling_url=values["polling_url"],
    )  # fmt: skip
    with pytest.raises(InvalidTokenError, match=f"token's {field} holds spaces"):
        OperationCore.restore(RehydrationToken(fields), origin_policy=POLICY)
    assert (
        OperationCore.restore(
            RehydrationToken(msgspec.structs.replace(fields, **good)), origin_policy=POLICY
        ).polling_url
        == "https://svc.example.com/ops/1?api-version=1"
    )
