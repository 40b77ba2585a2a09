"""The URL fast paths of the request path give exactly what ``urljoin`` would.

``Pipeline.url`` concatenates plain relative references and ``OperationCore`` keeps plain
absolute header URLs as they are, instead of calling ``urljoin`` (microseconds per call, on
every start). These properties compare both with the slow path on generated strings built
from the characters that make ``urljoin`` differ from concatenation.
"""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from lrokit import Pipeline
from lrokit._core import _PLAIN_ABSOLUTE
from lrokit._pipeline import _PLAIN_REFERENCE, view_of
from lrokit._urls import resolve

PIECES = [
    *"ab/?#;:.%\\ \t\n@[]=&",
    "\u2003",
    "\x00",
    "\x7f",
    "é",
    "//",
    "..",
    "./",
]
TEXT = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
ENDPOINTS = st.sampled_from(
    [
        "https://svc.example.test/",
        "https://svc.example.test/base/",
        "http://127.0.0.1:8080/a/b/",
        "https://svc.example.test/base",  # made to end in "/" by the pipeline
        "https://svc.example.test/base/?x=1",  # a query: never joined by concatenation
        "https://svc.example.test/a;p/",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(ENDPOINTS, TEXT)
def test_pipeline_url_is_urljoin(endpoint: str, path: str) -> None:
    pipeline = Pipeline(endpoint)
    try:
        try:
            expected = urljoin(pipeline.endpoint, path.lstrip("/"))
        except ValueError:  # urljoin refuses some references (a broken IPv6 literal)
            with pytest.raises(ValueError, match="IPv6"):
                pipeline.url(path)
            return
        assert pipeline.url(path) == expected
        url, trusted = pipeline._endpoint_url(path)
        assert url == expected
        if trusted:  # built from the trusted endpoint: the origin check must agree
            assert pipeline.origin_policy.trusts(url)
    finally:
        pipeline.close()


def test_plain_references_take_the_fast_path() -> None:
    for plain in ("vector_stores?api-version=2024-01-01", "a/b/", "", "?x=1", "é/ß"):
        assert _PLAIN_REFERENCE.fullmatch(plain), plain
    for other in ("a//b", "./a", "a/../b", "users:export", "a#f", "a b", "a;p", ".well-known"):
        assert not _PLAIN_REFERENCE.fullmatch(other), other


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(["https://h.test/a/b?api-version=1", "http://h.test/", "https://o.test"]),
    st.sampled_from(["https://", "http://", "HTTPS://", "https:", "ftp://", ""]),
    TEXT,
)
def test_plain_absolute_urls_resolve_to_themselves(base: str, prefix: str, tail: str) -> None:
    reference = prefix + tail
    if _PLAIN_ABSOLUTE.fullmatch(reference):
        assert resolve(base, reference) == reference


def test_view_of_lower_cases_header_names() -> None:
    response = requests.Response()
    response.status_code = 202
    response.headers.update({"Operation-Location": "https://h.test/op", "Retry-After": "2"})
    response._content = b"{}"
    view = view_of(response)
    assert view.headers == {"operation-location": "https://h.test/op", "retry-after": "2"}
    assert view.raw is response
