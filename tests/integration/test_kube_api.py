"""Every object of each fixture stack, applied to a real Kubernetes v1.36.3 control plane
(`tests/integration/kube_api.py`: etcd, kube-apiserver with minikube's admission plugins,
kube-controller-manager, kube-scheduler, kwok playing the nodes), instead of the file-based models.

For each fixture stack (rendered with the object store's CA, so the Secrets carry the real
certificates its central issues), on a control plane of its own:

- kwok plays the nodes the stack runs on: a Minikube stack's one node, `minikube`; or each node an
  existing cluster's `kubernetes` section declares (`nodes`, or `total` shared evenly), named
  `<cluster>-<n>`, with its CPUs and memory as capacity, those less the stack's per-node reserve as
  allocatable, and an InternalIP in the first `nodeCidrs` block (numbered from `ingress.address`
  when that is a node's): kube-scheduler then proves every pod fits and every hard anti-affinity holds.

- Every object Pulumi and Helm apply (`tools.cluster`: ours and the charts', hooks included, Helm
  test pods left out) is applied server-side with strict field validation, as Helm 4 and Pulumi's
  provider apply, in dependency order (`kube_api.WAVES`): Namespaces, CRDs and PriorityClasses,
  then what workloads read, then the workloads, then webhook configurations (their server, the
  operator, never runs here). The apiserver's schema, defaulting, validation and admission decide;
  a refusal is reported with its exact message. Every CRD of the charts becomes Established.
- The StorageClass Longhorn's manager creates from the chart's `longhorn-storageclass` ConfigMap is
  applied too, or, for a stack with `storage.className`, that class as the existing cluster has it
  (not the default class: every claim must name it); the storage provisioner's part is played by a
  PersistentVolume bound to each claim of a class the cluster has (`kube_api.provision_volumes`):
  nothing else is changed or added.
- Services of type NodePort get exactly the node ports rendered (Traefik's 30080/30443, the edge
  sidecar's 30901); LoadBalancer Services are accepted with their type, traffic policy and source
  ranges, and get no address (no load-balancer controller runs here).
- Pod Security is the apiserver's own, at the rendered Namespaces' labels: the controller-manager
  creates the pods of every Deployment, StatefulSet, DaemonSet and Job, and none is refused
  (no `FailedCreate`); the pods operators would make (prometheus-operator's Prometheus and
  Alertmanager, Longhorn's instance managers and CSI pods, modelled in `tools.cluster`) are created
  directly as Pods; a privileged pod is refused in every namespace that enforces `restricted`; and
  relabelling each namespace to a stricter level (a dry run) is answered with the pods that level
  would refuse, so each namespace enforces the strictest level its pods pass.
- kwok marks the scheduled pods Running and Ready, so `kubectl rollout status` passes for every
  Deployment, StatefulSet and DaemonSet, and every Job completes (no container runs).
- The offline validators (`tools/validators/kubernetes_schema.py`, `crds.py`, `pod_security.py`) are
  run on the same rendering: they must agree with the apiserver.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import traefik
from components.kube_prometheus_stack import PROMETHEUS_POD_LABELS, SIDECAR_NODE_PORT
from components.settings import ExistingCluster, NodeSize, Settings, host_cidr
from tests.conftest import STACKS, settings, storage_class
from tests.integration import kube_api
from tests.integration.conftest import Proves, blocked, need
from tests.integration.kube_api import (
    ApiClient,
    Applied,
    ControlPlaneBinaries,
    KubeApi,
    NodeSpec,
    running_kube_api,
)
from tests.integration.platform import Platform
from tools.cluster import Cluster, KubeObject, cluster
from tools.engine import Rendering
from tools.podsecurity import LEVELS
from tools.validators import crds, kubernetes_schema, pod_security
from tools.validators.common import Finding, describe

VERSION = kube_api.KUBERNETES
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
SETTLE_TIMEOUT = 90.0
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
CLUSTER_PROVISIONER = "csi.storage.existing-cluster.test"
"""The CSI driver behind an existing cluster's own StorageClass (`storage.className`): any name, the
volumes bound to its claims name it too."""
EXISTING_NODE_PODS = "110"
"""The kubelet's default `maxPods`."""
EXISTING_NODE_DISK = "100Gi"
"""Not a stack setting; no pod requests ephemeral storage near it."""
EXTERNAL_TYPES = ("NodePort", "LoadBalancer")
HOSTNAME = "kubernetes.io/hostname"

EXPECTED_WARNINGS: tuple[tuple[str, str], ...] = (
    (
        r'^would violate PodSecurity "restricted:v1\.\d+": ',
        "the `warn` level of a namespace that enforces less than restricted (README, Security): by design",
    ),
    (r'^unrecognized format "int64"$', "Longhorn's CRDs declare `format: int64` on strings (upstream's chart)"),
)
"""Warnings the apiserver gives that are known and accepted, with why; any other is a finding."""


# --- the nodes ------------------------------------------------------------------------------------


def cpu_quantity(cpus: float) -> str:
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gib: float) -> str:
    mebis = round(gib * 1024)
    return f"{mebis // 1024}Gi" if mebis % 1024 == 0 else f"{mebis}Mi"


def node_sizes(existing: ExistingCluster) -> list[NodeSize]:
    """Each node's size: as listed, or `total` shared evenly (`smallest_node` is that share)."""
    return list(existing.nodes) if existing.nodes else [existing.smallest_node] * existing.node_count


def node_addresses(config: Settings, count: int) -> list[str]:
    """`count` consecutive addresses of the first `nodeCidrs` block: from `ingress.address` when that
    is a node's (NodePort, hostPort), else from the block's first; never a load balancer's address."""
    block = ipaddress.ip_network(config.node_cidrs[0])
    ingress = ipaddress.ip_address(str(config.ingress.address))
    on_a_node = config.ingress.service_type != "LoadBalancer" and ingress in block
    hosts: Iterator[Any] = block.hosts()
    if on_a_node:
        hosts = itertools.dropwhile(lambda address: address != ingress, hosts)
    picked = [str(a) for a in itertools.islice((a for a in hosts if on_a_node or a != ingress), count)]
    assert len(picked) == count, f"{block} has fewer than {count} node addresses from {picked[:1]}"
    return picked


def existing_cluster_nodes(config: Settings) -> list[NodeSpec]:
    """The nodes an existing cluster's stack declares, each at its size, less the per-node reserve."""
    existing = config.kubernetes
    assert existing is not None, "not a stack for an existing cluster"
    sizes = node_sizes(existing)
    addresses = node_addresses(config, len(sizes))
    cpu_reserve, memory_reserve = existing.reserved_cpus_per_node, existing.reserved_memory_gib_per_node
    nodes = []
    for number, (size, address) in enumerate(zip(sizes, addresses, strict=True), start=1):
        disk = {"pods": EXISTING_NODE_PODS, "ephemeral-storage": EXISTING_NODE_DISK}
        capacity = {"cpu": cpu_quantity(size.cpus), "memory": memory_quantity(size.memory_gib), **disk}
        allocatable = {
            "cpu": cpu_quantity(size.cpus - cpu_reserve),
            "memory": memory_quantity(size.memory_gib - memory_reserve),
            **disk,
        }
        nodes.append(NodeSpec(f"{config.cluster_name}-{number}", address, capacity, allocatable))
    return nodes


def kwok_nodes(config: Settings) -> list[NodeSpec] | None:
    """The nodes kwok plays for a stack: an existing cluster's, or (None) minikube's one."""
    return existing_cluster_nodes(config) if config.kubernetes else None


# --- the control plane and the stack on it ---------------------------------------------------------


@pytest.fixture(scope="module")
def binaries() -> ControlPlaneBinaries:
    kubectl = kube_api.kubectl_binary()
    if kubectl is None:
        blocked("kubectl", f"kubectl {VERSION}", "not installed: `venv/bin/python -m tools.helm install`")
        raise AssertionError("unreachable")
    return ControlPlaneBinaries(
        etcd=need("etcd"),
        kube_apiserver=need("kube-apiserver"),
        kube_controller_manager=need("kube-controller-manager"),
        kube_scheduler=need("kube-scheduler"),
        kwok=need("kwok"),
        kubectl=kubectl,
    )


@dataclass
class Deployed:
    """One stack applied to its own control plane, and what the apiserver said."""

    stack: str
    api: KubeApi
    client: ApiClient
    rendering: Rendering
    model: Cluster
    settings: Settings
    applied: list[tuple[KubeObject, Applied]] = field(default_factory=list)
    stand_ins: list[tuple[str, Applied]] = field(default_factory=list)
    """What stands in for what the cluster has besides the stack (a StorageClass: Longhorn's manager's,
    or the existing cluster's own), with who would have applied it (its field manager)."""
    operator_pods: list[tuple[KubeObject, Applied]] = field(default_factory=list)
    crds: dict[str, bool] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    """Workloads that never had all their pods (or never became Ready) within SETTLE_TIMEOUT."""
    pods_seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Every pod seen while settling, by owner: a completed hook Job with `ttlSecondsAfterFinished`
    (kube-prometheus-stack's admission Jobs, 60 s) is deleted with its pod before the tests look."""
    seconds: dict[str, float] = field(default_factory=dict)

    def refused(self) -> list[tuple[KubeObject, Applied]]:
        return [(o, outcome) for o, outcome in self.applied if not outcome.accepted]

    def rendered_namespaces(self) -> dict[str, dict[str, str]]:
        return {o.name: dict(o.obj["metadata"].get("labels") or {}) for o in self.model.of_kind("Namespace")}


def field_manager(o: KubeObject) -> str:
    return "pulumi-kubernetes" if o.origin == "ours" else "helm"


def manifest(o: KubeObject, platform: Platform, stack: str) -> dict[str, Any]:
    """The object as sent on `pulumi up`: our Secrets with the real certificates of the stack's central
    (the offline view has `[secret]` in their place, which the apiserver's TLS Secret check rightly
    warns about)."""
    obj = o.obj
    if o.origin == "ours" and o.kind == "Secret" and o.resource is not None:
        for key in ("stringData", "data"):
            if key in o.resource.inputs:
                obj = {**obj, key: platform.real(o.resource.inputs[key], stack)}
    return obj


def identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    metadata = obj.get("metadata") or {}
    group = str(obj.get("apiVersion")).rpartition("/")[0]
    return group, str(obj.get("kind")), str(metadata.get("namespace") or ""), str(metadata.get("name"))


def longhorn_storage_class(model: Cluster) -> dict[str, Any] | None:
    """The StorageClass longhorn-manager creates from the chart's `longhorn-storageclass` ConfigMap."""
    for o in model.of_kind("ConfigMap"):
        if o.name == "longhorn-storageclass" and o.origin.startswith("helm release"):
            parsed: dict[str, Any] = yaml.safe_load(o.obj["data"]["storageclass.yaml"])
            return parsed
    return None


def cluster_storage_class(name: str) -> dict[str, Any]:
    """An existing cluster's own StorageClass `name`, bound as Longhorn's is here (Immediate, pre-made
    volumes). Not the default class, so that a claim naming no class would stay unbound."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": CLUSTER_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def storage_stand_in(deployed: Deployed) -> tuple[str, dict[str, Any]] | None:
    """The StorageClass the stack's claims need that the stack does not apply, and who applies it."""
    if deployed.settings.storage.class_name:
        return "cluster-admin", cluster_storage_class(deployed.settings.storage.class_name)
    longhorn = longhorn_storage_class(deployed.model)
    return ("longhorn-manager", longhorn) if longhorn else None


def operator_pod(o: KubeObject, name: str) -> dict[str, Any]:
    """A pod an operator would create from `o` (a modelled workload), as a Pod."""
    template = o.obj["spec"]["template"]
    metadata = {"name": name, "namespace": o.namespace, "labels": template["metadata"].get("labels") or {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def apply_wave(deployed: Deployed, objects: list[tuple[KubeObject, dict[str, Any]]]) -> None:
    outcomes = deployed.client.apply_all([(obj, field_manager(o)) for o, obj in objects])
    deployed.applied += [(o, outcome) for (o, _), outcome in zip(objects, outcomes, strict=True)]


def apply_stack(deployed: Deployed, platform: Platform) -> None:
    """Every applied object, wave after wave, with what must be ready between them."""
    api, client, model = deployed.api, deployed.client, deployed.model
    seen: set[tuple[str, str, str, str]] = set()
    waves: list[list[tuple[KubeObject, dict[str, Any]]]] = [[] for _ in kube_api.WAVES]
    for o in model.applied():
        obj = manifest(o, platform, deployed.stack)
        if identity(obj) in seen:
            deployed.duplicates.append(o.describe())
        seen.add(identity(obj))
        waves[kube_api.wave_of(obj)].append((o, obj))
    started = time.monotonic()
    apply_wave(deployed, waves[0])
    stand_in = storage_stand_in(deployed)
    if stand_in:
        whose, obj = stand_in
        deployed.stand_ins.append((whose, client.apply(obj, whose)))
    names = [o.name for o, _ in waves[0] if o.kind == "CustomResourceDefinition"]
    deployed.crds = kube_api.wait_established(api, names)
    kube_api.wait_service_accounts(api, [o.name for o, _ in waves[0] if o.kind == "Namespace"])
    deployed.seconds["namespaces and CRDs"] = time.monotonic() - started
    for wave in waves[1:3]:
        apply_wave(deployed, wave)
    deployed.operator_pods = create_operator_pods(deployed)
    apply_wave(deployed, waves[3])
    deployed.seconds["applied"] = time.monotonic() - started
    deployed.settled = settle(deployed)
    deployed.seconds["settled"] = time.monotonic() - started


def create_operator_pods(deployed: Deployed) -> list[tuple[KubeObject, Applied]]:
    modelled = [pod for pod in deployed.model.pods() if pod.source.modelled]
    pods = [operator_pod(pod.source, pod.name) for pod in modelled]
    outcomes = deployed.client.apply_all([(pod, "operator-stand-in") for pod in pods])
    return [(pod.source, outcome) for pod, outcome in zip(modelled, outcomes, strict=True)]


def unsettled(api: KubeApi) -> list[str]:
    """Workloads not yet Ready in full (kwok's Ready), and Jobs not yet complete."""
    waiting = []
    for kind in (*WORKLOADS, "Job"):
        for item in api.items(kind.lower() + "s", "-A"):
            spec, status = item.get("spec") or {}, item.get("status") or {}
            if kind == "DaemonSet":
                wanted, ready = max(status.get("desiredNumberScheduled", 0), 1), status.get("numberReady", 0)
            elif kind == "Job":
                wanted, ready = 1, status.get("succeeded", 0)
            else:
                wanted, ready = spec.get("replicas", 1), status.get("readyReplicas", 0)
            if ready < wanted:
                waiting.append(f"{kind} {item['metadata']['namespace']}/{item['metadata']['name']} ({ready}/{wanted})")
    return waiting


def settle(deployed: Deployed) -> list[str]:
    """Until every workload is Ready (binding a volume to each claim as it appears): what is not."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    waiting = unsettled(deployed.api)
    remember_pods(deployed)
    while waiting and time.monotonic() < deadline:
        deployed.volumes += kube_api.provision_volumes(deployed.api, deployed.client)
        time.sleep(1)
        deployed.api.check_running()
        remember_pods(deployed)
        waiting = unsettled(deployed.api)
    return waiting


def remember_pods(deployed: Deployed) -> None:
    for owner, pods in pods_by_owner(deployed.api).items():
        deployed.pods_seen.setdefault(owner, pods)


@pytest.fixture(scope="module", params=STACKS)
def deployed(
    request: pytest.FixtureRequest,
    binaries: ControlPlaneBinaries,
    platform: Platform,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    stack = str(request.param)
    rendering = platform.rendering(stack)
    model = cluster(rendering)
    if model.gaps:  # no helm or no chart package: the charts' objects cannot be had
        blocked("helm template", "tools.helm", "; ".join(model.gaps))
    config = settings(rendering)
    started = time.monotonic()
    directory = tmp_path_factory.mktemp(f"kube-api-{stack}")
    with running_kube_api(directory, binaries, nodes=kwok_nodes(config)) as api:
        result = Deployed(stack, api, ApiClient(api), rendering, model, config)
        result.seconds["control plane up"] = time.monotonic() - started
        apply_stack(result, platform)
        yield result
        api.check_running()


# --- a. CRDs ---------------------------------------------------------------------------------------


def test_every_chart_crd_is_established(deployed: Deployed, proves: Proves) -> None:
    chart_crds = {o.name for o in deployed.model.of_kind("CustomResourceDefinition") if o.origin != "ours"}
    assert chart_crds, f"{deployed.stack}: no CRD in the charts' manifests"
    refused = [f"{o.name}: {a.message}" for o, a in deployed.refused() if o.kind == "CustomResourceDefinition"]
    assert not refused, "CRDs refused by the apiserver:\n" + "\n".join(refused)
    pending = sorted(name for name in chart_crds if not deployed.crds.get(name))
    assert not pending, f"CRDs not Established within 60s: {pending}"
    proves("kube-apiserver", VERSION, f"{deployed.stack}: all {len(chart_crds)} CRDs of the charts Established")


# --- b. every object -------------------------------------------------------------------------------


def test_every_object_is_accepted_with_strict_field_validation(deployed: Deployed, proves: Proves) -> None:
    refusals = [f"{o.describe()}: {a.message}" for o, a in deployed.refused()]
    refusals += [
        f"{a.identity} (stand-in for {whose}): {a.message}" for whose, a in deployed.stand_ins if not a.accepted
    ]
    assert not deployed.duplicates, (
        f"objects rendered twice (the second apply would fight the first): {deployed.duplicates}"
    )
    assert not refusals, f"{deployed.stack}: refused by kube-apiserver {VERSION}:\n" + "\n".join(refusals)
    ours = sum(1 for o, _ in deployed.applied if o.origin == "ours")
    charts = len(deployed.applied) - ours
    plugins = deployed.api.admission_plugins()
    assert "PodSecurity" in plugins.get("validating", []), plugins
    proves(
        "kube-apiserver",
        VERSION,
        f"{deployed.stack}: accepted all {len(deployed.applied)} objects ({ours} ours, {charts} the charts', hooks "
        "included) by server-side apply with fieldValidation=Strict, in dependency order",
    )
    proves(
        "kube-apiserver",
        VERSION,
        "admission as minikube runs it: " + ",".join(plugins.get("mutating", [])) + " | "
        + ",".join(plugins.get("validating", [])),
    )  # fmt: skip


def unexpected(warning: str) -> bool:
    return not any(re.search(pattern, warning) for pattern, _ in EXPECTED_WARNINGS)


def test_apiserver_warns_of_nothing_unexpected(deployed: Deployed) -> None:
    """Every warning the apiserver gives while the stack is applied is known and accepted (see
    EXPECTED_WARNINGS): `pulumi up` and `helm` print each of them to the operator."""
    outcomes = [(o.describe(), a) for o, a in [*deployed.applied, *deployed.operator_pods]]
    outcomes += [(a.identity, a) for _, a in deployed.stand_ins]
    warned = [f"{where}: {warning}" for where, a in outcomes for warning in a.warnings if unexpected(warning)]
    assert not warned, f"{deployed.stack}: warnings from kube-apiserver {VERSION}:\n" + "\n".join(warned)


def test_restricted_warnings_only_where_enforcement_is_less(deployed: Deployed) -> None:
    """The `restricted` warnings come only from namespaces that enforce less than restricted."""
    namespaces = deployed.rendered_namespaces()
    strays = [
        f"{o.describe()}: {warning}"
        for o, a in deployed.applied
        for warning in a.warnings
        if not unexpected(warning)
        and "PodSecurity" in warning
        and namespaces.get(o.namespace or "", {}).get(ENFORCE) == "restricted"
    ]
    assert not strays, strays


# --- c. Pod Security -------------------------------------------------------------------------------


def failed_creates(api: KubeApi) -> list[str]:
    return [
        f"{e['involvedObject']['kind']} {e['involvedObject'].get('namespace')}/{e['involvedObject']['name']}: "
        f"{e['message']}"
        for e in kube_api.events(api, "FailedCreate")
    ]


def pods_by_owner(api: KubeApi) -> dict[str, list[dict[str, Any]]]:
    """Every pod, under `Kind namespace/name` of the workload that made it (a ReplicaSet's Deployment)."""
    replica_sets = {
        (rs["metadata"]["namespace"], rs["metadata"]["name"]): rs["metadata"].get("ownerReferences") or []
        for rs in api.items("replicasets", "-A")
    }
    owned: dict[str, list[dict[str, Any]]] = {}
    for pod in api.items("pods", "-A"):
        namespace = pod["metadata"]["namespace"]
        for owner in pod["metadata"].get("ownerReferences") or []:
            kind, name = owner["kind"], owner["name"]
            if kind == "ReplicaSet":
                parents = replica_sets.get((namespace, name)) or []
                kind, name = (parents[0]["kind"], parents[0]["name"]) if parents else (kind, name)
            owned.setdefault(f"{kind} {namespace}/{name}", []).append(pod)
    return owned


def test_controllers_create_every_pod_pod_security_refuses_none(deployed: Deployed, proves: Proves) -> None:
    failures = failed_creates(deployed.api)
    pod_security_failures = [f for f in failures if "PodSecurity" in f]
    assert not pod_security_failures, "Pod Security refused pods the controllers made:\n" + "\n".join(failures)
    owned = deployed.pods_seen | pods_by_owner(deployed.api)
    controlled = [o for o in deployed.model.applied() if o.kind in (*WORKLOADS, "Job")]
    missing = [o.describe() for o in controlled if not owned.get(f"{o.kind} {o.namespace}/{o.name}")]
    assert not missing, f"workloads without a pod: {missing}; FailedCreate events:\n" + "\n".join(failures)
    assert not failures, "FailedCreate events:\n" + "\n".join(failures)
    count = sum(len(owned.get(f"{o.kind} {o.namespace}/{o.name}", [])) for o in controlled)
    proves(
        "kube-controller-manager",
        VERSION,
        f"{deployed.stack}: created all {count} pods of its {len(controlled)} Deployments, StatefulSets, DaemonSets "
        "and Jobs; Pod Security admission refused none (no FailedCreate)",
    )


def test_operator_pods_are_admitted(deployed: Deployed, proves: Proves) -> None:
    assert deployed.operator_pods, f"{deployed.stack}: no operator pods modelled"
    refused = [f"{o.describe()}: {a.message}" for o, a in deployed.operator_pods if not a.accepted]
    assert not refused, "operator pods refused by kube-apiserver:\n" + "\n".join(refused)
    longhorn = ", Longhorn's" if deployed.settings.storage.longhorn else ""
    proves(
        "kube-apiserver",
        VERSION,
        f"{deployed.stack}: Pod Security admitted the {len(deployed.operator_pods)} pods operators make "
        f"(prometheus-operator's Prometheus and Alertmanager{longhorn}), created as Pods",
    )


def privileged_pod(namespace: str) -> dict[str, Any]:
    container = {"name": "privileged", "image": "busybox", "securityContext": {"privileged": True}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "deliberately-privileged", "namespace": namespace},
        "spec": {"containers": [container]},
    }


def test_privileged_pod_is_refused_where_restricted_is_enforced(deployed: Deployed, proves: Proves) -> None:
    restricted = sorted(
        ns for ns, labels in deployed.rendered_namespaces().items() if labels.get(ENFORCE) == "restricted"
    )
    assert restricted, f"{deployed.stack}: no namespace enforces restricted"
    for namespace in restricted:
        version = deployed.rendered_namespaces()[namespace].get(ENFORCE_VERSION, "latest")
        outcome = deployed.client.apply(privileged_pod(namespace), "test", dry_run=True)
        assert not outcome.accepted, f"a privileged pod was admitted into {namespace}"
        expected = f'violates PodSecurity "restricted:{version}": privileged (container "privileged" must not set'
        assert expected in outcome.message, outcome.message
        # kubectl says the same
        said = deployed.api.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(privileged_pod(namespace))
        )
        assert said.returncode != 0 and f'violates PodSecurity "restricted:{version}"' in said.stderr, said.stderr
    proves(
        "kube-apiserver",
        VERSION,
        f"{deployed.stack}: refused a privileged pod in {', '.join(restricted)} "
        f'(`violates PodSecurity "restricted:{version}"`)',
    )


def relabelled(o: KubeObject, level: str) -> dict[str, Any]:
    metadata = o.obj["metadata"]
    return {**o.obj, "metadata": {**metadata, "labels": {**(metadata.get("labels") or {}), ENFORCE: level}}}


def test_each_namespace_enforces_the_strictest_level_its_pods_pass(deployed: Deployed, proves: Proves) -> None:
    """A dry-run relabel to each stricter level: the apiserver answers with the pods it would refuse
    (`existing pods in namespace ... violate the new PodSecurity enforce level`)."""
    assert not deployed.settled, f"not every pod exists yet: {deployed.settled}"
    looser = []
    judged = []
    for o in deployed.model.of_kind("Namespace"):
        level = (o.obj["metadata"].get("labels") or {}).get(ENFORCE, "privileged")
        for stricter in LEVELS[LEVELS.index(level) + 1 :]:
            outcome = deployed.client.apply(relabelled(o, stricter), "pulumi-kubernetes", dry_run=True)
            assert outcome.accepted, outcome.message
            if not any("violate the new PodSecurity enforce level" in w for w in outcome.warnings):
                looser.append(f"Namespace {o.name} enforces {level}, but every pod in it passes {stricter}")
        judged.append(f"{o.name}={level}")
    assert not looser, looser
    proves(
        "kube-apiserver",
        VERSION,
        f"{deployed.stack}: each namespace enforces the strictest level its pods pass ({', '.join(judged)}): a "
        "stricter label is answered with the pods it would refuse",
    )


# --- d. kwok: the nodes, Ready ----------------------------------------------------------------------


def node_names(deployed: Deployed) -> str:
    return ", ".join(deployed.api.nodes)


def internal_ip(node: dict[str, Any]) -> str:
    return next(a["address"] for a in node["status"].get("addresses") or [] if a["type"] == "InternalIP")


def test_kwok_plays_the_nodes_the_stack_declares(deployed: Deployed, proves: Proves) -> None:
    """As many nodes as the stack runs on, each of its size, with distinct hostnames, at addresses of
    its node block (an existing cluster's first `nodeCidrs`; minikube's node at the control plane's)."""
    expected = kwok_nodes(deployed.settings) or [kube_api.minikube_node(deployed.api.address)]
    live = {node["metadata"]["name"]: node for node in deployed.api.items("nodes")}
    assert sorted(live) == sorted(spec.name for spec in expected), f"nodes: {sorted(live)}"
    hostnames = [node["metadata"]["labels"][HOSTNAME] for node in live.values()]
    assert len(set(hostnames)) == len(hostnames), f"hostname labels not distinct: {hostnames}"
    block = ipaddress.ip_network(deployed.settings.node_cidrs[0])
    for spec in expected:
        node = live[spec.name]
        assert kube_api.ready_and_untainted(node), f"{spec.name}: {node['status'].get('conditions')}"
        for resource in ("cpu", "memory"):
            assert node["status"]["capacity"][resource] == spec.capacity[resource], (spec.name, node["status"])
            assert node["status"]["allocatable"][resource] == spec.allocatable[resource], (spec.name, node["status"])
        if deployed.settings.kubernetes:
            assert ipaddress.ip_address(internal_ip(node)) in block, f"{spec.name}: {internal_ip(node)} not in {block}"
    sizes = ", ".join(f"{s.name} {s.address} {s.capacity['cpu']} CPU/{s.capacity['memory']}" for s in expected)
    which = "the existing cluster's nodes the stack declares" if deployed.settings.kubernetes else "minikube's node"
    proves("kwok", kube_api.KWOK, f"{deployed.stack}: played {which} ({sizes}), all Ready")


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a (non-empty) label selector selects `labels`."""
    expressions = selector.get("matchExpressions") or []
    operators = {
        "In": lambda e: labels.get(e["key"]) in e.get("values", []),
        "NotIn": lambda e: labels.get(e["key"]) not in e.get("values", []),
        "Exists": lambda e: e["key"] in labels,
        "DoesNotExist": lambda e: e["key"] not in labels,
    }
    wanted = (selector.get("matchLabels") or {}).items()
    return (
        bool(wanted or expressions)
        and wanted <= labels.items()
        and all(operators[e["operator"]](e) for e in expressions)
    )


def hard_anti_affinity(o: KubeObject) -> bool:
    """Whether `o`'s pods must each be on a node of their own (a required hostname anti-affinity
    term that selects the workload's own pods)."""
    template = (o.obj.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    affinity = ((template.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    return any(
        t.get("topologyKey") == HOSTNAME and selector_matches(t.get("labelSelector") or {}, labels) for t in terms
    )


def test_workloads_roll_out_on_the_kwok_nodes(deployed: Deployed, proves: Proves) -> None:
    assert not deployed.settled, f"not Ready within {SETTLE_TIMEOUT:.0f}s: {deployed.settled}"
    workloads = [o for o in deployed.model.applied() if o.kind in WORKLOADS]
    failed = []
    for o in workloads:
        done, said = kube_api.rollout_status(deployed.api, o.kind, o.namespace or "default", o.name, timeout=30)
        if not done:
            failed.append(f"{o.describe()}: {said}")
    assert not failed, "kubectl rollout status failed:\n" + "\n".join(failed)
    unscheduled = [p["metadata"]["name"] for p in deployed.api.items("pods", "-A") if not p["spec"].get("nodeName")]
    assert not unscheduled, f"pods kube-scheduler did not place on {node_names(deployed)}: {unscheduled}"
    owned = pods_by_owner(deployed.api)
    spread = [o for o in workloads if hard_anti_affinity(o)]
    for o in spread:
        placed = [pod["spec"]["nodeName"] for pod in owned.get(f"{o.kind} {o.namespace}/{o.name}", [])]
        assert len(set(placed)) == len(placed), f"{o.describe()}: pods share a node despite anti-affinity: {placed}"
    ours = [o.describe() for o in workloads if o.origin == "ours"]
    proves(
        "kwok",
        kube_api.KWOK,
        f"{deployed.stack}: nodes {node_names(deployed)} Ready; every Deployment, StatefulSet and DaemonSet "
        f"({len(workloads)}, ours: {len(ours)}) passed `kubectl rollout status` and every Job completed, with a volume "
        f"bound to each of the {len(deployed.volumes)} claims (containers do not run)",
    )
    apart = f"; {', '.join(o.name for o in spread)} one pod per node (required anti-affinity)" if spread else ""
    proves(
        "kube-scheduler",
        VERSION,
        f"{deployed.stack}: placed every pod on {node_names(deployed)} (requests, host ports, volumes, "
        f"affinity){apart}",
    )
    proves("etcd", kube_api.ETCD, f"{deployed.stack}: the store of the control plane the stack was applied to")


# --- e. storage and exposure, as the cluster provides them ------------------------------------------


def test_every_claim_is_bound_from_the_stacks_storage_class(deployed: Deployed, proves: Proves) -> None:
    """Every claim names the class the stack uses (the cluster's own, or Longhorn's), which the cluster
    has, and is bound: none relies on a default class."""
    wanted = storage_class(deployed.rendering)
    classes = {sc["metadata"]["name"] for sc in deployed.api.items("storageclasses")}
    assert wanted in classes, f"StorageClass {wanted} not in the cluster: {sorted(classes)}"
    claims = deployed.api.items("persistentvolumeclaims", "-A")
    assert claims, f"{deployed.stack}: no claim"
    named = {f"{c['metadata']['namespace']}/{c['metadata']['name']}": c for c in claims}
    other = {name: c["spec"].get("storageClassName") for name, c in named.items()}
    other = {name: found for name, found in other.items() if found != wanted}
    assert not other, f"claims not of StorageClass {wanted}: {other}"
    unbound = [name for name, c in named.items() if (c.get("status") or {}).get("phase") != "Bound"]
    assert not unbound, f"claims not Bound: {unbound}"
    proves(
        "kube-controller-manager",
        VERSION,
        f"{deployed.stack}: bound all {len(claims)} claims, each of StorageClass {wanted}, to pre-made volumes",
    )


def exposed(model: Cluster) -> list[KubeObject]:
    """The rendered Services reached from outside the cluster (NodePort, LoadBalancer)."""
    return [o for o in model.of_kind("Service") if (o.obj.get("spec") or {}).get("type") in EXTERNAL_TYPES]


def selects(o: KubeObject, labels: dict[str, str]) -> bool:
    return labels.items() <= ((o.obj.get("spec") or {}).get("selector") or {}).items()


def expected_exposure(config: Settings) -> dict[str, dict[str, Any]]:
    """What the stack's settings ask of Traefik's and (on an edge) the sidecar's external Service."""
    wanted: dict[str, dict[str, Any]] = {}
    kind = config.ingress.service_type
    if kind != "hostPort":
        policy = "Local" if kind == "LoadBalancer" else "Cluster"
        ports = sorted(traefik.NODE_PORTS.values()) if kind == "NodePort" else []
        wanted["traefik"] = {"type": kind, "externalTrafficPolicy": policy, "nodePorts": ports}
    if not config.is_central:
        sidecar: dict[str, Any] = {"externalTrafficPolicy": "Local"}
        if kind == "LoadBalancer":
            sidecar |= {"type": kind, "loadBalancerSourceRanges": [host_cidr(str(config.central_address))]}
        else:
            sidecar |= {"type": "NodePort", "nodePorts": [SIDECAR_NODE_PORT]}
        wanted["sidecar"] = sidecar
    return wanted


def exposure_of(live: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """`live`'s spec in the terms of `wanted`; `nodePorts` those of `wanted` the Service has."""
    spec = live["spec"]
    found = {key: spec.get(key) for key in wanted if key != "nodePorts"}
    if "nodePorts" in wanted:
        found["nodePorts"] = sorted(set(wanted["nodePorts"]) & {p.get("nodePort") for p in spec.get("ports") or []})
    return found


def test_external_services_are_accepted_as_rendered(deployed: Deployed, proves: Proves) -> None:
    """Each NodePort or LoadBalancer Service as rendered: its type, traffic policy, source ranges and
    exactly the node ports it asks for. A LoadBalancer gets no address here (no load-balancer controller)."""
    live = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in deployed.api.items("services", "-A")}
    missing = [o.describe() for o in exposed(deployed.model) if (o.namespace or "default", o.name) not in live]
    assert not missing, f"Services not in the cluster: {missing}"
    mismatches = []
    for o in exposed(deployed.model):
        rendered, spec = o.obj["spec"], live[o.namespace or "default", o.name]["spec"]
        for key in ("type", "externalTrafficPolicy", "loadBalancerSourceRanges"):
            if key in rendered and spec.get(key) != rendered[key]:
                mismatches.append(f"{o.describe()}: {key} {spec.get(key)!r}, rendered {rendered[key]!r}")
        asked = {p["name"]: p["nodePort"] for p in rendered.get("ports") or [] if "nodePort" in p}
        given = {p["name"]: p.get("nodePort") for p in spec.get("ports") or []}
        if any(given.get(name) != port for name, port in asked.items()):
            mismatches.append(f"{o.describe()}: node ports {given}, rendered {asked}")
    assert not mismatches, "\n".join(mismatches)
    roles = {"traefik": traefik.POD_LABELS, "sidecar": PROMETHEUS_POD_LABELS}
    expected = expected_exposure(deployed.settings)
    found = []
    for role, labels in roles.items():
        services = [o for o in exposed(deployed.model) if selects(o, labels)]
        assert len(services) == (role in expected), f"{role}: external Services {[o.describe() for o in services]}"
        if not services:
            continue
        o, wanted = services[0], expected[role]
        assert exposure_of(live[o.namespace or "default", o.name], wanted) == wanted, (o.describe(), wanted)
        found.append(f"{o.namespace}/{o.name} {wanted['type']} {wanted.get('nodePorts') or ''}".strip())
    balanced = any("LoadBalancer" in line for line in found)
    unaddressed = "; a LoadBalancer gets no address (no load-balancer controller)" if balanced else ""
    proves(
        "kube-apiserver",
        VERSION,
        f"{deployed.stack}: external Services as rendered ({'; '.join(found) or 'none'}): type, traffic policy, "
        f"source ranges and the node ports asked for{unaddressed}",
    )


# --- the offline validators, against the apiserver --------------------------------------------------


def where(o: KubeObject) -> str:
    """How the offline validators name an object (`kubernetes_schema._where`)."""
    return describe(o.resource) if o.origin == "ours" and o.resource else o.describe()


def by_resource(findings: list[Finding]) -> set[str]:
    return {f.resource for f in findings}


def test_offline_validators_agree_with_the_apiserver(deployed: Deployed) -> None:
    """Objects the apiserver refused are exactly those the schema validators flag, and pods it
    refused (or namespaces it showed could be stricter) exactly those Pod Security's model flags."""
    unavailable = pod_security.prerequisite()
    if unavailable:
        blocked("pod-security evaluator", "k8s.io/pod-security-admission", unavailable)
    schema_findings = kubernetes_schema.validate(deployed.rendering) + crds.validate(deployed.rendering)
    pod_findings = pod_security.validate(deployed.rendering)
    refused = {where(o) for o, _ in deployed.refused()}
    refused_pods = {o.describe() for o, a in deployed.operator_pods if not a.accepted}
    refused_pods |= {f.split(":")[0] for f in failed_creates(deployed.api) if "PodSecurity" in f}
    schema_flagged, pods_flagged = by_resource(schema_findings), by_resource(pod_findings)
    disagreements = [f"apiserver refused, offline schema validators did not: {r}" for r in refused - schema_flagged]
    disagreements += [
        f"offline schema validators flagged, apiserver accepted: {f}"
        for f in schema_findings
        if f.resource not in refused
    ]
    disagreements += [
        f"apiserver refused a pod, offline Pod Security did not: {r}" for r in refused_pods - pods_flagged
    ]
    for finding in pod_findings:
        if finding.resource.startswith("Namespace "):
            disagreements.append(f"offline Pod Security flagged, the apiserver found it strictest: {finding}")
        elif finding.resource not in refused_pods:
            disagreements.append(f"offline Pod Security flagged, apiserver admitted: {finding}")
    assert not disagreements, "\n".join(disagreements)


def test_control_plane_starts_fast_and_stops_cleanly(
    tmp_path: Path, binaries: ControlPlaneBinaries, proves: Proves
) -> None:
    """Start to ready, and stop: the harness other tests (the engine's) reuse."""
    started = time.monotonic()
    with running_kube_api(tmp_path / "kube-api", binaries) as api:
        up = time.monotonic() - started
        assert api.kubectl("get", "--raw=/readyz").stdout == "ok"
        assert api.get("node", kube_api.NODE_NAME)["metadata"]["name"] == kube_api.NODE_NAME
        stopping = time.monotonic()
    down = time.monotonic() - stopping
    assert not api.killed, f"killed after {kube_api.STOP_TIMEOUT:.0f}s of SIGTERM: {api.killed}"
    assert api.exit_codes == kube_api.GRACEFUL_EXITS, api.exit_codes
    assert up < 30, f"the control plane took {up:.0f}s to come up"
    proves(
        "kube-apiserver",
        VERSION,
        "the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and its node) "
        "comes up in under 30s and stops on SIGTERM",
    )
    print(f"control plane up in {up:.1f}s, stopped in {down:.1f}s")
