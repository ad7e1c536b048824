"""Provider registry: provider id -> adapter module, imported on first use (module import time is cold start).

Adding a provider means adding its module here and its models to ``catalog.json``; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ProviderNotConfigured

if TYPE_CHECKING:
    import httpx

    from ..catalog import Kind
    from .base import Adapter

# Ordered: the order in which providers are documented and listed.
MODULES: dict[str, str] = {
    "openai": "openai",
    "cohere": "cohere",
    "voyage": "voyage",
    "jina": "jina",
    "google": "google",
    "mistral": "mistral",
    "bedrock": "bedrock",
    "selfhosted": "selfhosted",
    "infinity": "infinity",
    "tei": "tei",
}
# A provider whose rerank API is a different service gets its own module for that kind: Bedrock embeds through
# bedrock-runtime and reranks through bedrock-agent-runtime. Deployments still report the provider as "bedrock".
KIND_MODULES: dict[tuple[str, str], str] = {("bedrock", "rerank"): "bedrock_rerank"}


class Registry:
    """Adapters by provider id, built lazily and shared; ``transport`` replaces the network (tests, benchmarks)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        from ..observability import traced_transport

        self._transport = traced_transport(transport) if transport is not None else None
        self._adapters: dict[str, Adapter] = {}

    def get(self, provider: str, kind: Kind = "embedding") -> Adapter:
        module_name = KIND_MODULES.get((provider, kind)) or MODULES.get(provider)
        if module_name is None:
            raise ProviderNotConfigured(f"No adapter is installed for provider {provider}.")
        adapter = self._adapters.get(module_name)
        if adapter is None:
            module = importlib.import_module(f"{__name__}.{module_name}")
            adapter = self._adapters[module_name] = module.Adapter(self._transport)
        return adapter
