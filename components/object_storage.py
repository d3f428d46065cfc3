"""Object storage: MinIO buckets, lifecycle and per-cluster credentials.

The central stack owns the buckets and issues one MinIO user per cluster and component, each
with a policy scoped to one bucket (and, for OpenSearch and Longhorn, to the cluster's prefix).
Every cluster turns its own credentials into in-cluster Secrets (`components/s3_credentials.py`);
the names below are the contract between those Secrets and the components that mount them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

import pulumi
import pulumi_minio as minio
import pulumi_random as random

from components.ca_file import ca_file
from components.kube import Component
from components.settings import S3Settings

OBJSTORE_KEY = "objstore.yml"
"""Key of the Thanos object-store config inside each Thanos Secret."""

OPENSEARCH_KEYSTORE_SECRET = "opensearch-s3-keystore"
"""Secret in `logging` with keys `s3.client.default.access_key` and `s3.client.default.secret_key`, loaded
into OpenSearch's keystore (OpenSearch rejects keys in repository settings as insecure)."""

CA_KEY = "ca.crt"
"""Key of MinIO's CA certificate inside each Thanos Secret (present only when `s3.caCertificate` is set)."""

OBJSTORE_MOUNT_DIR = "/etc/thanos/objstore"
"""Where Thanos components mount their objstore Secret; `objstore.yml` points its `ca_file` here."""

CA_FILE = f"{OBJSTORE_MOUNT_DIR}/{CA_KEY}"

CREDENTIALS_OUTPUT = "objectStoreCredentials"
VERIFIER = "verifier"
"""The read-only MinIO user of `python -m tools.verify` (central's output `verifierCredentials`)."""
"""Central's secret stack output: {cluster: {component: {accessKey, secretKey}}}; edges read it."""

# MinIO users, one per cluster and component: `<cluster>-<component>`.
THANOS_SIDECAR = "thanos-sidecar"
THANOS_STORE = "thanos-store"
THANOS_COMPACTOR = "thanos-compactor"
OPENSEARCH = "opensearch"
LONGHORN = "longhorn"
EVERY_CLUSTER = (THANOS_SIDECAR, OPENSEARCH, LONGHORN)
CENTRAL_ONLY = (THANOS_STORE, THANOS_COMPACTOR)


def thanos_objstore_secret(component: str) -> str:
    """Secret in `monitoring` holding `objstore.yml` for a Thanos component: sidecar, store, compactor."""
    return f"thanos-objstore-{component}"


# --- IAM policies ------------------------------------------------------------------------


def bucket_arn(bucket: str, path: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if path is None else f"arn:aws:s3:::{bucket}/{path}"


def _allow(actions: list[str], resource: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": actions, "Resource": [resource]}
    if condition:
        statement["Condition"] = condition
    return statement


def _whole_bucket(bucket: str, object_actions: list[str]) -> list[dict[str, Any]]:
    return [_allow(["s3:ListBucket"], bucket_arn(bucket)), _allow(object_actions, bucket_arn(bucket, "*"))]


def _cluster_prefix(bucket: str, cluster: str) -> list[dict[str, Any]]:
    # ListBucket is a bucket-level action: only the `s3:prefix` condition keeps a cluster from
    # listing the other clusters' snapshots or backups.
    return [
        _allow(["s3:ListBucket"], bucket_arn(bucket), {"StringLike": {"s3:prefix": [f"{cluster}/*"]}}),
        _allow(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], bucket_arn(bucket, f"{cluster}/*")),
    ]


def policy_document(component: str, cluster: str, s3: S3Settings) -> dict[str, Any]:
    """The least-privilege IAM policy of one component of one cluster."""
    buckets = s3.buckets
    match component:
        case "thanos-sidecar":
            statements = _whole_bucket(buckets.thanos, ["s3:GetObject", "s3:PutObject"])
        case "thanos-store":
            statements = _whole_bucket(buckets.thanos, ["s3:GetObject"])
        case "thanos-compactor":
            # The Compactor alone deletes blocks (retention, compaction, downsampling).
            statements = _whole_bucket(buckets.thanos, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
        case "opensearch":
            statements = _cluster_prefix(buckets.opensearch, cluster)
        case "longhorn":
            statements = _cluster_prefix(buckets.longhorn, cluster)
        case _:
            raise ValueError(f"no object-store policy for component {component!r}")
    return {"Version": "2012-10-17", "Statement": statements}


def verifier_policy(s3: S3Settings) -> dict[str, Any]:
    """`verify`'s user: that each bucket exists and how it is configured, never an object's content."""
    buckets = (s3.buckets.thanos, s3.buckets.opensearch, s3.buckets.longhorn)
    actions = ["s3:ListBucket", "s3:GetBucketVersioning", "s3:GetLifecycleConfiguration"]
    return {"Version": "2012-10-17", "Statement": [_allow(actions, bucket_arn(bucket)) for bucket in buckets]}


def components_of(cluster: str, central: str) -> tuple[str, ...]:
    """The components that get a MinIO user in `cluster`; Store Gateway and Compactor run on central."""
    return EVERY_CLUSTER + CENTRAL_ONLY if cluster == central else EVERY_CLUSTER


# --- lifecycle ---------------------------------------------------------------------------


def noncurrent_expiry_rule(days: int) -> minio.IlmPolicyRuleArgs:
    """Purge versions `days` after they stopped being current: a bounded undo window.

    Deliberately no `expiration`: current objects are never expired by age (Thanos blocks, snapshots
    and backups share files, so that would corrupt newer ones); retention is done by the Compactor,
    Snapshot Management and Longhorn's RecurringJob.
    """
    return minio.IlmPolicyRuleArgs(id=f"expire-noncurrent-{days}d", noncurrent_version_expiration_days=days)


# --- provider ----------------------------------------------------------------------------


def minio_ca_file(pem: str, cache_dir: Path | None = None) -> str:
    """A file holding `pem`: the MinIO provider only takes its CA as a path (`minio_cacert_file`)."""
    return ca_file(pem, "minio-ca", cache_dir)


# --- component ---------------------------------------------------------------------------


class ObjectStorageArgs(TypedDict):
    cluster_name: str
    """The central cluster: it gets the Store Gateway and Compactor users too."""
    edges: list[str]
    """Edge cluster names; each gets its own sidecar, OpenSearch and Longhorn users."""
    s3: S3Settings
    """Endpoint, TLS, buckets, versioning and lifecycle of the MinIO."""
    admin_user: pulumi.Input[str] | None
    """MinIO admin access key (secret config; settings require it on central)."""
    admin_password: pulumi.Input[str] | None
    """MinIO admin secret key (secret config; settings require it on central)."""


Credentials = dict[str, dict[str, dict[str, str]]]
"""{cluster: {component: {"accessKey": ..., "secretKey": ...}}}"""


class ObjectStorage(Component):
    """Central only: buckets with versioning and a noncurrent-only lifecycle, and every cluster's users.

    `protect` (in the options) protects the buckets against `pulumi destroy`; they are also
    retained on delete, so even an unprotected removal leaves them and their data in MinIO.
    The component talks to MinIO through its own provider, built from the admin credentials.
    """

    credentials: pulumi.Output[Credentials]
    """Secret: {cluster: {component: {accessKey, secretKey}}}, available once each user has its policy."""
    verifier_credentials: pulumi.Output[dict[str, str]]
    """Secret: {accessKey, secretKey} of the read-only user `python -m tools.verify` checks the buckets as."""

    def __init__(self, name: str, args: ObjectStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("objectstore:ObjectStorage", name, opts)
        s3 = args["s3"]
        if args["admin_user"] is None or args["admin_password"] is None:
            raise ValueError("ObjectStorage needs the MinIO admin credentials (minioAdminUser, minioAdminPassword)")
        provider = minio.Provider(
            f"{name}-minio",
            minio_server=s3.endpoint,
            minio_region=s3.region,
            minio_user=args["admin_user"],
            minio_password=args["admin_password"],
            minio_ssl=s3.use_tls,
            minio_insecure=False,  # verified against the public CAs or `s3.caCertificate`
            minio_cacert_file=minio_ca_file(s3.ca_certificate) if s3.ca_certificate else None,
            opts=self.child(),
        )
        self._minio = provider
        for bucket in (s3.buckets.thanos, s3.buckets.opensearch, s3.buckets.longhorn):
            self._bucket(bucket, s3)
        clusters = [args["cluster_name"], *args["edges"]]
        issued = {
            cluster: {
                component: self._user(f"{cluster}-{component}", policy_document(component, cluster, s3))
                for component in components_of(cluster, args["cluster_name"])
            }
            for cluster in clusters
        }
        # from_input resolves the nested Outputs; its stub cannot say so.
        self.credentials = pulumi.Output.secret(pulumi.Output.from_input(cast("pulumi.Input[Credentials]", issued)))
        verifier = self._user(f"{args['cluster_name']}-{VERIFIER}", verifier_policy(s3))
        self.verifier_credentials = pulumi.Output.secret(pulumi.Output.all(**verifier))
        self.register_outputs({"credentials": self.credentials})

    def _on_minio(self, *depends_on: pulumi.Resource, stateful: bool = False, **options: Any) -> pulumi.ResourceOptions:
        return self.child(*depends_on, stateful=stateful, provider=self._minio, **options)

    def _bucket(self, bucket: str, s3: S3Settings) -> None:
        created = minio.S3Bucket(
            bucket,
            bucket=bucket,
            acl="private",
            opts=self._on_minio(stateful=True, retain_on_delete=True),
        )
        lifecycle_after: list[pulumi.Resource] = [created]
        if s3.versioning:
            lifecycle_after.append(
                minio.S3BucketVersioning(
                    f"{bucket}-versioning",
                    bucket=created.bucket,
                    versioning_configuration=minio.S3BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                    opts=self._on_minio(),
                )
            )
        # Kept even without versioning: it purges what an earlier versioned period left behind.
        minio.IlmPolicy(
            f"{bucket}-lifecycle",
            bucket=created.bucket,
            rules=[noncurrent_expiry_rule(s3.noncurrent_version_expiry_days)],
            opts=self._on_minio(*lifecycle_after),
        )

    def _user(self, user: str, policy: dict[str, Any]) -> dict[str, pulumi.Output[str]]:
        # 40 alphanumerics: MinIO's longest generated secret, and nothing to escape in YAML or URLs.
        password = random.RandomPassword(f"{user}-secret-key", length=40, special=False, opts=self.child())
        created = minio.IamUser(user, name=user, secret=password.result, opts=self._on_minio())
        policy_resource = minio.IamPolicy(f"{user}-policy", name=user, policy=json.dumps(policy), opts=self._on_minio())
        attachment = minio.IamUserPolicyAttachment(
            f"{user}-policy-attachment",
            user_name=created.name,
            policy_name=policy_resource.name,
            opts=self._on_minio(),
        )
        # The access key comes from the attachment, so consumers only see users that have their policy.
        return {"accessKey": attachment.user_name, "secretKey": pulumi.Output.secret(password.result)}
