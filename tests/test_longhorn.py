"""Longhorn: default StorageClass, one replica (C4), S3 backups with retention in the job (C10)."""

from __future__ import annotations

from tests.conftest import settings
from tools.engine import Rendering, Secret


def values(stack: Rendering) -> dict:
    return stack.release("longhorn").inputs["values"]


def test_single_node_settings_apply_to_storage_class_and_ui_volumes(any_stack: Rendering) -> None:
    v = values(any_stack)
    assert v["persistence"]["defaultClass"] is True
    assert v["persistence"]["defaultClassReplicaCount"] == 1  # the StorageClass's volumes
    assert v["defaultSettings"]["defaultReplicaCount"] == 1  # volumes made in the UI
    assert v["persistence"]["reclaimPolicy"] == "Retain"


def test_backups_go_to_the_clusters_prefix_with_our_credentials_secret(any_stack: Rendering) -> None:
    defaults = values(any_stack)["defaultSettings"]
    s3 = settings(any_stack).s3
    assert defaults["backupTarget"] == f"s3://{s3.buckets.longhorn}@{s3.region}/{any_stack.stack}/"
    secret = any_stack.k8s("Secret", defaults["backupTargetCredentialSecret"], "longhorn-system")
    assert isinstance(secret.inputs["stringData"], Secret)
    keys = set(secret.inputs["stringData"].value)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINTS"} <= keys


def test_recurring_backup_job_keeps_a_bounded_number(any_stack: Rendering) -> None:
    job = any_stack.k8s("RecurringJob", "backup-daily", "longhorn-system")
    assert job.inputs["apiVersion"] == "longhorn.io/v1beta2"
    assert job.inputs["spec"]["task"] == "backup"
    assert job.inputs["spec"]["retain"] == 14
    assert job.inputs["spec"]["groups"] == ["default"]
    assert any_stack.depends_on(job, any_stack.release("longhorn")), "CRDs come with the release"


def test_ui_is_behind_ingress_with_a_login(any_stack: Rendering) -> None:
    ingress = values(any_stack)["ingress"]
    assert ingress["enabled"] is True
    assert ingress["host"] == f"longhorn.{settings(any_stack).domain}"
    assert ingress["annotations"]["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    auth = any_stack.k8s("Secret", ingress["annotations"]["nginx.ingress.kubernetes.io/auth-secret"], "longhorn-system")
    assert isinstance(auth.inputs["stringData"], Secret)
    assert isinstance(any_stack.outputs["longhornUiPassword"], Secret)


def test_a_failed_first_install_stays_recoverable(any_stack: Rendering) -> None:
    """Longhorn's pre-delete hook refuses while deletingConfirmationFlag is false, so an atomic
    rollback (an uninstall) would leave the release stuck; without atomic, the next `pulumi up`
    upgrades the failed release in place."""
    release = any_stack.release("longhorn")
    assert release.inputs["atomic"] is False
    assert release.inputs["cleanupOnFail"] is False
    assert values(any_stack)["defaultSettings"]["deletingConfirmationFlag"] is False


def test_prometheus_scrapes_longhorn_manager_through_the_chart_that_brings_the_crd(any_stack: Rendering) -> None:
    monitors = any_stack.release("kube-prometheus-stack").inputs["values"]["prometheus"]["additionalServiceMonitors"]
    longhorn = next(m for m in monitors if m["name"] == "longhorn")
    assert longhorn["selector"] == {"matchLabels": {"app": "longhorn-manager"}}
    assert longhorn["namespaceSelector"] == {"matchNames": ["longhorn-system"]}
    assert longhorn["endpoints"][0]["port"] == "manager"


def test_release_is_protected_and_waits_for_its_namespace(any_stack: Rendering) -> None:
    release = any_stack.release("longhorn")
    assert release.protect
    assert any_stack.depends_on(release, any_stack.k8s("Namespace", "longhorn-system"))
    assert any_stack.depends_on(release, any_stack.k8s("LimitRange", "default-requests", "longhorn-system"))
