"""Object storage: MinIO buckets, lifecycle and per-cluster credentials (DESIGN C10-C12).

The names below are the contract between this module and the components that consume the
in-cluster Secrets it creates; they exist before the rest of the module does.
"""

from __future__ import annotations

OBJSTORE_KEY = "objstore.yml"
"""Key of the Thanos object-store config inside each Thanos Secret."""

OPENSEARCH_KEYSTORE_SECRET = "opensearch-s3-keystore"
"""Secret in `logging` with keys `s3.client.default.access_key` and `s3.client.default.secret_key` (C8)."""


def thanos_objstore_secret(component: str) -> str:
    """Secret in `monitoring` holding `objstore.yml` for a Thanos component: sidecar, store, compactor."""
    return f"thanos-objstore-{component}"
