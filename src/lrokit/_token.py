"""The rehydration token: a versioned msgspec Struct, JSON, then base64url; optionally signed.

The token holds only what polling needs; never credentials, headers, cookies or response
bodies, and never pickle. ``docs/token.md`` is the specification of every field and of the
compatibility promise: every version ever written stays readable (:class:`TokenV1` is read
and upgraded to :class:`TokenV2`), and an unknown version is refused.

Reading is bounded before it starts: the size is checked first, then the alphabet, then the
signature (when a :class:`~lrokit.TokenSigner` is configured), and only then is the JSON
decoded, strictly, against the Struct of its version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from ._exceptions import InvalidTokenError
from ._signing import TokenSigner, is_signature
from ._urls import api_version_of, redact_query, redact_text

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_SECRET_QUERY_PARAMETERS",
    "DEFAULT_TOKEN_POLICY",
    "KNOWN_VERSIONS",
    "MAX_COUNT",
    "MAX_SECONDS",
    "MAX_TOKEN_BYTES",
    "MAX_URL_LENGTH",
    "RehydrationToken",
    "TokenPolicy",
    "TokenV1",
    "TokenV2",
]

#: Tokens longer than this (encoded, signature included) are refused before any decoding.
MAX_TOKEN_BYTES = 4096
#: The version new tokens are written in.
CURRENT_VERSION = 2
#: Every version this release reads.
KNOWN_VERSIONS = (1, 2)
#: Query parameters whose values are credentials (lower-case): Azure SAS ``sig``, AWS and
#: Google signed URLs, OAuth tokens in URLs, API keys. A URL holding one is not written into a
#: token as it is; see :class:`TokenPolicy`.
DEFAULT_SECRET_QUERY_PARAMETERS = frozenset(
    {
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-security-token",
        "x-goog-signature",
        "access_token",
        "id_token",
        "refresh_token",
        "api_key",
        "apikey",
        "api-key",
        "client_secret",
        "password",
    }
)


class TokenV1(
    msgspec.Struct,
    frozen=True,
    tag=1,
    tag_field="v",
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """Version 1 of the token format (lrokit 0.1). Still read, never written.

    Every URL is absolute. Field names are short because tokens travel.
    """

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


State = Literal["NotStarted", "Running", "Succeeded", "Failed", "Canceled"]
Protocol = Literal["status-monitor", "location", "resource", "none"]
Pending = Literal["start", "poll", "fetch-final", "done"]
Via = Literal["location", "azure-async-operation", "operation-location", "original-uri"]
#: The longest URL a token holds (characters).
MAX_URL_LENGTH = 2048
#: A URL: absolute ``http(s)://...``, or ``/path?query`` relative to the token's origin.
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
#: ``scheme://host[:port]`` (the form is checked after decoding, see ``_check_values``).
Origin = Annotated[str, msgspec.Meta(min_length=8, max_length=300)]
#: Visible ASCII without spaces (checked after decoding): safe in a header and a message.
Word = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
#: Upper-case ASCII letters (checked after decoding).
Method = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
#: The largest counter a token holds; counters saturate at it rather than overflow.
MAX_COUNT = 2**31 - 1
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
#: The latest creation time a token holds (Unix seconds: the year 5138); anything later, or
#: not finite, is refused: arithmetic on it could overflow.
MAX_SECONDS = 1e11
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]


class TokenV2(
    msgspec.Struct,
    frozen=True,
    tag=2,
    tag_field="v",
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
):
    """Version 2 of the token format, the one written now; ``docs/token.md`` specifies it.

    URLs on the writing client's endpoint origin are stored as ``/path?query``, relative to
    ``origin`` (stored once); others stay absolute. Every value is type- and range-checked
    while decoding. Only None, ``False`` and ``0`` defaults are left out: msgspec compares
    string and float defaults by identity, which would make the encoding depend on how a
    value was made. The required fields come first (so the core can build one
    positionally, five times faster than with keywords); the order is also the JSON order.
    Not tracked by the garbage collector (``gc=False``): every field is a scalar, so a
    token cannot be part of a reference cycle, and creating and freeing one is cheaper.
    """

    state: State = msgspec.field(name="s")
    protocol: Protocol = msgspec.field(name="p")
    method: Method = msgspec.field(name="m")
    initial_url: Url = msgspec.field(name="u")
    pending: Pending = msgspec.field(name="n")
    created_at: Seconds = msgspec.field(name="c")
    origin: Origin | None = msgspec.field(default=None, name="o")
    polling_url: Url | None = msgspec.field(default=None, name="pu")
    location_url: Url | None = msgspec.field(default=None, name="lu")
    final_url: Url | None = msgspec.field(default=None, name="fu")
    api_version: Annotated[str, msgspec.Meta(max_length=128)] | None = msgspec.field(
        default=None, name="av"
    )
    final_state_via: Via | None = msgspec.field(default=None, name="fv")
    attempt: Count = msgspec.field(default=0, name="a")
    operation_id: Word | None = msgspec.field(default=None, name="id")
    start_operation_id: Word | None = msgspec.field(default=None, name="oi")
    kind: Word | None = msgspec.field(default=None, name="k")
    redacted: bool = msgspec.field(default=False, name="x")


#: The fields of the current version.
TokenFields = TokenV2

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TokenV1 | TokenV2)


class _Envelope(msgspec.Struct):
    """Only the version tag, read to explain why a token does not decode."""

    v: int


_envelope_decoder = msgspec.json.Decoder(_Envelope)
#: The base64url alphabet; the stdlib decoder would silently skip other characters.
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: base64url to the standard alphabet in one pass, every other byte (``+``, ``/``, ``=``,
#: quotes, backslashes, whitespace, non-ASCII) to ``!``, which the decoder refuses: the
#: alphabet check and the translation in one ``bytes.translate``.
_TO_STANDARD_OR_BAD = bytes(b if b in _BASE64URL else ord("!") for b in range(256)).translate(
    bytes.maketrans(b"-_", b"+/")
)
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: msgspec decodes base64 (standard alphabet, padded, strictly) inside a JSON string about
#: twice as fast as ``binascii.a2b_base64``; the token's text becomes that string.
_base64_decoder = msgspec.json.Decoder(bytes)
#: The closing quote with the padding a payload of each length modulo 4 needs.
_PADDED_END = (b'"', b'==="', b'=="', b'="')
#: The usual methods, whose form needs no checking.
_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE", "GET"})
#: Origins whose form was found good already: most tokens name one of a few services.
_GOOD_ORIGINS: set[str] = set()
ORIGIN_FORM = re.compile(r"[hH][tT][tT][pP][sS]?://[^/?#@\\\s]+")
# Parts of msgspec's validation messages that hold no input (types, limits, our own names).
_SAFE_PATH = re.compile(r"\$(?:\.[a-z]{1,3}|\[\d{1,4}\])*")
_SAFE_WHAT = re.compile(
    r"Expected `[a-z |]+`(?:, got `[a-z]+`| of length [<>]=? \d+| [<>]=? -?[\d.]+)?"
    r"|Object missing required field `[a-z]{1,3}`"
)


def _describe(error: msgspec.ValidationError) -> str:
    """msgspec's reason without any of the input (values and unknown keys are left out)."""
    what, _, where = str(error).partition(" - at `")
    if _SAFE_WHAT.fullmatch(what) is None:
        if what.startswith("Object contains unknown field"):
            what = "an unknown field"
        elif what.startswith("Expected `str` matching"):
            what = "a text value of the wrong form"
        else:
            what = "a value that is not allowed"
    path = where[:-1]
    return f"{what} at `{path}`" if _SAFE_PATH.fullmatch(path) else what


def _refuse_version(decoded: bytes) -> None:
    """Raise the clear error for an unknown version, if that is what ``decoded`` has."""
    try:
        version = _envelope_decoder.decode(decoded).v
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return
    if version not in KNOWN_VERSIONS:
        shown = f"version {version}" if 0 <= version < 10_000 else "an unknown version"
        raise InvalidTokenError(
            f"token is of {shown}, which this release of lrokit does not read (it reads"
            f" versions {', '.join(map(str, KNOWN_VERSIONS))}): the token was written by a"
            " newer lrokit, or is not a token"
        ) from None


def check_values(fields: TokenV2) -> TokenV2:
    """Check the form of text fields that the Struct's types leave open; returns ``fields``.

    Done here with string methods rather than as msgspec ``pattern`` constraints, which
    cost three times as much as the rest of decoding.

    Raises:
        InvalidTokenError: a method that is not upper-case letters, an id or kind that is
            not visible ASCII without spaces (the ids may become headers), or an origin that
            is not ``http(s)://host[:port]``.
    """
    method = fields.method
    if method not in _METHODS and not (method.isupper() and method.isalpha() and method.isascii()):
        raise InvalidTokenError(
            "token does not match the token format: the method is not upper-case ASCII letters"
        )
    # The three checked as one string: it holds a bad character if and only if one of them does.
    words = f"{fields.operation_id or ''}{fields.start_operation_id or ''}{fields.kind or ''}"
    if not (words.isascii() and words.isprintable()) or " " in words:
        raise InvalidTokenError(
            "token does not match the token format: an id or kind holds spaces or"
            " control characters"
        )
    origin = fields.origin
    if origin is not None and origin not in _GOOD_ORIGINS:
        if ORIGIN_FORM.fullmatch(origin) is None:
            raise InvalidTokenError(
                "token does not match the token format: the origin is not scheme://host[:port]"
            )
        if len(_GOOD_ORIGINS) < 64:  # a few services' origins, remembered (bounded)
            _GOOD_ORIGINS.add(origin)
    return fields


def upgrade(fields: TokenV1) -> TokenV2:
    """A version-1 token's fields as version 2 (same meaning; values are validated).

    Raises:
        InvalidTokenError: a value that version 2 does not allow (v1 checked fewer).
    """
    pending = fields.pending
    if fields.state == "NotStarted":
        pending = "start"
    elif pending == "retry":
        pending = "poll"  # a retry repeats the poll; v1 could say either
    api_version = fields.api_version
    if api_version == api_version_of(fields.initial_url):
        api_version = None
    document = {
        "v": 2,
        "s": fields.state,
        "p": fields.protocol,
        "m": fields.method,
        "u": fields.initial_url,
        "n": pending,
        "pu": fields.polling_url,
        "lu": fields.location_url,
        "fu": fields.final_url,
        "av": api_version,
        "fv": fields.final_state_via,
        "a": fields.attempt,
        "c": fields.created_at,
        "id": fields.operation_id,
        "k": fields.kind,
    }
    try:
        return msgspec.convert(document, TokenV2)
    except msgspec.ValidationError as error:
        raise InvalidTokenError(
            f"version-1 token does not match the token format: {_describe(error)}"
        ) from None


class RehydrationToken:
    """An operation's resumable state, in a form that can be stored and sent.

    ``str(token)`` and :meth:`to_bytes` give the transport form (base64url text, no padding,
    followed by ``.KID.MAC`` when signed); :meth:`from_str` and :meth:`from_bytes` read it
    back and raise :class:`InvalidTokenError` for anything that is not a well-formed,
    correctly signed (when a signer is given) token of a known version. :attr:`fields` holds
    the decoded fields, always in the current version's Struct.

    Args:
        fields: the fields (a version-1 Struct is upgraded).
        signer: signs the transport form; None leaves it unsigned.
    """

    __slots__ = ("_payload", "_signature", "_signer", "_verified_by", "fields")

    def __init__(self, fields: TokenV2 | TokenV1, *, signer: TokenSigner | None = None) -> None:
        if isinstance(fields, TokenV1):
            fields = check_values(upgrade(fields))
        self.fields: TokenV2 = fields
        self._signer = signer
        self._payload: bytes | None = None
        self._signature: bytes | None = None
        # The signer whose check this token passed (a token it signed itself passes).
        self._verified_by = signer

    @classmethod
    def _written(cls, fields: TokenV2, signer: TokenSigner | None) -> RehydrationToken:
        """A token of fields made by this process (no upgrade or checks needed)."""
        token = cls.__new__(cls)
        token.fields = fields
        token._signer = token._verified_by = signer
        token._payload = token._signature = None
        return token

    @property
    def payload(self) -> bytes:
        """The unsigned transport form (base64url of the JSON, no padding)."""
        if self._payload is None:
            # msgspec writes bytes as a JSON string of padded standard base64 (a little
            # faster than binascii): the quotes and the padding go, then the alphabet.
            encoded = _encoder.encode(_encoder.encode(self.fields))
            self._payload = encoded.translate(_TO_URLSAFE).strip(b'"=')
        return self._payload

    @property
    def signature(self) -> bytes | None:
        """``KID.MAC`` of a signed token, or None."""
        if self._signature is None and self._signer is not None:
            self._signature = self._signer.sign(self.payload)
        return self._signature

    @property
    def signed(self) -> bool:
        """Whether the transport form carries a signature."""
        return self.signature is not None

    def to_bytes(self) -> bytes:
        """The transport form as ASCII bytes."""
        signature = self.signature
        return self.payload if signature is None else self.payload + b"." + signature

    def verify(self, signer: TokenSigner) -> RehydrationToken:
        """Check the signature with ``signer``'s keys; returns the token itself.

        Raises:
            InvalidTokenError: unsigned, signed with an unknown key, or altered.
        """
        if self._verified_by is not signer:
            signer.verify(self.payload, self.signature)
            self._verified_by = signer
        return self

    def __str__(self) -> str:
        payload = self._payload or self.payload
        signature = self._signature
        if signature is None:
            if self._signer is None:
                return payload.decode("ascii")
            signature = self._signature = self._signer.sign(payload)
        return (payload + b"." + signature).decode("ascii")

    def __repr__(self) -> str:
        return f"RehydrationToken({self.fields!r}, signed={self.signed})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RehydrationToken) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_bytes: int = MAX_TOKEN_BYTES,
        signer: TokenSigner | None = None,
    ) -> RehydrationToken:
        """Read a token from its transport form.

        With ``signer``, the token must carry a valid signature by one of its keys; the
        signature is checked before the JSON is decoded. Without one, a signature is kept
        (and ``str()`` gives it back) but not checked.

        Raises:
            InvalidTokenError: oversized, not base64url, badly or not signed (with
                ``signer``), not JSON, wrong field types or values, unknown fields or an
                unknown version. The message does not echo the input.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidTokenError(f"a token must be bytes or str, not {type(data).__name__}")
        if len(data) > max_bytes:
            raise InvalidTokenError(f"token of {len(data)} bytes exceeds the limit of {max_bytes}")
        return _read(bytes(data), signer, cls)

    @classmethod
    def from_str(
        cls,
        text: str,
        *,
        max_bytes: int = MAX_TOKEN_BYTES,
        signer: TokenSigner | None = None,
    ) -> RehydrationToken:
        """Read a token from its text form; see :meth:`from_bytes`."""
        if not isinstance(text, str):
            raise InvalidTokenError(f"a token must be str, not {type(text).__name__}")
        if len(text) > max_bytes:  # before encoding, which would copy a huge string
            raise InvalidTokenError(f"token of {len(text)} characters exceeds the limit")
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidTokenError("token contains non-ASCII characters") from None
        return _read(data, signer, cls)

    @classmethod
    def parse(
        cls,
        token: RehydrationToken | str | bytes,
        *,
        max_bytes: int = MAX_TOKEN_BYTES,
        signer: TokenSigner | None = None,
    ) -> RehydrationToken:
        """Accept a token in any of its forms; with ``signer``, verify it (a
        :class:`RehydrationToken` object too: its transport form must carry a valid signature).
        """
        if isinstance(token, RehydrationToken):
            return token if signer is None else token.verify(signer)
        if isinstance(token, str):
            return cls.from_str(token, max_bytes=max_bytes, signer=signer)
        return cls.from_bytes(token, max_bytes=max_bytes, signer=signer)


def _read(data: bytes, signer: TokenSigner | None, cls: type[RehydrationToken]) -> RehydrationToken:
    """A token of class ``cls`` from its transport form, whose size has been checked.

    Everything else happens here, cheapest check first. A function rather than a method:
    restoring runs it for every token, and the lookup of a classmethod costs.
    """
    payload, dot, rest = data.strip().partition(b".")  # strip: nothing to do, no copy
    signature = rest if dot else None
    if signature is not None and not is_signature(signature):
        raise InvalidTokenError("token is not valid base64url, or its signature is malformed")
    if signer is not None:
        signer.verify(payload, signature)
    if payload.endswith(b"="):  # padding is optional, and only allowed at the end
        payload = payload[:-2] if payload.endswith(b"==") else payload[:-1]
    try:
        decoded = _base64_decoder.decode(
            b'"' + payload.translate(_TO_STANDARD_OR_BAD) + _PADDED_END[len(payload) & 3]
        )
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise InvalidTokenError("token is not valid base64url") from None
    try:
        fields = _decoder.decode(decoded)
    except msgspec.ValidationError as error:
        _refuse_version(decoded)
        raise InvalidTokenError(
            f"token does not match the token format: {_describe(error)}"
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # msgspec before 0.23 raises UnicodeDecodeError (not DecodeError) for bad UTF-8, and
        # RecursionError for nesting deeper than about 1000 levels (2.7 KB of token).
        raise InvalidTokenError("token is not valid UTF-8 JSON, or nests too deeply") from None
    if isinstance(fields, TokenV1):
        fields = upgrade(fields)
    token = cls.__new__(cls)  # the fields are checked here, not by __init__ again
    token.fields = check_values(fields)
    token._signer = None
    token._payload = payload
    token._signature = signature
    token._verified_by = signer
    return token


class TokenPolicy:
    """How a client writes and reads rehydration tokens (``Pipeline(tokens=...)``).

    Args:
        signer: when given, every token is signed with its signing key, and only tokens
            carrying a valid signature by one of its keys are restored (unsigned, tampered
            and foreign-key tokens raise :class:`InvalidTokenError`).
        max_bytes: the largest transport form that is read at all.
        secret_query_parameters: query parameter names (case-insensitive) whose values are
            credentials. A token never holds them: their values are removed, the token is
            marked ``redacted``, and restoring it raises :class:`InvalidTokenError` (it could
            not poll). Pass an empty set to keep such URLs whole: tokens then carry those
            credentials and must be protected like them.
    """

    __slots__ = ("max_bytes", "secret_query_parameters", "signer")

    def __init__(
        self,
        *,
        signer: TokenSigner | None = None,
        max_bytes: int = MAX_TOKEN_BYTES,
        secret_query_parameters: Iterable[str] = DEFAULT_SECRET_QUERY_PARAMETERS,
    ) -> None:
        if max_bytes < 64:
            raise ValueError("max_bytes below 64 would refuse every token")
        self.signer = signer
        self.max_bytes = max_bytes
        self.secret_query_parameters = frozenset(n.lower() for n in secret_query_parameters)

    def redact(self, url: str) -> tuple[str, bool]:
        """``url`` without the values of secret query parameters, and whether any was there."""
        redacted = self._redacted(url)
        return (url, False) if redacted is None else (redacted, True)

    def redact_text(self, text: str) -> str:
        """``text`` without user info and secret query values of any URL in it: the rule of
        :meth:`redact`, applied to messages, reprs and span texts (see ``redact_text``)."""
        return redact_text(text, self.secret_query_parameters)

    def _redacted(self, url: str) -> str | None:
        """``url`` without the values of secret query parameters, or None if it has none."""
        names = self.secret_query_parameters
        question = url.find("?")
        if question < 0 or not names:
            return None
        query = url[question + 1 :]
        if "#" in query:
            query = query.partition("#")[0]
        # The common case decided without decoding: no "%" or "+" (a name may be encoded),
        # and no parameter with a secret name.
        if "%" not in query and "+" not in query:
            for field in query.lower().split("&"):
                if field.partition("=")[0] in names:
                    break
            else:
                return None
        redacted, removed = redact_query(url, names)
        return redacted if removed else None

    def read(self, token: RehydrationToken | str | bytes) -> RehydrationToken:
        """Parse (and, with a signer, verify) a token in any of its forms."""
        if type(token) is str and len(token) <= self.max_bytes and token.isascii():
            return _read(token.encode("ascii"), self.signer, RehydrationToken)  # the usual case
        return RehydrationToken.parse(token, max_bytes=self.max_bytes, signer=self.signer)

    def __repr__(self) -> str:
        return f"TokenPolicy(signer={self.signer!r}, max_bytes={self.max_bytes})"


#: Unsigned tokens, the default size limit and the default secret query parameters.
DEFAULT_TOKEN_POLICY = TokenPolicy()
