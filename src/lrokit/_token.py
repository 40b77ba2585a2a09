"""The rehydration token: a versioned msgspec Struct, JSON, then base64url.

The token holds only what polling needs; never credentials, headers, cookies or response
bodies, and never pickle. ``docs/token.md`` is the specification of every field.
"""

from __future__ import annotations

import base64
import binascii
import re

import msgspec

from ._exceptions import InvalidTokenError

__all__ = ["MAX_TOKEN_BYTES", "RehydrationToken", "TokenV1"]

#: Tokens longer than this (encoded) are refused before any decoding.
MAX_TOKEN_BYTES = 4096


class TokenV1(
    msgspec.Struct,
    frozen=True,
    tag=1,
    tag_field="v",
    omit_defaults=True,
    forbid_unknown_fields=True,
):
    """Version 1 of the token format. Field names are short because tokens travel."""

    state: str = msgspec.field(name="s")
    protocol: str = msgspec.field(name="p")
    method: str = msgspec.field(name="m")
    initial_url: str = msgspec.field(name="u")
    pending: str = msgspec.field(name="n")
    polling_url: str | None = msgspec.field(default=None, name="pu")
    location_url: str | None = msgspec.field(default=None, name="lu")
    final_url: str | None = msgspec.field(default=None, name="fu")
    api_version: str | None = msgspec.field(default=None, name="av")
    final_state_via: str | None = msgspec.field(default=None, name="fv")
    attempt: int = msgspec.field(default=0, name="a")
    created_at: float = msgspec.field(default=0.0, name="c")
    operation_id: str | None = msgspec.field(default=None, name="id")
    kind: str | None = msgspec.field(default=None, name="k")


class _Envelope(msgspec.Struct):
    """Only the version tag. msgspec treats the tag of a lone tagged Struct as optional, so
    it is read first to refuse unversioned tokens."""

    v: int


_AnyToken = TokenV1
_KNOWN_VERSIONS = frozenset({1})
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_AnyToken)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
#: Unpadded (or padded) base64url; the stdlib decoder would silently skip other characters.
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


class RehydrationToken:
    """An operation's resumable state, in a form that can be stored and sent.

    ``str(token)`` and :meth:`to_bytes` give the transport form (base64url text, no padding);
    :meth:`from_str` and :meth:`from_bytes` read it back and raise :class:`InvalidTokenError`
    for anything that is not a well-formed token of a known version.
    """

    __slots__ = ("_encoded", "fields")

    def __init__(self, fields: TokenV1, encoded: bytes | None = None) -> None:
        self.fields = fields
        self._encoded = encoded

    def to_bytes(self) -> bytes:
        """The transport form as ASCII bytes."""
        if self._encoded is None:
            self._encoded = base64.urlsafe_b64encode(_encoder.encode(self.fields)).rstrip(b"=")
        return self._encoded

    def __str__(self) -> str:
        return self.to_bytes().decode("ascii")

    def __repr__(self) -> str:
        return f"RehydrationToken({self.fields!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RehydrationToken) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_TOKEN_BYTES) -> RehydrationToken:
        """Read a token from its transport form.

        Raises:
            InvalidTokenError: oversized, not base64url, not JSON, wrong field types, unknown
                fields or an unknown version. The message does not echo the input.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidTokenError(f"a token must be bytes or str, not {type(data).__name__}")
        if len(data) > max_bytes:
            raise InvalidTokenError(f"token of {len(data)} bytes exceeds the limit of {max_bytes}")
        raw = bytes(data).strip()
        if _BASE64URL.fullmatch(raw) is None:
            raise InvalidTokenError("token is not valid base64url")
        try:
            decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            raise InvalidTokenError("token is not valid base64url") from None
        try:
            if _envelope_decoder.decode(decoded).v not in _KNOWN_VERSIONS:
                raise InvalidTokenError("token is of an unknown version")
            fields = _decoder.decode(decoded)
        except msgspec.ValidationError as error:
            raise InvalidTokenError(f"token does not match any known format: {error}") from None
        except msgspec.DecodeError:
            raise InvalidTokenError("token is not valid JSON") from None
        return cls(fields, raw)

    @classmethod
    def from_str(cls, text: str, *, max_bytes: int = MAX_TOKEN_BYTES) -> RehydrationToken:
        """Read a token from its text form; see :meth:`from_bytes`."""
        if not isinstance(text, str):
            raise InvalidTokenError(f"a token must be str, not {type(text).__name__}")
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidTokenError("token contains non-ASCII characters") from None
        return cls.from_bytes(data, max_bytes=max_bytes)

    @classmethod
    def parse(cls, token: RehydrationToken | str | bytes) -> RehydrationToken:
        """Accept a token in any of its forms."""
        if isinstance(token, RehydrationToken):
            return token
        if isinstance(token, str):
            return cls.from_str(token)
        return cls.from_bytes(token)
