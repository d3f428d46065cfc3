"""In-cluster S3 credentials: every cluster gets Secrets built from its own MinIO users only; edges
read them from the central stack and never hold admin or other clusters' credentials (C8, C12)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components.object_storage import CA_FILE, OBJSTORE_MOUNT_DIR
from components.settings import PROJECT, S3Settings, SettingsError
from tests.certificates import throwaway_ca
from tests.conftest import CENTRAL_STACK, EDGE, OTHER_EDGE, central_of, fleet_of, run_fixture, settings
from tools.engine import MOCK_PASSWORD, Rendering, Resource, Secret, unwrap

PEM, _ = throwaway_ca()


def secret_data(stack: Rendering, name: str, namespace: str) -> dict[str, str]:
    string_data = stack.k8s("Secret", name, namespace).inputs["stringData"]
    assert isinstance(string_data, Secret), f"{namespace}/{name} must be a secret"
    return unwrap(string_data)


def objstore(stack: Rendering, component: str) -> dict[str, Any]:
    return yaml.safe_load(secret_data(stack, f"thanos-objstore-{component}", "monitoring")["objstore.yml"])


def strings(value: Any) -> Iterator[str]:
    value = unwrap(value)
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# --- Thanos ------------------------------------------------------------------------------


def test_the_sidecar_gets_an_objstore_config_with_its_own_user(any_stack: Rendering) -> None:
    s3 = settings(any_stack).s3
    assert objstore(any_stack, "sidecar") == {
        "type": "S3",
        "config": {
            "bucket": s3.buckets.thanos,
            "endpoint": s3.endpoint,
            "region": s3.region,
            "insecure": False,
            "access_key": f"{any_stack.stack}-thanos-sidecar",
            "secret_key": MOCK_PASSWORD,
            "http_config": {"tls_config": {"ca_file": CA_FILE}},  # the fixture's MinIO has its own CA
        },
    }


def test_with_a_public_ca_the_sidecar_trusts_the_public_cas() -> None:
    stack = run_fixture(EDGE, {f"{PROJECT}:s3": json.dumps({"endpoint": "minio.example.org:443", "publicCa": True})})
    assert objstore(stack, "sidecar")["config"]["http_config"] == {}


def test_store_gateway_and_compactor_configs_exist_on_central_only(central: Rendering, edge: Rendering) -> None:
    assert objstore(central, "store")["config"]["access_key"] == f"{central.stack}-thanos-store"
    assert objstore(central, "compactor")["config"]["access_key"] == f"{central.stack}-thanos-compactor"
    for component in ("store", "compactor"):
        with pytest.raises(LookupError):
            edge.k8s("Secret", f"thanos-objstore-{component}", "monitoring")


def test_a_configured_ca_is_shipped_in_the_secret_and_named_where_it_is_mounted() -> None:
    s3 = {"endpoint": "minio.lab:9000", "useTls": True, "caCertificate": PEM}
    stack = run_fixture(EDGE, {f"{PROJECT}:s3": json.dumps(s3)})
    data = secret_data(stack, "thanos-objstore-sidecar", "monitoring")
    assert data["ca.crt"] == PEM
    config = yaml.safe_load(data["objstore.yml"])["config"]
    assert CA_FILE == f"{OBJSTORE_MOUNT_DIR}/ca.crt" == "/etc/thanos/objstore/ca.crt"
    assert config["http_config"] == {"tls_config": {"ca_file": CA_FILE}}
    assert config["endpoint"] == "minio.lab:9000"
    assert secret_data(stack, "longhorn-backup-credentials", "longhorn-system")["AWS_CERT"] == PEM


def test_plain_http_minio_is_insecure_in_thanos_terms() -> None:
    stack = run_fixture(OTHER_EDGE, {f"{PROJECT}:s3": json.dumps({"useTls": False})})
    config = objstore(stack, "sidecar")["config"]
    assert config["insecure"] is True
    assert "tls_config" not in config["http_config"]
    assert "ca.crt" not in secret_data(stack, "thanos-objstore-sidecar", "monitoring")


# --- OpenSearch and Longhorn ------------------------------------------------------------


def test_opensearch_keystore_holds_exactly_the_client_keys(any_stack: Rendering) -> None:
    assert secret_data(any_stack, "opensearch-s3-keystore", "logging") == {
        "s3.client.default.access_key": f"{any_stack.stack}-opensearch",
        "s3.client.default.secret_key": MOCK_PASSWORD,
    }


def test_longhorn_backs_up_with_the_clusters_own_user(longhorn_stack: Rendering) -> None:
    any_stack = longhorn_stack
    data = secret_data(any_stack, "longhorn-backup-credentials", "longhorn-system")
    assert data["AWS_ACCESS_KEY_ID"] == f"{any_stack.stack}-longhorn"
    assert data["AWS_SECRET_ACCESS_KEY"] == MOCK_PASSWORD
    assert data["AWS_ENDPOINTS"] == f"https://{settings(any_stack).s3.endpoint}"


def test_no_stand_in_backup_keys_are_read_from_config(any_stack: Rendering) -> None:
    assert "REDACTED-SECRET-longhornBackup" not in json.dumps([unwrap(r.inputs) for r in any_stack.resources])


# --- where the credentials come from -----------------------------------------------------


def object_store_secrets(stack: Rendering) -> list[Resource]:
    component = stack.one(f"{PROJECT}:objectstore:S3Credentials")
    return [r for r in stack.kubernetes_objects() if r.kind == "Secret" and r.parent_urn == component.urn]


def test_secrets_wait_for_their_namespace(any_stack: Rendering) -> None:
    secrets = object_store_secrets(any_stack)
    assert len(secrets) == (4 if settings(any_stack).is_central else 2)
    for secret in secrets:
        namespace = any_stack.k8s("Namespace", secret.metadata["namespace"])
        assert any_stack.depends_on(secret, namespace), secret.name


def test_on_central_secrets_wait_for_the_users_policies(central: Rendering) -> None:
    attachments = {
        r.inputs["userName"]: r for r in central.of_type("minio:index/iamUserPolicyAttachment:IamUserPolicyAttachment")
    }
    sidecar = central.k8s("Secret", "thanos-objstore-sidecar", "monitoring")
    assert central.depends_on(sidecar, attachments[f"{central.stack}-thanos-sidecar"])
    keystore = central.k8s("Secret", "opensearch-s3-keystore", "logging")
    assert central.depends_on(keystore, attachments[f"{central.stack}-opensearch"])
    assert not central.of_type("pulumi:pulumi:StackReference"), "central uses its own users directly"


def test_a_cluster_holds_only_its_own_credentials_and_never_admin_ones(any_stack: Rendering) -> None:
    # Central's MinIO and certificate resources and its published outputs necessarily name every
    # cluster's users and keys; everything else in a stack (its Kubernetes objects, other outputs)
    # must name only its own. (Offline, a certificate's text names the central resource that issued
    # it: `...-<central>-platform-ca-<cluster>-...`, and the CA `...-<central>-platform-ca-ca`.)
    issuers = ("minio:", "pulumi:providers:minio", "tls:")
    in_cluster = [r for r in any_stack.resources if not r.type.startswith(issuers)]
    seen = [s for r in in_cluster for s in strings(r.inputs)]
    published = ("objectStoreCredentials", "tlsCertificates")
    seen += [s for key, value in any_stack.outputs.items() if key not in published for s in strings(value)]
    # The StoreAPI client CA's certificate is public (in every cluster's entry); its key is not.
    central = central_of(any_stack.stack)
    client_ca = f"offline-engine-certificate-{central}-platform-ca-storeapi-client-ca-"
    own_or_public = (f"-platform-ca-{any_stack.stack}-", f"{central}-platform-ca-ca", client_ca)
    seen = [s for s in seen if not any(mark in s for mark in own_or_public)]
    for other in (stack for stack in fleet_of(any_stack.stack) if stack != any_stack.stack):
        leaked = [s for s in seen if f"{other}-" in s]
        assert leaked == [], f"{any_stack.stack} holds credentials of {other}"
    assert not [s for s in seen if "minioAdmin" in s]
    holders = {r.type for r in any_stack.resources if any("minioAdmin" in s for s in strings(r.inputs))}
    assert holders == ({"pulumi:providers:minio"} if settings(any_stack).is_central else set())


def test_edges_publish_no_credentials(edge: Rendering) -> None:
    assert "objectStoreCredentials" not in edge.outputs


# --- every client verifies MinIO's certificate ---------------------------------------------


@pytest.mark.parametrize(
    ("s3", "refusal"),
    [
        ({"endpoint": "172.20.40.21:30001"}, "s3.caCertificate is required"),
        ({"endpoint": "minio.example.org:443"}, "s3.caCertificate is required"),
        ({"endpoint": "172.20.40.21:30001", "publicCa": True}, "no public CA signs a certificate for the non-public"),
        ({"endpoint": "minio.example.org:443", "publicCa": True, "caCertificate": PEM}, "keep the one that signed"),
        ({"endpoint": "172.20.40.21:30001", "caCertificate": "-----BEGIN CERTIFICATE-----\nx\n"}, "not a readable PEM"),
        ({"endpoint": "172.20.40.21:30001", "useTls": False, "caCertificate": PEM}, "need useTls: true"),
    ],
)
def test_a_stack_must_say_who_signed_minios_certificate(s3: dict[str, Any], refusal: str) -> None:
    """Every client verifies MinIO (Longhorn and repository-s3 cannot skip it): a guess would fail only at
    run time, in Thanos Store Gateway's first sync, the MinIO provider, backups and snapshots."""
    with pytest.raises(SettingsError, match=refusal) as refused:
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:s3": json.dumps(s3)})
    assert "\n" not in str(refused.value) and "(got {" not in str(refused.value), "one line, no dump of the section"


def test_the_refusal_names_the_key_and_both_ways_out() -> None:
    with pytest.raises(ValueError) as refused:
        S3Settings.model_validate({"endpoint": "172.20.40.21:30001"})
    assert "s3.caCertificate" in str(refused.value) and "s3.publicCa true" in str(refused.value)


@pytest.mark.parametrize(
    "s3",
    [
        {"endpoint": "minio.example.org:443", "publicCa": True},
        {"endpoint": "203.0.113.7:9000", "caCertificate": PEM},
        {"endpoint": "172.20.40.21:30001", "useTls": False},
    ],
)
def test_a_stated_trust_is_accepted(s3: dict[str, Any]) -> None:
    assert (
        run_fixture(CENTRAL_STACK, {f"{PROJECT}:s3": json.dumps(s3)}).outputs["objectStore"]["endpoint"]
        == s3["endpoint"]
    )
