"""Fluent-bit: every container's log lines into the local OpenSearch, one index per day.

A DaemonSet tails `/var/log/containers/*.log` with the CRI parser (containerd writes CRI lines),
adds Kubernetes metadata and a `cluster` field, and ships to `logs-YYYY.MM.DD` over TLS, verified
against the platform CA, as the `fluent-bit` user. The password comes from a Secret into an
environment variable that the config references (`${OPENSEARCH_PASSWORD}`); it never appears in
the ConfigMap.

Nothing is lost when OpenSearch restarts or is down for a while: chunks are buffered on the
node's disk (`storage.type filesystem`, up to `fluentBitBufferLimit`) and retried with backoff,
and the tail offsets live in a database on the same hostPath, so a restarted Fluent-bit resumes
where it stopped instead of re-reading or skipping files.

The configuration is in the classic format, the chart's `config.*` sections: the chart still
renders them into `fluent-bit.conf` and starts Fluent Bit with `--config` pointing at it (the
image's own default became YAML in Fluent Bit 4).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.cluster_tls import CA_KEY, PLATFORM_CA_CONFIGMAP
from components.kube import Component, helm_release, resources
from components.kube_prometheus_stack import SELECTOR_LABELS
from components.opensearch_policies import LOG_INDEX_PREFIX
from components.settings import LoggingSettings

RELEASE = "fluent-bit"
POD_LABELS = {"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": RELEASE}
"""The chart's selector labels of the Fluent-bit pods."""
METRICS_PORT = 2020
STATE_DIR = "/var/fluent-bit/state"
"""Inside the pod: the hostPath with the tail database and the filesystem buffer."""
HOST_STATE_DIR = "/var/lib/fluent-bit"
CA_DIR = "/fluent-bit/tls"
"""Where the platform CA (ConfigMap `platform-ca`) is mounted."""
USER_ENV = "OPENSEARCH_USER"
PASSWORD_ENV = "OPENSEARCH_PASSWORD"


class OpenSearchTarget(TypedDict):
    host: str
    """In-cluster host of the OpenSearch REST API."""
    port: int
    """Its HTTPS port."""
    credentials_secret: str
    """Secret (same namespace) with `username` and `password`."""


class FluentBitArgs(TypedDict):
    namespace: str
    """Fluent-bit's own namespace: it reads the node's log files (hostPath), which holds its
    namespace to the `privileged` Pod Security level."""
    cluster_name: str
    """Value of the `cluster` field added to every record."""
    chart_version: str
    """Pinned fluent-bit chart version."""
    logging: LoggingSettings
    """Buffer size and retry limit."""
    opensearch: OpenSearchTarget
    """Where to ship, and with which credentials."""


def service_section() -> str:
    """`Health_Check On` backs the chart's readiness probe (`/api/v2/health`)."""
    return f"""[SERVICE]
    Daemon Off
    Flush 1
    Log_Level info
    Parsers_File /fluent-bit/etc/parsers.conf
    Parsers_File /fluent-bit/etc/conf/custom_parsers.conf
    HTTP_Server On
    HTTP_Listen 0.0.0.0
    HTTP_Port {METRICS_PORT}
    Health_Check On
    storage.path {STATE_DIR}/flb-storage/
    storage.sync normal
    storage.checksum off
    storage.max_chunks_up 32
    storage.backlog.mem_limit 16M
"""


def inputs_section() -> str:
    """Fluent-bit's own lines are excluded: they would feed back into the buffer while OpenSearch is down."""
    return f"""[INPUT]
    Name tail
    Tag kube.*
    Path /var/log/containers/*.log
    Exclude_Path /var/log/containers/{RELEASE}-*_*_{RELEASE}-*.log
    multiline.parser cri
    DB {STATE_DIR}/tail.db
    DB.locking true
    storage.type filesystem
    Skip_Long_Lines On
    Refresh_Interval 10
"""


def filters_section(cluster_name: str) -> str:
    return f"""[FILTER]
    Name kubernetes
    Match kube.*
    Merge_Log On
    Merge_Log_Key log_processed
    Keep_Log Off
    K8S-Logging.Parser On
    K8S-Logging.Exclude On
    Labels On
    Annotations Off

[FILTER]
    Name record_modifier
    Match *
    Record cluster {cluster_name}
"""


def outputs_section(target: OpenSearchTarget, logging: LoggingSettings) -> str:
    """TLS verified against the platform CA, for the Service name Fluent-bit dials (OpenSearch's
    certificate names it): Fluent-bit sends its credentials only to the real OpenSearch.
    `Suppress_Type_Name`: OpenSearch 2 and 3 reject the `_type` Fluent Bit sends otherwise.
    `Generate_ID`: a retried bulk request finds the documents it already wrote (OpenSearch answers
    409 to the `create`, which Fluent Bit counts as delivered) instead of writing them twice."""
    retry_limit = "no_limits" if logging.fluent_bit_retry_limit is None else str(logging.fluent_bit_retry_limit)
    return f"""[OUTPUT]
    Name opensearch
    Match kube.*
    Host {target["host"]}
    Port {target["port"]}
    HTTP_User ${{{USER_ENV}}}
    HTTP_Passwd ${{{PASSWORD_ENV}}}
    tls On
    tls.verify On
    tls.verify_hostname On
    tls.ca_file {CA_DIR}/{CA_KEY}
    Logstash_Format On
    Logstash_Prefix {LOG_INDEX_PREFIX}
    Logstash_DateFormat %Y.%m.%d
    Suppress_Type_Name On
    Replace_Dots On
    Generate_ID On
    Trace_Error On
    Buffer_Size 512KB
    Retry_Limit {retry_limit}
    storage.total_limit_size {logging.fluent_bit_buffer_limit}
"""


def fluent_bit_values(args: FluentBitArgs) -> dict[str, Any]:
    secret = args["opensearch"]["credentials_secret"]
    return {
        "kind": "DaemonSet",
        "image": {
            "pullPolicy": "IfNotPresent",
            **versions.chart_image(versions.FLUENT_BIT_IMAGE, "digest", prefixed=True),
        },
        "testFramework": {"enabled": False},
        # Scraped by the cluster's Prometheus (its serviceMonitorSelector matches the release label).
        "serviceMonitor": {"enabled": True, "selector": SELECTOR_LABELS},
        "resources": resources(cpu="50m", memory="64Mi", memory_limit="256Mi"),
        "env": [
            {"name": USER_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
            {"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        ],
        "config": {
            "service": service_section(),
            "inputs": inputs_section(),
            "filters": filters_section(args["cluster_name"]),
            "outputs": outputs_section(args["opensearch"], args["logging"]),
        },
        # containerd keeps logs under /var/log/pods (linked from /var/log/containers); no Docker paths.
        "daemonSetVolumes": [
            {"name": "varlog", "hostPath": {"path": "/var/log"}},
            {"name": "state", "hostPath": {"path": HOST_STATE_DIR, "type": "DirectoryOrCreate"}},
            {"name": "platform-ca", "configMap": {"name": PLATFORM_CA_CONFIGMAP}},
        ],
        "daemonSetVolumeMounts": [
            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "platform-ca", "mountPath": CA_DIR, "readOnly": True},
        ],
        # Root (the node's log files are root's) without capabilities or a writable image.
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }


class FluentBit(Component):
    """The fluent-bit Helm release.

    Its options wait for what the first log line needs: the credentials, the OpenSearch user behind
    them, and the index template and ISM policy (applied only to indices created after them).
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: FluentBitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("logging:FluentBit", name, opts)
        self.release = helm_release(
            RELEASE,
            versions.FLUENT_BIT,
            args["chart_version"],
            namespace=args["namespace"],
            values=fluent_bit_values(args),
            opts=self.child(),
        )
        self.register_outputs({"release": self.release.name})
