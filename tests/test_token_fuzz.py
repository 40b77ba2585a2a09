"""Hostile input: mutated tokens and random bytes and strings, 10,000 examples in all.

Whatever is handed to ``Operation.rehydrate``, the outcome is either exactly an
``InvalidTokenError`` (``TokenOriginError`` is one) or an operation whose every URL passed
the client's origin check; with a signer, an accepted token is the original one. No request
is ever sent: the pipeline's session fails the test on any request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrokit import (
    InvalidTokenError,
    Operation,
    OperationCore,
    OriginPolicy,
    Pipeline,
    ProtocolOptions,
    RehydrationToken,
    ResponseView,
    TokenPolicy,
    TokenSigner,
)
from token_helpers import b64, unb64

ENDPOINT = "https://svc.example.com/"
ALLOWED = "https://ops.example.org:8443"
SIGNER = TokenSigner({"k1": b"1" * 32, "k2": b"2" * 32}, signing_key_id="k2")
FUZZ = settings(
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class NoNetwork(requests.Session):
    """A session that records and refuses every request."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sent.append((str(method), str(url)))
        raise AssertionError(f"a request was sent to {url!r}")


class Fuzzed(Operation[Any]):
    @classmethod
    def kind(cls) -> str:
        return "fuzz.Thing"


def make_tokens(tokens: TokenPolicy) -> list[str]:
    """Valid tokens of many shapes, written by a client of ENDPOINT."""
    policy = OriginPolicy(ENDPOINT, [ALLOWED])
    made: list[str] = []

    def core(method: str, **kwargs: Any) -> OperationCore:
        return OperationCore(
            method,
            f"{ENDPOINT}things/1?api-version=2024-01-01",
            origin_policy=policy,
            kind="fuzz.Thing",
            operation_id="id-1",
            token_policy=tokens,
            **kwargs,
        )

    def view(code: int, headers: dict[str, str] | None = None, body: Any = None) -> ResponseView:
        data = None if body is None else json.dumps(body)
        return ResponseView.build(code, headers, data, f"{ENDPOINT}things/1")

    monitor = core("POST", options=ProtocolOptions(final_state_via="location"))
    monitor.receive(view(202, {"Operation-Location": "/ops/1", "Location": "/results/1"}))
    made.append(str(monitor.token()))
    monitor.receive(view(200, None, {"status": "Succeeded"}))
    made.append(str(monitor.token()))  # fetch-final
    location = core("DELETE")
    location.receive(view(202, {"Location": f"{ALLOWED}/status/1"}))
    made.append(str(location.token()))
    resource = core("PUT")
    resource.receive(view(201, None, {"properties": {"provisioningState": "Creating"}}))
    made.append(str(resource.token()))
    failed = core("POST")
    failed.receive(view(202, {"Azure-AsyncOperation": "/ops/2"}))
    failed.receive(view(200, None, {"status": "Failed"}))
    made.append(str(failed.token()))
    not_started = core("POST")
    made.append(str(not_started.token(start_operation_id="id-1")))
    return made


UNSIGNED = make_tokens(TokenPolicy())
SIGNED = make_tokens(TokenPolicy(signer=SIGNER))


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Pipeline]]:
    plain = Pipeline(ENDPOINT, NoNetwork(), allowed_origins=[ALLOWED])
    signing = Pipeline(
        ENDPOINT, NoNetwork(), allowed_origins=[ALLOWED], tokens=TokenPolicy(signer=SIGNER)
    )
    yield {"plain": plain, "signing": signing}
    for pipeline in (plain, signing):
        assert pipeline.session.sent == []  # type: ignore[attr-defined]
        pipeline.close()


def attempt(pipeline: Pipeline, token: str | bytes, original: str | None = None) -> None:
    """Rehydrate ``token``: an InvalidTokenError, or an origin-checked operation."""
    try:
        operation = Fuzzed.rehydrate(pipeline, token, json=None)
    except InvalidTokenError as error:
        message = str(error)
        assert len(message) < 400  # never the whole input
        if isinstance(token, str) and len(token) > 40:
            assert token not in message
        return
    core = operation.core
    for url in (core.initial_url, core.polling_url, core.location_url, core.final_url):
        if url is not None:
            assert pipeline.origin_policy.trusts(url), url
    if pipeline.tokens.signer is not None:
        # With a signer, only the untouched token gets through.
        assert original is not None
        assert operation.rehydration_token.fields == RehydrationToken.from_str(original).fields
    assert pipeline.session.sent == []  # type: ignore[attr-defined]


def run_counted(test: Callable[[], None], counter: list[int], minimum: int) -> None:
    test()
    assert counter[0] >= minimum, f"only {counter[0]} examples ran"


# -- mutations of valid tokens ---------------------------------------------------------------


def mutate_text(text: str, rng: random.Random) -> str:
    """One to three byte-level edits: replace, insert, delete, truncate, swap or append."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["replace", "insert", "delete", "truncate", "swap", "append"])
        index = rng.randrange(max(1, len(text)))
        char = rng.choice(ALPHABET + ".=") if rng.random() < 0.8 else chr(rng.randrange(0x300))
        if kind == "replace":
            text = text[:index] + char + text[index + 1 :]
        elif kind == "insert":
            text = text[:index] + char + text[index:]
        elif kind == "delete":
            text = text[:index] + text[index + 1 :]
        elif kind == "truncate":
            text = text[:index]
        elif kind == "swap" and index + 1 < len(text):
            text = text[:index] + text[index + 1] + text[index] + text[index + 2 :]
        else:
            text += "".join(rng.choice(ALPHABET + ".") for _ in range(rng.randrange(20)))
    return text


def text_mutations(pool: list[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(original, mutated): hypothesis picks the token and the seed of the edits."""
    return st.tuples(st.sampled_from(pool), st.integers(0, 2**32)).map(
        lambda case: (case[0], mutate_text(case[0], random.Random(case[1])))
    )


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "https://evil.example/x",
            "http://svc.example.com/x",
            "//evil.example/x",
            "/ops/1",
            "https://svc.example.com\\@evil.example/x",
            "https://evil.example",
            "https://svc.example.com",
            f"{ALLOWED}/x",
            "javascript:alert(1)",
            "NotStarted",
            "Succeeded",
            "fetch-final",
            "start",
            "done",
            "POST",
            "fuzz.Thing",
        ]
    )
)
JSON_VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=2)
    | st.dictionaries(st.text(max_size=3), SCALARS, max_size=2)
)
KEYS = [
    "v",
    "o",
    "s",
    "p",
    "m",
    "u",
    "n",
    "pu",
    "lu",
    "fu",
    "av",
    "fv",
    "a",
    "c",
    "id",
    "oi",
    "k",
    "x",
]


@st.composite
def field_mutations(draw: st.DrawFn, pool: list[str]) -> tuple[str, str]:
    original = draw(st.sampled_from(pool))
    payload, dot, signature = original.partition(".")
    document = unb64(payload)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*KEYS, "zz"]))
        if draw(st.booleans()) and key in document:
            del document[key]
        else:
            document[key] = draw(JSON_VALUES)
    return original, b64(document) + dot + signature


def test_mutated_unsigned_tokens(clients: dict[str, Pipeline]) -> None:
    counter = [0]

    @settings(FUZZ, max_examples=2000)
    @given(st.one_of(text_mutations(UNSIGNED), field_mutations(UNSIGNED)))
    def run(case: tuple[str, str]) -> None:
        counter[0] += 1
        attempt(clients["plain"], case[1])

    run_counted(run, counter, 2000)


def test_mutated_signed_tokens(clients: dict[str, Pipeline]) -> None:
    counter = [0]

    @settings(FUZZ, max_examples=2000)
    @given(st.one_of(text_mutations(SIGNED), field_mutations(SIGNED)))
    def run(case: tuple[str, str]) -> None:
        counter[0] += 1
        original, mutated = case
        attempt(clients["signing"], mutated, original)

    run_counted(run, counter, 2000)


# -- random input ------------------------------------------------------------------------------


def test_random_bytes(clients: dict[str, Pipeline]) -> None:
    counter = [0]

    @settings(FUZZ, max_examples=3000)
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.integers(4090, 9000).map(lambda n: b"eyJ2Ijoy" * (n // 8)),  # oversized
            st.text(ALPHABET + ".=", max_size=300).map(str.encode),
        ),
        st.sampled_from(["plain", "signing"]),
    )
    def run(data: bytes, which: str) -> None:
        counter[0] += 1
        attempt(clients[which], data)
        with pytest.raises(InvalidTokenError):
            RehydrationToken.from_bytes(data, signer=SIGNER)

    run_counted(run, counter, 3000)


def test_random_strings(clients: dict[str, Pipeline]) -> None:
    counter = [0]

    @settings(FUZZ, max_examples=3000)
    @given(
        st.one_of(
            st.text(max_size=300),
            st.text(ALPHABET, min_size=10, max_size=300),
            st.text(ALPHABET + ".", min_size=10, max_size=300),
        ),
        st.sampled_from(["plain", "signing"]),
    )
    def run(text: str, which: str) -> None:
        counter[0] += 1
        attempt(clients[which], text)

    run_counted(run, counter, 3000)
