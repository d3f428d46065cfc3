"""A real S3-compatible server for the integration suite: moto's server mode, over TLS with our CA.

MinIO is AGPL, so it is neither built nor run; moto (Apache-2.0, pinned in
`tests/integration/requirements.txt`) stands in. `moto_server` serves TLS itself from a given
certificate and key (`--ssl-cert/--ssl-key`, Werkzeug's `ssl.SSLContext` on the listening
socket), so no wrapper of ours sits between a client and it.

    with S3Server("10.20.0.50", 9000, tls.cert, tls.key, log, prefix=host.command([])) as server:
        server.wait_ready(ca_file)
        admin = server.bootstrap_admin(ca_file)        # IAM enforcement is on from here
        issued = apply_object_storage(rendered("hub"), server, admin, ca_file)

`apply_object_storage` does to the server what the central stack's pulumi-minio resources do to
MinIO (buckets, versioning, lifecycle, users, policies, attachments), with inputs taken from an
offline rendering, and returns each user's credentials.

What moto's IAM enforcement does and does not cover is shown by `test_object_store.py`: it checks
SigV4 signatures, the action and the resource ARN of identity policies (prefix wildcards included);
it does not evaluate `Condition` blocks on S3 requests (`s3:prefix` is ignored), and it checks a
multi-object delete (`DeleteObjects`) against the bucket ARN, not each object's.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from components.object_storage import CENTRAL_ONLY, EVERY_CLUSTER, VERIFIER
from tools.engine import Rendering, Resource, unwrap

MOTO = "moto"
BUCKET = "minio:index/s3Bucket:S3Bucket"
VERSIONING = "minio:index/s3BucketVersioning:S3BucketVersioning"
LIFECYCLE = "minio:index/ilmPolicy:IlmPolicy"
USER = "minio:index/iamUser:IamUser"
POLICY = "minio:index/iamPolicy:IamPolicy"
ATTACHMENT = "minio:index/iamUserPolicyAttachment:IamUserPolicyAttachment"
PROVIDER = "pulumi:providers:minio"

ADMIN_USER = "minio-admin"
"""The bootstrap user standing in for MinIO's root credentials (`minioAdminUser`)."""
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
DEFAULT_REGION = "us-east-1"


def moto_version() -> str:
    return importlib.metadata.version(MOTO)


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret_key: str

    def as_output(self) -> dict[str, str]:
        """The shape of one entry of central's `objectStoreCredentials` output."""
        return {"accessKey": self.access_key, "secretKey": self.secret_key}


class ServerFailed(RuntimeError):
    """The server exited or never answered; the message ends with the tail of its log."""


@dataclass
class S3Server:
    """`moto_server` as a subprocess serving HTTPS with `cert`/`key` on `address:port`.

    `prefix` runs it elsewhere, e.g. `["ip", "netns", "exec", NAME]` (`Host.command([])`). Its
    output goes to `log` (kept after `stop`).
    """

    address: str
    port: int
    cert: Path
    key: Path
    log: Path
    prefix: Sequence[str] = ()
    region: str = DEFAULT_REGION
    """The region clients sign with (the MinIO provider's `minioRegion`)."""
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.endpoint}"

    def argv(self) -> list[str]:
        return [
            *self.prefix,
            self.python, "-m", "moto.server",
            "--host", self.address, "--port", str(self.port),
            "--ssl-cert", str(self.cert), "--ssl-key", str(self.key),
        ]  # fmt: skip

    def start(self) -> S3Server:
        if self.process is not None:
            raise RuntimeError("the S3 server is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        # IAM enforcement starts off (moto's default) until `bootstrap_admin` has made the admin.
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _fail(self, why: str) -> ServerFailed:
        return ServerFailed(f"{why}; last lines of {self.log}:\n{self.log_tail()}")

    def wait_ready(self, ca_file: Path, timeout: float = 30.0) -> None:
        """Until an HTTPS request verified against `ca_file` gets an answer (any status)."""
        if self.process is None:
            raise RuntimeError("start the S3 server first")
        context = ssl.create_default_context(cafile=str(ca_file))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._fail(f"moto_server exited with {self.process.returncode}")
            connection = http.client.HTTPSConnection(self.address, self.port, context=context, timeout=2)
            try:
                connection.request("GET", "/moto-api/reset-auth")  # answers 400 to a GET, changes nothing
                connection.getresponse().read()
                return
            except ssl.SSLCertVerificationError:
                raise
            except (OSError, http.client.HTTPException) as error:
                last = error
                time.sleep(0.2)
            finally:
                connection.close()
        raise self._fail(f"no answer from {self.url} within {timeout:.0f}s (last error: {last})")

    def _moto_api(self, ca_file: Path, path: str, body: str) -> dict[str, Any]:
        context = ssl.create_default_context(cafile=str(ca_file))
        connection = http.client.HTTPSConnection(self.address, self.port, context=context, timeout=10)
        try:
            connection.request("POST", path, body=body.encode())
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status != 200:
            raise self._fail(f"POST {path}: HTTP {response.status} {text}")
        answer: dict[str, Any] = json.loads(text)
        return answer

    def enforce_iam(self, ca_file: Path) -> None:
        """From the next request on, every request must be signed by an IAM user's key and allowed."""
        self._moto_api(ca_file, "/moto-api/reset-auth", "0")

    def bootstrap_admin(self, ca_file: Path) -> Credential:
        """An all-powerful IAM user (MinIO's root credentials), then IAM enforcement on."""
        iam = self.client("iam", Credential("bootstrap", "bootstrap"), ca_file)
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName=ADMIN_USER, PolicyDocument=json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self.enforce_iam(ca_file)
        return Credential(key["AccessKeyId"], key["SecretAccessKey"])

    def client(self, service: str, credential: Credential, verify: Path | str | bool) -> Any:
        """A boto3 client of this server: path-style addressing, signed with `region`."""
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        return boto3.session.Session().client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=credential.access_key,
            aws_secret_access_key=credential.secret_key,
            verify=str(verify) if isinstance(verify, Path) else verify,
            config=config,
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (moto_server exits 0 on it), SIGKILL after `timeout`; the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# --- what the central stack does to MinIO ------------------------------------------------------


@dataclass(frozen=True)
class ObjectStorePlan:
    """The pulumi-minio resources of a central rendering, as plain S3/IAM requests."""

    region: str
    endpoint: str
    buckets: dict[str, str | None]
    """Bucket -> canned ACL."""
    versioning: dict[str, str]
    """Bucket -> versioning status."""
    lifecycle: dict[str, list[dict[str, Any]]]
    """Bucket -> S3 lifecycle rules (PutBucketLifecycleConfiguration's `Rules`)."""
    users: list[str]
    policies: dict[str, str]
    """Policy name -> its JSON document, exactly as rendered."""
    attachments: list[tuple[str, str]]
    """(user, policy) pairs."""


def _inputs(resource: Resource, known: set[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = unwrap(resource.inputs)
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise ValueError(f"{resource.type} {resource.name}: no S3/IAM translation for input(s) {unknown}")
    return inputs


def lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One pulumi-minio `IlmPolicyRule` as an S3 lifecycle rule; inputs it cannot express are refused."""
    known = {"id", "status", "filter", "tags", "expiration", "noncurrentVersionExpirationDays"}
    unknown = sorted(set(rule) - known)
    if unknown:
        raise ValueError(f"ILM rule {rule.get('id')!r}: no S3 lifecycle translation for {unknown}")
    prefix = rule.get("filter") or ""
    tags = [{"Key": key, "Value": value} for key, value in sorted((rule.get("tags") or {}).items())]
    s3_rule: dict[str, Any] = {
        "ID": rule["id"],
        "Status": rule.get("status") or "Enabled",
        "Filter": {"And": {"Prefix": prefix, "Tags": tags}} if tags else {"Prefix": prefix},
    }
    expiration = rule.get("expiration")
    if expiration == "DeleteMarker":
        s3_rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    elif isinstance(expiration, str) and expiration.endswith("d"):
        s3_rule["Expiration"] = {"Days": int(expiration.removesuffix("d"))}
    elif expiration:
        s3_rule["Expiration"] = {"Date": expiration}
    if rule.get("noncurrentVersionExpirationDays") is not None:
        s3_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["noncurrentVersionExpirationDays"])}
    return s3_rule


def plan_of(rendering: Rendering) -> ObjectStorePlan:
    providers = rendering.of_type(PROVIDER)
    if len(providers) != 1:
        raise ValueError(f"{rendering.stack}: expected one MinIO provider, found {len(providers)}")
    provider = unwrap(providers[0].inputs)
    buckets = {
        inputs["bucket"]: inputs.get("acl")
        for inputs in (_inputs(r, {"bucket", "acl", "forceDestroy"}) for r in rendering.of_type(BUCKET))
    }
    versioning = {}
    for resource in rendering.of_type(VERSIONING):
        inputs = _inputs(resource, {"bucket", "versioningConfiguration"})
        configuration = dict(inputs["versioningConfiguration"])
        status = configuration.pop("status")
        if configuration:  # excludeFolders / excludedPrefixes: MinIO extensions S3 has no word for
            raise ValueError(f"{resource.name}: no S3 translation for {sorted(configuration)}")
        versioning[inputs["bucket"]] = status
    lifecycle = {
        inputs["bucket"]: [lifecycle_rule(rule) for rule in inputs["rules"]]
        for inputs in (_inputs(r, {"bucket", "rules"}) for r in rendering.of_type(LIFECYCLE))
    }
    users = [_inputs(r, {"name", "secret", "forceDestroy"})["name"] for r in rendering.of_type(USER)]
    policies = {
        inputs["name"]: inputs["policy"]
        for inputs in (_inputs(r, {"name", "policy"}) for r in rendering.of_type(POLICY))
    }
    attachments = [
        (inputs["userName"], inputs["policyName"])
        for inputs in (_inputs(r, {"userName", "policyName"}) for r in rendering.of_type(ATTACHMENT))
    ]
    return ObjectStorePlan(
        region=provider.get("minioRegion") or DEFAULT_REGION,
        endpoint=provider["minioServer"],
        buckets=buckets,
        versioning=versioning,
        lifecycle=lifecycle,
        users=users,
        policies=policies,
        attachments=attachments,
    )


def apply_object_storage(
    plan: ObjectStorePlan, server: S3Server, admin: Credential, ca_file: Path
) -> dict[str, Credential]:
    """Buckets, versioning, lifecycle, users with fresh access keys, policies and attachments, in
    the order the program's dependencies impose; returns {user name: credential}.

    MinIO's access key is the user name and its secret the program's random password; moto issues
    its own access key ids (`AKIA...`), so the keys returned here are moto's.
    """
    s3 = server.client("s3", admin, ca_file)
    iam = server.client("iam", admin, ca_file)
    for bucket, acl in plan.buckets.items():
        request: dict[str, Any] = {"Bucket": bucket}
        if acl:
            request["ACL"] = acl
        if plan.region != DEFAULT_REGION:
            request["CreateBucketConfiguration"] = {"LocationConstraint": plan.region}
        s3.create_bucket(**request)
    for bucket, status in plan.versioning.items():
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    for bucket, rules in plan.lifecycle.items():
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    credentials: dict[str, Credential] = {}
    for user in plan.users:
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        credentials[user] = Credential(key["AccessKeyId"], key["SecretAccessKey"])
    arns = {
        name: iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
        for name, document in plan.policies.items()
    }
    for user, policy in plan.attachments:
        iam.attach_user_policy(UserName=user, PolicyArn=arns[policy])
    return credentials


COMPONENTS = (*EVERY_CLUSTER, *CENTRAL_ONLY)


def by_cluster(credentials: Mapping[str, Credential]) -> dict[str, dict[str, dict[str, str]]]:
    """{user: credential} as central's `objectStoreCredentials` output: {cluster: {component: ...}}.

    Users are named `<cluster>-<component>`; the verifier (`<central>-verifier`) is left out, as
    the program exports it separately (`verifierCredentials`).
    """
    result: dict[str, dict[str, dict[str, str]]] = {}
    for user, credential in credentials.items():
        if user.endswith(f"-{VERIFIER}"):
            continue
        component = next((c for c in COMPONENTS if user.endswith(f"-{c}")), None)
        if component is None:
            raise ValueError(f"user {user!r} is not <cluster>-<component> for any of {COMPONENTS}")
        result.setdefault(user.removesuffix(f"-{component}"), {})[component] = credential.as_output()
    return result
