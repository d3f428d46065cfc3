"""NetworkPolicies: default deny in every namespace we own, then exactly the flows the platform needs.

Calico enforces them (Minikube's default CNI would not). Three facts shape the rules:
- node-exporter runs on the host network, so its traffic is the node's address (Kubernetes always
  lets a node reach its own pods; the node rules document the flow). Traefik does not: it is a pod
  that takes the host's 80/443 as hostPorts, so its policies apply, the backends admit its pods,
  and what reaches its web ports arrives with the client's own address (portmap does not masquerade);
- the Thanos sidecar is a container of the Prometheus pod, so its rules select Prometheus pods;
- namespaces are selected by `kubernetes.io/metadata.name`, the label every namespace has (a
  `name:` label does not exist unless someone sets it).

Longhorn's chart has a `networkPolicies` switch, but it only opens the UI to pod-network ingress
controllers and the manager to its own pods: it would block Prometheus and the API server's
webhook calls, and sets no default deny. So its policies are written here instead.
`render --check` evaluates these policies over the pods as the charts really label them
(`tools/validators/network_flows.py` lists every flow that must be open or closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import pulumi
import pulumi_kubernetes as k8s

from components import fluent_bit, longhorn, opensearch, thanos, traefik
from components import kube_prometheus_stack as kps
from components import namespaces as ns
from components.kube import MANAGED_BY, Component
from components.minikube_node import KUBELET_PORT
from components.settings import ApiServerSettings, host_cidr

TCP, UDP = "TCP", "UDP"
APISERVER_SERVICE_PORT = 443
"""The `kubernetes` Service's port, in case the CNI matches before the Service address is translated."""
DNS_PORT = 53
COREDNS_METRICS_PORT = 9153
HTTPS_PORT = 443
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")

# Pod labels, as the pinned charts, the operators and our own components set them.
PROMETHEUS = kps.PROMETHEUS_POD_LABELS
ALERTMANAGER = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA = {"app.kubernetes.io/name": "grafana"}
KUBE_STATE_METRICS = {"app.kubernetes.io/name": "kube-state-metrics"}
OPERATOR = {"app": "kube-prometheus-stack-operator"}
THANOS_QUERY = {"app.kubernetes.io/name": thanos.QUERY}
THANOS_QUERY_FRONTEND = {"app.kubernetes.io/name": thanos.QUERY_FRONTEND}
THANOS_STORE = {"app.kubernetes.io/name": thanos.STORE}
THANOS_COMPACT = {"app.kubernetes.io/name": thanos.COMPACTOR}
OPENSEARCH = opensearch.POD_LABELS
FLUENT_BIT = fluent_bit.POD_LABELS
KUBE_DNS = {"k8s-app": "kube-dns"}
TRAEFIK = traefik.POD_LABELS
LONGHORN_UI = {"app": "longhorn-ui"}


@dataclass(frozen=True)
class Peer:
    """One side of a flow: pods (in a namespace, default: the policy's own) or an address block."""

    pods: dict[str, str] | None = None
    namespace: str | None = None
    cidr: str | None = None
    excluded: tuple[str, ...] = ()

    def to_spec(self, own_namespace: str) -> dict[str, Any]:
        if self.cidr:
            block: dict[str, Any] = {"cidr": self.cidr}
            if self.excluded:
                block["except"] = list(self.excluded)
            return {"ipBlock": block}
        spec: dict[str, Any] = {"podSelector": {"matchLabels": self.pods or {}}}
        if self.namespace and self.namespace != own_namespace:
            spec["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}}
        return spec


# Public addresses only: the plugin installer Job downloads repository-s3 from artifacts.opensearch.org,
# a CDN whose addresses are not fixed (a NetworkPolicy cannot name a host).
INTERNET = Peer(cidr="0.0.0.0/0", excluded=PRIVATE_RANGES)
PLUGIN_INSTALLER = opensearch.PLUGIN_INSTALLER_LABELS
ANYWHERE = Peer(cidr="0.0.0.0/0")
"""Every client of the ingress: hostPort traffic keeps its source address (portmap only DNATs)."""
INGRESS_CONTROLLER = Peer(pods=TRAEFIK, namespace=ns.INGRESS)
"""Traefik's pods, as the backends behind it admit them."""


@dataclass(frozen=True)
class Flow:
    """Traffic between the selected pods and some peers on some ports."""

    peers: tuple[Peer, ...]
    ports: tuple[tuple[int, str], ...]

    def to_spec(self, own_namespace: str, direction: str) -> dict[str, Any]:
        spec: dict[str, Any] = {direction: [peer.to_spec(own_namespace) for peer in self.peers]}
        if self.ports:  # no ports: every port
            spec["ports"] = [{"port": port, "protocol": protocol} for port, protocol in self.ports]
        return spec


@dataclass(frozen=True)
class Policy:
    name: str
    namespace: str
    pods: dict[str, str]
    ingress: tuple[Flow, ...] = ()
    egress: tuple[Flow, ...] = ()
    types: tuple[str, ...] = field(default=())

    def spec(self) -> dict[str, Any]:
        types = self.types or tuple(t for t, flows in (("Ingress", self.ingress), ("Egress", self.egress)) if flows)
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": self.pods} if self.pods else {},
            "policyTypes": list(types),
        }
        if self.ingress:
            spec["ingress"] = [flow.to_spec(self.namespace, "from") for flow in self.ingress]
        if self.egress:
            spec["egress"] = [flow.to_spec(self.namespace, "to") for flow in self.egress]
        return spec


def tcp(*ports: int) -> tuple[tuple[int, str], ...]:
    return tuple((port, TCP) for port in ports)


class NetworkPoliciesArgs(TypedDict):
    central: bool
    """Central runs the Thanos components; edges expose the sidecar to the central host."""
    node_cidrs: Sequence[str]
    """The nodes' addresses: the source of host-network traffic (kubelet probes, node-exporter, webhook calls)."""
    api_server: ApiServerSettings
    """Where the pods reach the API server (and Prometheus scrapes it)."""
    longhorn: bool
    """Longhorn is installed (its namespace gets policies)."""
    plugin_installer: bool
    """The repository-s3 installer Job runs (no image of the operator's brings the plugin)."""
    central_address: str
    """The central cluster's address: the only source allowed to reach an edge's sidecar."""
    edge_sidecars: Sequence[tuple[str, int]]
    """Central only: (address, port) of every edge's sidecar StoreAPI, which Thanos Query calls."""
    s3_address: str | None
    """IP of the object store, or None when it is a DNS name (then any address on its port)."""
    s3_port: int
    """Port of the object store."""
    alert_receivers: Sequence[tuple[str, int]]
    """(address block, port) of every configured alert receiver: Alertmanager's only egress."""


def _cluster_policies(args: NetworkPoliciesArgs) -> list[Policy]:
    nodes = tuple(Peer(cidr=cidr) for cidr in args["node_cidrs"])
    api = args["api_server"]
    api_peers = (*(Peer(cidr=cidr) for cidr in api.cidrs), Peer(cidr=host_cidr(api.service_address)))
    apiserver = Flow(api_peers, tcp(*dict.fromkeys((api.port, APISERVER_SERVICE_PORT))))
    s3_peer = Peer(cidr=host_cidr(args["s3_address"]) if args["s3_address"] else "0.0.0.0/0")
    s3 = Flow((s3_peer,), tcp(args["s3_port"]))
    dns = Flow((Peer(pods=KUBE_DNS, namespace="kube-system"),), ((DNS_PORT, UDP), (DNS_PORT, TCP)))

    owned = ns.owned(longhorn=args["longhorn"])
    policies = [Policy("default-deny", namespace, {}, types=("Ingress", "Egress")) for namespace in owned]
    policies += [Policy("allow-dns", namespace, {}, egress=(dns,)) for namespace in owned]
    policies += _ingress(args, apiserver)
    policies += _monitoring(args, nodes, apiserver, s3)
    policies += _logging(apiserver, s3, args["plugin_installer"])
    if args["longhorn"]:
        policies += _longhorn(nodes, apiserver, s3)
    return policies


def _ingress(args: NetworkPoliciesArgs, apiserver: Flow) -> list[Policy]:
    """Traefik: the world on its web ports, Prometheus on its metrics; out to its backends only."""
    backends = [
        Flow((Peer(pods=GRAFANA, namespace=ns.MONITORING),), tcp(kps.GRAFANA_PORT)),
        Flow((Peer(pods=OPENSEARCH, namespace=ns.LOGGING),), tcp(opensearch.HTTP_PORT)),
    ]
    if args["longhorn"]:
        backends.append(Flow((Peer(pods=LONGHORN_UI, namespace=ns.LONGHORN),), tcp(longhorn.UI_PORT)))
    if args["central"]:
        backends.append(Flow((Peer(pods=THANOS_QUERY_FRONTEND, namespace=ns.MONITORING),), tcp(thanos.FRONTEND_PORT)))
    return [
        Policy(
            "traefik",
            ns.INGRESS,
            TRAEFIK,
            ingress=(
                # The host's 80/443, mapped to these container ports; the kubelet's probes of the
                # ping port come from the node, which always reaches its pods.
                Flow((ANYWHERE,), tcp(traefik.WEB_PORT, traefik.WEBSECURE_PORT)),
                Flow((Peer(pods=PROMETHEUS, namespace=ns.MONITORING),), tcp(traefik.METRICS_PORT)),
            ),
            # Its Kubernetes providers watch Ingresses, Services, EndpointSlices, Secrets and its CRDs.
            egress=(*backends, apiserver),
        )
    ]


def _monitoring(args: NetworkPoliciesArgs, nodes: tuple[Peer, ...], apiserver: Flow, s3: Flow) -> list[Policy]:
    m = ns.MONITORING
    prometheus, grafana, alertmanager = Peer(pods=PROMETHEUS), Peer(pods=GRAFANA), Peer(pods=ALERTMANAGER)
    # Exactly the configured receivers (README, "Alerts"); none configured: no egress but DNS.
    receivers = tuple(Flow((Peer(cidr=cidr),), tcp(port)) for cidr, port in args["alert_receivers"])
    scrape_local = (
        Flow((Peer(pods=KUBE_STATE_METRICS),), tcp(kps.KUBE_STATE_METRICS_PORT)),
        Flow((Peer(pods=OPERATOR),), tcp(kps.OPERATOR_PORT)),
        Flow((alertmanager,), tcp(kps.ALERTMANAGER_PORT, kps.CONFIG_RELOADER_PORT)),
        Flow((grafana,), tcp(kps.GRAFANA_PORT)),
        Flow((prometheus,), tcp(kps.SIDECAR_HTTP_PORT, kps.CONFIG_RELOADER_PORT)),
        Flow(
            (
                Peer(pods=THANOS_QUERY),
                Peer(pods=THANOS_QUERY_FRONTEND),
                Peer(pods=THANOS_STORE),
                Peer(pods=THANOS_COMPACT),
            ),
            tcp(thanos.HTTP_PORT, thanos.FRONTEND_PORT),
        ),
    )
    # kubelet, node-exporter (host network), the API server.
    # Minikube binds etcd, scheduler, controller-manager and kube-proxy metrics to 127.0.0.1: not scraped.
    scrape_node = Flow(nodes, tcp(KUBELET_PORT, kps.NODE_EXPORTER_PORT))
    scrape_elsewhere = (
        Flow((INGRESS_CONTROLLER,), tcp(traefik.METRICS_PORT)),
        *(
            (Flow((Peer(pods=longhorn.MANAGER_POD_LABELS, namespace=ns.LONGHORN),), tcp(longhorn.MANAGER_PORT)),)
            if args["longhorn"]
            else ()
        ),
        Flow((Peer(pods=FLUENT_BIT, namespace=ns.FLUENT_BIT),), tcp(fluent_bit.METRICS_PORT)),
        Flow((Peer(pods=OPENSEARCH, namespace=ns.LOGGING),), tcp(opensearch.EXPORTER_PORT)),  # snapshot exporter
        Flow((Peer(pods=KUBE_DNS, namespace="kube-system"),), tcp(COREDNS_METRICS_PORT)),
    )
    sidecar_from = Peer(pods=THANOS_QUERY) if args["central"] else Peer(cidr=host_cidr(args["central_address"]))
    policies = [
        Policy(
            "prometheus",
            m,
            PROMETHEUS,
            ingress=(
                Flow((grafana,), tcp(kps.PROMETHEUS_PORT)),
                Flow((sidecar_from,), tcp(kps.SIDECAR_GRPC_PORT)),  # the sidecar's StoreAPI
                Flow((prometheus,), tcp(kps.SIDECAR_HTTP_PORT, kps.CONFIG_RELOADER_PORT)),  # its own metrics
            ),
            egress=(*scrape_local, scrape_node, *scrape_elsewhere, apiserver, s3),
        ),
        Policy(
            "alertmanager",
            m,
            ALERTMANAGER,
            ingress=(
                Flow((prometheus,), tcp(kps.ALERTMANAGER_PORT, kps.CONFIG_RELOADER_PORT)),
                Flow((grafana,), tcp(kps.ALERTMANAGER_PORT)),  # Grafana's Alertmanager datasource
                Flow((alertmanager,), ((kps.ALERTMANAGER_MESH_PORT, TCP), (kps.ALERTMANAGER_MESH_PORT, UDP))),
            ),
            egress=receivers,
        ),
        Policy(
            "grafana",
            m,
            GRAFANA,
            ingress=(Flow((INGRESS_CONTROLLER, prometheus), tcp(kps.GRAFANA_PORT)),),
            egress=(
                Flow((prometheus,), tcp(kps.PROMETHEUS_PORT)),
                Flow((Peer(pods=THANOS_QUERY_FRONTEND),), tcp(thanos.FRONTEND_PORT)),
                Flow((alertmanager,), tcp(kps.ALERTMANAGER_PORT)),
                apiserver,  # its sidecars load dashboards and datasources from ConfigMaps
            ),
        ),
        Policy(
            "kube-state-metrics",
            m,
            KUBE_STATE_METRICS,
            ingress=(Flow((prometheus,), tcp(kps.KUBE_STATE_METRICS_PORT)),),
            egress=(apiserver,),
        ),
        # The API server calls the operator's admission webhook from the host address.
        Policy(
            "operator", m, OPERATOR, ingress=(Flow((prometheus, *nodes), tcp(kps.OPERATOR_PORT)),), egress=(apiserver,)
        ),
        # The operator's admission-webhook certificate jobs (Helm hooks) only talk to the API server.
        Policy("admission-create", m, {"app": "kube-prometheus-stack-admission-create"}, egress=(apiserver,)),
        Policy("admission-patch", m, {"app": "kube-prometheus-stack-admission-patch"}, egress=(apiserver,)),
        # The chart's CRD upgrade Job (a Helm hook) applies the operator's CRDs before each install or upgrade.
        Policy("crds-upgrade", m, kps.CRD_UPGRADE_POD_LABELS, egress=(apiserver,)),
    ]
    if args["central"]:
        policies += _thanos_central(args, s3)
    return policies


def _edge_sidecars(sidecars: Sequence[tuple[str, int]]) -> tuple[Flow, ...]:
    """One flow per port the edges' sidecars answer on (NodePort 30901, or 10901 behind a load balancer)."""
    by_port: dict[int, list[Peer]] = {}
    for address, port in sidecars:
        by_port.setdefault(port, []).append(Peer(cidr=host_cidr(address)))
    return tuple(Flow(tuple(peers), tcp(port)) for port, peers in sorted(by_port.items()))


def _thanos_central(args: NetworkPoliciesArgs, s3: Flow) -> list[Policy]:
    m = ns.MONITORING
    prometheus = Peer(pods=PROMETHEUS)
    return [
        Policy(
            "thanos-query",
            m,
            THANOS_QUERY,
            ingress=(Flow((Peer(pods=THANOS_QUERY_FRONTEND), prometheus), tcp(thanos.HTTP_PORT)),),
            egress=(
                Flow((prometheus,), tcp(kps.SIDECAR_GRPC_PORT)),
                Flow((Peer(pods=THANOS_STORE),), tcp(thanos.GRPC_PORT)),
                *_edge_sidecars(args["edge_sidecars"]),
            ),
        ),
        Policy(
            "thanos-query-frontend",
            m,
            THANOS_QUERY_FRONTEND,
            ingress=(Flow((INGRESS_CONTROLLER, Peer(pods=GRAFANA), prometheus), tcp(thanos.FRONTEND_PORT)),),
            egress=(Flow((Peer(pods=THANOS_QUERY),), tcp(thanos.HTTP_PORT)),),
        ),
        Policy(
            "thanos-store",
            m,
            THANOS_STORE,
            ingress=(
                Flow((Peer(pods=THANOS_QUERY),), tcp(thanos.GRPC_PORT)),
                Flow((prometheus,), tcp(thanos.HTTP_PORT)),
            ),
            egress=(s3,),
        ),
        Policy(
            "thanos-compact", m, THANOS_COMPACT, ingress=(Flow((prometheus,), tcp(thanos.HTTP_PORT)),), egress=(s3,)
        ),
    ]


def _logging(apiserver: Flow, s3: Flow, plugin_installer: bool) -> list[Policy]:
    prometheus = Peer(pods=PROMETHEUS, namespace=ns.MONITORING)
    fluent_bit_pods = Peer(pods=FLUENT_BIT, namespace=ns.FLUENT_BIT)
    search = Peer(pods=OPENSEARCH, namespace=ns.LOGGING)
    policies = [
        Policy(
            "opensearch",
            ns.LOGGING,
            OPENSEARCH,
            ingress=(
                # Traefik: the UI, and Pulumi managing the API objects through the ingress
                Flow((fluent_bit_pods, INGRESS_CONTROLLER), tcp(opensearch.HTTP_PORT)),
                Flow((search,), tcp(opensearch.TRANSPORT_PORT)),
                # The snapshot exporter beside OpenSearch reads it over the pod's loopback (no policy applies).
                Flow((prometheus,), tcp(opensearch.EXPORTER_PORT)),
            ),
            # Nothing on the internet: repository-s3 comes from the plugin volume the installer Job fills.
            egress=(Flow((search,), tcp(opensearch.TRANSPORT_PORT)), s3),
        ),
        Policy(
            "fluent-bit",
            ns.FLUENT_BIT,
            FLUENT_BIT,
            ingress=(Flow((prometheus,), tcp(fluent_bit.METRICS_PORT)),),
            # The kubernetes filter reads pod metadata from the API server.
            egress=(Flow((search,), tcp(opensearch.HTTP_PORT)), apiserver),
        ),
    ]
    if plugin_installer:
        policies.append(
            # The plugin installer Job (first deploy, each OpenSearch version): `opensearch-plugin` fetches the
            # zip, its SHA-512 and its signature from artifacts.opensearch.org; no other flow, no ingress.
            Policy(
                opensearch.PLUGIN_INSTALLER,
                ns.LOGGING,
                PLUGIN_INSTALLER,
                egress=(Flow((INTERNET,), tcp(HTTPS_PORT)),),
                types=("Ingress", "Egress"),
            )
        )
    return policies


def _longhorn(nodes: tuple[Peer, ...], apiserver: Flow, s3: Flow) -> list[Policy]:
    lh = ns.LONGHORN
    everyone_here = Peer(pods={})
    return [
        # Managers, instance managers, CSI and webhooks talk among themselves on many ports.
        Policy(
            "longhorn-internal",
            lh,
            {},
            ingress=(Flow((everyone_here,), ()),),
            egress=(Flow((everyone_here,), ()),),
        ),
        Policy(
            "longhorn-from-node-and-prometheus",
            lh,
            {},
            ingress=(
                # The webhooks for the API server.
                Flow(nodes, tcp(longhorn.MANAGER_PORT, *longhorn.WEBHOOK_PORTS)),
                Flow((Peer(pods=PROMETHEUS, namespace=ns.MONITORING),), tcp(longhorn.MANAGER_PORT)),
            ),
        ),
        # The UI, through the ingress.
        Policy("longhorn-ui", lh, LONGHORN_UI, ingress=(Flow((INGRESS_CONTROLLER,), tcp(longhorn.UI_PORT)),)),
        Policy("longhorn-egress", lh, {}, egress=(apiserver, s3)),
    ]


class NetworkPolicies(Component):
    """Every NetworkPolicy of the cluster; its options wait for the namespaces."""

    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("security:NetworkPolicies", name, opts)
        for policy in _cluster_policies(args):
            k8s.networking.v1.NetworkPolicy(
                f"{policy.namespace}-{policy.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=policy.name, namespace=policy.namespace, labels=MANAGED_BY),
                spec=cast(k8s.networking.v1.NetworkPolicySpecArgsDict, policy.spec()),
                opts=self.child(),
            )
        self.register_outputs({})
