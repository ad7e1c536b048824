"""Self-hosted OpenAI-compatible embedding servers (TEI, Infinity, vLLM, ...): POST {base_url}/embeddings.

The wire format is OpenAI's, so this reuses the OpenAI adapter and changes only where the server is and how it is
authenticated. ``base_url`` (the prefix before ``/embeddings``) comes from the secret's ``selfhosted`` entry and is
required; ``api_key`` may be empty, for a server on a private network, and then no Authorization header is sent.
Prompt prefixes for instruction-tuned models (Qwen3-Embedding, E5, ...) are applied by the gateway from the catalog
before the call reaches here, so the server sees exactly what the model card prescribes.
"""

from __future__ import annotations

from .openai import Adapter as OpenAIAdapter


class Adapter(OpenAIAdapter):
    provider = "selfhosted"
    default_base_url = ""  # no public default: an operator must say where their server is
    needs_credentials = False  # the key is optional; base_url() raises ProviderNotConfigured when the URL is missing
    accepts_tokens = False  # OpenAI's wire format, but token ids of OpenAI's tokenizer mean nothing to another model
