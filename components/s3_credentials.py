"""In-cluster S3 credentials: this cluster's MinIO users as Kubernetes Secrets.

Central takes its credentials straight from its `ObjectStorage`; an edge reads its own entry of
the central stack's `objectStoreCredentials` output (`components/central_stack.py`). Edges never see
MinIO admin credentials. Longhorn's Secret is created by
`components/longhorn.py` from `S3Credentials.longhorn`.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import MANAGED_BY, Component
from components.longhorn import BackupCredentials
from components.object_storage import (
    CA_FILE,
    CA_KEY,
    LONGHORN,
    OBJSTORE_KEY,
    OPENSEARCH,
    OPENSEARCH_KEYSTORE_SECRET,
    THANOS_COMPACTOR,
    THANOS_SIDECAR,
    THANOS_STORE,
    thanos_objstore_secret,
)
from components.settings import S3Settings

ClusterCredentials = dict[str, dict[str, str]]
"""{component: {"accessKey": ..., "secretKey": ...}} of one cluster."""

# Thanos Secret suffix (`thanos_objstore_secret(...)`) -> MinIO user component.
THANOS_USERS = {"sidecar": THANOS_SIDECAR, "store": THANOS_STORE, "compactor": THANOS_COMPACTOR}
CENTRAL_THANOS = ("store", "compactor")


class S3CredentialsArgs(TypedDict):
    monitoring_namespace: str
    """Namespace of the Thanos Secrets."""
    logging_namespace: str
    """Namespace of the OpenSearch keystore Secret."""
    central: bool
    """Central also gets the Store Gateway and Compactor Secrets."""
    s3: S3Settings
    """Endpoint, TLS, CA and bucket names written into the Secrets."""
    credentials: pulumi.Input[ClusterCredentials]
    """This cluster's MinIO users: central's own from `ObjectStorage`, an edge's from the central stack."""


def objstore_config(s3: S3Settings, access_key: str, secret_key: str) -> dict[str, Any]:
    """Thanos' S3 object-store config; the CA is read from where the Secret is mounted."""
    http_config: dict[str, Any] = {"tls_config": {"ca_file": CA_FILE}} if s3.ca_certificate else {}
    return {
        "type": "S3",
        "config": {
            "bucket": s3.buckets.thanos,
            "endpoint": s3.endpoint,
            # Set, so the client never needs GetBucketLocation (not in any policy).
            "region": s3.region,
            "insecure": not s3.use_tls,
            "access_key": access_key,
            "secret_key": secret_key,
            "http_config": http_config,
        },
    }


def thanos_secret_data(s3: S3Settings, access_key: str, secret_key: str) -> dict[str, str]:
    data = {OBJSTORE_KEY: yaml.safe_dump(objstore_config(s3, access_key, secret_key), sort_keys=False)}
    if s3.ca_certificate:
        data[CA_KEY] = s3.ca_certificate
    return data


class S3Credentials(Component):
    """This cluster's object-store Secrets: Thanos objstore configs and the OpenSearch keystore."""

    longhorn: BackupCredentials
    """Longhorn's access and secret key (secret), for `components/longhorn.py`."""
    secrets: list[k8s.core.v1.Secret]

    def __init__(self, name: str, args: S3CredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("objectstore:S3Credentials", name, opts)
        s3 = args["s3"]
        own: pulumi.Output[ClusterCredentials] = pulumi.Output.secret(args["credentials"])

        def key(component: str, field: str) -> pulumi.Output[str]:
            return own.apply(lambda entry: entry[component][field])

        self.longhorn = {"access_key": key(LONGHORN, "accessKey"), "secret_key": key(LONGHORN, "secretKey")}
        monitoring = args["monitoring_namespace"]
        thanos = ["sidecar", *(CENTRAL_THANOS if args["central"] else ())]
        self.secrets = [
            self._secret(
                thanos_objstore_secret(suffix),
                monitoring,
                pulumi.Output.all(key(THANOS_USERS[suffix], "accessKey"), key(THANOS_USERS[suffix], "secretKey")).apply(
                    lambda keys: thanos_secret_data(s3, keys[0], keys[1])
                ),
            )
            for suffix in thanos
        ]
        self.secrets.append(
            self._secret(
                OPENSEARCH_KEYSTORE_SECRET,
                args["logging_namespace"],
                {
                    "s3.client.default.access_key": key(OPENSEARCH, "accessKey"),
                    "s3.client.default.secret_key": key(OPENSEARCH, "secretKey"),
                },
            )
        )
        self.register_outputs({"secrets": [secret.metadata.name for secret in self.secrets]})

    def _secret(self, name: str, namespace: str, data: pulumi.Input[dict[str, Any]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=MANAGED_BY),
            type="Opaque",
            string_data=pulumi.Output.secret(data),
            opts=self.child(),
        )
