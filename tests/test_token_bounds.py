"""Tokens that lrokit writes, it reads back; forged numbers and kinds end in typed errors.

Issue 14, items 6-8: every numeric field of a token is bounded and finite (a forged
``"c": 1.8e306`` used to make later calls raise ``OverflowError``); URLs holding invisible
or raw UTF-8 characters are percent-encoded when received, an over-long one is refused then,
and counters saturate, so the writer and the reader agree (checked property-based); no
message echoes token content.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrokit import (
    InvalidTokenError,
    LroError,
    Operation,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    ProtocolError,
    RehydrationToken,
    ResponseView,
    UntrustedOriginError,
)
from lrokit._token import MAX_COUNT, MAX_SECONDS
from lrokit.testing import FakeClock

ENDPOINT = "https://svc.example.com/"
START = ENDPOINT + "jobs"


def _fields(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _forge(fields: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()


def _running(pipeline: Pipeline, monitor: str = ENDPOINT + "ops/1") -> Operation[Any]:
    operation = Operation.prepare(pipeline, "POST", "jobs")
    operation.receive(ResponseView.build(202, {"Operation-Location": monitor}, b"", START))
    return operation


@pytest.fixture
def pipe() -> Any:
    clock = FakeClock(0.0)
    policy = PollingPolicy(interval=1.0, floor=0.0, max_retries=0)
    with Pipeline(ENDPOINT, polling=policy, clock=clock, sleep=clock.sleep) as pipeline:
        yield pipeline


# -- 6. numeric fields are bounded -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("c", 1.8e306), ("c", MAX_SECONDS * 10), ("c", -1.0), ("a", MAX_COUNT + 1), ("a", -1)],
)
def test_a_number_out_of_range_is_refused_with_invalid_token_error(pipe, field, value) -> None:
    fields = _fields(str(_running(pipe).rehydration_token))
    fields[field] = value
    with pytest.raises(InvalidTokenError, match=f"`\\$\\.{field}`"):
        Operation.rehydrate(pipe, _forge(fields))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    created=st.floats(min_value=0, max_value=MAX_SECONDS),
    attempt=st.integers(min_value=0, max_value=MAX_COUNT),
)
def test_a_restored_operation_raises_only_lrokits_errors(pipe, created, attempt) -> None:
    fields = _fields(str(_running(pipe).rehydration_token))
    fields["c"], fields["a"] = created, attempt
    operation = Operation.rehydrate(pipe, _forge(fields))
    str(operation.rehydration_token)  # writing the token again
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(ENDPOINT + "ops/1", status=404)
        with pytest.raises(LroError):  # a 404 poll: PollRejectedError, with the token
            operation.wait_for_completion(timeout=5)
        mock.replace(responses.GET, ENDPOINT + "ops/1", json={"status": "Running"})
        with pytest.raises(LroError):  # the deadline: WaitTimeoutError, with the token
            operation.wait_for_completion(timeout=0.5)


# -- 7. the writer and the reader agree --------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "sent"),
    [
        ("/ops/\u200b1", "/ops/%E2%80%8B1"),
        ("/ops/\u00ad1", "/ops/%C2%AD1"),
        ("/ops/\u00a01", "/ops/%C2%A01"),
        ("/ops/中/1", "/ops/%E4%B8%AD/1"),
        # A raw UTF-8 header as http.client hands it over (decoded as Latin-1).
        ("/ops/中/1".encode().decode("latin-1"), "/ops/%E4%B8%AD/1"),
    ],
)
def test_urls_with_characters_tokens_refused_are_encoded_when_received(
    pipe, received, sent
) -> None:
    operation = _running(pipe, ENDPOINT.rstrip("/") + received)
    assert operation.core.polling_url == ENDPOINT.rstrip("/") + sent
    restored = Operation.rehydrate(pipe, str(operation.rehydration_token))
    assert restored.core.polling_url == operation.core.polling_url


def test_a_url_longer_than_a_token_holds_gets_no_token_the_reader_refuses(pipe) -> None:
    # Followed (services send such URLs: the spector LargeHeaders scenario), but no token
    # is written that rehydrate would refuse: asking for one says why, naming the field.
    operation = _running(pipe, ENDPOINT + "ops/" + "a" * 2100)
    with pytest.raises(InvalidTokenError, match="polling_url has 2105 characters"):
        _ = operation.rehydration_token
    with responses.RequestsMock() as mock:
        mock.get(ENDPOINT + "ops/" + "a" * 2100, status=404)
        with pytest.raises(PollRejectedError) as info:
            operation.update_status()
    assert info.value.rehydration_token is None  # the error still comes, without a token


def test_counters_saturate_instead_of_overflowing(pipe) -> None:
    operation = _running(pipe)
    operation.core.attempt = MAX_COUNT + 5
    token = str(operation.rehydration_token)
    assert _fields(token)["a"] == MAX_COUNT
    assert Operation.rehydrate(pipe, token).core.attempt == MAX_COUNT


#: Path text a service may send: anything printable but the characters that make URL parsers
#: disagree (those are refused at once, with UntrustedOriginError).
_PATHS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), max_size=60
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_PATHS, query=st.text(max_size=30), attempt=st.integers(0, 2**40))
def test_every_token_lrokit_writes_is_read_back_equal(pipe, path, query, attempt) -> None:
    monitor = f"{ENDPOINT}ops/{path}" + (f"?{query}" if query else "")
    try:
        operation = _running(pipe, monitor)
    except (UntrustedOriginError, ProtocolError):
        return  # refused when received, with a typed error: nothing is written
    operation.core.attempt = attempt
    token = operation.rehydration_token  # (paths here are short enough for a token)
    read = RehydrationToken.from_str(str(token))
    assert read.fields == token.fields
    if token.fields.redacted:  # a secret query value was left out, by design: refused
        with pytest.raises(InvalidTokenError, match="credentials"):
            Operation.rehydrate(pipe, str(token))
        return
    restored = Operation.rehydrate(pipe, str(token))
    assert restored.core.polling_url == operation.core.polling_url
    assert restored.rehydration_token.fields == token.fields


# -- 8. messages name fields, never their content ----------------------------------------------


def test_a_kind_mismatch_names_the_field_not_its_value(pipe) -> None:
    fields = _fields(str(_running(pipe).rehydration_token))
    fields["k"] = "FORGED-CONTENT-1234"
    with pytest.raises(InvalidTokenError) as info:
        Operation.rehydrate(pipe, _forge(fields))
    assert "kind field" in str(info.value)
    assert "FORGED" not in str(info.value)


def test_transport_errors_quoting_a_secret_are_reworded(pipe) -> None:
    operation = _running(pipe, ENDPOINT + "ops/1?sv=1&sig=TOPSECRET")
    with responses.RequestsMock() as mock:
        error = requests.ConnectionError("Max retries exceeded with url: /ops/1?sv=1&sig=TOPSECRET")
        mock.get(ENDPOINT + "ops/1", body=error)
        with pytest.raises(LroError) as info:
            operation.update_status()
    assert "sig=" in str(info.value)
    assert "TOPSECRET" not in str(info.value)
    assert "TOPSECRET" not in repr(operation)
