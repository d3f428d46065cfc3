"""What an edge reads from the central stack: its own entries of central's outputs, through one
StackReference, or a message that says what to deploy first."""

from __future__ import annotations

from typing import Any

import pytest

from components.central_stack import CentralStackNotReady
from components.settings import PROJECT
from tests.conftest import CENTRAL_STACK, EDGE, OTHER_EDGE, rendered, run_fixture
from tools.engine import Rendering, unwrap


@pytest.fixture(scope="module")
def edge() -> Rendering:
    return rendered(EDGE)


def test_central_reads_nothing_from_another_stack() -> None:
    assert not rendered(CENTRAL_STACK).of_type("pulumi:pulumi:StackReference")


def test_an_edge_reads_its_credentials_and_certificates_from_the_central_stack(edge: Rendering) -> None:
    reference = edge.one("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == f"organization/thanos-multi-cluster/{CENTRAL_STACK}"
    for secret in (
        edge.k8s("Secret", "thanos-objstore-sidecar", "monitoring"),
        edge.k8s("Secret", "opensearch-s3-keystore", "logging"),
        edge.k8s("Secret", "thanos-grpc-tls", "monitoring"),
        edge.k8s("Secret", "platform-ingress-tls", "ingress"),
    ):
        assert edge.depends_on(secret, reference), secret.name


def test_an_edge_stops_with_deploy_central_first_when_the_output_is_missing() -> None:
    with pytest.raises(CentralStackNotReady) as error:
        run_fixture(EDGE, stack_outputs=lambda name: {})
    assert "no `objectStoreCredentials` output" in str(error.value)
    assert f"deploy the central stack first (`pulumi up -s {CENTRAL_STACK}`)" in str(error.value)


def test_an_edge_with_another_passphrase_is_told_to_use_centrals() -> None:
    """The engine hands a StackReference `{}` for every secret output it cannot decrypt, with an info
    line only (seen with the real engine, tests/integration/test_engine.py): central is deployed."""
    elided = {"platformCaCertificate": "-----BEGIN CERTIFICATE-----", "objectStoreCredentials": {}}
    with pytest.raises(CentralStackNotReady) as error:
        run_fixture(EDGE, stack_outputs=lambda name: elided)
    assert "cannot decrypt it" in str(error.value) and "passphrase" in str(error.value)
    assert "deploy the central stack first" not in str(error.value)


def test_an_edge_central_does_not_know_stops_with_the_same_advice() -> None:
    def central_without_the_other_edge(name: str) -> dict[str, Any]:
        assert name == f"organization/thanos-multi-cluster/{CENTRAL_STACK}"
        return {"objectStoreCredentials": {EDGE: {"longhorn": {"accessKey": "a", "secretKey": "b"}}}}

    with pytest.raises(CentralStackNotReady) as error:
        run_fixture(OTHER_EDGE, stack_outputs=central_without_the_other_edge)
    assert f"no object-store credentials for {OTHER_EDGE}" in str(error.value)
    assert "`edges`" in str(error.value)
    assert f"(`pulumi up -s {CENTRAL_STACK}`)" in str(error.value)


def test_the_central_stack_name_is_configurable() -> None:
    asked: list[str] = []

    def outputs(name: str) -> dict[str, Any]:
        asked.append(name)
        return {}

    moved = {f"{PROJECT}:centralStack": "team/thanos-multi-cluster/monitoring-hub"}
    with pytest.raises(CentralStackNotReady, match=r"pulumi up -s monitoring-hub\b"):
        run_fixture(EDGE, moved, stack_outputs=outputs)
    assert asked == ["team/thanos-multi-cluster/monitoring-hub"]


def test_an_edge_stops_when_central_issued_it_no_certificates() -> None:
    def central_before_tls(name: str) -> dict[str, Any]:
        outputs = dict(rendered_outputs())
        outputs.pop("tlsCertificates")
        return outputs

    with pytest.raises(CentralStackNotReady, match=r"no `tlsCertificates` output: deploy the central stack first"):
        run_fixture(EDGE, stack_outputs=central_before_tls)


def rendered_outputs() -> dict[str, Any]:
    return {key: unwrap(value) for key, value in rendered(CENTRAL_STACK).outputs.items()}
