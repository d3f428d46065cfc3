"""The README's Quick start is the real sequence: every step a first `pulumi up` needs, in order.

A platform engineer follows it on a fresh machine, so nothing it leaves out may be needed: the
program's own refusals (a missing secret, MinIO's CA, the central stack first) each name a step
the Quick start must already have taken.
"""

from __future__ import annotations

import re

from components.settings import SECRET_KEYS, Role
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
    steps = quick_start()
    for secret in SECRET_KEYS:
        if secret.required:
            assert f"--secret {secret.key}" in steps, secret.key


def test_central_comes_up_before_every_edge() -> None:
    steps = quick_start()
    ups = re.findall(r"pulumi up -s (\S+)", steps)
    roles = [committed(stack).outputs["role"] for stack in ups]
    assert sorted(ups) == sorted(COMMITTED_STACKS)
    assert roles[0] == Role.CENTRAL.value and set(roles[1:]) == {Role.EDGE.value}
