"""``make serve``: the whole gateway on one machine, with a local AWS and nothing to set up.

Starts moto's server (``localaws``) on 127.0.0.1:4566, or on ``LOCAL_AWS_PORT``, unless ``AWS_ENDPOINT_URL`` already
names a local AWS (LocalStack, DynamoDB Local, a moto server started by hand work the same); creates the tables and
the provider secret from the conventional environment variables, seeds the plans and a dev key on plan ``ultra``, and
serves every endpoint with uvicorn on ``HOST``:``PORT``.

The local AWS is reached through per-service endpoint settings (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_SECRETS_MANAGER``), never a global override, so Bedrock calls still go to AWS, or to the endpoint
configured for Bedrock itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager

import orjson
from pydantic import BaseModel, ConfigDict, Field

LOCAL_AWS_HOST = "127.0.0.1"
LOCAL_SERVICES = ("DYNAMODB", "SECRETS_MANAGER", "S3", "SQS")


class LocalSettings(BaseModel):
    """The variables only ``make serve`` reads (the runtime's own are ``embedrank.config.Settings``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT")
    local_aws_port: int = Field(4566, alias="LOCAL_AWS_PORT")
    aws_endpoint_url: str = Field("", alias="AWS_ENDPOINT_URL", description="an already running local AWS")
    dev_key: str = Field("", alias="EMBEDRANK_DEV_API_KEY", description="the dev key to create (default: a new one)")
    job_workers: int = Field(2, ge=1, le=32, alias="JOB_WORKERS", description="batch job worker threads")

    @classmethod
    def from_env(cls, env: MutableMapping[str, str]) -> LocalSettings:
        return cls.model_validate({name: value for name, value in env.items() if value})


class PortInUse(Exception):
    """A port ``make serve`` needs is taken: the message names the variable that moves it."""


@contextmanager
def local_aws(env: MutableMapping[str, str], config: LocalSettings) -> Iterator[str]:
    """Point DynamoDB and Secrets Manager at a local AWS, starting one when ``AWS_ENDPOINT_URL`` names none."""
    from . import localaws

    endpoint = env.pop("AWS_ENDPOINT_URL", "")  # per service below, so that it never applies to Bedrock
    stop: Callable[[], None] | None = None
    if not endpoint:
        try:
            endpoint, stop = localaws.start(LOCAL_AWS_HOST, config.local_aws_port)
        except OSError:
            raise PortInUse(
                f"The local AWS cannot listen on {LOCAL_AWS_HOST}:{config.local_aws_port}: the port is in use. "
                "Set LOCAL_AWS_PORT to a free port (or AWS_ENDPOINT_URL to a local AWS already running)."
            ) from None
        # The local AWS accepts any credentials; real ones are only needed for Bedrock.
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    for service in LOCAL_SERVICES:
        env.setdefault(f"AWS_ENDPOINT_URL_{service}", endpoint)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield endpoint
    finally:
        if stop is not None:
            stop()


def provision(env: MutableMapping[str, str], dev_key: str | None) -> str:
    """Create tables, secret, plans and the dev key; return the dev key."""
    import boto3

    from embedrank.config import Settings
    from embedrank.domain.auth import hash_key
    from embedrank.store.dynamo import Stores

    from .provision import (
        create_job_stores,
        create_key,
        create_tables,
        provider_secret_from_env,
        put_provider_secret,
        seed_plans,
    )

    config = Settings.from_env(env)
    db = boto3.client("dynamodb")
    create_tables(db, config)
    urls = create_job_stores(boto3.client("s3"), boto3.client("sqs"), config, visibility_seconds=30)
    env["JOBS_QUEUE_URLS"] = orjson.dumps(urls).decode()
    seed_plans(db, config)
    put_provider_secret(boto3.client("secretsmanager"), config.provider_secret, provider_secret_from_env(env))
    if dev_key and Stores(config, db).get_key(hash_key(dev_key)) is not None:
        return dev_key
    _, key = create_key(db, config, plan="ultra", name="dev", key=dev_key or None)
    return key


def listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything else starts, so a taken port fails first and clearly."""
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on connections whose socket says TCP, and without
    # it a small answer's body waited for the client's delayed ACK of its headers (+40 ms per request on Linux).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise PortInUse(
            f"The API cannot listen on {host}:{port}: the port is in use. Set PORT to a free port."
        ) from None
    return sock


def main() -> None:
    import uvicorn

    env = os.environ
    config = LocalSettings.from_env(env)
    try:
        sock = listen(config.host, config.port)
        with local_aws(env, config) as endpoint:
            key = provision(env, config.dev_key)
            from embedrank.api.app import create_app

            from .provision import provider_secret_from_env

            configured = ", ".join(provider_secret_from_env(env)) or "none (export OPENAI_API_KEY, COHERE_API_KEY, ...)"
            print(f"Embedrank local: http://{config.host}:{config.port}  (local AWS at {endpoint})", file=sys.stderr)
            print(f"Providers configured: {configured}", file=sys.stderr)
            print(f"Dev API key (plan ultra): {key}", file=sys.stderr, flush=True)
            app = create_app()
            from .workers import LocalWorkers

            workers = LocalWorkers(app.state.services.jobs, config.job_workers)
            workers.start()
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down; stop the local AWS too
                server.run(sockets=[sock])
            workers.stop()
    except PortInUse as exc:
        print(f"embedrank: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
