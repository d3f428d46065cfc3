"""PlatformAlerts: our alerting rules for every component, and on central the fleet dashboard.

Every cluster evaluates, against its own Prometheus, the rules of what runs on it: the Thanos
sidecar and its bucket operations, the OpenSearch snapshots (through the snapshot exporter), the
Fluent-bit output retries, the Longhorn backups and the ingress certificate's expiry. Central also
watches the Compactor, Query and the Store Gateway, and checks that every cluster it expects is
connected to Query: an edge that drops out otherwise only shows up as missing lines in a graph.
Job names follow the upstream Thanos mixin's selectors (`thanos-sidecar`, `thanos-store`, ...), so
its dashboards and alerts can be imported beside ours. The dashboard queries Thanos, so it lives on
central only (`components/fleet_dashboard.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import fleet_dashboard, opensearch_exporter
from components.kube import MANAGED_BY, Component
from components.kube_prometheus_stack import (
    CLUSTER_LABEL,
    SELECTOR_LABELS,
    SIDECAR_GRPC_PORT,
    SIDECAR_JOB,
    SIDECAR_NODE_PORT,
)
from components.namespaces import MONITORING
from components.settings import PROJECT
from components.thanos import COMPACTOR, QUERY, STORE

RULE_NAME = "platform-alerts"
PREVIOUS_TYPE = f"{PROJECT}:monitoring:ThanosAlerts"
"""This component's type before it covered the whole platform (its resources are carried over)."""
DASHBOARD_CONFIGMAP = "fleet-dashboard"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""The label kube-prometheus-stack's Grafana sidecar loads dashboards from (any namespace)."""
THANOS_JOBS = 'job=~"thanos-.*"'
"""Every Thanos component we run (sidecar, query, query-frontend, store, compactor)."""
STORE_CONTAINER = "store"
"""The Store Gateway's container (`components/thanos.py` names containers after the subcommand)."""
FLUENT_BIT_JOB = "fluent-bit"
"""The chart's ServiceMonitor takes the job from the Service's `app.kubernetes.io/instance` label."""
LONGHORN_JOB = "longhorn-backend"
"""Longhorn's ServiceMonitor scrapes the Service `longhorn-backend` (no job label of its own)."""
TRAEFIK_JOB = "traefik-metrics"
"""The chart's ServiceMonitor asks for a `traefik` Service label that the Service does not carry:
the job is the Service's name."""
LONGHORN_BACKUP_ERROR = 4
"""`longhorn_backup_state`: 0 New, 1 Pending, 2 InProgress, 3 Completed, 4 Error, 5 Unknown."""
CERTIFICATE_WARNING_DAYS = 14
CERTIFICATE_CRITICAL_DAYS = 3
# gRPC codes that mean the server failed, not that the client gave up or asked for something wrong.
GRPC_SERVER_FAILURES = "Unknown|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"


class PlatformAlertsArgs(TypedDict):
    namespace: str
    """The monitoring namespace."""
    central: bool
    """Central gets the rules for its own Thanos components and the fleet dashboard."""
    expected_clusters: Sequence[str]
    """Central: every cluster whose sidecar Query must see (itself and each edge)."""
    snapshot_repository: str
    """OpenSearch's snapshot repository (`logging.repositoryName`), whose disappearance alerts."""
    longhorn: bool
    """Longhorn is installed: its backups are watched (a rule on metrics nobody exports would never fire)."""


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
        f"it answers miss {cluster}'s recent data. Check that cluster, its sidecar's Service (NodePort "
        f"{SIDECAR_NODE_PORT}, or its load balancer on {SIDECAR_GRPC_PORT}) and the NetworkPolicy admitting central.",
    )
    # Not `cluster`: Prometheus would not add its own `cluster` external label to the alert then.
    rule["labels"]["missing_cluster"] = cluster
    return rule


def store_gateway_rules() -> list[dict[str, Any]]:
    """The Store Gateway runs out of memory (killed, or close to its limit) or stops syncing blocks."""
    pod = f'namespace="{MONITORING}", pod=~"{STORE}-.*", container="{STORE_CONTAINER}"'
    by = "max by (namespace, pod)"
    return [
        alert(
            "ThanosStoreGatewayOOMKilled",
            f'({by} (kube_pod_container_status_last_terminated_reason{{{pod}, reason="OOMKilled"}}) == 1)\n'
            f"and on (namespace, pod)\n"
            f"{by} (increase(kube_pod_container_status_restarts_total{{{pod}}}[30m])) > 0",
            "0m",
            "critical",
            "Thanos Store Gateway {{ $labels.pod }} was killed for running out of memory",
            "The kernel killed the Store Gateway at its memory limit (thanos.storeMemoryLimit) within the last 30 "
            "minutes: history older than Prometheus's local retention was unavailable while it restarted. Raise "
            "the limit or lower thanos.storeIndexCacheSize.",
        ),
        alert(
            "ThanosStoreGatewayNearMemoryLimit",
            f"{by} (container_memory_working_set_bytes{{{pod}}})\n/\n"
            f'{by} (kube_pod_container_resource_limits{{{pod}, resource="memory"}}) > 0.9',
            "15m",
            "warning",
            "Thanos Store Gateway {{ $labels.pod }} uses over 90% of its memory limit",
            "The Store Gateway will be OOM-killed at its limit (thanos.storeMemoryLimit); raise it before it is.",
        ),
        alert(
            "ThanosStoreGatewayNotSyncingBlocks",
            f'sum by (namespace, pod) (rate(thanos_blocks_meta_sync_failures_total{{job="{STORE}"}}[30m]))\n/\n'
            f'sum by (namespace, pod) (rate(thanos_blocks_meta_syncs_total{{job="{STORE}"}}[30m])) > 0.5',
            "30m",
            "critical",
            "Thanos Store Gateway {{ $labels.pod }} cannot sync the bucket's blocks",
            "Most block syncs have failed for an hour: new blocks from the sidecars and the Compactor are not "
            "served, so Query misses history. Check the Store Gateway's logs, its credentials and MinIO.",
        ),
    ]


def central_rules(expected_clusters: Sequence[str]) -> dict[str, Any]:
    return {
        "name": "thanos-central",
        "rules": [
            *compactor_rules(),
            *query_store_rules(),
            *store_gateway_rules(),
            *(cluster_missing_rule(cluster) for cluster in expected_clusters),
        ],
    }


def bucket_rules() -> dict[str, Any]:
    """Object storage operations of every Thanos component of this cluster (sidecar; Store Gateway
    and Compactor on central)."""
    operations = "sum by (namespace, job, operation) (rate(thanos_objstore_bucket_operation{}_total{{{}}}[5m]))"
    return {
        "name": "thanos-bucket",
        "rules": [
            alert(
                "ThanosBucketOperationsFailing",
                f"{operations.format('_failures', THANOS_JOBS)}\n/\n{operations.format('s', THANOS_JOBS)} > 0.05",
                "15m",
                "critical",
                "{{ $labels.job }} fails more than 5% of its {{ $labels.operation }} operations on the bucket",
                "Requests to MinIO fail (credentials, bucket policy, TLS or MinIO down): blocks are not uploaded, "
                "compacted or served.",
            )
        ],
    }


def logging_rules(repository: str) -> dict[str, Any]:
    """OpenSearch snapshots (through the snapshot exporter) and Fluent-bit's delivery to OpenSearch.

    Metric names are elasticsearch-exporter v1.10.0's: its snapshots collector reports success as
    `elasticsearch_scrape_success{collector="snapshots"}` (there is no `..._snapshot_stats_up`), and
    `..._number_of_snapshots` for every repository OpenSearch lists, also one without snapshots."""
    exporter = f'job="{opensearch_exporter.SERVICE}"'
    fluent_bit = f'job="{FLUENT_BIT_JOB}"'
    snapshot = "elasticsearch_snapshot_stats"
    return {
        "name": "logging",
        "rules": [
            alert(
                "OpenSearchSnapshotFailed",
                # The exporter reports the latest snapshot of each repository, its state as a label.
                f"count by (namespace, repository) "
                f'({snapshot}_snapshot_start_time_timestamp{{{exporter}, state=~"FAILED|PARTIAL"}}) > 0',
                "5m",
                "critical",
                "The latest OpenSearch snapshot in {{ $labels.repository }} did not succeed",
                "Snapshot Management's latest snapshot ended FAILED or PARTIAL: the days it should hold are not "
                "safe in MinIO. `GET _snapshot/{{ $labels.repository }}/_all` shows the reason.",
            ),
            alert(
                "OpenSearchNoRecentSnapshot",
                f"time() - max by (namespace, repository) ({snapshot}_latest_snapshot_timestamp_seconds{{{exporter}}}) "
                f"> 36 * 3600\nand on (namespace, repository)\n"
                f"max by (namespace, repository) ({snapshot}_number_of_snapshots{{{exporter}}}) > 0",
                "1h",
                "critical",
                "No successful OpenSearch snapshot in {{ $labels.repository }} for 36 hours",
                "The daily snapshot has not succeeded for a day and a half: logs older than the index retention "
                "exist nowhere else.",
            ),
            alert(
                "OpenSearchSnapshotMetricsMissing",
                f'max by (namespace, pod) (elasticsearch_scrape_success{{{exporter}, collector="snapshots"}}) == 0\n'
                f"or\nmax by (namespace, pod) (up{{{exporter}}}) == 0",
                "30m",
                "warning",
                "The snapshot exporter beside {{ $labels.pod }} cannot read OpenSearch's snapshots",
                "Without these metrics a failing snapshot goes unnoticed. Check the snapshot-exporter container's log "
                "(credentials of the snapshot-exporter user, OpenSearch down).",
            ),
            alert(
                "OpenSearchSnapshotRepositoryMissing",
                # The exporter runs and reads snapshots, but the repository's series are gone: without
                # them OpenSearchNoRecentSnapshot cannot fire either.
                f'absent({snapshot}_number_of_snapshots{{{exporter}, repository="{repository}"}})\n'
                f'and on ()\ncount(elasticsearch_scrape_success{{{exporter}, collector="snapshots"}} == 1) > 0',
                "30m",
                "critical",
                f"OpenSearch has no snapshot repository {repository}",
                f"The repository {repository} is gone (deleted, or never registered): Snapshot Management takes no "
                "snapshot and nothing reports it. `pulumi up` registers it again; `GET _snapshot` shows what exists.",
            ),
            alert(
                "FluentBitOutputRetrying",
                f"sum by (namespace, pod, name) (rate(fluentbit_output_retries_total{{{fluent_bit}}}[5m])) > 0",
                "30m",
                "warning",
                "Fluent-bit {{ $labels.pod }} keeps retrying its output {{ $labels.name }}",
                "OpenSearch has refused or not answered Fluent-bit's writes for 30 minutes; chunks pile up in the "
                "node's buffer (logging.fluentBitBufferLimit) and the oldest are dropped once it is full.",
            ),
            alert(
                "FluentBitOutputRetriesFailed",
                f"sum by (namespace, pod, name) (increase(fluentbit_output_retries_failed_total{{{fluent_bit}}}[15m]))"
                " > 0",
                "0m",
                "critical",
                "Fluent-bit {{ $labels.pod }} dropped log chunks after their last retry",
                "Chunks exhausted logging.fluentBitRetryLimit and were discarded: those log lines are lost.",
            ),
        ],
    }


def storage_rules() -> dict[str, Any]:
    return {
        "name": "storage",
        "rules": [
            alert(
                "LonghornBackupFailed",
                f'max by (volume, backup) (longhorn_backup_state{{job="{LONGHORN_JOB}"}}) == {LONGHORN_BACKUP_ERROR}',
                "5m",
                "critical",
                "Longhorn backup {{ $labels.backup }} of volume {{ $labels.volume }} failed",
                "The backup ended in the Error state: the volume has no new copy in MinIO. The Backup object's "
                "status and the backup target (`kubectl -n longhorn-system get backuptargets`) say why.",
            )
        ],
    }


def ingress_rules() -> dict[str, Any]:
    """The certificates Traefik serves (the cluster's wildcard ingress certificate): warning at two
    weeks, critical at three days (the critical inhibits the warning of the same cluster)."""
    days_left = f'(min by (cn, sans) (traefik_tls_certs_not_after{{job="{TRAEFIK_JOB}"}}) - time()) / 86400'
    return {
        "name": "ingress",
        "rules": [
            alert(
                "IngressCertificateExpiresSoon",
                f"{days_left} < {days}",
                "1h",
                severity,
                "The ingress certificate {{ $labels.cn }} expires in {{ $value | humanize }} days",
                "Traefik serves a certificate that expires soon: renew it (`pulumi up` re-issues a certificate in "
                "its renewal window) before every UI and API of this cluster fails TLS.",
            )
            for days, severity in ((CERTIFICATE_WARNING_DAYS, "warning"), (CERTIFICATE_CRITICAL_DAYS, "critical"))
        ],
    }


def rule_groups(
    central: bool, expected_clusters: Sequence[str], repository: str, longhorn: bool = True
) -> list[dict[str, Any]]:
    groups = [sidecar_rules(), bucket_rules(), logging_rules(repository)]
    groups += [storage_rules()] if longhorn else []
    groups.append(ingress_rules())
    if central:
        groups.append(central_rules(expected_clusters))
    return groups


class PlatformAlerts(Component):
    """The PrometheusRule of the platform and (central) the fleet dashboard's ConfigMap.

    Its options wait for kube-prometheus-stack: the PrometheusRule CRD comes with it.
    """

    def __init__(self, name: str, args: PlatformAlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Formerly ThanosAlerts named `<cluster>-thanos-alerts`: carried over, not replaced.
        previous = pulumi.Alias(type_=PREVIOUS_TYPE, name=name.removesuffix("-platform-alerts") + "-thanos-alerts")
        super().__init__(
            "monitoring:PlatformAlerts",
            name,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[previous])),
        )
        namespace = args["namespace"]
        k8s.apiextensions.CustomResource(
            RULE_NAME,
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=RULE_NAME, namespace=namespace, labels=MANAGED_BY | SELECTOR_LABELS
            ),
            spec={
                "groups": rule_groups(
                    args["central"], args["expected_clusters"], args["snapshot_repository"], args["longhorn"]
                )
            },
            opts=self.child(),
        )
        if args["central"]:
            k8s.core.v1.ConfigMap(
                DASHBOARD_CONFIGMAP,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=DASHBOARD_CONFIGMAP, namespace=namespace, labels=MANAGED_BY | DASHBOARD_LABEL
                ),
                data={"fleet.json": json.dumps(fleet_dashboard.dashboard(), indent=2, sort_keys=True)},
                opts=self.child(),
            )
        self.register_outputs({})
