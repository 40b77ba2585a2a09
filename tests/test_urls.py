"""URL rules: origins, resolution, api-version carrying and the origin policy."""

from __future__ import annotations

import pytest

from lrokit import OriginPolicy, UntrustedOriginError
from lrokit._urls import api_version_of, origin_of, resolve, with_api_version


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Svc.Example.COM/a?b=c", "https://svc.example.com:443"),
        ("https://svc.example.com:443/a", "https://svc.example.com:443"),
        ("http://svc.example.com/a", "http://svc.example.com:80"),
        ("HTTP://svc.example.com:8080", "http://svc.example.com:8080"),
        ("https://[::1]:8443/x", "https://[::1]:8443"),
        ("https://user:pw@svc.example.com/x", "https://svc.example.com:443"),
        ("https://svc.example.com:notaport/x", "https://svc.example.com:-1"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def test_resolve() -> None:
    base = "https://svc.example.com/items/1?api-version=1"
    assert resolve(base, "/ops/2") == "https://svc.example.com/ops/2"
    assert resolve(base, " ops/2 ") == "https://svc.example.com/items/ops/2"
    assert resolve(base, "https://other.example.net/x") == "https://other.example.net/x"


@pytest.mark.parametrize(
    ("url", "version"),
    [
        ("https://h/x?api-version=2024-01-01", "2024-01-01"),
        ("https://h/x?a=1&api-version=v2&b=2", "v2"),
        ("https://h/x?api-version=", ""),
        ("https://h/x?x-api-version=9", None),
        ("https://h/x", None),
        # The hand-written split agrees with parse_qsl on encoded values and fragments.
        ("https://h/x?api-version=2024%2D01+a", "2024-01 a"),
        ("https://h/x?a=api-version=3", None),
        ("https://h/x#api-version=4", None),
        ("https://h/x?b=1#api-version=4", None),
        ("https://h/x?api-version=5#frag", "5"),
    ],
)
def test_api_version_of(url: str, version: str | None) -> None:
    assert api_version_of(url) == version


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/x", "https://h/x?api-version=1"),
        ("https://h/x?a=b", "https://h/x?a=b&api-version=1"),
        ("https://h/x?api-version=2", "https://h/x?api-version=2"),
        ("https://h/x?a=b&api-version=2", "https://h/x?a=b&api-version=2"),
        ("https://h/x#frag", "https://h/x?api-version=1#frag"),
        # A different parameter whose name merely ends in api-version is not api-version.
        ("https://h/x?x-api-version=2", "https://h/x?x-api-version=2&api-version=1"),
        ("https://h/api-version=3/x", "https://h/api-version=3/x?api-version=1"),
    ],
)
def test_with_api_version_adds_it_once(url: str, expected: str) -> None:
    assert with_api_version(url, "1") == expected
    assert with_api_version(expected, "1") == expected  # idempotent
    assert with_api_version(url, None) == url


def test_origin_policy_trusts_the_endpoint_and_the_allowlist() -> None:
    policy = OriginPolicy("https://svc.example.com/base/", ["https://ops.example.org:8443/x"])
    assert policy.endpoint == "https://svc.example.com/base/"
    assert policy.origins == ("https://ops.example.org:8443", "https://svc.example.com:443")
    for url in (
        "https://svc.example.com/anything/else?x=1",
        "https://SVC.example.com:443/",
        "https://ops.example.org:8443/poll",
    ):
        assert policy.check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://svc.example.com/x",  # https -> http downgrade
        "https://svc.example.com:8443/x",
        "https://ops.example.org/x",  # allowed only on 8443
        "https://svc.example.com.evil.example.net/x",
        "https://svc.example.com@evil.example.net/x",  # userinfo trick
        "ftp://svc.example.com/x",
        "/relative/x",
        "",
    ],
)
def test_origin_policy_refuses_everything_else(url: str) -> None:
    policy = OriginPolicy("https://svc.example.com/", ["https://ops.example.org:8443"])
    with pytest.raises(UntrustedOriginError) as info:
        policy.check(url)
    assert info.value.url == url
    assert info.value.allowed == policy.origins


def test_untrusted_origin_message_is_bounded() -> None:
    long_url = "https://evil.example.net/" + "a" * 5000
    with pytest.raises(UntrustedOriginError) as info:
        OriginPolicy("https://svc.example.com").check(long_url)
    assert len(str(info.value)) < 400


def test_untrusted_origin_message_shows_only_the_origin() -> None:
    from lrokit import UntrustedOriginError
    from lrokit._urls import OriginPolicy

    url = "https://user:pw@evil.example/ops/1?sig=SECRET-SIGNATURE&api-version=1"
    with pytest.raises(UntrustedOriginError) as caught:
        OriginPolicy("https://svc.example.com/").check(url)
    message = str(caught.value)
    assert "'https://evil.example'" in message
    for secret in ("SECRET-SIGNATURE", "pw", "/ops/1"):
        assert secret not in message
    assert caught.value.url == url  # the whole value stays available to code
