"""Lambda entry point for GET /v1/models and GET /v1/usage (and their /api/v1 aliases): the caller's own account."""

from __future__ import annotations

from mangum import Mangum

from embedrank.api.app import create_app
from embedrank.observability import lambda_entry

app = create_app(["models", "usage"])
handler = lambda_entry(Mangum(app, lifespan="off"))
