"""Cold start: each handler module's import time in a fresh interpreter, from the layer as ``sam build`` builds it
(``layers/embedrank/Makefile``), and the unzipped size of that layer.

The layer is built twice with the same make target: for manylinux2014 aarch64 (what ships; its size) and for this
machine's platform (what can be imported here). The handler is imported with that folder and the function's folder
first on the path and bytecode writing off, as in Lambda, where /opt and /var/task are read-only: what the layer does
not ship compiled is compiled on every cold start. boto3 and Powertools, which the runtime and the AWS-managed layer
provide, come from the dev environment. Without a built layer (``--smoke``), the source tree stands in for it.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .client import ROOT, python_env

LAYER = ROOT / "layers" / "embedrank"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embedrank-bench"
LAMBDA_PLATFORM = "manylinux2014_aarch64"
# Wheels this machine can import, for the same make target; None where no manylinux wheel runs (then: source tree).
HOST_PLATFORM = f"manylinux2014_{platform.machine()}" if sys.platform == "linux" else None

IMPORT_SNIPPET = """
import sys, time
sys.path[:0] = [{folder!r}, {layer!r}]
t0 = time.perf_counter()
import {module}
print(time.perf_counter() - t0)
"""

# What the Lambda runtime and template.yaml set (the handler reads AWS_LAMBDA_FUNCTION_NAME to decide on tracing;
# the runtime also sets LAMBDA_TASK_ROOT, the function's folder, added per handler: without it the X-Ray SDK thinks it
# runs outside Lambda and builds a botocore client for centralized sampling at import, ~100-170 ms here).
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "embedrank-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}


def handler_modules() -> dict[str, Path]:
    """Every ``functions/<name>/<name>_handler.py`` present now."""
    return {p.stem: p for p in sorted((ROOT / "functions").glob("*/*_handler.py"))}


def import_times(
    paths: dict[str, Path], runs: int, layer: Path | None = None, xray_sdk: bool = False
) -> dict[str, dict[str, Any]]:
    """Each handler's import time, ``runs`` times, taking the handlers in turn: the machine's speed drifts (other
    work shares it), and round robin spreads the drift over every handler instead of charging it to one.

    ``layer``: a built layer's ``python`` folder, imported as Lambda would (no bytecode written); None: the source
    tree, with bytecode cached as in development."""
    env = {k: v for k, v in python_env().items() if not k.startswith(("AWS_LAMBDA", "POWERTOOLS_TRACE"))}
    env.pop("PYTHONPATH", None)  # only what Lambda has: the layer and the function's folder
    env["PYTHONDONTWRITEBYTECODE"] = "1" if layer is not None else "0"
    env.update(LAMBDA_ENV)
    if xray_sdk:
        env["EMBEDRANK_XRAY_SDK"] = "1"
    codes = {
        name: IMPORT_SNIPPET.format(layer=str(layer or LAYER), folder=str(path.parent), module=path.stem)
        for name, path in paths.items()
    }
    task_roots = {name: {**env, "LAMBDA_TASK_ROOT": str(path.parent)} for name, path in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for run in range(runs + 1):  # a first, unmeasured run reads the files into the page cache
        for name, code in codes.items():
            out = subprocess.run(
                [sys.executable, "-c", code], env=task_roots[name], cwd=ROOT, capture_output=True, text=True, check=True
            )
            if run:
                samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {
        name: {
            "runs": runs,
            "median_ms": round(statistics.median(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
        for name, values in samples.items()
    }


def build_layer(platform_tag: str) -> Path:
    """``make build-EmbedrankLayer``, what ``sam build`` runs, into a folder per platform; returns its ``python``."""
    target = CACHE / f"layer-{platform_tag}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    subprocess.run(
        ["make", "-s", "-C", str(LAYER), "build-EmbedrankLayer", f"ARTIFACTS_DIR={target}",
         f"PYTHON={sys.executable}", f"PLATFORM={platform_tag}"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return target / "python"


def without_bytecode(layer: Path) -> Path:
    """A copy of a built layer without its .pyc files: what SAM's python3.12 builder ships."""
    bare = layer.parent.with_name(layer.parent.name + "-no-pyc") / "python"
    shutil.rmtree(bare.parent, ignore_errors=True)
    shutil.copytree(layer, bare, ignore=shutil.ignore_patterns("__pycache__"))
    return bare


def tree_size(root: Path) -> tuple[int, int]:
    total = files = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            total += (Path(dirpath) / name).stat().st_size
            files += 1
    return total, files


def layer_size() -> dict[str, Any]:
    """The layer for Lambda (aarch64), every file counted, the .pyc files it ships included."""
    layer = build_layer(LAMBDA_PLATFORM)
    total, files = tree_size(layer)
    compiled = sum(tree_size(Path(d))[0] for d, _, _ in os.walk(layer) if d.endswith("__pycache__"))
    sizes = [(entry.name, tree_size(entry)[0]) for entry in layer.iterdir() if entry.is_dir()]
    largest = sorted(sizes, key=lambda s: -s[1])[:5]
    return {
        "bytes": total,
        "mb": round(total / 1_000_000, 2),
        "files": files,
        "pyc_mb": round(compiled / 1_000_000, 2),
        "embedrank_bytes": tree_size(layer / "embedrank")[0],
        "largest": {name: round(size / 1_000_000, 2) for name, size in largest},
    }


def streaming_handlers(paths: dict[str, Path]) -> dict[str, Path]:
    """The handlers whose function streams in the default deployment (a ``run.sh`` beside them)."""
    return {name: path for name, path in paths.items() if (path.parent / "run.sh").is_file()}


def _ready_ms(command: list[str], env: dict[str, str], port: int | None) -> float:
    """Spawn to ready: the handler imported (buffered: the process prints a line then), or the first HTTP answer on
    ``port``, polled every 10 ms as the Lambda Web Adapter's readiness check polls."""
    import http.client
    import time

    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if port is None:
            assert proc.stdout is not None
            if not proc.stdout.readline():
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "import failed")
            return (time.perf_counter() - started) * 1000
        while proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return (time.perf_counter() - started) * 1000
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "uvicorn exited")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ready_times(paths: dict[str, Path], runs: int, layer: Path | None = None) -> dict[str, dict[str, Any]]:
    """Per streaming function, spawn to ready in each deployment mode, from the same layer (round robin, median):

    - buffered: a fresh interpreter importing the handler (what the Python runtime does before the first event);
    - streaming: run.sh's command, uvicorn serving the handler's app, up to its first answer on ``/`` (what the Lambda
      Web Adapter waits for before the first event; the adapter's own start, a compiled extension, is not here).
    """
    from .client import free_port

    env = {k: v for k, v in python_env().items() if not k.startswith(("AWS_LAMBDA", "POWERTOOLS_TRACE"))}
    env.update(LAMBDA_ENV, PYTHONDONTWRITEBYTECODE="1" if layer is not None else "0")
    samples: dict[str, dict[str, list[float]]] = {name: {"buffered": [], "streaming": []} for name in paths}
    for run in range(runs + 1):  # a first, unmeasured run reads the files into the page cache
        for name, path in paths.items():
            mode_env = {**env, "LAMBDA_TASK_ROOT": str(path.parent), "PYTHONPATH": f"{path.parent}:{layer or LAYER}"}
            port = free_port()
            imported = f"import {path.stem}; print('ready', flush=True); import time; time.sleep(60)"
            buffered = _ready_ms([sys.executable, "-c", imported], mode_env, None)
            streaming = _ready_ms(
                [sys.executable, "-m", "uvicorn", f"{path.stem}:app", "--host", "127.0.0.1", "--port", str(port),
                 "--no-access-log", "--lifespan", "off", "--log-level", "warning"],
                mode_env,
                port,
            )  # fmt: skip
            if run:
                samples[name]["buffered"].append(buffered)
                samples[name]["streaming"].append(streaming)
    return {
        name: {mode: round(statistics.median(values), 1) for mode, values in modes.items()} | {"runs": runs}
        for name, modes in samples.items()
    }
