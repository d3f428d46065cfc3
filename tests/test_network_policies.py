"""NetworkPolicies: default deny everywhere, the flows the platform needs allowed, nothing else.

The rendered policies are evaluated by network-config-analyzer over the cluster as it would run:
the pods the charts really render from our values, the pods operators create (modelled), and our
own workloads (`tools/cluster.py`). The flows themselves, required and forbidden, are the
specification in `tools/validators/network_flows.py`; these tests show it holds on every stack
and that breaking a policy, or a label, is caught.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from components import namespaces as ns
from components import traefik
from tests.conftest import CENTRAL_STACK, STACKS, any_stack_name, rendered, requires_charts, run_fixture
from tools.cluster import cluster
from tools.engine import Rendering, unwrap
from tools.reachability import Connectivity
from tools.validators import network_flows
from tools.validators.network_flows import Flow, Topology

pytestmark = requires_charts


@functools.cache
def topology(stack: str) -> Topology:
    return network_flows.topology(rendered(stack))


@functools.cache
def reach(stack: str) -> Connectivity:
    return network_flows.connectivity(cluster(rendered(stack)))


def policies_of(stack: Rendering) -> list[dict[str, Any]]:
    return [unwrap(r.inputs) for r in stack.kubernetes_objects() if r.kind == "NetworkPolicy"]


def allowed(connectivity: Connectivity, flow: Flow) -> bool:
    return connectivity.allows(flow.source, flow.destination, flow.port, flow.protocol)


def with_policies(stack: str, policies: list[dict[str, Any]]) -> Connectivity:
    return network_flows.connectivity(cluster(rendered(stack)), policies)


@pytest.mark.parametrize("stack", STACKS)
def test_every_required_flow_is_open(stack: str) -> None:
    closed = [str(flow) for flow in network_flows.required_flows(topology(stack)) if not allowed(reach(stack), flow)]
    assert closed == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_forbidden_flow_is_closed(stack: str) -> None:
    opened = [str(flow) for flow in network_flows.forbidden_flows(topology(stack)) if allowed(reach(stack), flow)]
    assert opened == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_validator_finds_nothing_on_the_real_stacks(stack: str) -> None:
    assert network_flows.validate(rendered(stack)) == []


def test_dns_is_required_for_every_pod_that_is_not_on_the_host_network() -> None:
    t = topology(CENTRAL_STACK)
    dns_sources = {f.source for f in network_flows.required_flows(t) if f.port == 53 and f.protocol == "UDP"}
    assert dns_sources == {pod.endpoint for pod in t.pods}
    assert {pod.namespace for pod in t.pods} >= {ns.MONITORING, ns.LOGGING, ns.FLUENT_BIT, ns.LONGHORN}


@pytest.mark.parametrize("stack", STACKS)
def test_every_owned_namespace_has_a_default_deny_for_both_directions(stack: str) -> None:
    policies = policies_of(rendered(stack))
    for namespace in ns.ENFORCED_LEVEL:
        deny = [
            p for p in policies if p["metadata"] == {**p["metadata"], "name": "default-deny", "namespace": namespace}
        ]
        assert [p["spec"] for p in deny] == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}], namespace


def test_namespaces_are_selected_by_their_metadata_name_label() -> None:
    text = str(policies_of(rendered(CENTRAL_STACK)))
    assert "'kubernetes.io/metadata.name'" in text
    assert "{'name': 'kube-system'}" not in text  # a `name` label does not exist by default


def test_the_sidecar_is_reached_through_the_prometheus_pod() -> None:
    text = str(policies_of(rendered(CENTRAL_STACK)))
    assert "thanos-sidecar" not in text  # a sidecar is a container, not a pod


@pytest.mark.parametrize("stack", STACKS)
def test_the_ingress_namespace_has_no_pod_to_let_through(stack: str) -> None:
    """Traefik is on the host network (policies do not apply) and starts no other pod: no webhook jobs."""
    names = sorted(
        p["metadata"]["name"] for p in policies_of(rendered(stack)) if p["metadata"]["namespace"] == ns.INGRESS
    )
    assert names == ["allow-dns", "default-deny"]
    assert [
        pod for pod in cluster(rendered(stack)).pods() if pod.namespace == ns.INGRESS and not pod.host_network
    ] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_node_reaches_the_uis_and_prometheus_reaches_traefiks_metrics(stack: str) -> None:
    t = topology(stack)
    through_traefik = {
        network_flows.GRAFANA: 3000,
        network_flows.OPENSEARCH: 9200,
        network_flows.LONGHORN_UI: 8000,
        **({network_flows.FRONTEND: 9090} if t.settings.is_central else {}),
    }
    for workload, port in through_traefik.items():
        assert allowed(reach(stack), Flow(t.node, t.pod(workload), port, "TCP", "through Traefik")), workload
    scrape = Flow(t.pod(network_flows.PROMETHEUS), t.node, traefik.METRICS_PORT, "TCP", "scrape Traefik")
    assert allowed(reach(stack), scrape)


# --- breaking things is caught -------------------------------------------------------------


def test_removing_a_required_allow_closes_its_flow() -> None:
    policies = [p for p in policies_of(rendered(CENTRAL_STACK)) if p["metadata"]["name"] != "thanos-query"]
    edge = topology(CENTRAL_STACK).settings.edges[0]
    flow = Flow(topology(CENTRAL_STACK).pod(network_flows.QUERY), edge.ip, 30901, "TCP", "Query to an edge")
    assert allowed(reach(CENTRAL_STACK), flow)
    assert not allowed(with_policies(CENTRAL_STACK, policies), flow)


def test_a_policy_selecting_a_label_the_chart_does_not_set_is_caught() -> None:
    """What the rendered labels are for: a policy written for `app: grafana` selects no pod of the
    Grafana chart, whose pods carry `app.kubernetes.io/name: grafana`."""
    policies = copy.deepcopy(policies_of(rendered(CENTRAL_STACK)))
    grafana = next(p for p in policies if p["metadata"]["name"] == "grafana")
    grafana["spec"]["podSelector"] = {"matchLabels": {"app": "grafana"}}
    t = topology(CENTRAL_STACK)
    flow = Flow(t.pod(network_flows.GRAFANA), t.pod(network_flows.PROMETHEUS), 9090, "TCP", "Grafana queries")
    assert allowed(reach(CENTRAL_STACK), flow)
    assert not allowed(with_policies(CENTRAL_STACK, policies), flow)


def test_widening_an_egress_opens_a_forbidden_flow() -> None:
    policies = copy.deepcopy(policies_of(rendered(CENTRAL_STACK)))
    fluent_bit = next(p for p in policies if p["metadata"]["name"] == "fluent-bit")
    fluent_bit["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    t = topology(CENTRAL_STACK)
    flow = Flow(t.pod(network_flows.FLUENT_BIT), t.s3, t.s3_port, "TCP", "Fluent-bit to S3")
    assert not allowed(reach(CENTRAL_STACK), flow)
    assert allowed(with_policies(CENTRAL_STACK, policies), flow)


def test_opening_query_to_every_namespace_is_caught() -> None:
    policies = copy.deepcopy(policies_of(rendered(CENTRAL_STACK)))
    query = next(p for p in policies if p["metadata"]["name"] == "thanos-query")
    query["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}, "podSelector": {}})
    for source in policies:  # and some other namespace's pods allowed out to it
        if source["metadata"]["name"] == "opensearch":
            source["spec"]["egress"].append({"to": [{"namespaceSelector": {}}]})
    t = topology(CENTRAL_STACK)
    flow = Flow(t.pod(network_flows.OPENSEARCH), t.pod(network_flows.QUERY), 10902, "TCP", "OpenSearch to Query")
    assert not allowed(reach(CENTRAL_STACK), flow)
    assert allowed(with_policies(CENTRAL_STACK, policies), flow)


def test_an_edge_admits_its_sidecar_only_from_the_configured_central_address() -> None:
    stack = any_stack_name(role="edge")
    moved = run_fixture(stack, {"thanos-multi-cluster:centralAddress": "192.168.101.10"})
    t = network_flows.topology(moved)
    prometheus = t.pod(network_flows.PROMETHEUS)
    moved_reach = network_flows.connectivity(cluster(moved))
    assert moved_reach.allows("192.168.101.10", prometheus, 10901)
    assert not moved_reach.allows(topology(stack).settings.central_ip, prometheus, 10901)
