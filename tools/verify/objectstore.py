"""Object storage (central only): each bucket exists, is versioned, and has exactly the
noncurrent-version expiry rule, checked as the read-only `verifierCredentials` MinIO user.

Plain `requests` with our own AWS Signature Version 4 (below, checked against AWS's published
examples in the tests) instead of an SDK: three GETs need no new dependency. Path-style URLs, as
MinIO serves them on an IP endpoint. Responses are the S3 REST API's XML (namespace
`http://s3.amazonaws.com/doc/2006-03-01/`): ListObjectsV2, GetBucketVersioning
(`<VersioningConfiguration><Status>Enabled`), GetBucketLifecycleConfiguration (`<Rule>` with
`<Status>`, `<Expiration>`, `<NoncurrentVersionExpiration><NoncurrentDays>`; 404
`NoSuchLifecycleConfiguration` when there is none).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import quote

import requests

from tools.verify.context import Context, Endpoint, EndpointDown, UnexpectedResponse
from tools.verify.outputs import BUCKET_ROLES, Credentials, MissingOutput, ObjectStore, need
from tools.verify.report import Result, fail, not_run, ok, role_skip

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
BAD_CREDENTIALS = ("SignatureDoesNotMatch", "InvalidAccessKeyId")
ASPECTS = ("exists", "versioning", "lifecycle")


# --- AWS Signature Version 4 ----------------------------------------------------------------


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}" for key, value in sorted(params.items()))


def signature(
    *,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
    secret_key: str,
    region: str,
    service: str,
    when: dt.datetime,
) -> tuple[str, str]:
    """(signed header names, hex signature) of a request; `headers` must hold every header to sign."""
    lowered = {name.lower(): " ".join(value.strip().split()) for name, value in headers.items()}
    signed = ";".join(sorted(lowered))
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            canonical_query(params),
            "".join(f"{name}:{lowered[name]}\n" for name in sorted(lowered)),
            signed,
            payload_hash,
        ]
    )
    day = when.strftime("%Y%m%d")
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", when.strftime("%Y%m%dT%H%M%SZ"), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request")
    return signed, hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    credentials: Credentials,
    region: str,
    host: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    when: dt.datetime,
) -> dict[str, str]:
    """The headers of a signed S3 request without a body."""
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": when.strftime("%Y%m%dT%H%M%SZ")}
    names, sig = signature(
        method=method,
        path=path,
        params=params,
        headers=headers,
        payload_hash=EMPTY_SHA256,
        secret_key=credentials.secret_key,
        region=region,
        service="s3",
        when=when,
    )
    scope = f"{when:%Y%m%d}/{region}/s3/aws4_request"
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={sig}"
    )
    return {**{k: v for k, v in headers.items() if k != "host"}, "Authorization": authorization}


# --- S3 client ------------------------------------------------------------------------------


class S3:
    def __init__(self, ctx: Context, store: ObjectStore, credentials: Credentials) -> None:
        scheme = "https" if store.use_tls else "http"
        self.ctx, self.store, self.credentials = ctx, store, credentials
        self.endpoint: Endpoint = ctx.endpoint(
            "MinIO",
            f"{scheme}://{store.endpoint}/",
            verify=ctx.object_store_bundle() if store.use_tls else None,
            trust="s3.caCertificate (objectStore.caCertificate) or a public CA",
        )

    def get(self, bucket: str, params: Mapping[str, str], ok: tuple[int, ...] = (200,)) -> requests.Response:
        path = f"/{bucket}"
        when = dt.datetime.now(dt.UTC)
        headers = signed_headers(self.credentials, self.store.region, self.store.endpoint, "GET", path, params, when)
        # Host exactly as signed: requests would drop a default port (`minio:443` becomes `minio`).
        headers["Host"] = self.store.endpoint
        response = self.endpoint.request("GET", canonical_url(path, params), ok=ok, headers=headers)
        if response.status_code == 403 and error_code(response) in BAD_CREDENTIALS:
            # Every later request would be refused the same way: one FAIL line, the others "not run".
            target = self.store.endpoint
            down = self.ctx.mark_down(target, f"refused verifierCredentials ({error_code(response)})")
            raise EndpointDown(
                "MinIO", down, "verifierCredentials are wrong or the user was removed: pulumi up -s <central>"
            )
        return response


def canonical_url(path: str, params: Mapping[str, str]) -> str:
    """The path and query exactly as signed (requests would write `?versioning` as `?versioning=`)."""
    query = canonical_query(params)
    return path.lstrip("/") + (f"?{query}" if query else "")


def xml(response: requests.Response) -> ET.Element:
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise UnexpectedResponse(f"MinIO answered no XML: {exc}") from None
    for element in root.iter():  # drop the S3 namespace: tags compare by local name
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


def error_code(response: requests.Response) -> str:
    try:
        return xml(response).findtext("Code") or f"HTTP {response.status_code}"
    except UnexpectedResponse:
        return f"HTTP {response.status_code}"


# --- checks ---------------------------------------------------------------------------------

DENIED_HINT = (
    "the verifier user's policy must allow s3:ListBucket, s3:GetBucketVersioning and s3:GetLifecycleConfiguration"
)


def check_exists(s3: S3, role: str, bucket: str) -> Result:
    check = f"objectstore.{role}.exists"
    response = s3.get(bucket, {"list-type": "2", "max-keys": "1"}, ok=(200, 403, 404))
    if response.status_code == 404:
        return fail(
            check, f"bucket {bucket} does not exist ({error_code(response)})", "pulumi up -s <central> creates it"
        )
    if response.status_code == 403:
        return fail(check, f"listing {bucket} is denied ({error_code(response)})", DENIED_HINT)
    return ok(check, f"bucket {bucket} exists")


def check_versioning(s3: S3, role: str, bucket: str) -> Result:
    check = f"objectstore.{role}.versioning"
    response = s3.get(bucket, {"versioning": ""}, ok=(200, 403, 404))
    if response.status_code != 200:
        return fail(check, f"GetBucketVersioning on {bucket}: {error_code(response)}", DENIED_HINT)
    status = xml(response).findtext("Status") or "never enabled"
    if status != "Enabled":
        return fail(
            check,
            f"versioning of {bucket} is {status}",
            "s3.versioning must be on (pulumi up -s <central>); MinIO needs erasure coding or a 2022+ single drive",
        )
    return ok(check, f"versioning of {bucket} is Enabled")


def lifecycle_problems(rules: list[ET.Element]) -> tuple[list[str], list[str]]:
    """(problems, noncurrent days of the enabled noncurrent-expiry rules)."""
    problems: list[str] = []
    noncurrent: list[str] = []
    for rule in rules:
        name = rule.findtext("ID") or "(no ID)"
        if rule.findtext("Status") != "Enabled":
            continue
        expiration = rule.find("Expiration")
        if expiration is not None and (expiration.findtext("Days") or expiration.findtext("Date")):
            problems.append(f"rule {name} expires current objects ({_text(expiration)})")
        days = rule.findtext("NoncurrentVersionExpiration/NoncurrentDays")
        if days:
            noncurrent.append(days)
    if len(noncurrent) != 1:
        problems.append(f"{len(noncurrent)} enabled rules with NoncurrentVersionExpiration, expected exactly one")
    return problems, noncurrent


def _text(element: ET.Element) -> str:
    return ", ".join(f"{child.tag} {child.text}" for child in element)


def check_lifecycle(s3: S3, role: str, bucket: str) -> Result:
    check = f"objectstore.{role}.lifecycle"
    response = s3.get(bucket, {"lifecycle": ""}, ok=(200, 403, 404))
    if response.status_code == 404:
        return fail(
            check, f"{bucket} has no lifecycle ({error_code(response)})", "pulumi up -s <central> sets the rule"
        )
    if response.status_code == 403:
        return fail(check, f"GetBucketLifecycleConfiguration on {bucket}: {error_code(response)}", DENIED_HINT)
    problems, days = lifecycle_problems(xml(response).findall("Rule"))
    if problems:
        return fail(
            check,
            f"{bucket}: " + "; ".join(problems),
            "the program's only rule is expire-noncurrent-<N>d; a rule expiring current objects corrupts snapshots "
            "and backups that share files: remove it (mc ilm rule rm) and run pulumi up -s <central>",
        )
    return ok(check, f"{bucket}: one rule, noncurrent versions expire after {days[0]} days, no current object expires")


def run(ctx: Context) -> list[Result]:
    checks = [f"objectstore.{role}.{aspect}" for role in BUCKET_ROLES for aspect in ASPECTS]
    if not ctx.outputs.central:
        return [role_skip(ctx, check) for check in checks]
    try:
        store = need(ctx.outputs.object_store, "objectStore")
        s3 = S3(ctx, store, need(ctx.outputs.verifier, "verifierCredentials"))
    except MissingOutput as exc:
        return [
            not_run(check, f"the stack output {exc.key} is missing or malformed (see the outputs check)")
            for check in checks
        ]
    results: list[Result] = []
    for role in BUCKET_ROLES:
        bucket = store.buckets[role]
        for aspect, body in (
            ("exists", check_exists),
            ("versioning", check_versioning),
            ("lifecycle", check_lifecycle),
        ):
            results += ctx.run(f"objectstore.{role}.{aspect}", functools.partial(body, s3, role, bucket))
    return results
