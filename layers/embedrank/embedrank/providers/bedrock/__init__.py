"""AWS Bedrock: embeddings through ``bedrock-runtime`` (``embed.py``) and rerank through ``bedrock-agent-runtime``
(``rerank.py``), with boto3; ``client.py`` holds what both share (the clients, the error mapping)."""
