"""Environment configuration as one pydantic model, read once per container."""

from __future__ import annotations

import functools
import os

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    keys_table: str = Field("embedrank-keys", description="KEYS_TABLE")
    plans_table: str = Field("embedrank-plans", description="PLANS_TABLE")
    usage_table: str = Field("embedrank-usage", description="USAGE_TABLE")
    provider_secret: str = Field("embedrank/providers", description="PROVIDER_SECRET_NAME (name or ARN)")
    secret_max_age: int = Field(300, ge=0, description="SECRET_CACHE_SECONDS: provider secret cache TTL")
    auth_cache_ttl: int = Field(30, ge=0, le=60, description="AUTH_CACHE_SECONDS: key and plan cache TTL")
    usage_retention_days: int = Field(90, gt=0, description="USAGE_RETENTION_DAYS: per-request records' TTL")
    upstream_timeout: float = Field(25.0, gt=0, description="UPSTREAM_TIMEOUT_SECONDS: per provider call")
    max_concurrency: int = Field(16, gt=0, description="UPSTREAM_CONCURRENCY: provider calls in flight per request")
    request_deadline: float = Field(25.0, gt=0, description="REQUEST_DEADLINE_SECONDS: outside Lambda")
    retry_attempts: int = Field(3, ge=1, description="RETRY_ATTEMPTS: per provider call, including the first")
    breaker_threshold: int = Field(5, ge=1, description="BREAKER_THRESHOLD: consecutive failures that open a circuit")
    breaker_cooldown: float = Field(60.0, gt=0, description="BREAKER_COOLDOWN_SECONDS: before a probe is let through")
    gzip_min_bytes: int = Field(1_048_576, ge=0, description="GZIP_MIN_BYTES: smallest answer gzipped when accepted")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        names = {
            "keys_table": "KEYS_TABLE",
            "plans_table": "PLANS_TABLE",
            "usage_table": "USAGE_TABLE",
            "provider_secret": "PROVIDER_SECRET_NAME",
            "secret_max_age": "SECRET_CACHE_SECONDS",
            "auth_cache_ttl": "AUTH_CACHE_SECONDS",
            "usage_retention_days": "USAGE_RETENTION_DAYS",
            "upstream_timeout": "UPSTREAM_TIMEOUT_SECONDS",
            "max_concurrency": "UPSTREAM_CONCURRENCY",
            "request_deadline": "REQUEST_DEADLINE_SECONDS",
            "retry_attempts": "RETRY_ATTEMPTS",
            "breaker_threshold": "BREAKER_THRESHOLD",
            "breaker_cooldown": "BREAKER_COOLDOWN_SECONDS",
            "gzip_min_bytes": "GZIP_MIN_BYTES",
        }
        return cls.model_validate({field: env[var] for field, var in names.items() if env.get(var)})


@functools.cache
def settings() -> Settings:
    return Settings.from_env()
