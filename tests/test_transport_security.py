"""The transport-security validator: clean on every stack, and a finding for each way to lose TLS."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.conftest import CENTRAL_STACK, EDGE, STACKS, rendered, requires_charts
from tools.engine import Rendering, Resource, Secret
from tools.validators import transport_security
from tools.validators.transport_security import covered, skipped_verification

pytestmark = requires_charts


def findings(rendering: Rendering) -> list[str]:
    return [str(f) for f in transport_security.validate(rendering)]


def broken(stack: str, kind_or_type: str, name: str, change: Callable[[dict[str, Any]], None]) -> Rendering:
    """A copy of a fixture stack's rendering with one resource's inputs changed."""
    copied = copy.deepcopy(rendered(stack))
    (target,) = [r for r in copied.resources if matches(r, kind_or_type, name)]
    change(target.inputs)
    return copied


def matches(resource: Resource, kind_or_type: str, name: str) -> bool:
    if resource.type == kind_or_type:
        return resource.name == name or resource.inputs.get("name") == name
    return resource.kind == kind_or_type and resource.metadata.get("name") == name


@pytest.mark.parametrize("stack", STACKS)
def test_every_fixture_stack_is_clean(stack: str) -> None:
    assert findings(rendered(stack)) == []


def test_an_ingress_without_tls_is_a_finding() -> None:
    stack = broken(CENTRAL_STACK, "Ingress", "thanos-query-frontend", lambda i: i["spec"].pop("tls"))
    assert any("has no `tls` entry: its router would serve plain HTTP" in f for f in findings(stack))


def test_a_host_the_certificate_does_not_name_is_a_finding() -> None:
    def elsewhere(inputs: dict[str, Any]) -> None:
        inputs["spec"]["rules"][0]["host"] = "thanos.elsewhere.test"
        inputs["spec"]["tls"] = [{"hosts": ["thanos.elsewhere.test"]}]

    stack = broken(CENTRAL_STACK, "Ingress", "thanos-query-frontend", elsewhere)
    assert any("thanos.elsewhere.test is not named by the ingress certificate" in f for f in findings(stack))


def test_a_chart_ingress_without_tls_is_a_finding_too() -> None:
    def plain(inputs: dict[str, Any]) -> None:
        inputs["values"]["grafana"]["ingress"].pop("tls")

    stack = broken(EDGE, "kubernetes:helm.sh/v3:Release", "kube-prometheus-stack", plain)
    assert any("Ingress monitoring/" in f and "has no `tls` entry" in f for f in findings(stack))


def test_a_transport_that_skips_verification_is_a_finding() -> None:
    stack = broken(EDGE, "ServersTransport", "opensearch", lambda i: i["spec"].update(insecureSkipVerify=True))
    assert any("spec.insecureSkipVerify is true" in f for f in findings(stack))


def test_fluent_bit_without_verification_is_a_finding() -> None:
    def unverified(inputs: dict[str, Any]) -> None:
        outputs = inputs["values"]["config"]["outputs"]
        inputs["values"]["config"]["outputs"] = outputs.replace("tls.verify On", "tls.verify Off")

    stack = broken(EDGE, "kubernetes:helm.sh/v3:Release", "fluent-bit", unverified)
    assert any("turns verification off" in f for f in findings(stack))


def test_a_provider_input_that_skips_verification_is_a_finding() -> None:
    copied = copy.deepcopy(rendered(EDGE))
    guard = next(r for r in copied.resources if r.type.endswith("AdminCredentials"))
    guard.inputs["verify_tls"] = False
    assert any("AdminCredentials" in f and "verify_tls is false" in f for f in findings(copied))


def test_an_edge_endpoint_without_mutual_tls_is_a_finding() -> None:
    def plaintext(inputs: dict[str, Any]) -> None:
        endpoints = yaml.safe_load(inputs["data"]["endpoints.yaml"])
        for entry in endpoints["endpoints"]:
            entry.pop("client_config", None)
        inputs["data"]["endpoints.yaml"] = yaml.safe_dump(endpoints)

    stack = broken(CENTRAL_STACK, "ConfigMap", "thanos-query-endpoints", plaintext)
    problems = findings(stack)
    assert any(":30901: not mutual TLS" in f for f in problems)
    assert any("server_name None is not named by" in f for f in problems)


def test_an_edge_sidecar_without_a_client_ca_is_a_finding() -> None:
    def open_to_any_client(inputs: dict[str, Any]) -> None:
        inputs["values"]["prometheus"]["prometheusSpec"]["thanos"]["grpcServerTlsConfig"].pop("caFile")

    stack = broken(EDGE, "kubernetes:helm.sh/v3:Release", "kube-prometheus-stack", open_to_any_client)
    assert any("no client CA: the sidecar's StoreAPI would accept any client" in f for f in findings(stack))


def test_an_edge_sidecar_trusting_the_platform_ca_for_clients_is_a_finding() -> None:
    """The platform CA also signs every cluster's OpenSearch node certificate, with `client_auth`."""
    platform_ca = rendered(EDGE).outputs["platformCaCertificate"]

    def trusting_the_platform_ca(inputs: dict[str, Any]) -> None:
        inputs["stringData"] = Secret({**inputs["stringData"].value, "ca.crt": platform_ca})

    stack = broken(EDGE, "Secret", "thanos-grpc-tls", trusting_the_platform_ca)
    assert any("the sidecar's client CA is the platform CA" in f for f in findings(stack))


def test_an_edge_sidecar_whose_client_ca_is_in_no_mounted_secret_is_a_finding() -> None:
    def elsewhere(inputs: dict[str, Any]) -> None:
        inputs["values"]["prometheus"]["prometheusSpec"]["thanos"]["grpcServerTlsConfig"]["caFile"] = "/tmp/ca.crt"

    stack = broken(EDGE, "kubernetes:helm.sh/v3:Release", "kube-prometheus-stack", elsewhere)
    assert any("the sidecar's client CA /tmp/ca.crt is in no Secret it mounts" in f for f in findings(stack))


def test_wildcards_cover_one_label_only() -> None:
    names = ["*.hub.lab.test", "hub.lab.test"]
    assert covered("grafana.hub.lab.test", names) and covered("hub.lab.test", names)
    assert not covered("a.grafana.hub.lab.test", names) and not covered("grafana.edge.lab.test", names)


def test_skipped_verification_is_found_in_every_spelling() -> None:
    assert skipped_verification({"tlsConfig": {"insecureSkipVerify": True}})
    assert skipped_verification({"config": "http_config:\n  tls_config:\n    insecure_skip_verify: true\n"})
    assert skipped_verification({"args": ["--grpc-client-tls-skip-verify"]})
    assert skipped_verification(Secret({"conf": "[OUTPUT]\n    tls.verify Off\n"}))
    assert not skipped_verification({"tlsConfig": {"insecureSkipVerify": False}, "conf": "tls.verify On"})
