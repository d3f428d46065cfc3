"""Namespaces with Pod Security Admission labels that fit what runs in them."""

from __future__ import annotations

from components.namespaces import ENFORCED_LEVEL
from tools.engine import Rendering


def test_the_four_namespaces_exist_with_pod_security_labels(any_stack: Rendering) -> None:
    for name, level in ENFORCED_LEVEL.items():
        labels = any_stack.k8s("Namespace", name).metadata["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == level
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_every_privileged_namespace_says_why() -> None:
    source = __import__("inspect").getsource(__import__("components.namespaces", fromlist=["x"]))
    block = source.split("ENFORCED_LEVEL")[1].split("}")[0]
    for line in [line for line in block.splitlines() if '"privileged"' in line]:
        previous = block.splitlines()[block.splitlines().index(line) - 1]
        assert previous.strip().startswith("#"), f"no reason given for {line.strip()}"
