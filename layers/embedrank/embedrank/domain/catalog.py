"""The model catalog: which ids exist, who serves them, what they cost and what they accept.

The data lives in ``catalog.json`` beside this module (data, not ``if``s); it is parsed and validated once per
container, on first use. A *deployment* is one provider serving one model (``cohere/embed-english-v3.0``); a
*route* is an alias (``route/cohere-embed-v3-english-3``) for an ordered chain of deployments that serve the
**same weights**, so falling back along it never mixes vector spaces.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ..errors import InvalidRequest, ModelNotFound

Kind = Literal["embedding", "rerank"]


class Deployment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    provider: str
    native: str
    kind: Kind
    weights: str
    # Embedding fields.
    price_per_mtok: float = 0.0
    max_inputs: int = 1
    max_tokens_per_input: int | None = None
    max_tokens_per_call: int | None = None
    dimensions: int = 0
    dimension_mode: Literal["native", "truncate", "fixed"] = "fixed"
    dimension_options: tuple[int, ...] | None = None
    asymmetry: Literal["none", "field", "prompt"] = "none"
    prompts: dict[str, str] = Field(default_factory=dict)
    # Rerank fields.
    billing: Literal["tokens", "search_units"] = "tokens"
    price_per_1k_searches: float = 0.0
    max_documents: int = 1000
    max_tokens_per_doc: int | None = None

    @model_validator(mode="after")
    def _check(self) -> Deployment:
        if self.kind == "embedding":
            if self.dimensions <= 0 or self.max_inputs <= 0:
                raise ValueError(f"{self.id}: embedding deployments need dimensions and max_inputs > 0")
            if self.asymmetry == "prompt" and set(self.prompts) != {"query", "document"}:
                raise ValueError(f"{self.id}: prompt asymmetry needs 'query' and 'document' prompts")
        return self

    def resolve_dimensions(self, requested: int | None) -> tuple[int, bool]:
        """The output width for ``requested`` and whether the provider gets it natively (else: truncate here)."""
        if requested is None or requested == self.dimensions:
            return self.dimensions, False
        allowed = self.dimension_options
        # An explicit option list is the provider's own (Voyage offers 2048 above its 1024 default); without one, any
        # width up to the default is accepted. Truncation can only shorten a vector.
        fits = requested in allowed if allowed is not None else requested <= self.dimensions
        if fits and (
            self.dimension_mode == "native" or (self.dimension_mode == "truncate" and requested < self.dimensions)
        ):
            return requested, self.dimension_mode == "native"
        if self.dimension_mode == "fixed":
            hint = f"only {self.dimensions}"
        elif allowed is None:
            hint = f"1 to {self.dimensions}"
        else:
            hint = ", ".join(str(d) for d in allowed)
        raise InvalidRequest(
            f"Model {self.id} does not support dimensions={requested}; supported: {hint}.",
            param="dimensions",
            code="unsupported_dimensions",
        )

    def embedding_cost(self, tokens: int) -> float:
        return tokens * self.price_per_mtok / 1_000_000

    def rerank_cost(self, *, tokens: int, search_units: int) -> float:
        if self.billing == "search_units":
            return search_units * self.price_per_1k_searches / 1000
        return tokens * self.price_per_mtok / 1_000_000


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployments: dict[str, Deployment]
    routes: dict[str, tuple[str, ...]]
    # Bare names: a provider's own model name ("text-embedding-3-small"), for code written against that provider's
    # API; only names that one deployment alone carries, so a bare name never picks a provider by guess.
    _bare: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fill_ids(cls, data: dict[str, object]) -> dict[str, object]:
        deployments = data.get("deployments")
        if isinstance(deployments, dict):
            for key, value in deployments.items():
                if isinstance(value, dict):
                    provider, _, native = key.partition("/")
                    value.setdefault("id", key)
                    value.setdefault("provider", provider)
                    value.setdefault("native", native)
        return data

    @model_validator(mode="after")
    def _check_routes(self) -> Catalog:
        for alias, chain in self.routes.items():
            if not alias.startswith("route/") or not chain:
                raise ValueError(f"route {alias!r}: aliases start with 'route/' and name at least one deployment")
            missing = [d for d in chain if d not in self.deployments]
            if missing:
                raise ValueError(f"route {alias!r} names unknown deployments {missing}")
            weights = {self.deployments[d].weights for d in chain}
            kinds = {self.deployments[d].kind for d in chain}
            if len(weights) != 1 or len(kinds) != 1:
                raise ValueError(
                    f"route {alias!r} mixes different models {sorted(weights)}: a chain may only hold deployments of "
                    "the same weights, or a fallback would return vectors from another space"
                )
        natives: dict[str, list[str]] = {}
        for deployment in self.deployments.values():
            natives.setdefault(deployment.native, []).append(deployment.id)
        ids = {*self.deployments, *self.routes}
        self._bare = {name: found[0] for name, found in natives.items() if len(found) == 1 and name not in ids}
        return self

    def canonical(self, model: str) -> str:
        """The catalog id (a deployment or a route) that ``model`` names: itself, or the deployment of a bare name."""
        if model in self.deployments or model in self.routes:
            return model
        found = self._bare.get(model)
        if found is None:
            raise ModelNotFound(
                f"The model '{model[:128]}' does not exist. GET /v1/models lists the available models.", param="model"
            )
        return found

    @property
    def bare_names(self) -> dict[str, str]:
        """Bare name -> the deployment it names."""
        return dict(self._bare)

    def resolve(self, model: str, kind: Kind) -> tuple[Deployment, ...]:
        """The chain of deployments that may serve ``model`` (an id, a route or a bare name), in the order to try."""
        model = self.canonical(model)
        chain = self.routes.get(model)
        found = tuple(self.deployments[d] for d in chain) if chain is not None else (self.deployments[model],)
        if found[0].kind != kind:
            raise InvalidRequest(
                f"The model '{model}' is a {found[0].kind} model; it cannot serve {kind} requests.",
                param="model",
                code="wrong_model_kind",
            )
        return found

    def model_ids(self) -> list[str]:
        return [*self.deployments, *self.routes]


CATALOG_PATH = Path(__file__).with_name("catalog.json")


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    raw = orjson.loads(path.read_bytes())
    raw.pop("_comment", None)
    return Catalog.model_validate(raw)


@functools.cache
def catalog() -> Catalog:
    return load_catalog()
