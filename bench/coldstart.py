"""Cold start: each handler module's import time in a fresh interpreter, and the layer's unzipped size built the way
SAM builds it (the layer's requirements for manylinux2014 aarch64 / CPython 3.12, binary wheels only, into a folder,
plus the ``embedrank`` package)."""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .client import ROOT, python_env

LAYER = ROOT / "layers" / "embedrank"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embedrank-bench"

IMPORT_SNIPPET = """
import sys, time
sys.path[:0] = [{layer!r}, {folder!r}]
t0 = time.perf_counter()
import {module}
print(time.perf_counter() - t0)
"""

# What the Lambda runtime and template.yaml set (the handler reads AWS_LAMBDA_FUNCTION_NAME to decide on tracing).
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


def import_times(paths: dict[str, Path], runs: int, xray_sdk: bool = False) -> dict[str, dict[str, Any]]:
    """Each handler's import time, ``runs`` times, taking the handlers in turn: the machine's speed drifts (other
    work shares it), and round robin spreads the drift over every handler instead of charging it to one."""
    env = {k: v for k, v in python_env().items() if not k.startswith(("AWS_LAMBDA", "POWERTOOLS_TRACE"))}
    env.pop("PYTHONPATH", None)  # only what Lambda has: the layer and the function's folder
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    env.update(LAMBDA_ENV)
    if xray_sdk:
        env["EMBEDRANK_XRAY_SDK"] = "1"
    codes = {
        name: IMPORT_SNIPPET.format(layer=str(LAYER), folder=str(path.parent), module=path.stem)
        for name, path in paths.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for run in range(runs + 1):  # the first run compiles .pyc files (Lambda ships them compiled by the runtime cache)
        for name, code in codes.items():
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
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


def _requirements_hash() -> str:
    return hashlib.sha256((LAYER / "requirements.txt").read_bytes()).hexdigest()[:16]


def build_layer() -> Path:
    """``pip install --target`` like SAM's Python builder (no .pyc compiled); cached by the requirements' hash."""
    target = CACHE / f"layer-{_requirements_hash()}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "-r",
                str(LAYER / "requirements.txt"),
                "--platform",
                "manylinux2014_aarch64",
                "--implementation",
                "cp",
                "--python-version",
                "3.12",
                "--only-binary=:all:",
                "--target",
                str(target / "python"),
            ],
            check=True,
        )
        (target / ".complete").touch()
    return target


def tree_size(root: Path) -> tuple[int, int]:
    total = files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            total += (Path(dirpath) / name).stat().st_size
            files += 1
    return total, files


def layer_size() -> dict[str, Any]:
    deps = build_layer()
    dep_bytes, dep_files = tree_size(deps / "python")
    pkg_bytes, pkg_files = tree_size(LAYER / "embedrank")
    sizes: list[tuple[str, int]] = []
    for entry in (deps / "python").iterdir():
        if entry.is_dir():
            sizes.append((entry.name, tree_size(entry)[0]))
    largest = sorted(sizes, key=lambda s: -s[1])[:5]
    return {
        "bytes": dep_bytes + pkg_bytes,
        "mb": round((dep_bytes + pkg_bytes) / 1_000_000, 2),
        "files": dep_files + pkg_files,
        "embedrank_bytes": pkg_bytes,
        "largest": {name: round(size / 1_000_000, 2) for name, size in largest},
    }
