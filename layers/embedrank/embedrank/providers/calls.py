"""What the gateway asks of a provider and what comes back: one call's inputs, its result, and the most bytes its
answer can legitimately hold.

A call's answer is read as a stream and refused past ``answer_limit`` (``http.py``): a provider, or anything posing as
one, must not be able to grow a 1 GiB answer in a function that has 1 GiB. The limit comes from what the call asked
for, with room to spare, and never exceeds ``MAX_ANSWER_BYTES``; the batcher keeps each call small enough that its
limit fits under that ceiling (``inputs_within_answer_limit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..domain.catalog import Deployment
    from ..domain.records import Credentials
    from ..domain.vectors import Encoding, Vectors

MAX_ANSWER_BYTES = 64 * 1024 * 1024
# A float as JSON text: 24 characters at most in the shortest form that reads back exactly ("-1.2345678901234567e-05"),
# a comma, and a space some servers add after it. Base64 (5.33 bytes per float32) is always smaller.
FLOAT_TEXT_BYTES = 26
ITEM_BYTES = 256  # one vector's or result's own keys: {"object": "embedding", "index": 2047, "embedding": ...}
ENVELOPE_BYTES = 64 * 1024  # the model, usage, ids, and whatever else a provider adds around the data
MARGIN = 1.25  # over that estimate: an answer refused here is one no real provider sends


def _limit(payload: int) -> int:
    return min(MAX_ANSWER_BYTES, int(payload * MARGIN) + ENVELOPE_BYTES)


def embedding_answer_limit(count: int, width: int) -> int:
    """The most bytes an answer of ``count`` vectors of ``width`` floats may hold, in any encoding."""
    return _limit(count * (width * FLOAT_TEXT_BYTES + ITEM_BYTES))


def inputs_within_answer_limit(width: int) -> int:
    """How many vectors of ``width`` one call may ask for, so that its answer limit stays below the ceiling."""
    per_input = (width * FLOAT_TEXT_BYTES + ITEM_BYTES) * MARGIN
    return max(1, int((MAX_ANSWER_BYTES - ENVELOPE_BYTES) // per_input))


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

    @property
    def answer_limit(self) -> int:
        return embedding_answer_limit(self.count, self.dimensions or self.deployment.dimensions)


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

    @property
    def answer_limit(self) -> int:
        # Adapters never ask for the documents back, but a server that echoes them anyway is not at fault: their
        # text counts, twice for JSON escaping.
        echoed = sum(len(d) for d in self.documents) * 2 * 4  # UTF-8: up to 4 bytes per character
        return _limit(len(self.documents) * ITEM_BYTES + echoed)


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
