"""Provider adapters: the two protocols the domain calls, and the ordered registry that finds an adapter by provider
id, importing its module on first use (module import time is Lambda cold start).

Adding a provider means adding its module (one class named ``Adapter``), a line in ``EMBEDDING`` and/or ``RERANK``,
and its models in ``domain/catalog.json``; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from ..errors import ProviderNotConfigured
from .calls import EmbedCall, EmbedResult, RerankCall, RerankResult

if TYPE_CHECKING:
    import httpx

    from .http import Http


@runtime_checkable
class EmbeddingAdapter(Protocol):
    provider: ClassVar[str]
    accepts_tokens: ClassVar[bool]

    async def embed(self, call: EmbedCall) -> EmbedResult: ...


@runtime_checkable
class RerankAdapter(Protocol):
    provider: ClassVar[str]
    accepts_max_tokens_per_doc: ClassVar[bool]

    async def rerank(self, call: RerankCall) -> RerankResult: ...


# Provider id -> module under this package, in the order providers are documented and listed. A provider whose rerank
# API is another service has its own module for it: Bedrock embeds through bedrock-runtime and reranks through
# bedrock-agent-runtime (its deployments still say "bedrock").
EMBEDDING: dict[str, str] = {
    "openai": "openai",
    "cohere": "cohere",
    "voyage": "voyage",
    "jina": "jina",
    "google": "google",
    "mistral": "mistral",
    "bedrock": "bedrock.embed",
    "selfhosted": "selfhosted",
}
RERANK: dict[str, str] = {
    "cohere": "cohere",
    "voyage": "voyage",
    "jina": "jina",
    "bedrock": "bedrock.rerank",
    "infinity": "infinity",
    "tei": "tei",
}


class Registry:
    """Adapters by provider id, built lazily and shared; ``transport`` replaces the network (tests, benchmarks)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        from .http import Http

        self.http: Http = Http(transport)
        self._modules: dict[str, object] = {}  # module name -> its adapter (Cohere's serves both kinds)
        self._embedding: dict[str, EmbeddingAdapter] = {}
        self._rerank: dict[str, RerankAdapter] = {}

    def embedding(self, provider: str) -> EmbeddingAdapter:
        adapter = self._embedding.get(provider)
        if adapter is None:
            built = self._build(EMBEDDING, provider, "embeddings")
            if not isinstance(built, EmbeddingAdapter):
                raise TypeError(f"{type(built).__qualname__} is not an EmbeddingAdapter")
            adapter = self._embedding[provider] = built
        return adapter

    def rerank(self, provider: str) -> RerankAdapter:
        adapter = self._rerank.get(provider)
        if adapter is None:
            built = self._build(RERANK, provider, "rerank")
            if not isinstance(built, RerankAdapter):
                raise TypeError(f"{type(built).__qualname__} is not a RerankAdapter")
            adapter = self._rerank[provider] = built
        return adapter

    def _build(self, modules: dict[str, str], provider: str, kind: str) -> object:
        name = modules.get(provider)
        if name is None:
            raise ProviderNotConfigured(f"No {kind} adapter is installed for provider {provider}.")
        adapter = self._modules.get(name)
        if adapter is None:
            module = importlib.import_module(f"{__name__}.{name}")
            adapter = self._modules[name] = module.Adapter(self.http)
        return adapter
