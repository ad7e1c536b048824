"""The HTTP API: the app factory and request lifecycle, the one error-to-HTTP mapping, request schemas, response
shapes, size limits and the OpenAPI document."""
