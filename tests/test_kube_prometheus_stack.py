"""kube-prometheus-stack: a uniquely labelled Prometheus per cluster whose sidecar uploads to S3, on
chart 88.5.3 (operator v0.93.1, Prometheus 3) with its CRDs upgraded along with the chart."""

from __future__ import annotations

import json
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import versions
from components.kube_prometheus_stack import CRD_UPGRADE_POD_LABELS, GRAFANA_SIDECAR_ROLE
from components.namespaces import NODE_EXPORTER
from components.settings import PROJECT, SettingsError, parse_settings
from tests.certificates import throwaway_ca
from tests.conftest import (
    CENTRAL_STACK,
    EDGE,
    STACKS,
    raw_config,
    rendered,
    requires_charts,
    requires_reference,
    run_fixture,
    settings,
    storage_class,
    ui_url,
)
from tools.cluster import KubeObject, cluster
from tools.engine import MOCK_PASSWORD, Rendering, Secret, unwrap

RELEASE = "kube-prometheus-stack"


def values(stack: Rendering) -> dict[str, Any]:
    return stack.release(RELEASE).inputs["values"]


def at(tree: dict[str, Any], path: str) -> Any:
    return reduce(lambda node, key: node[key], path.split("."), tree)


def test_release_is_pinned_with_predictable_names(any_stack: Rendering) -> None:
    release = any_stack.release(RELEASE)
    assert release.inputs["chart"] == "kube-prometheus-stack"
    assert release.inputs["version"] == versions.KUBE_PROMETHEUS_STACK.version == "88.5.3"
    assert release.inputs["namespace"] == "monitoring"
    assert values(any_stack)["fullnameOverride"] == "kps"


def test_every_prometheus_has_its_own_cluster_label_and_it_is_no_replica_label() -> None:
    labels = {stack: values(rendered(stack))["prometheus"]["prometheusSpec"]["externalLabels"] for stack in STACKS}
    assert labels == {stack: {"cluster": stack} for stack in STACKS}  # C6: unique, equal to the stack
    for stack in STACKS:
        spec = values(rendered(stack))["prometheus"]["prometheusSpec"]
        # The operator's default replica label stays `prometheus_replica`; `cluster` is never one.
        assert spec.get("replicaExternalLabelName", "") in ("", "prometheus_replica")
        assert spec.get("replicaExternalLabelNameClear", False) is False


def test_sidecar_uploads_with_the_object_storage_secret(any_stack: Rendering) -> None:
    thanos = values(any_stack)["prometheus"]["prometheusSpec"]["thanos"]
    assert thanos["image"] == versions.pinned(f"quay.io/thanos/thanos:{versions.THANOS}")
    assert thanos["version"] == versions.THANOS == "v0.42.4"  # the operator needs it to build the sidecar
    assert thanos["objectStorageConfig"] == {
        "existingSecret": {"name": "thanos-objstore-sidecar", "key": "objstore.yml"}
    }
    secret = any_stack.k8s("Secret", "thanos-objstore-sidecar", "monitoring")
    assert any_stack.depends_on(any_stack.release(RELEASE), secret)


def test_no_ca_means_no_extra_mount() -> None:
    public = run_fixture(
        CENTRAL_STACK, {f"{PROJECT}:s3": json.dumps({"endpoint": "minio.example.org:443", "publicCa": True})}
    )
    spec = values(public)["prometheus"]["prometheusSpec"]
    assert "volumes" not in spec and "volumeMounts" not in spec["thanos"]
    edge = run_fixture(EDGE, {f"{PROJECT}:s3": json.dumps({"endpoint": "minio.example.org:443", "publicCa": True})})
    edge_spec = values(edge)["prometheus"]["prometheusSpec"]
    assert [v["name"] for v in edge_spec["volumes"]] == ["thanos-grpc-tls"], "the gRPC certificate only"


def test_a_configured_ca_is_mounted_where_the_objstore_config_expects_it() -> None:
    pem, _ = throwaway_ca("Another MinIO CA")
    s3 = raw_config(CENTRAL_STACK)["s3"] | {"caCertificate": pem}
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:s3": json.dumps(s3)})
    spec = values(stack)["prometheus"]["prometheusSpec"]
    (mount,) = spec["thanos"]["volumeMounts"]
    (volume,) = spec["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/etc/thanos/objstore", "readOnly": True}
    assert volume["secret"] == {"secretName": "thanos-objstore-sidecar"}
    objstore = unwrap(stack.k8s("Secret", "thanos-objstore-sidecar", "monitoring").inputs["stringData"])
    assert "ca_file: /etc/thanos/objstore/ca.crt" in objstore["objstore.yml"]
    assert objstore["ca.crt"] == pem


def test_local_retention_defaults_to_a_day_and_leaves_room_on_the_volume(any_stack: Rendering) -> None:
    spec = values(any_stack)["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "24h"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == storage_class(any_stack)
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    assert spec["retentionSize"] == f"{20 * 1024 * 85 // 100}MiB"


def version_at_least(tag: str, minimum: tuple[int, ...]) -> bool:
    numbers = tag.removeprefix("v").split("-")[0].split(".")
    return tuple(int(number) for number in numbers) >= minimum


@requires_reference
def test_local_compaction_is_left_to_the_operator_which_waits_for_the_upload(
    any_stack: Rendering, reference: Path
) -> None:
    """Operator v0.93 keeps Prometheus' local compaction with a sidecar that uploads, and delays it
    until the shipper has uploaded each 2h block, from Prometheus 3.9 and Thanos 0.41 on; forcing
    `disableCompaction` would only cost disk and local query speed."""
    spec = values(any_stack)["prometheus"]["prometheusSpec"]
    assert "disableCompaction" not in spec
    chart = yaml.safe_load((reference / "charts" / "kube-prometheus-stack-88.5.3.values.yaml").read_text())
    assert version_at_least(chart["prometheus"]["prometheusSpec"]["image"]["tag"], (3, 9))
    assert version_at_least(spec["thanos"]["version"], (0, 41))


def test_retention_comes_from_config() -> None:
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:monitoring": json.dumps({"prometheusRetention": "3d"})})
    assert values(stack)["prometheus"]["prometheusSpec"]["retention"] == "3d"


@pytest.mark.parametrize(
    ("monitoring", "words"),
    [
        ({"prometheusRetention": "5h"}, ["monitoring.prometheusRetention", "6h", "three"]),
        ({"prometheusRetention": "24 hours"}, ["monitoring.prometheusRetention", "duration"]),
        ({"prometheusStorageSize": "20GB"}, ["monitoring.prometheusStorageSize", "20Gi"]),
        ({"prometheusMemory": "2Gi", "prometheusMemoryLimit": "1Gi"}, ["prometheusMemoryLimit", "at least"]),
        ({"grafanaPassword": "x"}, ["monitoring.grafanaPassword", "not a known setting"]),
    ],
)
def test_bad_monitoring_config_is_rejected_with_the_key(monitoring: dict[str, str], words: list[str]) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw_config(EDGE, monitoring=monitoring), EDGE)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_six_hours_is_the_shortest_retention_accepted() -> None:
    settings = parse_settings(raw_config(EDGE, monitoring={"prometheusRetention": "6h"}), EDGE)
    assert settings.monitoring.prometheus_retention == "6h"


def test_edges_expose_the_sidecar_on_nodeport_30901_keeping_the_client_address(edge: Rendering) -> None:
    prometheus = values(edge)["prometheus"]
    assert prometheus["thanosServiceExternal"] == {
        "enabled": True,
        "type": "NodePort",
        "nodePort": 30901,
        "externalTrafficPolicy": "Local",
    }


def test_central_does_not_expose_its_sidecar_outside_the_cluster(central: Rendering) -> None:
    prometheus = values(central)["prometheus"]
    assert not prometheus.get("thanosServiceExternal", {}).get("enabled", False)
    assert prometheus["thanosService"]["enabled"] is True  # `kps-thanos-discovery`, Query's DNS SRV target


def test_sidecar_metrics_are_scraped_everywhere(any_stack: Rendering) -> None:
    prometheus = values(any_stack)["prometheus"]
    assert prometheus["thanosService"]["enabled"] is True  # the ServiceMonitor scrapes through it
    assert prometheus["thanosServiceMonitor"]["enabled"] is True


def test_persistence_is_on_the_clusters_storage_class(any_stack: Rendering) -> None:
    v = values(any_stack)
    alertmanager = v["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]
    assert alertmanager["storageClassName"] == storage_class(any_stack)
    assert v["grafana"]["persistence"]["enabled"] is True
    assert v["grafana"]["persistence"]["storageClassName"] == storage_class(any_stack)
    release = any_stack.release(RELEASE)
    if settings(any_stack).storage.longhorn:
        assert any_stack.depends_on(release, any_stack.release("longhorn"))
    assert release.protect


def test_crds_are_upgraded_with_the_chart_by_its_hook_job(any_stack: Rendering) -> None:
    crds = values(any_stack)["crds"]
    assert crds["enabled"] is True
    job = crds["upgradeJob"]
    assert job["enabled"] is True  # Helm (and so helm.v3.Release) never upgrades a chart's crds/
    assert job["image"]["busybox"]["tag"] not in ("", "latest")
    assert job["podLabels"] == CRD_UPGRADE_POD_LABELS


def chart_objects(stack: Rendering) -> list[KubeObject]:
    return [o for o in cluster(stack).objects if o.origin == f"helm release {RELEASE}"]


@requires_charts
def test_the_crd_upgrade_job_runs_before_every_upgrade_as_a_restricted_pod(any_stack: Rendering) -> None:
    (job,) = [o for o in chart_objects(any_stack) if o.kind == "Job" and o.name == f"{RELEASE}-crds-upgrade"]
    assert {"pre-install", "pre-upgrade"} <= set(job.hooks)
    template = job.obj["spec"]["template"]
    assert template["metadata"]["labels"] == CRD_UPGRADE_POD_LABELS  # what its NetworkPolicy selects
    (busybox,) = template["spec"]["initContainers"]
    assert (
        busybox["image"]
        .partition("@")[0]
        .endswith(f"/busybox:{values(any_stack)['crds']['upgradeJob']['image']['busybox']['tag']}")
    )
    (kubectl,) = template["spec"]["containers"]
    assert kubectl["args"][:3] == ["apply", "--server-side", "--force-conflicts"]
    pod_security = template["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    for item in (busybox, kubectl):
        assert item["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert item["securityContext"]["allowPrivilegeEscalation"] is False
    crds = {o.name for o in chart_objects(any_stack) if o.kind == "CustomResourceDefinition"}
    assert {"prometheuses.monitoring.coreos.com", "servicemonitors.monitoring.coreos.com"} <= crds


@requires_charts
def test_the_subcharts_are_those_of_88_5_3_and_node_exporter_has_its_own_namespace(any_stack: Rendering) -> None:
    charts = {
        o.obj["metadata"]["labels"].get("helm.sh/chart"): o.namespace
        for o in chart_objects(any_stack)
        if o.kind in ("Deployment", "DaemonSet")
    }
    assert charts["grafana-12.11.1"] == "monitoring"
    assert charts["kube-state-metrics-8.4.0"] == "monitoring"
    assert charts["prometheus-node-exporter-4.56.1"] == NODE_EXPORTER


# Every container the release runs with our values, and how many of it run at once.
CONTAINERS = {
    "prometheus.prometheusSpec.resources": 1,
    "prometheus.prometheusSpec.thanos.resources": 1,
    "prometheusOperator.prometheusConfigReloader.resources": 2,  # Prometheus and Alertmanager pods
    "alertmanager.alertmanagerSpec.resources": 1,
    "grafana.resources": 1,
    "grafana.sidecar.resources": 2,  # dashboards and datasources sidecars
    "prometheusOperator.resources": 1,
    "kube-state-metrics.resources": 1,
    "prometheus-node-exporter.resources": 1,
    "prometheusOperator.admissionWebhooks.patch.resources": 0,  # install-time Jobs only
    "crds.upgradeJob.resources": 0,  # a Helm hook Job before each install and upgrade
}


def test_every_container_has_requests_and_a_memory_limit(any_stack: Rendering) -> None:
    v = values(any_stack)
    for path in CONTAINERS:
        sized = at(v, path)
        assert sized["requests"]["cpu"] and sized["requests"]["memory"], path
        assert sized["limits"]["memory"], path
    assert v["grafana"]["initChownData"]["enabled"] is False  # the only container we would not size


@requires_charts
def test_every_container_the_chart_runs_is_sized(any_stack: Rendering) -> None:
    """Hooks and init containers included: 88.5.3 adds the CRD upgrade Job, Grafana 12 more init
    containers; none may run unsized on the single node."""
    workloads = [o for o in chart_objects(any_stack) if o.kind in ("Deployment", "StatefulSet", "DaemonSet", "Job")]
    assert workloads
    for o in workloads:
        spec = o.obj["spec"]["template"]["spec"]
        for item in [*spec.get("initContainers", []), *spec["containers"]]:
            sized = item.get("resources") or {}
            assert {"cpu", "memory"} <= set(sized.get("requests", {})), f"{o.describe()} {item['name']}"
            assert "memory" in sized.get("limits", {}), f"{o.describe()} {item['name']}"


@requires_charts
def test_grafana_takes_its_login_from_our_secret_and_the_chart_makes_none(any_stack: Rendering) -> None:
    """kube-prometheus-stack 79 dropped the default admin password; ours comes from `grafana-admin`."""
    objects = chart_objects(any_stack)
    assert not [o for o in objects if o.kind == "Secret" and "grafana" in o.name]
    (deployment,) = [o for o in objects if o.kind == "Deployment" and o.name == "kube-prometheus-stack-grafana"]
    (grafana,) = [c for c in deployment.obj["spec"]["template"]["spec"]["containers"] if c["name"] == "grafana"]
    env = {item["name"]: item.get("valueFrom", {}).get("secretKeyRef") for item in grafana["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == {"name": "grafana-admin", "key": "admin-password"}
    assert env["GF_SECURITY_ADMIN_USER"] == {"name": "grafana-admin", "key": "admin-user"}


def test_grafana_is_behind_ingress_with_a_generated_admin_password(any_stack: Rendering) -> None:
    grafana = values(any_stack)["grafana"]
    domain = settings(any_stack).domain
    assert grafana["ingress"]["enabled"] is True
    assert grafana["ingress"]["ingressClassName"] == "traefik"
    assert grafana["ingress"]["hosts"] == [f"grafana.{domain}"]
    assert "adminPassword" not in grafana
    admin = any_stack.k8s("Secret", grafana["admin"]["existingSecret"], "monitoring")
    data = admin.inputs["stringData"]
    assert isinstance(data, Secret)
    assert data.value[grafana["admin"]["passwordKey"]] == MOCK_PASSWORD
    assert data.value[grafana["admin"]["userKey"]] == "admin"
    assert any_stack.depends_on(any_stack.release(RELEASE), admin)
    assert isinstance(any_stack.outputs["grafanaAdminPassword"], Secret)
    assert any_stack.outputs["grafanaUrl"] == ui_url(any_stack, f"grafana.{domain}")
    assert grafana["ingress"]["tls"] == [{"hosts": [f"grafana.{domain}"]}]
    assert grafana["grafana.ini"]["server"]["root_url"] == ui_url(any_stack, f"grafana.{domain}")
    assert grafana["grafana.ini"]["security"]["cookie_secure"] is True


def datasources(stack: Rendering) -> list[dict[str, Any]]:
    """Grafana's datasources as the chart renders them: its own Prometheus first, then ours."""
    grafana = values(stack)["grafana"]
    sidecar = grafana.get("sidecar", {}).get("datasources", {})
    own = []
    if sidecar.get("defaultDatasourceEnabled", True):
        own.append({"name": "Prometheus", "isDefault": sidecar.get("isDefaultDatasource", True)})
    return own + grafana.get("additionalDataSources", [])


def test_central_grafana_defaults_to_thanos_and_keeps_the_local_prometheus(central: Rendering) -> None:
    sources = datasources(central)
    (default,) = [source for source in sources if source["isDefault"]]
    assert default["name"] == "Thanos"
    assert default["type"] == "prometheus"
    assert default["jsonData"]["prometheusType"] == "Thanos"
    frontend = central.k8s("Service", "thanos-query-frontend", "monitoring")
    port = frontend.inputs["spec"]["ports"][0]["port"]
    assert default["url"] == f"http://thanos-query-frontend.monitoring.svc:{port}"
    assert [source["name"] for source in sources] == ["Prometheus", "Thanos"]


def test_edge_grafana_shows_its_own_prometheus(edge: Rendering) -> None:
    (default,) = [source for source in datasources(edge) if source["isDefault"]]
    assert default["name"] == "Prometheus"
    assert "additionalDataSources" not in values(edge)["grafana"]


def test_ingress_controller_is_scraped_and_installed_after_the_servicemonitor_crd(any_stack: Rendering) -> None:
    ingress = any_stack.release("traefik")
    monitor = ingress.inputs["values"]["metrics"]["prometheus"]["serviceMonitor"]
    assert monitor["enabled"] is True
    assert monitor["additionalLabels"] == {"release": RELEASE}  # what kps' serviceMonitorSelector matches
    assert any_stack.depends_on(ingress, any_stack.release(RELEASE))
    # Longhorn no longer waits for the controller: its Ingress object can exist before it.
    if settings(any_stack).storage.longhorn:
        assert not any_stack.depends_on(any_stack.release("longhorn"), ingress)


def test_unreachable_control_plane_monitors_are_off(any_stack: Rendering) -> None:
    v = values(any_stack)
    for component in ("kubeEtcd", "kubeControllerManager", "kubeScheduler", "kubeProxy"):
        assert v[component]["enabled"] is False, component
    for group in ("etcd", "kubeControllerManager", "kubeSchedulerAlerting", "kubeProxy"):
        assert v["defaultRules"]["rules"][group] is False, group


# --- least privilege (issue 20, item 7) -------------------------------------------------------


def chart_object(stack: Rendering, kind: str, name: str) -> KubeObject:
    (found,) = [o for o in chart_objects(stack) if o.kind == kind and o.name == name]
    return found


def pod_spec(o: KubeObject) -> dict[str, Any]:
    return dict(o.obj["spec"]["template"]["spec"])


@requires_charts
def test_node_exporter_keeps_the_host_views_it_needs_and_nothing_else(any_stack: Rendering) -> None:
    """Host network and PID namespace, `/`, `/proc` and `/sys` read-only: what its collectors read.
    As `nobody`, without capabilities or privilege escalation, seccomp RuntimeDefault, no API token."""
    spec = pod_spec(chart_object(any_stack, "DaemonSet", "kube-prometheus-stack-prometheus-node-exporter"))
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert spec["automountServiceAccountToken"] is False
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65534
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    host_paths = {volume["name"]: volume["hostPath"]["path"] for volume in spec["volumes"] if "hostPath" in volume}
    assert sorted(host_paths.values()) == ["/", "/proc", "/sys"]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert all(mounts[name]["readOnly"] is True for name in host_paths)
    # The collectors read the host's files through the mounts the chart points them at.
    assert {"--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root"} <= set(container["args"])


@requires_charts
def test_kube_state_metrics_reads_no_secret(any_stack: Rendering) -> None:
    assert values(any_stack)["kube-state-metrics"]["collectorsExclude"] == ["secrets"]
    role = chart_object(any_stack, "ClusterRole", "kube-prometheus-stack-kube-state-metrics")
    assert not [rule for rule in role.obj["rules"] if "secrets" in rule.get("resources", [])]
    (container,) = pod_spec(chart_object(any_stack, "Deployment", "kube-prometheus-stack-kube-state-metrics"))[
        "containers"
    ]
    (resources,) = [arg for arg in container["args"] if arg.startswith("--resources=")]
    assert "secrets" not in resources.removeprefix("--resources=").split(",")
    assert "configmaps" in resources  # the other collectors stay


@requires_charts
def test_grafana_reads_configmaps_of_its_own_namespace_only(any_stack: Rendering) -> None:
    """No ClusterRole: our Role, bound in `monitoring` by the chart, lists ConfigMaps and nothing else,
    and the sidecars look only there, only at ConfigMaps."""
    objects = chart_objects(any_stack)
    assert not [o for o in objects if o.kind in ("ClusterRole", "ClusterRoleBinding") and "grafana" in o.name]
    assert not [o for o in objects if o.kind == "Role" and "grafana" in o.name]  # the chart's would add Secrets
    (binding,) = [o for o in objects if o.kind == "RoleBinding" and o.name == "kube-prometheus-stack-grafana"]
    assert binding.namespace == "monitoring"
    assert binding.obj["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": GRAFANA_SIDECAR_ROLE,
    }
    assert binding.obj["subjects"] == [
        {"kind": "ServiceAccount", "name": "kube-prometheus-stack-grafana", "namespace": "monitoring"}
    ]
    role = any_stack.k8s("Role", GRAFANA_SIDECAR_ROLE, "monitoring")
    assert role.inputs["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    assert any_stack.depends_on(any_stack.release(RELEASE), role)
    spec = pod_spec(chart_object(any_stack, "Deployment", "kube-prometheus-stack-grafana"))
    sidecars = [c for c in spec["containers"] if c["name"].startswith("grafana-sc-")]
    assert {c["name"] for c in sidecars} == {"grafana-sc-dashboard", "grafana-sc-datasources"}
    for sidecar in sidecars:
        env = {item["name"]: item.get("value") for item in sidecar["env"]}
        assert env["NAMESPACE"] == "monitoring", sidecar["name"]
        assert env["RESOURCE"] == "configmap", sidecar["name"]


@requires_charts
def test_every_dashboard_and_datasource_is_where_the_sidecars_look(any_stack: Rendering) -> None:
    """Namespaced discovery finds only what is in Grafana's namespace: every labelled object must be
    a ConfigMap there (the fleet dashboard, the chart's dashboards and datasources)."""
    labelled = [
        o
        for o in cluster(any_stack).applied()
        if {"grafana_dashboard", "grafana_datasource"} & set((o.obj.get("metadata") or {}).get("labels") or {})
    ]
    assert any(o.name == "kps-grafana-datasource" for o in labelled)
    assert any(o.kind == "ConfigMap" and o.origin == "ours" for o in labelled) == (
        settings(any_stack).role == "central"
    )
    for o in labelled:
        assert (o.kind, o.namespace) == ("ConfigMap", "monitoring"), o.describe()


@requires_charts
def test_grafana_runs_read_only_with_a_tmp_of_its_own_per_container(any_stack: Rendering) -> None:
    spec = pod_spec(chart_object(any_stack, "Deployment", "kube-prometheus-stack-grafana"))
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    tmp_volumes = []
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, container["name"]
        (tmp,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
        assert volumes[tmp["name"]]["emptyDir"]["sizeLimit"], container["name"]
        assert not tmp.get("readOnly"), container["name"]
        tmp_volumes.append(tmp["name"])
    assert len(set(tmp_volumes)) == len(tmp_volumes) == 3  # Grafana and both sidecars, each its own
    (grafana,) = [c for c in spec["containers"] if c["name"] == "grafana"]
    writable = {mount["mountPath"] for mount in grafana["volumeMounts"] if not mount.get("readOnly")}
    assert {"/var/lib/grafana", "/tmp"} <= writable
    ini = values(any_stack)["grafana"]["grafana.ini"]
    # Nothing downloaded into the read-only image at start (and no egress to the internet anyway).
    assert ini["plugins"] == {"preinstall_disabled": True, "preinstall_auto_update": False}
    assert ini["analytics"] == {
        "check_for_updates": False,
        "check_for_plugin_updates": False,
        "reporting_enabled": False,
    }


@requires_charts
def test_alertmanager_mounts_no_api_token(any_stack: Rendering) -> None:
    """Alertmanager and its config-reloader read mounted files only (v0.93.1's CRD has the field)."""
    assert values(any_stack)["alertmanager"]["alertmanagerSpec"]["automountServiceAccountToken"] is False
    (alertmanager,) = [o for o in chart_objects(any_stack) if o.kind == "Alertmanager"]
    assert alertmanager.obj["spec"]["automountServiceAccountToken"] is False


@requires_charts
def test_the_admission_certificate_jobs_run_as_nobody(any_stack: Rendering) -> None:
    jobs = [o for o in chart_objects(any_stack) if o.kind == "Job" and o.name.startswith("kps-admission-")]
    assert {o.name for o in jobs} == {"kps-admission-create", "kps-admission-patch"}
    for job in jobs:
        pod = pod_spec(job)["securityContext"]
        assert (pod["runAsUser"], pod["runAsGroup"], pod["runAsNonRoot"]) == (65534, 65534, True), job.name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
