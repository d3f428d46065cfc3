"""Small hand-made Renderings: the validators' tests break one thing at a time in these."""

from __future__ import annotations

import copy
from typing import Any

from tools.engine import PROJECT, Rendering, Resource

SIZED: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
THANOS_IMAGE = "quay.io/thanos/thanos:v0.32.5"


def kubernetes(obj: dict[str, Any], type_: str | None = None) -> Resource:
    """A typed Kubernetes resource as the engine records it (type token from apiVersion/kind)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    type_ = type_ or f"kubernetes:{group_version}:{kind}"
    name = obj["metadata"]["name"]
    return Resource(
        type=type_,
        name=name,
        urn=f"urn:pulumi:test::{PROJECT}::{type_}::{name}",
        custom=True,
        parent_urn=None,
        provider=None,
        depends_on=[],
        inputs=copy.deepcopy(obj),
    )


def resource(
    type_: str, name: str, custom: bool = True, parent: str | None = None, depends_on: list[str] | None = None
) -> Resource:
    """Any resource as the engine records it (no inputs), for graph and engine-rule tests."""
    return Resource(
        type=type_,
        name=name,
        urn=f"urn:pulumi:test::{PROJECT}::{type_}::{name}",
        custom=custom,
        parent_urn=parent,
        provider=None,
        depends_on=depends_on or [],
        inputs={},
    )


def release(chart: str, version: str, values: dict[str, Any], namespace: str = "default") -> Resource:
    """A Helm release resource with the inputs `components.kube.helm_release` gives it."""
    type_ = "kubernetes:helm.sh/v3:Release"
    return Resource(
        type=type_,
        name=chart,
        urn=f"urn:pulumi:test::{PROJECT}::{type_}::{chart}",
        custom=True,
        parent_urn=None,
        provider=None,
        depends_on=[],
        inputs={
            "name": chart,
            "chart": chart,
            "version": version,
            "namespace": namespace,
            "repositoryOpts": {"repo": "https://charts.example.org"},
            "values": copy.deepcopy(values),
        },
    )


def rendering(
    *resources: Resource, config: dict[str, str] | None = None, outputs: dict[str, Any] | None = None
) -> Rendering:
    return Rendering(stack="test", resources=list(resources), outputs=outputs or {}, config=config or {})


def container(name: str = "app", image: str = "nginx:1.25.3", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "resources": copy.deepcopy(SIZED), **fields}


def deployment(
    name: str = "app", containers: list[dict[str, Any]] | None = None, replicas: int = 1, kind: str = "Deployment"
) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": containers or [container()]}},
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def recurring_job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "RecurringJob",
        "metadata": {"name": "backup-daily", "namespace": "longhorn-system"},
        "spec": {"name": "backup-daily", "task": "backup", "cron": "0 2 * * *", "retain": 14, "concurrency": 1} | spec,
    }


def prometheus_rule(expr: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "rules", "namespace": "monitoring"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "Broken", "expr": expr, "for": "5m"}]}]},
    }
