"""The fleet dashboard: one page for every cluster, provisioned on central's Grafana.

Central's default datasource is Thanos (through the Query Frontend), where every series carries its
cluster's `cluster` external label, so one dashboard shows the whole fleet. The `cluster` variable
comes from `label_values(up, cluster)`: every cluster that has sent anything. Each panel names the
scrape job its metric comes from (`JOBS`), the jobs our ServiceMonitors give the targets.
"""

from __future__ import annotations

from typing import Any

from components import opensearch_exporter
from components.kube_prometheus_stack import CLUSTER_LABEL, SIDECAR_JOB, THANOS_DATASOURCE_UID
from components.thanos import COMPACTOR, QUERY, STORE

UID = "thanos-multi-cluster-fleet"
TITLE = "Platform / Fleet"
CLUSTER_VARIABLE_QUERY = f"label_values(up, {CLUSTER_LABEL})"
SELECTED = f'{CLUSTER_LABEL}=~"$cluster"'
FLUENT_BIT = "fluent-bit"
LONGHORN = "longhorn-backend"
TRAEFIK = "traefik-metrics"
SNAPSHOTS = opensearch_exporter.SERVICE
JOBS = (SIDECAR_JOB, QUERY, STORE, COMPACTOR, FLUENT_BIT, LONGHORN, TRAEFIK, SNAPSHOTS)
"""Every scrape job a panel reads (the test checks each is a job some ServiceMonitor produces)."""
LONGHORN_COMPLETED, LONGHORN_ERROR = 3, 4
"""`longhorn_backup_state` values."""


def on(job: str) -> str:
    """The selector of one job's series of the selected clusters."""
    return f'job="{job}", {SELECTED}'


# (row, title, expression, legend, unit)
PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Targets",
        "Targets up",
        f"sum by (cluster) (up{{{SELECTED}}}) / count by (cluster) (up{{{SELECTED}}})",
        "{{cluster}}",
        "percentunit",
    ),
    ("Targets", "Targets down", f"count by (cluster, job) (up{{{SELECTED}}} == 0)", "{{cluster}} {{job}}", "short"),
    (
        "Metrics",
        "Sidecar upload lag (time since the last block reached the bucket)",
        f"time() - max by (cluster) (thanos_objstore_bucket_last_successful_upload_time{{{on(SIDECAR_JOB)}}} > 0)",
        "{{cluster}}",
        "s",
    ),
    (
        "Metrics",
        "Sidecar reaches Prometheus",
        f"max by (cluster) (thanos_sidecar_prometheus_up{{{on(SIDECAR_JOB)}}})",
        "{{cluster}}",
        "short",
    ),
    (
        "Metrics",
        "StoreAPIs connected to Query",
        f'sum by (store_type, external_labels) (thanos_store_nodes_grpc_connections{{job="{QUERY}"}})',
        "{{store_type}} {{external_labels}}",
        "short",
    ),
    (
        "Metrics",
        "Store Gateway blocks loaded",
        f'sum by (cluster) (thanos_bucket_store_blocks_loaded{{job="{STORE}"}})',
        "{{cluster}}",
        "short",
    ),
    (
        "Metrics",
        "Store Gateway block sync failures (1h)",
        f'sum by (cluster) (increase(thanos_blocks_meta_sync_failures_total{{job="{STORE}"}}[1h]))',
        "{{cluster}}",
        "short",
    ),
    (
        "Metrics",
        "Compactor status (1 = halted)",
        f'max by (cluster) (thanos_compact_halted{{job="{COMPACTOR}"}})',
        "{{cluster}}",
        "short",
    ),
    (
        "Logs",
        "Log ingest rate (records shipped to OpenSearch per second)",
        f"sum by (cluster) (rate(fluentbit_output_proc_records_total{{{on(FLUENT_BIT)}}}[5m]))",
        "{{cluster}}",
        "short",
    ),
    (
        "Logs",
        "Fluent-bit output retries per second",
        f"sum by (cluster) (rate(fluentbit_output_retries_total{{{on(FLUENT_BIT)}}}[5m]))",
        "{{cluster}}",
        "short",
    ),
    (
        "Logs",
        "Time since the last successful snapshot",
        "time() - max by (cluster, repository) "
        f"(elasticsearch_snapshot_stats_latest_snapshot_timestamp_seconds{{{on(SNAPSHOTS)}}} > 0)",
        "{{cluster}} {{repository}}",
        "s",
    ),
    (
        "Logs",
        "Latest snapshot state",
        "count by (cluster, repository, state) "
        f"(elasticsearch_snapshot_stats_snapshot_start_time_timestamp{{{on(SNAPSHOTS)}}})",
        "{{cluster}} {{repository}} {{state}}",
        "short",
    ),
    (
        "Backups",
        "Longhorn backups completed",
        f"count by (cluster) (longhorn_backup_state{{{on(LONGHORN)}}} == {LONGHORN_COMPLETED})",
        "{{cluster}}",
        "short",
    ),
    (
        "Backups",
        "Longhorn backups failed",
        f"count by (cluster) (longhorn_backup_state{{{on(LONGHORN)}}} == {LONGHORN_ERROR})",
        "{{cluster}}",
        "short",
    ),
    (
        "Ingress",
        "Ingress certificate: days left",
        f"(min by (cluster, cn) (traefik_tls_certs_not_after{{{on(TRAEFIK)}}}) - time()) / 86400",
        "{{cluster}} {{cn}}",
        "short",
    ),
)


def datasource() -> dict[str, str]:
    return {"type": "prometheus", "uid": THANOS_DATASOURCE_UID}


def panel(panel_id: int, title: str, expr: str, legend: str, unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": datasource(),
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "datasource": datasource(), "expr": expr, "legendFormat": legend}],
    }


def row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
    }


def panels() -> list[dict[str, Any]]:
    """Rows in order, two panels side by side."""
    result: list[dict[str, Any]] = []
    y, current_row, column = 0, None, 0
    for row_title, title, expr, legend, unit in PANELS:
        if row_title != current_row:
            y += 8 if column else 0
            result.append(row(len(result) + 1, row_title, y))
            y, current_row, column = y + 1, row_title, 0
        result.append(panel(len(result) + 1, title, expr, legend, unit, x=column * 12, y=y))
        column = (column + 1) % 2
        if column == 0:
            y += 8
    return result


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": TITLE,
        "tags": ["thanos-multi-cluster", "fleet"],
        "timezone": "utc",
        "schemaVersion": 38,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "cluster",
                    "type": "query",
                    "datasource": datasource(),
                    "query": {"query": CLUSTER_VARIABLE_QUERY, "refId": "cluster"},
                    "definition": CLUSTER_VARIABLE_QUERY,
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                }
            ]
        },
        "panels": panels(),
    }
