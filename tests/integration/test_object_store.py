"""The central stack's object storage applied to a real S3 server (moto) over TLS with a private CA.

A session fixture makes a throwaway CA and a server certificate for the fixture stacks' S3
endpoint (10.20.0.50), starts moto's server inside a network namespace of that address, and
creates what the hub rendering's pulumi-minio resources create: buckets, versioning, lifecycle,
the scoped users and their policies. Clients in this process trust only that CA.

The access tests say which of the platform's rules the server really enforces. Tests named
`test_moto_does_not_...` pin down what moto does NOT enforce (where MinIO or AWS would answer
otherwise): when one of them fails, moto changed and the list of gaps must be updated.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import botocore.exceptions as botocore_exceptions
import pytest

from tests.conftest import rendered, settings
from tests.integration.conftest import Proves
from tests.integration.platform import ObjectStore, make_pki
from tests.integration.s3_server import MOTO, Credential, by_cluster, moto_version
from tools.engine import unwrap

ClientError = botocore_exceptions.ClientError

S3_HOST = "10.20.0.50"
S3_PORT = 9000
CENTRAL = "hub"
CLUSTERS = ("hub", "edge-a", "edge-b")
THANOS, OPENSEARCH, LONGHORN = "thanos", "opensearch-logs", "longhorn-backups"
PREFIXED = {OPENSEARCH: "opensearch", LONGHORN: "longhorn"}
"""Buckets shared by cluster prefix -> the component that writes them."""
THANOS_SEED = "seed-block/meta.json"


def seed_key(bucket: str, cluster: str) -> str:
    return THANOS_SEED if bucket == THANOS else f"{cluster}/seed"


def seed_body(bucket: str, key: str) -> bytes:
    return f"seed {bucket}/{key}".encode()


@pytest.fixture(scope="module")
def object_store(object_store: ObjectStore) -> ObjectStore:
    """The session's object store with one object per bucket and cluster, for the access tests."""
    for bucket in object_store.plan.buckets:
        for cluster in CLUSTERS:
            key = seed_key(bucket, cluster)
            object_store.s3.put_object(Bucket=bucket, Key=key, Body=seed_body(bucket, key))
    return object_store


def denied(call: Callable[[], Any]) -> str:
    """The error code of a call that must fail with an S3/IAM error."""
    with pytest.raises(ClientError) as error:
        call()
    code: str = error.value.response["Error"]["Code"]
    return code


def exists(store: ObjectStore, bucket: str, key: str) -> bool:
    try:
        store.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def fresh(prefix: str) -> str:
    return f"{prefix}obj-{uuid.uuid4().hex[:12]}"


# --- the server --------------------------------------------------------------------------------


def test_fixture_names_match_the_rendering(object_store: ObjectStore) -> None:
    s3 = settings(rendered(CENTRAL)).s3
    assert (s3.buckets.thanos, s3.buckets.opensearch, s3.buckets.longhorn) == (THANOS, OPENSEARCH, LONGHORN)
    assert set(by_cluster(object_store.credentials)) == set(CLUSTERS)


def test_server_is_the_pinned_moto_inside_its_network_namespace(object_store: ObjectStore) -> None:
    assert moto_version() == "5.2.5"
    process = object_store.server.process
    assert process is not None and process.poll() is None
    assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == os.stat(f"/run/netns/{object_store.netns}").st_ino
    assert os.stat(f"/proc/{process.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino


def test_serves_tls_with_a_certificate_from_the_private_ca(object_store: ObjectStore, proves: Proves) -> None:
    context = ssl.create_default_context(cafile=str(object_store.pki.ca))
    with (
        socket.create_connection((S3_HOST, S3_PORT), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=S3_HOST) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        peer = tls.getpeercert()
    assert peer is not None
    assert peer["subjectAltName"] == (("IP Address", S3_HOST),)
    assert peer["issuer"] == ((("commonName", "throwaway S3 CA (integration tests)"),),)
    proves(
        MOTO,
        moto_version(),
        "serves S3 over TLS from a private CA at the fixture stacks' endpoint; clients without it fail",
    )


def test_a_client_without_the_ca_fails_the_handshake(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    system_trust = ssl.create_default_context()
    with (
        socket.create_connection((S3_HOST, S3_PORT), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"),
    ):
        system_trust.wrap_socket(raw, server_hostname=S3_HOST)
    sidecar = object_store.server.client("s3", object_store.credentials["hub-thanos-sidecar"], True)
    with pytest.raises(botocore_exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        sidecar.list_objects_v2(Bucket=THANOS)
    # The same client trusting the CA gets through: the failure above is the trust, nothing else.
    assert object_store.client("hub-thanos-sidecar").list_objects_v2(Bucket=THANOS)["KeyCount"] >= 1


def test_a_client_trusting_another_ca_fails_the_handshake(object_store: ObjectStore, tmp_path: Path) -> None:
    other = make_pki(tmp_path, "another CA", S3_HOST)
    sidecar = object_store.server.client("s3", object_store.credentials["hub-thanos-sidecar"], other.ca)
    with pytest.raises(botocore_exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        sidecar.list_objects_v2(Bucket=THANOS)


def test_plain_http_gets_no_answer(object_store: ObjectStore) -> None:
    connection = http.client.HTTPConnection(S3_HOST, S3_PORT, timeout=5)
    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", f"/{THANOS}")
            connection.getresponse()
    finally:
        connection.close()


# --- what the central stack created ------------------------------------------------------------


def test_buckets_are_the_rendered_ones_in_the_stack_region(object_store: ObjectStore) -> None:
    names = {bucket["Name"] for bucket in object_store.s3.list_buckets()["Buckets"]}
    assert names == set(object_store.plan.buckets) == {THANOS, OPENSEARCH, LONGHORN}
    for bucket in names:
        assert object_store.s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == object_store.plan.region


@pytest.mark.parametrize("bucket", [THANOS, OPENSEARCH, LONGHORN])
def test_versioning_round_trips(object_store: ObjectStore, bucket: str) -> None:
    verifier = object_store.client(f"{CENTRAL}-verifier")  # what `python -m tools.verify` asks, as its user
    assert object_store.plan.versioning[bucket] == "Enabled"
    assert verifier.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


@pytest.mark.parametrize("bucket", [THANOS, OPENSEARCH, LONGHORN])
def test_lifecycle_round_trips_as_noncurrent_expiry_only(object_store: ObjectStore, bucket: str) -> None:
    days = settings(rendered(CENTRAL)).s3.noncurrent_version_expiry_days
    verifier = object_store.client(f"{CENTRAL}-verifier")
    rules = verifier.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules == [
        {
            "ID": f"expire-noncurrent-{days}d",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": days},
        }
    ]


def test_every_rendered_user_has_exactly_its_rendered_policy(object_store: ObjectStore, proves: Proves) -> None:
    iam = object_store.client(object_store.admin, "iam")
    plan = object_store.plan
    assert len(plan.users) == 12 and set(object_store.credentials) == set(plan.users)
    attached = dict(plan.attachments)
    for user in plan.users:
        policies = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
        assert [p["PolicyName"] for p in policies] == [attached[user]]
        policy = iam.get_policy(PolicyArn=policies[0]["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        assert (json.loads(document) if isinstance(document, str) else document) == json.loads(plan.policies[user])
        assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    proves(MOTO, moto_version(), f"holds central's {len(plan.users)} users with exactly their rendered policies")


def test_credentials_have_the_shape_of_the_central_output(object_store: ObjectStore) -> None:
    output = rendered(CENTRAL).outputs["objectStoreCredentials"]
    shape = {cluster: sorted(components) for cluster, components in unwrap(output).items()}
    issued = by_cluster(object_store.credentials)
    assert {cluster: sorted(components) for cluster, components in issued.items()} == shape
    assert all(set(entry) == {"accessKey", "secretKey"} for c in issued.values() for entry in c.values())


# --- what the server enforces ------------------------------------------------------------------


def test_requests_must_be_signed_by_a_known_key(object_store: ObjectStore) -> None:
    sidecar = object_store.credentials["hub-thanos-sidecar"]
    wrong_secret = object_store.client(Credential(sidecar.access_key, "x" * 40))
    assert denied(lambda: wrong_secret.list_objects_v2(Bucket=THANOS)) == "SignatureDoesNotMatch"
    unknown = Credential("AKIA" + "0" * 16, sidecar.secret_key)
    assert denied(lambda: object_store.client(unknown).list_objects_v2(Bucket=THANOS)) == "InvalidAccessKeyId"
    # The program's own MinIO-style key (the user name) means nothing to moto: it issues its own ids.
    by_name = Credential("hub-thanos-sidecar", sidecar.secret_key)
    assert denied(lambda: object_store.client(by_name).list_objects_v2(Bucket=THANOS)) == "InvalidAccessKeyId"


@dataclass(frozen=True)
class Rule:
    user: str
    op: str
    bucket: str
    key: str
    """The object key (get), or the prefix of a fresh key (put, delete, delete-version), or a list prefix."""
    allowed: bool

    @property
    def id(self) -> str:
        return f"{self.user}:{self.op}:{self.bucket}/{self.key}:{'allow' if self.allowed else 'deny'}"


def _matrix() -> list[Rule]:
    rules: list[Rule] = []
    for cluster in CLUSTERS:
        other = next(c for c in CLUSTERS if c != cluster)
        sidecar = f"{cluster}-thanos-sidecar"
        rules += [
            Rule(sidecar, "put", THANOS, f"{cluster}-block/", True),
            Rule(sidecar, "get", THANOS, THANOS_SEED, True),
            Rule(sidecar, "list", THANOS, "", True),
            Rule(sidecar, "delete", THANOS, f"{cluster}-block/", False),
            Rule(sidecar, "get-version", THANOS, THANOS_SEED, False),
            Rule(sidecar, "put", OPENSEARCH, f"{cluster}/", False),
            Rule(sidecar, "get", LONGHORN, f"{cluster}/seed", False),
            Rule(sidecar, "list", OPENSEARCH, f"{cluster}/", False),
            Rule(sidecar, "create-bucket", f"{cluster}-new-bucket", "", False),
        ]
        for bucket, component in PREFIXED.items():
            user = f"{cluster}-{component}"
            foreign = [b for b in (THANOS, OPENSEARCH, LONGHORN) if b != bucket]
            rules += [
                Rule(user, "put", bucket, f"{cluster}/", True),
                Rule(user, "get", bucket, f"{cluster}/seed", True),
                Rule(user, "delete", bucket, f"{cluster}/", True),
                Rule(user, "list", bucket, f"{cluster}/", True),
                Rule(user, "put", bucket, f"{other}/", False),
                Rule(user, "get", bucket, f"{other}/seed", False),
                Rule(user, "delete", bucket, f"{other}/", False),
                Rule(user, "put", bucket, "", False),  # outside every cluster prefix
                Rule(user, "put", bucket, f"{cluster}-other/", False),  # a name that merely starts like the prefix
                Rule(user, "delete-version", bucket, f"{cluster}/", False),
                Rule(user, "put-lifecycle", bucket, "", False),
                *(Rule(user, "put", b, f"{cluster}/", False) for b in foreign),
                *(Rule(user, "get", b, seed_key(b, cluster), False) for b in foreign),
                *(Rule(user, "list", b, f"{cluster}/", False) for b in foreign),
            ]
    store, compactor, verifier = (f"{CENTRAL}-{c}" for c in ("thanos-store", "thanos-compactor", "verifier"))
    rules += [
        Rule(store, "get", THANOS, THANOS_SEED, True),
        Rule(store, "list", THANOS, "", True),
        Rule(store, "put", THANOS, "store/", False),
        Rule(store, "delete", THANOS, "store/", False),
        Rule(store, "get", OPENSEARCH, f"{CENTRAL}/seed", False),
        Rule(compactor, "put", THANOS, "compacted/", True),
        Rule(compactor, "get", THANOS, THANOS_SEED, True),
        Rule(compactor, "delete", THANOS, "compacted/", True),
        Rule(compactor, "list", THANOS, "", True),
        Rule(compactor, "delete-version", THANOS, "compacted/", False),
        Rule(compactor, "put-versioning", THANOS, "", False),
        Rule(compactor, "get", LONGHORN, f"{CENTRAL}/seed", False),
    ]
    for bucket in (THANOS, OPENSEARCH, LONGHORN):
        rules += [
            Rule(verifier, "list", bucket, "", True),
            Rule(verifier, "get-versioning", bucket, "", True),
            Rule(verifier, "get-lifecycle", bucket, "", True),
            Rule(verifier, "get", bucket, seed_key(bucket, CENTRAL), False),
            Rule(verifier, "put", bucket, f"{CENTRAL}/", False),
            Rule(verifier, "put-versioning", bucket, "", False),
            Rule(verifier, "put-lifecycle", bucket, "", False),
        ]
    return rules


MATRIX = _matrix()


def _attempt(store: ObjectStore, rule: Rule) -> Callable[[], Any]:
    """The request `rule` is about, made as its user, plus what is checked when it was allowed."""
    client = store.client(rule.user)
    bucket = rule.bucket
    match rule.op:
        case "put":
            key = fresh(rule.key)
            body = b"written by " + rule.user.encode()

            def put() -> None:
                client.put_object(Bucket=bucket, Key=key, Body=body)
                assert store.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body

            def refused() -> None:
                try:
                    client.put_object(Bucket=bucket, Key=key, Body=body)
                finally:
                    assert not exists(store, bucket, key), f"{rule.id}: denied, but written"

            return put if rule.allowed else refused
        case "get":
            return lambda: _check(
                client.get_object(Bucket=bucket, Key=rule.key)["Body"].read() == seed_body(bucket, rule.key)
            )
        case "get-version":
            version = store.s3.head_object(Bucket=bucket, Key=rule.key)["VersionId"]
            return lambda: client.get_object(Bucket=bucket, Key=rule.key, VersionId=version)
        case "delete" | "delete-version":
            key = fresh(rule.key)
            version = store.s3.put_object(Bucket=bucket, Key=key, Body=b"to delete")["VersionId"]

            def delete() -> None:
                if rule.op == "delete":
                    client.delete_object(Bucket=bucket, Key=key)
                else:
                    client.delete_object(Bucket=bucket, Key=key, VersionId=version)
                assert not exists(store, bucket, key)

            def kept() -> None:
                try:
                    delete()
                finally:
                    assert exists(store, bucket, key), f"{rule.id}: denied, but the object is gone"

            return delete if rule.allowed else kept
        case "list":

            def list_() -> None:
                request = {"Bucket": bucket, **({"Prefix": rule.key} if rule.key else {})}
                keys = {item["Key"] for item in client.list_objects_v2(**request).get("Contents", [])}
                assert {seed_key(bucket, c) for c in CLUSTERS if seed_key(bucket, c).startswith(rule.key)} <= keys

            return list_
        case "get-versioning":
            return lambda: _check(client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled")
        case "get-lifecycle":
            return lambda: _check(len(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1)
        case "put-versioning":  # the state it asks for is the current one: a wrongly allowed call changes nothing
            return lambda: client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        case "put-lifecycle":
            rules = store.plan.lifecycle[bucket]
            return lambda: client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": rules}
            )
        case "create-bucket":
            location = {"LocationConstraint": store.plan.region}
            return lambda: client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    raise AssertionError(f"unknown operation {rule.op}")


def _check(condition: bool) -> None:
    assert condition


@pytest.mark.parametrize("rule", MATRIX, ids=[rule.id for rule in MATRIX])
def test_access_rule_is_enforced(object_store: ObjectStore, rule: Rule, proves: Proves) -> None:
    attempt = _attempt(object_store, rule)
    if rule.allowed:
        attempt()
    else:
        assert denied(attempt) == "AccessDenied"
    proves(
        MOTO,
        moto_version(),
        "enforces each user's actions and bucket/prefix resources (not `s3:prefix` conditions, not multi-object "
        "deletes per key: see the test_moto_does_not_ tests)",
    )


def test_an_overwrite_and_a_delete_keep_the_earlier_versions(object_store: ObjectStore, proves: Proves) -> None:
    """Versioning is real: what the Compactor deletes stays recoverable (by the admin) as noncurrent versions."""
    sidecar, compactor = object_store.client("hub-thanos-sidecar"), object_store.client("hub-thanos-compactor")
    key = fresh("versioned/")
    first = sidecar.put_object(Bucket=THANOS, Key=key, Body=b"first")["VersionId"]
    second = sidecar.put_object(Bucket=THANOS, Key=key, Body=b"second")["VersionId"]
    assert first != second
    compactor.delete_object(Bucket=THANOS, Key=key)
    assert not exists(object_store, THANOS, key)
    listing = object_store.s3.list_object_versions(Bucket=THANOS, Prefix=key)
    assert sorted(v["VersionId"] for v in listing["Versions"]) == sorted([first, second])
    assert [m["IsLatest"] for m in listing["DeleteMarkers"]] == [True]
    assert object_store.s3.get_object(Bucket=THANOS, Key=key, VersionId=first)["Body"].read() == b"first"
    proves(MOTO, moto_version(), "versioned buckets with the rendered noncurrent-expiry lifecycle (stored, not run)")


# --- what moto does NOT enforce ----------------------------------------------------------------


def test_moto_does_not_evaluate_the_s3_prefix_condition_on_listing(object_store: ObjectStore) -> None:
    """GAP. The opensearch and longhorn users may list only `<cluster>/` (`StringLike s3:prefix`);
    MinIO and AWS deny any other prefix. moto evaluates no condition on S3 requests (it passes
    none of the request's condition keys, and only knows `StringEquals`), so it lists everything."""
    for bucket, component in PREFIXED.items():
        client = object_store.client(f"hub-{component}")
        other = client.list_objects_v2(Bucket=bucket, Prefix="edge-a/")
        assert "edge-a/seed" in {item["Key"] for item in other["Contents"]}
        everything = {item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]}
        assert {f"{c}/seed" for c in CLUSTERS} <= everything


def test_moto_does_not_authorize_a_multi_object_delete_per_object(object_store: ObjectStore) -> None:
    """GAP. `DeleteObjects` (POST ?delete, what OpenSearch's repository-s3 and Longhorn use) needs
    `s3:DeleteObject` on each object in MinIO and AWS. moto checks it against the bucket ARN, which
    none of our policies names, so every key comes back AccessDenied, even the user's own prefix;
    the single-object DeleteObject of the same key succeeds."""
    cases = [
        ("hub-opensearch", OPENSEARCH, "hub/"),
        ("hub-longhorn", LONGHORN, "hub/"),
        ("hub-thanos-compactor", THANOS, ""),
    ]
    for user, bucket, prefix in cases:
        key = fresh(prefix)
        object_store.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        client = object_store.client(user)
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
        assert [(e["Key"], e["Code"]) for e in answer.get("Errors", [])] == [(key, "AccessDenied")], user
        assert exists(object_store, bucket, key)
        client.delete_object(Bucket=bucket, Key=key)
        assert not exists(object_store, bucket, key)


def test_moto_does_not_check_the_signing_region(object_store: ObjectStore) -> None:
    """GAP. MinIO rejects a request signed for another region than its own (the stack's
    `s3.region`, which every objstore config carries); moto accepts any region."""
    elsewhere = replace(object_store.server, region="us-west-2", process=None)
    client = elsewhere.client("s3", object_store.credentials["hub-thanos-store"], object_store.pki.ca)
    body = client.get_object(Bucket=THANOS, Key=THANOS_SEED)["Body"].read()
    assert body == seed_body(THANOS, THANOS_SEED)
