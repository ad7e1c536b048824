"""Lambda entry point for the batch jobs' API: /v1/files, /v1/uploads and /v1/batches (OpenAI's shapes)."""

from __future__ import annotations

from mangum import Mangum

from embedrank.api.app import create_app
from embedrank.api.endpoints import ENDPOINTS
from embedrank.observability import lambda_entry

app = create_app([name for name, e in ENDPOINTS.items() if e.tag == "jobs"])
handler = lambda_entry(Mangum(app, lifespan="off"))
