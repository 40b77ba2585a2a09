"""A worker registry for the demo service's operation (``lrokit worker ... lrokit.temporal.demo``).

It tracks :class:`lrokit.demo.CreateVectorStoreOperation`. The client is built in the
worker from its environment, the way an application's registry reads credentials:

* ``LROKIT_DEMO_ENDPOINT``: the service's base URL (``lrokit serve`` prints it);
* ``LROKIT_DEMO_API_KEY``: sent as ``Authorization: Bearer ...`` with every request, and
  never written into Temporal's history;
* ``LROKIT_DEMO_SIGNING_KEY``: a hex key (64 hex digits or more) that signs tokens; a
  worker with it refuses unsigned and altered tokens.
"""

from __future__ import annotations

import os

from .._signing import TokenSigner
from .._token import TokenPolicy
from ..demo import CreateVectorStoreOperation, VectorStoreClient
from ._registry import Registry

__all__ = ["make_client", "registry", "token_policy"]


def token_policy() -> TokenPolicy:
    """The token policy of the environment: signing with ``LROKIT_DEMO_SIGNING_KEY`` if set."""
    key = os.environ.get("LROKIT_DEMO_SIGNING_KEY")
    if not key:
        return TokenPolicy()
    return TokenPolicy(signer=TokenSigner({"demo": bytes.fromhex(key)}))


def make_client() -> VectorStoreClient:
    """The demo service's client, configured from the environment (see the module doc).

    Raises:
        KeyError: ``LROKIT_DEMO_ENDPOINT`` is not set.
    """
    headers = {}
    api_key = os.environ.get("LROKIT_DEMO_API_KEY")
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return VectorStoreClient(
        os.environ["LROKIT_DEMO_ENDPOINT"], headers=headers, tokens=token_policy()
    )


#: The registry that ``lrokit worker ... lrokit.temporal.demo`` loads.
registry = Registry()
registry.register(CreateVectorStoreOperation, make_client)
