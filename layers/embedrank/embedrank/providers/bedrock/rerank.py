"""AWS Bedrock rerank: boto3 ``bedrock-agent-runtime`` ``rerank`` (a different service from the embeddings' runtime).

Catalog ids stay ``bedrock/<model id>``; the registry's ``RERANK`` table points "bedrock" here. Auth is the function's
IAM role (``bedrock:Rerank`` plus ``bedrock:InvokeModel`` on the
model), so no secret is needed. Bedrock offers rerank in a few regions only: ``rerank_region`` in the provider
secret's ``bedrock`` entry sends rerank calls to another region than the function's.

Endpoints come the standard way (``client.py``). Calls run in a thread (boto3 is blocking) and follow ``nextToken``
until every page is read. Bedrock reports no usage; AWS bills "per query", a query being up to 100 documents, so the
search units are counted by that rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import aws
from ...config import settings
from ..base import Adapter as BaseAdapter
from ..calls import RerankCall, RerankResult, search_units
from .client import PROVIDER, in_thread

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agent_runtime import AgentsforBedrockRuntimeClient
    from mypy_boto3_bedrock_agent_runtime.type_defs import RerankRequestTypeDef

    from ..http import Http

MAX_PAGES = 50  # a guard against a service that keeps handing out tokens; 1000 results never need more


class Adapter(BaseAdapter):
    provider = PROVIDER
    needs_credentials = False

    def __init__(self, http: Http, agent: AgentsforBedrockRuntimeClient | None = None) -> None:
        super().__init__(http)
        self.agent = agent  # injectable (tests: a Stubber-wrapped client); it then serves every region

    async def _rerank(self, call: RerankCall) -> RerankResult:
        region = call.credentials.extra.get("rerank_region") if call.credentials else None
        # botocore failures (building the client included) become error classes, as for Bedrock embeddings;
        # anything else is a malformed answer, which the base class reports.
        return await in_thread(lambda: self._rerank_blocking(call, region), call.timeout)

    def _rerank_blocking(self, call: RerankCall, region: str | None) -> RerankResult:
        agent = self._agent(region)
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

    def _agent(self, region: str | None) -> AgentsforBedrockRuntimeClient:
        return self.agent or aws.bedrock_agent_runtime(region, settings().upstream_timeout)
