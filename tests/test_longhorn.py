"""Longhorn 1.12: default StorageClass, one replica, S3 backups with retention in the job."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from components import versions
from components.longhorn import MANAGER_PORT, UI_PORT, WEBHOOK_PORTS
from components.traefik import INGRESS_CLASS
from tests.conftest import EXISTING_CENTRAL, rendered, requires_charts, requires_reference, settings, ui_url
from tools.cluster import KubeObject, cluster
from tools.engine import Rendering, Secret
from tools.validators import capacity, helm_values


@pytest.fixture
def any_stack(longhorn_stack: Rendering) -> Rendering:
    """Every stack that installs Longhorn (not one on a StorageClass of its cluster's own, below)."""
    return longhorn_stack


@pytest.fixture
def edge(longhorn_stack: Rendering) -> Rendering:
    return longhorn_stack


def test_a_cluster_with_its_own_storage_class_gets_no_longhorn_and_claims_from_that_class() -> None:
    existing = rendered(EXISTING_CENTRAL)
    class_name = settings(existing).storage.class_name
    assert class_name
    assert [r.name for r in existing.helm_releases() if r.name == "longhorn"] == []
    assert "longhorn-system" not in {r.metadata["name"] for r in existing.kubernetes_objects() if r.kind == "Namespace"}
    assert "longhornUrl" not in existing.outputs
    claims = [r for r in existing.kubernetes_objects() if r.kind in ("StatefulSet", "PersistentVolumeClaim")]
    for claim in claims:
        templates = claim.inputs["spec"].get("volumeClaimTemplates") or [claim.inputs]
        for template in templates:
            assert template["spec"]["storageClassName"] == class_name, claim.name


def values(stack: Rendering) -> dict[str, Any]:
    return stack.release("longhorn").inputs["values"]


def rendered_objects(stack: Rendering) -> list[KubeObject]:
    """What the real `helm template` of the pinned chart renders with our values."""
    return [o for o in cluster(stack).objects if o.origin == "helm release longhorn"]


def rendered_config(stack: Rendering, configmap: str, key: str) -> dict[str, Any]:
    (found,) = [o for o in rendered_objects(stack) if o.kind == "ConfigMap" and o.name == configmap]
    return yaml.safe_load(found.obj["data"][key])


def test_release_is_the_pinned_chart(any_stack: Rendering) -> None:
    release = any_stack.release("longhorn")
    assert release.inputs["chart"] == "longhorn"
    assert release.inputs["version"] == "1.12.1" == versions.LONGHORN.version


@requires_reference
def test_every_values_key_exists_in_the_pinned_chart(any_stack: Rendering) -> None:
    assert helm_values.release_problems(any_stack.release("longhorn"), "1.36") == []


def test_one_replica_per_node_applies_to_storage_class_and_ui_volumes(any_stack: Rendering) -> None:
    v = values(any_stack)
    # The default class on Minikube; an existing cluster's default stays its operator's choice.
    assert v["persistence"]["defaultClass"] is settings(any_stack).on_minikube
    replicas = settings(any_stack).longhorn_replicas
    assert replicas == min(3, settings(any_stack).node_count)  # one per node, up to three
    assert v["persistence"]["defaultClassReplicaCount"] == replicas  # the StorageClass's volumes
    # Volumes made in the UI, in the per-data-engine form of Longhorn 1.10+: as many on either engine.
    assert v["defaultSettings"]["defaultReplicaCount"] == {"v1": str(replicas), "v2": str(replicas)}
    assert v["persistence"]["reclaimPolicy"] == "Retain"


def test_instance_manager_cpu_is_reserved_per_data_engine(any_stack: Rendering) -> None:
    """Only the v1 engine runs; its share is what the node's system reserve accounts for."""
    assert values(any_stack)["defaultSettings"]["guaranteedInstanceManagerCPU"] == {"v1": "12"}


@requires_charts
def test_the_chart_renders_per_engine_settings_as_the_settings_json(edge: Rendering) -> None:
    setting = rendered_config(edge, "longhorn-default-setting", "default-setting.yaml")
    replicas = str(settings(edge).longhorn_replicas)
    assert json.loads(setting["default-replica-count"]) == {"v1": replicas, "v2": replicas}
    assert json.loads(setting["guaranteed-instance-manager-cpu"]) == {"v1": "12"}
    assert setting["deleting-confirmation-flag"] is False
    assert setting["storage-minimal-available-percentage"] == "15"


@requires_reference
def test_a_per_engine_setting_with_an_unknown_engine_is_a_finding(edge: Rendering) -> None:
    release = copy.deepcopy(edge.release("longhorn"))
    release.inputs["values"]["defaultSettings"]["defaultReplicaCount"] = {"v3": "1"}
    (problem,) = helm_values.release_problems(release, "1.36")
    assert problem.startswith("defaultSettings.defaultReplicaCount")


def test_backups_go_to_the_default_backup_target_with_our_credentials_secret(any_stack: Rendering) -> None:
    """Since Longhorn 1.8 the backup target is a BackupTarget resource: `defaultBackupStore`
    configures the `default` one; the old `defaultSettings.backupTarget*` keys are gone."""
    v = values(any_stack)
    store = v["defaultBackupStore"]
    s3 = settings(any_stack).s3
    assert store["backupTarget"] == f"s3://{s3.buckets.longhorn}@{s3.region}/{any_stack.stack}/"
    assert not {"backupTarget", "backupTargetCredentialSecret"} & set(v["defaultSettings"])
    secret = any_stack.k8s("Secret", store["backupTargetCredentialSecret"], "longhorn-system")
    assert isinstance(secret.inputs["stringData"], Secret)
    keys = set(secret.inputs["stringData"].value)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINTS"} <= keys


@requires_charts
def test_the_chart_renders_the_backup_target_into_its_default_resource(edge: Rendering) -> None:
    resource = rendered_config(edge, "longhorn-default-resource", "default-resource.yaml")
    store = values(edge)["defaultBackupStore"]
    assert resource == {
        "backup-target": store["backupTarget"],
        "backup-target-credential-secret": store["backupTargetCredentialSecret"],
    }


def test_recurring_backup_job_keeps_a_bounded_number(any_stack: Rendering) -> None:
    job = any_stack.k8s("RecurringJob", "backup-daily", "longhorn-system")
    assert job.inputs["apiVersion"] == "longhorn.io/v1beta2"
    assert job.inputs["spec"]["task"] == "backup"
    assert job.inputs["spec"]["retain"] == 14
    assert job.inputs["spec"]["groups"] == ["default"]
    assert any_stack.depends_on(job, any_stack.release("longhorn")), "CRDs come with the release"


def test_ui_is_behind_an_https_ingress_with_a_login(any_stack: Rendering) -> None:
    # Ours, not the chart's: the chart's would name a TLS Secret in longhorn-system.
    assert values(any_stack)["ingress"]["enabled"] is False
    ingress = any_stack.k8s("Ingress", "longhorn-ui", "longhorn-system").inputs
    host = f"longhorn.{settings(any_stack).domain}"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "longhorn-frontend", "port": {"number": 80}}
    assert ingress["spec"]["ingressClassName"] == INGRESS_CLASS
    assert ingress["spec"]["tls"] == [{"hosts": [host]}]
    assert any_stack.outputs["longhornUrl"] == ui_url(any_stack, host)
    # Traefik's basic-auth Middleware, named `<namespace>-<name>@kubernetescrd`, reads the UI's Secret.
    reference = ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
    middleware = any_stack.k8s("Middleware", "longhorn-ui-basic-auth", "longhorn-system")
    assert reference == "longhorn-system-longhorn-ui-basic-auth@kubernetescrd"
    auth = any_stack.k8s("Secret", middleware.inputs["spec"]["basicAuth"]["secret"], "longhorn-system")
    assert isinstance(auth.inputs["stringData"], Secret)
    assert set(auth.inputs["stringData"].value) == {"users"}  # the key Traefik's basicAuth reads
    assert isinstance(any_stack.outputs["longhornUiPassword"], Secret)


def test_a_failed_first_install_stays_recoverable(any_stack: Rendering) -> None:
    """Longhorn's pre-delete hook refuses while deletingConfirmationFlag is false, so an atomic
    rollback (an uninstall) would leave the release stuck; without atomic, the next `pulumi up`
    upgrades the failed release in place."""
    release = any_stack.release("longhorn")
    assert release.inputs["atomic"] is False
    assert release.inputs["cleanupOnFail"] is False
    assert values(any_stack)["defaultSettings"]["deletingConfirmationFlag"] is False


def test_prometheus_scrapes_longhorn_manager_through_the_chart_that_brings_the_crd(any_stack: Rendering) -> None:
    monitors = any_stack.release("kube-prometheus-stack").inputs["values"]["prometheus"]["additionalServiceMonitors"]
    longhorn = next(m for m in monitors if m["name"] == "longhorn")
    assert longhorn["selector"] == {"matchLabels": {"app": "longhorn-manager"}}
    assert longhorn["namespaceSelector"] == {"matchNames": ["longhorn-system"]}
    assert longhorn["endpoints"][0]["port"] == "manager"
    # The chart's own ServiceMonitor needs the Prometheus Operator's CRD, which comes later.
    assert "metrics" not in values(any_stack)


@requires_charts
def test_the_service_monitor_matches_the_rendered_manager_service(edge: Rendering) -> None:
    monitors = edge.release("kube-prometheus-stack").inputs["values"]["prometheus"]["additionalServiceMonitors"]
    monitor = next(m for m in monitors if m["name"] == "longhorn")
    services = [
        o
        for o in rendered_objects(edge)
        if o.kind == "Service" and monitor["selector"]["matchLabels"].items() <= o.obj["metadata"]["labels"].items()
    ]
    assert [s.name for s in services] == ["longhorn-backend"]
    (port,) = services[0].obj["spec"]["ports"]
    assert port["name"] == monitor["endpoints"][0]["port"] and port["port"] == MANAGER_PORT


@requires_charts
def test_manager_and_ui_listen_where_the_network_policies_expect(edge: Rendering) -> None:
    """1.12 has no conversion webhook (9501) any more: the manager serves its API, the admission
    webhook and the recovery backend."""
    pods = {pod.source.name: pod for pod in cluster(edge).pods() if pod.namespace == "longhorn-system"}
    manager_ports = {p["containerPort"] for _, p in pods["longhorn-manager"].container_ports()}
    assert manager_ports == {MANAGER_PORT, *WEBHOOK_PORTS}
    assert {p["containerPort"] for _, p in pods["longhorn-ui"].container_ports()} == {UI_PORT}


@requires_charts
def test_the_charts_own_network_policies_are_off(edge: Rendering) -> None:
    """They would only add allows beside the program's policies (the webhook one to every source)."""
    assert values(edge)["networkPolicies"] == {"restrictInternalTraffic": False}
    assert not [o for o in rendered_objects(edge) if o.kind == "NetworkPolicy"]


def test_manager_is_sized_through_values_and_the_rest_by_default_requests(any_stack: Rendering) -> None:
    manager = values(any_stack)["longhornManager"]["resources"]
    assert manager["requests"]["cpu"] and manager["requests"]["memory"] and manager["limits"]["memory"]
    limit_range = any_stack.k8s("LimitRange", "default-requests", "longhorn-system")
    (item,) = limit_range.inputs["spec"]["limits"]
    assert set(item["defaultRequest"]) == {"cpu", "memory"}
    assert "default" not in item, "a memory limit on an instance manager would kill every engine it runs"


@requires_reference
def test_the_capacity_report_counts_the_manager_and_names_the_limit_range(edge: Rendering) -> None:
    report = capacity.capacity(edge)
    assert "helm release longhorn longhornManager.resources" in {entry.source for entry in report.entries}
    assert any(exception.startswith("helm release longhorn:") for exception in report.exceptions)
    assert not [f for f in report.findings if "longhorn" in f.resource]


def test_release_is_protected_and_waits_for_its_namespace(any_stack: Rendering) -> None:
    release = any_stack.release("longhorn")
    assert release.protect
    assert any_stack.depends_on(release, any_stack.k8s("Namespace", "longhorn-system"))
    assert any_stack.depends_on(release, any_stack.k8s("LimitRange", "default-requests", "longhorn-system"))
