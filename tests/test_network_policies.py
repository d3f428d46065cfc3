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
import ipaddress
from typing import Any

import pytest

from components import namespaces as ns
from components import opensearch, traefik
from tests.conftest import CENTRAL_STACK, STACKS, any_stack_name, rendered, requires_charts, run_fixture, settings
from tools.cluster import cluster
from tools.engine import Rendering, unwrap
from tools.reachability import Connectivity, Rule
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
    config = settings(rendered(stack))
    owned = ns.owned(longhorn=config.storage.longhorn, host_ports=config.ingress.service_type == "hostPort")
    assert set(owned) == {p["metadata"]["namespace"] for p in policies}
    for namespace in owned:
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


def ingress_backends(t: Topology) -> dict[str, set[int]]:
    """The backends Traefik routes to, as the README lists them (Query Frontend on central only)."""
    backends = {
        t.pod(network_flows.GRAFANA): {3000},
        t.pod(network_flows.OPENSEARCH): {9200},
    }
    if t.longhorn:
        backends[t.pod(network_flows.LONGHORN_UI)] = {8000}
    if t.settings.is_central:
        backends[t.pod(network_flows.FRONTEND)] = {9090}
    return backends


def is_address(endpoint: str) -> bool:
    """An address or address range of NCA's map (`10.20.0.10`, `0.0.0.0-10.20.0.9`), not `namespace/pod`."""
    try:
        ipaddress.ip_address(endpoint.split("-")[0].split("/")[0])
        return True
    except ValueError:
        return False


def through(connectivity: Connectivity, source: str | None = None, destination: str | None = None) -> list[Rule]:
    return [
        rule
        for rule in connectivity.rules
        if (source is None or rule.source == source) and (destination is None or rule.destination == destination)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_traefik_is_a_pod_its_namespaces_policies_select(stack: str) -> None:
    """Traefik is on the pod network, so its policies apply; they select it by the labels the chart gives it."""
    model = cluster(rendered(stack))
    (pod,) = [pod for pod in model.pods() if pod.namespace == ns.INGRESS]
    assert not pod.host_network
    assert (pod.namespace, pod.source.name) == network_flows.TRAEFIK
    policies = {
        p["metadata"]["name"]: p for p in policies_of(rendered(stack)) if p["metadata"]["namespace"] == ns.INGRESS
    }
    assert sorted(policies) == ["allow-dns", "default-deny", "traefik"]
    selector = policies["traefik"]["spec"]["podSelector"]["matchLabels"]
    assert selector == traefik.POD_LABELS and selector.items() <= pod.labels.items()
    assert policies["traefik"]["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("stack", STACKS)
def test_traefik_takes_in_exactly_the_world_on_its_web_ports_and_prometheus_on_its_metrics(stack: str) -> None:
    t = topology(stack)
    ingress = t.pod(network_flows.TRAEFIK)
    inbound = through(reach(stack), destination=ingress)
    from_pods = {rule.source: rule.ports for rule in inbound if not is_address(rule.source)}
    assert from_pods == {t.pod(network_flows.PROMETHEUS): frozenset({traefik.METRICS_PORT})}
    from_addresses = {rule.ports for rule in inbound if is_address(rule.source)}
    assert from_addresses == {frozenset({traefik.WEB_PORT, traefik.WEBSECURE_PORT})}
    # From anywhere: hostPort traffic keeps the client's address (portmap DNATs, no masquerade).
    for client in ("0.0.0.0", "10.1.2.3", "192.168.1.1", t.node, network_flows.PUBLIC, "255.255.255.255"):
        for port in (traefik.WEB_PORT, traefik.WEBSECURE_PORT):
            assert reach(stack).allows(client, ingress, port), (client, port)
        for port in (traefik.METRICS_PORT, traefik.PING_PORT, traefik.HTTP_PORT, traefik.HTTPS_PORT):
            assert not reach(stack).allows(client, ingress, port), (client, port)


@pytest.mark.parametrize("stack", STACKS)
def test_traefik_reaches_exactly_its_backends_the_api_server_and_dns(stack: str) -> None:
    t = topology(stack)
    outbound = {(rule.destination, rule.ports) for rule in through(reach(stack), source=t.pod(network_flows.TRAEFIK))}
    api = settings(rendered(stack)).api_server
    api_server = frozenset({api.port, 443})  # the API server's own port (minikube's 8443), and the Service's
    assert outbound == {
        *((backend, frozenset(ports)) for backend, ports in ingress_backends(t).items()),
        *((network_flows.first_address(cidr), api_server) for cidr in api.cidrs),
        (api.service_address, api_server),
        (network_flows.COREDNS.endpoint, frozenset({53})),
    }


@pytest.mark.parametrize("stack", STACKS)
def test_the_backends_admit_traefiks_pods_and_not_the_node_address(stack: str) -> None:
    t = topology(stack)
    for backend, ports in ingress_backends(t).items():
        admitted = {
            rule.source for rule in through(reach(stack), destination=backend) if rule.ports and rule.ports & ports
        }
        assert t.pod(network_flows.TRAEFIK) in admitted, backend
        assert network_flows.IMPOSTOR.endpoint not in admitted, backend  # a pod of `ingress` that is not Traefik
        for port in ports:
            assert not reach(stack).allows(t.node, backend, port), f"{backend}:{port} admits the node address"
    node_cidr = f"{t.node}/32"
    for policy in policies_of(rendered(stack)):
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if any(peer.get("ipBlock", {}).get("cidr") == node_cidr for peer in rule["from"]):
                assert not ports & {3000, 9090, 9200, 8000}, policy["metadata"]["name"]


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


@pytest.mark.parametrize("stack", STACKS)
def test_opensearch_reaches_nothing_on_the_internet_and_only_the_plugin_installer_reaches_public_https(
    stack: str,
) -> None:
    """repository-s3 comes from the plugin volume: OpenSearch itself has no internet egress. The
    installer Job that fills the volume fetches from artifacts.opensearch.org, whose addresses are not
    fixed: public addresses on 443 are its only flow out (DNS aside), and nothing may reach it."""
    t = topology(stack)
    search = t.pod(network_flows.OPENSEARCH)
    internet = [(network_flows.PUBLIC, 443), (network_flows.PUBLIC, 80), ("8.8.8.8", 443)]
    assert [flow for flow in internet if reach(stack).allows(search, *flow)] == []
    if settings(rendered(stack)).logging.image is not None:  # the operator's image brings the plugin
        assert not t.has((ns.LOGGING, opensearch.PLUGIN_INSTALLER))
        assert opensearch.PLUGIN_INSTALLER not in {p["metadata"]["name"] for p in policies_of(rendered(stack))}
        return
    installer = t.pod((ns.LOGGING, opensearch.PLUGIN_INSTALLER))
    assert reach(stack).allows(installer, network_flows.PUBLIC, 443)
    assert reach(stack).allows(installer, network_flows.COREDNS.endpoint, 53, "UDP")
    closed = [
        (network_flows.PUBLIC, 80),
        ("10.1.2.3", 443),  # private addresses: the cluster's hosts, MinIO
        ("192.168.1.1", 443),
        (t.s3, t.s3_port),
        (t.node, 8443),
        (search, opensearch.HTTP_PORT),
        (search, opensearch.TRANSPORT_PORT),
    ]
    assert [flow for flow in closed if reach(stack).allows(installer, *flow)] == []
    assert through(reach(stack), destination=installer) == [], "nothing reaches the installer"
