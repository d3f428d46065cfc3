"""Small builders shared by the components that write Kubernetes objects and Helm values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.settings import PROJECT
from components.versions import Chart

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": PROJECT}
SECRET_CONFIG_ANNOTATION = f"{PROJECT}/from-secret-config"
"""On a Secret whose data is the stack's secret config (`pulumi config set --secret`): the keys, comma
separated. Such data has no resource behind it, and the policy pack cannot tell a secret from a literal."""


def from_secret_config(*keys: str) -> dict[str, str]:
    """The annotations of a Secret holding the secret config `keys` (none: no annotation)."""
    return {SECRET_CONFIG_ANNOTATION: ",".join(keys)} if keys else {}


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


class Component(pulumi.ComponentResource):
    """A ComponentResource that passes what it was told to wait for on to its children.

    Components take their provider, `depends_on` and `protect` in `ResourceOptions`. The provider
    reaches the children by itself (they inherit their parent's providers), `depends_on` does not:
    Pulumi's Python SDK registers a child as soon as its parent's URN is known, so a component told
    to wait for the kube-prometheus-stack release would still create its ServiceMonitor before the
    CRD exists. `child()` adds the component's `depends_on` to every child. A child also inherits
    `protect` from its parent, which would protect every Secret and ConfigMap of a protected
    component: `child()` protects only the children marked stateful.
    """

    def __init__(self, token: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        """`token` is `<module>:<Type>`; the type is `thanos-multi-cluster:<module>:<Type>`."""
        super().__init__(f"{PROJECT}:{token}", name, None, opts)
        self._waits_for = _resources(opts.depends_on if opts else None)
        self._protect_stateful = bool(opts and opts.protect)

    def child(self, *depends_on: pulumi.Resource, stateful: bool = False, **options: Any) -> pulumi.ResourceOptions:
        """Options of a child: parented here, after the component's and its own dependencies."""
        return pulumi.ResourceOptions(
            parent=self,
            depends_on=[*self._waits_for, *depends_on],
            protect=self._protect_stateful and stateful,
            **options,
        )


def _resources(depends_on: Any) -> list[pulumi.Resource]:
    if depends_on is None:
        return []
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, list | tuple) and all(isinstance(item, pulumi.Resource) for item in depends_on):
        return list(depends_on)
    raise TypeError("components take depends_on as a resource or a list of resources, not an Output")


@dataclass(frozen=True)
class BasicAuth:
    """A generated login for a UI that has none of its own (the ingress checks it)."""

    secret: k8s.core.v1.Secret
    """`users` holds the htpasswd line `admin:<bcrypt hash>`, the key Traefik's basicAuth reads."""
    password: pulumi.Output[str]
    """The password (secret), a stack output for the operator."""


BASIC_AUTH_USER = "admin"


def basic_auth(component: Component, name: str, secret_name: str, namespace: str) -> BasicAuth:
    """A random password and the htpasswd Secret the ingress checks it against (a Traefik
    `LoginMiddleware` names the Secret). Only the bcrypt hash is stored in the cluster."""
    password = random.RandomPassword(f"{name}-ui-password", length=24, special=False, opts=component.child())
    secret = k8s.core.v1.Secret(
        secret_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=secret_name, namespace=namespace, labels=MANAGED_BY),
        type="Opaque",
        string_data=pulumi.Output.secret({"users": pulumi.Output.concat(f"{BASIC_AUTH_USER}:", password.bcrypt_hash)}),
        opts=component.child(),
    )
    return BasicAuth(secret, pulumi.Output.secret(password.result))


def helm_release(
    name: str,
    chart: Chart,
    version: str,
    namespace: pulumi.Input[str],
    values: pulumi.Input[dict[str, Any]],
    opts: pulumi.ResourceOptions,
    timeout_seconds: int = 600,
    atomic: bool = True,
) -> k8s.helm.v3.Release:
    """A Helm release with an explicit name (no random suffix) and a pinned chart version.

    `atomic` rolls a failed install or upgrade back instead of leaving a half-applied release;
    the rollback of a failed install is an uninstall, which runs the chart's pre-delete hooks.
    A chart whose pre-delete hook refuses by design turns that rollback into a release stuck in
    `uninstalling`: such a release is installed without `atomic` (see Longhorn).
    """
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.name,
        version=version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        values=values,
        atomic=atomic,
        cleanup_on_fail=atomic,
        timeout=timeout_seconds,
        max_history=5,
        opts=opts,
    )
