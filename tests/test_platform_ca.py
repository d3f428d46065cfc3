"""The platform CA: made once by central (or brought by the operator), it issues every cluster's
certificates but Query's client certificate, which the StoreAPI client CA (central's too, always
generated) issues alone; the keys stay in central's state; `pulumi up` renews what is about to
expire and a new CA reaches every edge on its next `up`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from datetime import timedelta
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.opensearch import admin_dn
from components.platform_ca import PlatformCa
from components.settings import PROJECT, SettingsError
from tests.certificates import materialize
from tests.conftest import CENTRAL_STACK, FIXTURE_STACKS_DIR, FLEET, HUB_EDGES, rendered, run_fixture, settings
from tools.engine import OFFLINE_CLOCK, Rendering, Secret, offline_outputs, unwrap
from tools.plan import plan

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"


@pytest.fixture(scope="module")
def central() -> Rendering:
    return rendered(CENTRAL_STACK)


def issued_to(central: Rendering) -> dict[str, dict[str, Any]]:
    value = central.outputs["tlsCertificates"]
    assert isinstance(value, Secret), "every cluster's keys: a secret output"
    return unwrap(value)


def request_of(central: Rendering, cluster: str, kind: str) -> dict[str, Any]:
    (request,) = [r for r in central.of_type(CERT_REQUEST) if r.name.endswith(f"-{cluster}-{kind}-request")]
    return request.inputs


def platform_ca_name(central: Rendering) -> str:
    return f"{central.stack}-platform-ca-ca"


def client_ca_name(central: Rendering) -> str:
    return f"{central.stack}-platform-ca-storeapi-client-ca"


def query_client_name(central: Rendering) -> str:
    return f"{central.stack}-platform-ca-{central.stack}-query-client"


def test_two_protected_cas_are_made_by_central_only(central: Rendering) -> None:
    cas = {ca.name: ca for ca in central.of_type(SELF_SIGNED)}
    assert set(cas) == {platform_ca_name(central), client_ca_name(central)}
    for ca in cas.values():
        assert ca.protect and ca.inputs["isCaCertificate"] is True, ca.name
        assert set(ca.inputs["allowedUses"]) >= {"cert_signing", "crl_signing"}
        assert ca.inputs["validityPeriodHours"] == settings(central).tls.ca_validity_days * 24
        assert "earlyRenewalHours" not in ca.inputs, "a CA is replaced deliberately, not renewed by an `up`"
        ca_key = central.one(PRIVATE_KEY, f"{ca.name}-key")
        assert ca_key.protect
    subjects = {ca.inputs["subject"]["commonName"] for ca in cas.values()}
    assert len(subjects) == 2, "two CAs, told apart by name"
    for edge in HUB_EDGES:
        assert not [r for r in rendered(edge).resources if r.type.startswith("tls:")], "edges make no keys"


def test_querys_client_certificate_and_nothing_else_comes_from_the_storeapi_client_ca(central: Rendering) -> None:
    """The edge sidecars' only client CA signs Query's certificate alone: not the OpenSearch node
    certificates, which allow client authentication too and whose keys sit in every cluster."""
    client_ca = central.one(SELF_SIGNED, client_ca_name(central))
    platform = central.one(SELF_SIGNED, platform_ca_name(central))
    client_ca_key = central.one(PRIVATE_KEY, f"{client_ca.name}-key").state["privateKeyPem"]
    platform_key = central.one(PRIVATE_KEY, f"{platform.name}-key").state["privateKeyPem"]
    for certificate in central.of_type(LOCALLY_SIGNED):
        from_client_ca = certificate.name == query_client_name(central)
        signer, key = (client_ca, client_ca_key) if from_client_ca else (platform, platform_key)
        assert certificate.inputs["caCertPem"] == signer.state["certPem"], certificate.name
        assert unwrap(certificate.inputs["caPrivateKeyPem"]) == key, certificate.name
    issued = issued_to(central)
    for cluster, entry in issued.items():
        assert entry["storeApiClientCa"] == {
            "certificate": client_ca.state["certPem"],
            "notAfter": client_ca.state["validityEndTime"],
            "hosts": [],
        }, f"{cluster}: the certificate alone, never the key"


def test_every_cluster_central_knows_gets_its_certificates(central: Rendering) -> None:
    config = settings(central)
    issued = issued_to(central)
    assert set(issued) == {central.stack, *(edge.name for edge in config.edges)}
    assert set(issued[central.stack]) == {"ingress", "opensearch", "opensearchAdmin", "queryClient", "storeApiClientCa"}
    for edge in config.edges:
        assert set(issued[edge.name]) == {"ingress", "opensearch", "opensearchAdmin", "sidecar", "storeApiClientCa"}
        assert issued[edge.name]["ingress"]["hosts"] == [f"*.{edge.domain}", edge.domain]
        assert request_of(central, edge.name, "sidecar")["ipAddresses"] == [edge.ip]
        sidecar = central.one(LOCALLY_SIGNED, f"{central.stack}-platform-ca-{edge.name}-sidecar")
        assert "server_auth" in sidecar.inputs["allowedUses"] and "client_auth" not in sidecar.inputs["allowedUses"]
    client = central.one(LOCALLY_SIGNED, query_client_name(central))
    assert "client_auth" in client.inputs["allowedUses"] and "server_auth" not in client.inputs["allowedUses"]
    assert request_of(central, central.stack, "ingress")["dnsNames"] == [f"*.{config.domain}", config.domain]


def test_certificates_carry_the_configured_lifetime_and_renewal_window(central: Rendering) -> None:
    tls = settings(central).tls
    for certificate in central.of_type(LOCALLY_SIGNED):
        assert certificate.inputs["validityPeriodHours"] == tls.validity_days * 24
        assert certificate.inputs["earlyRenewalHours"] == tls.renew_before_days * 24
    shorter = run_fixture(CENTRAL_STACK, {f"{PROJECT}:tls": json.dumps({"validityDays": 90, "renewBeforeDays": 20})})
    assert {c.inputs["validityPeriodHours"] for c in shorter.of_type(LOCALLY_SIGNED)} == {90 * 24}


@pytest.mark.parametrize("ca", ["platform-ca-ca", "platform-ca-storeapi-client-ca"])
def test_the_ca_keys_never_leave_central(central: Rendering, ca: str) -> None:
    key = central.one(PRIVATE_KEY, f"{central.stack}-{ca}-key")
    ca_key = key.state["privateKeyPem"]
    assert ca_key not in json.dumps(unwrap(central.outputs))
    held = [unwrap(r.inputs) for r in central.kubernetes_objects()]
    assert ca_key not in json.dumps(held) and key.state["privateKeyPemPkcs8"] not in json.dumps(held)
    for edge in HUB_EDGES:
        everything = json.dumps([unwrap(r.inputs) for r in rendered(edge).resources]) + json.dumps(
            unwrap(rendered(edge).outputs)
        )
        assert ca_key not in everything


def test_edges_hold_only_their_own_keys(central: Rendering) -> None:
    """... and of their own, not the OpenSearch admin certificate's: that one is the operator's."""
    keys = {r.name: r.state["privateKeyPemPkcs8"] for r in central.of_type(PRIVATE_KEY)}
    for edge in HUB_EDGES:
        held = json.dumps([unwrap(r.inputs) for r in rendered(edge).kubernetes_objects()])
        for name, key in keys.items():
            own = f"-platform-ca-{edge}-" in name and not name.endswith("-opensearch-admin-key")
            assert (key in held) == own, (edge, name)


def admin_certificate_name(central: Rendering, cluster: str) -> str:
    return f"{central.stack}-platform-ca-{cluster}-opensearch-admin"


def test_each_cluster_gets_an_opensearch_admin_certificate_its_opensearch_alone_trusts(central: Rendering) -> None:
    """The break-glass certificate: from the platform CA, RSA (what the security plugin documents for
    PEM keys), client authentication only, and a subject per cluster that exactly its own
    `plugins.security.authcz.admin_dn` names, so one cluster's certificate is no admin elsewhere."""
    issued = issued_to(central)
    real = materialize(central)
    platform = central.one(SELF_SIGNED, platform_ca_name(central))
    subjects = set()
    for cluster in issued:
        entry = issued[cluster]["opensearchAdmin"]
        assert set(entry) == {"certificate", "privateKey", "notAfter", "hosts"}, "in central's secret output"
        name = admin_certificate_name(central, cluster)
        certificate = central.one(LOCALLY_SIGNED, name)
        assert entry["certificate"] == certificate.state["certPem"]
        assert certificate.inputs["allowedUses"] == ["digital_signature", "key_encipherment", "client_auth"]
        assert certificate.inputs["caCertPem"] == platform.state["certPem"]
        key = central.one(PRIVATE_KEY, f"{name}-key")
        assert (key.inputs["algorithm"], key.inputs["rsaBits"]) == ("RSA", 2048)
        assert request_of(central, cluster, "opensearch-admin").get("dnsNames") is None
        subject = real.certificates[name].subject.rfc4514_string()
        config = yaml.safe_load(rendered(cluster).release("opensearch").inputs["values"]["config"]["opensearch.yml"])
        assert config["plugins.security.authcz.admin_dn"] == [subject] == [admin_dn(cluster)], cluster
        assert subject not in config["plugins.security.nodes_dn"]
        subjects.add(subject)
    assert len(subjects) == len(issued) == 1 + len(settings(central).edges)


def test_every_stack_reports_its_certificates_ends_and_the_ca(central: Rendering) -> None:
    for stack in FLEET:
        reported = rendered(stack).outputs["certificates"]
        assert not isinstance(reported, Secret), "ends and names are public"
        assert "platform-ca" in reported and "storeApiClientCa" in reported
        for kind, entry in reported.items():
            assert set(entry) == {"notAfter", "hosts"}, kind
            dt.datetime.fromisoformat(entry["notAfter"].replace("Z", "+00:00"))
        assert rendered(stack).outputs["platformCaCertificate"] == central.outputs["platformCaCertificate"]


# --- lifecycle ---------------------------------------------------------------------------


def test_an_expiring_certificate_is_replaced_by_the_next_up(central: Rendering) -> None:
    tls = settings(central).tls
    quiet = plan(central, central, now=OFFLINE_CLOCK + timedelta(days=tls.validity_days - tls.renew_before_days - 1))
    assert not quiet.of("replace", "create", "delete")
    due = plan(central, central, now=OFFLINE_CLOCK + timedelta(days=tls.validity_days - tls.renew_before_days + 1))
    renewed = {step.name for step in due.of("replace")}
    assert renewed == {c.name for c in central.of_type(LOCALLY_SIGNED)}
    assert due.refusals() == [], "the protected CA is not due"


def test_a_renewed_certificate_reaches_the_edge_and_rolls_what_reads_it() -> None:
    edge = HUB_EDGES[0]
    before = rendered(edge)
    after = run_fixture(edge, stack_outputs=lambda name: reissued(name, edge, "sidecar"))
    steps = plan(before, after)
    grpc = steps.step("kubernetes:core/v1:Secret", "monitoring-thanos-grpc-tls")
    assert grpc.op == "update"
    prometheus = steps.step("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack")
    assert prometheus.op == "update", "the sidecar reads its certificate at start: the pod rolls"
    assert steps.step("kubernetes:core/v1:Secret", "ingress-platform-ingress-tls").op == "same"


def test_a_renewed_certificate_changes_its_secret_in_place_never_deleting_it_first() -> None:
    edge = HUB_EDGES[0]
    before = rendered(edge)
    after = run_fixture(edge, stack_outputs=lambda name: reissued(name, edge, "ingress"))
    ingress = "ingress-platform-ingress-tls"
    assert plan(before, after).step("kubernetes:core/v1:Secret", ingress).op == "update"
    # pulumi-kubernetes replaces a Secret whose data changed unless its provider allows mutation, and a
    # named object is replaced delete-first: Traefik would lose its certificate in between.
    immutable = plan(without_mutable_data(before), without_mutable_data(after)).step(
        "kubernetes:core/v1:Secret", ingress
    )
    assert (immutable.op, immutable.replaced_by, immutable.delete_first) == ("replace", ("stringData",), True)


def without_mutable_data(rendering: Rendering) -> Rendering:
    """The rendering with a Kubernetes provider that keeps pulumi-kubernetes's default (data replaces)."""
    flags = ("enableSecretMutable", "enableConfigMapMutable")
    resources = [
        dataclasses.replace(r, inputs={k: v for k, v in r.inputs.items() if k not in flags})
        if r.type == "pulumi:providers:kubernetes"
        else r
        for r in rendering.resources
    ]
    return dataclasses.replace(rendering, resources=resources)


def reissued(name: str, cluster: str, kind: str) -> dict[str, Any]:
    """Central's outputs after it renewed one certificate of one cluster."""
    outputs = offline_outputs(name, stacks_dir=FIXTURE_STACKS_DIR)
    outputs["tlsCertificates"][cluster][kind]["certificate"] += "-renewed"
    return outputs


def test_a_new_ca_reaches_every_edge_on_its_next_up(central: Rendering) -> None:
    ca_pem, key_pem = operator_ca()
    moved = run_fixture(
        CENTRAL_STACK,
        {f"{PROJECT}:tls": json.dumps({"caCertificate": ca_pem}), f"{PROJECT}:platformCaKey": key_pem},
    )
    central_steps = plan(central, moved)
    # The old CA is protected: the engine refuses to drop it until the operator says so.
    refused = " ".join(central_steps.refusals())
    assert f"::{CENTRAL_STACK}-platform-ca-ca'" in refused and f"::{CENTRAL_STACK}-platform-ca-ca-key'" in refused
    from_platform = {c.name for c in central.of_type(LOCALLY_SIGNED)} - {query_client_name(central)}
    assert {s.name for s in central_steps.of("replace")} >= from_platform
    # The StoreAPI client CA is not the platform CA: it stays, and so does the certificate it signed.
    for type_, name in (
        (SELF_SIGNED, client_ca_name(central)),
        (PRIVATE_KEY, f"{client_ca_name(central)}-key"),
        (LOCALLY_SIGNED, query_client_name(central)),
    ):
        assert central_steps.step(type_, name).op == "same", name
    published = {key: unwrap(value) for key, value in moved.outputs.items()}
    for edge in HUB_EDGES:
        after = run_fixture(edge, stack_outputs=lambda name: published)
        steps = plan(rendered(edge), after)
        for kind, name, namespace in (
            ("Secret", "platform-ingress-tls", "ingress"),
            ("Secret", "thanos-grpc-tls", "monitoring"),
            ("Secret", "opensearch-tls", "logging"),
            ("ConfigMap", "platform-ca", "logging"),
            ("ConfigMap", "platform-ca", "fluent-bit"),
        ):
            assert steps.step(f"kubernetes:core/v1:{kind}", f"{namespace}-{name}").op == "update", (edge, name)
        assert after.outputs["platformCaCertificate"] == ca_pem


def test_the_first_up_after_the_storeapi_client_ca_reissues_querys_certificate_and_updates_the_edges(
    central: Rendering, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading: before, the platform CA signed Query's client certificate and was the sidecars'
    client CA. Central's next `up` makes the new CA and issues Query a certificate from it (its key
    and request stay), which rolls Query; each edge's next `up` changes its `thanos-grpc-tls` in
    place (new `ca.crt`) and rolls Prometheus. Nothing protected is touched."""
    with monkeypatch.context() as before_this_change:
        before_this_change.setattr(PlatformCa, "_storeapi_client_ca", lambda self, name, args: self._platform)
        old_central = run_fixture(CENTRAL_STACK)
        published = {key: unwrap(value) for key, value in old_central.outputs.items()}
        old_edges = {edge: run_fixture(edge, stack_outputs=lambda name: published) for edge in HUB_EDGES}
    steps = plan(old_central, central)
    assert steps.refusals() == []
    changed = {(s.op, s.name) for s in steps.of("create", "update", "replace", "delete", "retain")}
    assert changed == {
        ("create", f"{client_ca_name(central)}-key"),
        ("create", client_ca_name(central)),
        ("replace", query_client_name(central)),
        ("update", "monitoring-thanos-grpc-tls"),
        ("update", "thanos-query"),
    }
    assert steps.step("kubernetes:apps/v1:Deployment", "thanos-query").op == "update", "Query rolls"
    for edge, before in old_edges.items():
        edge_steps = plan(before, rendered(edge))
        assert edge_steps.refusals() == []
        grpc = edge_steps.step("kubernetes:core/v1:Secret", "monitoring-thanos-grpc-tls")
        assert (grpc.op, grpc.delete_first) == ("update", False), edge
        changed = {(s.op, s.name) for s in edge_steps.of("create", "update", "replace", "delete", "retain")}
        assert changed == {("update", "monitoring-thanos-grpc-tls"), ("update", "kube-prometheus-stack")}, edge


# --- the operator's own CA ---------------------------------------------------------------


def operator_ca(common_name: str = "Operator Root CA", ca: bool = True) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key_pem


def with_operator_ca(certificate: str, key: str | None) -> Rendering:
    overrides: dict[str, str | None] = {f"{PROJECT}:tls": json.dumps({"caCertificate": certificate})}
    overrides[f"{PROJECT}:platformCaKey"] = key
    return run_fixture(CENTRAL_STACK, overrides)


def test_an_operator_ca_replaces_the_generated_one() -> None:
    ca_pem, key_pem = operator_ca()
    stack = with_operator_ca(ca_pem, key_pem)
    # Only the StoreAPI client CA is generated: the sidecars alone trust it, nobody else need know it.
    assert [ca.name for ca in stack.of_type(SELF_SIGNED)] == [client_ca_name(stack)]
    assert not [r for r in stack.of_type(PRIVATE_KEY) if r.name == f"{platform_ca_name(stack)}-key"]
    for certificate in stack.of_type(LOCALLY_SIGNED):
        if certificate.name == query_client_name(stack):
            assert certificate.inputs["caCertPem"] == stack.one(SELF_SIGNED, client_ca_name(stack)).state["certPem"]
            continue
        assert certificate.inputs["caCertPem"] == ca_pem.strip() + "\n"
        assert isinstance(certificate.inputs["caPrivateKeyPem"], Secret)
    assert stack.outputs["platformCaCertificate"] == ca_pem.strip() + "\n"


def test_an_operator_ca_needs_its_key_and_the_key_must_match() -> None:
    ca_pem, _ = operator_ca()
    with pytest.raises(SettingsError, match=r"platformCaKey < ca-key.pem"):
        with_operator_ca(ca_pem, None)
    _, other_key = operator_ca("Someone else")
    with pytest.raises(SettingsError, match=r"platformCaKey is not the key of tls.caCertificate"):
        with_operator_ca(ca_pem, other_key)


def test_a_certificate_that_is_no_ca_is_refused() -> None:
    leaf, key = operator_ca("not a CA", ca=False)
    with pytest.raises(SettingsError, match=r"tls.caCertificate is not a CA certificate"):
        with_operator_ca(leaf, key)


def test_a_ca_key_without_its_certificate_and_edge_tls_settings_are_refused() -> None:
    _, key = operator_ca()
    with pytest.raises(SettingsError, match=r"platformCaKey is set without tls.caCertificate"):
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:platformCaKey": key})
    with pytest.raises(SettingsError, match=r"only the central stack, which holds the platform CA"):
        run_fixture(HUB_EDGES[0], {f"{PROJECT}:tls": json.dumps({"validityDays": 90})})
    with pytest.raises(SettingsError, match=r"platformCaKey is set on an edge stack"):
        run_fixture(HUB_EDGES[0], {f"{PROJECT}:platformCaKey": key})


def test_a_renewal_window_longer_than_half_the_lifetime_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"tls.renewBeforeDays \(60\) must be at most half"):
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:tls": json.dumps({"validityDays": 90, "renewBeforeDays": 60})})
