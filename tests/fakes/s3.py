"""MinIO's S3 API for three read calls (ListObjectsV2, GetBucketVersioning, GetBucketLifecycleConfiguration),
refusing any request whose AWS Signature Version 4 does not verify."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from tests.fakes.server import Reply, Request
from tools.verify.objectstore import EMPTY_SHA256, signature

ACCESS_KEY = "verifier"
SECRET_KEY = "verifier-secret-key"
REGION = "us-east-1"
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)
NONCURRENT_RULE = (
    "<Rule><ID>expire-noncurrent-7d</ID><Status>Enabled</Status><Filter></Filter>"
    "<NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays></NoncurrentVersionExpiration></Rule>"
)
EXPIRE_CURRENT_RULE = (
    "<Rule><ID>expire-all-30d</ID><Status>Enabled</Status><Filter></Filter>"
    "<Expiration><Days>30</Days></Expiration></Rule>"
)


def lifecycle(*rules: str) -> str:
    body = "".join(rules)
    return f'<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="{NS}">{body}</LifecycleConfiguration>'


@dataclass
class Bucket:
    versioning: str | None = "Enabled"
    lifecycle: str | None = field(default_factory=lambda: lifecycle(NONCURRENT_RULE))
    denied: bool = False


def _error(code: str, status: int) -> Reply:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
    return Reply(status, body.encode(), "application/xml")


def _xml(body: str) -> Reply:
    return Reply(200, body.encode(), "application/xml")


@dataclass
class FakeS3:
    host: str = ""
    buckets: dict[str, Bucket] = field(
        default_factory=lambda: {name: Bucket() for name in ("thanos", "opensearch-logs", "longhorn-backups")}
    )

    def handle(self, request: Request) -> Reply:
        if not self._signed(request):
            return _error("SignatureDoesNotMatch", 403)
        bucket = self.buckets.get(request.path.strip("/"))
        if request.method != "GET":
            return _error("AccessDenied", 403)
        if bucket is None:
            return _error("NoSuchBucket", 404)
        if bucket.denied:
            return _error("AccessDenied", 403)
        if "versioning" in request.query:
            status = f"<Status>{bucket.versioning}</Status>" if bucket.versioning else ""
            return _xml(f'<VersioningConfiguration xmlns="{NS}">{status}</VersioningConfiguration>')
        if "lifecycle" in request.query:
            return _xml(bucket.lifecycle) if bucket.lifecycle else _error("NoSuchLifecycleConfiguration", 404)
        if request.query.get("list-type") == "2":
            name = request.path.strip("/")
            return _xml(f'<ListBucketResult xmlns="{NS}"><Name>{name}</Name><KeyCount>0</KeyCount></ListBucketResult>')
        return _error("NotImplemented", 501)

    def _signed(self, request: Request) -> bool:
        """Recompute the signature from what arrived: the request as the server sees it."""
        match = AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
        if not match or match.group(1) != ACCESS_KEY or match.group(3) != REGION:
            return False
        when = dt.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        signed = match.group(4).split(";")
        _, expected = signature(
            method=request.method,
            path=request.path,
            params=request.query,
            headers={name: request.headers[name] for name in signed},
            payload_hash=request.headers.get("x-amz-content-sha256", EMPTY_SHA256),
            secret_key=SECRET_KEY,
            region=REGION,
            service="s3",
            when=when,
        )
        return expected == match.group(5) and "host" in signed
