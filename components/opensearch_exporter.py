"""Snapshot metrics of OpenSearch: prometheus-community's elasticsearch-exporter beside each node.

OpenSearch has no Prometheus endpoint of its own, and Snapshot Management reports a failed
snapshot only through its API. The exporter (v1.10.0, which reads OpenSearch as well) turns
`GET _snapshot` and `GET _snapshot/<repository>/_all` into metrics with `--collector.snapshots`:
the state of the latest snapshot per repository (`elasticsearch_snapshot_stats_snapshot_*{state}`)
and the time of the latest successful one (`..._latest_snapshot_timestamp_seconds`).

Why a container in the OpenSearch pod rather than a Deployment of its own: the REST API speaks
HTTPS with the security plugin's demo certificates, which name `node-0.example.com`, `localhost`
and `127.0.0.1`, never the Service. From another pod the exporter could only connect by skipping
verification. Beside OpenSearch it connects to `https://localhost:9200`, which the certificate
names, and trusts the CA the demo installer wrote for this very node: OpenSearch's container copies
`config/root-ca.pem` into a shared `emptyDir` in a postStart hook, and the kubelet starts the
exporter only after that hook finished (containers start in order, each after its postStart hook).
The traffic never leaves the pod's loopback, so no NetworkPolicy is involved; Prometheus scrapes
the exporter on port 9114 of the OpenSearch pod through the Service `opensearch-exporter`.

It logs in as `snapshot-exporter`, a user whose role may only read cluster health and stats,
repositories and snapshots (`cluster_monitor`, `cluster:admin/repository/get`,
`cluster:admin/snapshot/get`): it can neither write nor read an index.
"""

from __future__ import annotations

from typing import Any

from components import versions
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
DEMO_CA_VOLUME = "demo-ca"
DEMO_CA_DIR = "/usr/share/opensearch/demo-ca"
DEMO_CA_FILE = "root-ca.pem"
DEMO_CA_SOURCE = "/usr/share/opensearch/config/root-ca.pem"
"""Where the security plugin's demo installer writes the CA of this node's demo certificates."""
COPY_TIMEOUT_SECONDS = 300
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


def copy_demo_ca_hook() -> dict[str, Any]:
    """OpenSearch's postStart hook: wait for the demo installer's CA, copy it for the exporter.

    The entrypoint runs the installer before OpenSearch starts, so the file appears within seconds;
    a hook that times out fails the container, which the kubelet restarts."""
    script = (
        f"for i in $(seq {COPY_TIMEOUT_SECONDS}); do "
        f"if [ -s {DEMO_CA_SOURCE} ]; then cp {DEMO_CA_SOURCE} {DEMO_CA_DIR}/{DEMO_CA_FILE}; exit 0; fi; "
        "sleep 1; done; exit 1"
    )
    return {"postStart": {"exec": {"command": ["sh", "-c", script]}}}


def container() -> dict[str, Any]:
    """The exporter container: loopback HTTPS to its own node, verified against the node's demo CA."""
    return {
        "name": CONTAINER,
        "image": versions.ELASTICSEARCH_EXPORTER_IMAGE,
        "args": [
            f"--es.uri=https://localhost:{OPENSEARCH_HTTP_PORT}",
            f"--es.ca={DEMO_CA_DIR}/{DEMO_CA_FILE}",
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
        "volumeMounts": [{"name": DEMO_CA_VOLUME, "mountPath": DEMO_CA_DIR, "readOnly": True}],
    }


def values() -> dict[str, Any]:
    """The opensearch chart values that add the exporter (lists the caller merges with its own)."""
    return {
        "extraContainers": [container()],
        "extraVolumes": [{"name": DEMO_CA_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}],
        "extraVolumeMounts": [{"name": DEMO_CA_VOLUME, "mountPath": DEMO_CA_DIR}],
        "opensearchLifecycle": copy_demo_ca_hook(),
    }
