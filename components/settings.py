"""Every stack config key, read and validated in one place before any resource is declared.

Config lives under the project namespace (`thanos-multi-cluster:<key>`), plain values in
`Pulumi.<stack>.yaml`, secrets set by the operator with `pulumi config set --secret`.
A bad value ends the program with one `pulumi.RunError` line that names the key, says what was
wrong and what is accepted; no component ever sees unvalidated config.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import itertools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pulumi
from cryptography import x509
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components import versions

PROJECT = "thanos-multi-cluster"


class SettingsError(pulumi.RunError):
    """Raised for invalid stack config; the CLI prints the message without a traceback."""


# --- value types -------------------------------------------------------------------------

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w|y)$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_QUANTITY = re.compile(r"^\d+(\.\d+)?(Mi|Gi|Ti)$")
_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_IMAGE_TAG = re.compile(r"^v\d+\.\d+\.\d+$")
_CRON = re.compile(r"^(\S+\s+){4}\S+$")


def _host(value: str) -> str:
    """An IPv4/IPv6 address or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", value) or not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not an IP address or a DNS host name (e.g. 192.168.101.196)")
    return value


def _host_port(value: str) -> str:
    """`host:port` without a scheme, as S3 clients want their endpoint."""
    if "://" in value:
        raise ValueError(f"{value!r} must be host:port without a scheme (TLS is set by `useTls`)")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} must be host:port with a port 1-65535 (e.g. 172.20.40.21:30001)")
    _host(host)
    return value


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} must be a lower-case DNS label (a-z, 0-9, '-'; at most 63)")
    return value


def _domain(value: str) -> str:
    if "." not in value or not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} must be a DNS domain such as mkube-196.miribit.lab")
    return value


SUPPORTED_KUBERNETES_MINORS = range(35, 37)
"""Kubernetes minors still supported upstream that minikube, the charts and our checks all know."""


def _kubernetes_version(value: str) -> str:
    match = re.fullmatch(r"v1\.(\d+)\.(\d+)", value)
    if not match:
        raise ValueError(f"{value!r} must look like {versions.KUBERNETES}")
    if int(match.group(1)) not in SUPPORTED_KUBERNETES_MINORS:
        first, last = SUPPORTED_KUBERNETES_MINORS[0], SUPPORTED_KUBERNETES_MINORS[-1]
        raise ValueError(
            f"{value!r} is outside the supported range v1.{first} - v1.{last} (older releases are end of life)"
        )
    return value


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} must be a duration such as 6h, 30d or 1y (units s m h d w y)")
    return value


def duration_seconds(value: str) -> int:
    """Seconds in a Prometheus-style duration (`24h`, `30d`)."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} must be a Kubernetes size such as 512Mi or 20Gi")
    return value


def _chart_version(value: str) -> str:
    if not _CHART_VERSION.match(value):
        raise ValueError(f"{value!r} must be an exact chart version such as 1.5.3 (no ranges)")
    return value


def _image_tag(value: str) -> str:
    if not _IMAGE_TAG.match(value):
        raise ValueError(f"{value!r} must be an exact image tag such as v0.32.5")
    return value


def _storage_class_name(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} must be a StorageClass name (lower-case DNS subdomain)")
    return value


def _cron(value: str) -> str:
    if not _CRON.match(value):
        raise ValueError(f"{value!r} must be a five-field cron expression such as '0 2 * * *'")
    return value


_SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def _ssh_host_key(value: str) -> str:
    """`<type> <base64>[ comment]`, what Go's `ssh.ParseAuthorizedKey` (pulumi-command) reads."""
    parts = value.split()
    if len(parts) >= 3 and parts[1] in _SSH_KEY_TYPES:
        raise ValueError("drop the host name in front: keep `<type> <base64>` of the ssh-keyscan line")
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        raise ValueError(f"must be `<type> <base64>` with a type of {sorted(_SSH_KEY_TYPES)}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("the key after the type is not base64") from None
    if not blob[4:].startswith(parts[0].encode()):
        raise ValueError(f"the key is not of type {parts[0]}")
    return f"{parts[0]} {parts[1]}"


def _kubelet_settings(value: dict[str, str]) -> dict[str, str]:
    for key, setting in value.items():
        if key == "node-ip":
            # NetworkPolicies and the peer clusters know the node by the configured IP.
            raise ValueError("node-ip is always the host's IP (`address`, or `host` when it is an IP); remove it")
        if any(character.isspace() for character in f"{key}{setting}"):
            raise ValueError(f"{key}={setting!r} holds whitespace, which a kubelet flag cannot")
    return value


Host = Annotated[str, AfterValidator(_host)]
HostPort = Annotated[str, AfterValidator(_host_port)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Domain = Annotated[str, AfterValidator(_domain)]
Duration = Annotated[str, AfterValidator(_duration)]
Quantity = Annotated[str, AfterValidator(_quantity)]
ChartVersion = Annotated[str, AfterValidator(_chart_version)]
ImageTag = Annotated[str, AfterValidator(_image_tag)]
Cron = Annotated[str, AfterValidator(_cron)]


class _Model(BaseModel):
    """Config objects: camelCase keys as in the stack file, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


# --- sections ----------------------------------------------------------------------------


class Role(StrEnum):
    CENTRAL = "central"
    EDGE = "edge"


class MinikubeSettings(_Model):
    """How the Minikube node is reached and started."""

    mode: Literal["ssh", "local"] = "ssh"
    """`ssh`: remote.Command to the host; `local`: Pulumi runs on the host itself."""
    ssh_user: str = "root"
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_host_key: Annotated[str, AfterValidator(_ssh_host_key)] | None = None
    """The host's SSH public key (`<type> <base64>`, as `ssh-keyscan` prints it without the host name):
    pulumi-command then refuses any other key. Unset, it accepts whatever key answers, so a man in the
    middle gets a root session; every preview says so."""
    driver: Literal["none", "docker", "kvm2", "qemu2", "podman", "virtualbox"] = "none"
    """`none` puts ingress, NodePort 30901 and the wildcard DNS on the host's own address; the docker driver
    hides the node on a bridge that other hosts cannot reach."""
    container_runtime: Literal["containerd"] = "containerd"
    """Fluent-bit parses the CRI log format; only containerd is supported."""
    kubernetes_version: Annotated[str, AfterValidator(_kubernetes_version)] = versions.KUBERNETES
    cni: Literal["calico", "cilium"] = "calico"
    """Only CNIs that enforce NetworkPolicy: kindnet/bridge would make every policy decoration."""
    disk_size: Annotated[str, Field(pattern=r"^\d+[mg]$")] = "100g"
    extra_kubelet_config: Annotated[dict[str, str], AfterValidator(_kubelet_settings)] = Field(
        default_factory=lambda: {"max-pods": "110"}
    )
    """Kubelet settings passed as `--extra-config=kubelet.<key>=<value>`; `node-ip` is always the host's IP."""
    minimum_minikube_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = versions.MINIKUBE_MINIMUM

    @property
    def minimum_containerd_version(self) -> str:
        """The oldest containerd the kubelet of `kubernetes_version` supports: Kubernetes 1.36 dropped
        containerd 1.x (1.35 is the last minor that takes 1.7). Debian 12 ships 1.6, Ubuntu 24.04 1.7."""
        minor = int(self.kubernetes_version.split(".")[1])
        return "2.0.0" if minor >= 36 else "1.7.0"


class NodeCapacity(_Model):
    """What the node offers; the capacity check sizes every workload against it."""

    cpus: float = Field(4, gt=0)
    memory_gib: float = Field(16, gt=0)
    reserved_cpus: float = Field(1.0, ge=0)
    """The system pods' CPU requests: kubeadm's control plane (kube-apiserver 250m, controller-manager
    200m, scheduler 100m, etcd 100m), CoreDNS 100m and calico-node 250m. Longhorn's instance manager
    is the platform's and counted with it."""
    reserved_memory_gib: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _reserve_fits(self) -> NodeCapacity:
        if self.reserved_cpus >= self.cpus or self.reserved_memory_gib >= self.memory_gib:
            raise ValueError("the system reserve must be smaller than the node capacity")
        return self


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


IpAddress = Annotated[str, AfterValidator(_ip)]


def host_cidr(address: str) -> str:
    """A /32 (or /128) for an IP address, or an address block as it is; a DNS name cannot be a
    NetworkPolicy peer."""
    if "/" in address:
        return str(ipaddress.ip_network(address, strict=True))
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def _address_or_block(value: str) -> str:
    try:
        host_cidr(value)
    except ValueError:
        raise ValueError(f"{value!r} must be an IP address or an address block such as 10.30.0.0/24") from None
    return value


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


class EdgeCluster(_Model):
    """An edge cluster as central sees it: its stack name, host address and wildcard DNS domain."""

    name: DnsLabel
    host: Host
    """The edge's host; for an edge on an existing cluster, the address its sidecar StoreAPI answers at
    (its LoadBalancer Service's, or a node's for NodePort)."""
    domain: Domain
    """The edge's own `domain`: central's CA issues the edge's `*.<domain>` ingress certificate."""
    address: IpAddress | None = None
    """The host's IP when `host` is a DNS name: Thanos Query's NetworkPolicy allows it by address."""
    sidecar_port: int = Field(30901, ge=1, le=65535)
    """Where the edge's sidecar StoreAPI answers on `host`: NodePort 30901 (Minikube, `ingress.serviceType`
    hostPort or NodePort), or 10901 behind the edge's LoadBalancer Service (`host` is then its address)."""

    @model_validator(mode="after")
    def _has_ip(self) -> EdgeCluster:
        if not is_ip(self.host) and self.address is None:
            raise ValueError(f"edge {self.name}: host {self.host!r} is a DNS name; add its IP as `address`")
        return self

    @property
    def ip(self) -> str:
        return self.host if is_ip(self.host) else str(self.address)


class BucketNames(_Model):
    """One bucket per kind of data; each cluster writes under its own prefix or its own blocks."""

    thanos: DnsLabel = "thanos"
    """Thanos blocks of every cluster (told apart by their `cluster` external label)."""
    opensearch: DnsLabel = "opensearch-logs"
    """OpenSearch snapshots, one `<cluster>/` prefix per cluster."""
    longhorn: DnsLabel = "longhorn-backups"
    """Longhorn backups, one `<cluster>/` prefix per cluster."""

    @model_validator(mode="after")
    def _distinct(self) -> BucketNames:
        names = [self.thanos, self.opensearch, self.longhorn]
        if len(set(names)) != len(names):
            raise ValueError(
                f"s3.buckets: thanos, opensearch and longhorn need three different buckets (got {names}); "
                "each bucket gets its own users and lifecycle policy"
            )
        if any(len(name) < 3 for name in names):
            raise ValueError(f"s3.buckets: S3 bucket names have 3 to 63 characters (got {names})")
        return self


def _check_object_store_ca(pem: str) -> None:
    """A readable, unexpired X.509 certificate: what Thanos, Longhorn and the JVM can trust."""
    if "BEGIN CERTIFICATE" not in pem:
        raise ValueError("s3.caCertificate must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValueError("s3.caCertificate is not a readable PEM certificate") from None
    if certificate.not_valid_after_utc < datetime.now(UTC):
        raise ValueError(f"s3.caCertificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}")


class S3Settings(_Model):
    """The external MinIO every cluster writes to."""

    endpoint: HostPort = "172.20.40.21:30001"
    use_tls: bool = True
    insecure_skip_verify: bool = False
    """Never accepted: Longhorn and OpenSearch's repository-s3 cannot skip verification, so a MinIO
    only reachable that way has no backups and no snapshots. Present so that asking for it is explained."""
    ca_certificate: str | None = None
    """PEM of the CA that signed MinIO's certificate (public, so plain config); every client trusts it."""
    public_ca: bool = False
    """The stack's statement that a public CA signed MinIO's certificate for `endpoint`: the clients then
    trust the public CAs. With TLS, one of the two must be said; a guess fails only at run time (Thanos
    Store Gateway's first sync, the MinIO provider, Longhorn backups, OpenSearch snapshots)."""
    region: str = "us-east-1"
    buckets: BucketNames = Field(default_factory=BucketNames)
    versioning: bool = True
    """Versioned buckets, so deletes can be undone within a grace period; needs an erasure-coded or 2022+
    single-drive MinIO."""
    noncurrent_version_expiry_days: int = Field(7, ge=1, le=3650)
    """Grace period before deleted/overwritten object versions are purged: a bounded undo window for deletes
    by the Compactor, Snapshot Management or Longhorn."""
    expire_current_objects_days: int | None = None
    """Never accepted (Thanos blocks, snapshots and backups share files, so expiring them by age corrupts newer
    ones): present only so that asking for it gets an explanation."""

    @model_validator(mode="after")
    def _tls_consistent(self) -> S3Settings:
        if self.expire_current_objects_days is not None:
            raise ValueError(
                "expiring current objects is refused: Thanos blocks, OpenSearch snapshots and "
                "Longhorn backups share files across generations, so age-based expiry corrupts "
                "newer ones. Retention is set in Thanos Compactor, Snapshot "
                "Management and the Longhorn RecurringJob; remove expireCurrentObjectsDays"
            )
        if self.insecure_skip_verify:
            raise ValueError(
                "s3.insecureSkipVerify is refused: Longhorn backups and OpenSearch snapshots cannot skip "
                "certificate verification, so they would fail against an untrusted MinIO certificate. "
                "If MinIO's certificate is self-signed or from a private CA, give its CA: "
                '`pulumi config set --path s3.caCertificate -- "$(cat minio-ca.pem)"`; if it is publicly '
                "trusted, remove the key: `pulumi config rm --path s3.insecureSkipVerify`"
            )
        if not self.use_tls and (self.ca_certificate or self.public_ca):
            raise ValueError("s3.caCertificate and s3.publicCa need useTls: true")
        if self.ca_certificate is not None:
            _check_object_store_ca(self.ca_certificate)
        self._trust_stated()
        return self

    def _trust_stated(self) -> None:
        """With TLS, the stack says who signed MinIO's certificate: its CA, or a public one."""
        if not self.use_tls:
            return
        if self.ca_certificate is None and not self.public_ca:
            raise ValueError(
                f"s3.caCertificate is required: every client verifies MinIO's certificate at https://{self.endpoint}. "
                f'Set the CA that signed it, `pulumi config set --path s3.caCertificate -- "$(cat minio-ca.pem)"`, '
                "or, if a public CA signed it for that address, `pulumi config set --path s3.publicCa true`"
            )
        if self.ca_certificate is not None and self.public_ca:
            raise ValueError("s3.publicCa and s3.caCertificate are set: keep the one that signed MinIO's certificate")
        if self.public_ca and self.address and not ipaddress.ip_address(self.address).is_global:
            raise ValueError(
                f"s3.publicCa: no public CA signs a certificate for the non-public address {self.address}; "
                "set s3.caCertificate to the CA that signed MinIO's certificate"
            )

    @property
    def url(self) -> str:
        return f"{'https' if self.use_tls else 'http'}://{self.endpoint}"

    def verify_view(self) -> dict[str, Any]:
        """What `python -m tools.verify` needs to check the buckets (the `objectStore` stack output)."""
        buckets = {
            "thanos": self.buckets.thanos,
            "opensearch": self.buckets.opensearch,
            "longhorn": self.buckets.longhorn,
        }
        return {
            "endpoint": self.endpoint,
            "useTls": self.use_tls,
            "region": self.region,
            "caCertificate": self.ca_certificate,
            "buckets": buckets,
        }

    @property
    def host(self) -> str:
        return self.endpoint.rpartition(":")[0]

    @property
    def address(self) -> str | None:
        """The endpoint's IP, or None when it is a DNS name (a NetworkPolicy then allows its port anywhere)."""
        return self.host if is_ip(self.host) else None

    @property
    def port(self) -> int:
        return int(self.endpoint.rpartition(":")[2])


class LonghornSettings(_Model):
    backup_schedule: Cron = "0 2 * * *"
    """When the recurring backup job runs (cron, node time zone)."""
    backup_retain: int = Field(14, ge=1, le=250)
    """How many backups per volume Longhorn keeps; retention lives here, never in a bucket lifecycle
    rule (backups share blocks, so expiring objects by age corrupts newer ones)."""


_QUANTITY_BYTES = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(value: str) -> int:
    """Bytes in a Kubernetes size such as `512Mi` or `1.5Gi`."""
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"not a Kubernetes size: {value!r}")
    return int(float(value[: -len(match.group(2))]) * _QUANTITY_BYTES[match.group(2)])


def _at_least(minimum: str, why: str) -> Any:
    """A Duration of at least `minimum`."""

    def check(value: str) -> str:
        if duration_seconds(value) < duration_seconds(minimum):
            raise ValueError(f"{value!r} is shorter than {minimum}: {why}")
        return value

    return AfterValidator(check)


def _retention(minimum: str, why: str) -> Any:
    """A Compactor retention: `0d` keeps that resolution forever, anything else at least `minimum`."""

    def check(value: str) -> str:
        if duration_seconds(value) != 0 and duration_seconds(value) < duration_seconds(minimum):
            raise ValueError(f"{value!r} is shorter than {minimum}: {why} (0d keeps it forever)")
        return value

    return AfterValidator(check)


class MonitoringSettings(_Model):
    """kube-prometheus-stack: Prometheus, Alertmanager, Grafana and the Thanos sidecar."""

    prometheus_retention: Annotated[
        Duration, _at_least("6h", "the Thanos sidecar uploads 2h blocks and needs three of them kept locally")
    ] = "24h"
    """Local Prometheus retention; older data is served from the bucket by the Store Gateway."""
    prometheus_storage_size: Quantity = "20Gi"
    """Longhorn volume of Prometheus; `retentionSize` is set to 85% of it so the disk never fills."""
    prometheus_memory: Quantity = "1Gi"
    """Memory request of the Prometheus container."""
    prometheus_memory_limit: Quantity = "2Gi"
    """Memory limit of the Prometheus container (head block and WAL replay need headroom)."""
    alertmanager_storage_size: Quantity = "1Gi"
    """Longhorn volume of Alertmanager (silences and notification state)."""
    grafana_storage_size: Quantity = "2Gi"
    """Longhorn volume of Grafana (its SQLite database: users, UI-made dashboards)."""

    @model_validator(mode="after")
    def _limit_covers_request(self) -> MonitoringSettings:
        if quantity_bytes(self.prometheus_memory_limit) < quantity_bytes(self.prometheus_memory):
            raise ValueError(
                f"monitoring.prometheusMemoryLimit ({self.prometheus_memory_limit}) must be at least "
                f"monitoring.prometheusMemory ({self.prometheus_memory})"
            )
        return self


class ThanosSettings(_Model):
    """Central Thanos: Query, Query Frontend, Store Gateway, Compactor."""

    query_replicas: int = Field(2, ge=2, le=5)
    """Thanos Query replicas; at least 2 so the PodDisruptionBudget (minAvailable 1) never blocks a drain."""
    store_replicas: int = Field(1, ge=1, le=3)
    """Thanos Store Gateway replicas; each serves every block (Query merges their identical answers), so a
    second one keeps the bucket's history readable while a node is drained."""
    retention_raw: Annotated[
        Duration, _retention("40h", "the Compactor makes 5m downsampled blocks from raw blocks 40h old")
    ] = "30d"
    """Compactor retention of raw samples: the last month at full resolution, for zooming in."""
    retention_5m: Annotated[
        Duration,
        _retention("10d", "the Compactor makes 1h downsampled blocks from 5m blocks 10 days old"),
        Field(alias="retention5m"),
    ] = "180d"
    """Compactor retention of 5-minute downsampled data: the whole 180 days the platform keeps."""
    retention_1h: Annotated[Duration, Field(alias="retention1h")] = "180d"
    """Compactor retention of 1-hour downsampled data, for long ranges over the same 180 days (`0d`: forever)."""
    store_storage_size: Quantity = "10Gi"
    """Longhorn volume of the Store Gateway (index headers of the bucket's blocks)."""
    store_memory_limit: Quantity = "1Gi"
    """Memory limit of the Store Gateway; its in-memory index cache must fit in half of it."""
    store_index_cache_size: Quantity = "256Mi"
    """In-memory index cache of the Store Gateway (`--index-cache-size`)."""
    compactor_storage_size: Quantity = "20Gi"
    """Longhorn volume of the Compactor: scratch space for the blocks it compacts and downsamples."""
    query_cache_validity: Annotated[Duration, _at_least("1m", "a shorter validity caches nothing useful")] = "1h"
    """How long the Query Frontend keeps a result. An answer given while an edge was unreachable lacks that
    edge's series; it is served from the cache, hole and all, until it expires (`0s`, forever, is refused)."""

    @model_validator(mode="after")
    def _coarser_data_lives_longer(self) -> ThanosSettings:
        """A coarser resolution is made from the finer one, and is what long ranges read: it must not
        be dropped before it (`0d`, forever, counts as the longest)."""

        def lifetime(value: str) -> float:
            return duration_seconds(value) or float("inf")

        order = [("retentionRaw", self.retention_raw), ("retention5m", self.retention_5m)]
        order.append(("retention1h", self.retention_1h))
        for (finer, finer_value), (coarser, coarser_value) in itertools.pairwise(order):
            if lifetime(coarser_value) < lifetime(finer_value):
                raise ValueError(
                    f"thanos.{coarser} ({coarser_value}) must be at least thanos.{finer} ({finer_value}): "
                    "a coarser resolution is what long ranges read once the finer one is gone"
                )
        return self

    @model_validator(mode="after")
    def _cache_fits(self) -> ThanosSettings:
        if quantity_bytes(self.store_index_cache_size) * 2 > quantity_bytes(self.store_memory_limit):
            raise ValueError(
                f"thanos.storeIndexCacheSize ({self.store_index_cache_size}) must be at most half of "
                f"thanos.storeMemoryLimit ({self.store_memory_limit}); series and postings need the rest"
            )
        return self


def _pattern(regex: str, accepted: str) -> Any:
    """A string matching `regex`; the message says what is `accepted`."""

    def check(value: str) -> str:
        if not re.fullmatch(regex, value):
            raise ValueError(f"{value!r} must be {accepted}")
        return value

    return AfterValidator(check)


def _opensearch_image(value: str) -> str:
    version = versions.tag_of(versions.OPENSEARCH_IMAGE)
    name, _, digest = value.partition("@")
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag or not repository or not tag.startswith(version):
        raise ValueError(
            f"{value!r} must be `<repository>:<tag>` with a tag that starts with OpenSearch {version} (the chart's "
            f"version, which the plugin must match), e.g. registry.example.org/opensearch-s3:{version}"
        )
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"{value!r}: the digest after @ must be sha256:<64 hex digits>")
    return value


def _timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as UTC or Asia/Seoul") from None
    return value


class LoggingSettings(_Model):
    """OpenSearch, its snapshot/retention policies, and Fluent-bit."""

    replicas: Literal[1, 3] = 1
    """OpenSearch nodes, each on a Kubernetes node of its own: 1 runs single-node discovery with index replicas
    0; 3 form a cluster of three cluster-manager-eligible nodes (a quorum of two survives losing one) with one
    replica of each index. Two would stop the cluster when either fails, so it is not offered."""
    image: Annotated[str, AfterValidator(_opensearch_image)] | None = None
    """An OpenSearch image with repository-s3 built in (`<repository>:<tag>`, the tag starting with the
    pinned OpenSearch version; recipe in the README): then no installer Job and no plugin volume. Required
    with 3 replicas, whose pods run on three nodes and cannot share the installer's one volume."""
    storage_size: Quantity = "30Gi"
    """Longhorn volume of each OpenSearch node: the last `retentionDays` of logs plus merge headroom."""
    cpu: Annotated[str, _pattern(r"\d+m|\d+(\.\d+)?", "a CPU quantity such as 400m or 1")] = "400m"
    """CPU request of each OpenSearch node (no CPU limit: throttling a JVM stalls it)."""
    memory: Quantity = "2Gi"
    """Memory request and limit of each OpenSearch node; the JVM heap is half of it, the rest is page cache."""
    retention_days: int = Field(14, ge=1, le=365)
    """ISM deletes a `logs-*` index this many days after it was created."""
    audit_retention_days: int = Field(30, ge=1, le=3650)
    """ISM deletes the security plugin's audit indices (`security-auditlog-*`) this many days after creation."""
    snapshot_retention: Annotated[str, _pattern(r"\d+[hd]", "hours or days such as 180d")] = "180d"
    """Snapshot Management deletes snapshots older than this (`deletion.condition.max_age`); never a bucket
    lifecycle rule, because snapshots share files and age-based expiry corrupts newer ones."""
    snapshot_min_count: int = Field(7, ge=1, le=1000)
    """Snapshots Snapshot Management always keeps, however old (`min_count`): a stopped cluster keeps its last ones."""
    snapshot_schedule: Cron = "0 1 * * *"
    """When the daily snapshot of `logs-*` is taken (cron, `snapshotTimezone`)."""
    snapshot_deletion_schedule: Cron = "0 3 * * *"
    """When Snapshot Management deletes expired snapshots (cron, `snapshotTimezone`)."""
    snapshot_timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    """Time zone of both snapshot schedules and of the snapshot names' dates."""
    repository_name: DnsLabel = "logs-s3"
    """Name of the S3 snapshot repository registered in OpenSearch (bucket `s3.buckets.opensearch`)."""
    api_timeout_seconds: int = Field(30, ge=1, le=300)
    """Read timeout of each OpenSearch API request Pulumi makes (connecting times out after 10s)."""
    api_retries: int = Field(6, ge=0, le=20)
    """Retries with exponential backoff of a request that got 429, 5xx or a connection error."""
    api_url: Annotated[str, _pattern(r"https://[^/\s]+", "an https:// URL without a path")] | None = None
    """Where Pulumi calls OpenSearch's REST API from the operator's machine. Unset: the host's address on
    443, with `opensearch.<domain>` as TLS server name and Host, so no DNS entry is needed there. Set it
    when that machine resolves the name itself or goes through a proxy (`HTTPS_PROXY` is honoured then)."""
    fluent_bit_buffer_limit: Annotated[str, _pattern(r"\d+[KMG]", "a Fluent-bit size such as 512M or 2G")] = "2G"
    """Disk buffer of Fluent-bit's OpenSearch output (`storage.total_limit_size`); when full, oldest chunks go."""
    fluent_bit_retry_limit: int | None = Field(None, ge=1)
    """Retries of a failed chunk before Fluent-bit drops it; unset = retry until the buffer limit (no loss)."""

    @model_validator(mode="after")
    def _three_nodes_bring_the_plugin(self) -> LoggingSettings:
        if self.replicas > 1 and self.image is None:
            raise ValueError(
                "logging.image is required with logging.replicas 3: the repository-s3 installer fills one volume, "
                "which pods on three nodes cannot share; build an image with the plugin (README, OpenSearch image "
                "with repository-s3) and set logging.image to it"
            )
        return self

    @model_validator(mode="after")
    def _snapshots_outlive_indices(self) -> LoggingSettings:
        unit = 86400 if self.snapshot_retention.endswith("d") else 3600
        if int(self.snapshot_retention[:-1]) * unit <= self.retention_days * 86400:
            raise ValueError(
                f"logging.snapshotRetention ({self.snapshot_retention}) must be longer than "
                f"logging.retentionDays ({self.retention_days}d): snapshots are the only copy of older logs"
            )
        return self


def _pem_certificate(value: str) -> str:
    text = value.strip()
    if not (text.startswith("-----BEGIN CERTIFICATE-----") and text.endswith("-----END CERTIFICATE-----")):
        raise ValueError("must be one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)")
    return text + "\n"


class TlsSettings(_Model):
    """The platform CA and the certificates it issues (read by the central stack, which holds the CA)."""

    validity_days: int = Field(365, ge=30, le=825)
    """How long an issued certificate is valid; browsers refuse private-CA server certificates over 825 days."""
    renew_before_days: int = Field(30, ge=7)
    """A `pulumi up` of central this close to a certificate's end issues a new one (then each edge's `up`
    installs it): run central's `pulumi up` at least this often."""
    ca_validity_days: int = Field(3650, ge=365)
    """Validity of a generated CA; replacing it means every browser and client must trust the new one."""
    ca_certificate: Annotated[str, AfterValidator(_pem_certificate)] | None = None
    """The operator's own CA (PEM, public) instead of a generated one; its key is the secret `platformCaKey`."""

    @model_validator(mode="after")
    def _renewal_inside_validity(self) -> TlsSettings:
        if self.renew_before_days * 2 > self.validity_days:
            raise ValueError(
                f"tls.renewBeforeDays ({self.renew_before_days}) must be at most half of tls.validityDays "
                f"({self.validity_days}): otherwise every `pulumi up` reissues every certificate"
            )
        return self


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} must be an address block such as 203.0.113.10/32 (no host bits set)") from None
    if network.prefixlen == 0:
        raise ValueError(f"{value!r} is every address; name the receiver's own address (e.g. 203.0.113.10/32)")
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def _emails(value: str) -> str:
    addresses = [address.strip() for address in value.split(",")]
    if not all(_EMAIL.match(address) for address in addresses):
        raise ValueError(f"{value!r} must be one or more e-mail addresses separated by commas")
    return value


class ReceiverEgress(_Model):
    """Where a receiver is reached: Alertmanager's NetworkPolicy allows exactly these address blocks and ports."""

    cidr: Cidr
    """The receiver's address block, e.g. `203.0.113.10/32` (a NetworkPolicy matches addresses, not names)."""
    port: int = Field(ge=1, le=65535)
    """Its TCP port, e.g. 443."""


class WebhookReceiver(_Model):
    """An HTTP(S) endpoint that takes Alertmanager's webhook JSON (chat bridge, incident tool, ...).

    Its URL usually carries a token, so it is the secret config `alertWebhookUrl`, never plain config."""

    egress: Annotated[list[ReceiverEgress], Field(min_length=1)]
    """The address blocks and ports the URL resolves to (DNS names cannot be NetworkPolicy peers)."""
    send_resolved: bool = True
    """Also notify when an alert resolves."""


class EmailReceiver(_Model):
    """E-mail over SMTP; the password is the secret config `alertSmtpPassword`."""

    to: Annotated[str, AfterValidator(_emails)]
    """Recipients, comma-separated."""
    from_: Annotated[str, AfterValidator(_emails), Field(alias="from")]
    """Sender address."""
    smarthost: HostPort
    """The SMTP server as host:port, e.g. smtp.example.org:587."""
    username: str = Field(min_length=1)
    """SMTP login."""
    require_tls: bool = True
    """STARTTLS required (Alertmanager's default); off only for a relay on a trusted network."""
    egress: Annotated[list[ReceiverEgress], Field(min_length=1)]
    """The address blocks and port(s) of the smarthost."""
    send_resolved: bool = True
    """Also notify when an alert resolves."""

    @model_validator(mode="after")
    def _egress_reaches_smarthost(self) -> EmailReceiver:
        port = int(self.smarthost.rpartition(":")[2])
        if port not in {rule.port for rule in self.egress}:
            raise ValueError(
                f"alerting.email.egress allows no rule to port {port} of smarthost {self.smarthost}; "
                "Alertmanager could never reach it"
            )
        return self


class AlertingSettings(_Model):
    """Where Alertmanager delivers alerts. Criticals go to every configured receiver, warnings to the
    webhook (or e-mail when there is no webhook), info and the always-firing Watchdog to nobody."""

    webhook: WebhookReceiver | None = None
    email: EmailReceiver | None = None

    @property
    def receivers(self) -> list[str]:
        """The configured receivers' names, in routing order."""
        return [name for name in ("webhook", "email") if getattr(self, name) is not None]


class NodeSize(_Model):
    """One node of an existing cluster, as its kubelet reports capacity."""

    cpus: float = Field(gt=0)
    memory_gib: float = Field(gt=0)


class ClusterTotal(_Model):
    """An existing cluster's nodes as a total, when listing each one is not worth it."""

    nodes: int = Field(ge=1, le=1000)
    cpus: float = Field(gt=0)
    """All nodes' CPUs together."""
    memory_gib: float = Field(gt=0)
    """All nodes' memory together."""


class ApiServerSettings(_Model):
    """Where the pods reach the Kubernetes API server, as a NetworkPolicy must name it."""

    cidrs: Annotated[list[Cidr], Field(min_length=1)]
    """The API server's own addresses (the endpoints of the `kubernetes` Service: `kubectl get endpointslices
    -l kubernetes.io/service-name=kubernetes`), or the block a managed control plane answers from."""
    port: int = Field(6443, ge=1, le=65535)
    """Its port on those addresses (kubeadm and k3s 6443, most managed services 443)."""
    service_address: IpAddress = "10.96.0.1"
    """The `kubernetes` Service's cluster IP (kubeadm 10.96.0.1, k3s 10.43.0.1), in case the CNI matches
    egress before the Service address is translated."""


MINIKUBE_APISERVER_PORT = 8443
"""Where minikube's API server listens on the node."""


class ExistingCluster(_Model):
    """A Kubernetes cluster the operator already runs (kubeadm, k3s, a managed service): no host commands,
    no Minikube; the provider is built from the secret `kubeconfig`."""

    kubernetes_version: Annotated[str, AfterValidator(_kubernetes_version)]
    """The cluster's version (`kubectl version`): the schema checks and the Pod Security version follow it."""
    cluster_identifier: Annotated[str, Field(min_length=1)] | None = None
    """What identifies the cluster to the Kubernetes provider (default: `existing/<clusterName>`, never the
    Minikube stack's `<clusterName>`, so that a stack moved off its Minikube node replaces the provider instead
    of pointing it at another cluster): a new kubeconfig for the same cluster (a rotated token, another context
    name) updates the provider; only a new identifier replaces it, and with it every object of the stack."""
    nodes: list[NodeSize] | None = None
    """Each node's size; or `total`."""
    total: ClusterTotal | None = None
    """All nodes together; or `nodes`."""
    reserved_cpus_per_node: float = Field(0.5, ge=0)
    """What each node's system pods (kubelet reserve, CNI, kube-proxy, CSI) take before the platform."""
    reserved_memory_gib_per_node: float = Field(1.0, ge=0)
    node_cidrs: Annotated[list[Cidr], Field(min_length=1)]
    """The nodes' addresses: the source of host-network traffic (kubelet probes, the API server calling
    webhooks) and where Prometheus scrapes the kubelets and node-exporter."""
    api_server: ApiServerSettings

    @model_validator(mode="after")
    def _sized_once(self) -> ExistingCluster:
        if (self.nodes is None) == (self.total is None):
            raise ValueError(
                "kubernetes: give the node sizes as `nodes: [{cpus, memoryGib}, ...]` or as "
                "`total: {nodes, cpus, memoryGib}`, one of the two"
            )
        if self.nodes is not None and not self.nodes:
            raise ValueError("kubernetes.nodes: list at least one node")
        if self.reserved_cpus_per_node >= self.smallest_node.cpus:
            raise ValueError("kubernetes.reservedCpusPerNode must be smaller than a node's CPUs")
        if self.reserved_memory_gib_per_node >= self.smallest_node.memory_gib:
            raise ValueError("kubernetes.reservedMemoryGibPerNode must be smaller than a node's memory")
        return self

    @property
    def node_count(self) -> int:
        return len(self.nodes) if self.nodes is not None else int(self.total.nodes if self.total else 1)

    @property
    def smallest_node(self) -> NodeSize:
        """The smallest node (with `total`: an even share of it), where the largest pod must still fit."""
        if self.nodes:
            return min(self.nodes, key=lambda node: (node.cpus, node.memory_gib))
        assert self.total is not None
        share = self.total.nodes
        return NodeSize(cpus=self.total.cpus / share, memory_gib=self.total.memory_gib / share)

    @property
    def capacity(self) -> NodeCapacity:
        """All nodes as one, with every node's reserve: what the capacity check sizes the platform against."""
        sizes = self.nodes or [self.smallest_node] * self.node_count
        count = len(sizes)
        return NodeCapacity(
            cpus=sum(node.cpus for node in sizes),
            memory_gib=sum(node.memory_gib for node in sizes),
            reserved_cpus=self.reserved_cpus_per_node * count,
            reserved_memory_gib=self.reserved_memory_gib_per_node * count,
        )


class StorageSettings(_Model):
    """Where the platform's volumes live."""

    class_name: Annotated[str, AfterValidator(_storage_class_name)] | None = None
    """The cluster's own StorageClass (`kubectl get storageclass`): Longhorn is then not installed and every
    volume (Prometheus, Alertmanager, Grafana, Thanos, OpenSearch) is claimed from it. Unset: Longhorn, with
    one replica per node up to three."""

    @property
    def longhorn(self) -> bool:
        return self.class_name is None


class IngressSettings(_Model):
    """How Traefik (and on an edge, the Thanos sidecar's StoreAPI) is exposed."""

    service_type: Literal["hostPort", "LoadBalancer", "NodePort"] = "hostPort"
    """`hostPort`: the node's 80/443 (Minikube; on an existing cluster every node's, Traefik then runs on each);
    `LoadBalancer`: a Service of that type, for a cluster with a load-balancer implementation (a cloud, MetalLB);
    `NodePort`: ports 30080/30443 of every node (the edge sidecar on 30901)."""
    address: IpAddress | None = None
    """Where clients reach Traefik: the load balancer's address, or a node's for `hostPort`/`NodePort`.
    Required on an existing cluster; on Minikube it is the host's."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of Traefik's Service (e.g. to ask the load balancer for `address`)."""
    sidecar_annotations: dict[str, str] = Field(default_factory=dict)
    """Edge only: annotations of the sidecar StoreAPI's Service, exposed the same way as Traefik."""


class VersionSettings(_Model):
    """Overrides of `components/versions.py`; defaults are the pinned set there."""

    thanos: ImageTag = versions.THANOS
    traefik: ChartVersion = versions.TRAEFIK.version
    longhorn: ChartVersion = versions.LONGHORN.version
    kube_prometheus_stack: ChartVersion = versions.KUBE_PROMETHEUS_STACK.version
    opensearch: ChartVersion = versions.OPENSEARCH.version
    fluent_bit: ChartVersion = versions.FLUENT_BIT.version


class Settings(_Model):
    """The whole, validated stack config."""

    role: Role
    cluster_name: DnsLabel
    """Must equal the stack name; it becomes the Prometheus `cluster` external label, which
    must be unique or Thanos Query merges the clusters' series."""
    host: Host | None = None
    """The Minikube host (SSH target). Absent on a stack for an existing cluster (`kubernetes`)."""
    address: IpAddress | None = None
    """The host's IP when `host` is a DNS name: NetworkPolicies match host-network traffic by address."""
    central_address: Annotated[str, AfterValidator(_address_or_block)] | None = None
    """Edge only: the central cluster's address as this edge sees its traffic, the one source allowed to reach
    this edge's sidecar: its host, or for an existing cluster its egress address, or its nodes' block when its
    pods leave through whichever node they run on."""
    domain: Domain
    """Wildcard DNS domain of this cluster: grafana.<domain>, longhorn.<domain>, ..."""
    minikube: MinikubeSettings | None = None
    """Minikube on `host` (the default when `kubernetes` is absent)."""
    node: NodeCapacity | None = None
    """The Minikube host's size (the default when `kubernetes` is absent)."""
    kubernetes: ExistingCluster | None = None
    """An existing cluster instead of Minikube on `host`; its kubeconfig is the secret `kubeconfig`."""
    storage: StorageSettings = Field(default_factory=StorageSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    edges: list[EdgeCluster] = Field(default_factory=list)
    """Central only: the edge clusters it queries and creates object-store users for."""
    central_stack: str = f"organization/{PROJECT}/cluster-196"
    """Edge only: the fully qualified central stack to read credentials from."""
    s3: S3Settings
    """The object store: required, because only the stack can say who signed its certificate."""
    longhorn: LonghornSettings = Field(default_factory=LonghornSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    thanos: ThanosSettings = Field(default_factory=ThanosSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    """Central only: the platform CA and certificate lifetimes (edges receive their certificates from central)."""
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    versions: VersionSettings = Field(default_factory=VersionSettings)
    protect: bool = True
    """Protect stateful resources (node, buckets, PVC-backed releases) against `pulumi destroy`."""

    @model_validator(mode="before")
    @classmethod
    def _minikube_by_default(cls, data: Any) -> Any:
        """Without `kubernetes`, the stack is a Minikube host: its sections take their defaults."""
        if isinstance(data, dict) and data.get("kubernetes") is None:
            data = {"minikube": {}, "node": {}, **{key: value for key, value in data.items() if value is not None}}
        return data

    @model_validator(mode="after")
    def _kind_of_cluster(self) -> Settings:
        if self.kubernetes is None:
            if self.host is None:
                raise ValueError(
                    "host: a Minikube stack needs its host (`host: 192.168.101.196`); a stack for an existing "
                    "cluster has a `kubernetes` section instead (README, Deploying onto an existing cluster)"
                )
            if self.ingress.service_type != "hostPort" or self.ingress.address is not None:
                raise ValueError(
                    "ingress: on Minikube Traefik takes the host's 80/443 (serviceType hostPort, address the host's); "
                    "LoadBalancer, NodePort and ingress.address are for existing clusters"
                )
            if self.ingress.sidecar_annotations or self.ingress.annotations:
                raise ValueError(
                    "ingress.annotations and ingress.sidecarAnnotations are for Services of existing clusters"
                )
            return self
        for key, value in (("host", self.host), ("address", self.address), ("minikube", self.minikube)):
            if value is not None:
                raise ValueError(f"{key}: a stack with `kubernetes` (an existing cluster) has no host; remove {key}")
        if self.node is not None:
            raise ValueError("node: an existing cluster is sized by kubernetes.nodes or kubernetes.total; remove node")
        if self.ingress.address is None:
            raise ValueError(
                "ingress.address is required on an existing cluster: where clients (and central) reach Traefik, "
                "the load balancer's address or a node's"
            )
        if self.role is Role.CENTRAL and self.ingress.sidecar_annotations:
            raise ValueError("ingress.sidecarAnnotations: only an edge exposes its sidecar; remove it from central")
        return self

    @model_validator(mode="after")
    def _replicas_fit_the_nodes(self) -> Settings:
        if self.logging.replicas > self.node_count:
            raise ValueError(
                f"logging.replicas is {self.logging.replicas} but the cluster has {self.node_count} node(s): "
                "each OpenSearch node needs a Kubernetes node of its own"
            )
        return self

    @model_validator(mode="after")
    def _role_topology(self) -> Settings:
        if self.role is Role.EDGE and self.edges:
            raise ValueError("edges: only the central stack lists edge clusters; remove it from this edge stack")
        if self.role is Role.CENTRAL and not self.edges:
            raise ValueError("edges: a central stack needs at least one edge cluster ({name, host})")
        names = [edge.name for edge in self.edges]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"edges: duplicate edge names {duplicates}; each edge is one stack")
        if self.cluster_name in names:
            raise ValueError(f"edges: the central cluster {self.cluster_name!r} cannot be its own edge")
        hosts = [edge.host for edge in self.edges] + [self.ingress_address]
        if len(set(hosts)) != len(hosts):
            raise ValueError("edges: every cluster needs its own host address")
        if self.host is not None and not is_ip(self.host) and self.address is None:
            raise ValueError(
                f"address: host {self.host!r} is a DNS name; set `address` to its IP (NetworkPolicies need it)"
            )
        if self.role is Role.EDGE and self.central_address is None:
            raise ValueError(
                "centralAddress: an edge needs the central host's IP (only it may reach the sidecar on 30901)"
            )
        if self.role is Role.CENTRAL and self.central_address is not None:
            raise ValueError("centralAddress: only edge stacks name the central host; remove it from the central stack")
        if self.role is Role.EDGE and self.tls != TlsSettings():
            raise ValueError("tls: only the central stack, which holds the platform CA, reads tls settings")
        domains = [edge.domain for edge in self.edges] + [self.domain]
        if len(set(domains)) != len(domains):
            raise ValueError("edges: every cluster needs its own domain (each gets its own *.<domain> certificate)")
        return self

    @property
    def on_minikube(self) -> bool:
        return self.kubernetes is None

    @property
    def minikube_node(self) -> MinikubeSettings:
        """The Minikube settings of a Minikube stack."""
        assert self.minikube is not None, "not a Minikube stack"
        return self.minikube

    @property
    def kubernetes_version(self) -> str:
        return self.kubernetes.kubernetes_version if self.kubernetes else self.minikube_node.kubernetes_version

    @property
    def cluster_identifier(self) -> str:
        """What the Kubernetes provider knows the cluster by: only a change of it replaces the provider."""
        if self.kubernetes is None:
            return self.cluster_name
        return self.kubernetes.cluster_identifier or f"existing/{self.cluster_name}"

    @property
    def node_count(self) -> int:
        return self.kubernetes.node_count if self.kubernetes else 1

    @property
    def capacity(self) -> NodeCapacity:
        """What the platform is sized against: the Minikube host, or all nodes of an existing cluster."""
        if self.kubernetes:
            return self.kubernetes.capacity
        assert self.node is not None
        return self.node

    @property
    def ip(self) -> str:
        """This cluster's ingress address: the Minikube host's IP, or `ingress.address` of an existing cluster."""
        return self.ingress_address

    @property
    def ingress_address(self) -> str:
        if self.ingress.address is not None:
            return self.ingress.address
        assert self.host is not None
        return self.host if is_ip(self.host) else str(self.address)

    @property
    def node_cidrs(self) -> list[str]:
        """Where host-network traffic comes from: the Minikube host, or an existing cluster's nodes."""
        if self.kubernetes:
            return list(self.kubernetes.node_cidrs)
        return [host_cidr(self.ingress_address)]

    @property
    def api_server(self) -> ApiServerSettings:
        """Where pods reach the API server: an existing cluster's, or minikube's on the host."""
        if self.kubernetes:
            return self.kubernetes.api_server
        return ApiServerSettings(cidrs=self.node_cidrs, port=MINIKUBE_APISERVER_PORT)

    @property
    def longhorn_replicas(self) -> int:
        """One replica of each Longhorn volume per node, up to three."""
        return min(3, self.node_count)

    @property
    def is_central(self) -> bool:
        return self.role is Role.CENTRAL

    @property
    def central_ip(self) -> str:
        """The central host's IP: this host on central, `centralAddress` on an edge."""
        return self.ip if self.is_central else str(self.central_address)

    def hostname(self, service: str) -> str:
        """The ingress host name of a service on this cluster, e.g. grafana.mkube-196.miribit.lab."""
        return f"{service}.{self.domain}"


# --- secrets -----------------------------------------------------------------------------


ClusterKind = Literal["minikube", "existing"]


def cluster_kind(raw_config: Mapping[str, Any]) -> ClusterKind:
    """`existing` for a stack with a `kubernetes` section, else `minikube` (keys without the project prefix)."""
    return "existing" if raw_config.get("kubernetes") is not None else "minikube"


@dataclass(frozen=True)
class SecretKey:
    """A secret config key: never in a committed file, set with `pulumi config set --secret`."""

    key: str
    purpose: str
    roles: tuple[Role, ...] = (Role.CENTRAL, Role.EDGE)
    """The roles whose stacks take it (the others refuse it)."""
    required: bool = True
    """False: set only in a particular case (see `purpose`)."""
    clusters: tuple[ClusterKind, ...] = ("minikube", "existing")
    """The kinds of cluster whose stacks take it: Minikube on a host, or an existing cluster (`kubernetes`)."""


SECRET_KEYS: tuple[SecretKey, ...] = (
    # Required in that the offline engine renders with a key; the program also takes an SSH agent instead.
    SecretKey(
        "sshPrivateKey",
        "private key for SSH to the host (minikube.mode: ssh), unless an SSH agent holds it",
        clusters=("minikube",),
    ),
    SecretKey(
        "sshPrivateKeyPassword", "passphrase of an encrypted sshPrivateKey", required=False, clusters=("minikube",)
    ),
    SecretKey(
        "kubeconfig",
        "kubeconfig of an existing cluster (`kubernetes`), `pulumi config set --secret kubeconfig < file`",
        clusters=("existing",),
    ),
    SecretKey("minioAdminUser", "MinIO admin access key", roles=(Role.CENTRAL,)),
    SecretKey("minioAdminPassword", "MinIO admin secret key", roles=(Role.CENTRAL,)),
    SecretKey(
        "platformCaKey",
        "private key (PEM) of the operator's own platform CA, with tls.caCertificate",
        roles=(Role.CENTRAL,),
        required=False,
    ),
    SecretKey(
        "opensearchAdminPassword",
        "OpenSearch admin password after a rotation (generated otherwise)",
        required=False,
    ),
    SecretKey("alertWebhookUrl", "Alertmanager's webhook URL (alerting.webhook)", required=False),
    SecretKey("alertSmtpPassword", "Alertmanager's SMTP password (alerting.email)", required=False),
)


@dataclass(frozen=True)
class Secrets:
    """Secret config as Pulumi secret Outputs; only the ones this role uses are present."""

    ssh_private_key: pulumi.Output[str] | None
    """The SSH key (`mode: ssh`); None in local mode, or when an SSH agent (`SSH_AUTH_SOCK`) holds it."""
    minio_admin_user: pulumi.Output[str] | None
    minio_admin_password: pulumi.Output[str] | None
    opensearch_admin_password: pulumi.Output[str] | None
    """Set only after a rotation of the OpenSearch admin password; unset, the generated one is used."""
    platform_ca_key: pulumi.Output[str] | None = None
    """Central, with `tls.caCertificate`: the key of the operator's own CA."""
    alert_webhook_url: pulumi.Output[str] | None = None
    """The webhook receiver's URL (with `alerting.webhook`)."""
    alert_smtp_password: pulumi.Output[str] | None = None
    """The e-mail receiver's SMTP password (with `alerting.email`)."""
    ssh_private_key_password: pulumi.Output[str] | None = None
    """The passphrase of an encrypted `ssh_private_key` (pulumi-command cannot use one without it)."""
    kubeconfig: pulumi.Output[str] | None = None
    """An existing cluster's kubeconfig (stacks with `kubernetes`); a Minikube node makes its own."""


# --- loading -----------------------------------------------------------------------------


def _config_key(loc: tuple[Any, ...]) -> str:
    path = ".".join(str(part) for part in loc if not str(part).startswith("function-"))
    return f"{PROJECT}:{path}" if path else PROJECT


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        message = detail["msg"].removeprefix("Value error, ")
        loc = tuple(part for part in detail["loc"] if not isinstance(part, str) or "[" not in part)
        if detail["type"] == "missing":
            problems.append(f"{_config_key(loc)} is required but not set")
        elif detail["type"] == "extra_forbidden":
            problems.append(f"{_config_key(loc)} is not a known setting (check its spelling)")
        elif detail["type"] in ("value_error", "assertion_error") and not loc:
            problems.append(f"{PROJECT}:{message}")
        elif isinstance(detail.get("input"), dict):  # a section's own rule: its message names the keys
            section = _config_key(loc).removeprefix(f"{PROJECT}:")
            named = message.startswith(f"{section}.")
            problems.append(f"{PROJECT}:{message}" if named else f"{_config_key(loc)}: {message}")
        else:
            problems.append(f"{_config_key(loc)}: {message} (got {detail.get('input')!r})")
    return "invalid stack config: " + "; ".join(problems)


def decode_config(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The stack's config keys as the settings read them: structured values JSON-decoded.

    `get` answers a key without the project prefix (`pulumi.Config(PROJECT).get`, or a lookup in
    the strings the engine passes); the one place config text becomes values."""
    raw: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        key = field.alias or name
        value = get(key)
        if value is None:
            continue
        try:
            raw[key] = json.loads(value) if value[:1] in "[{" or value in ("true", "false") else value
        except json.JSONDecodeError as exc:
            raise SettingsError(f"invalid stack config: {PROJECT}:{key} is not valid JSON ({exc.msg})") from None
    return raw


def settings_of(config: Mapping[str, str], stack: str) -> Settings:
    """The settings of a stack from its full config keys (`thanos-multi-cluster:role` -> value)."""
    return parse_settings(decode_config(lambda key: config.get(f"{PROJECT}:{key}")), stack)


def parse_settings(raw: dict[str, Any], stack: str) -> Settings:
    """Validate raw config (already JSON-decoded) for a stack; raises SettingsError."""
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    if settings.cluster_name != stack:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:clusterName is {settings.cluster_name!r} but the stack "
            f"is {stack!r}; they must be equal (the name is the cluster's unique `cluster` label)"
        )
    return settings


def _read_core_secrets(config: pulumi.Config, settings: Settings) -> Secrets:
    def require(key: str, why: str) -> pulumi.Output[str]:
        if config.get(key) is None:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:{key} is required {why}; set it with "
                f"`pulumi config set --secret {key} <value>`"
            )
        return config.require_secret(key)

    kubeconfig = _existing_cluster_kubeconfig(config, settings)
    ssh_key, ssh_key_password = None, None
    has_ssh_key = config.get("sshPrivateKey") is not None
    if config.get("sshPrivateKeyPassword") is not None and not has_ssh_key:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:sshPrivateKeyPassword is set without sshPrivateKey: it is the "
            "passphrase of that key; set the key (`pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519`) "
            "or remove it with `pulumi config rm sshPrivateKeyPassword`"
        )
    if settings.minikube is not None and settings.minikube.mode == "ssh":
        # pulumi-command offers the agent at $SSH_AUTH_SOCK itself: the socket path, which changes with
        # every login, never goes into the connection (a new one would run the node scripts again).
        if not has_ssh_key and not os.environ.get("SSH_AUTH_SOCK"):
            raise SettingsError(
                f"invalid stack config: {PROJECT}:sshPrivateKey is required when minikube.mode is ssh and no SSH "
                "agent is running (SSH_AUTH_SOCK is not set): set it with `pulumi config set --secret sshPrivateKey "
                "< ~/.ssh/id_ed25519` (and sshPrivateKeyPassword if the key has a passphrase), or load the key into "
                'an agent in the shell that runs pulumi: `eval "$(ssh-agent)" && ssh-add ~/.ssh/id_ed25519`'
            )
        if has_ssh_key:
            ssh_key = config.require_secret("sshPrivateKey")
            ssh_key_password = config.get_secret("sshPrivateKeyPassword")
    opensearch_password = config.get_secret("opensearchAdminPassword")
    if settings.is_central:
        admin_user = require("minioAdminUser", "on the central stack")
        admin_password = require("minioAdminPassword", "on the central stack")
        ca_key = _platform_ca_key(config, settings.tls)
        return Secrets(
            ssh_key,
            admin_user,
            admin_password,
            opensearch_password,
            ca_key,
            ssh_private_key_password=ssh_key_password,
            kubeconfig=kubeconfig,
        )
    for key in ("minioAdminUser", "minioAdminPassword", "platformCaKey"):
        if config.get(key) is not None:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:{key} is set on an edge stack; edges never hold "
                "MinIO admin credentials or the CA key (they read their own credentials and certificates "
                f"from the central stack). Remove it with `pulumi config rm {key}`"
            )
    return Secrets(
        ssh_key, None, None, opensearch_password, ssh_private_key_password=ssh_key_password, kubeconfig=kubeconfig
    )


def _existing_cluster_kubeconfig(config: pulumi.Config, settings: Settings) -> pulumi.Output[str] | None:
    """An existing cluster's stack needs `kubeconfig` and takes no SSH key; a Minikube stack refuses it."""
    present = config.get("kubeconfig") is not None
    if settings.on_minikube:
        if present:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:kubeconfig is set on a Minikube stack, whose node makes its own "
                "kubeconfig; remove it with `pulumi config rm kubeconfig`, or describe the existing cluster it "
                "belongs to in a `kubernetes` section instead of host/minikube/node"
            )
        return None
    if not present:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:kubeconfig is required on a stack for an existing cluster "
            "(`kubernetes`): `pulumi config set --secret kubeconfig < kubeconfig.yaml`"
        )
    for key in ("sshPrivateKey", "sshPrivateKeyPassword"):
        if config.get(key) is not None:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:{key} is set on a stack for an existing cluster, which runs no "
                f"host command; remove it with `pulumi config rm {key}`"
            )
    return config.require_secret("kubeconfig")


def _platform_ca_key(config: pulumi.Config, tls: TlsSettings) -> pulumi.Output[str] | None:
    """The operator's CA key: required with `tls.caCertificate`, refused without it."""
    has_key = config.get("platformCaKey") is not None
    if tls.ca_certificate is not None and not has_key:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:tls.caCertificate is set, so its private key is required: "
            "`pulumi config set --secret platformCaKey < ca-key.pem`"
        )
    if tls.ca_certificate is None and has_key:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:platformCaKey is set without tls.caCertificate; set the CA "
            "certificate too, or remove the key with `pulumi config rm platformCaKey` to use the generated CA"
        )
    return config.require_secret("platformCaKey") if has_key else None


def _read_alerting_secrets(config: pulumi.Config, settings: Settings) -> dict[str, pulumi.Output[str] | None]:
    """A receiver needs its secret, and a secret needs its receiver (its NetworkPolicy egress)."""
    found: dict[str, pulumi.Output[str] | None] = {}
    for receiver, key, field_name in (
        ("webhook", "alertWebhookUrl", "alert_webhook_url"),
        ("email", "alertSmtpPassword", "alert_smtp_password"),
    ):
        configured = getattr(settings.alerting, receiver) is not None
        present = config.get(key) is not None
        if configured and not present:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:{key} is required with alerting.{receiver}; set it with "
                f"`pulumi config set --secret {key} <value>`"
            )
        if present and not configured:
            raise SettingsError(
                f"invalid stack config: {PROJECT}:{key} is set but alerting.{receiver} is not: Alertmanager "
                f"needs the receiver's egress to reach it; add alerting.{receiver} or `pulumi config rm {key}`"
            )
        found[field_name] = config.require_secret(key) if present else None
    return found


def _read_secrets(config: pulumi.Config, settings: Settings) -> Secrets:
    return dataclasses.replace(_read_core_secrets(config, settings), **_read_alerting_secrets(config, settings))


def load() -> tuple[Settings, Secrets]:
    """Read and validate the current stack's config; the program's first step."""
    config = pulumi.Config(PROJECT)
    settings = parse_settings(decode_config(config.get), pulumi.get_stack())
    return settings, _read_secrets(config, settings)
