"""tools.verify, Kubernetes: API access with the kubeconfig output, workload readiness, volumes and
Longhorn's backup target, against a fake API server that requires minikube-style client certificates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.fakes import pki
from tests.fakes.kubernetes import daemonset, deployment, pvc
from tests.fakes.platform import FAST, FakePlatform, run_checks
from tests.fakes.server import closed_port
from tools.verify import kubernetes
from tools.verify.context import Options
from tools.verify.report import Status

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def check(platform: FakePlatform, name: str) -> tuple[Status, str, str]:
    result = run_checks(platform.outputs(), kubernetes.run)[name]
    return result.status, result.detail, result.hint


def test_a_healthy_cluster_passes_every_kubernetes_check(platform: FakePlatform) -> None:
    results = run_checks(platform.outputs(), kubernetes.run)
    assert {name: r.status for name, r in results.items()} == {
        "kubernetes.api": Status.OK,
        **{f"kubernetes.workloads[{ns}]": Status.OK for ns in kubernetes.PLATFORM_NAMESPACES},
        "kubernetes.volumes": Status.OK,
        "longhorn.backup-target": Status.OK,
    }
    assert "2 PersistentVolumeClaims Bound" in results["kubernetes.volumes"].detail
    # Read-only: the verifier only ever asked with GET.
    assert {r.method for r in platform.servers["kubernetes"].requests} == {"GET"}


def test_an_unreachable_api_server_is_one_fail_and_the_rest_not_run(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    config = yaml.safe_load(outputs["kubeconfig"])
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
    outputs["kubeconfig"] = yaml.safe_dump(config)
    results = run_checks(outputs, kubernetes.run)
    assert results["kubernetes.api"].status is Status.FAIL
    assert "connection refused" in results["kubernetes.api"].detail
    assert [r.status for name, r in results.items() if name != "kubernetes.api"] == [Status.SKIP] * 8


def test_a_kubeconfig_without_the_client_certificate_is_refused_by_the_api_server(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    config = yaml.safe_load(outputs["kubeconfig"])
    config["users"][0]["user"] = {}
    outputs["kubeconfig"] = yaml.safe_dump(config)
    result = run_checks(outputs, kubernetes.run)["kubernetes.api"]
    assert result.status is Status.FAIL and "unreachable" in result.detail


def test_a_kubeconfig_that_disables_verification_is_refused(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    config = yaml.safe_load(outputs["kubeconfig"])
    config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    outputs["kubeconfig"] = yaml.safe_dump(config)
    result = run_checks(outputs, kubernetes.run)["kubernetes.api"]
    assert result.status is Status.FAIL and "insecure-skip-tls-verify" in result.detail
    assert platform.servers["kubernetes"].requests == []


def test_a_kubeconfig_pointing_at_certificate_files_is_refused(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    config = yaml.safe_load(outputs["kubeconfig"])
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    config["clusters"][0]["cluster"]["certificate-authority"] = "/root/.minikube/ca.crt"
    outputs["kubeconfig"] = yaml.safe_dump(config)
    result = run_checks(outputs, kubernetes.run)["kubernetes.api"]
    assert result.status is Status.FAIL and "/root/.minikube/ca.crt" in result.detail


def test_a_deployment_with_fewer_ready_replicas_fails_its_namespace(platform: FakePlatform) -> None:
    platform.kubernetes.workloads["deployments"][2] = deployment("thanos-query", "monitoring", replicas=2, ready=1)
    status, detail, hint = check(platform, "kubernetes.workloads[monitoring]")
    assert status is Status.FAIL
    assert "Deployment thanos-query: 1/2 ready" in detail
    assert "kubectl -n monitoring get pods" in hint
    assert check(platform, "kubernetes.workloads[logging]")[0] is Status.OK


def test_an_incomplete_rollout_fails(platform: FakePlatform) -> None:
    platform.kubernetes.workloads["deployments"][0] = deployment("kps-operator", "monitoring", replicas=1, updated=0)
    status, detail, _ = check(platform, "kubernetes.workloads[monitoring]")
    assert status is Status.FAIL and "rollout incomplete: 0/1 updated" in detail


def test_a_generation_not_yet_observed_fails(platform: FakePlatform) -> None:
    platform.kubernetes.workloads["statefulsets"][1]["status"]["observedGeneration"] = 1
    status, detail, _ = check(platform, "kubernetes.workloads[logging]")
    assert status is Status.FAIL and "generation 2 not yet observed" in detail


def test_a_daemonset_scheduled_nowhere_or_not_ready_fails(platform: FakePlatform) -> None:
    platform.kubernetes.workloads["daemonsets"][0] = daemonset(
        "kps-prometheus-node-exporter", "node-exporter", desired=0
    )
    platform.kubernetes.workloads["daemonsets"][1] = daemonset("fluent-bit", "fluent-bit", desired=1, ready=0)
    assert "scheduled on no node" in check(platform, "kubernetes.workloads[node-exporter]")[1]
    assert "DaemonSet fluent-bit: 0/1 ready" in check(platform, "kubernetes.workloads[fluent-bit]")[1]


def test_a_missing_or_empty_namespace_fails(platform: FakePlatform) -> None:
    platform.kubernetes.namespaces.remove("ingress")
    platform.kubernetes.workloads["statefulsets"] = [
        w for w in platform.kubernetes.workloads["statefulsets"] if w["metadata"]["namespace"] != "logging"
    ]
    assert check(platform, "kubernetes.workloads[ingress]")[1] == "namespace ingress does not exist"
    assert "no Deployment, StatefulSet or DaemonSet in logging" in check(platform, "kubernetes.workloads[logging]")[1]


def test_a_pending_claim_fails_the_volumes_check(platform: FakePlatform) -> None:
    platform.kubernetes.pvcs.append(pvc("data-opensearch-1", "logging", phase="Pending"))
    platform.kubernetes.pvcs.append(pvc("elsewhere", "default", phase="Pending"))  # not the platform's: ignored
    status, detail, hint = check(platform, "kubernetes.volumes")
    assert status is Status.FAIL
    assert detail == "not Bound: logging/data-opensearch-1: Pending"
    assert "Longhorn" in hint


def test_no_claim_at_all_fails_the_volumes_check(platform: FakePlatform) -> None:
    platform.kubernetes.pvcs = []
    assert check(platform, "kubernetes.volumes")[0] is Status.FAIL


def test_an_unavailable_backup_target_says_what_its_conditions_report(platform: FakePlatform) -> None:
    assert platform.kubernetes.backup_target is not None
    platform.kubernetes.backup_target["status"] = {
        "available": False,
        "conditions": [
            {
                "type": "Unavailable",
                "status": "True",
                "reason": "Unavailable",
                "message": "failed to list backup volumes: AccessDenied",
            }
        ],
    }
    status, detail, hint = check(platform, "longhorn.backup-target")
    assert status is Status.FAIL
    assert "Unavailable=True (Unavailable): failed to list backup volumes: AccessDenied" in detail
    assert "longhorn-backup-credentials" in hint


def test_a_missing_backup_target_fails(platform: FakePlatform) -> None:
    platform.kubernetes.backup_target = None
    status, detail, _ = check(platform, "longhorn.backup-target")
    assert status is Status.FAIL and "no BackupTarget 'default'" in detail


def test_the_namespaces_can_be_overridden(platform: FakePlatform) -> None:
    options = Options(
        timeout=FAST.timeout, total_timeout=FAST.total_timeout, namespaces=("monitoring", "ingress-nginx")
    )
    results = run_checks(platform.outputs(), kubernetes.run, options)
    assert results["kubernetes.workloads[monitoring]"].status is Status.OK
    assert results["kubernetes.workloads[ingress-nginx]"].detail == "namespace ingress-nginx does not exist"
    assert "kubernetes.workloads[logging]" not in results
