"""Alerts and the dashboard for the Thanos layer; every rule is exercised by a promtool unit test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CENTRAL_STACK, EDGE_STACKS, STACKS, rendered
from tests.test_kube_prometheus_stack import values as kps_values
from tools.engine import Rendering, Resource

FIXTURES = Path(__file__).parent / "promtool"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (CI installs it)")


def rule(stack: Rendering) -> Resource:
    return stack.k8s("PrometheusRule", "thanos-layer", "monitoring")


def groups(stack: Rendering) -> dict[str, list[dict[str, Any]]]:
    return {group["name"]: group["rules"] for group in rule(stack).inputs["spec"]["groups"]}


def alert_names(stack: Rendering) -> set[str]:
    return {r["alert"] for rules in groups(stack).values() for r in rules}


def test_every_cluster_has_the_rule_picked_up_after_the_crd_exists(any_stack: Rendering) -> None:
    resource = rule(any_stack)
    assert resource.inputs["apiVersion"] == "monitoring.coreos.com/v1"
    # kube-prometheus-stack's ruleSelector (ruleSelectorNilUsesHelmValues) matches the release label.
    assert resource.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "ruleSelector" not in kps_values(any_stack)["prometheus"]["prometheusSpec"]
    assert any_stack.depends_on(resource, any_stack.release("kube-prometheus-stack"))


def test_sidecar_rules_everywhere_central_rules_on_central_only(central: Rendering, edge: Rendering) -> None:
    assert set(groups(edge)) == {"thanos-sidecar"}
    assert set(groups(central)) == {"thanos-sidecar", "thanos-central"}
    assert groups(edge)["thanos-sidecar"] == groups(central)["thanos-sidecar"]


def test_the_failure_modes_of_the_issue_are_covered(central: Rendering) -> None:
    assert {
        "ThanosSidecarPrometheusUnreachable",
        "ThanosSidecarUploadsFailing",
        "ThanosSidecarNoUploads",
        "ThanosCompactorHalted",
        "ThanosCompactorFailing",
        "ThanosQueryGrpcErrors",
        "ThanosStoreGrpcErrors",
        "ThanosClusterMissingFromQuery",
    } <= alert_names(central)


def test_query_must_see_exactly_the_clusters_of_the_config(central: Rendering) -> None:
    missing = [r for r in groups(central)["thanos-central"] if r["alert"] == "ThanosClusterMissingFromQuery"]
    assert sorted(r["labels"]["missing_cluster"] for r in missing) == sorted(STACKS)
    for item in missing:
        assert "cluster" not in item["labels"]  # Prometheus adds its own `cluster` external label to alerts
        assert f'cluster="{item["labels"]["missing_cluster"]}"' in item["expr"]


def test_every_alert_has_a_severity_and_a_summary(central: Rendering) -> None:
    for rules in groups(central).values():
        for item in rules:
            assert item["labels"]["severity"] in ("warning", "critical"), item["alert"]
            assert item["annotations"]["summary"] and item["annotations"]["description"], item["alert"]


def write_rules(stack: Rendering, directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule(stack).inputs["spec"]["groups"]}, sort_keys=False))
    return path


@needs_promtool
@pytest.mark.parametrize("stack", [CENTRAL_STACK, *EDGE_STACKS])
def test_rules_pass_promtool_check(stack: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(write_rules(rendered(stack), tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("fixture", "stack"),
    [("thanos-sidecar.test.yaml", EDGE_STACKS[0]), ("thanos-central.test.yaml", CENTRAL_STACK)],
)
def test_promtool_unit_tests_pass(fixture: str, stack: str, tmp_path: Path) -> None:
    write_rules(rendered(stack), tmp_path)
    shutil.copy(FIXTURES / fixture, tmp_path / fixture)
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", fixture], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def alerts_fired_by_fixtures() -> set[str]:
    names = set()
    for fixture in FIXTURES.glob("*.test.yaml"):
        for test in yaml.safe_load(fixture.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):  # a test that only expects silence proves nothing alone
                    names.add(case["alertname"])
    return names


def test_every_alert_has_a_unit_test_that_makes_it_fire(central: Rendering) -> None:
    assert alert_names(central) == alerts_fired_by_fixtures()


def test_central_has_a_dashboard_for_the_grafana_sidecar_on_the_thanos_datasource(central: Rendering) -> None:
    configmap = central.k8s("ConfigMap", "thanos-overview-dashboard", "monitoring")
    grafana = kps_values(central)["grafana"]
    sidecar_label = "grafana_dashboard"  # kube-prometheus-stack 88.5.3 default (grafana.sidecar.dashboards.label)
    assert configmap.inputs["metadata"]["labels"][sidecar_label] == "1"
    assert grafana.get("sidecar", {}).get("dashboards", {}).get("enabled", True) is True
    (document,) = configmap.inputs["data"].values()
    dashboard = json.loads(document)
    (thanos,) = [source for source in grafana["additionalDataSources"] if source["name"] == "Thanos"]
    panels = dashboard["panels"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == thanos["uid"]
        assert all(target["expr"] for target in panel["targets"])
    exprs = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    for metric in ("up", "prometheus_tsdb_head_samples_appended_total", "thanos_shipper_uploads_total"):
        assert f"{metric}{{" in exprs
    assert "by (cluster)" in exprs


def test_edges_have_no_thanos_dashboard(edge: Rendering) -> None:
    assert not [r for r in edge.kubernetes_objects() if r.kind == "ConfigMap" and r.name == "thanos-overview-dashboard"]


@needs_promtool
def test_dashboard_queries_parse(central: Rendering, tmp_path: Path) -> None:
    """Every panel expression is valid PromQL (checked by promtool as a recording rule)."""
    (document,) = central.k8s("ConfigMap", "thanos-overview-dashboard", "monitoring").inputs["data"].values()
    exprs = [target["expr"] for panel in json.loads(document)["panels"] for target in panel["targets"]]
    rules = [
        {"record": f"dashboard:panel{index}", "expr": expr.replace("$cluster", ".*")}
        for index, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
