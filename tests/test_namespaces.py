"""Namespaces with Pod Security Admission labels that fit what runs in them."""

from __future__ import annotations

import pytest

from components.namespaces import ENFORCED_LEVEL, INGRESS, LONGHORN, owned
from tests.conftest import settings
from tools.engine import Rendering


def test_each_namespace_exists_with_pod_security_labels(any_stack: Rendering) -> None:
    config = settings(any_stack)
    expected = owned(longhorn=config.storage.longhorn, host_ports=config.ingress.service_type == "hostPort")
    created = {r.metadata["name"] for r in any_stack.kubernetes_objects() if r.kind == "Namespace"}
    assert created == set(expected)
    for name, level in expected.items():
        labels = any_stack.k8s("Namespace", name).metadata["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == level
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize(("longhorn", "host_ports"), [(True, True), (False, True), (True, False), (False, False)])
def test_longhorns_namespace_only_with_longhorn_and_ingress_restricted_without_host_ports(
    longhorn: bool, host_ports: bool
) -> None:
    levels = owned(longhorn=longhorn, host_ports=host_ports)
    assert (LONGHORN in levels) is longhorn
    assert levels[INGRESS] == ("privileged" if host_ports else "restricted")
    assert {name: level for name, level in levels.items() if name not in (LONGHORN, INGRESS)} == {
        name: level for name, level in ENFORCED_LEVEL.items() if name not in (LONGHORN, INGRESS)
    }


def test_every_privileged_namespace_says_why() -> None:
    source = __import__("inspect").getsource(__import__("components.namespaces", fromlist=["x"]))
    block = source.split("ENFORCED_LEVEL")[1].split("}")[0]
    for line in [line for line in block.splitlines() if '"privileged"' in line]:
        previous = block.splitlines()[block.splitlines().index(line) - 1]
        assert previous.strip().startswith("#"), f"no reason given for {line.strip()}"
