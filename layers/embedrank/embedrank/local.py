"""``make serve``: the whole gateway on one machine, with an embedded local AWS and nothing to set up.

Starts devaws (``embedrank.devaws``: in-memory DynamoDB and Secrets Manager) on 127.0.0.1:4566, or on
``LOCAL_AWS_PORT``, unless ``AWS_ENDPOINT_URL`` already names a local AWS (LocalStack, DynamoDB Local, moto server
or a devaws started by hand with ``python -m embedrank.devaws`` work the same); creates the tables and the provider
secret from the conventional environment variables, seeds the plans and a dev key on plan ``ultra``, and serves
every endpoint with uvicorn on ``HOST``:``PORT``.

devaws runs as a child process (see ``start_devaws`` for why not a thread) and stops with this process, however it
ends.

The local AWS is reached through per-service endpoint settings (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_SECRETS_MANAGER``), never a global override, so Bedrock calls still go to AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCAL_AWS_HOST = "127.0.0.1"
LOCAL_AWS_PORT = 4566
LOCAL_SERVICES = ("DYNAMODB", "SECRETS_MANAGER")


def start_devaws(host: str, port: int) -> tuple[str, Callable[[], None]]:
    """Start ``python -m embedrank.devaws`` as a child process; return its endpoint and how to stop it.

    A child rather than a thread: with its own GIL (and core), devaws answers while the gateway works. Measured with
    the bench's `make serve` scenarios on two cores, 7 paired runs each: ~18% more throughput at concurrency 16
    (medians; ahead in all 14 pairs), the same added latency at concurrency 1; and the usage table growing in its
    heap never adds garbage-collection pauses to the gateway's. The child exits when its stdin, a pipe from here,
    closes, so it never outlives this process, however this one ends.
    """
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "embedrank.devaws", "--host", host, "--port", str(port), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    endpoint = child.stdout.readline().decode().strip()  # printed once it listens
    if not endpoint:
        child.wait()
        raise RuntimeError(f"devaws did not start on {host}:{port} (exit code {child.returncode})")
    stdin = child.stdin

    def stop() -> None:
        stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    return endpoint, stop


@contextmanager
def local_aws(env: dict[str, str] | None = None) -> Iterator[str]:
    """Point DynamoDB and Secrets Manager at a local AWS, starting devaws when none is given."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    assert env is not None
    endpoint = env.pop("AWS_ENDPOINT_URL", "")
    stop = None
    if not endpoint:
        port = int(env.get("LOCAL_AWS_PORT", LOCAL_AWS_PORT))
        endpoint, stop = start_devaws(LOCAL_AWS_HOST, port)
    for service in LOCAL_SERVICES:
        env.setdefault(f"AWS_ENDPOINT_URL_{service}", endpoint)
    # The embedded AWS accepts any credentials; real ones are only needed for Bedrock.
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if stop is not None:
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    try:
        yield endpoint
    finally:
        if stop is not None:
            stop()


def provision(env: dict[str, str] | None = None) -> str:
    """Create tables, secret, plans and the dev key; return the dev key."""
    import boto3

    from .config import Settings
    from .provision import create_key, create_tables, provider_secret_from_env, put_provider_secret, seed_plans

    env = dict(os.environ) if env is None else env
    config = Settings.from_env(env)
    db = boto3.client("dynamodb")
    create_tables(db, config)
    seed_plans(db, config)
    put_provider_secret(boto3.client("secretsmanager"), config.provider_secret, provider_secret_from_env(env))
    key = env.get("EMBEDRANK_DEV_API_KEY") or None
    if key:
        from .auth import hash_key
        from .stores import Stores

        if Stores(config, db).get_key(hash_key(key)) is not None:
            return key
    _, key = create_key(db, config, plan="ultra", name="dev", key=key)
    return key


def main() -> None:
    import uvicorn

    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    with local_aws() as endpoint:
        key = provision()
        from .app import create_app
        from .provision import provider_secret_from_env

        configured = ", ".join(provider_secret_from_env()) or "none (export OPENAI_API_KEY, COHERE_API_KEY, ...)"
        print(f"Embedrank local: http://{host}:{port}  (local AWS at {endpoint})", file=sys.stderr)
        print(f"Providers configured: {configured}", file=sys.stderr)
        print(f"Dev API key (plan ultra): {key}", file=sys.stderr, flush=True)
        uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
