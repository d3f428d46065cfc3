"""The README's Quick start is the real sequence: every step a first `pulumi up` needs, in order.

A platform engineer follows it on a fresh machine, so nothing it leaves out may be needed: the
program's own refusals (a missing secret, MinIO's CA, the central stack first) each name a step
the Quick start must already have taken.
"""

from __future__ import annotations

import re

import yaml

from components.settings import PROJECT, SECRET_KEYS, Role, parse_settings
from tests.conftest import COMMITTED_STACKS, ROOT, committed

README = (ROOT / "README.md").read_text()


def quick_start() -> str:
    section = README.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2, "the two commands, then the whole path"
    return blocks[1]


def position(text: str, needle: str) -> int:
    assert needle in text, f"the Quick start never says {needle!r}"
    return text.index(needle)


def test_the_quick_start_goes_from_a_fresh_machine_to_every_cluster_in_order() -> None:
    steps = quick_start()
    order = [
        "python3-venv",
        "pulumi login --local",
        "PULUMI_CONFIG_PASSPHRASE",
        "pulumi stack init",
        "minikube",
        "containerd.io",
        "--secret sshPrivateKey",
        "--path s3.caCertificate",
        "pulumi up -s",
        "tools.verify",
    ]
    positions = [position(steps, needle) for needle in order]
    assert positions == sorted(positions), "each step comes after the ones it needs"


def test_every_required_secret_of_every_role_is_set_in_the_quick_start() -> None:
    """The Quick start sets up Minikube hosts; an existing cluster's secrets are set in its own section."""
    steps, existing = quick_start(), section("Deploying onto an existing cluster")
    for secret in SECRET_KEYS:
        if secret.required:
            assert f"--secret {secret.key}" in (steps if "minikube" in secret.clusters else existing), secret.key


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_existing_cluster_example_is_a_stack_the_program_accepts() -> None:
    """The README's example stack file, completed with what every edge has, validates as it stands."""
    example = yaml.safe_load(
        re.findall(r"```yaml\n(.*?)```", section("Deploying onto an existing cluster"), re.DOTALL)[0]
    )
    raw = {key.removeprefix(f"{PROJECT}:"): value for key, value in example["config"].items()}
    raw["s3"] = {"endpoint": "172.20.40.21:30001", "publicCa": False, "useTls": False}
    settings = parse_settings(raw, raw["clusterName"])
    assert settings.kubernetes is not None and settings.node_count == 3
    assert settings.storage.class_name == "fast-ssd" and settings.ingress.service_type == "LoadBalancer"


def test_central_comes_up_before_every_edge() -> None:
    steps = quick_start()
    ups = re.findall(r"pulumi up -s (\S+)", steps)
    roles = [committed(stack).outputs["role"] for stack in ups]
    assert sorted(ups) == sorted(COMMITTED_STACKS)
    assert roles[0] == Role.CENTRAL.value and set(roles[1:]) == {Role.EDGE.value}


def test_an_existing_clusters_nodes_are_told_every_kernel_setting_a_minikube_host_gets() -> None:
    """Nothing runs on an existing cluster's nodes: each setting the host script makes must be asked for."""
    script = (ROOT / "components" / "scripts" / "host-prerequisites.sh").read_text()
    block = script.split("SYSCTLS=(", 1)[1].split("\n)", 1)[0]
    settings = re.findall(r"^\s*([a-z0-9_.]+=\d+)", block, re.MULTILINE)
    assert settings, "the script's SYSCTLS"
    existing = section("Deploying onto an existing cluster")
    missing = [setting for setting in settings if f"`{setting}`" not in existing and "ip_forward" not in setting]
    assert missing == []
