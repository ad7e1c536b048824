"""The layer as ``sam build`` makes it: every runtime module is reachable from a handler, none pulls in dev tooling.

The layer is built with its own Makefile (pip replaced by a stand-in, so no network); the import graph is read from
the built sources' ASTs, including imports inside functions and the provider registry that ``importlib`` follows,
and the handlers are then imported for real from the built layer in a fresh interpreter.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT

FUNCTIONS = {
    "embeddings_handler": ROOT / "functions/embeddings",
    "rerank_handler": ROOT / "functions/rerank",
    "account_handler": ROOT / "functions/account",
}
FORBIDDEN = {"moto", "uvicorn", "werkzeug", "pytest", "embedrank_tools"}  # dev and test tooling, never in Lambda
REGISTRY = "embedrank.providers"  # imports its adapters by name: importlib.import_module(f"{__name__}.{name}")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make build-EmbedrankLayer`` as ``sam build`` runs it, with a stand-in pip that installs one dummy module."""
    tmp = tmp_path_factory.mktemp("layer")
    python = tmp / "python3.12"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "pip" ]; then\n'
        '  mkdir -p "$ARTIFACTS_DIR/python/dep" && echo "x = 1" > "$ARTIFACTS_DIR/python/dep/__init__.py"\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    env = {**os.environ, "ARTIFACTS_DIR": str(tmp / "artifacts"), "PYTHON": str(python)}
    subprocess.run(["make", "-s", "build-EmbedrankLayer"], cwd=ROOT / "layers/embedrank", env=env, check=True)
    built = tmp / "artifacts" / "python"
    assert (built / "embedrank/api/__pycache__/app.cpython-312.pyc").is_file()  # the real target copied and compiled
    return built


# --- the static import graph ------------------------------------------------------------------------------------


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Module name -> source file for every .py under ``root/package`` (data files such as catalog.json are not)."""
    found = {}
    for source in sorted((root / package).rglob("*.py")):
        parts = source.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return found


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in(source: Path, module: str) -> Iterator[tuple[str, bool]]:
    """(absolute module name, under ``if TYPE_CHECKING:``) for every import statement, at any depth.

    ``from x import y`` yields ``x`` and ``x.y`` (``y`` may be a submodule; a name that is not one is harmless)."""
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, typing_only: bool) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, typing_only
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            yield base, typing_only
            for alias in node.names:
                yield f"{base}.{alias.name}", typing_only
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from walk(child, True)
            for child in node.orelse:
                yield from walk(child, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            yield from walk(child, typing_only)

    yield from walk(ast.parse(source.read_text(), str(source)), False)


def registry_modules(source: Path) -> set[str]:
    """The adapter modules ``embedrank.providers`` imports by name: the values of its EMBEDDING and RERANK dicts."""
    tables: dict[str, dict[str, str]] = {}
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("EMBEDDING", "RERANK"):
            tables[target.id] = ast.literal_eval(value)
    assert set(tables) == {"EMBEDDING", "RERANK"} and all(tables.values()), "the registry moved: update this test"
    return {f"{REGISTRY}.{name}" for table in tables.values() for name in table.values()}


def dynamic_imports_in(source: Path) -> int:
    """Calls that import a module by name, which the static graph sees only where it knows the names."""
    calls = [node for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.Call)]
    return sum(
        (isinstance(c.func, ast.Attribute) and c.func.attr == "import_module")
        or (isinstance(c.func, ast.Name) and c.func.id in ("import_module", "__import__"))
        for c in calls
    )


def with_parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` (their ``__init__``) first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def run_time_imports(source: Path, module: str) -> set[str]:
    """What importing ``module`` imports, as run: TYPE_CHECKING blocks left out, parent packages added."""
    return {parent for name, typing in imports_in(source, module) if not typing for parent in with_parents(name)}


def run_time_graph(layer: Path) -> dict[str, set[str]]:
    """Module -> the modules importing it runs (sooner or later), for the handlers and the layer's embedrank."""
    sources = {**modules_of(layer, "embedrank"), **{name: d / f"{name}.py" for name, d in FUNCTIONS.items()}}
    graph = {module: run_time_imports(source, module) for module, source in sources.items()}
    graph[REGISTRY] |= {parent for name in registry_modules(sources[REGISTRY]) for parent in with_parents(name)}
    return graph


def reachable(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


# --- the tests --------------------------------------------------------------------------------------------------


def test_every_module_the_layer_ships_is_imported_from_a_handler(layer: Path) -> None:
    # Given: the built layer's embedrank modules, and the only by-name imports being the provider registry's
    modules = modules_of(layer, "embedrank")
    assert len(modules) > 20
    by_name = {module for module, source in modules.items() if dynamic_imports_in(source)}
    assert by_name == {REGISTRY}, f"modules importing by name, which this graph cannot follow: {sorted(by_name)}"
    # When: following every run-time import (in functions too, not under TYPE_CHECKING) from the three handlers
    graph = run_time_graph(layer)
    seen = reachable(graph, set(FUNCTIONS))
    # Then: nothing in the layer is dead weight (or imported only by tests and tooling)
    unreachable = sorted(set(modules) - seen)
    assert not unreachable, f"layer modules no handler imports: {unreachable}"


def test_no_layer_module_imports_dev_tooling(layer: Path) -> None:
    # Given: the built layer
    modules = modules_of(layer, "embedrank")
    # When: collecting every import statement of its embedrank package, TYPE_CHECKING ones included
    offending = sorted(
        f"{module} imports {name}"
        for module, source in modules.items()
        for name, _ in imports_in(source, module)
        if name.partition(".")[0] in FORBIDDEN
    )
    # Then: none names dev or test tooling, and the tooling package itself is not shipped
    assert not offending, offending
    shipped = sorted(str(p.relative_to(layer)) for p in layer.rglob("*") if p.name.startswith("embedrank_tools"))
    assert not shipped, f"the tooling package is in the layer: {shipped}"


def test_the_handlers_import_only_runtime_code_from_the_built_layer(layer: Path, tmp_path: Path) -> None:
    # Given: a fresh interpreter whose path starts with the built layer, then the function folders; third-party
    # packages come from the dev venv (the stand-in pip installed none)
    front = [str(layer), *map(str, FUNCTIONS.values())]
    probe = (
        "import json, sys\n"
        f"sys.path[:0] = {front!r}\n"
        "import embeddings_handler, rerank_handler, account_handler, embedrank\n"
        "print(json.dumps({'embedrank': embedrank.__file__, 'modules': sorted(sys.modules)}))\n"
    )
    env = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    # When: importing the three handlers
    out = subprocess.run(
        [sys.executable, "-P", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    loaded = set(result["modules"])
    # Then: the runtime came from the layer, no tooling was imported, and the static graph missed no import
    assert Path(result["embedrank"]).is_relative_to(layer)
    tooling = sorted(m for m in loaded if m.partition(".")[0] in FORBIDDEN)
    assert not tooling, f"the handlers imported dev tooling: {tooling}"
    static = reachable(run_time_graph(layer), set(FUNCTIONS))
    missed = sorted(m for m in loaded if m.startswith("embedrank.") and m not in static)
    assert not missed, f"imported at run time but not in the static graph: {missed}"
