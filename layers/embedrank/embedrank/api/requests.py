"""Request schemas: the canonical request bodies, validated with pydantic, and the usage report's query string.

Bodies are parsed straight from bytes with ``model_validate_json``; a validation failure becomes one
``InvalidRequest`` naming the offending field. Response shapes live in ``responses.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from ..errors import InvalidRequest

MAX_INPUTS = 2048
MAX_DOCUMENTS = 1000

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
InputType = Literal["query", "document"]
# The constraints below repeat what the before-validators check (which run first and give the clearer message), so the
# OpenAPI document states the limits; a value that passes the validator always satisfies them.
# A token id is an index into a tokenizer's vocabulary (OpenAI's: ~200k); past 32 bits it cannot even be sent on.
MAX_TOKEN = 2**31 - 1
Token = Annotated[int, Field(ge=0, le=MAX_TOKEN)]
TokenArray = Annotated[list[Token], Field(min_length=1, max_length=MAX_INPUTS)]
Inputs = (
    NonEmptyStr
    | Annotated[list[NonEmptyStr], Field(min_length=1, max_length=MAX_INPUTS)]
    | TokenArray
    | Annotated[list[Annotated[list[Token], Field(min_length=1)]], Field(min_length=1, max_length=MAX_INPUTS)]
)


class _Strict(BaseModel):
    # strict: a JSON value must already have the field's type ("dimensions": true or "256" is a 400, not 1 or 256).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN


class EmbeddingRequest(_Strict):
    # Shown in the OpenAPI document (and sent by its schemathesis test, so they must stay valid requests).
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "openai/text-embedding-3-small", "input": ["hello", "world"]},
                {
                    "model": "cohere/embed-v4.0",
                    "input": "best database for vector search",
                    "input_type": "query",
                    "dimensions": 256,
                    "encoding_format": "base64",
                },
            ]
        }
    )

    model: NonEmptyStr = Field(description="A model id from GET /v1/models, e.g. 'openai/text-embedding-3-small'.")
    input: Inputs = Field(description="A string, 1-2048 non-empty strings, or (OpenAI models only) token arrays.")
    input_type: InputType | None = Field(
        default=None, description="'query' or 'document': mapped to each provider's own asymmetric-embedding setting."
    )
    dimensions: int | None = Field(default=None, gt=0, description="Output width, where the model supports it.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="'base64' returns little-endian float32 bytes, as OpenAI does."
    )
    user: str | None = Field(default=None, description="Accepted for OpenAI compatibility; not sent upstream.")

    @field_validator("input", mode="before")
    @classmethod
    def _check_input(cls, value: Any) -> Any:
        # Checked before the union so the caller gets one clear message instead of one per union branch.
        if isinstance(value, str):
            if not value:
                raise ValueError("input must not be an empty string")
            return value
        if not isinstance(value, list):
            raise ValueError("input must be a string or an array of strings")
        if not value:
            raise ValueError("input must hold at least one item")
        if len(value) > MAX_INPUTS:
            raise ValueError(f"input holds {len(value)} items; the maximum is {MAX_INPUTS}")
        first = value[0]
        if isinstance(first, str):
            for i, item in enumerate(value):
                if not isinstance(item, str) or not item:
                    raise ValueError(f"input[{i}] must be a non-empty string")
        elif isinstance(first, int) and not isinstance(first, bool):
            if not all(_token(t) for t in value):
                raise ValueError(f"a token array must hold only integers from 0 to {MAX_TOKEN}")
        elif isinstance(first, list):
            for i, tokens in enumerate(value):
                if not isinstance(tokens, list) or not tokens or not all(_token(t) for t in tokens):
                    raise ValueError(f"input[{i}] must be a non-empty array of integer tokens from 0 to {MAX_TOKEN}")
        else:
            raise ValueError("input must be a string, an array of strings, or token arrays")
        return value

    @property
    def texts(self) -> list[str] | None:
        """The inputs as strings, or None when the caller sent token arrays."""
        if isinstance(self.input, str):
            return [self.input]
        if isinstance(self.input[0], str):
            return self.input
        return None

    @property
    def token_arrays(self) -> list[list[int]]:
        if self.input and isinstance(self.input[0], int):
            return [self.input]  # type: ignore[list-item]
        return self.input  # type: ignore[return-value]

    @property
    def count(self) -> int:
        if isinstance(self.input, str) or (self.input and isinstance(self.input[0], int)):
            return 1
        return len(self.input)


class RerankDocument(_Strict):
    text: NonEmptyStr


class RerankRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "cohere/rerank-v3.5",
                    "query": "best database for vector search",
                    "documents": ["PostgreSQL supports pgvector", "Redis is a cache", {"text": "SQLite is embedded"}],
                    "top_n": 2,
                    "return_documents": True,
                },
                {"model": "route/cohere-rerank-v4.0-pro", "query": "q", "documents": ["a", "b"]},
            ]
        }
    )

    model: NonEmptyStr = Field(description="A rerank model id, e.g. 'cohere/rerank-v3.5', or a 'route/...' alias.")
    query: NonEmptyStr = Field(description="The search query the documents are scored against.")
    documents: Annotated[list[NonEmptyStr | RerankDocument], Field(min_length=1, max_length=MAX_DOCUMENTS)] = Field(
        description="1-1000 documents, each a non-empty string or an object {'text': '...'}."
    )
    top_n: int | None = Field(
        default=None,
        ge=1,
        description="How many results to return (at least 1); more than the documents returns every document, as "
        "Cohere's API does. Default: all.",
    )
    return_documents: bool = Field(default=False, description="Return each result's text as 'document': {'text'}.")
    max_tokens_per_doc: int | None = Field(
        default=None, gt=0, description="Truncate each document to this many tokens (models that support it)."
    )

    @field_validator("documents", mode="before")
    @classmethod
    def _check_documents(cls, value: Any) -> Any:
        # Checked before the union so the caller gets one clear message instead of one per union branch.
        if not isinstance(value, list):
            raise ValueError("documents must be an array of strings or {'text': ...} objects")
        if not value:
            raise ValueError("documents must hold at least one item")
        if len(value) > MAX_DOCUMENTS:
            raise ValueError(f"documents holds {len(value)} items; the maximum is {MAX_DOCUMENTS}")
        for i, item in enumerate(value):
            text = item.get("text") if isinstance(item, dict) and set(item) == {"text"} else item
            if not isinstance(text, str) or not text:
                raise ValueError(f"documents[{i}] must be a non-empty string or an object {{'text': '...'}}")
        return value

    @property
    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]

    @property
    def limit(self) -> int:
        """How many results the caller gets: ``top_n``, at most every document."""
        return min(self.top_n, len(self.documents)) if self.top_n is not None else len(self.documents)


def parse_body(model: type[_Strict], body: bytes) -> Any:
    """Validate ``body`` against ``model``; any failure is a 400 naming the field."""
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = [str(p) for p in err["loc"]]
        # Union branches add their type name to the location; drop it so the caller sees the field it sent.
        param = ".".join(p for p in loc if not p.startswith(("str", "list[", "int")) and p != "json-or-python") or None
        kind = err["type"]
        if kind == "json_invalid":
            message = "The request body is not valid JSON."
            param = None
        elif kind == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}."
        elif kind == "missing":
            message = f"Missing required parameter: '{param}'."
        elif kind in ("model_type", "model_attributes_type"):
            message = "The request body must be a JSON object."
        else:
            message = f"Invalid value for '{param}': {err['msg']}." if param else f"Invalid request: {err['msg']}."
        raise InvalidRequest(message, param=param) from None


class UsageQuery(BaseModel):
    """``GET /v1/usage``'s query string (read by ``domain.usage.report_range``; described for the OpenAPI document)."""

    start: dt.date = Field(description="First day, UTC, as YYYY-MM-DD.")
    end: dt.date = Field(description="Last day, UTC, inclusive, as YYYY-MM-DD; at most 366 days from start.")


# -- batch jobs (OpenAI's Files, Uploads and Batch APIs) --------------------------------------------------------------


class UploadCreate(_Strict):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)  # the openai SDK may add newer fields

    bytes: int = Field(gt=0, description="The file's size: the parts must add up to it.")
    filename: NonEmptyStr
    mime_type: NonEmptyStr
    purpose: NonEmptyStr = Field(description="'batch'")


class UploadComplete(_Strict):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    part_ids: list[NonEmptyStr] = Field(min_length=1, description="The parts, in the order they make the file.")
    md5: str | None = None


class BatchCreate(_Strict):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    input_file_id: NonEmptyStr
    endpoint: NonEmptyStr = Field(description="'/v1/embeddings' or '/v1/rerank': every line's url.")
    completion_window: NonEmptyStr = Field(description="'24h'")
    metadata: dict[str, str] | None = None


class ListQuery(BaseModel):
    """A list's query string: newest first, ``limit`` items after the id ``after``."""

    after: str | None = Field(default=None, description="The last id of the previous page.")
    limit: int = Field(default=20, ge=1, le=100)
