"""Lambda entry point for POST /v1/embeddings and /api/v1/embeddings."""

from __future__ import annotations

from mangum import Mangum

from embedrank.api.app import create_app
from embedrank.observability import lambda_entry

app = create_app(["embeddings"])
handler = lambda_entry(Mangum(app, lifespan="off"))
