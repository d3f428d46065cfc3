"""Capacity: what every container we define or size asks of the cluster, against what it offers.

The cluster is the Minikube host, or on an existing cluster all its nodes together
(`kubernetes.nodes` or `kubernetes.total`, each node's reserve taken off). Counted: containers of
typed workloads (times `spec.replicas`; a DaemonSet runs one pod on every node) and the containers
charts run with our values, found through the explicit per-chart table `HELM_CONTAINERS` below
(values are our values merged over the chart defaults, as Helm does).
Init containers and hook Jobs must be sized too, but run before or beside the steady state and
are not summed. Longhorn runs containers no value sizes (its UI, driver deployer, the CSI and
engine-image pods its manager creates): they are counted with the requests the LimitRange of its
namespace fills in, and its instance manager with the CPU Longhorn guarantees it
(`guaranteedInstanceManagerCPU`, a share of the node's CPUs). The node offers `node.cpus -
node.reservedCpus` CPUs and `node.memoryGib - node.reservedMemoryGib` GiB (the reserve is the system
pods'); requests above 80 % of that are a finding, and so is any container we configure without CPU
and memory requests or a memory limit. The report also gives the platform's share of the whole node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from components.settings import ExistingCluster, NodeCapacity
from tools.cluster import cluster
from tools.engine import Rendering, Resource
from tools.validators import helm_values
from tools.validators.common import (
    WORKLOAD_KINDS,
    Finding,
    containers,
    deep_merge,
    describe,
    lookup,
    parse_quantity,
    pod_spec,
    reveal,
    stack_config,
    validation_view,
)

NAME = "capacity"
NEEDS_REFERENCE = True
BUDGET = 0.8
GIB = 2.0**30


@dataclass(frozen=True)
class HelmContainer:
    """A container (or a set of identical ones) a chart runs, sized by one `resources` block."""

    resources: str
    """Values path of the container's resources block."""
    replicas: str | None = None
    """Values path of the pod's replica count (None: one pod)."""
    when: tuple[str, ...] = ()
    """Values paths that must all be set/true for the chart to run the container."""
    unless: tuple[str, ...] = ()
    """Values paths any of which, when true, means the container does not run."""
    per: tuple[str, ...] = ()
    """One container per path that is true (e.g. Grafana's sidecars share one resources block)."""
    daemonset_if: tuple[str, str] | None = None
    """(path, value) that makes the workload a DaemonSet: one pod on our single node."""
    transient: bool = False
    """An init container or hook Job: must be sized, not part of the steady-state sum."""


_PROMETHEUS = ("prometheus.enabled",)
_OPERATOR_WEBHOOK = ("prometheusOperator.enabled", "prometheusOperator.admissionWebhooks.enabled")
_GRAFANA_SIDECARS = tuple(
    f"grafana.sidecar.{kind}.enabled" for kind in ("dashboards", "datasources", "notifiers", "alerts", "plugins")
)
# Grafana 12's one-shot init copies of its sidecars (`initDatasources`, ...), sized by the sidecars' block.
_GRAFANA_INIT_SIDECARS = tuple(
    HelmContainer(
        "grafana.sidecar.resources",
        when=("grafana.enabled", f"grafana.sidecar.{kind}.enabled", f"grafana.sidecar.{kind}.init{kind.title()}"),
        transient=True,
    )
    for kind in ("dashboards", "datasources", "notifiers", "alerts")
)

HELM_CONTAINERS: dict[str, tuple[HelmContainer, ...]] = {
    "kube-prometheus-stack": (
        HelmContainer("prometheus.prometheusSpec.resources", "prometheus.prometheusSpec.replicas", _PROMETHEUS),
        # The operator adds the Thanos sidecar to each Prometheus pod only when spec.thanos is set.
        HelmContainer(
            "prometheus.prometheusSpec.thanos.resources",
            "prometheus.prometheusSpec.replicas",
            (*_PROMETHEUS, "prometheus.prometheusSpec.thanos"),
        ),
        # The operator's config-reloader sidecar runs in every Prometheus and Alertmanager pod.
        HelmContainer(
            "prometheusOperator.prometheusConfigReloader.resources", "prometheus.prometheusSpec.replicas", _PROMETHEUS
        ),
        HelmContainer(
            "prometheusOperator.prometheusConfigReloader.resources",
            "alertmanager.alertmanagerSpec.replicas",
            ("alertmanager.enabled",),
        ),
        HelmContainer(
            "alertmanager.alertmanagerSpec.resources",
            "alertmanager.alertmanagerSpec.replicas",
            ("alertmanager.enabled",),
        ),
        HelmContainer("prometheusOperator.resources", when=("prometheusOperator.enabled",)),
        HelmContainer(
            "prometheusOperator.admissionWebhooks.deployment.resources",
            "prometheusOperator.admissionWebhooks.deployment.replicas",
            (*_OPERATOR_WEBHOOK, "prometheusOperator.admissionWebhooks.deployment.enabled"),
        ),
        HelmContainer(
            "prometheusOperator.admissionWebhooks.patch.resources",
            when=(*_OPERATOR_WEBHOOK, "prometheusOperator.admissionWebhooks.patch.enabled"),
            unless=("prometheusOperator.admissionWebhooks.certManager.enabled",),
            transient=True,
        ),
        HelmContainer("grafana.resources", "grafana.replicas", ("grafana.enabled",)),
        HelmContainer("grafana.sidecar.resources", "grafana.replicas", ("grafana.enabled",), per=_GRAFANA_SIDECARS),
        HelmContainer(
            "grafana.initChownData.resources",
            when=("grafana.enabled", "grafana.persistence.enabled", "grafana.initChownData.enabled"),
            transient=True,
        ),
        HelmContainer(
            "grafana.downloadDashboards.resources", when=("grafana.enabled", "grafana.dashboards"), transient=True
        ),
        *_GRAFANA_INIT_SIDECARS,
        HelmContainer(
            "grafana.imageRenderer.resources",
            "grafana.imageRenderer.replicas",
            ("grafana.enabled", "grafana.imageRenderer.enabled"),
        ),
        HelmContainer("kube-state-metrics.resources", "kube-state-metrics.replicas", ("kubeStateMetrics.enabled",)),
        HelmContainer(
            "kube-state-metrics.kubeRBACProxy.resources",
            "kube-state-metrics.replicas",
            ("kubeStateMetrics.enabled", "kube-state-metrics.kubeRBACProxy.enabled"),
        ),
        HelmContainer(
            "prometheus-node-exporter.resources",
            when=("nodeExporter.enabled",),
            daemonset_if=("nodeExporter.enabled", "*"),
        ),
        HelmContainer(
            "prometheus-node-exporter.kubeRBACProxy.resources",
            when=("nodeExporter.enabled", "prometheus-node-exporter.kubeRBACProxy.enabled"),
            daemonset_if=("nodeExporter.enabled", "*"),
        ),
        HelmContainer(
            "thanosRuler.thanosRulerSpec.resources", "thanosRuler.thanosRulerSpec.replicas", ("thanosRuler.enabled",)
        ),
        # 88.x: the CRD upgrade hook Job; its busybox init container and kubectl share the block.
        HelmContainer("crds.upgradeJob.resources", when=("crds.enabled", "crds.upgradeJob.enabled"), transient=True),
        # Not listed: prometheus-windows-exporter (`windowsMonitoring.enabled`), a DaemonSet for
        # Windows nodes only, so it never runs on the Linux node.
    ),
    "opensearch": (
        HelmContainer("resources", "replicas"),
        # Every init container the chart runs (fsgroup-volume, sysctl, configfile, keystore) shares `initResources`.
        HelmContainer("initResources", when=("persistence.enabled", "persistence.enableInitChown"), transient=True),
        HelmContainer("initResources", when=("sysctlInit.enabled",), transient=True),
        HelmContainer("initResources", when=("config",), transient=True),
        HelmContainer("initResources", when=("keystore",), transient=True),
        HelmContainer("sidecarResources", "replicas", when=("masterTerminationFix",)),
        # Our one extra container: the snapshot exporter beside each node (components/opensearch_exporter.py).
        HelmContainer("extraContainers.0.resources", "replicas", when=("extraContainers",)),
    ),
    "fluent-bit": (
        HelmContainer("resources", "replicaCount", daemonset_if=("kind", "DaemonSet")),
        HelmContainer(
            "hotReload.resources", "replicaCount", ("hotReload.enabled",), daemonset_if=("kind", "DaemonSet")
        ),
    ),
    # longhorn-manager, a DaemonSet; Longhorn's other containers are sized by SIZED_BY_LIMIT_RANGE.
    "longhorn": (HelmContainer("longhornManager.resources", daemonset_if=("longhornManager.resources", "*")),),
    # Traefik's one container; the chart runs no hook Job, and no other container unless values add
    # one (`deployment.initContainers`, `deployment.additionalContainers`: we add none).
    "traefik": (
        HelmContainer(
            "resources",
            "deployment.replicas",
            ("deployment.enabled",),
            daemonset_if=("deployment.kind", "DaemonSet"),
        ),
    ),
}

# Charts whose containers are sized outside their values (documented exceptions); a chart also in
# HELM_CONTAINERS has the containers listed there sized through values.
SIZED_BY_LIMIT_RANGE: dict[str, str] = {
    # Longhorn 1.12 sizes only longhorn-manager through values: components/longhorn.py gives its
    # namespace a LimitRange with default requests for the UI, the driver deployer, the manager's
    # image pre-pull container and the pods the manager creates (CSI, engine image, instance
    # managers). Those are counted below (LONGHORN_UNSIZED) with the LimitRange's requests.
    "longhorn": "Longhorn sizes only longhorn-manager through values; a LimitRange in its namespace gives the "
    "UI, driver deployer, CSI, engine-image and instance-manager containers default requests",
}


@dataclass(frozen=True)
class Unsized:
    """Containers a chart (or the operator it installs) runs without any value sizing them."""

    name: str
    replicas: str | None = None
    """Values path of the replica count (None: one pod, or a DaemonSet's one pod on our node)."""
    default_replicas: int = 1
    """The count when the values leave it unset (what the manager falls back to)."""
    containers: int = 1
    """Containers per pod."""
    per_node: bool = False
    """A DaemonSet: one pod on every node."""


LONGHORN_UNSIZED = (
    Unsized("longhorn-ui", "longhornUI.replicas", 2),
    Unsized("longhorn-driver-deployer"),
    # The manager deploys the CSI controllers with 3 replicas unless `csi.*ReplicaCount` says otherwise.
    Unsized("csi-attacher", "csi.attacherReplicaCount", 3),
    Unsized("csi-provisioner", "csi.provisionerReplicaCount", 3),
    Unsized("csi-resizer", "csi.resizerReplicaCount", 3),
    Unsized("csi-snapshotter", "csi.snapshotterReplicaCount", 3),
    # A DaemonSet: node-driver-registrar, longhorn-liveness-probe and longhorn-csi-plugin.
    Unsized("longhorn-csi-plugin", containers=3, per_node=True),
    Unsized("engine-image", per_node=True),
)
"""What Longhorn 1.12 runs on the node besides the manager: the chart's UI and driver deployer, and the
pods the manager creates (CSI, engine image). The instance manager is counted apart (its CPU is the
guaranteed share). Not counted: the manager's image pre-pull init container (before the steady
state) and share managers (RWX volumes only; the platform has none)."""
INSTANCE_MANAGER_CPU = "defaultSettings.guaranteedInstanceManagerCPU"
LONGHORN_DEFAULT_GUARANTEE = 12.0
"""Longhorn's default guaranteed instance-manager CPU, in percent of the node's CPUs."""


@dataclass(frozen=True)
class Sized:
    """Requests and limits of `count` identical containers."""

    source: str
    count: int
    cpu_request: float | None
    memory_request: float | None
    memory_limit: float | None
    transient: bool


@dataclass
class Capacity:
    """The capacity report of one stack."""

    stack: str
    node: NodeCapacity
    """The whole cluster: the Minikube host, or the sum of an existing cluster's nodes (and their reserves)."""
    nodes: int = 1
    """How many nodes: each runs one pod of every DaemonSet."""
    entries: list[Sized] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def allocatable_cpu(self) -> float:
        return self.node.cpus - self.node.reserved_cpus

    @property
    def allocatable_memory(self) -> float:
        return (self.node.memory_gib - self.node.reserved_memory_gib) * GIB

    def total(self, attribute: str) -> float:
        return sum((getattr(e, attribute) or 0.0) * e.count for e in self.entries if not e.transient)

    def node_share(self, attribute: str) -> float:
        """The platform's requests as a share of the whole node (system reserve included in the node)."""
        whole = self.node.cpus if attribute == "cpu_request" else self.node.memory_gib * GIB
        return self.total(attribute) / whole

    def _nodes(self) -> str:
        return "node" if self.nodes == 1 else f"{self.nodes} nodes together,"

    def report(self) -> str:
        cpu, memory = self.total("cpu_request"), self.total("memory_request")
        limit = self.total("memory_limit")
        whole = "node" if self.nodes == 1 else "cluster"
        lines = [
            f"capacity of {self.stack}: {self._nodes()} {self.node.cpus:g} CPU / {self.node.memory_gib:g} GiB, "
            "system reserve "
            f"{self.node.reserved_cpus:g} CPU / {self.node.reserved_memory_gib:g} GiB -> allocatable "
            f"{self.allocatable_cpu:g} CPU / {self.allocatable_memory / GIB:g} GiB; budget {BUDGET:.0%} = "
            f"{self.allocatable_cpu * BUDGET:.2f} CPU / {self.allocatable_memory * BUDGET / GIB:.2f} GiB",
            f"  requests: cpu {_cpu(cpu)} ({_share(cpu, self.allocatable_cpu)} of allocatable), "
            f"memory {_mem(memory)} ({_share(memory, self.allocatable_memory)}); "
            f"memory limits {_mem(limit)} ({_share(limit, self.allocatable_memory)})",
            f"  of the whole {whole}: cpu {self.node_share('cpu_request'):.0%} of {self.node.cpus:g} CPU, memory "
            f"{self.node_share('memory_request'):.0%} of {self.node.memory_gib:g} GiB",
            f"  {'count':>5}  {'cpu req':>8}  {'mem req':>8}  {'mem lim':>8}  container",
        ]
        for entry in sorted(self.entries, key=lambda e: (e.transient, e.source)):
            mark = "  (init/job, not summed)" if entry.transient else ""
            lines.append(
                f"  {entry.count:>5}  {_cpu(entry.cpu_request):>8}  {_mem(entry.memory_request):>8}  "
                f"{_mem(entry.memory_limit):>8}  {entry.source}{mark}"
            )
        lines += [f"  sized elsewhere: {exception}" for exception in self.exceptions]
        return "\n".join(lines)


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}m"


def _mem(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}Mi"


def _share(value: float, whole: float) -> str:
    return f"{value / whole:.0%}" if whole else "n/a"


# --- building the report ------------------------------------------------------------------


def cluster_capacity(rendering: Rendering) -> tuple[NodeCapacity, int]:
    """(all nodes as one, how many nodes) of the stack's cluster."""
    existing = stack_config(rendering, "kubernetes")
    if isinstance(existing, dict):
        described = ExistingCluster.model_validate(existing)
        return described.capacity, described.node_count
    return NodeCapacity.model_validate(stack_config(rendering, "node") or {}), 1


def capacity(rendering: Rendering) -> Capacity:
    result = Capacity(rendering.stack, *cluster_capacity(rendering))
    for resource in rendering.kubernetes_objects():
        if resource.kind in WORKLOAD_KINDS:
            _typed_workload(result, resource)
    for release in rendering.helm_releases():
        _helm_release(result, rendering, release)
    _budget(result)
    result.findings += _pods_that_fit_no_node(rendering)
    return result


def _pods_that_fit_no_node(rendering: Rendering) -> list[Finding]:
    """On an existing cluster, each pod's containers together must fit on its smallest node (after that
    node's reserve): the sum over all nodes can hide a pod no single node can take."""
    existing = stack_config(rendering, "kubernetes")
    if not isinstance(existing, dict):
        return []  # one node: the sum is the check
    described = ExistingCluster.model_validate(existing)
    node = described.smallest_node
    room = (
        node.cpus - described.reserved_cpus_per_node,
        (node.memory_gib - described.reserved_memory_gib_per_node) * GIB,
    )
    findings = []
    for pod in cluster(rendering).pods():
        cpu, memory = _pod_requests(pod.spec)
        if cpu > room[0] or memory > room[1]:
            findings.append(
                Finding(
                    NAME,
                    f"{pod.source.describe()}",
                    f"requests {_cpu(cpu)} / {_mem(memory)}, more than the smallest node offers "
                    f"({_cpu(room[0])} / {_mem(room[1])} after its reserve): no node could run it",
                )
            )
    return findings


def _pod_requests(spec: dict[str, Any]) -> tuple[float, float]:
    """What the scheduler reserves for a pod: its containers' requests, or its largest init container's."""

    def requested(containers: list[dict[str, Any]], resource: str) -> list[float]:
        return [parse_quantity(((c.get("resources") or {}).get("requests") or {}).get(resource, 0)) for c in containers]

    containers, init = spec.get("containers") or [], spec.get("initContainers") or []
    cpu = max(sum(requested(containers, "cpu")), *requested(init, "cpu"), 0.0)
    memory = max(sum(requested(containers, "memory")), *requested(init, "memory"), 0.0)
    return cpu, memory


def validate(rendering: Rendering) -> list[Finding]:
    return capacity(rendering).findings


def _typed_workload(result: Capacity, resource: Resource) -> None:
    obj = validation_view(resource.inputs)
    spec = pod_spec(obj)
    if spec is None:
        return
    kind = resource.kind
    replicas = (
        result.nodes
        if kind == "DaemonSet"
        else 1
        if kind in ("Pod", "Job", "CronJob")
        else _count(lookup(obj, "spec.replicas"), 1)
    )
    for field_name, container, is_init in containers(spec):
        source = f"{describe(resource)} {field_name[:-1]} {container.get('name')}"
        _add(result, source, container.get("resources"), replicas, is_init or kind in ("Job", "CronJob"))


def _helm_release(result: Capacity, rendering: Rendering, release: Resource) -> None:
    chart, version = str(release.inputs.get("chart")), str(release.inputs.get("version"))
    where = describe(release)
    if chart in SIZED_BY_LIMIT_RANGE:
        namespace = release.inputs.get("namespace")
        defaults = _default_requests(rendering, namespace)
        if defaults is not None:
            result.exceptions.append(f"{where}: {SIZED_BY_LIMIT_RANGE[chart]}")
            if chart == "longhorn":
                _longhorn_unsized(result, where, _merged_values(release, chart, version), defaults)
        else:
            result.findings.append(
                Finding(NAME, where, f"no LimitRange with default CPU and memory requests in namespace {namespace}")
            )
        if chart not in HELM_CONTAINERS:
            return
    table = HELM_CONTAINERS.get(chart)
    if table is None:
        result.findings.append(
            Finding(NAME, where, f"chart {chart} has no entry in the capacity table HELM_CONTAINERS")
        )
        return
    values = _merged_values(release, chart, version)
    for container in table:
        if not all(_truthy(lookup(values, path)) for path in container.when):
            continue
        if any(_truthy(lookup(values, path)) for path in container.unless):
            continue
        per = sum(1 for path in container.per if _truthy(lookup(values, path))) if container.per else 1
        if per == 0:
            continue
        pods = result.nodes if _is_daemonset(values, container) else _count(lookup(values, container.replicas or ""), 1)
        _add(
            result,
            f"{where} {container.resources}",
            lookup(values, container.resources),
            pods * per,
            container.transient,
        )


def _is_daemonset(values: Any, container: HelmContainer) -> bool:
    if container.daemonset_if is None:
        return False
    path, expected = container.daemonset_if
    return expected == "*" or lookup(values, path) == expected


def _merged_values(release: Resource, chart: str, version: str) -> Any:
    """Our values over the chart's defaults, as Helm merges them."""
    return deep_merge(helm_values.chart_defaults(chart, version) or {}, validation_view(release.inputs.get("values")))


def _default_requests(rendering: Rendering, namespace: Any) -> dict[str, Any] | None:
    """The CPU and memory requests a LimitRange in `namespace` gives a container without any, or None."""
    for resource in rendering.kubernetes_objects():
        if resource.kind != "LimitRange" or resource.metadata.get("namespace") != namespace:
            continue
        for limit in reveal(lookup(resource.inputs, "spec.limits")) or []:
            requests = reveal(reveal(limit).get("defaultRequest") or {})
            if reveal(limit).get("type") == "Container" and "cpu" in requests and "memory" in requests:
                return dict(requests)
    return None


def _longhorn_unsized(result: Capacity, where: str, values: Any, defaults: dict[str, Any]) -> None:
    """Longhorn's containers no value sizes, with the LimitRange's requests (and no memory limit: the
    LimitRange sets none, deliberately), and the instance manager with its guaranteed CPU."""
    cpu, memory = parse_quantity(defaults["cpu"]), parse_quantity(defaults["memory"])
    for unsized in LONGHORN_UNSIZED:
        pods = (
            result.nodes
            if unsized.per_node
            else _count(lookup(values, unsized.replicas or ""), unsized.default_replicas)
        )
        source = f"{where} {unsized.name} (LimitRange default)"
        result.entries.append(Sized(source, pods * unsized.containers, cpu, memory, None, transient=False))
    share = _guaranteed_share(lookup(values, INSTANCE_MANAGER_CPU))
    source = f"{where} instance-manager ({share:g}% of the node's CPUs guaranteed; memory: LimitRange default)"
    # One per node, each guaranteed its share of that node: the share of all nodes' CPUs together.
    per_node = result.node.cpus * share / 100 / result.nodes
    result.entries.append(Sized(source, result.nodes, per_node, memory, None, transient=False))


def _guaranteed_share(setting: Any) -> float:
    """The v1 data engine's guaranteed instance-manager CPU, in percent (the v2 engine is off): a
    per-engine map, its JSON form, or one number for every engine."""
    if isinstance(setting, str) and setting.strip().startswith("{"):
        setting = json.loads(setting)
    if isinstance(setting, dict):
        setting = setting.get("v1")
    if setting is None or setting == "":
        return LONGHORN_DEFAULT_GUARANTEE
    return float(setting)


def _add(result: Capacity, source: str, resources: Any, count: int, transient: bool) -> None:
    resources = resources if isinstance(resources, dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    missing = [
        what
        for what, present in (
            ("CPU request", "cpu" in requests),
            ("memory request", "memory" in requests),
            ("memory limit", "memory" in limits),
        )
        if not present
    ]
    if missing:
        result.findings.append(Finding(NAME, source, f"no {', no '.join(missing)}"))
    values: dict[str, float | None] = {}
    for key, block, resource_name in (
        ("cpu_request", requests, "cpu"),
        ("memory_request", requests, "memory"),
        ("memory_limit", limits, "memory"),
    ):
        values[key] = None
        if resource_name in block:
            try:
                values[key] = parse_quantity(block[resource_name])
            except ValueError as error:
                result.findings.append(Finding(NAME, source, str(error)))
    result.entries.append(Sized(source, count, transient=transient, **values))


def _budget(result: Capacity) -> None:
    for attribute, allocatable, label, unit in (
        ("cpu_request", result.allocatable_cpu, "CPU", _cpu),
        ("memory_request", result.allocatable_memory, "memory", _mem),
    ):
        requested = result.total(attribute)
        if requested > allocatable * BUDGET:
            result.findings.append(
                Finding(
                    NAME,
                    f"stack {result.stack}",
                    f"{label} requests {unit(requested)} exceed {BUDGET:.0%} of the allocatable {unit(allocatable)} "
                    f"({_share(requested, allocatable)}); shrink requests or raise node capacity in the stack config",
                )
            )


def _truthy(value: Any) -> bool:
    return bool(value) and value != "false"


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
