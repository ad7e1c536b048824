"""Provider registry: provider id -> adapter module, imported on first use (module import time is cold start).

Adding a provider means adding its module here and its models to ``catalog.json``; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ProviderNotConfigured

if TYPE_CHECKING:
    import httpx

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
    # Bedrock reranks through bedrock-agent-runtime; reranking.adapter_key picks this module for bedrock rerank models.
    "bedrock_rerank": "bedrock_rerank",
}


class Registry:
    """Adapters by provider id, built lazily and shared; ``client`` injects a transport (tests, benchmarks)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._adapters: dict[str, Adapter] = {}

    def get(self, provider: str) -> Adapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            module_name = MODULES.get(provider)
            if module_name is None:
                raise ProviderNotConfigured(f"No adapter is installed for provider {provider}.")
            module = importlib.import_module(f"{__name__}.{module_name}")
            adapter = self._adapters[provider] = module.Adapter(self._client)
        return adapter
