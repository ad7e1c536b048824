"""The local AWS of ``make serve``: moto's server (DynamoDB and Secrets Manager) in a child process.

``python -m embedrank_tools.localaws --port N`` applies ``motopatch`` and serves moto on 127.0.0.1:N; it prints its
endpoint once it listens and exits when its stdin closes, so it never outlives the process that started it, however
that one ends. A child rather than a thread: with its own GIL (and core), moto answers while the gateway works.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path


def start(host: str, port: int) -> tuple[str, Callable[[], None]]:
    """Start the local AWS as a child process; return its endpoint and how to stop it. Raises ``OSError`` when the
    port cannot be had."""
    tools = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (tools, os.environ.get("PYTHONPATH"))))}
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "embedrank_tools.localaws", "--host", host, "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    endpoint = child.stdout.readline().decode().strip()  # printed once it listens
    if not endpoint:
        child.wait()
        raise OSError(f"the local AWS could not listen on {host}:{port}")
    stdin = child.stdin

    def stop() -> None:
        stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    return endpoint, stop


def serve(host: str, port: int) -> None:
    """Serve moto until stdin closes. moto's own ``ThreadedMotoServer`` is not used: when its port is taken it waits
    forever for a server that never starts, where ``make_server`` raises at once."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from .motopatch import item_level_transactions

    item_level_transactions()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = make_server(
        host, port, DomainDispatcherApplication(create_backend_app), True, request_handler=MotoRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://{host}:{server.server_port}", flush=True)
    sys.stdin.read()  # until the parent closes it, or exits
    server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m embedrank_tools.localaws")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
