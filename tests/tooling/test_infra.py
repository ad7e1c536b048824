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
    cache = resources["EmbeddingCacheTable"]["Properties"]
    assert cache["KeySchema"] == tables.EMBEDDING_CACHE["KeySchema"]
    assert cache["AttributeDefinitions"] == tables.EMBEDDING_CACHE["AttributeDefinitions"]
    assert cache["BillingMode"] == "PAY_PER_REQUEST"
    assert cache["TimeToLiveSpecification"] == {"AttributeName": tables.EMBEDDING_CACHE_TTL_ATTRIBUTE, "Enabled": True}
    # only the embeddings function and the batch worker read and write it, in batches
    granted = [
        (name, st["Action"])
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function"
        for st in res["Properties"]["Policies"][0]["Statement"]
        if isinstance(st["Resource"], list) and {"Fn::GetAtt": ["EmbeddingCacheTable", "Arn"]} in st["Resource"]
    ]
    batches = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]
    assert granted == [("EmbeddingsFunction", batches), ("WorkerFunction", batches)]


def test_functions_run_python312_arm64_with_the_layer() -> None:
    doc = template()
    fn = doc["Globals"]["Function"]
    assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"] and fn["Tracing"] == "Active"
    layer = doc["Resources"]["EmbedrankLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}  # layers/embedrank/Makefile
    assert layer["Properties"]["ContentUri"] == "layers/embedrank/"
    for name, res in functions(doc).items():
        module = handler_module(res)
        assert (ROOT / res["Properties"]["CodeUri"] / f"{module}.py").is_file(), name


def test_streaming_functions_run_their_app_under_uvicorn_behind_the_lambda_web_adapter() -> None:
    doc = template()
    assert doc["Parameters"]["Deployment"]["Default"] == "streaming"
    assert doc["Parameters"]["Deployment"]["AllowedValues"] == ["streaming", "buffered"]
    streaming = {name for name, res in functions(doc).items() if both(res["Properties"]["Handler"])[0] == "run.sh"}
    assert streaming == {"EmbeddingsFunction", "RerankFunction"}  # the account function's answers are small
    for name in streaming:
        props = functions(doc)[name]["Properties"]
        script = ROOT / props["CodeUri"] / "run.sh"
        assert os.access(script, os.X_OK), script
        # the same ASGI app the buffered handler wraps in Mangum, on the adapter's port
        assert f"uvicorn {handler_module(functions(doc)[name])}:app" in script.read_text()
        assert '--port "${AWS_LWA_PORT:-8080}"' in script.read_text()
        [adapter] = props["Layers"]
        assert both(adapter)[1] == {"Ref": "AWS::NoValue"}
        assert "LambdaAdapterLayerArm64:${LambdaWebAdapterLayerVersion}" in both(adapter)[0]["Fn::Sub"]
        env = {k: both(v) for k, v in props["Environment"]["Variables"].items()}
        assert env["AWS_LAMBDA_EXEC_WRAPPER"] == ("/opt/bootstrap", {"Ref": "AWS::NoValue"})
        assert env["AWS_LWA_INVOKE_MODE"] == ("response_stream", {"Ref": "AWS::NoValue"})
        assert env["EMBEDRANK_XRAY_SDK"] == ("false", {"Ref": "XRaySdkTracing"})
    # the REST integrations wait as long as a streaming function may run
    timeout = both(doc["Globals"]["Function"]["Timeout"])
    integrations = api_routes(doc, "RestApi").values()
    assert {i["timeoutInMillis"] for f, i in integrations if f in streaming} == {timeout[0] * 1000}
    assert timeout[1] == 29  # buffered: inside the HTTP API's 30 s
    assert doc["Globals"]["Function"]["Environment"]["Variables"]["RESPONSE_MODE"] == {"Ref": "Deployment"}


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


def both(value: Any) -> tuple[Any, Any]:
    """What the Deployment parameter makes of a template value: (streaming, buffered)."""
    if isinstance(value, dict) and list(value) == ["Fn::If"] and value["Fn::If"][0] == "Streaming":
        return value["Fn::If"][1], value["Fn::If"][2]
    return value, value


def handler_module(function: Any) -> str:
    """The handler module of a function (the buffered handler's, for one that runs run.sh when streaming)."""
    return str(both(function["Properties"]["Handler"])[1]).partition(".")[0]


def api_routes(doc: Any, api: str) -> dict[tuple[str, str], tuple[str, Any]]:
    """(METHOD, path) -> (function, integration) from an API's OpenAPI body."""
    found = {}
    for path, operations in doc["Resources"][api]["Properties"]["DefinitionBody"]["paths"].items():
        for method, operation in operations.items():
            integration = operation["x-amazon-apigateway-integration"]
            uri = integration["uri"]
            if "Fn::GetAtt" in uri:
                function = uri["Fn::GetAtt"][0]
            else:
                function = re.fullmatch(r".*\$\{(\w+)\.Arn\}.*", uri["Fn::Sub"]).group(1)  # type: ignore[union-attr]
            found[(method.upper(), path)] = (function, integration)
    return found


def routes(doc: Any, function: str) -> set[tuple[str, str]]:
    """The routes of ``function`` (the same in both APIs: a test checks it)."""
    return {route for route, (name, _) in api_routes(doc, "HttpApi").items() if name == function}


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
    paths = ("layers/embedrank", *(f"functions/{name}" for name in ("embeddings", "rerank", "account", "jobs")))
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
    app_routes = {(e.method, as_api_gateway(p)) for e in ENDPOINTS.values() for p in e.paths} | {("GET", OPENAPI_PATH)}
    rest, http = api_routes(doc, "RestApi"), api_routes(doc, "HttpApi")
    # both APIs route every path the app serves, each to the same function
    assert set(rest) == set(http) == app_routes
    assert {route: fn for route, (fn, _) in rest.items()} == {route: fn for route, (fn, _) in http.items()}
    for name, res in functions(doc).items():
        if name == "WorkerFunction":  # SQS events only
            assert not routes(doc, name)
            assert {e["Type"] for e in res["Properties"]["Events"].values()} == {"SQS"}
            continue
        assert routes(doc, name) <= served_routes(handler_module(res))
    for function, integration in http.values():
        assert integration["type"] == "aws_proxy" and integration["payloadFormatVersion"] == "2.0"
        assert integration["uri"] == {"Fn::GetAtt": [function, "Arn"]}
    for function, integration in rest.values():
        uri = integration["uri"]["Fn::Sub"]
        assert integration["type"] == "aws_proxy" and integration["httpMethod"] == "POST"
        if function in ("AccountFunction", "JobsFunction"):  # small answers: the plain invocation, buffered
            assert uri.endswith(f"/2015-03-31/functions/${{{function}.Arn}}/invocations")
            assert "responseTransferMode" not in integration
        else:  # InvokeWithResponseStream, and API Gateway streams what it gets
            assert uri.endswith(f"/2021-11-15/functions/${{{function}.Arn}}/response-streaming-invocations")
            assert integration["responseTransferMode"] == "STREAM"
    # each function may be invoked by whichever API the deployment has
    resources = doc["Resources"]
    permitted = {
        res["Properties"]["FunctionName"]["Ref"]
        for res in resources.values()
        if res["Type"] == "AWS::Lambda::Permission"
    }
    assert permitted == set(functions(doc)) - {"WorkerFunction"}  # invoked by SQS (its event source mapping)
    assert resources["RestApi"]["Condition"] == "Streaming" and resources["HttpApi"]["Condition"] == "Buffered"


def test_the_jobs_table_matches_the_code_and_only_the_job_functions_touch_the_files_bucket() -> None:
    doc = template()
    props = doc["Resources"]["JobsTable"]["Properties"]
    assert props["KeySchema"] == tables.JOBS["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(tables.JOBS["AttributeDefinitions"], key=str)
    assert props["TimeToLiveSpecification"] == {"AttributeName": tables.JOBS_TTL_ATTRIBUTE, "Enabled": True}
    objects = {"Fn::Sub": "${FilesBucket.Arn}/*"}
    bucket = {"Fn::GetAtt": ["FilesBucket", "Arn"]}
    grants: dict[str, dict[str, list[str]]] = {}
    for name, res in functions(doc).items():
        for st in res["Properties"]["Policies"][0]["Statement"]:
            for resource in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                if resource in (objects, bucket):
                    grants.setdefault(name, {}).setdefault(str(resource), []).extend(st["Action"])
    assert sorted(grants) == ["JobsFunction", "WorkerFunction"]
    for name, granted in grants.items():
        assert sorted(granted[str(objects)]) == sorted(
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        ), name
        # without it S3 answers a missing key's HeadObject with 403, and a chunk's unwritten part reads as a failure
        assert granted[str(bucket)] == ["s3:ListBucket"], name


def test_each_lane_has_its_queue_and_its_own_maximum_concurrency() -> None:
    from embedrank.providers import EMBEDDING, RERANK
    from embedrank.store.queue import LANE_OF, LANES

    doc = template()
    resources, parameters = doc["Resources"], doc["Parameters"]
    # every provider the registry can call has a lane
    assert set(LANE_OF) == set(EMBEDDING) | set(RERANK)
    queues = {"".join(p.capitalize() for p in lane.split("-")): lane for lane in LANES}
    declared = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert declared == {f"JobsQueue{name}" for name in queues} | {"JobsDeadLetterQueue"}
    env = doc["Globals"]["Function"]["Environment"]["Variables"]["JOBS_QUEUE_URLS"]["Fn::Sub"]
    assert json.loads(env) == {lane: "${JobsQueue" + name + "}" for name, lane in queues.items()}
    events = functions(doc)["WorkerFunction"]["Properties"]["Events"]
    sends = functions(doc)["JobsFunction"]["Properties"]["Policies"][0]["Statement"]
    [send] = [st for st in sends if st["Action"] == ["sqs:SendMessage"]]
    assert sorted(r["Fn::GetAtt"][0] for r in send["Resource"]) == sorted(f"JobsQueue{n}" for n in queues)
    for name in queues:
        props = resources[f"JobsQueue{name}"]["Properties"]
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
            "maxReceiveCount": 3,
        }
        event = events[f"Chunks{name}"]["Properties"]
        assert event["Queue"] == {"Fn::GetAtt": [f"JobsQueue{name}", "Arn"]}
        assert event["BatchSize"] == 1 and event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # the lane's pace is a parameter of its own
        assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": f"JobsConcurrency{name}"}
        assert parameters[f"JobsConcurrency{name}"]["MinValue"] == 2  # Lambda's least maximum concurrency
        # a chunk of 100 lines runs within the function's timeout; SQS waits 6 times it before handing it out again
        assert props["VisibilityTimeout"] >= 6 * functions(doc)["WorkerFunction"]["Properties"]["Timeout"]


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
            if a.get("Namespace") == "AWS/Lambda"
        }
        assert lambda_metrics == {("Throttles", "Sum"), ("Duration", "p99")}, name
        for alarm in alarms.values():
            if alarm.get("Namespace") == "AWS/Lambda":
                assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": name}}]
            actions = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
            assert alarm["AlarmActions"] == alarm["OKActions"] == actions
        rates = [a for a in alarms.values() if "Metrics" in a]
        watched: set[tuple[Any, ...]] = set()
        for rate in rates:
            assert rate["Threshold"] == {"Ref": "ServerErrorRateAlarmPercent"}
            stats = [m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m]
            assert len(stats) <= 10  # CloudWatch's limit of metrics per alarm
            for m in stats:
                for mode in (0, 1):  # streaming (REST API metrics), buffered (HTTP API metrics)
                    dims = {both(d["Name"])[mode]: both(d["Value"])[mode] for d in m["Dimensions"]}
                    api = {"ApiName": {"Fn::Sub": "${AWS::StackName}"}} if mode == 0 else {"ApiId": {"Ref": "HttpApi"}}
                    assert {k: v for k, v in dims.items() if k in ("ApiName", "ApiId")} == api
                    assert dims["Stage"] == ("prod" if mode == 0 else "$default")
                    watched.add((mode, both(m["MetricName"])[mode], dims["Method"], dims["Resource"]))
            [expression] = [m["Expression"] for m in rate["Metrics"] if "Expression" in m]
            assert all(m["Id"] in expression for m in rate["Metrics"] if "MetricStat" in m)
        # The 5xx rates cover exactly the function's routes: errors and requests of each one.
        expected = {
            (mode, metric, *route)
            for mode, metrics in enumerate((("5XXError", "Count"), ("5xx", "Count")))
            for metric in metrics
            for route in routes(doc, name)
        }
        assert watched == expected, name
    # the worker answers no route: its third alarm watches the chunks that reach the dead-letter queue
    [dead] = [a for a in alarms_on(doc, "WorkerFunction").values() if a.get("Namespace") == "AWS/SQS"]
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]}}]


def test_stage_throttling_tracing_switch_and_optional_custom_domain() -> None:
    doc = template()
    resources, params = doc["Resources"], doc["Parameters"]
    settings = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["DetailedMetricsEnabled"] is True
    rest = resources["RestApi"]["Properties"]
    [method_settings] = rest["MethodSettings"]
    assert method_settings == {
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
        "MetricsEnabled": True,
    }
    assert rest["EndpointConfiguration"] == {"Type": "REGIONAL"} and rest["StageName"] == "prod"
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["EMBEDRANK_XRAY_SDK"] == {"Ref": "XRaySdkTracing"} and params["XRaySdkTracing"]["Default"] == "true"
    assert (
        params["DomainName"]["Default"]
        == params["CertificateArn"]["Default"]
        == params["AlarmTopicArn"]["Default"]
        == ""
    )
    assert resources["ApiDomain"]["Condition"] == resources["ApiDomainMapping"]["Condition"] == "BufferedWithDomain"
    assert resources["ApiDomainMapping"]["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    assert resources["RestApiDomain"]["Condition"] == resources["RestApiDomainMapping"]["Condition"]
    assert resources["RestApiDomainMapping"]["Condition"] == "StreamingWithDomain"
    assert resources["RestApiDomainMapping"]["Properties"]["RestApiId"] == {"Ref": "RestApi"}


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


def test_make_serve_runs_the_launcher_the_tests_run() -> None:
    """`make serve` and tests/support/live.py start the same module (a moved module once broke `make serve` alone)."""
    import importlib.util

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}  # when run by `make test`
    out = subprocess.run(["make", "-n", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    [module] = [m for m in re.findall(r"python -m (\S+)", out) if m not in ("pip", "venv")]
    assert module == "embedrank_tools.local" and importlib.util.find_spec(module) is not None
    assert f'"-m", "{module}"' in (ROOT / "tests/support/live.py").read_text()
