"""Deploy-time artifacts agree with the code: template tables vs tables.py, layer requirements vs pyproject."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from cfnlint.decode import cfn_yaml

from conftest import ROOT
from embedrank import tables
from embedrank.catalog import load_catalog
from embedrank.provision import load_plans


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
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/embedrank/"
    for name, res in doc["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function":
            module, _, _func = res["Properties"]["Handler"].partition(".")
            assert (ROOT / res["Properties"]["CodeUri"] / f"{module}.py").is_file(), name


def test_layer_requirements_match_pyproject_runtime_deps() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {d for d in project["dependencies"] if not d.startswith("boto3")}
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
