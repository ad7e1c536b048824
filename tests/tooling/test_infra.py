"""Deploy-time artifacts agree with the code: template tables vs tables.py, layer requirements vs pyproject."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

from conftest import ROOT
from embedrank.domain.catalog import load_catalog
from embedrank.store import tables
from embedrank_tools.provision import load_plans


def template() -> Any:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


def test_template_tables_match_the_code() -> None:
    resources = template()["Resources"]
    for logical, shape in (("KeysTable", tables.KEYS), ("PlansTable", tables.PLANS), ("UsageTable", tables.USAGE)):
        props = resources[logical]["Properties"]
        assert props["KeySchema"] == shape["KeySchema"], logical
        assert sorted(props["AttributeDefinitions"], key=str) == sorted(shape["AttributeDefinitions"], key=str)
        assert props.get("GlobalSecondaryIndexes", []) == shape.get("GlobalSecondaryIndexes", [])
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    ttl = resources["UsageTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": tables.USAGE_TTL_ATTRIBUTE, "Enabled": True}


def test_functions_run_python312_arm64_with_the_layer() -> None:
    doc = template()
    fn = doc["Globals"]["Function"]
    assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"] and fn["Tracing"] == "Active"
    layer = doc["Resources"]["EmbedrankLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}  # layers/embedrank/Makefile
    assert layer["Properties"]["ContentUri"] == "layers/embedrank/"
    for name, res in doc["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function":
            module, _, _func = res["Properties"]["Handler"].partition(".")
            assert (ROOT / res["Properties"]["CodeUri"] / f"{module}.py").is_file(), name


def test_layer_requirements_match_pyproject_runtime_deps() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # Provided in Lambda by the runtime (boto3) and by the AWS-managed Powertools layer (powertools, X-Ray SDK).
    provided = ("boto3", "aws-lambda-powertools", "aws-xray-sdk")
    runtime = {d for d in project["dependencies"] if not d.startswith(provided)}
    lines = (ROOT / "layers/embedrank/requirements.txt").read_text().splitlines()
    required = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert required == runtime
    assert not any(re.match(r"boto3|botocore", r) for r in required)  # the Lambda runtime provides them


def test_catalog_and_plans_seed_are_consistent() -> None:
    catalog = load_catalog()
    known = set(catalog.model_ids())
    plans = {p["name"]: p for p in load_plans()}
    assert {"free", "premium", "max", "ultra"} <= set(plans)
    assert plans["free"]["allowed_models"] == []
    assert plans["max"]["allowed_models"] == plans["ultra"]["allowed_models"] == "all"
    assert set(plans["premium"]["allowed_models"]) <= known


def test_powertools_and_xray_come_from_the_managed_layer() -> None:
    layers = template()["Globals"]["Function"]["Layers"]
    assert any("AWSLambdaPowertoolsPythonV3-python312-arm64" in str(layer) for layer in layers)


# -- operations -----------------------------------------------------------------------------------------------------


def functions(doc: Any) -> dict[str, Any]:
    return {name: res for name, res in doc["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}


def routes(function: Any) -> set[tuple[str, str]]:
    events = function["Properties"]["Events"].values()
    return {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events if e["Type"] == "HttpApi"}


def as_api_gateway(path: str) -> str:
    """The app's path as an API Gateway route: Starlette's ``{name:path}`` is a greedy ``{proxy+}``."""
    return re.sub(r"\{\w+:path\}", "{proxy+}", path)


def alarms_on(doc: Any, function: str) -> dict[str, Any]:
    """The alarms watching ``function``: Lambda metrics by FunctionName, or API Gateway metrics of its routes."""
    found = {}
    for name, res in doc["Resources"].items():
        if res["Type"] == "AWS::CloudWatch::Alarm" and function in str(res["Properties"]):
            found[name] = res["Properties"]
    return found


def served_routes(handler_module: str) -> set[tuple[str, str]]:
    """The routes a function's app serves, from its handler module imported in a fresh interpreter: importing it here
    would build its Mangum adapter on this process's event loop, which later tests' asyncio.run() closes."""
    code = (
        f"import json, {handler_module} as m\n"
        "print(json.dumps([[x, r.path] for r in m.app.routes for x in r.methods if x != 'HEAD']))"
    )
    paths = ("layers/embedrank", "functions/embeddings", "functions/rerank", "functions/account")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={
            "PATH": os.environ["PATH"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": ":".join(str(ROOT / p) for p in paths),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return {(method, as_api_gateway(path)) for method, path in json.loads(out.stdout)}


def test_every_route_the_app_serves_is_routed_to_the_function_that_serves_it() -> None:
    from embedrank.api.endpoints import ENDPOINTS, OPENAPI_PATH

    doc = template()
    routed: set[tuple[str, str]] = set()
    for res in functions(doc).values():
        assert routes(res) <= served_routes(res["Properties"]["Handler"].partition(".")[0])
        routed |= routes(res)
    app_routes = {(e.method, as_api_gateway(p)) for e in ENDPOINTS.values() for p in e.paths} | {("GET", OPENAPI_PATH)}
    assert routed == app_routes


def test_every_function_has_a_log_group_with_retention_and_three_alarms() -> None:
    doc = template()
    resources, params = doc["Resources"], doc["Parameters"]
    assert params["LogRetentionDays"]["Default"] == 30
    for name, res in functions(doc).items():
        group = resources[res["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        alarms = alarms_on(doc, name)
        lambda_metrics = {
            (a["MetricName"], a.get("ExtendedStatistic", a.get("Statistic")))
            for a in alarms.values()
            if "MetricName" in a
        }
        assert lambda_metrics == {("Throttles", "Sum"), ("Duration", "p99")}, name
        for alarm in alarms.values():
            if "MetricName" in alarm:
                assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": name}}]
            actions = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
            assert alarm["AlarmActions"] == alarm["OKActions"] == actions
        rates = [a for a in alarms.values() if "Metrics" in a]
        watched: set[tuple[str, str, str]] = set()
        for rate in rates:
            assert rate["Threshold"] == {"Ref": "ServerErrorRateAlarmPercent"}
            stats = [m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m]
            assert len(stats) <= 10  # CloudWatch's limit of metrics per alarm
            watched |= {
                (m["MetricName"], dims["Method"], dims["Resource"])
                for m in stats
                for dims in [{d["Name"]: d["Value"] for d in m["Dimensions"]}]
            }
            [expression] = [m["Expression"] for m in rate["Metrics"] if "Expression" in m]
            assert all(m["Id"] in expression for m in rate["Metrics"] if "MetricStat" in m)
        # The 5xx rates cover exactly the function's routes: errors and requests of each one.
        assert watched == {(metric, *route) for route in routes(res) for metric in ("5xx", "Count")}, name


def test_stage_throttling_tracing_switch_and_optional_custom_domain() -> None:
    doc = template()
    resources, params = doc["Resources"], doc["Parameters"]
    settings = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["DetailedMetricsEnabled"] is True
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["EMBEDRANK_XRAY_SDK"] == {"Ref": "XRaySdkTracing"} and params["XRaySdkTracing"]["Default"] == "true"
    assert (
        params["DomainName"]["Default"]
        == params["CertificateArn"]["Default"]
        == params["AlarmTopicArn"]["Default"]
        == ""
    )
    assert resources["ApiDomain"]["Condition"] == resources["ApiDomainMapping"]["Condition"] == "HasCustomDomain"
    assert resources["ApiDomainMapping"]["Properties"]["ApiId"] == {"Ref": "HttpApi"}


def test_the_bench_and_make_serve_run_with_the_templates_runtime_settings() -> None:
    """The settings that change how the runtime behaves (import, allocator) are the template's wherever measured."""
    from bench.coldstart import LAMBDA_ENV

    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["PYDANTIC_DISABLE_PLUGINS"] == LAMBDA_ENV["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    makefile = (ROOT / "Makefile").read_text()
    [line] = [ln for ln in makefile.splitlines() if ln.startswith("MALLOC_ENV")]
    malloc = dict(part.split("=", 1) for part in line.split(":=", 1)[1].split())
    assert malloc == {k: v for k, v in variables.items() if k.startswith("MALLOC_")} and len(malloc) == 2


def test_the_layer_build_fetches_arm64_wheels_then_compiles_them_with_the_package(tmp_path: Path) -> None:
    """``make build-EmbedrankLayer`` as ``sam build`` runs it (ARTIFACTS_DIR in the environment), with pip replaced by
    a stand-in that records its arguments and installs one pure-Python module: no network."""
    artifacts, log = tmp_path / "artifacts", tmp_path / "pip-args"
    stale = artifacts / "python" / "dropped_dependency.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("x = 1\n")  # from an earlier build: a dependency no longer required must not linger
    python = tmp_path / "python3.12"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "pip" ]; then\n'
        f'  echo "$@" > "{log}"; mkdir -p "$ARTIFACTS_DIR/python/dep"\n'
        '  echo "x = 1" > "$ARTIFACTS_DIR/python/dep/__init__.py"\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    env = {**os.environ, "ARTIFACTS_DIR": str(artifacts), "PYTHON": str(python)}
    subprocess.run(["make", "-s", "build-EmbedrankLayer"], cwd=ROOT / "layers/embedrank", env=env, check=True)
    args = log.read_text().split()
    assert args[args.index("--platform") + 1] == "manylinux2014_aarch64" and "--only-binary=:all:" in args
    assert args[args.index("--target") + 1] == str(artifacts / "python") and "--no-compile" in args
    assert not stale.exists()
    assert (artifacts / "python/dep/__pycache__/__init__.cpython-312.pyc").is_file()  # compiled after pip
    assert (artifacts / "python/embedrank/api/__pycache__/app.cpython-312.pyc").is_file()


def test_our_layer_is_extracted_last_so_its_files_win() -> None:
    layers = template()["Globals"]["Function"]["Layers"]
    assert layers[-1] == {"Ref": "EmbedrankLayer"} and len(layers) == 2


def test_the_layer_ships_every_module_compiled_for_a_read_only_opt(tmp_path: Path) -> None:
    """What ``sam build`` runs after pip (offline here): the package copied, then every module compiled."""
    make = ["make", "-s", "-C", str(ROOT / "layers/embedrank"), "package", f"ARTIFACTS_DIR={tmp_path}"]
    subprocess.run([*make, f"PYTHON={sys.executable}"], check=True, capture_output=True)
    layer = tmp_path / "python"
    sources = sorted(layer.rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        [compiled] = (source.parent / "__pycache__").glob(f"{source.stem}.cpython-312.pyc")
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, source  # hash-based, source never checked: any mtime the zip gives is fine
    # Imported with bytecode writing off, as in Lambda: the code comes from the .pyc, whatever the source says now.
    (layer / "embedrank" / "errors.py").write_text("raise SystemExit('compiled from source')\n")
    probe = "import embedrank.errors as e; print(e.EmbedrankError.__name__)"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "EmbedrankError"
