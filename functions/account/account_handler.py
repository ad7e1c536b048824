"""Lambda entry point for GET /v1/models, /v1/models/{id}, /v1/usage (and /api/v1/...): the caller's account."""

from __future__ import annotations

from mangum import Mangum

from embedrank.api.app import create_app
from embedrank.observability import lambda_entry

app = create_app(["models", "model", "usage"])
handler = lambda_entry(Mangum(app, lifespan="off"))
