"""Stack config is validated in one place; bad config stops with one message naming the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.settings import PROJECT, SettingsError, duration_seconds, parse_settings
from tools.engine import load_stack_config, run_stack


def raw_config(stack: str) -> dict[str, Any]:
    """The stack file as the program sees it, JSON decoded, without the project prefix."""
    raw = {}
    for key, value in load_stack_config(stack).items():
        name = key.removeprefix(f"{PROJECT}:")
        raw[name] = json.loads(value) if value[:1] in "[{" else value
    return raw


def changed(stack: str, **changes: Any) -> dict[str, Any]:
    """The stack's config with top-level keys replaced (None removes the key)."""
    raw = copy.deepcopy(raw_config(stack))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def minikube(**changes: Any) -> dict[str, Any]:
    return {**raw_config("cluster-197")["minikube"], **changes}


BROKEN = [
    # (id, stack, config, words the message must contain)
    ("missing role", "cluster-197", changed("cluster-197", role=None), [f"{PROJECT}:role", "required"]),
    ("unknown role", "cluster-197", changed("cluster-197", role="hub"), [f"{PROJECT}:role", "'central'", "'edge'"]),
    (
        "name differs from stack",
        "cluster-197",
        changed("cluster-197", clusterName="cluster-198"),
        ["clusterName", "cluster-197", "equal"],
    ),
    ("malformed host", "cluster-197", changed("cluster-197", host="192.168.101"), [f"{PROJECT}:host", "IP address"]),
    ("host with scheme", "cluster-197", changed("cluster-197", host="https://a.b"), [f"{PROJECT}:host"]),
    (
        "edge listing edges",
        "cluster-197",
        changed("cluster-197", edges=[{"name": "cluster-198", "host": "10.0.0.8"}]),
        ["edges", "only the central"],
    ),
    ("central without edges", "cluster-196", changed("cluster-196", edges=None), ["edges", "at least one edge"]),
    (
        "duplicate edge names",
        "cluster-196",
        changed(
            "cluster-196",
            edges=[{"name": "cluster-197", "host": "10.0.0.7"}, {"name": "cluster-197", "host": "10.0.0.8"}],
        ),
        ["duplicate edge names", "cluster-197"],
    ),
    (
        "edge with malformed host",
        "cluster-196",
        changed("cluster-196", edges=[{"name": "cluster-197", "host": "not a host"}]),
        [f"{PROJECT}:edges.0.host"],
    ),
    (
        "bad kubernetes version",
        "cluster-197",
        changed("cluster-197", minikube=minikube(kubernetesVersion="1.28")),
        ["minikube.kubernetesVersion", "v1.28.0"],
    ),
    (
        "unsupported kubernetes version",
        "cluster-197",
        changed("cluster-197", minikube=minikube(kubernetesVersion="v1.19.0")),
        ["minikube.kubernetesVersion", "supported range"],
    ),
    (
        "unknown minikube mode",
        "cluster-197",
        changed("cluster-197", minikube=minikube(mode="winrm")),
        ["minikube.mode", "'ssh'", "'local'"],
    ),
    (
        "containerd as a driver (C1)",
        "cluster-197",
        changed("cluster-197", minikube=minikube(driver="containerd")),
        ["minikube.driver", "'none'"],
    ),
    (
        "CNI that enforces nothing (C3)",
        "cluster-197",
        changed("cluster-197", minikube=minikube(cni="bridge")),
        ["minikube.cni", "'calico'"],
    ),
    (
        "docker runtime",
        "cluster-197",
        changed("cluster-197", minikube=minikube(containerRuntime="docker")),
        ["minikube.containerRuntime", "'containerd'"],
    ),
    (
        "ssh port out of range",
        "cluster-197",
        changed("cluster-197", minikube=minikube(sshPort=70000)),
        ["minikube.sshPort", "65535"],
    ),
    (
        "negative cpus",
        "cluster-197",
        changed("cluster-197", node={"cpus": -4, "memoryGib": 16}),
        ["node.cpus", "greater than 0"],
    ),
    (
        "negative memory",
        "cluster-197",
        changed("cluster-197", node={"cpus": 4, "memoryGib": -1}),
        ["node.memoryGib", "greater than 0"],
    ),
    (
        "reserve larger than node",
        "cluster-197",
        changed("cluster-197", node={"cpus": 1, "memoryGib": 16}),
        ["node", "system reserve"],
    ),
    (
        "misspelled key",
        "cluster-197",
        changed("cluster-197", minikube=minikube(driverr="none")),
        ["minikube.driverr", "not a known setting"],
    ),
    (
        "bad disk size",
        "cluster-197",
        changed("cluster-197", minikube=minikube(diskSize="100GB")),
        ["minikube.diskSize"],
    ),
    (
        "s3 endpoint with scheme",
        "cluster-197",
        changed("cluster-197", s3={"endpoint": "https://172.20.40.21:30001"}),
        ["s3.endpoint", "without a scheme"],
    ),
    (
        "s3 endpoint without port",
        "cluster-197",
        changed("cluster-197", s3={"endpoint": "172.20.40.21"}),
        ["s3.endpoint", "host:port"],
    ),
    (
        "expiring current objects (C10)",
        "cluster-197",
        changed("cluster-197", s3={"expireCurrentObjectsDays": 180}),
        ["refused", "C10"],
    ),
    (
        "skipping MinIO certificate verification",
        "cluster-197",
        changed("cluster-197", s3={"insecureSkipVerify": True}),
        ["s3.insecureSkipVerify is refused", "Longhorn", "s3.caCertificate", "pulumi config set --path"],
    ),
    (
        "skipping verification even with a CA",
        "cluster-197",
        changed("cluster-197", s3={"insecureSkipVerify": True, "caCertificate": "-----BEGIN CERTIFICATE-----"}),
        ["s3.insecureSkipVerify is refused"],
    ),
    (
        "kubelet node-ip (the component pins it)",
        "cluster-197",
        changed("cluster-197", minikube={"extraKubeletConfig": {"node-ip": "10.0.0.9"}}),
        ["minikube.extraKubeletConfig", "node-ip is always the host's IP"],
    ),
    (
        "whitespace in a kubelet setting",
        "cluster-197",
        changed("cluster-197", minikube={"extraKubeletConfig": {"max-pods": "110 --x"}}),
        ["minikube.extraKubeletConfig", "whitespace"],
    ),
    (
        "chart version range",
        "cluster-197",
        changed("cluster-197", versions={"longhorn": "^1.5"}),
        ["versions.longhorn", "exact chart version"],
    ),
    (
        "bad backup schedule",
        "cluster-197",
        changed("cluster-197", longhorn={"backupSchedule": "daily"}),
        ["longhorn.backupSchedule", "cron"],
    ),
    ("bad domain", "cluster-197", changed("cluster-197", domain="localhost"), [f"{PROJECT}:domain"]),
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


@pytest.mark.parametrize("stack", ["cluster-196", "cluster-197", "cluster-198"])
def test_committed_stack_files_are_valid(stack: str) -> None:
    settings = parse_settings(raw_config(stack), stack)
    assert settings.cluster_name == stack
    assert settings.is_central == (stack == "cluster-196")


def test_central_lists_both_edges_with_their_hosts() -> None:
    settings = parse_settings(raw_config("cluster-196"), "cluster-196")
    assert [(edge.name, edge.host) for edge in settings.edges] == [
        ("cluster-197", "192.168.101.197"),
        ("cluster-198", "192.168.101.198"),
    ]


def test_defaults_are_the_design_choices() -> None:
    settings = parse_settings(changed("cluster-197", minikube=None, node=None), "cluster-197")
    assert settings.minikube.driver == "none"
    assert settings.minikube.container_runtime == "containerd"
    assert settings.minikube.cni == "calico"
    assert settings.minikube.kubernetes_version == "v1.28.0"
    assert (settings.node.cpus, settings.node.memory_gib) == (4, 16)


def test_the_program_stops_with_the_settings_message_not_a_traceback() -> None:
    with pytest.raises(SettingsError, match=f"{PROJECT}:role"):
        run_stack("cluster-197", {f"{PROJECT}:role": "hub"})


def test_ssh_mode_requires_the_private_key_secret() -> None:
    with pytest.raises(SettingsError, match=r"sshPrivateKey is required when minikube\.mode is ssh"):
        run_stack("cluster-197", {f"{PROJECT}:sshPrivateKey": None})


def test_an_edge_refuses_minio_admin_credentials() -> None:
    with pytest.raises(SettingsError, match="edges never hold MinIO admin credentials"):
        run_stack("cluster-197", {f"{PROJECT}:minioAdminPassword": "x"})


def test_central_requires_minio_admin_credentials() -> None:
    with pytest.raises(SettingsError, match="minioAdminPassword is required on the central stack"):
        run_stack("cluster-196", {f"{PROJECT}:minioAdminPassword": None})


def test_durations() -> None:
    assert duration_seconds("24h") == 86400
    assert duration_seconds("30d") == 30 * 86400
    with pytest.raises(ValueError):
        duration_seconds("1.5h")


def test_a_dns_host_needs_its_ip_for_the_network_policies() -> None:
    with pytest.raises(SettingsError, match="is a DNS name; set `address`"):
        parse_settings(changed("cluster-197", host="node197.lab"), "cluster-197")
    settings = parse_settings(changed("cluster-197", host="node197.lab", address="192.168.101.197"), "cluster-197")
    assert settings.ip == "192.168.101.197"


def test_edges_name_the_central_address_and_central_does_not() -> None:
    with pytest.raises(SettingsError, match="centralAddress: an edge needs"):
        parse_settings(changed("cluster-197", centralAddress=None), "cluster-197")
    with pytest.raises(SettingsError, match="centralAddress: only edge stacks"):
        parse_settings(changed("cluster-196", centralAddress="192.168.101.196"), "cluster-196")
