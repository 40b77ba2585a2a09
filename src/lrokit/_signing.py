"""Optional HMAC-SHA256 signatures on rehydration tokens, with key rotation.

A signed token is ``PAYLOAD.KID.MAC``: the unsigned token (base64url JSON), the id of the key
that signed it, and ``base64url(HMAC-SHA256(key, "lrokit-token." + KID + "." + PAYLOAD))``
without padding. The MAC covers the key id, so a signature cannot be moved to another key.
Verification recomputes the MAC with the key named by ``KID`` and compares the two in
constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from ._exceptions import InvalidTokenError

__all__ = ["MIN_KEY_BYTES", "TokenSigner"]

#: The shortest key accepted: 256 bits, the output size of SHA-256 (RFC 2104 section 3).
MIN_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_KEY_ID_BYTES = re.compile(rb"[A-Za-z0-9_\-]{1,32}")
_MAC_TEXT = re.compile(rb"[A-Za-z0-9_\-]{43}")
_DOMAIN = b"lrokit-token."


class TokenSigner:
    """Signs tokens with one key and verifies them with any of several.

    Args:
        keys: key id -> secret key (bytes, at least :data:`MIN_KEY_BYTES` long, for example
            ``secrets.token_bytes(32)``). Key ids are 1-32 characters of ``A-Z a-z 0-9 _ -``
            and travel in every signed token; the keys never do.
        signing_key_id: the key that signs new tokens; may be omitted when there is only one
            key. Every key in ``keys`` verifies.

    To rotate: add the new key and make it the signing key (every process that restores
    tokens must have it before any process signs with it), keep the old one for as long as
    tokens signed with it may still come back, then remove it.

    Raises:
        ValueError: a key id or key is malformed, or the signing key is ambiguous or absent.
    """

    __slots__ = ("_keys", "signing_key_id")

    def __init__(self, keys: Mapping[str, bytes], *, signing_key_id: str | None = None) -> None:
        if not keys:
            raise ValueError("TokenSigner needs at least one key")
        checked: dict[bytes, bytes] = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
                raise ValueError("key ids are 1-32 characters of A-Z, a-z, 0-9, '_' and '-'")
            if not isinstance(key, (bytes, bytearray)):
                raise ValueError(f"key {key_id!r} must be bytes (use secrets.token_bytes(32))")
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes")
            checked[key_id.encode("ascii")] = bytes(key)
        if signing_key_id is None:
            if len(checked) != 1:
                raise ValueError("several keys: name the one that signs with signing_key_id=")
            signing_key_id = next(iter(keys))
        elif signing_key_id.encode("ascii", "replace") not in checked:
            raise ValueError(f"signing key {signing_key_id!r} is not one of the keys")
        self._keys = checked
        self.signing_key_id = signing_key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every verification key, sorted."""
        return tuple(sorted(k.decode("ascii") for k in self._keys))

    def sign(self, payload: bytes) -> bytes:
        """The signature suffix ``KID.MAC`` for an unsigned token ``payload``."""
        key_id = self.signing_key_id.encode("ascii")
        return key_id + b"." + _mac(self._keys[key_id], key_id, payload)

    def verify(self, payload: bytes, signature: bytes | None) -> None:
        """Check ``signature`` (``KID.MAC``) over ``payload``.

        Raises:
            InvalidTokenError: no signature, a key id this signer does not have, or a MAC
                that does not match. The message never echoes the token.
        """
        if signature is None:
            raise InvalidTokenError("token is not signed, and this client requires signed tokens")
        key_id, dot, given = signature.partition(b".")
        if not dot or not is_signature(signature):
            raise InvalidTokenError("token signature is malformed")
        key = self._keys.get(key_id)
        if key is None:
            raise InvalidTokenError("token is signed with a key this client does not have")
        if not hmac.compare_digest(_mac(key, key_id, payload), given):
            raise InvalidTokenError(
                "token signature does not match: the token was altered, or signed with another key"
            )

    def __repr__(self) -> str:
        # Never the keys.
        return f"TokenSigner(key_ids={list(self.key_ids)}, signing_key_id={self.signing_key_id!r})"


def is_signature(signature: bytes) -> bool:
    """Whether ``signature`` has the form ``KID.MAC`` (says nothing about its validity)."""
    key_id, dot, mac = signature.partition(b".")
    return (
        bool(dot)
        and _KEY_ID_BYTES.fullmatch(key_id) is not None
        and (_MAC_TEXT.fullmatch(mac) is not None)
    )


def _mac(key: bytes, key_id: bytes, payload: bytes) -> bytes:
    digest = hmac.new(key, _DOMAIN + key_id + b"." + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")
