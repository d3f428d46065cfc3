"""Each cluster's certificates as the Secrets and ConfigMaps its workloads mount, refused when
central issued them for another domain, and rolling what reads them when they change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.cluster_tls import CertificatesDoNotFit
from components.settings import PROJECT
from tests.conftest import CENTRAL_STACK, EDGE, FIXTURE_STACKS_DIR, raw_config, rendered, run_fixture, settings
from tools.engine import Rendering, Secret, offline_outputs, unwrap
from tools.plan import plan

SECRETS = {
    "platform-ingress-tls": ("ingress", {"tls.crt", "tls.key"}),
    "thanos-grpc-tls": ("monitoring", {"tls.crt", "tls.key", "ca.crt"}),
    "opensearch-tls": ("logging", {"tls.crt", "tls.key", "ca.crt"}),
}


@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE])
def test_every_certificate_reaches_its_namespace_as_a_secret(stack: str) -> None:
    rendering = rendered(stack)
    issued = unwrap(rendered(CENTRAL_STACK).outputs["tlsCertificates"])[stack]
    grpc = "queryClient" if stack == CENTRAL_STACK else "sidecar"
    for name, (namespace, keys) in SECRETS.items():
        data = rendering.k8s("Secret", name, namespace).inputs["stringData"]
        assert isinstance(data, Secret), name
        assert set(data.value) == keys, name
    data = unwrap(rendering.k8s("Secret", "thanos-grpc-tls", "monitoring").inputs["stringData"])
    assert data["tls.crt"] == issued[grpc]["certificate"] and data["tls.key"] == issued[grpc]["privateKey"]
    ingress = unwrap(rendering.k8s("Secret", "platform-ingress-tls", "ingress").inputs["stringData"])
    assert ingress["tls.crt"] == issued["ingress"]["certificate"]
    for namespace in ("logging", "fluent-bit"):
        ca = rendering.k8s("ConfigMap", "platform-ca", namespace).inputs["data"]
        assert ca == {"ca.crt": rendering.outputs["platformCaCertificate"]}


def test_an_edge_whose_domain_central_does_not_know_stops_with_the_fix() -> None:
    changed = {f"{PROJECT}:domain": "moved.lab.test"}
    with pytest.raises(CertificatesDoNotFit, match=r"set `domain: moved.lab.test` on .* under central's `edges`"):
        run_fixture(EDGE, changed)


def test_an_edges_domain_must_be_listed_with_it_on_central() -> None:
    edges = [{k: v for k, v in e.items() if k != "domain"} for e in raw_config(CENTRAL_STACK)["edges"]]
    with pytest.raises(Exception, match=r"edges\.0\.domain is required"):
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:edges": json.dumps(edges)})


def central_outputs_with(change: Any) -> Any:
    def outputs(name: str) -> dict[str, Any]:
        published = offline_outputs(name, stacks_dir=FIXTURE_STACKS_DIR)
        change(published)
        return published

    return outputs


def test_a_renewed_opensearch_certificate_rolls_opensearch_and_nothing_else() -> None:
    def renew(published: dict[str, Any]) -> None:
        published["tlsCertificates"][EDGE]["opensearch"]["certificate"] += "-renewed"

    before = rendered(EDGE)
    after = run_fixture(EDGE, stack_outputs=central_outputs_with(renew))
    steps = plan(before, after)
    assert steps.step("kubernetes:helm.sh/v3:Release", "opensearch").op == "update"
    assert steps.step("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack").op == "same"
    assert steps.step("kubernetes:helm.sh/v3:Release", "traefik").op == "same"


def test_a_reissued_query_client_certificate_rolls_query() -> None:
    central = rendered(CENTRAL_STACK)
    annotations = central.k8s("Deployment", "thanos-query", "monitoring").inputs["spec"]["template"]["metadata"]
    assert annotations["annotations"]["checksum/tls"]
    shorter = run_fixture(CENTRAL_STACK, {f"{PROJECT}:tls": json.dumps({"validityDays": 200})})
    after = shorter.k8s("Deployment", "thanos-query", "monitoring").inputs["spec"]["template"]["metadata"]
    assert after["annotations"]["checksum/tls"] != annotations["annotations"]["checksum/tls"]


def test_the_reported_certificates_name_where_they_are_served(edge: Rendering) -> None:
    reported = edge.outputs["certificates"]
    config = settings(edge)
    assert reported["ingress"]["hosts"] == [f"*.{config.domain}", config.domain]
    assert reported["sidecar"]["hosts"] == [config.ip]
    assert not [key for entry in reported.values() for key in entry if "key" in key.lower()]
