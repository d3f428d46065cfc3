"""NetworkPolicies: default deny everywhere, the flows of DESIGN section 2 allowed, nothing else.

The rendered policies are evaluated by network-config-analyzer over every pod the program runs:
our typed workloads with the labels of their pod templates, and the charts' pods with the labels
the pinned charts give them. Host-network pods (ingress-nginx, node-exporter) and the API server
are the node's address.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from components import namespaces as ns
from tests.conftest import CENTRAL_STACK, EDGE_STACKS, STACKS, rendered
from tests.reachability import Connectivity, PodModel, evaluate
from tools.engine import Rendering, unwrap

NODE = {"cluster-196": "192.168.101.196", "cluster-197": "192.168.101.197", "cluster-198": "192.168.101.198"}
S3 = "172.20.40.21"
PUBLIC = "151.101.1.1"
DNS = "kube-system/coredns-0"

# Pods the pinned charts run (release -> [(pod, labels)]), host-network pods left out.
CHART_PODS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "kube-prometheus-stack": [
        ("prometheus-0", {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "kps-prometheus"}),
        ("alertmanager-0", {"app.kubernetes.io/name": "alertmanager", "alertmanager": "kps-alertmanager"}),
        ("grafana-0", {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "kube-prometheus-stack"}),
        ("kube-state-metrics-0", {"app.kubernetes.io/name": "kube-state-metrics"}),
        ("operator-0", {"app": "kube-prometheus-stack-operator", "release": "kube-prometheus-stack"}),
        ("admission-create-0", {"app": "kube-prometheus-stack-admission-create"}),
        ("admission-patch-0", {"app": "kube-prometheus-stack-admission-patch"}),
    ],
    "opensearch": [
        ("opensearch-0", {"app.kubernetes.io/name": "opensearch", "app.kubernetes.io/instance": "opensearch"}),
    ],
    "fluent-bit": [
        ("fluent-bit-0", {"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": "fluent-bit"})
    ],
    "longhorn": [
        ("longhorn-manager-0", {"app": "longhorn-manager"}),
        ("longhorn-ui-0", {"app": "longhorn-ui"}),
        ("instance-manager-0", {"longhorn.io/component": "instance-manager"}),
        ("csi-attacher-0", {"app": "csi-attacher"}),
    ],
    "ingress-nginx": [("admission-create-0", {"app.kubernetes.io/component": "admission-webhook"})],
}

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def pods_of(stack: Rendering) -> list[PodModel]:
    pods = [PodModel("kube-system", "coredns-0", {"k8s-app": "kube-dns"})]
    for release in stack.helm_releases():
        for name, labels in CHART_PODS.get(release.inputs["name"], []):
            pods.append(PodModel(release.inputs["namespace"], name, labels))
    for workload in stack.kubernetes_objects():
        template = workload.inputs.get("spec", {}).get("template", {}) if workload.kind in WORKLOADS else {}
        if template and not template.get("spec", {}).get("hostNetwork"):
            labels = template["metadata"]["labels"]
            pods.append(PodModel(workload.metadata["namespace"], f"{workload.metadata['name']}-0", labels))
    return pods


def policies_of(stack: Rendering) -> list[dict[str, Any]]:
    return [unwrap(r.inputs) for r in stack.kubernetes_objects() if r.kind == "NetworkPolicy"]


def reach(stack: Rendering, policies: list[dict[str, Any]] | None = None) -> Connectivity:
    namespaces = [*ns.ENFORCED_LEVEL, "kube-system"]
    return evaluate(namespaces, pods_of(stack), policies if policies is not None else policies_of(stack))


@functools.cache
def connectivity(stack: str) -> Connectivity:
    return reach(rendered(stack))


def pod(stack: str, namespace: str, name: str) -> str:
    endpoint = f"{namespace}/{name}"
    assert endpoint in {p.endpoint for p in pods_of(rendered(stack))}, f"no pod {endpoint} in {stack}"
    return endpoint


PROMETHEUS = ("monitoring", "prometheus-0")
GRAFANA = ("monitoring", "grafana-0")
QUERY = ("monitoring", "thanos-query-0")
FRONTEND = ("monitoring", "thanos-query-frontend-0")
STORE = ("monitoring", "thanos-store-0")
COMPACTOR = ("monitoring", "thanos-compactor-0")
OPENSEARCH = ("logging", "opensearch-0")
FLUENT_BIT = ("logging", "fluent-bit-0")
LONGHORN_MANAGER = ("longhorn-system", "longhorn-manager-0")


def flows_every_cluster(stack: str) -> list[tuple[str, str, int, str]]:
    """(source, destination, port, protocol) that DESIGN section 2 requires on every cluster."""
    node = NODE[stack]

    def p(where: tuple[str, str]) -> str:
        return pod(stack, *where)

    return [
        # 1. DNS from every namespace we own
        *[
            (pod(stack, namespace, name), DNS, 53, "UDP")
            for namespace, name in (PROMETHEUS, OPENSEARCH, LONGHORN_MANAGER)
        ],
        (p(FLUENT_BIT), DNS, 53, "TCP"),
        # 2. ingress-nginx (the node) to the UIs
        (node, p(GRAFANA), 3000, "TCP"),
        (node, p(OPENSEARCH), 9200, "TCP"),
        (node, pod(stack, "longhorn-system", "longhorn-ui-0"), 8000, "TCP"),
        # 3. Prometheus to its scrape targets and Alertmanager
        (p(PROMETHEUS), node, 10250, "TCP"),  # kubelet
        (p(PROMETHEUS), node, 9100, "TCP"),  # node-exporter (host network)
        (p(PROMETHEUS), node, 10254, "TCP"),  # ingress-nginx metrics (host network)
        (p(PROMETHEUS), pod(stack, "monitoring", "kube-state-metrics-0"), 8080, "TCP"),
        (p(PROMETHEUS), pod(stack, "monitoring", "operator-0"), 10250, "TCP"),
        (p(PROMETHEUS), pod(stack, "monitoring", "alertmanager-0"), 9093, "TCP"),
        (p(PROMETHEUS), p(LONGHORN_MANAGER), 9500, "TCP"),
        (p(PROMETHEUS), p(FLUENT_BIT), 2020, "TCP"),
        # 4. the sidecar (in the Prometheus pod) uploads to S3
        (p(PROMETHEUS), S3, 30001, "TCP"),
        # 6. Grafana to the local Prometheus
        (p(GRAFANA), p(PROMETHEUS), 9090, "TCP"),
        # 7. logs in, snapshots out
        (p(FLUENT_BIT), p(OPENSEARCH), 9200, "TCP"),
        (p(OPENSEARCH), S3, 30001, "TCP"),
        # 8. Longhorn among itself and to S3
        (p(LONGHORN_MANAGER), pod(stack, "longhorn-system", "instance-manager-0"), 10000, "TCP"),
        (pod(stack, "longhorn-system", "instance-manager-0"), p(LONGHORN_MANAGER), 9500, "TCP"),
        (p(LONGHORN_MANAGER), S3, 30001, "TCP"),
        # 9. the API server (node address) calls the operator's webhook; controllers call the API
        (node, pod(stack, "monitoring", "operator-0"), 10250, "TCP"),
        (pod(stack, "monitoring", "operator-0"), node, 8443, "TCP"),
        (p(FLUENT_BIT), node, 8443, "TCP"),
        (p(LONGHORN_MANAGER), node, 8443, "TCP"),
    ]


def flows_central() -> list[tuple[str, str, int, str]]:
    stack = CENTRAL_STACK

    def p(where: tuple[str, str]) -> str:
        return pod(stack, *where)

    return [
        (NODE[stack], p(FRONTEND), 9090, "TCP"),  # 2. ingress to the Query Frontend
        (p(PROMETHEUS), p(QUERY), 10902, "TCP"),  # 3. Thanos components' metrics
        (p(PROMETHEUS), p(STORE), 10902, "TCP"),
        (p(PROMETHEUS), p(COMPACTOR), 10902, "TCP"),
        (p(QUERY), p(PROMETHEUS), 10901, "TCP"),  # 4. Query to the local sidecar, Store, edges
        (p(QUERY), p(STORE), 10901, "TCP"),
        (p(QUERY), NODE["cluster-197"], 30901, "TCP"),
        (p(QUERY), NODE["cluster-198"], 30901, "TCP"),
        (p(STORE), S3, 30001, "TCP"),  # 5.
        (p(COMPACTOR), S3, 30001, "TCP"),
        (p(FRONTEND), p(QUERY), 10902, "TCP"),
        (p(GRAFANA), p(FRONTEND), 9090, "TCP"),  # 6. central Grafana's default datasource
    ]


def flows_edge(stack: str) -> list[tuple[str, str, int, str]]:
    return [(NODE[CENTRAL_STACK], pod(stack, *PROMETHEUS), 10901, "TCP")]  # 4. central Query -> sidecar


def required_flows(stack: str) -> list[tuple[str, str, int, str]]:
    return flows_every_cluster(stack) + (flows_central() if stack == CENTRAL_STACK else flows_edge(stack))


def forbidden_flows(stack: str) -> list[tuple[str, str, int, str]]:
    """Flows that must stay closed."""
    prometheus, grafana = pod(stack, *PROMETHEUS), pod(stack, *GRAFANA)
    flows = [
        (pod(stack, *FLUENT_BIT), S3, 30001, "TCP"),  # fluent-bit never writes to S3
        (pod(stack, *FLUENT_BIT), PUBLIC, 443, "TCP"),
        (grafana, pod(stack, *OPENSEARCH), 9200, "TCP"),  # Grafana has no business with the logs
        (grafana, S3, 30001, "TCP"),
        (pod(stack, *OPENSEARCH), prometheus, 9090, "TCP"),  # only Grafana queries Prometheus
        (pod(stack, "monitoring", "alertmanager-0"), prometheus, 9090, "TCP"),
        (pod(stack, "monitoring", "kube-state-metrics-0"), prometheus, 9090, "TCP"),
        (pod(stack, *LONGHORN_MANAGER), prometheus, 9090, "TCP"),
        ("192.168.101.50", prometheus, 9090, "TCP"),  # nothing from outside either
        ("192.168.101.50", prometheus, 10901, "TCP"),
        (pod(stack, *OPENSEARCH), pod(stack, *LONGHORN_MANAGER), 9500, "TCP"),
        (pod(stack, *FLUENT_BIT), pod(stack, "kube-system", "coredns-0"), 9153, "TCP"),
    ]
    if stack == CENTRAL_STACK:
        query = pod(stack, *QUERY)
        flows += [
            (NODE["cluster-197"], query, 10902, "TCP"),  # an edge cannot reach central Query
            (NODE["cluster-198"], query, 10901, "TCP"),
            (pod(stack, *OPENSEARCH), query, 10902, "TCP"),  # no pod of another namespace reaches Query
            (pod(stack, *FLUENT_BIT), query, 10901, "TCP"),
            (pod(stack, *LONGHORN_MANAGER), query, 10902, "TCP"),
            (pod(stack, *QUERY), S3, 30001, "TCP"),  # Query reads S3 only through the Store Gateway
        ]
    else:
        other_edge = next(edge for edge in EDGE_STACKS if edge != stack)
        flows += [(NODE[other_edge], pod(stack, *PROMETHEUS), 10901, "TCP")]  # only central reaches the sidecar
    return flows


@pytest.mark.parametrize("stack", STACKS)
def test_every_flow_of_design_section_2_is_allowed(stack: str) -> None:
    closed = [flow for flow in required_flows(stack) if not connectivity(stack).allows(*flow)]
    assert closed == []


@pytest.mark.parametrize("stack", STACKS)
def test_flows_outside_the_design_are_denied(stack: str) -> None:
    opened = [flow for flow in forbidden_flows(stack) if connectivity(stack).allows(*flow)]
    assert opened == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_owned_namespace_has_a_default_deny_for_both_directions(stack: str) -> None:
    policies = policies_of(rendered(stack))
    for namespace in ns.ENFORCED_LEVEL:
        assert {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": namespace, "labels": policies[0]["metadata"]["labels"]},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        } in policies, namespace


def test_namespaces_are_selected_by_their_metadata_name_label(central: Rendering) -> None:
    text = str(policies_of(central))
    assert "'kubernetes.io/metadata.name'" in text
    assert "{'name': 'kube-system'}" not in text  # C13


def test_the_sidecar_is_reached_through_the_prometheus_pod(central: Rendering) -> None:
    text = str(policies_of(central))
    assert "thanos-sidecar" not in text  # C13: a sidecar is a container, not a pod


def test_removing_a_required_allow_closes_its_flow(central: Rendering) -> None:
    policies = [p for p in policies_of(central) if p["metadata"]["name"] != "thanos-query"]
    flow = (pod(CENTRAL_STACK, *QUERY), NODE["cluster-197"], 30901, "TCP")
    assert connectivity(CENTRAL_STACK).allows(*flow)
    assert not reach(central, policies).allows(*flow)


def test_widening_a_deny_opens_a_forbidden_flow(central: Rendering) -> None:
    policies = copy.deepcopy(policies_of(central))
    fluent_bit = next(p for p in policies if p["metadata"]["name"] == "fluent-bit")
    fluent_bit["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})  # egress anywhere
    flow = (pod(CENTRAL_STACK, *FLUENT_BIT), S3, 30001, "TCP")
    assert not connectivity(CENTRAL_STACK).allows(*flow)
    assert reach(central, policies).allows(*flow)


def test_opening_query_to_every_namespace_is_caught(central: Rendering) -> None:
    policies = copy.deepcopy(policies_of(central))
    query = next(p for p in policies if p["metadata"]["name"] == "thanos-query")
    query["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}, "podSelector": {}})
    for source in policies:  # and some other namespace's pods allowed out to it
        if source["metadata"]["name"] == "opensearch":
            source["spec"]["egress"].append({"to": [{"namespaceSelector": {}}]})
    flow = (pod(CENTRAL_STACK, *OPENSEARCH), pod(CENTRAL_STACK, *QUERY), 10902, "TCP")
    assert not connectivity(CENTRAL_STACK).allows(*flow)
    assert reach(central, policies).allows(*flow)


def test_edges_allow_the_sidecar_only_to_the_configured_central_address() -> None:
    from tools.engine import run_stack

    moved = run_stack("cluster-197", {"thanos-multi-cluster:centralAddress": "192.168.101.10"})
    moved_reach = reach(moved)
    prometheus = pod("cluster-197", *PROMETHEUS)
    assert moved_reach.allows("192.168.101.10", prometheus, 10901)
    assert not moved_reach.allows(NODE[CENTRAL_STACK], prometheus, 10901)
