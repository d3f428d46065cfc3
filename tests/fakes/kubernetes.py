"""The Kubernetes API as `tools.verify` reads it: namespaces, workloads, PVCs, Longhorn's backup
target, Fluent-bit pods and their metrics through the pod proxy. Client certificates are required,
like minikube's API server."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import Reply, Request, json_reply, text_reply

NAMESPACES = [
    "default",
    "kube-system",
    "monitoring",
    "node-exporter",
    "logging",
    "fluent-bit",
    "longhorn-system",
    "ingress",
]


def deployment(
    name: str, namespace: str, replicas: int = 1, ready: int | None = None, updated: int | None = None
) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {
        "metadata": {"name": name, "namespace": namespace, "generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def statefulset(name: str, namespace: str, replicas: int = 1, ready: int | None = None) -> dict[str, Any]:
    obj = deployment(name, namespace, replicas, ready)
    obj["spec"]["updateStrategy"] = {"type": "RollingUpdate"}
    return obj


def daemonset(name: str, namespace: str, desired: int = 1, ready: int | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": desired,
            "numberReady": desired if ready is None else ready,
            "updatedNumberScheduled": desired,
        },
    }


def pvc(name: str, namespace: str, phase: str = "Bound") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "status": {"phase": phase}}


def metrics(proc: float, retries: float, failed: float, name: str = "opensearch.0") -> str:
    return (
        "# HELP fluentbit_output_proc_records_total Number of processed output records.\n"
        "# TYPE fluentbit_output_proc_records_total counter\n"
        f'fluentbit_output_proc_records_total{{name="{name}"}} {proc}\n'
        f'fluentbit_output_retries_total{{name="{name}"}} {retries}\n'
        f'fluentbit_output_retries_failed_total{{name="{name}"}} {failed}\n'
        'fluentbit_input_records_total{name="tail.0"} 99\n'
    )


def healthy_workloads() -> dict[str, list[dict[str, Any]]]:
    return {
        "deployments": [
            deployment("kps-operator", "monitoring"),
            deployment("kps-grafana", "monitoring"),
            deployment("thanos-query", "monitoring", replicas=2),
            deployment("longhorn-driver-deployer", "longhorn-system"),
            deployment("traefik", "ingress"),
            deployment("coredns", "kube-system", ready=0),  # outside the platform's namespaces: ignored
        ],
        "statefulsets": [
            statefulset("prometheus-kps-prometheus", "monitoring"),
            statefulset("opensearch-cluster-master", "logging"),
        ],
        "daemonsets": [
            daemonset("kps-prometheus-node-exporter", "node-exporter"),
            daemonset("fluent-bit", "fluent-bit"),
            daemonset("longhorn-manager", "longhorn-system"),
        ],
    }


@dataclass
class FakeKubernetes:
    namespaces: list[str] = field(default_factory=lambda: list(NAMESPACES))
    workloads: dict[str, list[dict[str, Any]]] = field(default_factory=healthy_workloads)
    pvcs: list[dict[str, Any]] = field(
        default_factory=lambda: [pvc("prometheus-db", "monitoring"), pvc("opensearch-data", "logging")]
    )
    backup_target: dict[str, Any] | None = field(
        default_factory=lambda: {
            "spec": {"backupTargetURL": "s3://longhorn-backups@us-east-1/hub/"},
            "status": {"available": True, "lastSyncedAt": "2026-11-27T10:00:00Z", "conditions": []},
        }
    )
    fluent_pods: list[str] = field(default_factory=lambda: ["fluent-bit-abcde"])
    # Successive scrapes of each pod's metrics; the last one repeats.
    scrapes: dict[str, list[str]] = field(
        default_factory=lambda: {"fluent-bit-abcde": [metrics(100, 2, 0), metrics(160, 2, 0)]}
    )
    v2_metrics: bool = True
    served: dict[str, int] = field(default_factory=dict)

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return json_reply({"kind": "Status", "code": 405}, 405)
        path = request.path.rstrip("/")
        if path == "/version":
            return json_reply({"gitVersion": "v1.36.3"})
        if path == "/api/v1/namespaces":
            return json_reply({"items": [{"metadata": {"name": ns}} for ns in self.namespaces]})
        if match := re.fullmatch(r"/apis/apps/v1/(deployments|statefulsets|daemonsets)", path):
            return json_reply({"items": self.workloads.get(match.group(1), [])})
        if path == "/api/v1/persistentvolumeclaims":
            return json_reply({"items": self.pvcs})
        if path == "/apis/longhorn.io/v1beta2/namespaces/longhorn-system/backuptargets/default":
            if self.backup_target is None:
                return json_reply({"kind": "Status", "code": 404, "reason": "NotFound"}, 404)
            return json_reply(self.backup_target)
        if path == "/api/v1/namespaces/fluent-bit/pods":
            assert request.query.get("labelSelector") == "app.kubernetes.io/name=fluent-bit"
            pods = [{"metadata": {"name": name}, "status": {"phase": "Running"}} for name in self.fluent_pods]
            return json_reply({"items": pods})
        if match := re.fullmatch(
            r"/api/v1/namespaces/fluent-bit/pods/([^/:]+):2020/proxy/api/(v[12])/metrics/prometheus", path
        ):
            return self._metrics(match.group(1), match.group(2))
        return json_reply({"kind": "Status", "code": 404}, 404)

    def _metrics(self, pod: str, version: str) -> Reply:
        if version == "v2" and not self.v2_metrics:
            return text_reply("not found", 404)
        scrapes = self.scrapes.get(pod)
        if not scrapes:
            return text_reply("no such pod", 503)
        count = self.served.get(pod, 0)
        self.served[pod] = count + 1
        return text_reply(scrapes[min(count, len(scrapes) - 1)], content_type="text/plain; version=0.0.4")
