"""Token helpers shared by the token tests: the fixture tokens and their key, and the
transport form (unpadded base64url JSON) written and read by hand, for building and altering
tokens. A module of its own so that test modules can import it (``from token_helpers import
...``), as the async suite imports ``async_helpers``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from lrokit import TokenSigner

#: The token fixtures: ``<name>.token`` and the fields it must read as, ``<name>.json``.
FIXTURES = Path(__file__).parent / "fixtures" / "tokens"
#: The key of the signed fixtures (a test key, published on purpose).
FIXTURE_SIGNER = TokenSigner({"fixture-2024": bytes(range(32))})


def b64(document: Any) -> str:
    """``document`` (JSON-encoded unless it is bytes) as unpadded base64url."""
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> Any:
    """The JSON document of a token's payload (the part before any ``.key-id.mac``)."""
    payload = text.partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
