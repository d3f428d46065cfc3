"""The cluster a stack would run after `pulumi up`: every object, whoever creates it.

Three sources, so that checks run on what the node will really see:
- our typed objects, as the program registers them;
- each Helm release rendered by the real chart (`helm template` with the pinned package, our
  values, the stack's Kubernetes version, and the API versions of the CRDs installed before it
  or by the chart itself), hooks included, `helm test` pods left out;
- the pods operators create from custom resources, modelled in `operator_pods`: the
  Prometheus Operator's Prometheus and Alertmanager pods (labels, ports and security context as
  prometheus-operator builds them) and Longhorn's instance managers and CSI pods.

A release that cannot be rendered (no helm, no chart package) is reported in `Cluster.gaps`; its
objects are missing, and every check that needs them says so instead of passing silently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import helm
from tools.engine import Rendering, Resource
from tools.validators.common import describe, kubernetes_minor, lookup, validation_view

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "PersistentVolume",
        "CSIDriver",
        "VolumeSnapshotClass",
    }
)
CHART_CRDS_FORMAT = "1"
"""Part of every remembered CRD list's name: a change to what is stored starts anew."""
BUILT_IN_KINDS = frozenset({"policy/v1/PodDisruptionBudget"})
"""Built-in `group/version/Kind`s the pinned charts test for (`.Capabilities.APIVersions.Has`). On `pulumi up`
helm asks the cluster, whose discovery lists them; `helm template` 4 knows group/versions only, and would
render Traefik's PodDisruptionBudget as policy/v1beta1, which no supported Kubernetes serves."""
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


@dataclass(frozen=True)
class KubeObject:
    """One object of the cluster and where it comes from (`ours`, `helm release X`, `operator ...`)."""

    obj: dict[str, Any]
    origin: str
    resource: Resource | None = None
    """The Pulumi resource that creates it: the object itself, or its Helm release."""
    hooks: tuple[str, ...] = ()
    """The Helm hook events that create it (`pre-install`, `pre-delete`, ...); empty for a release object."""
    modelled: bool = False
    """Created by an operator at run time: modelled here, not applied by anyone we control."""

    @property
    def hook(self) -> bool:
        return bool(self.hooks)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str(lookup(self.obj, "metadata.name") or "")

    @property
    def namespace(self) -> str | None:
        namespace = lookup(self.obj, "metadata.namespace")
        return namespace if isinstance(namespace, str) else None

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} ({self.origin})"


@dataclass(frozen=True)
class Pod:
    """A pod as the node and NetworkPolicies see it: one per workload (replicas do not matter here)."""

    namespace: str
    name: str
    labels: dict[str, str]
    spec: dict[str, Any]
    annotations: dict[str, str]
    source: KubeObject

    @property
    def endpoint(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def host_network(self) -> bool:
        return bool(self.spec.get("hostNetwork"))

    def template(self) -> dict[str, Any]:
        """The pod as `{metadata, spec}`, as Pod Security admission reads it."""
        return {"metadata": {"labels": self.labels, "annotations": self.annotations}, "spec": self.spec}

    def container_ports(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for field_name in ("initContainers", "containers"):
            for container in self.spec.get(field_name) or []:
                for port in container.get("ports") or []:
                    yield str(container.get("name")), port


@dataclass
class Cluster:
    stack: str
    objects: list[KubeObject] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    """Why some objects are missing (a release helm could not render)."""

    def of_kind(self, *kinds: str) -> list[KubeObject]:
        return [o for o in self.objects if o.kind in kinds]

    def applied(self) -> list[KubeObject]:
        """What Pulumi and Helm send to the API server (operators' objects left out)."""
        return [o for o in self.objects if not o.modelled]

    def pods(self) -> list[Pod]:
        return [pod for o in self.objects if o.kind in WORKLOAD_KINDS for pod in _pods_of(o)]

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        for o in self.of_kind("Namespace"):
            if o.name == namespace:
                labels = lookup(o.obj, "metadata.labels")
                return dict(labels) if isinstance(labels, dict) else {}
        return None


def cluster(rendering: Rendering) -> Cluster:
    """The cluster of a rendering. Helm's output is cached by what it depends on (chart, values,
    versions), so asking again, or after changing one resource, costs little."""
    result = Cluster(rendering.stack)
    for resource in rendering.kubernetes_objects():
        result.objects.append(KubeObject(validation_view(resource.inputs), "ours", resource))
    crds = _crd_api_versions([o.obj for o in result.objects if o.kind == "CustomResourceDefinition"])
    rendered: dict[str, list[KubeObject]] = {}
    for release in _in_install_order(rendering):
        rendered[release.urn] = _render_release(rendering, release, crds, rendered, result.gaps)
        result.objects += rendered[release.urn]
    result.objects += list(operator_pods(result.objects))
    return result


def _in_install_order(rendering: Rendering) -> list[Resource]:
    """Releases after the releases they wait for (the order helm installs them in on `pulumi up`)."""
    releases = rendering.helm_releases()
    ordered: list[Resource] = []
    remaining = list(releases)
    while remaining:
        ready = [
            r for r in remaining if not any(rendering.depends_on(r, other) for other in remaining if other is not r)
        ]
        if not ready:  # a cycle: the engine would refuse it; keep going in registration order
            ready = remaining[:1]
        for release in ready:
            ordered.append(release)
            remaining.remove(release)
    return ordered


def _render_release(
    rendering: Rendering,
    release: Resource,
    own_crds: set[str],
    rendered: dict[str, list[KubeObject]],
    gaps: list[str],
) -> list[KubeObject]:
    chart, version = str(release.inputs.get("chart")), str(release.inputs.get("version"))
    name = str(release.inputs.get("name", release.name))
    namespace = str(release.inputs.get("namespace") or "default")
    package = helm.chart_package(chart, version)
    if package is None:
        gaps.append(f"{describe(release)}: no chart package {chart}-{version}.tgz to render it with")
        return []
    if helm.helm_binary() is None:
        gaps.append(f"{describe(release)}: {helm.INSTALL_HINT}")
        return []
    installed_before = {
        api
        for other_urn, objects in rendered.items()
        if rendering.depends_on(release, rendering.by_urn(other_urn))
        for api in _crd_api_versions([o.obj for o in objects if o.kind == "CustomResourceDefinition"])
    }
    values = json.dumps(validation_view(release.inputs.get("values")) or {}, sort_keys=True)
    kube_version = f"v{kubernetes_minor(rendering)}.0"
    known = own_crds | installed_before | BUILT_IN_KINDS
    try:
        objects = _template(name, str(package), namespace, values, kube_version, tuple(sorted(known)))
    except helm.HelmError as error:
        gaps.append(f"{describe(release)}: {error}")
        return []
    origin = f"helm release {name}"
    return [
        KubeObject(_with_namespace(item, namespace), origin, release, hooks=o.hooks)
        for o in objects
        if not o.is_test
        for item in _items(o.obj)
    ]


def _items(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """A `List` stands for its items: Helm's client creates each of them."""
    if obj.get("kind") == "List" and obj.get("apiVersion") == "v1":
        return [item for item in obj.get("items") or [] if isinstance(item, dict)]
    return [obj]


@functools.lru_cache(maxsize=64)
def _template(
    name: str, package: str, namespace: str, values: str, kube_version: str, known: tuple[str, ...]
) -> tuple[helm.RenderedObject, ...]:
    """`helm template` with the API versions `known` to be installed before it (values as canonical
    JSON), once per distinct input. When the chart brings CRDs of its own that are not among them,
    rendered with them added: its templates may test for its own CRDs. Which CRDs it brings is what
    a first rendering with `known` prints, read for its CRDs only; remembered in the tools cache
    under everything that rendering depends on, so a later run renders once."""
    render = functools.partial(helm.template_text, name, Path(package), namespace, json.loads(values), kube_version)
    memory = _chart_crds_entry(name, package, namespace, values, kube_version, known)
    chart_crds = _remembered(memory)
    chunks: helm.ParsedChunks = {}
    text = None
    if chart_crds is None:
        text = render(known)
        printed = helm.parse_manifests(text, chunks, only_crds=True)
        chart_crds = _crd_api_versions([o.obj for o in printed if o.obj.get("kind") == helm.CRD_KIND])
        _remember(memory, chart_crds)
    api_versions = tuple(sorted(set(known) | chart_crds))
    if text is None or api_versions != known:
        text = render(api_versions)
    return tuple(helm.parse_manifests(text, chunks))


def _chart_crds_entry(name: str, package: str, *inputs: object) -> Path | None:
    """Where the CRD API versions of a first rendering are kept: named by its every input (the
    package's bytes, the helm binary as installed), so it cannot stand for another rendering.
    None for a chart directory (not a package), which may change under the same name."""
    if not Path(package).is_file():
        return None
    binary = helm.helm_binary()
    stat = binary.stat() if binary is not None and binary.exists() else None
    digest = hashlib.sha256(json.dumps([CHART_CRDS_FORMAT, name, *inputs, str(binary)]).encode())
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode() if stat else b"-")
    digest.update(Path(package).read_bytes())
    return chart_crds_dir() / f"{digest.hexdigest()}.json"


def chart_crds_dir() -> Path:
    from tools.podsecurity import cache_root  # the tools cache every checker shares

    return cache_root() / "chart-crds"


def _remembered(entry: Path | None) -> set[str] | None:
    if entry is None:
        return None
    try:
        listed = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    return set(listed) if isinstance(listed, list) and all(isinstance(api, str) for api in listed) else None


def _remember(entry: Path | None, apis: set[str]) -> None:
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, suffix=".tmp", delete=False) as scratch:
            scratch.write(json.dumps(sorted(apis)))
        os.replace(scratch.name, entry)
    except OSError:
        return  # no cache: the next run renders twice again


def _with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Helm puts a namespaced object without a namespace into the release namespace."""
    if obj.get("kind") in CLUSTER_SCOPED or lookup(obj, "metadata.namespace"):
        return obj
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}


def _crd_api_versions(crds: list[dict[str, Any]]) -> set[str]:
    """`group/version` and `group/version/Kind` of every served version, as helm's --api-versions."""
    apis: set[str] = set()
    for crd in crds:
        group, kind = lookup(crd, "spec.group"), lookup(crd, "spec.names.kind")
        for version in lookup(crd, "spec.versions") or []:
            if version.get("served", True):
                apis |= {f"{group}/{version['name']}", f"{group}/{version['name']}/{kind}"}
    return apis


# --- pods ----------------------------------------------------------------------------------


def _pods_of(o: KubeObject) -> list[Pod]:
    if o.kind == "Pod":
        template: Any = {"metadata": o.obj.get("metadata") or {}, "spec": o.obj.get("spec") or {}}
    elif o.kind == "CronJob":
        template = lookup(o.obj, "spec.jobTemplate.spec.template")
    else:
        template = lookup(o.obj, "spec.template")
    if not isinstance(template, dict):
        return []
    metadata = template.get("metadata") or {}
    suffix = "" if o.kind == "Pod" else "-0"
    return [
        Pod(
            namespace=o.namespace or "default",
            name=f"{o.name}{suffix}",
            labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
            spec=template.get("spec") or {},
            annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
            source=o,
        )
    ]


# --- what operators create -----------------------------------------------------------------

# prometheus-operator gives every container it adds this security context (pkg/prometheus/server
# statefulset.go, pkg/operator config reloader); the pod's comes from the custom resource.
_OPERATOR_CONTAINER_SECURITY = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
_PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"


def operator_pods(objects: list[KubeObject]) -> Iterator[KubeObject]:
    """The StatefulSets operators make from the custom resources in `objects` (modelled)."""
    for o in objects:
        api = o.obj.get("apiVersion")
        if api == _PROMETHEUS_OPERATOR and o.kind == "Prometheus":
            yield _prometheus_statefulset(o)
        elif api == _PROMETHEUS_OPERATOR and o.kind == "Alertmanager":
            yield _alertmanager_statefulset(o)
    if any(o.origin.startswith("helm release") and o.name == "longhorn-manager" for o in objects):
        namespace = next(o.namespace for o in objects if o.name == "longhorn-manager")
        yield from _longhorn_pods(namespace or "longhorn-system")


def _operator_container(name: str, ports: list[dict[str, Any]], resources: Any = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": f"operator-managed/{name}",
        "ports": ports,
        "securityContext": dict(_OPERATOR_CONTAINER_SECURITY),
    }
    if resources:
        container["resources"] = resources
    return container


def _statefulset(o: KubeObject, name: str, labels: dict[str, str], spec: dict[str, Any]) -> KubeObject:
    pod_metadata_labels = lookup(o.obj, "spec.podMetadata.labels") or {}
    obj = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": o.namespace},
        "spec": {"template": {"metadata": {"labels": {**pod_metadata_labels, **labels}}, "spec": spec}},
    }
    return KubeObject(obj, f"prometheus-operator, from {o.kind} {o.namespace}/{o.name}", o.resource, modelled=True)


def _prometheus_statefulset(o: KubeObject) -> KubeObject:
    spec = o.obj.get("spec") or {}
    containers = [
        _operator_container("prometheus", [{"name": "web", "containerPort": 9090}], spec.get("resources")),
        _operator_container("config-reloader", [{"name": "reloader-web", "containerPort": 8080}]),
    ]
    if spec.get("thanos") is not None:
        thanos_ports = [{"name": "grpc", "containerPort": 10901}, {"name": "http", "containerPort": 10902}]
        containers.append(_operator_container("thanos-sidecar", thanos_ports))
    labels = {
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": o.name,
        "prometheus": o.name,
        "operator.prometheus.io/shard": "0",
        "operator.prometheus.io/name": o.name,
    }
    pod_spec = _pod_spec(spec, containers, [_operator_container("init-config-reloader", [])])
    return _statefulset(o, f"prometheus-{o.name}", labels, pod_spec)


def _alertmanager_statefulset(o: KubeObject) -> KubeObject:
    spec = o.obj.get("spec") or {}
    mesh = [{"name": "mesh-tcp", "containerPort": 9094}, {"name": "mesh-udp", "containerPort": 9094, "protocol": "UDP"}]
    containers = [
        _operator_container(
            "alertmanager", [{"name": "http-web", "containerPort": 9093}, *mesh], spec.get("resources")
        ),
        _operator_container("config-reloader", [{"name": "reloader-web", "containerPort": 8080}]),
    ]
    labels = {
        "app.kubernetes.io/name": "alertmanager",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/instance": o.name,
        "alertmanager": o.name,
    }
    pod_spec = _pod_spec(spec, containers, [_operator_container("init-config-reloader", [])])
    return _statefulset(o, f"alertmanager-{o.name}", labels, pod_spec)


def _pod_spec(spec: dict[str, Any], containers: list[dict[str, Any]], init: list[dict[str, Any]]) -> dict[str, Any]:
    volumes = [{"name": "config", "secret": {"secretName": "generated"}}]
    volumes += list(spec.get("volumes") or [])
    pod: dict[str, Any] = {"containers": containers, "initContainers": init, "volumes": volumes}
    if spec.get("securityContext"):
        pod["securityContext"] = spec["securityContext"]
    if spec.get("hostNetwork"):
        pod["hostNetwork"] = True
    return pod


# Longhorn's manager creates these pods itself (privileged, host mounts), with these labels.
_LONGHORN_PODS = {
    "instance-manager": {"longhorn.io/component": "instance-manager"},
    "engine-image": {"longhorn.io/component": "engine-image"},
    "csi-attacher": {"app": "csi-attacher"},
    "csi-provisioner": {"app": "csi-provisioner"},
    "csi-resizer": {"app": "csi-resizer"},
    "csi-snapshotter": {"app": "csi-snapshotter"},
    "longhorn-csi-plugin": {"app": "longhorn-csi-plugin"},
}


def _longhorn_pods(namespace: str) -> Iterator[KubeObject]:
    privileged = {"privileged": True}
    for name, labels in _LONGHORN_PODS.items():
        spec = {"containers": [{"name": name, "image": f"longhorn-managed/{name}", "securityContext": privileged}]}
        obj = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet" if name in ("engine-image", "longhorn-csi-plugin") else "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": spec}},
        }
        yield KubeObject(obj, "longhorn-manager", modelled=True)
