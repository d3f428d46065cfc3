"""Longhorn: the default StorageClass, backed up to S3 (DESIGN C4, C10).

Single node, so one replica everywhere: `persistence.defaultClassReplicaCount` for the
StorageClass and `defaultSettings.defaultReplicaCount` for volumes made in the UI (C4). Backups go
to `s3://<bucket>@<region>/<cluster>/`; how many are kept is the RecurringJob's `retain`, never a
bucket lifecycle rule (C10: backups share blocks, so expiring objects by age corrupts newer ones).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import versions
from components.ingress_nginx import INGRESS_CLASS
from components.kube import MANAGED_BY, child_opts, helm_release
from components.settings import LonghornSettings, S3Settings

RELEASE = "longhorn"
STORAGE_CLASS = "longhorn"
BACKUP_SECRET = "longhorn-backup-credentials"
UI_AUTH_SECRET = "longhorn-ui-basic-auth"
UI_PORT = 8000


class BackupCredentials(TypedDict):
    access_key: pulumi.Input[str]
    """S3 access key of this cluster's Longhorn user (secret)."""
    secret_key: pulumi.Input[str]
    """S3 secret key of this cluster's Longhorn user (secret)."""


class LonghornArgs(TypedDict):
    provider: k8s.Provider
    """The cluster's explicit Kubernetes provider."""
    namespace: k8s.core.v1.Namespace
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
    protect: bool
    """Protect the release: uninstalling Longhorn detaches every volume."""


def backup_target(s3: S3Settings, cluster_name: str) -> str:
    return f"s3://{s3.buckets.longhorn}@{s3.region}/{cluster_name}/"


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


class Longhorn(pulumi.ComponentResource):
    """The Longhorn release, its backup credentials, UI login and recurring backup job."""

    release: k8s.helm.v3.Release
    ui_password: pulumi.Output[str]

    def __init__(self, name: str, args: LonghornArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("thanos-multi-cluster:storage:Longhorn", name, None, opts)
        provider, namespace = args["provider"], args["namespace"]
        ns = namespace.metadata.name
        backup_secret = k8s.core.v1.Secret(
            BACKUP_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=BACKUP_SECRET, namespace=ns, labels=MANAGED_BY),
            type="Opaque",
            string_data=backup_secret_data(args),
            opts=child_opts(self, provider),
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
            opts=child_opts(self, provider),
        )
        password = random.RandomPassword(
            f"{name}-ui-password", length=24, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        ui_auth = k8s.core.v1.Secret(
            UI_AUTH_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=UI_AUTH_SECRET, namespace=ns, labels=MANAGED_BY),
            type="Opaque",
            string_data={"auth": pulumi.Output.concat("admin:", password.bcrypt_hash)},
            opts=child_opts(self, provider),
        )
        self.release = helm_release(
            RELEASE,
            versions.LONGHORN,
            args["chart_version"],
            namespace=ns,
            values=longhorn_values(args),
            opts=child_opts(
                self,
                provider,
                depends_on=[namespace, default_requests, backup_secret, ui_auth],
                protect=args["protect"],
            ),
            timeout_seconds=900,
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
            opts=child_opts(self, provider, depends_on=[self.release]),
        )
        self.ui_password = pulumi.Output.secret(password.result)
        self.register_outputs({"release": self.release.name, "uiPassword": self.ui_password})
