"""The adapter protocol every provider module implements, and the base class that owns the transport.

A provider module holds that provider's whole wire mapping and exposes one class named ``Adapter``. The base class
owns the pooled httpx client, credentials, the mapping of transport and HTTP failures onto ``errors``, and the
wrapping of malformed answers, so a concrete adapter implements only ``_embed`` (and/or ``_rerank``): build the
provider's body, call ``self.post``, read the answer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import orjson

from ..errors import (
    EmbedrankError,
    InvalidRequest,
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..vectors import Encoding, Vectors, split_float_arrays

if TYPE_CHECKING:
    import httpx

    from ..catalog import Deployment

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A provider's secret and optional base URL (the prefix the provider's own SDK uses)."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class EmbedCall:
    deployment: Deployment
    texts: list[str] | None  # prompt prefixes already applied; None when tokens are sent
    tokens: list[list[int]] | None
    input_type: Literal["query", "document"] | None
    dimensions: int | None  # the native dimensions parameter to send; None keeps the model's default
    encoding: Encoding  # what the caller wants; adapters ask for base64 whenever the provider offers it
    credentials: Credentials | None
    timeout: float = 30.0

    @property
    def count(self) -> int:
        return len(self.texts) if self.texts is not None else len(self.tokens or ())


@dataclass(slots=True)
class EmbedResult:
    vectors: Vectors
    tokens: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class RerankCall:
    deployment: Deployment
    query: str
    documents: list[str]
    top_n: int
    max_tokens_per_doc: int | None
    credentials: Credentials | None
    timeout: float = 30.0


@dataclass(slots=True)
class RerankResult:
    results: list[tuple[int, float]]  # (index into the request's documents, relevance score)
    tokens: int = 0
    search_units: int = 0


# One search unit is one query with up to this many documents (Cohere's and Bedrock's billing unit).
DOCUMENTS_PER_SEARCH_UNIT = 100


def search_units(documents: int) -> int:
    """Search units for one query over ``documents``, for providers that bill by them without saying how many."""
    return -(-documents // DOCUMENTS_PER_SEARCH_UNIT)


def estimate_tokens(texts: Sequence[str]) -> int:
    """The documented estimate for providers that report no token count: ceil(UTF-8 bytes / 4) per text.

    About four bytes per token is the usual figure for English under BPE/SentencePiece tokenizers; it is
    reproducible by a caller from their own input, and it is only ever reported with ``estimated: true``.
    """
    return sum(-(-len(text.encode("utf-8")) // 4) for text in texts)


class Adapter:
    """Base for provider adapters: transport, credentials and error mapping live here, once."""

    provider: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    needs_credentials: ClassVar[bool] = True
    # Takes ``input`` as token id arrays (the ids of the provider's own tokenizer, as OpenAI's SDK sends them).
    accepts_tokens: ClassVar[bool] = False
    # Rerank: caps each document at ``max_tokens_per_doc`` tokens; the others only truncate at the model's window.
    accepts_max_tokens_per_doc: ClassVar[bool] = False

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport

    # -- the one method (or two) a concrete provider implements -------------------------------------------------
    async def _embed(self, call: EmbedCall) -> EmbedResult:
        raise InvalidRequest(f"Provider {self.provider} does not serve embeddings.", param="model")

    async def _rerank(self, call: RerankCall) -> RerankResult:
        raise InvalidRequest(f"Provider {self.provider} does not serve rerank.", param="model")

    # -- public entry points --------------------------------------------------------------------------------------
    async def embed(self, call: EmbedCall) -> EmbedResult:
        self._check_credentials(call.credentials)
        return await self._guard(self._embed(call))

    async def rerank(self, call: RerankCall) -> RerankResult:
        self._check_credentials(call.credentials)
        return await self._guard(self._rerank(call))

    # -- helpers for concrete adapters ----------------------------------------------------------------------------

    async def post_embeddings(self, url: str, body: Any, call: EmbedCall) -> EmbedResult:
        """POST an embeddings request and read an OpenAI-shaped answer, ``{data: [{index, embedding}], usage}``
        (OpenAI, Voyage, Jina, Mistral, self-hosted servers).

        Float arrays are cut out of the answer as the provider's own text (``vectors.split_float_arrays``) and base64
        strings are kept as they are: whichever form arrived passes through without a Python float per element.
        """
        payload, spans = await self.post(
            url, body, self.bearer(call.credentials), call.timeout, decode=split_float_arrays
        )
        arrays = iter(spans)  # in document order, like ``data``; a 0 marks where each array was cut out
        rows = sorted(
            (
                (int(item["index"]), next(arrays) if item["embedding"] == 0 else item["embedding"])
                for item in payload["data"]
            ),
            key=lambda row: row[0],
        )
        items = [value for _, value in rows]
        if all(isinstance(v, bytes) for v in items):
            vectors = Vectors("json", items)
        elif all(isinstance(v, str) for v in items):
            vectors = Vectors("base64", items)
        else:
            raise ValueError("embeddings are neither all float arrays nor all base64 strings")
        usage = payload.get("usage") or {}
        return EmbedResult(vectors, int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0))

    @staticmethod
    def scored(rows: Any, score: str = "relevance_score") -> list[tuple[int, float]]:
        """``[(index, score)]`` from a provider's result rows."""
        return [(int(row["index"]), float(row[score])) for row in rows]

    @staticmethod
    def total_tokens(payload: Any) -> int:
        usage = payload.get("usage") or {}
        return int(usage.get("total_tokens") or 0)

    def base_url(self, credentials: Credentials | None) -> str:
        url = (credentials.base_url if credentials else None) or self.default_base_url
        if not url:
            raise ProviderNotConfigured(f"Provider {self.provider} has no base URL configured.")
        return url.rstrip("/")

    @staticmethod
    def bearer(credentials: Credentials | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.api_key}"} if credentials and credentials.api_key else {}

    async def post(
        self,
        url: str,
        body: Any,
        headers: Mapping[str, str],
        timeout: float,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """POST JSON and return the decoded answer; every failure leaves here as an ``UpstreamError``.

        The request goes straight to the transport: the client layer's redirect, auth and cookie-jar handling (a
        cookie jar parses every answer's headers through ``http.cookiejar``) cost more than the HTTP exchange itself
        and do nothing for a provider API. Default headers the client would have added are set here.
        """
        import httpx

        transport = self._transport or _shared_transport()
        request = httpx.Request(
            "POST",
            _url(url),
            content=orjson.dumps(body),
            headers={**_HEADERS, **headers},
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        )
        try:
            response = await transport.handle_async_request(request)
            await response.aread()  # decodes a gzip/deflate answer
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                f"{self.provider} did not answer within {timeout:.1f} s.", provider=self.provider
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"Could not reach {self.provider}: {type(exc).__name__}.", provider=self.provider
            ) from None
        if response.status_code >= 400:
            raise self._http_error(response.status_code, response.content, response.headers)
        try:
            return decode(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.provider} returned a response that is not JSON (HTTP {response.status_code}).",
                provider=self.provider,
                upstream_status=response.status_code,
            ) from None

    def error_message(self, payload: Any) -> str | None:
        """The provider's own message in an error body; the common shapes are covered here."""
        if isinstance(payload, dict):
            for candidate in (payload.get("error"), payload):
                if isinstance(candidate, dict):
                    for key in ("message", "detail"):
                        if isinstance(candidate.get(key), str):
                            return str(candidate[key])
                elif isinstance(candidate, str):
                    return candidate
            detail = payload.get("detail")
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                return str(detail[0].get("msg", detail[0]))
        return None

    def _http_error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        try:
            message = self.error_message(orjson.loads(content))
        except orjson.JSONDecodeError:
            message = None
        message = (message or content[:200].decode("utf-8", "replace") or "no message")[:500]
        text = f"{self.provider} returned HTTP {status}: {message}"
        kwargs: dict[str, Any] = {"provider": self.provider, "upstream_status": status}
        if status == 429:
            return UpstreamRateLimited(text, retry_after=_retry_after(headers), **kwargs)
        if status >= 500 or status == 408:
            return UpstreamUnavailable(text, retry_after=_retry_after(headers), **kwargs)
        if status in (401, 403):
            # The gateway's credentials were refused: an operator problem, not the caller's.
            return UpstreamError(
                f"{self.provider} rejected the gateway's credentials (HTTP {status}).",
                code="provider_auth_failed",
                **kwargs,
            )
        return UpstreamError(text, code="provider_rejected_request", **kwargs)

    def _check_credentials(self, credentials: Credentials | None) -> None:
        if self.needs_credentials and (credentials is None or not credentials.api_key):
            raise ProviderNotConfigured(
                f"Provider {self.provider} is not configured: add its credentials to the provider secret."
            )

    async def _guard(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except EmbedrankError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamError(
                f"{self.provider} returned a malformed response ({type(exc).__name__}: {exc}).",
                provider=self.provider,
                code="provider_malformed_response",
            ) from None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "embedrank",
}
_POOL: dict[str, tuple[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport]] = {}  # "shared": (its loop, it)


# Bounded: URLs built from input (a region, a model name) must not grow this without bound.
@functools.lru_cache(maxsize=256)
def _url(url: str) -> httpx.URL:
    """The parsed URL, kept: a gateway calls the same few endpoints, and parsing one costs ~40 µs."""
    import httpx

    return httpx.URL(url)


def _shared_transport() -> httpx.AsyncBaseTransport:
    """One pooled transport per container, reused across invocations so connections stay warm.

    Pooled connections belong to the event loop that opened them; Mangum and uvicorn keep one loop for the life of
    the process, but a host that starts a new loop (a test client, a second worker thread) gets its own pool.
    """
    loop = asyncio.get_running_loop()
    held = _POOL.get("shared")
    if held is None or held[0] is not loop:
        from ..observability import traced_transport
        from .transport import LeanTransport

        held = _POOL["shared"] = (loop, traced_transport(LeanTransport()))
    return held[1]
