"""Snapshot metrics of OpenSearch: prometheus-community's elasticsearch-exporter beside each node.

OpenSearch has no Prometheus endpoint of its own, and Snapshot Management reports a failed
snapshot only through its API. The exporter (v1.10.0, which reads OpenSearch as well) turns
`GET _snapshot` and `GET _snapshot/<repository>/_all` into metrics with `--collector.snapshots`:
the state of the latest snapshot per repository (`elasticsearch_snapshot_stats_snapshot_*{state}`)
and the time of the latest successful one (`..._latest_snapshot_timestamp_seconds`).

Why a container in the OpenSearch pod rather than a Deployment of its own: it reads the node it
sits beside over the pod's loopback (`https://localhost:9200`, a name OpenSearch's certificate from
the platform CA carries), verified against the platform CA (ConfigMap `platform-ca` in `logging`).
So no NetworkPolicy flow and no Service name is involved in reading OpenSearch, and with more than
one node each exporter reports its own. Prometheus scrapes it on port 9114 of the OpenSearch pod
through the Service `opensearch-exporter`.

It logs in as `snapshot-exporter`, a user whose role may only read cluster health and stats,
repositories and snapshots (`cluster_monitor`, `cluster:admin/repository/get`,
`cluster:admin/snapshot/get`): it can neither write nor read an index.
"""

from __future__ import annotations

from typing import Any

from components import versions
from components.cluster_tls import CA_KEY, PLATFORM_CA_CONFIGMAP
from components.kube import resources, restricted_container_security

CONTAINER = "snapshot-exporter"
PORT = 9114
PORT_NAME = "exporter"
SERVICE = "opensearch-exporter"
"""The Service in front of the exporter port; Prometheus's `job` for its metrics."""
USER = "snapshot-exporter"
ROLE = "snapshot_reader"
CREDENTIALS_SECRET = "opensearch-exporter-credentials"
"""Secret in `logging` with `username` and `password` of `USER`."""
CA_VOLUME = "platform-ca"
CA_DIR = "/etc/platform-ca"
OPENSEARCH_HTTP_PORT = 9200
SERVICE_LABELS = {"app.kubernetes.io/name": SERVICE}


def service_monitor(namespace: str) -> dict[str, Any]:
    """How Prometheus scrapes the exporter, in kube-prometheus-stack's `additionalServiceMonitors`
    form (the chart creates it once its CRDs exist; `job` is the Service's name)."""
    return {
        "name": SERVICE,
        "selector": {"matchLabels": SERVICE_LABELS},
        "namespaceSelector": {"matchNames": [namespace]},
        # The snapshots collector lists every snapshot of the repository: once a minute is plenty.
        "endpoints": [{"port": PORT_NAME, "path": "/metrics", "interval": "60s", "scrapeTimeout": "30s"}],
    }


def role() -> dict[str, Any]:
    """`PUT _plugins/_security/api/roles/<name>`: read cluster state, repositories and snapshots, nothing else."""
    return {
        "cluster_permissions": ["cluster_monitor", "cluster:admin/repository/get", "cluster:admin/snapshot/get"],
        "index_permissions": [],
    }


def container() -> dict[str, Any]:
    """The exporter container: loopback HTTPS to its own node, verified against the platform CA."""
    return {
        "name": CONTAINER,
        "image": versions.pinned(versions.ELASTICSEARCH_EXPORTER_IMAGE),
        "args": [
            f"--es.uri=https://localhost:{OPENSEARCH_HTTP_PORT}",
            f"--es.ca={CA_DIR}/{CA_KEY}",
            "--collector.snapshots",
            "--es.timeout=20s",
            f"--web.listen-address=:{PORT}",
        ],
        "env": [
            {"name": "ES_USERNAME", "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "username"}}},
            {"name": "ES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "password"}}},
        ],
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
        "resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi"),
        "securityContext": restricted_container_security(),
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 30},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": PORT_NAME},
            "periodSeconds": 30,
            "failureThreshold": 4,
        },
        "volumeMounts": [{"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True}],
    }


def values() -> dict[str, Any]:
    """The opensearch chart values that add the exporter (lists the caller merges with its own)."""
    return {
        "extraContainers": [container()],
        "extraVolumes": [{"name": CA_VOLUME, "configMap": {"name": PLATFORM_CA_CONFIGMAP}}],
    }
