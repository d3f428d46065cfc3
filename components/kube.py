"""Small builders shared by the components that write Kubernetes objects and Helm values."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.versions import Chart

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "thanos-multi-cluster"}


def resources(cpu: str, memory: str, memory_limit: str | None = None, cpu_limit: str | None = None) -> dict[str, Any]:
    """Requests and limits. Memory is always limited; CPU is limited only when asked (throttling
    a latency-sensitive process hurts more than it protects on a single node)."""
    limits: dict[str, str] = {"memory": memory_limit or memory}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def restricted_container_security() -> dict[str, Any]:
    """The Pod Security `restricted` profile for one container."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security(uid: int = 65534) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def child_opts(parent: pulumi.Resource, provider: k8s.Provider, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a Kubernetes child: parent and the explicit provider (no default provider)."""
    return pulumi.ResourceOptions(parent=parent, provider=provider, **kwargs)


def helm_release(
    name: str,
    chart: Chart,
    version: str,
    namespace: pulumi.Input[str],
    values: pulumi.Input[dict[str, Any]],
    opts: pulumi.ResourceOptions,
    timeout_seconds: int = 600,
) -> k8s.helm.v3.Release:
    """A Helm release with an explicit name (no random suffix) and a pinned chart version.

    `atomic` rolls a failed install or upgrade back instead of leaving a half-applied release.
    """
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.name,
        version=version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        timeout=timeout_seconds,
        max_history=5,
        opts=opts,
    )
