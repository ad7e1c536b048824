"""AWS Bedrock rerank: boto3 ``bedrock-agent-runtime`` ``rerank`` (a different service from the embeddings' runtime).

Catalog ids stay ``bedrock/<model id>``; the registry finds this module as ``bedrock_rerank`` (see
``providers.KIND_MODULES``). Auth is the function's IAM role (``bedrock:Rerank`` plus ``bedrock:InvokeModel`` on the
model), so no secret is needed. Bedrock offers rerank in a few regions only: ``rerank_region`` in the provider
secret's ``bedrock`` entry sends rerank calls to another region than the function's.

The client ignores ``AWS_ENDPOINT_URL*`` settings: locally those point at the embedded AWS, which has no Bedrock.
Calls run in a thread (boto3 is blocking) and follow ``nextToken`` until every page is read. Bedrock reports no
usage; AWS bills "per query", a query being up to 100 documents, so the search units are counted by that rule.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from .base import Adapter as BaseAdapter
from .base import RerankCall, RerankResult, search_units
from .bedrock import client, upstream_error

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_bedrock_agent_runtime import AgentsforBedrockRuntimeClient
    from mypy_boto3_bedrock_agent_runtime.type_defs import RerankRequestTypeDef

MAX_PAGES = 50  # a guard against a service that keeps handing out tokens; 1000 results never need more


class Adapter(BaseAdapter):
    provider = "bedrock"
    needs_credentials = False

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, agent: AgentsforBedrockRuntimeClient | None = None
    ) -> None:
        super().__init__(transport)
        self.agent = agent  # injectable (tests: a Stubber-wrapped client); it then serves every region
        self._agents: dict[str | None, AgentsforBedrockRuntimeClient] = {}
        self._lock = threading.Lock()

    async def _rerank(self, call: RerankCall) -> RerankResult:
        region = call.credentials.extra.get("rerank_region") if call.credentials else None
        try:
            return await asyncio.to_thread(self._rerank_blocking, call, region)
        except Exception as exc:
            # botocore failures (building the client included) become errors classes, as for Bedrock embeddings;
            # anything else is a malformed answer, which the base class reports.
            mapped = upstream_error(exc, self.provider)
            if mapped is None:
                raise
            raise mapped from None

    def _rerank_blocking(self, call: RerankCall, region: str | None) -> RerankResult:
        agent = self._agent(region, call.timeout)
        meta = agent.meta
        request: RerankRequestTypeDef = {
            "queries": [{"type": "TEXT", "textQuery": {"text": call.query}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}
                for text in call.documents
            ],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": call.top_n,
                    "modelConfiguration": {
                        "modelArn": f"arn:{meta.partition}:bedrock:{meta.region_name}::foundation-model/"
                        f"{call.deployment.native}"
                    },
                },
            },
        }
        results: list[tuple[int, float]] = []
        for _ in range(MAX_PAGES):
            answer = agent.rerank(**request)
            results.extend((int(r["index"]), float(r["relevanceScore"])) for r in answer["results"])
            token = answer.get("nextToken")
            if not token:
                break
            request["nextToken"] = token
        units = search_units(len(call.documents))
        return RerankResult(results, search_units=units)

    def _agent(self, region: str | None, timeout: float) -> AgentsforBedrockRuntimeClient:
        if self.agent is not None:
            return self.agent
        with self._lock:  # calls run in worker threads: build each region's client once
            agent = self._agents.get(region)
            if agent is None:
                agent = self._agents[region] = client("bedrock-agent-runtime", region, timeout)
            return agent
