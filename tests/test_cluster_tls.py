"""Each cluster's certificates as the Secrets and ConfigMaps its workloads mount, refused when
central issued them for another domain, and rolling what reads them when they change. An edge's
sidecar accepts clients of the StoreAPI client CA alone, never of the platform CA."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.cluster_tls import CertificatesDoNotFit
from components.settings import PROJECT
from tests.conftest import (
    CENTRAL_STACK,
    EDGE,
    FIXTURE_STACKS_DIR,
    central_of,
    raw_config,
    rendered,
    run_fixture,
    settings,
)
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


def sidecar_client_ca(edge: Rendering) -> str:
    """The text at the sidecar's `grpcServerTlsConfig.caFile`, followed through its mount to the Secret key."""
    spec = edge.release("kube-prometheus-stack").inputs["values"]["prometheus"]["prometheusSpec"]
    ca_file = spec["thanos"]["grpcServerTlsConfig"]["caFile"]
    (mount,) = [m for m in spec["thanos"]["volumeMounts"] if ca_file.startswith(f"{m['mountPath']}/")]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    data = unwrap(edge.k8s("Secret", volume["secret"]["secretName"], "monitoring").inputs["stringData"])
    return str(data[ca_file.removeprefix(f"{mount['mountPath']}/")])


def test_the_sidecars_client_ca_is_the_storeapi_client_ca_not_the_platform_ca(edge: Rendering) -> None:
    """Every OpenSearch node certificate comes from the platform CA with `client_auth`: trusting the
    platform CA for clients would let any cluster's OpenSearch key open the StoreAPI."""
    issued = unwrap(rendered(central_of(edge.stack)).outputs["tlsCertificates"])
    client_ca = sidecar_client_ca(edge)
    assert client_ca == issued[edge.stack]["storeApiClientCa"]["certificate"]
    assert client_ca != edge.outputs["platformCaCertificate"]
    assert "privateKey" not in issued[edge.stack]["storeApiClientCa"], "the CA's key stays on central"


def test_query_verifies_the_sidecars_with_the_platform_ca() -> None:
    central = rendered(CENTRAL_STACK)
    data = unwrap(central.k8s("Secret", "thanos-grpc-tls", "monitoring").inputs["stringData"])
    assert data["ca.crt"] == central.outputs["platformCaCertificate"]


def test_an_edge_before_central_issued_the_storeapi_client_ca_stops_with_the_fix() -> None:
    def before(published: dict[str, Any]) -> None:
        del published["tlsCertificates"][EDGE]["storeApiClientCa"]

    with pytest.raises(CertificatesDoNotFit, match=r"issued no storeApiClientCa certificate .* central's `pulumi up`"):
        run_fixture(EDGE, stack_outputs=central_outputs_with(before))


def test_a_new_storeapi_client_ca_reaches_the_sidecar_in_place_and_rolls_it() -> None:
    def renew(published: dict[str, Any]) -> None:
        published["tlsCertificates"][EDGE]["storeApiClientCa"]["certificate"] += "-renewed"

    before = rendered(EDGE)
    after = run_fixture(EDGE, stack_outputs=central_outputs_with(renew))
    steps = plan(before, after)
    grpc = steps.step("kubernetes:core/v1:Secret", "monitoring-thanos-grpc-tls")
    assert (grpc.op, grpc.delete_first) == ("update", False)
    assert sidecar_client_ca(after).endswith("-renewed")
    assert steps.step("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack").op == "update", "the sidecar rolls"
    for name in ("ingress-platform-ingress-tls", "logging-opensearch-tls"):
        assert steps.step("kubernetes:core/v1:Secret", name).op == "same", name
    assert steps.step("kubernetes:helm.sh/v3:Release", "opensearch").op == "same"


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
    central = unwrap(rendered(CENTRAL_STACK).outputs["certificates"])
    assert reported["storeApiClientCa"] == central["storeApiClientCa"] and reported["storeApiClientCa"]["hosts"] == []
    assert not [key for entry in reported.values() for key in entry if "key" in key.lower()]


@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE])
def test_the_opensearch_admin_certificate_is_in_no_kubernetes_object_and_its_end_is_reported(stack: str) -> None:
    """The break-glass admin certificate is the operator's, from central's state: no Secret, ConfigMap
    or release values of any cluster carry its key (nor the certificate), only its end is reported."""
    rendering = rendered(stack)
    admin = unwrap(rendered(CENTRAL_STACK).outputs["tlsCertificates"])[stack]["opensearchAdmin"]
    assert admin["privateKey"] and admin["certificate"]
    applied = json.dumps([unwrap(r.inputs) for r in rendering.resources if r.type.startswith("kubernetes:")])
    assert admin["privateKey"] not in applied
    assert admin["certificate"] not in applied
    assert rendering.outputs["certificates"]["opensearchAdmin"] == {
        "notAfter": admin["notAfter"],
        "hosts": [f"opensearch-admin.{stack}"],
    }
