"""tools.verify, object storage (central only): our AWS Signature Version 4 against AWS's published
examples, then each bucket's existence, versioning and lifecycle against a fake MinIO that
verifies every signature."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.fakes import pki, s3
from tests.fakes.platform import FakePlatform, run_checks
from tools.verify import objectstore
from tools.verify.objectstore import EMPTY_SHA256, signature
from tools.verify.report import Result, Status, passed

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")
CHECKS = [
    f"objectstore.{role}.{aspect}" for role in ("thanos", "opensearch", "longhorn") for aspect in objectstore.ASPECTS
]

AWS_EXAMPLE_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_EXAMPLE_HEADERS = {
    "host": "examplebucket.s3.amazonaws.com",
    "x-amz-content-sha256": EMPTY_SHA256,
    "x-amz-date": "20130524T000000Z",
}


@pytest.mark.parametrize(
    ("path", "params", "extra", "expected"),
    [
        # AWS S3 API reference, "Signature Calculations for the Authorization Header", examples.
        ("/test.txt", {}, {"range": "bytes=0-9"}, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        ("/", {"lifecycle": ""}, {}, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("/", {"max-keys": "2", "prefix": "J"}, {}, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)
def test_the_signature_matches_the_aws_s3_examples(
    path: str, params: dict[str, str], extra: dict[str, str], expected: str
) -> None:
    _, found = signature(
        method="GET",
        path=path,
        params=params,
        headers={**AWS_EXAMPLE_HEADERS, **extra},
        payload_hash=EMPTY_SHA256,
        secret_key=AWS_EXAMPLE_KEY,
        region="us-east-1",
        service="s3",
        when=dt.datetime(2013, 5, 24, tzinfo=dt.UTC),
    )
    assert found == expected


def test_the_signature_matches_the_aws_test_suite_query_order_case() -> None:
    # aws-sig-v4-test-suite get-vanilla-query-order-key-case: parameters are sorted, header names lowered.
    names, found = signature(
        method="GET",
        path="/",
        params={"Param2": "value2", "Param1": "value1"},
        headers={"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"},
        payload_hash=EMPTY_SHA256,
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="service",
        when=dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC),
    )
    assert (names, found) == ("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def results(platform: FakePlatform) -> dict[str, Result]:
    return run_checks(platform.outputs(), objectstore.run)


def failing(platform: FakePlatform) -> dict[str, Result]:
    return {name: r for name, r in results(platform).items() if r.status is not Status.OK}


def test_healthy_buckets_pass_every_check(platform: FakePlatform) -> None:
    found = results(platform)
    assert {name: r.status for name, r in found.items()} == {name: Status.OK for name in CHECKS}
    assert "noncurrent versions expire after 7 days" in found["objectstore.thanos.lifecycle"].detail
    assert {r.method for r in platform.servers["s3"].requests} == {"GET"}


def test_a_missing_bucket_fails_all_three_of_its_checks(platform: FakePlatform) -> None:
    del platform.s3.buckets["longhorn-backups"]
    found = failing(platform)
    assert set(found) == {
        "objectstore.longhorn.exists",
        "objectstore.longhorn.versioning",
        "objectstore.longhorn.lifecycle",
    }
    assert found["objectstore.longhorn.exists"].detail == "bucket longhorn-backups does not exist (NoSuchBucket)"


def test_a_denied_verifier_says_which_permission_it_needs(platform: FakePlatform) -> None:
    platform.s3.buckets["thanos"].denied = True
    found = failing(platform)
    assert "listing thanos is denied (AccessDenied)" in found["objectstore.thanos.exists"].detail
    assert "s3:GetLifecycleConfiguration" in found["objectstore.thanos.exists"].hint


def test_unversioned_or_suspended_buckets_fail(platform: FakePlatform) -> None:
    platform.s3.buckets["thanos"].versioning = None
    platform.s3.buckets["opensearch-logs"].versioning = "Suspended"
    found = failing(platform)
    assert set(found) == {"objectstore.thanos.versioning", "objectstore.opensearch.versioning"}
    assert found["objectstore.thanos.versioning"].detail == "versioning of thanos is never enabled"
    assert found["objectstore.opensearch.versioning"].detail == "versioning of opensearch-logs is Suspended"


def test_a_bucket_without_lifecycle_fails(platform: FakePlatform) -> None:
    platform.s3.buckets["thanos"].lifecycle = None
    assert "has no lifecycle (NoSuchLifecycleConfiguration)" in failing(platform)["objectstore.thanos.lifecycle"].detail


def test_a_rule_expiring_current_objects_fails(platform: FakePlatform) -> None:
    platform.s3.buckets["opensearch-logs"].lifecycle = s3.lifecycle(s3.NONCURRENT_RULE, s3.EXPIRE_CURRENT_RULE)
    found = failing(platform)["objectstore.opensearch.lifecycle"]
    assert found.detail == "opensearch-logs: rule expire-all-30d expires current objects (Days 30)"
    assert "corrupts snapshots" in found.hint


def test_two_noncurrent_rules_or_none_fail(platform: FakePlatform) -> None:
    platform.s3.buckets["thanos"].lifecycle = s3.lifecycle(s3.NONCURRENT_RULE, s3.NONCURRENT_RULE.replace("7d", "8d"))
    disabled = s3.NONCURRENT_RULE.replace("<Status>Enabled</Status>", "<Status>Disabled</Status>")
    platform.s3.buckets["longhorn-backups"].lifecycle = s3.lifecycle(disabled)
    found = failing(platform)
    assert (
        "2 enabled rules with NoncurrentVersionExpiration, expected exactly one"
        in found["objectstore.thanos.lifecycle"].detail
    )
    assert "0 enabled rules" in found["objectstore.longhorn.lifecycle"].detail


def test_a_delete_marker_cleanup_rule_is_not_expiring_current_objects(platform: FakePlatform) -> None:
    markers = (
        "<Rule><ID>markers</ID><Status>Enabled</Status>"
        "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>"
    )
    platform.s3.buckets["thanos"].lifecycle = s3.lifecycle(s3.NONCURRENT_RULE, markers)
    assert results(platform)["objectstore.thanos.lifecycle"].status is Status.OK


def test_a_wrong_secret_key_is_refused_by_the_signature_check(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["verifierCredentials"]["secretKey"] = "wrong"
    found = run_checks(outputs, objectstore.run)
    first = found["objectstore.thanos.exists"]
    assert first.status is Status.FAIL and "refused verifierCredentials (SignatureDoesNotMatch)" in first.detail
    assert [r.status for r in found.values()][1:] == [Status.SKIP] * 8


def test_minio_is_trusted_through_its_own_ca_and_not_without_it(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["objectStore"]["caCertificate"] = None  # then only the platform CA and public CAs are trusted
    found = run_checks(outputs, objectstore.run)
    assert found["objectstore.thanos.exists"].status is Status.FAIL
    assert "failed TLS verification" in found["objectstore.thanos.exists"].detail
    assert [r.status for r in found.values()][1:] == [Status.SKIP] * 8  # one FAIL line for the endpoint


def test_an_edge_has_no_object_store_checks(platform: FakePlatform) -> None:
    found = run_checks(platform.outputs(role="edge"), objectstore.run)
    assert set(found) == set(CHECKS) and passed(found.values())
    assert platform.servers["s3"].requests == []


def test_central_without_verifier_credentials_does_not_pass(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    del outputs["verifierCredentials"]
    found = run_checks(outputs, objectstore.run)
    assert all(r.status is Status.SKIP for r in found.values()) and not passed(found.values())
    assert "verifierCredentials" in found["objectstore.thanos.exists"].detail
