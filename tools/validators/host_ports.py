"""One host network: no two listeners on the node may share a port, and none may take the node's own.

Every host-network pod (node-exporter) listens on the node's addresses with every container
port, and every `hostPort` of a pod on the pod network (the ingress controller's 80 and 443)
takes that port of the node too: the CNI's portmap DNATs it to the pod, whatever the container
port. With Minikube's `none` driver the control plane runs there too: a listener that takes the
API server's port does not fail loudly, it answers in its place (the former ingress-nginx
admission webhook on 8443 answered with the API server's certificate, and every Ingress was
rejected; Traefik's chart puts its HTTPS entrypoint on 8443 by default, harmless inside its pod,
not as a host port). Checked on the cluster as Helm really renders it (`tools.cluster`).

`NODE_PORTS` is what a Minikube node (none driver, containerd) already listens on, by CNI;
`IMPLICIT_LISTENERS` the ports a program opens without declaring a containerPort. Both are
modelled, from the components' documented defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from components.minikube_node import APISERVER_PORT, KUBELET_PORT
from tools.cluster import Pod, cluster
from tools.engine import PROJECT, Rendering
from tools.validators.common import Finding

NAME = "host-ports"
NEEDS_REFERENCE = True

CONTROL_PLANE: dict[int, str] = {
    22: "sshd (Pulumi reaches the host over SSH)",
    2379: "etcd (clients)",
    2380: "etcd (peers)",
    2381: "etcd (metrics)",
    APISERVER_PORT: "kube-apiserver (minikube's API server port)",
    10248: "kubelet (healthz)",
    10249: "kube-proxy (metrics)",
    KUBELET_PORT: "kubelet",
    10256: "kube-proxy (healthz)",
    10257: "kube-controller-manager",
    10259: "kube-scheduler",
}
CNI_PORTS: dict[str, dict[int, str]] = {
    "calico": {179: "calico-node (BGP)", 9099: "calico-node (Felix health)"},
    "cilium": {
        4240: "cilium-agent (health)",
        4244: "cilium-agent (Hubble)",
        9879: "cilium-agent (health API)",
        9890: "cilium-agent (gops)",
        9891: "cilium-operator (gops)",
        9962: "cilium-agent (metrics)",
        9963: "cilium-operator (metrics)",
        9964: "cilium-envoy (metrics)",
    },
}
NODE_PORT_RANGE = range(30000, 32768)
"""kube-proxy forwards Service NodePorts from every node address."""

IMPLICIT_LISTENERS: dict[str, dict[int, str]] = {
    # Image (without tag) -> port -> purpose, for host-network pods (a pod-network pod's
    # undeclared listeners stay in its own network namespace). Empty: node-exporter listens on
    # its declared port only.
}


@dataclass(frozen=True)
class Listener:
    port: int
    protocol: str
    owner: str
    """`Kind namespace/name (origin) container c` for pods, or the node component's name."""


EVERY_NODE: dict[int, str] = {
    22: "sshd",
    10248: "kubelet (healthz)",
    10249: "kube-proxy (metrics)",
    KUBELET_PORT: "kubelet",
    10256: "kube-proxy (healthz)",
}
"""What every node of an existing cluster listens on, whatever its distribution."""


def node_ports(rendering: Rendering) -> dict[int, str]:
    """What the node itself listens on: Minikube's control plane and the stack's CNI; on an existing
    cluster the kubelet, kube-proxy, the API server's port (a control-plane node may run workloads)
    and the ports of every CNI we know (which one it runs is not ours to say)."""
    existing = rendering.config.get(f"{PROJECT}:kubernetes")
    if existing:
        api_port = int((json.loads(existing).get("apiServer") or {}).get("port", 6443))
        every_cni = {port: purpose for ports in CNI_PORTS.values() for port, purpose in ports.items()}
        return EVERY_NODE | {api_port: "kube-apiserver"} | every_cni
    raw = rendering.config.get(f"{PROJECT}:minikube")
    cni = (json.loads(raw) if raw else {}).get("cni", "calico")
    return CONTROL_PLANE | CNI_PORTS.get(cni, {})


def listeners(pod: Pod) -> list[Listener]:
    """Every port this pod opens on the node: all ports on the host network, else its hostPorts."""
    found = []
    owner = pod.source.describe()
    for container_name, declared in pod.container_ports():
        host_port = declared.get("containerPort") if pod.host_network else declared.get("hostPort")
        if isinstance(host_port, int) and host_port > 0:
            protocol = str(declared.get("protocol", "TCP"))
            what = f"{owner} container {container_name} ({declared.get('name', '-')})"
            found.append(Listener(host_port, protocol, what))
    if pod.host_network:
        for container in pod.spec.get("containers") or []:
            image = str(container.get("image", "")).split("@")[0].rsplit(":", 1)[0]
            for implicit, purpose in IMPLICIT_LISTENERS.get(image, {}).items():
                what = f"{owner} container {container.get('name')} ({purpose}, implicit)"
                found.append(Listener(implicit, "TCP", what))
    return found


def validate(rendering: Rendering) -> list[Finding]:
    model = cluster(rendering)
    reserved = node_ports(rendering)
    findings = []
    taken: dict[tuple[int, str], Listener] = {}
    for pod in model.pods():
        for listener in listeners(pod):
            findings += _problems(listener, reserved, taken)
            taken.setdefault((listener.port, listener.protocol), listener)
    return findings


def _problems(listener: Listener, reserved: dict[int, str], taken: dict[tuple[int, str], Listener]) -> list[Finding]:
    where = listener.owner
    if listener.port in reserved:
        return [Finding(NAME, where, f"host port {listener.port} is the node's {reserved[listener.port]}")]
    if listener.port in NODE_PORT_RANGE:
        return [Finding(NAME, where, f"host port {listener.port} is in the NodePort range kube-proxy serves")]
    other = taken.get((listener.port, listener.protocol))
    if other is not None and other.owner.split(" container ")[0] != where.split(" container ")[0]:
        return [
            Finding(NAME, where, f"host port {listener.port}/{listener.protocol} is already taken by {other.owner}")
        ]
    return []
