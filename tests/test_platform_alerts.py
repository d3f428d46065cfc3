"""The platform's alerts and the fleet dashboard; every alert is shown firing by a promtool unit test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import fleet_dashboard as fleet_dashboard_module
from components import thanos
from components.kube_prometheus_stack import SIDECAR_JOB
from tests.conftest import CENTRAL_STACK, EDGE_STACKS, FLEET, rendered, requires_charts
from tests.test_kube_prometheus_stack import values as kps_values
from tests.test_service_monitors import service_monitor_jobs
from tools.engine import Rendering, Resource

FIXTURES = Path(__file__).parent / "promtool"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (CI installs it)")


def rule(stack: Rendering) -> Resource:
    return stack.k8s("PrometheusRule", "platform-alerts", "monitoring")


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


EVERY_CLUSTER = {"thanos-sidecar", "thanos-bucket", "logging", "storage", "ingress"}


def test_rules_of_what_runs_everywhere_on_every_cluster_central_rules_on_central_only(
    central: Rendering, edge: Rendering
) -> None:
    assert set(groups(edge)) == EVERY_CLUSTER
    assert set(groups(central)) == EVERY_CLUSTER | {"thanos-central"}
    for group in EVERY_CLUSTER:
        assert groups(edge)[group] == groups(central)[group]


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
        # issue 15: bucket operations, Store Gateway memory and sync, snapshots, log shipping, backups, certificates
        "ThanosBucketOperationsFailing",
        "ThanosStoreGatewayOOMKilled",
        "ThanosStoreGatewayNearMemoryLimit",
        "ThanosStoreGatewayNotSyncingBlocks",
        "OpenSearchSnapshotFailed",
        "OpenSearchNoRecentSnapshot",
        "FluentBitOutputRetrying",
        "FluentBitOutputRetriesFailed",
        "LonghornBackupFailed",
        "IngressCertificateExpiresSoon",
    } <= alert_names(central)


MIXIN_SELECTORS = {
    # The upstream Thanos mixin's selectors (thanos-io/thanos mixin/config.libsonnet).
    "sidecar": ".*thanos-sidecar.*",
    "query": ".*thanos-query.*",
    "query_frontend": ".*thanos-query-frontend.*",
    "store": ".*thanos-store.*",
    "compact": ".*thanos-compact.*",
}


def test_thanos_jobs_are_the_ones_the_upstream_mixin_selects() -> None:
    jobs = {
        "sidecar": SIDECAR_JOB,
        "query": thanos.QUERY,
        "query_frontend": thanos.QUERY_FRONTEND,
        "store": thanos.STORE,
        "compact": thanos.COMPACTOR,
    }
    for component, job in jobs.items():
        assert re.fullmatch(MIXIN_SELECTORS[component], job), (component, job)


def test_the_sidecar_job_is_relabelled_from_the_service_name_to_the_mixins(any_stack: Rendering) -> None:
    monitor = kps_values(any_stack)["prometheus"]["thanosServiceMonitor"]
    assert monitor["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "thanos-sidecar"}]
    sidecar_exprs = [r["expr"] for r in groups(any_stack)["thanos-sidecar"]]
    assert all('job="thanos-sidecar"' in expr for expr in sidecar_exprs)
    assert not any("thanos-discovery" in r["expr"] for rules in groups(any_stack).values() for r in rules)


def test_query_must_see_exactly_the_clusters_of_the_config(central: Rendering) -> None:
    missing = [r for r in groups(central)["thanos-central"] if r["alert"] == "ThanosClusterMissingFromQuery"]
    assert sorted(r["labels"]["missing_cluster"] for r in missing) == sorted(FLEET)
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
    [
        ("thanos-sidecar.test.yaml", EDGE_STACKS[0]),
        ("platform.test.yaml", EDGE_STACKS[0]),
        ("thanos-central.test.yaml", CENTRAL_STACK),
        ("thanos-store.test.yaml", CENTRAL_STACK),
    ],
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


def fleet_dashboard(stack: Rendering) -> dict[str, Any]:
    (document,) = stack.k8s("ConfigMap", "fleet-dashboard", "monitoring").inputs["data"].values()
    return dict(json.loads(document))


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_central_has_the_fleet_dashboard_for_the_grafana_sidecar_on_the_thanos_datasource(central: Rendering) -> None:
    configmap = central.k8s("ConfigMap", "fleet-dashboard", "monitoring")
    grafana = kps_values(central)["grafana"]
    sidecar_label = "grafana_dashboard"  # kube-prometheus-stack 88.5.3 default (grafana.sidecar.dashboards.label)
    assert configmap.inputs["metadata"]["labels"][sidecar_label] == "1"
    assert grafana.get("sidecar", {}).get("dashboards", {}).get("enabled", True) is True
    dashboard = fleet_dashboard(central)
    (thanos_source,) = [source for source in grafana["additionalDataSources"] if source["name"] == "Thanos"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == thanos_source["uid"]
        assert all(target["expr"] for target in panel["targets"])


def test_the_cluster_variable_is_every_cluster_that_sends_anything(central: Rendering) -> None:
    (variable,) = fleet_dashboard(central)["templating"]["list"]
    assert variable["name"] == "cluster"
    assert variable["query"]["query"] == variable["definition"] == "label_values(up, cluster)"
    assert variable["includeAll"] and variable["multi"]


def test_the_fleet_dashboard_shows_each_concern_per_cluster(central: Rendering) -> None:
    dashboard = fleet_dashboard(central)
    titles = " / ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for concern in (
        "targets up",
        "sidecar upload lag",
        "store gateway blocks",
        "compactor status",
        "log ingest rate",
        "snapshot",
        "longhorn backups",
    ):
        assert concern in titles, concern
    exprs = panel_exprs(dashboard)
    per_cluster = [expr for expr in exprs if 'cluster=~"$cluster"' in expr]
    assert len(per_cluster) >= len(exprs) - 4  # Query's, the Store Gateway's and the Compactor's run on central only
    for metric in (
        "up",
        "thanos_objstore_bucket_last_successful_upload_time",
        "thanos_bucket_store_blocks_loaded",
        "thanos_compact_halted",
        "fluentbit_output_proc_records_total",
        "elasticsearch_snapshot_stats_latest_snapshot_timestamp_seconds",
        "longhorn_backup_state",
    ):
        assert re.search(rf"\b{metric}\{{", " ".join(exprs)), metric


def test_edges_have_no_fleet_dashboard(edge: Rendering) -> None:
    assert not [r for r in edge.kubernetes_objects() if r.kind == "ConfigMap" and r.name == "fleet-dashboard"]


@needs_promtool
def test_dashboard_queries_parse(central: Rendering, tmp_path: Path) -> None:
    """Every panel expression is valid PromQL (checked by promtool as a recording rule)."""
    rules = [
        {"record": f"dashboard:panel{index}", "expr": expr.replace("$cluster", ".*")}
        for index, expr in enumerate(panel_exprs(fleet_dashboard(central)))
    ]
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def jobs_in(expr: str) -> set[str]:
    return set(re.findall(r'job="([^"]+)"', expr))


def test_every_dashboard_and_alert_series_names_its_scrape_job(central: Rendering) -> None:
    """Except `up` over every target and kube-state-metrics/cAdvisor series (selected by pod)."""
    for expr in [*panel_exprs(fleet_dashboard(central)), *(r["expr"] for g in groups(central).values() for r in g)]:
        selectors = re.findall(r"\b([a-z_:]+)\{([^}]*)\}", expr)
        for metric, matchers in selectors:
            if metric == "up" and "job" not in matchers:
                continue
            if metric.startswith(("kube_pod_container", "container_")):
                assert 'pod=~"thanos-store-.*"' in matchers, expr
                continue
            assert "job" in matchers, (metric, expr)


@requires_charts
def test_every_job_the_dashboard_and_alerts_read_is_one_a_service_monitor_scrapes(
    central: Rendering, edge: Rendering
) -> None:
    jobs = service_monitor_jobs(central) | service_monitor_jobs(edge)
    read = set(fleet_dashboard_module.JOBS)
    for stack in (central, edge):
        for rules in groups(stack).values():
            for item in rules:
                read |= jobs_in(item["expr"])
    for expr in panel_exprs(fleet_dashboard(central)):
        read |= jobs_in(expr)
    assert read <= jobs, read - jobs
