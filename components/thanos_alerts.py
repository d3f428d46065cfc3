"""ThanosAlerts: our alerting rules for the Thanos layer and, on central, its Grafana dashboard.

Every cluster evaluates the sidecar rules against its own Prometheus (the sidecar is scraped
locally). Central also watches the Compactor, Query and Store Gateway, and checks that every
cluster it expects is connected to Query: an edge that drops out otherwise only shows up as
missing lines in a graph. The dashboard queries Thanos, so it lives on central only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, Component
from components.kube_prometheus_stack import (
    CLUSTER_LABEL,
    PROMETHEUS,
    SELECTOR_LABELS,
    SIDECAR_JOB,
    SIDECAR_NODE_PORT,
    THANOS_DATASOURCE_UID,
)
from components.thanos import COMPACTOR, QUERY, STORE

RULE_NAME = "thanos-layer"
DASHBOARD_CONFIGMAP = "thanos-overview-dashboard"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""The label kube-prometheus-stack's Grafana sidecar loads dashboards from (any namespace)."""
# gRPC codes that mean the server failed, not that the client gave up or asked for something wrong.
GRPC_SERVER_FAILURES = "Unknown|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"


class ThanosAlertsArgs(TypedDict):
    namespace: str
    """The monitoring namespace."""
    central: bool
    """Central gets the rules for its own Thanos components and the dashboard."""
    expected_clusters: Sequence[str]
    """Central: every cluster whose sidecar Query must see (itself and each edge)."""


def alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def sidecar_rules() -> dict[str, Any]:
    job = f'job="{SIDECAR_JOB}"'
    return {
        "name": "thanos-sidecar",
        "rules": [
            alert(
                "ThanosSidecarDown",
                f"up{{{job}}} == 0",
                "5m",
                "critical",
                "Thanos sidecar {{ $labels.pod }} is down",
                "Prometheus cannot scrape the sidecar: nothing is uploaded and central Query cannot read this cluster.",
            ),
            alert(
                "ThanosSidecarPrometheusUnreachable",
                f"max by (namespace, pod) (thanos_sidecar_prometheus_up{{{job}}}) == 0",
                "5m",
                "critical",
                "Thanos sidecar {{ $labels.pod }} cannot reach its Prometheus",
                "The sidecar serves no recent data to Query and uploads nothing until it reaches Prometheus again.",
            ),
            alert(
                "ThanosSidecarUploadsFailing",
                f"sum by (namespace, pod) (increase(thanos_shipper_upload_failures_total{{{job}}}[30m])) > 3",
                "5m",
                "critical",
                "Thanos sidecar {{ $labels.pod }} keeps failing to upload blocks",
                "Block uploads to the bucket fail repeatedly (credentials, bucket policy, TLS or MinIO down); "
                "blocks older than the local retention will be lost.",
            ),
            alert(
                "ThanosSidecarNoUploads",
                f"sum by (namespace, pod) (increase(thanos_shipper_uploads_total{{{job}}}[4h])) == 0\n"
                f"and on (namespace, pod)\n"
                f"min by (namespace, pod) (time() - process_start_time_seconds{{{job}}}) > 4 * 3600",
                "30m",
                "critical",
                "Thanos sidecar {{ $labels.pod }} has not uploaded a block for 4 hours",
                "Prometheus cuts a block every 2 hours; none reached the bucket in 4 hours.",
            ),
        ],
    }


def compactor_rules() -> list[dict[str, Any]]:
    job = f'job="{COMPACTOR}"'
    return [
        alert(
            "ThanosCompactorHalted",
            f"max by (namespace, pod) (thanos_compact_halted{{{job}}}) == 1",
            "5m",
            "critical",
            "Thanos Compactor {{ $labels.pod }} has halted",
            "The Compactor stopped on an error it cannot retry (often overlapping blocks): nothing is compacted, "
            "downsampled or deleted by retention until an operator fixes the bucket and restarts it.",
        ),
        alert(
            "ThanosCompactorFailing",
            f"sum by (namespace, pod) (rate(thanos_compact_group_compactions_failures_total{{{job}}}[15m])) > 0\n"
            f"or\n"
            f"sum by (namespace, pod) (rate(thanos_compact_downsample_failures_total{{{job}}}[15m])) > 0",
            "15m",
            "warning",
            "Thanos Compactor {{ $labels.pod }} is failing to compact or downsample",
            "Compaction or downsampling has been failing for 15 minutes; see the Compactor's logs.",
        ),
        alert(
            "ThanosCompactorDown",
            f"absent(up{{{job}}} == 1)",
            "15m",
            "warning",
            "Thanos Compactor is not running",
            "No Compactor is up: blocks are not compacted, downsampled or deleted by retention.",
        ),
    ]


def grpc_error_ratio(side: str, job: str) -> str:
    handled = f'grpc_{side}_handled_total{{job="{job}", grpc_code=~"{GRPC_SERVER_FAILURES}"}}'
    started = f'grpc_{side}_started_total{{job="{job}"}}'
    return f"sum by (namespace, job) (rate({handled}[5m]))\n/\nsum by (namespace, job) (rate({started}[5m])) > 0.05"


def query_store_rules() -> list[dict[str, Any]]:
    return [
        alert(
            "ThanosQueryGrpcErrors",
            grpc_error_ratio("client", QUERY),
            "15m",
            "warning",
            "Thanos Query gets errors from more than 5% of its StoreAPI requests",
            "Query's requests to sidecars or the Store Gateway fail; results are partial or missing.",
        ),
        alert(
            "ThanosStoreGrpcErrors",
            grpc_error_ratio("server", STORE),
            "15m",
            "warning",
            "Thanos Store Gateway fails more than 5% of its gRPC requests",
            "Historical data from the bucket is partially or not at all available to Query.",
        ),
    ]


def external_labels_regex(cluster: str) -> str:
    """Matches Query's `external_labels` label value (`{cluster="x", prometheus="..."}`) of one cluster."""
    return f'.*[{{ ]{CLUSTER_LABEL}="{cluster}"[,}}].*'


def cluster_missing_rule(cluster: str) -> dict[str, Any]:
    connections = (
        f'thanos_store_nodes_grpc_connections{{job="{QUERY}", store_type="sidecar", '
        f"external_labels=~`{external_labels_regex(cluster)}`}}"
    )
    rule = alert(
        "ThanosClusterMissingFromQuery",
        f'(sum({connections}) or on () vector(0))\n< on ()\ncount(up{{job="{QUERY}"}} == 1)',
        "10m",
        "critical",
        f"Thanos Query does not see the sidecar of {cluster}",
        f"A running Query replica has no connection to a sidecar with `{CLUSTER_LABEL}={cluster}`: the queries "
        f"it answers miss {cluster}'s recent data. Check that cluster, its NodePort {SIDECAR_NODE_PORT} and the "
        f"NetworkPolicy admitting central.",
    )
    # Not `cluster`: Prometheus would not add its own `cluster` external label to the alert then.
    rule["labels"]["missing_cluster"] = cluster
    return rule


def central_rules(expected_clusters: Sequence[str]) -> dict[str, Any]:
    return {
        "name": "thanos-central",
        "rules": [
            *compactor_rules(),
            *query_store_rules(),
            *(cluster_missing_rule(cluster) for cluster in expected_clusters),
        ],
    }


def rule_groups(central: bool, expected_clusters: Sequence[str]) -> list[dict[str, Any]]:
    groups = [sidecar_rules()]
    if central:
        groups.append(central_rules(expected_clusters))
    return groups


# --- dashboard ---------------------------------------------------------------------------


def panel(panel_id: int, title: str, expr: str, legend: str, unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": THANOS_DATASOURCE_UID},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": "A",
                "datasource": {"type": "prometheus", "uid": THANOS_DATASOURCE_UID},
                "expr": expr,
                "legendFormat": legend,
            }
        ],
    }


def dashboard() -> dict[str, Any]:
    """Per cluster: Prometheus up, ingest rate, sidecar state and uploads; Query's view of the clusters."""
    selected = f'{CLUSTER_LABEL}=~"$cluster"'
    prometheus = f'job="{PROMETHEUS}", {selected}'
    sidecar = f'job="{SIDECAR_JOB}", {selected}'
    specs = [
        ("Prometheus up", f"max by (cluster) (up{{{prometheus}}})", "{{cluster}}", "short"),
        (
            "Samples ingested per second",
            f"sum by (cluster) (rate(prometheus_tsdb_head_samples_appended_total{{{prometheus}}}[5m]))",
            "{{cluster}}",
            "short",
        ),
        (
            "Sidecar reaches Prometheus",
            f"max by (cluster) (thanos_sidecar_prometheus_up{{{sidecar}}})",
            "{{cluster}}",
            "short",
        ),
        (
            "Blocks uploaded (last 6h)",
            f"sum by (cluster) (increase(thanos_shipper_uploads_total{{{sidecar}}}[6h]))",
            "{{cluster}}",
            "short",
        ),
        (
            "Block upload failures (last 1h)",
            f"sum by (cluster) (increase(thanos_shipper_upload_failures_total{{{sidecar}}}[1h]))",
            "{{cluster}}",
            "short",
        ),
        (
            "Time since last successful upload",
            f"time() - max by (cluster) (thanos_objstore_bucket_last_successful_upload_time{{{sidecar}}} > 0)",
            "{{cluster}}",
            "s",
        ),
        (
            "StoreAPIs connected to Query",
            f'sum by (store_type, external_labels) (thanos_store_nodes_grpc_connections{{job="{QUERY}"}})',
            "{{store_type}} {{external_labels}}",
            "short",
        ),
        ("Compactor halted", f'max(thanos_compact_halted{{job="{COMPACTOR}"}})', "halted", "short"),
    ]
    panels = [
        panel(index + 1, title, expr, legend, unit, x=(index % 2) * 12, y=(index // 2) * 8)
        for index, (title, expr, legend, unit) in enumerate(specs)
    ]
    return {
        "uid": "thanos-multi-cluster",
        "title": "Thanos / Clusters",
        "tags": ["thanos", "thanos-multi-cluster"],
        "timezone": "utc",
        "schemaVersion": 38,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "cluster",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": THANOS_DATASOURCE_UID},
                    "query": {"query": f'label_values(up{{job="{PROMETHEUS}"}}, {CLUSTER_LABEL})', "refId": "cluster"},
                    "definition": f'label_values(up{{job="{PROMETHEUS}"}}, {CLUSTER_LABEL})',
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels,
    }


class ThanosAlerts(Component):
    """The PrometheusRule for the Thanos layer and (central) the dashboard ConfigMap.

    Its options wait for kube-prometheus-stack: the PrometheusRule CRD comes with it.
    """

    def __init__(self, name: str, args: ThanosAlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("monitoring:ThanosAlerts", name, opts)
        namespace = args["namespace"]
        k8s.apiextensions.CustomResource(
            RULE_NAME,
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=RULE_NAME, namespace=namespace, labels=MANAGED_BY | SELECTOR_LABELS
            ),
            spec={"groups": rule_groups(args["central"], args["expected_clusters"])},
            opts=self.child(),
        )
        if args["central"]:
            k8s.core.v1.ConfigMap(
                DASHBOARD_CONFIGMAP,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=DASHBOARD_CONFIGMAP, namespace=namespace, labels=MANAGED_BY | DASHBOARD_LABEL
                ),
                data={"thanos-clusters.json": json.dumps(dashboard(), indent=2, sort_keys=True)},
                opts=self.child(),
            )
        self.register_outputs({})
