"""URL rules: resolving service-provided URLs, carrying ``api-version``, and origin pinning.

Origin pinning parses the authority of a URL itself, strictly, and refuses whatever another
parser could read differently (backslashes, whitespace and control characters, user info,
bad ports, malformed IPv6 literals). A URL passes only when the HTTP library that sends it
must connect to the very host and port that were checked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import unquote_plus, urlencode, urljoin, urlsplit, urlunsplit

from ._exceptions import UntrustedOriginError

__all__ = [
    "OriginPolicy",
    "api_version_of",
    "origin_of",
    "encode_unsafe",
    "redact_query",
    "redact_text",
    "resolve",
    "with_api_version",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: ``scheme://authority``; the authority ends where RFC 3986 (and ``urlsplit``) end it.
_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)")
#: Characters some URL parsers drop, rewrite or stop at (urllib3 ends the authority at a
#: backslash, ``urlsplit`` does not; ``urlsplit`` deletes tabs and newlines): refused anywhere.
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
_ASCII_HOST = re.compile(r"[a-z0-9._\-]+")
_ASCII_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


class _Authority(NamedTuple):
    scheme: str
    userinfo: str | None
    host: str
    port: int  # -1 when the port is not a valid number


def _authority(url: str) -> _Authority | None:
    """The normalised scheme, user info, host and port of ``url``, or None if unusable.

    ASCII host names are lower-cased (DNS is case-insensitive); IPv6 literals are
    compressed; a non-ASCII host is kept exactly as written, because IDNA libraries differ
    (IDNA 2003 maps ``ß`` to ``ss``, IDNA 2008 does not), so only identical spellings can be
    known to name the same host.
    """
    match = _AUTHORITY.match(url)
    if match is None:
        return None
    scheme = match.group(1).lower()
    userinfo, at, hostport = match.group(2).rpartition("@")
    if hostport.startswith("["):
        literal = _IPV6.match(hostport)
        if literal is None:
            return None
        try:
            host = f"[{ipaddress.IPv6Address(literal.group(1)).compressed}]"
        except ValueError:
            return None
        rest = hostport[literal.end() :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
        if host.isascii():
            host = host.lower()
            if _ASCII_HOST.fullmatch(host) is None:
                return None
        elif any(c.isascii() and c not in _ASCII_HOST_CHARS for c in host):
            return None
    if not host:
        return None
    if not port_text:
        port = _DEFAULT_PORTS.get(scheme, 0)
    elif port_text.isdigit() and port_text.isascii() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        port = -1
    return _Authority(scheme, userinfo if at else None, host, port)


def _format(parts: _Authority) -> str:
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: scheme and ASCII host lower-cased, the default port
    made explicit, IPv6 literals compressed; ``-1`` as the port when it is not a number.

    Returns ``""`` for a string without a usable ``scheme://host`` (no origin is ``""``).
    """
    parts = _authority(url)
    return "" if parts is None else _format(parts)


def resolve(base: str, reference: str) -> str:
    """Resolve a possibly relative ``reference`` against the URL of the request ``base``.

    A reference the URL parser cannot read at all (a broken IPv6 literal, say) is returned
    as it is: the origin check refuses it afterwards, with a typed error.
    """
    reference = reference.strip()
    try:
        return urljoin(base, reference)
    except ValueError:
        return reference


def api_version_of(url: str) -> str | None:
    """The ``api-version`` query parameter of ``url``, or None.

    Splits the query by hand rather than with ``urlsplit``/``parse_qsl``: this runs for
    every operation and every restored token, and the general parsers cost most of an
    operation's creation time.
    """
    query = url.partition("?")[2]  # the query, and the fragment if there is one
    if "api-version=" not in query:
        return None
    if query.startswith("api-version=") and "&" not in query and "#" not in url:
        value = query[12:]  # the usual query: the api-version alone
    else:
        for field in url.partition("#")[0].partition("?")[2].split("&"):
            if field.startswith("api-version="):
                value = field[12:]
                break
        else:
            return None
    return unquote_plus(value) if "%" in value or "+" in value else value


def with_api_version(url: str, api_version: str | None) -> str:
    """Add ``api-version`` to ``url`` when it has none (never a second one)."""
    # Parse the query: a substring test would also match ``x-api-version=`` or a path.
    if api_version is None or api_version_of(url) is not None:
        return url
    try:
        return with_params(url, {"api-version": api_version})
    except ValueError:
        return url  # unreadable: left for the origin check to refuse


def with_params(url: str, params: Mapping[str, str] | None) -> str:
    """``url`` with ``params`` appended to its query, encoded as ``requests`` does."""
    if not params:
        return url
    parts = urlsplit(url)
    extra = urlencode(list(params.items()), doseq=True)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _is_secret(name: str, names: frozenset[str]) -> bool:
    """The redaction rule: a query parameter is secret when its name, percent-decoded and
    lower-cased, is one of ``names`` (so ``SIG=`` and ``si%67=`` count as ``sig``)."""
    return unquote_plus(name).lower() in names


def redact_query(url: str, names: frozenset[str]) -> tuple[str, bool]:
    """``url`` with the values of the query parameters in ``names`` (lower-case) removed.

    Returns the URL and whether anything was removed; see :func:`_is_secret`.
    """
    head, question, rest = url.partition("?")
    if not question or not names:
        return url, False
    query, hash_, fragment = rest.partition("#")
    fields = query.split("&")
    changed = False
    for index, field in enumerate(fields):
        name = field.partition("=")[0]
        if _is_secret(name, names):
            fields[index] = f"{name}="
            changed = True
    if not changed:
        return url, False
    return f"{head}?{'&'.join(fields)}{hash_}{fragment}", True


#: A query field inside free text (a message of an HTTP library that quotes a URL, whole
#: or as ``/path?query``): its name and its value, which ends at ``&``, ``#``, whitespace,
#: a quote or a closing bracket.
_TEXT_FIELD = re.compile(r"(?<=[?&;])([^=&#\s'\"()<>?]+)=([^&#\s'\"()<>]*)")
#: User info of an absolute URL inside free text.
_TEXT_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#@\s'\"]*@")


def redact_text(text: str, names: frozenset[str]) -> str:
    """``text`` (a message, a repr, a library's error text) with every URL's user info and
    the values of its secret query parameters removed: :func:`redact_query`'s rule applied
    wherever a query field appears."""
    if "@" in text:
        text = _TEXT_USERINFO.sub(r"\1", text)
    if "=" not in text or not names:
        return text

    def drop(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}=" if _is_secret(name, names) else match.group(0)

    return _TEXT_FIELD.sub(drop, text)


def encode_unsafe(url: str) -> str:
    """``url`` with its non-ASCII characters percent-encoded (as UTF-8), so that tokens,
    headers and every HTTP library read it alike.

    Header values arrive decoded as Latin-1 by ``http.client``: a raw UTF-8 header
    (``/ops/中/1``) comes as ``"/ops/\xe4\xb8\xad/1"``. Such text is re-encoded to its
    original bytes first, so it becomes ``/ops/%E4%B8%AD/1`` as the service meant it.
    """
    if url.isascii():
        return url
    try:
        original = url.encode("latin-1")
        original.decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        original = url.encode("utf-8")
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in original)


class OriginPolicy:
    """Which origins an operation may send requests to.

    The client's endpoint origin is always trusted; ``allowed`` adds more (each a URL whose
    scheme, host and port are taken). A URL is refused with :class:`UntrustedOriginError`,
    before any request, when its origin is not one of them, when it carries user info
    (``https://user@host/``) other than the endpoint's own on the endpoint's origin, or when
    it holds characters that URL parsers disagree about (backslash, whitespace, control
    characters). When the endpoint is ``https``, no ``http`` origin can be trusted: the
    constructor refuses such an allowlist, so a downgrade is always refused.

    Raises:
        ValueError: the endpoint or an allowed origin is not an ``http(s)://host`` URL, or
            an ``http`` origin is allowed next to an ``https`` endpoint.
    """

    __slots__ = (
        "_endpoint_origin",
        "_origins",
        "_userinfo",
        "_written",
        "_written_length",
        "endpoint",
        "origin_url",
    )

    def __init__(self, endpoint: str, allowed: Iterable[str] = ()) -> None:
        self.endpoint = endpoint
        parts = _authority(endpoint)
        if parts is None or parts.port < 0 or parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("the endpoint must be an http(s) URL with a valid host and port")
        if _AMBIGUOUS.search(endpoint):
            raise ValueError("the endpoint contains whitespace, control characters or '\\'")
        origins = {_format(parts)}
        for url in allowed:
            other = _authority(url)
            if other is None or other.port < 0 or other.scheme not in _DEFAULT_PORTS:
                raise ValueError(f"allowed origin {url!r} is not an http(s) URL with a host")
            if parts.scheme == "https" and other.scheme == "http":
                raise ValueError(
                    f"allowed origin {url!r} is http next to an https endpoint: requests with"
                    " the client's credentials would travel unencrypted"
                )
            origins.add(_format(other))
        self._endpoint_origin = _format(parts)
        self._origins = frozenset(origins)
        self._userinfo = parts.userinfo
        default = parts.port == _DEFAULT_PORTS[parts.scheme]
        #: The endpoint's origin as a URL prefix, ``scheme://host[:port]``: normalised, the
        #: default port left out, never any user info. Tokens store it once and the URLs on
        #: it as ``/path?query`` (see :meth:`shorten`).
        self.origin_url = f"{parts.scheme}://{parts.host}" + ("" if default else f":{parts.port}")
        written = endpoint[: _AUTHORITY.match(endpoint).end()]  # type: ignore[union-attr]
        # The endpoint's own spelling, for the common case of URLs built from it verbatim.
        self._written = written if parts.userinfo is None else self.origin_url
        self._written_length = len(self._written)

    @property
    def origins(self) -> tuple[str, ...]:
        """The trusted origins, sorted."""
        return tuple(sorted(self._origins))

    @property
    def endpoint_origin(self) -> str:
        """The origin of the endpoint, as :func:`origin_of` spells it."""
        return self._endpoint_origin

    def trusts(self, url: str) -> bool:
        """Whether :meth:`check` would accept ``url``."""
        if _AMBIGUOUS.search(url):
            return False
        written = self._written
        if url.startswith(written) and url.startswith("/", self._written_length):
            # The endpoint's own authority, spelled as the endpoint spells it (without user
            # info), then a path: the endpoint's origin, which is trusted.
            return True
        parts = _authority(url)
        if parts is None or parts.port < 0:
            return False
        origin = _format(parts)
        if origin not in self._origins:
            return False
        # User info would make requests send Basic credentials chosen by whoever wrote the
        # URL; only the endpoint's own, on the endpoint's origin, is accepted.
        return parts.userinfo is None or (
            origin == self._endpoint_origin and parts.userinfo == self._userinfo
        )

    def check(self, url: str) -> str:
        """Return ``url`` if it may be requested, else raise :class:`UntrustedOriginError`."""
        if not self.trusts(url):
            raise UntrustedOriginError(url, self.origins)
        return url

    def shorten(self, url: str) -> str | None:
        """``url`` as a path-absolute reference (``/path?query``) when it is on the
        endpoint's origin, to be resolved against :attr:`origin_url`; else None.

        User info is dropped (tokens never hold it); a path starting with ``//`` would read
        as a host, so such a URL is not shortened.
        """
        written = self._written  # the common case first: a URL built from the endpoint
        if url.startswith(written):
            length = self._written_length
            if url.startswith("/", length) and not url.startswith("//", length):
                return url[length:]
        if url.startswith(self.origin_url):
            rest = url[len(self.origin_url) :]
            if rest[:1] == "/" and rest[:2] != "//":
                return rest
        parts = _authority(url)
        if parts is None or _format(parts) != self._endpoint_origin:
            return None
        rest = url[_AUTHORITY.match(url).end() :]  # type: ignore[union-attr]
        if rest[:1] != "/":
            rest = "/" + rest  # https://host?q is https://host/?q
        return None if rest[:2] == "//" else rest
