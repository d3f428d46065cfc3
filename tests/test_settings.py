"""Stack config is validated in one place; bad config stops with one message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from components import versions
from components.settings import PROJECT, SettingsError, duration_seconds, parse_settings
from tests.conftest import CENTRAL_STACK, EDGE, OTHER_EDGE, raw_config, run_fixture


def changed(stack: str, **changes: Any) -> dict[str, Any]:
    """The fixture stack's config with top-level keys replaced (None removes the key)."""
    return raw_config(stack, **changes)


def minikube(**changes: Any) -> dict[str, Any]:
    return {**raw_config(EDGE).get("minikube", {}), **changes}


BROKEN = [
    # (id, stack, config, words the message must contain)
    ("missing role", EDGE, changed(EDGE, role=None), [f"{PROJECT}:role", "required"]),
    ("unknown role", EDGE, changed(EDGE, role="hub"), [f"{PROJECT}:role", "'central'", "'edge'"]),
    (
        "name differs from stack",
        EDGE,
        changed(EDGE, clusterName=OTHER_EDGE),
        ["clusterName", EDGE, "equal"],
    ),
    ("malformed host", EDGE, changed(EDGE, host="192.168.101"), [f"{PROJECT}:host", "IP address"]),
    ("host with scheme", EDGE, changed(EDGE, host="https://a.b"), [f"{PROJECT}:host"]),
    (
        "edge listing edges",
        EDGE,
        changed(EDGE, edges=[{"name": OTHER_EDGE, "host": "10.0.0.8", "domain": "other.lab.test"}]),
        ["edges", "only the central"],
    ),
    ("central without edges", CENTRAL_STACK, changed(CENTRAL_STACK, edges=None), ["edges", "at least one edge"]),
    (
        "duplicate edge names",
        CENTRAL_STACK,
        changed(
            CENTRAL_STACK,
            edges=[
                {"name": EDGE, "host": "10.0.0.7", "domain": "a.lab.test"},
                {"name": EDGE, "host": "10.0.0.8", "domain": "b.lab.test"},
            ],
        ),
        ["duplicate edge names", EDGE],
    ),
    (
        "edge with malformed host",
        CENTRAL_STACK,
        changed(CENTRAL_STACK, edges=[{"name": EDGE, "host": "not a host"}]),
        [f"{PROJECT}:edges.0.host"],
    ),
    (
        "bad kubernetes version",
        EDGE,
        changed(EDGE, minikube=minikube(kubernetesVersion="1.36")),
        ["minikube.kubernetesVersion", "must look like v1."],
    ),
    (
        "unsupported kubernetes version",
        EDGE,
        changed(EDGE, minikube=minikube(kubernetesVersion="v1.19.0")),
        ["minikube.kubernetesVersion", "supported range"],
    ),
    (
        "unknown minikube mode",
        EDGE,
        changed(EDGE, minikube=minikube(mode="winrm")),
        ["minikube.mode", "'ssh'", "'local'"],
    ),
    (
        "containerd as a driver (C1)",
        EDGE,
        changed(EDGE, minikube=minikube(driver="containerd")),
        ["minikube.driver", "'none'"],
    ),
    (
        "CNI that enforces nothing (C3)",
        EDGE,
        changed(EDGE, minikube=minikube(cni="bridge")),
        ["minikube.cni", "'calico'"],
    ),
    (
        "docker runtime",
        EDGE,
        changed(EDGE, minikube=minikube(containerRuntime="docker")),
        ["minikube.containerRuntime", "'containerd'"],
    ),
    (
        "ssh port out of range",
        EDGE,
        changed(EDGE, minikube=minikube(sshPort=70000)),
        ["minikube.sshPort", "65535"],
    ),
    (
        "negative cpus",
        EDGE,
        changed(EDGE, node={"cpus": -4, "memoryGib": 16}),
        ["node.cpus", "greater than 0"],
    ),
    (
        "negative memory",
        EDGE,
        changed(EDGE, node={"cpus": 4, "memoryGib": -1}),
        ["node.memoryGib", "greater than 0"],
    ),
    (
        "reserve larger than node",
        EDGE,
        changed(EDGE, node={"cpus": 1, "memoryGib": 16}),
        ["node", "system reserve"],
    ),
    (
        "misspelled key",
        EDGE,
        changed(EDGE, minikube=minikube(driverr="none")),
        ["minikube.driverr", "not a known setting"],
    ),
    (
        "bad disk size",
        EDGE,
        changed(EDGE, minikube=minikube(diskSize="100GB")),
        ["minikube.diskSize"],
    ),
    (
        "s3 endpoint with scheme",
        EDGE,
        changed(EDGE, s3={"endpoint": "https://172.20.40.21:30001"}),
        ["s3.endpoint", "without a scheme"],
    ),
    (
        "s3 endpoint without port",
        EDGE,
        changed(EDGE, s3={"endpoint": "172.20.40.21"}),
        ["s3.endpoint", "host:port"],
    ),
    (
        "expiring current objects",
        EDGE,
        changed(EDGE, s3={"expireCurrentObjectsDays": 180}),
        ["refused", "age-based expiry corrupts"],
    ),
    (
        "skipping MinIO certificate verification",
        EDGE,
        changed(EDGE, s3={"insecureSkipVerify": True}),
        ["s3.insecureSkipVerify is refused", "Longhorn", "s3.caCertificate", "pulumi config set --path"],
    ),
    (
        "skipping verification even with a CA",
        EDGE,
        changed(EDGE, s3={"insecureSkipVerify": True, "caCertificate": "-----BEGIN CERTIFICATE-----"}),
        ["s3.insecureSkipVerify is refused"],
    ),
    (
        "kubelet node-ip (the component pins it)",
        EDGE,
        changed(EDGE, minikube={"extraKubeletConfig": {"node-ip": "10.0.0.9"}}),
        ["minikube.extraKubeletConfig", "node-ip is always the host's IP"],
    ),
    (
        "whitespace in a kubelet setting",
        EDGE,
        changed(EDGE, minikube={"extraKubeletConfig": {"max-pods": "110 --x"}}),
        ["minikube.extraKubeletConfig", "whitespace"],
    ),
    (
        "hourly data dropped before 5-minute data",
        EDGE,
        changed(EDGE, thanos={"retention5m": "180d", "retention1h": "90d"}),
        ["thanos.retention1h (90d) must be at least thanos.retention5m (180d)"],
    ),
    (
        "chart version range",
        EDGE,
        changed(EDGE, versions={"longhorn": "^1.5"}),
        ["versions.longhorn", "exact chart version"],
    ),
    (
        "bad backup schedule",
        EDGE,
        changed(EDGE, longhorn={"backupSchedule": "daily"}),
        ["longhorn.backupSchedule", "cron"],
    ),
    ("bad domain", EDGE, changed(EDGE, domain="localhost"), [f"{PROJECT}:domain"]),
]


@pytest.mark.parametrize(
    ("stack", "config", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_broken_config_is_rejected_with_one_message_naming_the_key(
    stack: str, config: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(config, stack)
    message = str(error.value)
    assert "\n" not in message
    for words in expected:
        assert words in message, message


@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE, OTHER_EDGE])
def test_fixture_stack_files_are_valid(stack: str) -> None:
    settings = parse_settings(raw_config(stack), stack)
    assert settings.cluster_name == stack
    assert settings.is_central == (stack == CENTRAL_STACK)


def test_central_lists_every_edge_with_its_host() -> None:
    settings = parse_settings(raw_config(CENTRAL_STACK), CENTRAL_STACK)
    edges = {edge.name: edge.host for edge in settings.edges}
    assert edges == {stack: raw_config(stack)["host"] for stack in (EDGE, OTHER_EDGE)}


def test_defaults_are_the_design_choices() -> None:
    settings = parse_settings(changed(EDGE, minikube=None, node=None), EDGE)
    assert settings.minikube_node.driver == "none"
    assert settings.minikube_node.container_runtime == "containerd"
    assert settings.minikube_node.cni == "calico"
    assert settings.minikube_node.kubernetes_version == versions.KUBERNETES
    assert (settings.capacity.cpus, settings.capacity.memory_gib) == (4, 16)


def test_the_program_stops_with_the_settings_message_not_a_traceback() -> None:
    with pytest.raises(SettingsError, match=f"{PROJECT}:role"):
        run_fixture(EDGE, {f"{PROJECT}:role": "hub"})


def test_ssh_mode_requires_the_private_key_secret() -> None:
    with pytest.raises(SettingsError, match=r"sshPrivateKey is required when minikube\.mode is ssh"):
        run_fixture(EDGE, {f"{PROJECT}:sshPrivateKey": None})


def test_an_edge_refuses_minio_admin_credentials() -> None:
    with pytest.raises(SettingsError, match="edges never hold MinIO admin credentials"):
        run_fixture(EDGE, {f"{PROJECT}:minioAdminPassword": "x"})


def test_central_requires_minio_admin_credentials() -> None:
    with pytest.raises(SettingsError, match="minioAdminPassword is required on the central stack"):
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:minioAdminPassword": None})


def test_durations() -> None:
    assert duration_seconds("24h") == 86400
    assert duration_seconds("30d") == 30 * 86400
    with pytest.raises(ValueError):
        duration_seconds("1.5h")


def test_a_dns_host_needs_its_ip_for_the_network_policies() -> None:
    with pytest.raises(SettingsError, match="is a DNS name; set `address`"):
        parse_settings(changed(EDGE, host="node197.lab"), EDGE)
    settings = parse_settings(changed(EDGE, host="node197.lab", address="192.168.101.197"), EDGE)
    assert settings.ip == "192.168.101.197"


def test_edges_name_the_central_address_and_central_does_not() -> None:
    with pytest.raises(SettingsError, match="centralAddress: an edge needs"):
        parse_settings(changed(EDGE, centralAddress=None), EDGE)
    with pytest.raises(SettingsError, match="centralAddress: only edge stacks"):
        parse_settings(changed(CENTRAL_STACK, centralAddress="192.168.101.196"), CENTRAL_STACK)
