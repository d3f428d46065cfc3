"""Every component with metrics is scraped: each ServiceMonitor, ours or a chart's, selects a Service
that exists in the rendered cluster, on a port that Service has, in front of a pod that serves it;
and each gets the `job` our alerts and dashboard read."""

from __future__ import annotations

from typing import Any

import pytest

from components import opensearch_exporter, thanos
from components.kube_prometheus_stack import SIDECAR_JOB
from tests.conftest import requires_charts
from tools.cluster import Cluster, KubeObject, Pod, cluster
from tools.engine import Rendering, unwrap
from tools.validators.common import lookup

EVERY_CLUSTER = {SIDECAR_JOB, "traefik-metrics", "fluent-bit", "longhorn-backend", opensearch_exporter.SERVICE}
"""Jobs of the components with metrics on every cluster (besides kube-prometheus-stack's own)."""
CENTRAL_ONLY = {thanos.QUERY, thanos.QUERY_FRONTEND, thanos.STORE, thanos.COMPACTOR}
NOT_RENDERED = {
    "kps-apiserver": "selects default/kubernetes, the API server's own Service",
    "kps-kubelet": "selects kube-system/kps-kubelet, which the operator creates and keeps up to date",
}
"""ServiceMonitors whose Service exists only in the running cluster (nothing renders it)."""


def service_monitors(model: Cluster) -> list[KubeObject]:
    return model.of_kind("ServiceMonitor")


def selected_services(model: Cluster, monitor: KubeObject) -> list[KubeObject]:
    spec = unwrap(monitor.obj)["spec"]
    names = lookup(spec, "namespaceSelector.matchNames") or [monitor.namespace]
    wanted = (lookup(spec, "selector.matchLabels") or {}).items()
    return [
        service
        for service in model.of_kind("Service")
        if service.namespace in names and wanted <= (lookup(service.obj, "metadata.labels") or {}).items()
    ]


def job_of(monitor: KubeObject, service: KubeObject, endpoint: dict[str, Any]) -> str:
    """The `job` Prometheus gives the target, as prometheus-operator builds the scrape config: the
    Service's name, or the value of its `jobLabel` label when it has one, then our relabelings."""
    job = service.name
    job_label = lookup(monitor.obj, "spec.jobLabel")
    labels = lookup(service.obj, "metadata.labels") or {}
    if job_label and labels.get(job_label):
        job = labels[job_label]
    for relabeling in endpoint.get("relabelings") or []:
        if relabeling.get("targetLabel") == "job" and relabeling.get("action", "replace") == "replace":
            job = relabeling["replacement"]
    return str(job)


def serving_pods(model: Cluster, service: KubeObject) -> list[Pod]:
    selector = (lookup(service.obj, "spec.selector") or {}).items()
    return [pod for pod in model.pods() if pod.namespace == service.namespace and selector <= pod.labels.items()]


def pod_serves(pod: Pod, port: Any) -> bool:
    """True when a container of the pod declares `port` (a number or a port name)."""
    return any(
        declared.get("name") == port or declared.get("containerPort") == port for _, declared in pod.container_ports()
    )


def scrape_targets(model: Cluster) -> list[tuple[KubeObject, KubeObject, dict[str, Any]]]:
    """(ServiceMonitor, Service, endpoint) for every endpoint of every Service a monitor selects."""
    return [
        (monitor, service, endpoint)
        for monitor in service_monitors(model)
        for service in selected_services(model, monitor)
        for endpoint in lookup(unwrap(monitor.obj), "spec.endpoints") or []
    ]


def service_monitor_jobs(stack: Rendering) -> set[str]:
    return {job_of(monitor, service, endpoint) for monitor, service, endpoint in scrape_targets(cluster(stack))}


@requires_charts
def test_every_service_monitor_selects_a_service_with_its_port_in_front_of_a_pod_serving_it(
    any_stack: Rendering,
) -> None:
    model = cluster(any_stack)
    assert not model.gaps
    for monitor in service_monitors(model):
        services = selected_services(model, monitor)
        if monitor.name in NOT_RENDERED:
            assert not services
            continue
        assert services, f"{monitor.describe()} selects no Service"
        for service in services:
            ports = lookup(service.obj, "spec.ports") or []
            for endpoint in lookup(unwrap(monitor.obj), "spec.endpoints") or []:
                if "port" in endpoint:
                    (port,) = [p for p in ports if p.get("name") == endpoint["port"]] or [None]
                    assert port is not None, (
                        f"{monitor.describe()}: {service.describe()} has no port {endpoint['port']}"
                    )
                    target = port.get("targetPort", port["port"])
                else:  # Traefik's chart names the pod's port (`targetPort`)
                    target = endpoint["targetPort"]
                if lookup(service.obj, "spec.selector") is None or service.namespace == "kube-system":
                    continue  # hand-made endpoints (kubelet, API server) or Minikube's own pods (CoreDNS)
                pods = serving_pods(model, service)
                assert pods, f"{service.describe()} selects no pod"
                assert any(pod_serves(pod, target) for pod in pods), (
                    f"{monitor.describe()}: no pod behind {service.describe()} serves port {target}"
                )


@requires_charts
@pytest.mark.parametrize("role", ["central", "edge"])
def test_every_component_with_metrics_is_scraped_under_the_job_the_alerts_read(
    role: str, central: Rendering, edge: Rendering
) -> None:
    stack = central if role == "central" else edge
    expected = EVERY_CLUSTER | (CENTRAL_ONLY if role == "central" else set())
    assert expected <= service_monitor_jobs(stack)
    if role == "edge":
        assert not CENTRAL_ONLY & service_monitor_jobs(stack)
