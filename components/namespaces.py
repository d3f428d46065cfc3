"""Namespaces the program owns, with Pod Security Admission labels that fit what runs in each."""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, child_opts

MONITORING = "monitoring"
LOGGING = "logging"
LONGHORN = "longhorn-system"
INGRESS = "ingress-nginx"

# The level each namespace is *enforced* at; every namespace also audits and warns at
# `restricted`, so anything looser than necessary shows up in the API server's warnings.
ENFORCED_LEVEL: dict[str, str] = {
    # node-exporter reads the host's /proc and /sys with hostNetwork and hostPID.
    MONITORING: "privileged",
    # Fluent-bit tails the node's container logs through hostPath volumes (baseline forbids them).
    LOGGING: "privileged",
    # Longhorn's manager and instance managers run privileged with bidirectional mount propagation.
    LONGHORN: "privileged",
    # The controller runs with hostNetwork to serve ports 80/443 on the host address (DESIGN 1).
    INGRESS: "privileged",
}


class NamespacesArgs(TypedDict):
    provider: k8s.Provider
    """The cluster's explicit Kubernetes provider."""


class Namespaces(pulumi.ComponentResource):
    """One Namespace per area, each labelled for Pod Security Admission."""

    by_name: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("thanos-multi-cluster:namespaces:Namespaces", name, None, opts)
        self.by_name = {
            namespace: k8s.core.v1.Namespace(
                namespace,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=pod_security_labels(level) | MANAGED_BY),
                opts=child_opts(self, args["provider"]),
            )
            for namespace, level in ENFORCED_LEVEL.items()
        }
        self.register_outputs({})

    def __getitem__(self, namespace: str) -> k8s.core.v1.Namespace:
        return self.by_name[namespace]


def pod_security_labels(enforce: str) -> dict[str, str]:
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
