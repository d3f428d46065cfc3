"""Namespaces the program owns, each enforcing the strictest Pod Security level its pods pass.

A namespace is only as strict as its most privileged pod, so the node agents that need the host
(node-exporter: host network and PID namespace; Fluent-bit: the node's log files) live in
namespaces of their own instead of lowering `monitoring` and `logging` to `privileged`.
"""

from __future__ import annotations

import re
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, Component

MONITORING = "monitoring"
NODE_EXPORTER = "node-exporter"
LOGGING = "logging"
FLUENT_BIT = "fluent-bit"
LONGHORN = "longhorn-system"
INGRESS = "ingress"
"""The ingress controller's namespace (Traefik), named for its role, not its implementation."""

# The level each namespace enforces; every namespace also audits and warns at `restricted`, so
# anything looser than necessary shows up in the API server's warnings. `render --check` proves
# each level both admits every pod of the namespace and is the strictest that does.
ENFORCED_LEVEL: dict[str, str] = {
    # Prometheus, Alertmanager, Grafana, the operator, kube-state-metrics and Thanos: non-root,
    # no capabilities, seccomp RuntimeDefault.
    MONITORING: "restricted",
    # node-exporter reads the host's /proc and /sys with hostNetwork and hostPID.
    NODE_EXPORTER: "privileged",
    # OpenSearch and its init containers: uid 1000, no capabilities, seccomp RuntimeDefault.
    LOGGING: "restricted",
    # Fluent-bit tails the node's container logs through hostPath volumes (baseline forbids them).
    FLUENT_BIT: "privileged",
    # Longhorn's manager and instance managers run privileged with bidirectional mount propagation.
    LONGHORN: "privileged",
    # Traefik takes the host's ports 80/443 as hostPorts, which baseline forbids (any hostPort but
    # 0); everything else about it would pass restricted: non-root, no capabilities, read-only root
    # filesystem, seccomp RuntimeDefault, on the pod network (see components/traefik.py). Its
    # audit and warn labels stay restricted, so the hostPorts are the only warning it raises.
    INGRESS: "privileged",
}


def owned(longhorn: bool = True, host_ports: bool = True) -> dict[str, str]:
    """The namespaces a stack creates and the level each enforces: Longhorn's only where Longhorn is
    installed, and the ingress namespace `restricted` when Traefik takes no host ports (behind a
    LoadBalancer or NodePort Service nothing of it needs more)."""
    levels = {name: level for name, level in ENFORCED_LEVEL.items() if longhorn or name != LONGHORN}
    if not host_ports:
        levels[INGRESS] = "restricted"
    return levels


class NamespacesArgs(TypedDict):
    kubernetes_version: str
    """The cluster's version (`v1.28.0`): Pod Security is enforced as that version defines it."""
    longhorn: bool
    """Longhorn is installed: its namespace is created."""
    host_ports: bool
    """Traefik takes the node's 80/443 as host ports (which only `privileged` admits)."""


def pod_security_version(kubernetes_version: str) -> str:
    """`v1.28` for `v1.28.0`: pinned, so that a cluster upgrade does not tighten admission unseen."""
    match = re.fullmatch(r"(v\d+\.\d+)\.\d+", kubernetes_version)
    if not match:
        raise ValueError(f"not a Kubernetes version: {kubernetes_version!r}")
    return match.group(1)


def pod_security_labels(enforce: str, version: str) -> dict[str, str]:
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": version,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": version,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": version,
    }


class Namespaces(Component):
    """One Namespace per area, each labelled for Pod Security Admission."""

    by_name: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("namespaces:Namespaces", name, opts)
        version = pod_security_version(args["kubernetes_version"])
        self.by_name = {
            namespace: k8s.core.v1.Namespace(
                namespace,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=namespace, labels=pod_security_labels(level, version) | MANAGED_BY
                ),
                opts=self.child(),
            )
            for namespace, level in owned(args["longhorn"], args["host_ports"]).items()
        }
        self.register_outputs({})

    def __getitem__(self, namespace: str) -> k8s.core.v1.Namespace:
        return self.by_name[namespace]
