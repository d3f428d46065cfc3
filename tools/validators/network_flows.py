"""The NetworkPolicies allow every flow the platform needs, and none it must not have.

Evaluated by np-guard's network-config-analyzer (`tools.reachability`) over the cluster as it
would run (`tools.cluster`): every pod with the labels its chart or operator really gives it,
every NetworkPolicy we create, the namespaces with their `kubernetes.io/metadata.name` label.
Host-network pods (node-exporter) and the API server are the node's address: NetworkPolicies
never apply to them, and a node always reaches its own pods. The ingress controller is a pod like
any other (its hostPorts bring the world to it with the clients' own addresses), and `IMPOSTOR`,
a pod of its namespace without its labels, shows that the backends admit Traefik, not the
namespace. A pod's traffic to itself (Prometheus scraping its own sidecar) never leaves its
network namespace, so no policy sees it either, and it is not listed.

The flows name pods by the workload that runs them (namespace and workload name as the charts and
our components name them), not by labels: a policy that selects a label the pod does not carry is
exactly what this check is for. `required_flows` and `forbidden_flows` are the specification.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from components import (
    alertmanager,
    fluent_bit,
    kube_prometheus_stack,
    longhorn,
    network_policies,
    opensearch,
    thanos,
    traefik,
)
from components import namespaces as ns
from components.minikube_node import KUBELET_PORT
from components.settings import Settings, host_cidr, settings_of
from tools.cluster import Cluster, cluster
from tools.engine import PROJECT, Rendering, unwrap
from tools.reachability import Connectivity, PodModel, evaluate
from tools.validators.common import Finding

NAME = "network-flows"
NEEDS_REFERENCE = True

KUBE_SYSTEM = "kube-system"
COREDNS = PodModel(KUBE_SYSTEM, "coredns-0", {"k8s-app": "kube-dns"})
"""CoreDNS as Minikube runs it (not ours, so not rendered)."""
COREDNS_METRICS_PORT = network_policies.COREDNS_METRICS_PORT
OUTSIDER = "192.0.2.10"
"""A host outside the topology (TEST-NET-1, never assigned)."""
PUBLIC = "198.51.100.7"
"""An address on the internet as the policies see it (not private)."""
IMPOSTOR = PodModel(ns.INGRESS, "impostor-0", {"app.kubernetes.io/name": "impostor"})
"""A pod in Traefik's namespace that is not Traefik (modelled, never rendered): it reaches nothing."""


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    port: int
    protocol: str
    why: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination}:{self.port}/{self.protocol} ({self.why})"


# The workloads the flows talk about: (namespace, workload name).
PROMETHEUS = (ns.MONITORING, f"prometheus-{kube_prometheus_stack.PROMETHEUS}")
ALERTMANAGER = (ns.MONITORING, f"alertmanager-{kube_prometheus_stack.FULLNAME}-alertmanager")
GRAFANA = (ns.MONITORING, kube_prometheus_stack.GRAFANA_SERVICE)
KUBE_STATE_METRICS = (ns.MONITORING, f"{kube_prometheus_stack.RELEASE}-kube-state-metrics")
OPERATOR = (ns.MONITORING, f"{kube_prometheus_stack.FULLNAME}-operator")
QUERY = (ns.MONITORING, thanos.QUERY)
FRONTEND = (ns.MONITORING, thanos.QUERY_FRONTEND)
STORE = (ns.MONITORING, thanos.STORE)
COMPACTOR = (ns.MONITORING, thanos.COMPACTOR)
OPENSEARCH = (ns.LOGGING, opensearch.SERVICE)
FLUENT_BIT = (ns.FLUENT_BIT, fluent_bit.RELEASE)
LONGHORN_MANAGER = (ns.LONGHORN, "longhorn-manager")
LONGHORN_UI = (ns.LONGHORN, "longhorn-ui")
INSTANCE_MANAGER = (ns.LONGHORN, "instance-manager")
TRAEFIK = (ns.INGRESS, traefik.RELEASE)


def first_address(cidr: str) -> str:
    """An address inside a block: the block's own for a single address, else its first host."""
    network = ipaddress.ip_network(cidr)
    return str(network.network_address if network.num_addresses == 1 else network.network_address + 1)


class Topology:
    """Endpoints of one stack's cluster: pods by workload, and the addresses around it."""

    def __init__(self, model: Cluster, settings: Settings) -> None:
        self.settings = settings
        self.pods = [pod for pod in model.pods() if not pod.host_network]
        self.node = first_address(settings.node_cidrs[0])
        self.api = first_address(settings.api_server.cidrs[0])
        self.api_port = settings.api_server.port
        self.longhorn = settings.storage.longhorn
        s3 = settings.s3
        self.s3 = s3.address or PUBLIC
        self.s3_port = s3.port

    def pod(self, workload: tuple[str, str]) -> str:
        """The endpoint of a workload's pod; a missing workload is a finding of its own (KeyError)."""
        namespace, name = workload
        for pod in self.pods:
            if pod.namespace == namespace and pod.source.name == name:
                return pod.endpoint
        raise KeyError(f"{namespace}/{name}")

    def has(self, workload: tuple[str, str]) -> bool:
        try:
            self.pod(workload)
            return True
        except KeyError:
            return False


def required_flows(t: Topology) -> list[Flow]:
    """Every flow the platform needs on this stack's cluster."""
    kps, node, s3, s3_port = kube_prometheus_stack, t.node, t.s3, t.s3_port
    flows = [Flow(pod.endpoint, COREDNS.endpoint, 53, "UDP", "DNS") for pod in t.pods]
    flows += [Flow(pod.endpoint, COREDNS.endpoint, 53, "TCP", "DNS over TCP") for pod in t.pods]
    prometheus, ingress = t.pod(PROMETHEUS), t.pod(TRAEFIK)
    flows += [
        # anyone to Traefik's web ports (the host's 80/443 through hostPorts, the client's address kept)
        *(
            Flow(client, ingress, port, "TCP", "a client reaches Traefik through the host's 80/443")
            for client in (PUBLIC, OUTSIDER, node)
            for port in (traefik.WEB_PORT, traefik.WEBSECURE_PORT)
        ),
        # Traefik to the UIs and APIs behind it
        Flow(ingress, t.pod(GRAFANA), kps.GRAFANA_PORT, "TCP", "ingress to Grafana"),
        Flow(ingress, t.pod(OPENSEARCH), opensearch.HTTP_PORT, "TCP", "ingress to OpenSearch"),
        # Prometheus scrapes
        Flow(prometheus, node, KUBELET_PORT, "TCP", "scrape kubelet"),
        Flow(prometheus, node, kps.NODE_EXPORTER_PORT, "TCP", "scrape node-exporter (host network)"),
        Flow(prometheus, ingress, traefik.METRICS_PORT, "TCP", "scrape Traefik"),
        Flow(prometheus, t.api, t.api_port, "TCP", "scrape the API server"),
        Flow(prometheus, t.pod(KUBE_STATE_METRICS), kps.KUBE_STATE_METRICS_PORT, "TCP", "scrape kube-state-metrics"),
        Flow(prometheus, t.pod(OPERATOR), kps.OPERATOR_PORT, "TCP", "scrape the operator"),
        Flow(prometheus, t.pod(ALERTMANAGER), kps.ALERTMANAGER_PORT, "TCP", "send alerts"),
        Flow(prometheus, t.pod(ALERTMANAGER), kps.CONFIG_RELOADER_PORT, "TCP", "scrape Alertmanager's reloader"),
        Flow(prometheus, t.pod(GRAFANA), kps.GRAFANA_PORT, "TCP", "scrape Grafana"),
        Flow(prometheus, t.pod(FLUENT_BIT), fluent_bit.METRICS_PORT, "TCP", "scrape Fluent-bit"),
        Flow(prometheus, COREDNS.endpoint, COREDNS_METRICS_PORT, "TCP", "scrape CoreDNS"),
        # object storage
        Flow(prometheus, s3, s3_port, "TCP", "the sidecar uploads blocks"),
        Flow(t.pod(OPENSEARCH), s3, s3_port, "TCP", "OpenSearch snapshots"),
        # Grafana's datasources
        Flow(t.pod(GRAFANA), prometheus, kps.PROMETHEUS_PORT, "TCP", "Grafana queries Prometheus"),
        Flow(t.pod(GRAFANA), t.pod(ALERTMANAGER), kps.ALERTMANAGER_PORT, "TCP", "Grafana's Alertmanager datasource"),
        # logs
        Flow(t.pod(FLUENT_BIT), t.pod(OPENSEARCH), opensearch.HTTP_PORT, "TCP", "Fluent-bit ships logs"),
        Flow(prometheus, t.pod(OPENSEARCH), opensearch.EXPORTER_PORT, "TCP", "scrape the snapshot exporter"),
        # the API server calls webhooks; controllers call the API server
        Flow(node, t.pod(OPERATOR), kps.OPERATOR_PORT, "TCP", "the operator's admission webhook"),
    ]
    flows += _longhorn_flows(t) if t.longhorn else []
    flows += [
        Flow(t.pod(ALERTMANAGER), receiver_address(cidr), port, "TCP", "Alertmanager notifies a receiver")
        for cidr, port in alertmanager.egress(t.settings.alerting)
    ]
    for controller in (OPERATOR, KUBE_STATE_METRICS, GRAFANA, FLUENT_BIT, TRAEFIK):
        flows.append(Flow(t.pod(controller), t.api, t.api_port, "TCP", "controller to the API server"))
    flows += [
        Flow(pod.endpoint, t.api, t.api_port, "TCP", "Helm hook Job to the API server")
        for pod in t.pods
        if pod.source.hook
    ]
    return flows + (_central_flows(t) if t.settings.is_central else _edge_flows(t))


def _longhorn_flows(t: Topology) -> list[Flow]:
    manager, instance_manager = t.pod(LONGHORN_MANAGER), t.pod(INSTANCE_MANAGER)
    return [
        Flow(t.pod(TRAEFIK), t.pod(LONGHORN_UI), longhorn.UI_PORT, "TCP", "ingress to the Longhorn UI"),
        Flow(t.pod(PROMETHEUS), manager, longhorn.MANAGER_PORT, "TCP", "scrape Longhorn"),
        Flow(manager, t.s3, t.s3_port, "TCP", "Longhorn backups"),
        Flow(manager, instance_manager, 10000, "TCP", "manager to instance manager"),
        Flow(instance_manager, manager, longhorn.MANAGER_PORT, "TCP", "instance manager to manager"),
        Flow(t.node, manager, longhorn.WEBHOOK_PORTS[0], "TCP", "Longhorn's webhooks"),
        Flow(manager, t.api, t.api_port, "TCP", "controller to the API server"),
    ]


def receiver_address(cidr: str) -> str:
    """An address inside a receiver's block (its first), to check the flow with."""
    return str(ipaddress.ip_network(cidr).network_address)


def _unconfigured(t: Topology, address: str, port: int) -> bool:
    """True when no receiver's egress covers `address:port` (so Alertmanager must not reach it)."""
    return not any(
        ipaddress.ip_address(address) in ipaddress.ip_network(cidr) and port == allowed
        for cidr, allowed in alertmanager.egress(t.settings.alerting)
    )


def _central_flows(t: Topology) -> list[Flow]:
    prometheus, query, s3 = t.pod(PROMETHEUS), t.pod(QUERY), t.s3
    flows = [
        Flow(t.pod(TRAEFIK), t.pod(FRONTEND), thanos.FRONTEND_PORT, "TCP", "ingress to the Query Frontend"),
        Flow(prometheus, query, thanos.HTTP_PORT, "TCP", "scrape Query"),
        Flow(prometheus, t.pod(STORE), thanos.HTTP_PORT, "TCP", "scrape the Store Gateway"),
        Flow(prometheus, t.pod(COMPACTOR), thanos.HTTP_PORT, "TCP", "scrape the Compactor"),
        Flow(prometheus, t.pod(FRONTEND), thanos.FRONTEND_PORT, "TCP", "scrape the Query Frontend"),
        Flow(query, prometheus, kube_prometheus_stack.SIDECAR_GRPC_PORT, "TCP", "Query to the local sidecar"),
        Flow(query, t.pod(STORE), thanos.GRPC_PORT, "TCP", "Query to the Store Gateway"),
        Flow(t.pod(STORE), s3, t.s3_port, "TCP", "the Store Gateway reads blocks"),
        Flow(t.pod(COMPACTOR), s3, t.s3_port, "TCP", "the Compactor compacts blocks"),
        Flow(t.pod(FRONTEND), query, thanos.HTTP_PORT, "TCP", "the Frontend asks Query"),
        Flow(t.pod(GRAFANA), t.pod(FRONTEND), thanos.FRONTEND_PORT, "TCP", "central Grafana's Thanos datasource"),
    ]
    flows += [
        Flow(query, edge.ip, edge.sidecar_port, "TCP", f"Query to {edge.name}'s sidecar") for edge in t.settings.edges
    ]
    return flows


def _edge_flows(t: Topology) -> list[Flow]:
    sidecar = kube_prometheus_stack.SIDECAR_GRPC_PORT
    central = first_address(host_cidr(t.settings.central_ip))
    return [Flow(central, t.pod(PROMETHEUS), sidecar, "TCP", "central Query to this sidecar")]


def forbidden_flows(t: Topology) -> list[Flow]:
    """Flows that must stay closed."""
    kps = kube_prometheus_stack
    prometheus, grafana = t.pod(PROMETHEUS), t.pod(GRAFANA)
    flows = [
        Flow(t.pod(FLUENT_BIT), t.s3, t.s3_port, "TCP", "Fluent-bit never writes to object storage"),
        Flow(t.pod(FLUENT_BIT), PUBLIC, 443, "TCP", "Fluent-bit has no business on the internet"),
        Flow(grafana, t.pod(OPENSEARCH), opensearch.HTTP_PORT, "TCP", "Grafana does not read the logs"),
        Flow(grafana, t.s3, t.s3_port, "TCP", "Grafana does not touch object storage"),
        Flow(OUTSIDER, prometheus, kps.PROMETHEUS_PORT, "TCP", "nothing outside reaches Prometheus"),
        Flow(OUTSIDER, prometheus, kps.SIDECAR_GRPC_PORT, "TCP", "nothing outside reaches the sidecar"),
        Flow(t.pod(FLUENT_BIT), COREDNS.endpoint, COREDNS_METRICS_PORT, "TCP", "only Prometheus scrapes CoreDNS"),
    ]
    flows += [
        Flow(t.pod(ALERTMANAGER), address, port, "TCP", "Alertmanager reaches only its configured receivers")
        for address, port in ((PUBLIC, 443), (PUBLIC, 587), (OUTSIDER, 25), (t.s3, t.s3_port))
        if _unconfigured(t, address, port)
    ]
    flows += [
        Flow(t.pod(other), prometheus, kps.PROMETHEUS_PORT, "TCP", "only Grafana queries Prometheus")
        for other in (
            OPENSEARCH,
            ALERTMANAGER,
            KUBE_STATE_METRICS,
            TRAEFIK,
            *((LONGHORN_MANAGER,) if t.longhorn else ()),
        )
    ]
    if t.longhorn:
        manager = t.pod(LONGHORN_MANAGER)
        flows.append(Flow(t.pod(OPENSEARCH), manager, longhorn.MANAGER_PORT, "TCP", "OpenSearch to Longhorn"))
        flows.append(
            Flow(t.pod(TRAEFIK), manager, longhorn.MANAGER_PORT, "TCP", "Traefik does not call Longhorn's API")
        )
    flows += _ingress_forbidden(t)
    return flows + (_central_forbidden(t) if t.settings.is_central else _edge_forbidden(t))


def ingress_backends(t: Topology) -> list[tuple[str, int, str]]:
    """(endpoint, port, what) of every backend Traefik routes to on this stack."""
    backends = [
        (t.pod(GRAFANA), kube_prometheus_stack.GRAFANA_PORT, "Grafana"),
        (t.pod(OPENSEARCH), opensearch.HTTP_PORT, "OpenSearch"),
    ]
    if t.longhorn:
        backends.append((t.pod(LONGHORN_UI), longhorn.UI_PORT, "the Longhorn UI"))
    if t.settings.is_central:
        backends.append((t.pod(FRONTEND), thanos.FRONTEND_PORT, "the Query Frontend"))
    return backends


def _ingress_forbidden(t: Topology) -> list[Flow]:
    """Traefik reaches its backends and nothing else; only its pods do; the world only its web ports."""
    kps, ingress = kube_prometheus_stack, t.pod(TRAEFIK)
    flows = [
        Flow(IMPOSTOR.endpoint, backend, port, "TCP", f"only Traefik's pods of {ns.INGRESS} reach {what}")
        for backend, port, what in ingress_backends(t)
    ]
    flows += [
        Flow(ingress, t.pod(ALERTMANAGER), kps.ALERTMANAGER_PORT, "TCP", "Traefik routes to no Alertmanager"),
        Flow(ingress, t.pod(OPENSEARCH), opensearch.TRANSPORT_PORT, "TCP", "Traefik does not join OpenSearch"),
        Flow(ingress, t.s3, t.s3_port, "TCP", "Traefik does not touch object storage"),
        Flow(ingress, PUBLIC, 443, "TCP", "Traefik calls nowhere on the internet"),
        Flow(ingress, t.node, KUBELET_PORT, "TCP", "Traefik does not talk to the kubelet"),
        Flow(OUTSIDER, ingress, traefik.METRICS_PORT, "TCP", "only Prometheus scrapes Traefik"),
        Flow(t.pod(GRAFANA), ingress, traefik.METRICS_PORT, "TCP", "only Prometheus scrapes Traefik"),
        Flow(OUTSIDER, ingress, traefik.PING_PORT, "TCP", "the ping entrypoint is the kubelet's"),
    ]
    return flows


def _central_forbidden(t: Topology) -> list[Flow]:
    query = t.pod(QUERY)
    flows = [
        Flow(edge.ip, query, thanos.HTTP_PORT, "TCP", "an edge cannot reach central Query") for edge in t.settings.edges
    ]
    flows += [
        Flow(edge.ip, query, thanos.GRPC_PORT, "TCP", "an edge cannot reach central Query") for edge in t.settings.edges
    ]
    flows += [
        Flow(t.pod(other), query, port, "TCP", "no pod of another namespace reaches Query")
        for other in (OPENSEARCH, FLUENT_BIT, *((LONGHORN_MANAGER,) if t.longhorn else ()))
        for port in (thanos.HTTP_PORT, thanos.GRPC_PORT)
    ]
    flows.append(Flow(query, t.s3, t.s3_port, "TCP", "Query reads object storage only through the Store Gateway"))
    return flows


def _edge_forbidden(t: Topology) -> list[Flow]:
    central = ipaddress.ip_network(host_cidr(t.settings.central_ip))
    other_host = str(central.broadcast_address + 1)
    if other_host == t.node:
        other_host = str(central.broadcast_address + 2)
    sidecar = kube_prometheus_stack.SIDECAR_GRPC_PORT
    return [Flow(other_host, t.pod(PROMETHEUS), sidecar, "TCP", "only the central cluster reaches the sidecar")]


# --- evaluation -------------------------------------------------------------------------------


def connectivity(model: Cluster, policies: list[dict[str, object]] | None = None) -> Connectivity:
    """What the policies allow among the cluster's pods (host-network pods left out: policies skip
    them), CoreDNS and the impostor in the ingress namespace added."""
    pods = [PodModel(p.namespace, p.name, p.labels) for p in model.pods() if not p.host_network]
    namespaces = sorted({*(o.name for o in model.of_kind("Namespace")), KUBE_SYSTEM})
    if policies is None:
        policies = [unwrap(o.obj) for o in model.of_kind("NetworkPolicy")]
    return evaluate(namespaces, [*pods, COREDNS, IMPOSTOR], policies)


def topology(rendering: Rendering) -> Topology:
    return Topology(cluster(rendering), settings_of(rendering.config, rendering.stack))


def validate(rendering: Rendering) -> list[Finding]:
    if f"{PROJECT}:role" not in rendering.config:
        return []  # not a stack of this program (a test's hand-made rendering): no topology to check
    model = cluster(rendering)
    if model.gaps:
        return [Finding(NAME, f"stack {rendering.stack}", f"flows not checked: {gap}") for gap in model.gaps]
    try:
        t = topology(rendering)
        required, forbidden = required_flows(t), forbidden_flows(t)
    except KeyError as missing:
        return [Finding(NAME, f"stack {rendering.stack}", f"no pod of workload {missing.args[0]} to check flows with")]
    reach = connectivity(model)
    findings = [
        Finding(NAME, "NetworkPolicies", f"required flow blocked: {flow}")
        for flow in required
        if not reach.allows(flow.source, flow.destination, flow.port, flow.protocol)
    ]
    findings += [
        Finding(NAME, "NetworkPolicies", f"forbidden flow open: {flow}")
        for flow in forbidden
        if reach.allows(flow.source, flow.destination, flow.port, flow.protocol)
    ]
    return findings
