"""Object storage on central: buckets, a lifecycle that never expires current objects (C10, C11), and
least-privilege MinIO users for every cluster and component (C12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.object_storage import minio_ca_file, policy_document
from components.settings import PROJECT, S3Settings, SettingsError, parse_settings
from tests.certificates import throwaway_ca
from tests.conftest import CENTRAL_STACK, EDGE, FLEET, OTHER_EDGE, raw_config, run_fixture, settings, with_section
from tools.engine import MOCK_PASSWORD, Rendering, Resource, Secret, secret_placeholder, unwrap

PEM, _ = throwaway_ca()
BUCKETS = parse_settings(raw_config(CENTRAL_STACK), CENTRAL_STACK).s3.buckets
"""The fixture topology's bucket names."""
BUCKET_NAMES = {BUCKETS.thanos, BUCKETS.opensearch, BUCKETS.longhorn}

# Every policy, spelled out: what each user may do, on which resource (least privilege).


def whole_thanos_bucket(*object_actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{BUCKETS.thanos}"]},
            {"Effect": "Allow", "Action": list(object_actions), "Resource": [f"arn:aws:s3:::{BUCKETS.thanos}/*"]},
        ],
    }


def cluster_prefix(bucket: str, cluster: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{cluster}/*"]}},
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{cluster}/*"],
            },
        ],
    }


def expected_policies() -> dict[str, dict[str, Any]]:
    policies = {
        f"{CENTRAL_STACK}-thanos-store": whole_thanos_bucket("s3:GetObject"),
        f"{CENTRAL_STACK}-thanos-compactor": whole_thanos_bucket("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
    }
    for cluster in FLEET:
        policies[f"{cluster}-thanos-sidecar"] = whole_thanos_bucket("s3:GetObject", "s3:PutObject")
        policies[f"{cluster}-opensearch"] = cluster_prefix(BUCKETS.opensearch, cluster)
        policies[f"{cluster}-longhorn"] = cluster_prefix(BUCKETS.longhorn, cluster)
    # `verify`: bucket configuration only, no object (no GetObject, nothing written).
    read_configuration = ["s3:ListBucket", "s3:GetBucketVersioning", "s3:GetLifecycleConfiguration"]
    policies[f"{CENTRAL_STACK}-verifier"] = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": read_configuration, "Resource": [f"arn:aws:s3:::{bucket}"]}
            for bucket in (BUCKETS.thanos, BUCKETS.opensearch, BUCKETS.longhorn)
        ],
    }
    return policies


def minio_provider(stack: Rendering) -> Resource:
    return stack.one("pulumi:providers:minio")


def by_bucket(stack: Rendering, type_: str) -> dict[str, Resource]:
    return {unwrap(r.inputs["bucket"]): r for r in stack.of_type(type_)}


# --- provider ----------------------------------------------------------------------------


def test_central_talks_to_minio_through_an_explicit_provider_with_the_admin_secrets(central: Rendering) -> None:
    provider = minio_provider(central)
    s3 = settings(central).s3
    assert provider.inputs["minioServer"] == s3.endpoint
    assert provider.inputs["minioRegion"] == s3.region
    # Provider config values travel as strings.
    assert json.loads(provider.inputs["minioSsl"]) is True
    assert json.loads(provider.inputs["minioInsecure"]) is False
    assert provider.inputs["minioUser"] == Secret(secret_placeholder("minioAdminUser"))
    assert provider.inputs["minioPassword"] == Secret(secret_placeholder("minioAdminPassword"))
    assert Path(provider.inputs["minioCacertFile"]).read_text() == s3.ca_certificate
    component = central.one(f"{PROJECT}:objectstore:ObjectStorage")
    assert provider.parent_urn == component.urn
    minio_resources = [r for r in central.resources if r.type.startswith("minio:")]
    assert minio_resources
    for resource in minio_resources:
        assert resource.provider and resource.provider.startswith(provider.urn), resource.name


def test_a_configured_ca_reaches_the_provider_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    s3 = {"endpoint": "minio.lab:9000", "useTls": True, "caCertificate": PEM}
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:s3": json.dumps(s3)})
    provider = minio_provider(stack)
    path = Path(provider.inputs["minioCacertFile"])
    assert path.is_relative_to(tmp_path)
    assert path.read_text() == PEM
    assert json.loads(provider.inputs["minioInsecure"]) is False


def test_the_ca_file_is_content_addressed_and_repaired(tmp_path: Path) -> None:
    first = minio_ca_file(PEM, tmp_path)
    assert minio_ca_file(PEM, tmp_path) == first
    Path(first).write_text("tampered")
    assert minio_ca_file(PEM, tmp_path) == first
    assert Path(first).read_text() == PEM
    other = minio_ca_file(throwaway_ca("Another test CA")[0], tmp_path)
    assert other != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([Path(first).name, Path(other).name])


def test_edges_have_no_minio_provider_and_no_minio_resources(edge: Rendering) -> None:
    assert not [r for r in edge.resources if r.type.startswith("minio:") or r.type == "pulumi:providers:minio"]
    assert not edge.of_type(f"{PROJECT}:objectstore:ObjectStorage")


# --- buckets and lifecycle ---------------------------------------------------------------


def test_three_private_buckets_are_protected_and_retained(central: Rendering) -> None:
    buckets = by_bucket(central, "minio:index/s3Bucket:S3Bucket")
    assert set(buckets) == BUCKET_NAMES
    for bucket in buckets.values():
        assert bucket.inputs["acl"] == "private"
        assert bucket.protect, bucket.name
        assert bucket.retain_on_delete, bucket.name
        assert not bucket.inputs.get("forceDestroy")


def test_bucket_protection_follows_the_protect_setting() -> None:
    stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:protect": "false"})
    for bucket in stack.of_type("minio:index/s3Bucket:S3Bucket"):
        assert not bucket.protect
        assert bucket.retain_on_delete, "a bucket outlives the stack even unprotected"


def test_every_bucket_is_versioned(central: Rendering) -> None:
    versioning = by_bucket(central, "minio:index/s3BucketVersioning:S3BucketVersioning")
    assert set(versioning) == BUCKET_NAMES
    buckets = by_bucket(central, "minio:index/s3Bucket:S3Bucket")
    for name, resource in versioning.items():
        assert resource.inputs["versioningConfiguration"] == {"status": "Enabled"}
        assert central.depends_on(resource, buckets[name])


def test_versioning_can_be_switched_off_for_a_minio_without_it() -> None:
    stack = with_section(CENTRAL_STACK, "s3", versioning=False)
    assert not stack.of_type("minio:index/s3BucketVersioning:S3BucketVersioning")
    assert set(by_bucket(stack, "minio:index/s3Bucket:S3Bucket")) == BUCKET_NAMES


def test_each_bucket_expires_noncurrent_versions_after_the_grace_period(central: Rendering) -> None:
    policies = by_bucket(central, "minio:index/ilmPolicy:IlmPolicy")
    assert set(policies) == BUCKET_NAMES
    versioning = by_bucket(central, "minio:index/s3BucketVersioning:S3BucketVersioning")
    for bucket, policy in policies.items():
        assert policy.inputs["rules"] == [{"id": "expire-noncurrent-7d", "noncurrentVersionExpirationDays": 7}]
        assert central.depends_on(policy, versioning[bucket]), "rules for versions come after versioning"


def test_the_grace_period_is_configurable() -> None:
    stack = with_section(CENTRAL_STACK, "s3", noncurrentVersionExpiryDays=30)
    for policy in stack.of_type("minio:index/ilmPolicy:IlmPolicy"):
        assert [rule["noncurrentVersionExpirationDays"] for rule in policy.inputs["rules"]] == [30]


def expiring_current_objects(stack: Rendering) -> list[tuple[str, Any]]:
    """Every lifecycle rule that would delete current objects: an `expiration` (days, a date, or
    anything else) or a transition. Only noncurrent-version expiry is safe (C10)."""
    unsafe = []
    for policy in stack.of_type("minio:index/ilmPolicy:IlmPolicy"):
        for rule in policy.inputs["rules"]:
            for field in set(rule) - {"id", "noncurrentVersionExpirationDays", "filter", "tags"}:
                unsafe.append((policy.name, {field: rule[field]}))
    return unsafe


@pytest.mark.parametrize(
    "s3",
    [{}, {"versioning": False}, {"noncurrentVersionExpiryDays": 3650}],
    ids=["committed config", "unversioned", "longest grace"],
)
def test_no_lifecycle_rule_the_program_creates_expires_current_objects(s3: dict[str, Any]) -> None:
    stack = with_section(CENTRAL_STACK, "s3", **s3)
    assert stack.of_type("minio:index/ilmPolicy:IlmPolicy")
    assert expiring_current_objects(stack) == []


def test_settings_refuse_to_expire_current_objects_and_say_why() -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw_config(CENTRAL_STACK, s3={"expireCurrentObjectsDays": 180}), CENTRAL_STACK)
    message = str(error.value)
    for words in ("refused", "corrupts", "Snapshot Management", "RecurringJob", "share files across generations"):
        assert words in message


@pytest.mark.parametrize(
    ("buckets", "words"),
    [
        ({"thanos": "shared", "longhorn": "shared"}, "three different buckets"),
        ({"opensearch": "os"}, "3 to 63 characters"),
    ],
)
def test_bucket_names_must_be_distinct_and_valid(buckets: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        parse_settings(raw_config(CENTRAL_STACK, s3={"buckets": buckets}), CENTRAL_STACK)


# --- users and policies ------------------------------------------------------------------


def test_central_issues_one_user_per_cluster_and_component(central: Rendering) -> None:
    users = {r.inputs["name"] for r in central.of_type("minio:index/iamUser:IamUser")}
    assert users == set(expected_policies())


def test_each_user_has_exactly_its_least_privilege_policy(central: Rendering) -> None:
    policies = {
        r.inputs["name"]: json.loads(r.inputs["policy"]) for r in central.of_type("minio:index/iamPolicy:IamPolicy")
    }
    assert policies == expected_policies()
    attachments = {
        r.inputs["userName"]: r.inputs["policyName"]
        for r in central.of_type("minio:index/iamUserPolicyAttachment:IamUserPolicyAttachment")
    }
    assert attachments == {user: user for user in expected_policies()}


def test_no_policy_grants_wildcards_or_admin_actions(central: Rendering) -> None:
    allowed = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    allowed |= {"s3:GetBucketVersioning", "s3:GetLifecycleConfiguration"}  # the verifier reads configuration
    for resource in central.of_type("minio:index/iamPolicy:IamPolicy"):
        for statement in json.loads(resource.inputs["policy"])["Statement"]:
            assert statement["Effect"] == "Allow"
            assert set(statement["Action"]) <= allowed, resource.name
            assert all(arn.startswith("arn:aws:s3:::") and arn != "arn:aws:s3:::*" for arn in statement["Resource"])


def test_only_the_compactor_may_delete_thanos_blocks(central: Rendering) -> None:
    deleters = {
        r.inputs["name"]
        for r in central.of_type("minio:index/iamPolicy:IamPolicy")
        for statement in json.loads(r.inputs["policy"])["Statement"]
        if "s3:DeleteObject" in statement["Action"] and f"arn:aws:s3:::{BUCKETS.thanos}/*" in statement["Resource"]
    }
    assert deleters == {f"{CENTRAL_STACK}-thanos-compactor"}


def test_policies_follow_configured_bucket_names() -> None:
    s3 = S3Settings.model_validate(
        {"caCertificate": PEM, "buckets": {"thanos": "metrics", "opensearch": "snaps", "longhorn": "vols"}}
    )
    assert policy_document("thanos-store", EDGE, s3)["Statement"][1]["Resource"] == ["arn:aws:s3:::metrics/*"]
    assert policy_document("longhorn", EDGE, s3)["Statement"][1]["Resource"] == [f"arn:aws:s3:::vols/{EDGE}/*"]
    with pytest.raises(ValueError, match="grafana"):
        policy_document("grafana", EDGE, s3)


def test_secret_keys_are_generated_and_secret(central: Rendering) -> None:
    passwords = {r.name: r for r in central.of_type("random:index/randomPassword:RandomPassword")}
    for user in central.of_type("minio:index/iamUser:IamUser"):
        password = passwords[f"{user.inputs['name']}-secret-key"]
        assert password.inputs["length"] == 40
        assert password.inputs["special"] is False
        assert user.inputs["secret"] == Secret(MOCK_PASSWORD)


def test_credentials_are_one_secret_output_keyed_by_cluster_and_component(central: Rendering) -> None:
    output = central.outputs["objectStoreCredentials"]
    assert isinstance(output, Secret)
    components = {cluster: set(entry) for cluster, entry in output.value.items()}
    assert components == {
        CENTRAL_STACK: {"thanos-sidecar", "thanos-store", "thanos-compactor", "opensearch", "longhorn"},
        EDGE: {"thanos-sidecar", "opensearch", "longhorn"},
        OTHER_EDGE: {"thanos-sidecar", "opensearch", "longhorn"},
    }
    for cluster, entry in output.value.items():
        for component, keys in entry.items():
            assert keys == {"accessKey": f"{cluster}-{component}", "secretKey": MOCK_PASSWORD}


def test_admin_credentials_are_never_exported(central: Rendering) -> None:
    exported = json.dumps(unwrap(central.outputs))
    assert "REDACTED-SECRET-minioAdmin" not in exported
