"""Longhorn: the default StorageClass, backed up to S3.

Single node, so one replica everywhere: `persistence.defaultClassReplicaCount` for the
StorageClass and `defaultSettings.defaultReplicaCount` for volumes made in the UI. Backups go
to `s3://<bucket>@<region>/<cluster>/`; how many are kept is the RecurringJob's `retain`, never a
bucket lifecycle rule (backups share blocks, so expiring objects by age corrupts newer ones).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.ingress_nginx import INGRESS_CLASS
from components.kube import MANAGED_BY, Component, basic_auth, helm_release
from components.settings import LonghornSettings, S3Settings

RELEASE = "longhorn"
STORAGE_CLASS = "longhorn"
BACKUP_SECRET = "longhorn-backup-credentials"
UI_AUTH_SECRET = "longhorn-ui-basic-auth"
UI_PORT = 8000
MANAGER_PORT = 9500
"""longhorn-manager's API and metrics (`longhorn-backend`, port `manager`)."""
WEBHOOK_PORTS = (9501, 9502, 9503)
"""longhorn-manager's conversion and admission webhooks and recovery backend, called by the API server."""
MANAGER_POD_LABELS = {"app": "longhorn-manager"}


class BackupCredentials(TypedDict):
    access_key: pulumi.Input[str]
    """S3 access key of this cluster's Longhorn user (secret)."""
    secret_key: pulumi.Input[str]
    """S3 secret key of this cluster's Longhorn user (secret)."""


class LonghornArgs(TypedDict):
    namespace: str
    """The longhorn-system namespace."""
    cluster_name: str
    """Prefix of this cluster's backups inside the bucket."""
    hostname: str
    """Ingress host of the Longhorn UI, e.g. longhorn.mkube-196.miribit.lab."""
    chart_version: str
    """Pinned Longhorn chart version."""
    s3: S3Settings
    """Endpoint, region, TLS and bucket names of the object store."""
    longhorn: LonghornSettings
    """Backup schedule and how many backups to keep."""
    credentials: BackupCredentials
    """This cluster's Longhorn object-store credentials."""


def backup_target(s3: S3Settings, cluster_name: str) -> str:
    return f"s3://{s3.buckets.longhorn}@{s3.region}/{cluster_name}/"


def service_monitor(namespace: str) -> dict[str, Any]:
    """How Prometheus scrapes longhorn-manager (`longhorn-backend`, port `manager`).

    In kube-prometheus-stack's `additionalServiceMonitors` form: Longhorn is installed before the
    Prometheus Operator's CRDs exist (Prometheus needs Longhorn's volumes), so the chart that
    brings the CRDs creates this ServiceMonitor too.
    """
    return {
        "name": "longhorn",
        "selector": {"matchLabels": MANAGER_POD_LABELS},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": "manager", "path": "/metrics", "interval": "30s"}],
    }


def longhorn_values(args: LonghornArgs) -> dict[str, Any]:
    return {
        "persistence": {
            "defaultClass": True,
            "defaultClassReplicaCount": 1,
            # A deleted PVC keeps its volume until an operator removes it: no accidental data loss.
            "reclaimPolicy": "Retain",
        },
        "defaultSettings": {
            "defaultReplicaCount": 1,
            "backupTarget": backup_target(args["s3"], args["cluster_name"]),
            "backupTargetCredentialSecret": BACKUP_SECRET,
            "storageMinimalAvailablePercentage": 15,
            # Share of node CPU reserved for instance managers; counted in the node's system reserve.
            "guaranteedInstanceManagerCPU": 12,
            # Uninstalling the chart fails unless an operator sets this first.
            "deletingConfirmationFlag": False,
        },
        "csi": {
            "attacherReplicaCount": 1,
            "provisionerReplicaCount": 1,
            "resizerReplicaCount": 1,
            "snapshotterReplicaCount": 1,
        },
        "longhornUI": {"replicas": 1},
        "ingress": {
            "enabled": True,
            "ingressClassName": INGRESS_CLASS,
            "host": args["hostname"],
            "annotations": {
                # The Longhorn UI has no login of its own.
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": UI_AUTH_SECRET,
                "nginx.ingress.kubernetes.io/auth-realm": "Longhorn",
            },
        },
    }


def backup_secret_data(args: LonghornArgs) -> dict[str, pulumi.Input[str]]:
    """Longhorn's S3 credential keys; AWS_CERT pins a self-signed MinIO certificate."""
    data: dict[str, pulumi.Input[str]] = {
        "AWS_ACCESS_KEY_ID": args["credentials"]["access_key"],
        "AWS_SECRET_ACCESS_KEY": args["credentials"]["secret_key"],
        "AWS_ENDPOINTS": args["s3"].url,
    }
    if args["s3"].ca_certificate:
        data["AWS_CERT"] = args["s3"].ca_certificate
    return data


class Longhorn(Component):
    """The Longhorn release, its backup credentials, UI login and recurring backup job.

    `protect` (in the options) protects the release: uninstalling Longhorn detaches every volume.
    """

    release: k8s.helm.v3.Release
    ui_password: pulumi.Output[str]

    def __init__(self, name: str, args: LonghornArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storage:Longhorn", name, opts)
        ns = args["namespace"]
        backup_secret = k8s.core.v1.Secret(
            BACKUP_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=BACKUP_SECRET, namespace=ns, labels=MANAGED_BY),
            type="Opaque",
            string_data=backup_secret_data(args),
            opts=self.child(),
        )
        # Longhorn 1.5.3's chart has no resources values: a LimitRange gives its manager, UI, driver
        # and CSI sidecars requests so the scheduler accounts for them. No default limits: a memory
        # limit on an instance manager would kill every engine it runs.
        default_requests = k8s.core.v1.LimitRange(
            "longhorn-default-requests",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default-requests", namespace=ns, labels=MANAGED_BY),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(type="Container", default_request={"cpu": "20m", "memory": "64Mi"})
                ]
            ),
            opts=self.child(),
        )
        ui_auth = basic_auth(self, name, UI_AUTH_SECRET, ns)
        self.release = helm_release(
            RELEASE,
            versions.LONGHORN,
            args["chart_version"],
            namespace=ns,
            values=longhorn_values(args),
            opts=self.child(default_requests, backup_secret, ui_auth.secret, stateful=True),
            timeout_seconds=900,
            # Not atomic: rolling back a failed first install uninstalls the chart, and Longhorn's
            # pre-delete hook refuses while `deletingConfirmationFlag` is false (which protects the
            # volumes), leaving the release stuck. A failed install stays as a failed release
            # instead, and the next `pulumi up` upgrades it in place once the cause is fixed.
            atomic=False,
        )
        k8s.apiextensions.CustomResource(
            "longhorn-backup",
            api_version="longhorn.io/v1beta2",
            kind="RecurringJob",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="backup-daily", namespace=ns, labels=MANAGED_BY),
            spec={
                "name": "backup-daily",
                "task": "backup",
                "cron": args["longhorn"].backup_schedule,
                "retain": args["longhorn"].backup_retain,
                "concurrency": 1,
                "groups": ["default"],  # every volume without its own recurring-job labels
                "labels": {"recurring-job": "backup-daily"},
            },
            opts=self.child(self.release),
        )
        self.ui_password = ui_auth.password
        self.register_outputs({"release": self.release.name, "uiPassword": self.ui_password})
