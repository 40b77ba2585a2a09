"""Parsing: the status vocabulary, service errors, Retry-After and friends, the response view."""

from __future__ import annotations

import email.utils
import math

import msgspec
import pytest

from lrokit import OperationState, ResponseView, ServiceError, StatusVocabulary
from lrokit._parse import (
    DEFAULT_VOCABULARY,
    MAX_SERVER_HINT_SECONDS,
    decode_json,
    extract,
    parse_retry_after,
    parse_service_error,
)

S = OperationState
NOW = 1_700_000_000.0  # an injected "now", seconds since the epoch


# -- status vocabulary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("NotStarted", S.NOT_STARTED),
        ("notstarted", S.NOT_STARTED),
        ("Running", S.RUNNING),
        ("RUNNING", S.RUNNING),
        ("Succeeded", S.SUCCEEDED),
        ("sUcCeEdEd", S.SUCCEEDED),
        ("Failed", S.FAILED),
        ("FAILED", S.FAILED),
        ("Canceled", S.CANCELED),
        ("Cancelled", S.CANCELED),
        ("CANCELLED", S.CANCELED),
    ],
)
def test_default_vocabulary_is_case_insensitive(raw: str, state: OperationState) -> None:
    assert DEFAULT_VOCABULARY(raw) is state


@pytest.mark.parametrize(
    "raw", ["Creating", "Updating", "Deleting", "Accepted", "InProgress", "", "Succeeded "]
)
def test_unknown_words_mean_running(raw: str) -> None:
    # ARM provisioningState values and anything unknown: not finished yet.
    assert DEFAULT_VOCABULARY(raw) is S.RUNNING


def test_custom_vocabulary_adds_and_overrides_words() -> None:
    vocabulary = StatusVocabulary({"DONE": S.SUCCEEDED, "Failed": S.CANCELED})
    assert vocabulary("done") is S.SUCCEEDED
    assert vocabulary("Done") is S.SUCCEEDED
    assert vocabulary("failed") is S.CANCELED  # overridden
    assert vocabulary("Succeeded") is S.SUCCEEDED  # defaults kept
    assert DEFAULT_VOCABULARY("done") is S.RUNNING  # the shared default is not mutated


def test_custom_vocabulary_without_defaults_and_with_another_default() -> None:
    vocabulary = StatusVocabulary(
        {"ok": S.SUCCEEDED, "queued": S.NOT_STARTED},
        include_defaults=False,
        default=S.RUNNING,
    )
    assert vocabulary("OK") is S.SUCCEEDED
    assert vocabulary("queued") is S.NOT_STARTED
    assert vocabulary("Succeeded") is S.RUNNING
    assert "ok" in repr(vocabulary)


def test_custom_vocabulary_accepts_state_values() -> None:
    vocabulary = StatusVocabulary({"fin": "Succeeded"})  # type: ignore[dict-item]
    assert vocabulary("FIN") is S.SUCCEEDED
    with pytest.raises(ValueError, match="Done"):
        StatusVocabulary({"x": "Done"})  # type: ignore[dict-item]


# -- service errors --------------------------------------------------------------------------


def test_service_error_with_nested_details_and_innererror() -> None:
    document = {
        "error": {
            "code": "BadThing",
            "message": "it broke",
            "target": "name",
            "details": [
                {"code": "Inner1", "message": "m1", "details": [{"code": "Deep"}]},
                "not an object",
                {"code": "Inner2"},
            ],
            "innererror": {"trace": "abc", "innererror": {"code": "x"}},
        }
    }
    error = parse_service_error(document)
    assert error == ServiceError(
        code="BadThing",
        message="it broke",
        target="name",
        details=(
            ServiceError(code="Inner1", message="m1", details=(ServiceError(code="Deep"),)),
            ServiceError(code="Inner2"),
        ),
        innererror={"trace": "abc", "innererror": {"code": "x"}},
    )
    assert str(error) == "BadThing: it broke"


def test_bare_error_object_is_accepted() -> None:
    assert parse_service_error({"code": "C", "message": "M"}) == ServiceError("C", "M")


@pytest.mark.parametrize(
    "document",
    [None, "text", 42, [], ["error"], {}, {"error": "a string"}, {"error": None}, {"message": "m"}],
)
def test_garbage_has_no_service_error(document: object) -> None:
    assert parse_service_error(document) is None


def test_wrongly_typed_error_fields_are_read_leniently() -> None:
    error = parse_service_error({"error": {"code": 404, "message": None, "details": "nope"}})
    assert error == ServiceError(code="404")
    assert str(ServiceError()) == "(no error details)"


def test_deeply_nested_details_are_bounded() -> None:
    node: dict[str, object] = {"code": "leaf"}
    for depth in range(100):
        node = {"code": f"d{depth}", "details": [node]}
    error = parse_service_error({"error": node})
    assert error is not None
    depth = 0
    while error.details:
        error = error.details[0]
        depth += 1
    assert depth <= 10


# -- Retry-After and its millisecond relatives ----------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "100", "retry-after": "9"}, 0.1),  # milliseconds are more precise
        ({"x-ms-retry-after-ms": "2000", "retry-after": "9"}, 2.0),
        ({"retry-after": str(MAX_SERVER_HINT_SECONDS)}, MAX_SERVER_HINT_SECONDS),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], seconds: float) -> None:
    assert parse_retry_after(headers, NOW) == pytest.approx(seconds)


def test_retry_after_http_date_is_measured_against_now() -> None:
    later = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after({"retry-after": later}, NOW) == pytest.approx(30.0)
    # The same header means less once "now" has moved on.
    assert parse_retry_after({"retry-after": later}, NOW + 20) == pytest.approx(10.0)


def test_retry_after_http_date_in_the_past_means_now() -> None:
    earlier = email.utils.formatdate(NOW - 300, usegmt=True)
    assert parse_retry_after({"retry-after": earlier}, NOW) == 0.0


def test_retry_after_http_date_far_in_the_future_is_absurd() -> None:
    future = email.utils.formatdate(NOW + 10 * 24 * 3600, usegmt=True)
    assert parse_retry_after({"retry-after": future}, NOW) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": "-1"},
        {"retry-after": "-0.5"},
        {"retry-after": "soon"},
        {"retry-after": ""},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "1e308"},
        {"retry-after": str(MAX_SERVER_HINT_SECONDS + 1)},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"},  # no usable zone
        {"retry-after-ms": "-5"},
        {"retry-after-ms": "abc"},
        {"x-ms-retry-after-ms": "1e12"},
    ],
)
def test_unusable_retry_after_is_absent(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, NOW) is None


@pytest.mark.parametrize(
    "bad_ms", ["abc", "-5", "nan", "1e12"], ids=["garbage", "negative", "nan", "absurd"]
)
def test_unusable_millisecond_header_falls_back_to_retry_after(bad_ms: str) -> None:
    # "counts as absent" means the next header is consulted, as for a missing one.
    assert parse_retry_after({"retry-after-ms": bad_ms, "retry-after": "3"}, NOW) == 3.0
    assert parse_retry_after({"x-ms-retry-after-ms": bad_ms, "retry-after": "3"}, NOW) == 3.0


def test_retry_after_results_are_finite() -> None:
    for raw in ["1", "0.001", "86400"]:
        value = parse_retry_after({"retry-after": raw}, NOW)
        assert value is not None
        assert math.isfinite(value)


# -- JSON helpers and the response view ----------------------------------------------------


def test_decode_json_and_extract() -> None:
    document = decode_json(b'{"properties": {"provisioningState": "Creating"}, "n": [1]}')
    assert extract(document, ("properties", "provisioningState")) == "Creating"
    assert extract(document, ("properties", "missing")) is None
    assert extract(document, ("n", "0")) is None  # lists are not followed
    assert extract("text", ("a",)) is None
    assert extract(document, ()) == document
    with pytest.raises(msgspec.DecodeError):
        decode_json(b"{not json")


@pytest.mark.parametrize(
    "body",
    # 20,000 levels: past the recursion limit msgspec meets on every supported Python (about
    # 1,000 up to 3.12, about 10,000 on 3.13).
    [
        b'{"status": "\xff"}',
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    ],
    ids=["bad UTF-8 in a string", "deep arrays", "deep objects"],
)
def test_every_malformed_body_is_a_decode_error(body: bytes) -> None:
    # Depending on its release, msgspec raises UnicodeDecodeError (before 0.23) or DecodeError
    # for bad UTF-8, and RecursionError for deep nesting. lrokit's contract is the one type
    # its callers catch, whatever msgspec's wording; a hostile body must not escape as another.
    with pytest.raises(msgspec.DecodeError) as caught:
        decode_json(body)
    assert type(caught.value) is msgspec.DecodeError


def test_response_view_build_lowercases_headers_and_encodes_text() -> None:
    view = ResponseView.build(202, {"Operation-Location": "u", "RETRY-AFTER": "1"}, "é", "x")
    assert view.headers == {"operation-location": "u", "retry-after": "1"}
    assert view.body == "é".encode()
    assert view.url == "x"
    assert ResponseView.build(204).body == b""
    assert ResponseView.build(200, body=b"raw").body == b"raw"
