"""The OpenSearch objects the program manages, as the JSON bodies the REST API takes.

Pure functions of the settings, so the tests can read them like the specification:
- the snapshot repository holds only `{bucket, base_path, client}` and its S3 client type; endpoint and TLS are client
  settings in `opensearch.yml`, the keys live in the keystore (OpenSearch rejects keys in repository
  settings as insecure);
- ISM deletes `logs-*` indices after `retentionDays` and the security plugin's audit indices after
  `auditRetentionDays`, attached through `ism_template` (the index setting that used to attach it is
  deprecated);
- Snapshot Management snapshots `logs-*` daily and deletes snapshots by age with a `min_count`;
  snapshots share files, so a bucket lifecycle rule expiring them by age would corrupt newer ones;
- the index template maps the fields Fluent-bit sends;
- the Fluent-bit user may create and write `logs-*` indices and nothing else.
"""

from __future__ import annotations

from typing import Any

from components.settings import LoggingSettings

LOG_INDEX_PREFIX = "logs"
LOG_INDEX_PATTERN = f"{LOG_INDEX_PREFIX}-*"
ISM_POLICY = "logs-retention"
AUDIT_INDEX_PATTERN = "security-auditlog-*"
AUDIT_ISM_POLICY = "audit-retention"
SNAPSHOT_POLICY = "logs-daily"
INDEX_TEMPLATE = "logs"
WRITER_ROLE = "logs_writer"
WRITER_USER = "fluent-bit"
# Above the priority of any template a plugin might install for `*`.
TEMPLATE_PRIORITY = 100


ASYNC_CLIENT = "netty"
"""repository-s3's asynchronous S3 client. OpenSearch 3's default, AWS CRT, trusts only the operating
system's CA bundle, so with a private MinIO CA (given to the JVM's truststore) repository verification
and snapshot deletion fail (OpenSearch issues 20501, 21855); Netty's client uses the JVM's truststore."""


SHARD_PATH_TYPE = "fixed"
"""Where a repository puts shard files. OpenSearch 3.6's default, `hashed_prefix`, writes them under
`<hash>/<base_path>/...`, outside `<base_path>/`, which is all a cluster's MinIO user may write: every
snapshot would end PARTIAL (seen with the real repository-s3 3.6.0). `fixed` keeps them under it."""


def snapshot_repository(bucket: str, cluster_name: str) -> dict[str, Any]:
    """`PUT _snapshot/<name>`: no endpoint and no keys here; OpenSearch rejects keys as insecure."""
    settings = {
        "bucket": bucket,
        "base_path": cluster_name,
        "client": "default",
        "s3_async_client_type": ASYNC_CLIENT,
        "shard_path_type": SHARD_PATH_TYPE,
    }
    return {"type": "s3", "settings": settings}


def ism_policy(logging: LoggingSettings) -> dict[str, Any]:
    """`PUT _plugins/_ism/policies/<id>` (`policy` content): keep `logs-*` for `retentionDays`, then delete."""
    return retention_policy(LOG_INDEX_PATTERN, logging.retention_days)


def audit_ism_policy(logging: LoggingSettings) -> dict[str, Any]:
    """The security plugin's daily audit indices (`security-auditlog-YYYY.MM.dd`), kept `auditRetentionDays`:
    the plugin never deletes them itself, so without this they would fill the volume."""
    return retention_policy(AUDIT_INDEX_PATTERN, logging.audit_retention_days)


def retention_policy(pattern: str, days: int) -> dict[str, Any]:
    """Delete indices matching `pattern` `days` after their creation.

    `ism_template` attaches the policy to every new matching index (the index setting that used to attach
    it is deprecated); it does not touch indices that existed before the policy.
    """
    age = f"{days}d"
    return {
        "description": f"Delete {pattern} indices {age} after creation",
        "default_state": "hot",
        "states": [
            {
                "name": "hot",
                "actions": [],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": age}}],
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [pattern], "priority": TEMPLATE_PRIORITY}],
    }


def snapshot_policy(logging: LoggingSettings) -> dict[str, Any]:
    """`POST _plugins/_sm/policies/<name>`: a daily snapshot of `logs-*`, deleted by age.

    Snapshots are incremental and share files, so only Snapshot Management may delete them, never a
    bucket lifecycle rule. `min_count` keeps the newest snapshots even when they are older than
    `max_age` (a cluster that stopped logging keeps its last copies).
    """
    cron = {"timezone": logging.snapshot_timezone}
    return {
        "description": f"Daily snapshot of {LOG_INDEX_PATTERN}, kept {logging.snapshot_retention}",
        "enabled": True,
        "creation": {
            "schedule": {"cron": {"expression": logging.snapshot_schedule, **cron}},
            "time_limit": "1h",
        },
        "deletion": {
            "schedule": {"cron": {"expression": logging.snapshot_deletion_schedule, **cron}},
            "condition": {"max_age": logging.snapshot_retention, "min_count": logging.snapshot_min_count},
            "time_limit": "1h",
        },
        "snapshot_config": {
            "repository": logging.repository_name,
            "indices": LOG_INDEX_PATTERN,
            "date_format": "yyyy.MM.dd-HH.mm",
            "date_format_timezone": logging.snapshot_timezone,
            "include_global_state": False,
            "ignore_unavailable": True,
            "partial": False,
        },
    }


def index_template(index_replicas: int) -> dict[str, Any]:
    """`PUT _index_template/<name>` for the daily `logs-*` indices Fluent-bit writes.

    Settings are written in the nested form OpenSearch returns (`index.number_of_shards`), so the
    provider's drift check compares like with like. Pod labels and the JSON a container logged
    (Fluent-bit's `Merge_Log_Key`) are `flat_object`s: thousands of distinct keys cannot blow up
    the mapping, and one app logging `level: 3` cannot break another's `level: "info"`.
    """
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [LOG_INDEX_PATTERN],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": {"index": {"number_of_shards": 1, "number_of_replicas": index_replicas}},
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "time": {"type": "date"},
                    "log": {"type": "text"},
                    "log_processed": {"type": "flat_object"},
                    "stream": keyword,
                    "cluster": keyword,
                    "kubernetes": {
                        "properties": {
                            "namespace_name": keyword,
                            "pod_name": keyword,
                            "pod_id": keyword,
                            "container_name": keyword,
                            "container_image": keyword,
                            "container_hash": keyword,
                            "docker_id": keyword,
                            "host": keyword,
                            "labels": {"type": "flat_object"},
                            "annotations": {"type": "flat_object"},
                        }
                    },
                }
            },
        },
    }


def writer_role() -> dict[str, Any]:
    """`PUT _plugins/_security/api/roles/<name>`: create and write `logs-*` indices, nothing else."""
    return {
        "cluster_permissions": ["cluster_monitor", "cluster_composite_ops"],
        "index_permissions": [{"index_patterns": [LOG_INDEX_PATTERN], "allowed_actions": ["create_index", "write"]}],
    }


def role_mapping(user: str) -> dict[str, Any]:
    """`PUT _plugins/_security/api/rolesmapping/<role>`."""
    return {"users": [user], "backend_roles": [], "hosts": []}
