"""The domain: the catalog, embeddings and rerank, vectors, keys and plans, limits, usage and reliability. Nothing
here knows HTTP or a DynamoDB item."""
