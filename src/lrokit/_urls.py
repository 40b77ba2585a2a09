"""URL rules: resolving service-provided URLs, carrying ``api-version``, and origin pinning."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus, urlencode, urljoin, urlsplit, urlunsplit

from ._exceptions import UntrustedOriginError

__all__ = ["OriginPolicy", "api_version_of", "origin_of", "resolve", "with_api_version"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``, lower-cased with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def resolve(base: str, reference: str) -> str:
    """Resolve a possibly relative ``reference`` against the URL of the request ``base``."""
    return urljoin(base, reference.strip())


def api_version_of(url: str) -> str | None:
    """The ``api-version`` query parameter of ``url``, or None.

    Splits the query by hand rather than with ``urlsplit``/``parse_qsl``: this runs once per
    operation and the general parsers cost most of an operation's creation time.
    """
    query = url.partition("#")[0].partition("?")[2]
    if "api-version=" not in query:
        return None
    for field in query.split("&"):
        if field.startswith("api-version="):
            value = field[len("api-version=") :]
            return unquote_plus(value) if "%" in value or "+" in value else value
    return None


def with_api_version(url: str, api_version: str | None) -> str:
    """Add ``api-version`` to ``url`` when it has none (never a second one)."""
    # Parse the query: a substring test would also match ``x-api-version=`` or a path.
    if api_version is None or api_version_of(url) is not None:
        return url
    parts = urlsplit(url)
    extra = urlencode({"api-version": api_version})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class OriginPolicy:
    """Which origins an operation may send requests to.

    The client's endpoint origin is always trusted; ``allowed`` adds more (each a URL whose
    scheme, host and port are taken). Anything else, and any ``https`` to ``http`` downgrade,
    is refused with :class:`UntrustedOriginError` before a request is made.
    """

    __slots__ = ("_origins", "endpoint")

    def __init__(self, endpoint: str, allowed: Iterable[str] = ()) -> None:
        self.endpoint = endpoint
        self._origins = frozenset(origin_of(u) for u in (endpoint, *allowed))

    @property
    def origins(self) -> tuple[str, ...]:
        """The trusted origins, sorted."""
        return tuple(sorted(self._origins))

    def check(self, url: str) -> str:
        """Return ``url`` if it may be requested, else raise :class:`UntrustedOriginError`."""
        if origin_of(url) not in self._origins:
            raise UntrustedOriginError(url, self.origins)
        return url
