"""Data access: DynamoDB (keys, plans, usage) and Secrets Manager (provider credentials), the one place where AWS
errors on the request path become domain errors (``StoreUnavailable``)."""
