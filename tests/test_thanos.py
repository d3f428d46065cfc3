"""Central Thanos v0.42: Query sees every cluster through its endpoint file, the Compactor keeps the
bucket bounded with one retention story, and no component gets Kubernetes API access."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import versions
from components.settings import PROJECT, SettingsError, parse_settings, quantity_bytes
from tests.conftest import (
    CENTRAL_STACK,
    EDGE,
    STACKS,
    raw_config,
    rendered,
    role_of,
    run_fixture,
    settings,
    with_section,
)
from tests.test_kube_prometheus_stack import CONTAINERS, at
from tests.test_kube_prometheus_stack import values as kps_values
from tools.engine import Rendering, Resource, Secret

WORKLOADS = {
    "thanos-query": "Deployment",
    "thanos-query-frontend": "Deployment",
    "thanos-store": "StatefulSet",
    "thanos-compactor": "StatefulSet",
}
THANOS_IMAGE = "quay.io/thanos/thanos:"


def workload(stack: Rendering, name: str) -> Resource:
    return stack.k8s(WORKLOADS[name], name, "monitoring")


def pod_spec(stack: Rendering, name: str) -> dict[str, Any]:
    return workload(stack, name).inputs["spec"]["template"]["spec"]


def container(stack: Rendering, name: str) -> dict[str, Any]:
    (only,) = pod_spec(stack, name)["containers"]
    return only


def args(stack: Rendering, name: str) -> list[str]:
    return container(stack, name)["args"]


def flag_values(arguments: list[str], flag: str) -> list[str]:
    return [arg.partition("=")[2] for arg in arguments if arg.partition("=")[0] == flag]


def thanos_containers(stack: Rendering) -> list[dict[str, Any]]:
    found = []
    for resource in stack.kubernetes_objects():
        template = resource.inputs.get("spec", {}).get("template", {})
        for item in template.get("spec", {}).get("containers", []):
            if str(item.get("image", "")).startswith(THANOS_IMAGE):
                found.append(item)
    return found


def test_only_central_runs_the_thanos_components() -> None:
    for stack in STACKS:
        present = {name for name in WORKLOADS if any(r.name == name for r in rendered(stack).kubernetes_objects())}
        assert present == (set(WORKLOADS) if role_of(stack) == "central" else set()), stack


def test_every_thanos_flag_exists_for_its_component(central: Rendering, reference: Path) -> None:
    containers = thanos_containers(central)
    assert len(containers) == len(WORKLOADS)
    for item in containers:
        version = versions.tag_of(item["image"])
        component, *flags = item["args"]
        known = set((reference / "thanos-flags" / f"thanos-{version}-{component}.flags").read_text().split())
        unknown = [arg for arg in flags if arg.partition("=")[0] not in known]
        assert not unknown, f"{component}: {unknown}"


def test_all_components_run_the_sidecars_version(central: Rendering) -> None:
    sidecar = kps_values(central)["prometheus"]["prometheusSpec"]["thanos"]["image"]
    assert {item["image"] for item in thanos_containers(central)} == {sidecar}
    assert sidecar == versions.pinned(f"{THANOS_IMAGE}{versions.THANOS}")


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_component_keeps_its_go_heap_under_its_memory_limit(central: Rendering, name: str) -> None:
    assert "--enable-auto-gomemlimit" in args(central, name)
    assert container(central, name)["resources"]["limits"]["memory"]


def endpoints_map(stack: Rendering) -> Resource:
    return stack.k8s("ConfigMap", "thanos-query-endpoints", "monitoring")


def endpoint_file(stack: Rendering) -> dict[str, Any]:
    """Query's `--endpoint.sd-config-file`, as Query reads it from its ConfigMap."""
    content = endpoints_map(stack).inputs["data"]["endpoints.yaml"]
    parsed = yaml.safe_load(content)
    assert set(parsed) == {"endpoints"}
    return parsed


def addresses(stack: Rendering) -> list[str]:
    return [entry["address"] for entry in endpoint_file(stack)["endpoints"]]


def test_query_reaches_local_sidecar_store_gateway_and_each_edge_nodeport(central: Rendering) -> None:
    assert addresses(central) == [
        "dnssrv+_grpc._tcp.kps-thanos-discovery.monitoring.svc.cluster.local",
        "dnssrv+_grpc._tcp.thanos-store.monitoring.svc.cluster.local",
        *(f"{edge.host}:30901" for edge in settings(central).edges),
    ]


def test_query_reads_its_endpoints_from_the_sd_config_file_only(central: Rendering) -> None:
    arguments = args(central, "thanos-query")
    # The flags are deprecated since 0.42 (`--store` is gone since 0.38) and carry no per-endpoint TLS.
    for legacy in ("--store", "--endpoint", "--endpoint-strict", "--endpoint-group", "--store.sd-files"):
        assert not flag_values(arguments, legacy), legacy
    assert not flag_values(arguments, "--endpoint.sd-config")  # the file, not its content on the command line
    (path,) = flag_values(arguments, "--endpoint.sd-config-file")
    directory, _, key = path.rpartition("/")
    (mount,) = [m for m in container(central, "thanos-query")["volumeMounts"] if m["mountPath"] == directory]
    assert mount["readOnly"] is True and "subPath" not in mount  # the kubelet keeps a whole directory current
    (volume,) = [v for v in pod_spec(central, "thanos-query")["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "thanos-query-endpoints"
    assert key in endpoints_map(central).inputs["data"]
    assert central.depends_on(workload(central, "thanos-query"), endpoints_map(central))


def test_every_endpoint_is_fanned_out_to_and_may_drop_out(central: Rendering) -> None:
    """Not strict (an edge that is down leaves the fan-out instead of holding queries up, and Thanos
    refuses strict DNS SD entries), not a group (each address is one StoreAPI, not replicas)."""
    for entry in endpoint_file(central)["endpoints"]:
        assert entry["strict"] is False and entry["group"] is False, entry
        assert set(entry) <= {"address", "strict", "group", "client_config"}, entry


def test_in_cluster_endpoints_use_dns_srv_and_edges_their_host_nodeport(central: Rendering) -> None:
    """Per-endpoint TLS (Thanos 0.42 `client_config`) applies to static addresses only: the edges'
    entries are static `<host>:30901`, the local sidecar and Store Gateway stay on DNS SRV."""
    in_cluster, edges = addresses(central)[:2], addresses(central)[2:]
    assert all(address.startswith("dnssrv+_grpc._tcp.") for address in in_cluster)
    assert edges == [f"{edge.host}:30901" for edge in settings(central).edges]
    assert not any(address.startswith(("dns+", "dnssrv+")) for address in edges)


def test_query_endpoints_follow_the_edges_in_config() -> None:
    edges = [
        {"name": EDGE, "host": "10.1.2.3", "domain": "a.example.lab"},
        {"name": "cluster-199", "host": "edge-199.example.lab", "address": "10.1.2.4", "domain": "b.example.lab"},
    ]
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:edges": json.dumps(edges)})
    assert addresses(stack)[2:] == ["10.1.2.3:30901", "edge-199.example.lab:30901"]


def checksum(stack: Rendering) -> str:
    return workload(stack, "thanos-query").inputs["spec"]["template"]["metadata"]["annotations"]["checksum/endpoints"]


def test_a_changed_endpoint_file_rolls_query(central: Rendering) -> None:
    """Thanos re-reads the file only every 5 minutes, after the kubelet's own sync delay: a change of
    the file changes Query's pod template, so the Deployment rolls (one at a time, under its PDB)."""
    content = endpoints_map(central).inputs["data"]["endpoints.yaml"]
    assert checksum(central) == hashlib.sha256(content.encode()).hexdigest()
    more = [
        *(edge.model_dump() for edge in settings(central).edges),
        {"name": "cluster-199", "host": "10.1.2.9", "domain": "c199.lab.test"},
    ]
    grown = run_fixture(CENTRAL_STACK, {f"{PROJECT}:edges": json.dumps(more)})
    assert checksum(grown) != checksum(central)
    assert pod_spec(grown, "thanos-query") == pod_spec(central, "thanos-query")  # only the file changed


def test_dns_srv_targets_are_headless_services_with_a_grpc_port(central: Rendering) -> None:
    store = central.k8s("Service", "thanos-store", "monitoring").inputs["spec"]
    assert store["clusterIP"] == "None"  # SRV records per pod
    assert {"name": "grpc", "port": 10901, "targetPort": "grpc"} in store["ports"]
    # The sidecar's Service is the chart's `thanosService`: headless by default, port name `grpc`.
    assert kps_values(central)["prometheus"]["thanosService"] == {"enabled": True}


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Secret):
        return strings(value.value)
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


CLUSTER_DNS = re.compile(r"(?<![a-z0-9-])([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local")


def test_no_name_of_another_clusters_dns_appears_anywhere() -> None:
    """A cluster's DNS resolves only its own Services (C5): every `svc.cluster.local` name we write
    is one of this stack's monitoring Services, and none mentions another cluster."""
    for stack in STACKS:
        rendering = rendered(stack)
        own = {r.metadata["name"] for r in rendering.kubernetes_objects() if r.kind == "Service"}
        own.add("kps-thanos-discovery")  # made by the kube-prometheus-stack chart
        others = [name for name in STACKS if name != stack]
        for resource in rendering.resources:
            for text in strings(resource.inputs):
                for service, namespace in CLUSTER_DNS.findall(text):
                    host = f"{service}.{namespace}"
                    assert not any(other in host or other[-3:] in host for other in others), f"{stack}: {host}"
                    if namespace == "monitoring":
                        assert service in own, f"{stack}: {resource.name} names {host}, not a Service here"


def test_cluster_is_never_a_replica_label(central: Rendering) -> None:
    assert flag_values(args(central, "thanos-query"), "--query.replica-label") == ["prometheus_replica"]
    for item in thanos_containers(central):
        for flag in ("--query.replica-label", "--deduplication.replica-label"):
            assert "cluster" not in flag_values(item["args"], flag)


def test_query_downsamples_automatically_and_tolerates_a_missing_edge(central: Rendering) -> None:
    arguments = args(central, "thanos-query")
    assert "--query.auto-downsampling" in arguments
    assert "--query.partial-response" in arguments


def test_query_runs_twice_with_a_disruption_budget(central: Rendering) -> None:
    query = workload(central, "thanos-query")
    assert query.inputs["spec"]["replicas"] == 2
    budget = central.k8s("PodDisruptionBudget", "thanos-query", "monitoring")
    assert budget.inputs["spec"]["minAvailable"] == 1
    pod_labels = query.inputs["spec"]["template"]["metadata"]["labels"]
    selector = budget.inputs["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


def test_query_replicas_come_from_config_and_never_drop_below_two() -> None:
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:thanos": json.dumps({"queryReplicas": 3})})
    assert workload(stack, "thanos-query").inputs["spec"]["replicas"] == 3
    with pytest.raises(SettingsError, match=r"thanos\.queryReplicas"):
        parse_settings(raw_config(CENTRAL_STACK, thanos={"queryReplicas": 1}), CENTRAL_STACK)


def test_query_frontend_splits_caches_and_forwards_to_query(central: Rendering) -> None:
    arguments = args(central, "thanos-query-frontend")
    assert flag_values(arguments, "--query-range.split-interval") == ["24h"]
    (cache,) = flag_values(arguments, "--query-range.response-cache-config")
    config = json.loads(cache)
    assert config["type"] == "IN-MEMORY"
    limit = container(central, "thanos-query-frontend")["resources"]["limits"]["memory"]
    assert quantity_bytes(config["config"]["max_size"].replace("MB", "Mi")) <= quantity_bytes(limit) // 2
    # A result that missed an unreachable edge must not be served forever (Thanos reads `0s` as forever).
    assert config["config"]["validity"] == settings(central).thanos.query_cache_validity == "1h"
    query = central.k8s("Service", "thanos-query", "monitoring").inputs["spec"]
    http = next(port["port"] for port in query["ports"] if port["name"] == "http")
    assert flag_values(arguments, "--query-frontend.downstream-url") == [f"http://thanos-query.monitoring.svc:{http}"]


def test_the_frontend_cache_validity_is_configurable_but_never_forever(central: Rendering) -> None:
    shorter = with_section(central.stack, "thanos", queryCacheValidity="10m")
    (cache,) = flag_values(args(shorter, "thanos-query-frontend"), "--query-range.response-cache-config")
    assert json.loads(cache)["config"]["validity"] == "10m"
    with pytest.raises(SettingsError, match=r"thanos\.queryCacheValidity: '0s' is shorter than 1m"):
        with_section(central.stack, "thanos", queryCacheValidity="0s")


def test_query_frontend_is_behind_ingress_with_a_login(central: Rendering) -> None:
    ingress = central.k8s("Ingress", "thanos-query-frontend", "monitoring").inputs
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == f"thanos.{settings(central).domain}"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "thanos-query-frontend", "port": {"name": "http"}}
    frontend_ports = central.k8s("Service", "thanos-query-frontend", "monitoring").inputs["spec"]["ports"]
    assert {"name": "http", "port": 9090, "targetPort": "http"} in frontend_ports
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    # Traefik's basic-auth Middleware, named `<namespace>-<name>@kubernetescrd`, reads the UI's Secret.
    assert annotations["traefik.ingress.kubernetes.io/router.middlewares"] == (
        "monitoring-thanos-ui-basic-auth@kubernetescrd"
    )
    middleware = central.k8s("Middleware", "thanos-ui-basic-auth", "monitoring")
    auth = central.k8s("Secret", middleware.inputs["spec"]["basicAuth"]["secret"], "monitoring")
    assert isinstance(auth.inputs["stringData"], Secret)
    assert set(auth.inputs["stringData"].value) == {"users"}  # the key Traefik's basicAuth reads
    assert isinstance(central.outputs["thanosUiPassword"], Secret)
    assert central.outputs["thanosUrl"] == f"https://thanos.{settings(central).domain}/"
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]]}]
    assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"


def objstore_file(stack: Rendering, name: str, secret: str) -> None:
    """The component reads `objstore.yml` from its own Secret, mounted as a file."""
    (path,) = flag_values(args(stack, name), "--objstore.config-file")
    directory, _, key = path.rpartition("/")
    (mount,) = [m for m in container(stack, name)["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in pod_spec(stack, name)["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret
    assert key == "objstore.yml"
    assert stack.depends_on(workload(stack, name), stack.k8s("Secret", secret, "monitoring"))


def data_volume(stack: Rendering, name: str) -> dict[str, Any]:
    (path,) = flag_values(args(stack, name), "--data-dir")
    (mount,) = [m for m in container(stack, name)["volumeMounts"] if m["mountPath"] == path]
    (claim,) = workload(stack, name).inputs["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"]
    assert stack.depends_on(workload(stack, name), stack.release("longhorn"))
    return claim["spec"]


def test_store_gateway_reads_its_own_secret_and_caches_within_its_limit(central: Rendering) -> None:
    objstore_file(central, "thanos-store", "thanos-objstore-store")
    claim = data_volume(central, "thanos-store")
    assert claim["storageClassName"] == "longhorn"
    (cache,) = flag_values(args(central, "thanos-store"), "--index-cache-size")
    (pool,) = flag_values(args(central, "thanos-store"), "--chunk-pool-size")
    limit = quantity_bytes(container(central, "thanos-store")["resources"]["limits"]["memory"])
    mib = 2**20  # Thanos' "MB" are MiB
    assert int(cache.removesuffix("MB")) * mib + int(pool.removesuffix("MB")) * mib < limit


def test_compactor_is_a_waiting_downsampling_singleton_with_explicit_retention(central: Rendering) -> None:
    compactor = workload(central, "thanos-compactor")
    assert compactor.kind == "StatefulSet" and compactor.inputs["spec"]["replicas"] == 1
    arguments = args(central, "thanos-compactor")
    assert "--wait" in arguments
    assert "--downsampling.disable" not in arguments
    assert flag_values(arguments, "--delete-delay") == ["48h"]
    thanos = settings(central).thanos
    assert flag_values(arguments, "--retention.resolution-raw") == [thanos.retention_raw]
    assert flag_values(arguments, "--retention.resolution-5m") == [thanos.retention_5m]
    assert flag_values(arguments, "--retention.resolution-1h") == [thanos.retention_1h]
    objstore_file(central, "thanos-compactor", "thanos-objstore-compactor")
    assert data_volume(central, "thanos-compactor")["storageClassName"] == "longhorn"


def days(duration: str) -> float:
    """A Thanos retention in days; `0d` (forever) is infinite."""
    hours = {"d": 24, "h": 1, "w": 168, "y": 8760}
    value = float(duration[:-1]) * hours[duration[-1]] / 24
    return value or float("inf")


def test_the_bucket_keeps_one_history_zoomed_in_only_recently(central: Rendering) -> None:
    """One story: the downsampled resolutions cover the same history, raw samples its recent part;
    a range older than the raw retention is still answered, from the 5m/1h data, by the frontend."""
    thanos = settings(central).thanos
    assert days(thanos.retention_raw) <= days(thanos.retention_5m) <= days(thanos.retention_1h)
    assert "--query-range.request-downsampled" in args(central, "thanos-query-frontend")
    assert "--query.auto-downsampling" in args(central, "thanos-query")


def test_a_180_day_history_with_30_days_of_raw_samples_is_what_the_compactor_runs() -> None:
    thanos = {"retentionRaw": "30d", "retention5m": "180d", "retention1h": "180d"}
    arguments = args(run_fixture(CENTRAL_STACK, {f"{PROJECT}:thanos": json.dumps(thanos)}), "thanos-compactor")
    assert flag_values(arguments, "--retention.resolution-raw") == ["30d"]
    assert flag_values(arguments, "--retention.resolution-5m") == ["180d"]
    assert flag_values(arguments, "--retention.resolution-1h") == ["180d"]


def test_compactor_retention_comes_from_config() -> None:
    thanos = {"retentionRaw": "14d", "retention5m": "60d", "retention1h": "0d"}
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:thanos": json.dumps(thanos)})
    arguments = args(stack, "thanos-compactor")
    assert flag_values(arguments, "--retention.resolution-raw") == ["14d"]
    assert flag_values(arguments, "--retention.resolution-5m") == ["60d"]
    assert flag_values(arguments, "--retention.resolution-1h") == ["0d"]


@pytest.mark.parametrize(
    ("thanos", "words"),
    [
        ({"retentionRaw": "39h"}, ["thanos.retentionRaw", "40h"]),
        ({"retentionRaw": "1d"}, ["thanos.retentionRaw", "40h", "0d keeps it forever"]),
        ({"retention5m": "9d"}, ["thanos.retention5m", "10d"]),
        ({"retention1h": "a year"}, ["thanos.retention1h", "duration"]),
        ({"storeIndexCacheSize": "600Mi"}, ["thanos.storeIndexCacheSize", "half", "thanos.storeMemoryLimit"]),
    ],
)
def test_bad_thanos_config_is_rejected_with_the_key(thanos: dict[str, str], words: list[str]) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw_config(CENTRAL_STACK, thanos=thanos), CENTRAL_STACK)
    for word in words:
        assert word in str(error.value)


def test_forever_and_the_shortest_useful_raw_retention_are_accepted() -> None:
    forever = {"retentionRaw": "0d", "retention5m": "0d", "retention1h": "0d"}
    for thanos in (forever, {"retentionRaw": "40h"}):
        settings = parse_settings(raw_config(CENTRAL_STACK, thanos=thanos), CENTRAL_STACK)
        assert settings.thanos.retention_raw == thanos["retentionRaw"]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_component_has_its_own_tokenless_account_and_a_restricted_container(central: Rendering, name: str) -> None:
    spec = pod_spec(central, name)
    account = central.k8s("ServiceAccount", spec["serviceAccountName"], "monitoring")
    assert spec["serviceAccountName"] == name
    assert account.inputs["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    security = container(central, name)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container(central, name)["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    assert quantity_bytes(resources["requests"]["memory"]) <= quantity_bytes(resources["limits"]["memory"])


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_component_is_served_and_scraped(central: Rendering, name: str) -> None:
    pod_labels = workload(central, name).inputs["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == name  # stable label for the NetworkPolicies
    service = central.k8s("Service", name, "monitoring")
    assert service.inputs["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in container(central, name)["ports"]}
    assert {p["targetPort"] for p in service.inputs["spec"]["ports"]} <= set(container_ports)
    assert container_ports["http"] == (9090 if name == "thanos-query-frontend" else 10902)
    if "grpc" in container_ports:
        assert container_ports["grpc"] == 10901
    monitor = central.k8s("ServiceMonitor", name, "monitoring")
    assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor.inputs["spec"]["selector"]["matchLabels"].items() <= service.inputs["metadata"]["labels"].items()
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == "http"
    assert central.depends_on(monitor, central.release("kube-prometheus-stack"))  # the CRD comes with it


def cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_central_monitoring_fits_its_node_budget(central: Rendering) -> None:
    """kube-prometheus-stack plus Thanos: at most 1.1 CPU and 6 GiB of requests on central."""
    cpus, memory = 0.0, 0
    chart = kps_values(central)
    for path, count in CONTAINERS.items():
        requests = at(chart, path)["requests"]
        cpus += cpu(requests["cpu"]) * count
        memory += quantity_bytes(requests["memory"]) * count
    for name in WORKLOADS:
        requests = container(central, name)["resources"]["requests"]
        replicas = workload(central, name).inputs["spec"]["replicas"]
        cpus += cpu(requests["cpu"]) * replicas
        memory += quantity_bytes(requests["memory"]) * replicas
    assert cpus <= 1.1
    assert memory <= 6 * 2**30
