"""Embedrank: one API for embeddings and rerank across providers."""

__version__ = "0.1.0"
