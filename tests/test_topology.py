"""Adding a cluster is a config change: one new stack file and one `edges` entry on central.

The project is copied as users have it (program, tools, stack files); a fourth cluster is added to
the copy the way the README says ("Add a cluster"), and a fifth on an existing cluster behind a load
balancer with its own StorageClass ("Deploying onto an existing cluster"). Then every stack of the
copy must render and pass `render --check`, and central must have taken the new clusters in
everywhere it lists clusters.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import settings_of
from tests.conftest import COMMITTED_STACKS, ROOT, operator_config, requires_charts
from tools import helm
from tools.engine import PROJECT, Rendering, config_path_overrides, load_stack_config, run_stack, stack_names, unwrap
from tools.validators.common import reference_dir

pytestmark = requires_charts

NEW = "added-edge"
EXISTING = "added-cluster"
"""An edge on an existing three-node cluster: the README's example stack file."""
EXISTING_SIDECAR = "10.30.0.101"
"""Where central dials that edge's sidecar: its load balancer's address."""
PROJECT_FILES = ("__main__.py", "Pulumi.yaml", "components", "tools", "policy")


def central_stack() -> str:
    return next(s for s in COMMITTED_STACKS if load_stack_config(s)[f"{PROJECT}:role"] == "central")


def an_edge() -> str:
    return next(s for s in COMMITTED_STACKS if load_stack_config(s)[f"{PROJECT}:role"] == "edge")


def add_edge(project: Path) -> str:
    """What the README's "Add a cluster" says: copy an edge's stack file, give it its own name,
    host and domain, and list it under central's `edges`. Returns the new host's address."""
    central_file = project / f"Pulumi.{central_stack()}.yaml"
    central = yaml.safe_load(central_file.read_text())
    edges = central["config"][f"{PROJECT}:edges"]
    host = str(max(ipaddress.ip_address(edge["host"]) for edge in edges) + 1)
    template = yaml.safe_load((project / f"Pulumi.{an_edge()}.yaml").read_text())
    config = template["config"]
    domain = f"{NEW}.{config[f'{PROJECT}:domain'].split('.', 1)[1]}"
    edges.append({"name": NEW, "host": host, "domain": domain})
    central_file.write_text(yaml.safe_dump(central, sort_keys=False))

    config[f"{PROJECT}:clusterName"] = NEW
    config[f"{PROJECT}:host"] = host
    config[f"{PROJECT}:domain"] = domain
    (project / f"Pulumi.{NEW}.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return host


def readme_example() -> dict[str, Any]:
    """The stack file of "Deploying onto an existing cluster", as the README shows it."""
    text = (ROOT / "README.md").read_text().split("## Deploying onto an existing cluster\n", 1)[1]
    example: dict[str, Any] = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)[0])
    return example


def add_existing_edge(project: Path) -> None:
    """The README's example (an edge's s3, with its CA, and centralStack added, as its comment says), and its entry on
    central: the sidecar behind its load balancer on 10901."""
    example = readme_example()
    config = example["config"]
    template = yaml.safe_load((project / f"Pulumi.{an_edge()}.yaml").read_text())["config"]
    for key in ("s3", "centralStack"):
        config[f"{PROJECT}:{key}"] = template[f"{PROJECT}:{key}"]
    config[f"{PROJECT}:clusterName"] = EXISTING
    (project / f"Pulumi.{EXISTING}.yaml").write_text(yaml.safe_dump(example, sort_keys=False))
    central_file = project / f"Pulumi.{central_stack()}.yaml"
    central = yaml.safe_load(central_file.read_text())
    entry = {"name": EXISTING, "host": EXISTING_SIDECAR, "domain": config[f"{PROJECT}:domain"], "sidecarPort": 10901}
    central["config"][f"{PROJECT}:edges"].append(entry)
    central_file.write_text(yaml.safe_dump(central, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    copy = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    for stack in COMMITTED_STACKS:
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", copy / f"Pulumi.{stack}.yaml")
        set_operator_config(copy, stack)
    host = add_edge(copy)
    add_existing_edge(copy)
    return copy, host


def set_operator_config(project: Path, stack: str) -> None:
    """What the operator sets in the stack file before the first preview (`pulumi config set --path`)."""
    for key, value in config_path_overrides(stack, operator_config(stack), stacks_dir=project).items():
        path = project / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(path.read_text())
        document["config"][key] = json.loads(value)
        path.write_text(yaml.safe_dump(document, sort_keys=False))


def in_copy(project: tuple[Path, str], stack: str) -> Rendering:
    return run_stack(stack, stacks_dir=project[0])


def test_the_new_cluster_is_one_more_stack_file(project: tuple[Path, str]) -> None:
    assert stack_names(project[0]) == sorted([*COMMITTED_STACKS, NEW, EXISTING])


def test_every_stack_of_the_copy_renders_and_passes_check(project: tuple[Path, str]) -> None:
    environment = {
        **os.environ,
        "THANOS_MC_REFERENCE": str(reference_dir()),
        "THANOS_MC_HELM": str(helm.helm_binary()),
    }
    for stack in stack_names(project[0]):
        result = subprocess.run(
            [sys.executable, "-m", "tools.render", "--stack", stack, "--check"],
            cwd=project[0],
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{stack}:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
        assert result.stdout.strip().endswith(f"check {stack}: no findings")


def test_central_queries_alerts_on_and_issues_users_for_the_new_cluster(project: tuple[Path, str]) -> None:
    central = in_copy(project, central_stack())
    host = project[1]
    endpoints = central.k8s("ConfigMap", "thanos-query-endpoints", "monitoring").inputs["data"]["endpoints.yaml"]
    assert f"{host}:30901" in [entry["address"] for entry in yaml.safe_load(endpoints)["endpoints"]]
    rules = central.k8s("PrometheusRule", "platform-alerts", "monitoring").inputs["spec"]["groups"]
    missing = [r["labels"].get("missing_cluster") for group in rules for r in group["rules"]]
    assert NEW in missing
    users = {r.inputs["name"] for r in central.of_type("minio:index/iamUser:IamUser")}
    assert {f"{NEW}-thanos-sidecar", f"{NEW}-opensearch", f"{NEW}-longhorn"} <= users
    query_policy = central.k8s("NetworkPolicy", "thanos-query", "monitoring").inputs
    assert f"{host}/32" in json.dumps(query_policy)


def test_the_new_edge_gets_its_credentials_from_central(project: tuple[Path, str]) -> None:
    edge = in_copy(project, NEW)
    settings = settings_of(edge.config, NEW)
    assert settings.cluster_name == NEW and not settings.is_central
    keystore = unwrap(edge.k8s("Secret", "opensearch-s3-keystore", "logging").inputs["stringData"])
    assert keystore["s3.client.default.access_key"] == f"{NEW}-opensearch"


def test_the_edge_on_an_existing_cluster_runs_no_host_command_nor_longhorn(project: tuple[Path, str]) -> None:
    edge = in_copy(project, EXISTING)
    assert [r.name for r in edge.resources if r.type.startswith("command:")] == []
    assert [r.name for r in edge.helm_releases()] == ["kube-prometheus-stack", "traefik", "opensearch", "fluent-bit"]
    traefik = edge.release("traefik").inputs["values"]
    assert traefik["service"]["spec"]["type"] == "LoadBalancer"
    assert edge.outputs["storageClass"] == "fast-ssd"
    central = in_copy(project, central_stack())
    endpoints = central.k8s("ConfigMap", "thanos-query-endpoints", "monitoring").inputs["data"]["endpoints.yaml"]
    assert f"{EXISTING_SIDECAR}:10901" in [entry["address"] for entry in yaml.safe_load(endpoints)["endpoints"]]
