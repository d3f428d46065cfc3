"""Longhorn: the platform's StorageClass (the cluster's default on Minikube), backed up to S3.

One replica of each volume per node, up to three (one on Minikube's single node):
`persistence.defaultClassReplicaCount` for the StorageClass and `defaultSettings.defaultReplicaCount`
for volumes made in the UI. On a cluster with its own StorageClass (`storage.className`) Longhorn is
not installed at all. Since Longhorn
1.10 some settings hold one value per data engine (`{"v1": "1", "v2": "1"}`, which the chart
renders as JSON into the Setting); the program writes those in that form. Backups go to the
default backup target, `s3://<bucket>@<region>/<cluster>/` (the chart's `defaultBackupStore`,
which Longhorn turns into the `default` BackupTarget); how many are kept is the RecurringJob's
`retain`, never a bucket lifecycle rule (backups share blocks, so expiring objects by age corrupts
newer ones).

Fresh installs only: Longhorn upgrades one minor version at a time, so a cluster on an older
Longhorn is not upgraded in place by this program (see the README).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.kube import MANAGED_BY, Component, basic_auth, helm_release, resources
from components.settings import LonghornSettings, S3Settings
from components.traefik import LoginMiddleware, https_ingress

RELEASE = "longhorn"
STORAGE_CLASS = "longhorn"
BACKUP_SECRET = "longhorn-backup-credentials"
UI_AUTH_SECRET = "longhorn-ui-basic-auth"
UI_PORT = 8000
"""The UI pods' port (what the NetworkPolicy opens to the ingress controller)."""
UI_SERVICE = "longhorn-frontend"
UI_SERVICE_PORT = 80
"""The chart's Service in front of the UI pods, and its port."""
UI_INGRESS = "longhorn-ui"
MANAGER_PORT = 9500
"""longhorn-manager's API and metrics (`longhorn-backend`, port `manager`)."""
WEBHOOK_PORTS = (9502, 9503)
"""longhorn-manager's admission webhook and recovery backend (Longhorn 1.12 has no conversion webhook on 9501)."""
MANAGER_POD_LABELS = {"app": "longhorn-manager"}
DEFAULT_REQUESTS = {"cpu": "10m", "memory": "64Mi"}
"""What the LimitRange gives each container no value sizes: the UI (nginx serving static files and
proxying to the manager), the driver deployer (idle after deploying), the CSI sidecars (controllers
waiting for volume operations), the engine image (idle) and the instance manager's memory. Ten
containers on one node; Longhorn's own manifests request nothing for them. The instance manager's CPU
is its guaranteed share instead (`guaranteedInstanceManagerCPU`)."""


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
    replicas: int
    """Replicas of each volume, each on its own node."""
    default_class: bool
    """Longhorn's StorageClass becomes the cluster's default: on Minikube (its own `standard` class is a
    hostPath), not on an existing cluster, whose default is its operator's choice (every claim of the
    platform names its class anyway)."""


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


def ui_login(namespace: str) -> LoginMiddleware:
    """The basic-auth login in front of the UI. Traefik's component creates the Middleware: its CRD
    comes with Traefik, which is installed after Longhorn."""
    return LoginMiddleware(namespace, UI_AUTH_SECRET, "Longhorn")


def per_engine(v1: str, v2: str | None = None) -> dict[str, str]:
    """A data-engine-specific setting: one value per data engine, as strings (the Setting's JSON form)."""
    values = {"v1": v1}
    if v2 is not None:
        values["v2"] = v2
    return values


def default_settings(replicas: int) -> dict[str, Any]:
    return {
        # Both engines: one replica per node, whatever the engine.
        "defaultReplicaCount": per_engine(str(replicas), str(replicas)),
        "storageMinimalAvailablePercentage": 15,
        # Share of node CPU reserved for each v1 instance manager; counted in the node's system
        # reserve. The v2 engine is off, so its value stays the default.
        "guaranteedInstanceManagerCPU": per_engine("12"),
        # Uninstalling the chart fails unless an operator sets this first.
        "deletingConfirmationFlag": False,
    }


def longhorn_values(args: LonghornArgs) -> dict[str, Any]:
    return {
        "persistence": {
            "defaultClass": args["default_class"],
            "defaultClassReplicaCount": args["replicas"],
            # A deleted PVC keeps its volume until an operator removes it: no accidental data loss.
            "reclaimPolicy": "Retain",
        },
        "defaultSettings": default_settings(args["replicas"]),
        # Since Longhorn 1.8 backup targets are BackupTarget resources; these values configure the
        # `default` one, which the StorageClass (`persistence.backupTargetName`) and the job use.
        "defaultBackupStore": {
            "backupTarget": backup_target(args["s3"], args["cluster_name"]),
            "backupTargetCredentialSecret": BACKUP_SECRET,
        },
        # The only Longhorn container the chart sizes through values; the others get the
        # namespace's default requests (see `Longhorn`).
        "longhornManager": {"resources": resources(cpu="50m", memory="192Mi", memory_limit="512Mi")},
        # On by default in the 1.12 chart: its policies only add allows next to those of
        # `components/network_policies.py`, and its webhook policy opens the webhook ports to every
        # source. The program's own policies are the whole set.
        "networkPolicies": {"restrictInternalTraffic": False},
        "csi": {
            "attacherReplicaCount": 1,
            "provisionerReplicaCount": 1,
            "resizerReplicaCount": 1,
            "snapshotterReplicaCount": 1,
        },
        "longhornUI": {"replicas": 1},
        # The chart has no digest values; it joins `repository:tag`, and the manager passes its own
        # image on to the driver deployer and the pods it starts by the same string.
        "image": {
            "longhorn": {
                "manager": {"tag": versions.pinned_tag(versions.LONGHORN_MANAGER_IMAGE)},
                "ui": {"tag": versions.pinned_tag(versions.LONGHORN_UI_IMAGE)},
                "shareManager": {"tag": versions.pinned_tag(versions.LONGHORN_SHARE_MANAGER_IMAGE)},
            }
        },
        # Our own Ingress (below) instead: the chart's names a TLS Secret in this namespace, and the
        # UI is served with the ingress controller's default certificate, whose key stays with it.
        "ingress": {
            "enabled": False,
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
        # Longhorn 1.12's chart sizes only longhorn-manager through values: a LimitRange gives the UI,
        # the driver deployer, the manager's image pre-pull container and the pods the manager creates
        # (CSI, engine image, instance managers' memory) requests so the scheduler accounts for them.
        # No default limits: a memory limit on an instance manager would kill every engine it runs.
        default_requests = k8s.core.v1.LimitRange(
            "longhorn-default-requests",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default-requests", namespace=ns, labels=MANAGED_BY),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[k8s.core.v1.LimitRangeItemArgs(type="Container", default_request=DEFAULT_REQUESTS)]
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
        # The Longhorn UI has no login of its own: basic auth in front of it.
        https_ingress(
            UI_INGRESS,
            ns,
            args["hostname"],
            UI_SERVICE,
            UI_SERVICE_PORT,
            MANAGED_BY,
            ui_login(ns).ingress_annotations(),
            self.child(self.release, ui_auth.secret),
        )
        self.ui_password = ui_auth.password
        self.register_outputs({"release": self.release.name, "uiPassword": self.ui_password})
