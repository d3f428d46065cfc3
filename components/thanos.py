"""ThanosCentral: Query, Query Frontend, Store Gateway and Compactor on the central cluster.

Typed Kubernetes objects, all on the sidecars' Thanos version. Query fans out to the local
sidecar (DNS SRV of the chart's headless `kps-thanos-discovery` Service), the Store Gateway and
every edge's NodePort 30901 on its host address: the central cluster's DNS cannot resolve another
cluster's `svc.cluster.local` names. It reads them from an endpoint file (`--endpoint.sd-config-file`,
a ConfigMap), the form that takes gRPC client settings per endpoint, so the edges' cross-host
connections can get TLS of their own while the in-cluster ones stay as they are. Deduplication is
on `prometheus_replica` only, never on `cluster`, or the clusters' identical series would be merged.
The Compactor is a singleton with explicit retention and downsampling, so the bucket does not grow
forever and long-range queries stay fast. None of them talks to the Kubernetes API: own
ServiceAccount, no token mounted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import versions
from components.cluster_tls import (
    CA_KEY,
    CERTIFICATE_KEY,
    GRPC_TLS_DIR,
    PRIVATE_KEY_KEY,
    THANOS_GRPC_TLS_SECRET,
    TLS_CHECKSUM,
)
from components.kube import (
    MANAGED_BY,
    Component,
    basic_auth,
    resources,
    restricted_container_security,
    restricted_pod_security,
)
from components.kube_prometheus_stack import (
    REPLICA_LABEL,
    SELECTOR_LABELS,
    THANOS_DISCOVERY_SERVICE,
)
from components.namespaces import MONITORING
from components.object_storage import OBJSTORE_KEY, OBJSTORE_MOUNT_DIR, thanos_objstore_secret
from components.settings import EdgeCluster, ThanosSettings, quantity_bytes
from components.traefik import LoginMiddleware, https_ingress

QUERY = "thanos-query"
QUERY_FRONTEND = "thanos-query-frontend"
STORE = "thanos-store"
COMPACTOR = "thanos-compactor"
GRPC_PORT = 10901
HTTP_PORT = 10902
FRONTEND_PORT = 9090
DATA_DIR = "/var/thanos"
UI_AUTH_SECRET = "thanos-ui-basic-auth"
QUERY_FRONTEND_URL = f"http://{QUERY_FRONTEND}.{MONITORING}.svc:{FRONTEND_PORT}"
"""What Grafana (same cluster) queries: the frontend splits and caches, then asks Query."""
FRONTEND_CACHE_SIZE = "128MB"
"""In-memory results cache of the Query Frontend, well inside its 512Mi memory limit."""
QUERY_ENDPOINTS = f"{QUERY}-endpoints"
"""ConfigMap holding Query's endpoint file."""
ENDPOINTS_FILE = "endpoints.yaml"
ENDPOINTS_DIR = "/etc/thanos/endpoints"
ENDPOINTS_CHECKSUM = "checksum/endpoints"
"""Pod-template annotation of Query: the endpoint file's hash, so a changed file rolls the pods."""


class ThanosCentralArgs(TypedDict):
    namespace: str
    """The monitoring namespace (where the object-store Secrets and the sidecar's Service are)."""
    thanos_version: str
    """Thanos image tag, the same as the sidecars'."""
    hostname: str
    """Ingress host of the Query Frontend UI, e.g. thanos.mkube-196.miribit.lab."""
    edges: Sequence[EdgeCluster]
    """Edge clusters whose sidecars Query reaches on `<host>:<sidecarPort>`."""
    storage_class: str
    """The StorageClass of the Store Gateway's and the Compactor's volumes."""
    thanos: ThanosSettings
    """Replicas, retention and sizes."""
    grpc_tls_checksum: pulumi.Input[str]
    """Hash of Query's client certificate (`ClusterTls.grpc_checksum`): a renewal rolls Query."""


@dataclass(frozen=True)
class Workload:
    """One Thanos component: its name (pod label, Service, ServiceAccount) and container."""

    name: str
    subcommand: str
    args: list[str]
    ports: dict[str, int]
    resources: dict[str, Any]
    volume_mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    pod_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name}

    @property
    def labels(self) -> dict[str, str]:
        return self.selector | {"app.kubernetes.io/component": self.subcommand} | MANAGED_BY


def snake_case(spec: dict[str, Any]) -> dict[str, Any]:
    """The camelCase keys of the `kube.py` builders as keyword arguments of the typed Args classes."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in spec.items()}


def image(version: str) -> str:
    return versions.pinned(f"{versions.THANOS_IMAGE}:{version}")


def thanos_bytes(quantity: str) -> str:
    """A Kubernetes size as Thanos writes it (`MB` means MiB there)."""
    return f"{quantity_bytes(quantity) // 2**20}MB"


def common_args() -> list[str]:
    """Flags of every Thanos component: info logs, and a Go heap that knows the container's memory
    limit (GOMEMLIMIT at 90% of it), so the garbage collector works harder before the kernel kills it."""
    return ["--log.level=info", "--enable-auto-gomemlimit"]


def edge_client_config(host: str) -> dict[str, Any]:
    """gRPC client settings for one edge: mutual TLS with Query's certificate (from the StoreAPI
    client CA, the only one the sidecars accept), verifying the edge sidecar's certificate against
    the platform CA (`ca.crt` of central's `thanos-grpc-tls`) for the address dialled (its IP SAN)."""
    return {
        "server_name": host,
        "tls_config": {
            "enabled": True,
            "cert_file": f"{GRPC_TLS_DIR}/{CERTIFICATE_KEY}",
            "key_file": f"{GRPC_TLS_DIR}/{PRIVATE_KEY_KEY}",
            "ca_file": f"{GRPC_TLS_DIR}/{CA_KEY}",
            "min_version": "1.3",
        },
    }


def endpoint(address: str, client_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of Query's endpoint file.

    Not `strict`: a strict endpoint stays in the fan-out while it fails its health checks, so an
    edge that is down would hold every query up instead of dropping out of it (partial response),
    and Thanos refuses `strict` for DNS SD addresses. Not a `group`: each address is a StoreAPI to
    fan out to, not replicas to take turns with. Thanos 0.42 also takes a `client_config` here (gRPC
    client settings such as `tls_config` for this endpoint only), but applies it to static addresses
    only, not to DNS SD ones: TLS to an edge goes on that edge's entry.
    """
    entry: dict[str, Any] = {"address": address, "strict": False, "group": False}
    if client_config is not None:
        entry["client_config"] = client_config
    return entry


def query_endpoints(edges: Sequence[EdgeCluster]) -> list[dict[str, Any]]:
    """The StoreAPIs Query fans out to: the local sidecar and the Store Gateway through DNS SRV of
    their headless Services (in-cluster, plaintext: pod to pod on this one host, behind
    NetworkPolicies), and every edge's sidecar on NodePort 30901 of its host, over mutual TLS
    (the only StoreAPI traffic that crosses the network)."""
    local = f"{MONITORING}.svc.cluster.local"
    return [
        endpoint(f"dnssrv+_grpc._tcp.{THANOS_DISCOVERY_SERVICE}.{local}"),
        endpoint(f"dnssrv+_grpc._tcp.{STORE}.{local}"),
        *(endpoint(f"{edge.host}:{edge.sidecar_port}", edge_client_config(edge.host)) for edge in edges),
    ]


def endpoints_file(edges: Sequence[EdgeCluster]) -> str:
    """Query's `--endpoint.sd-config-file` (Thanos >= 0.42)."""
    return yaml.safe_dump({"endpoints": query_endpoints(edges)}, sort_keys=False)


def checksum(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def query(endpoints: str, grpc_tls_checksum: pulumi.Input[str]) -> Workload:
    """Query, given the content of its endpoint file (mounted from the ConfigMap `thanos-query-endpoints`)
    and the hash of its client certificate (mounted from the Secret `thanos-grpc-tls`)."""
    return Workload(
        name=QUERY,
        subcommand="query",
        args=[
            f"--http-address=0.0.0.0:{HTTP_PORT}",
            f"--grpc-address=0.0.0.0:{GRPC_PORT}",
            *common_args(),
            f"--query.replica-label={REPLICA_LABEL}",
            "--query.auto-downsampling",
            # An edge that is down must not fail every query; Grafana shows the partial-response warning.
            "--query.partial-response",
            # Instead of `--endpoint` flags: deprecated (0.42's --help) and unable to carry per-endpoint TLS.
            f"--endpoint.sd-config-file={ENDPOINTS_DIR}/{ENDPOINTS_FILE}",
        ],
        ports={"grpc": GRPC_PORT, "http": HTTP_PORT},
        # Per replica, and there are two: Query fans out to a few StoreAPIs (three clusters' sidecars
        # and the Store Gateway) for a handful of dashboards; its CPU goes to merging series at query
        # time, which an idle request does not make faster. Requests are guarantees under
        # contention, not caps (no CPU limits), so a burst takes the node's idle CPU.
        resources=resources(cpu="50m", memory="256Mi", memory_limit="1Gi"),
        # A directory mount (no subPath), so the kubelet also updates the file in a running pod.
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="endpoints", mount_path=ENDPOINTS_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="grpc-tls", mount_path=GRPC_TLS_DIR, read_only=True),
        ],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="endpoints", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=QUERY_ENDPOINTS)
            ),
            k8s.core.v1.VolumeArgs(
                name="grpc-tls", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=THANOS_GRPC_TLS_SECRET)
            ),
        ],
        # Thanos re-reads the file only every 5m (`--endpoint.sd-config-reload-interval`) and the
        # kubelet projects a ConfigMap change only after its sync period: roll the pods instead.
        # Likewise for a renewed client certificate, which Thanos reads when it dials.
        pod_annotations={ENDPOINTS_CHECKSUM: checksum(endpoints), TLS_CHECKSUM: grpc_tls_checksum},
    )


def in_memory_cache(max_size: str, validity: str) -> str:
    """A Query Frontend response-cache config (YAML; JSON is YAML). `validity` bounds how long a result
    that missed an unreachable edge is served from the cache (Thanos's `0s` keeps it until evicted)."""
    config = {"max_size": max_size, "validity": validity}
    return json.dumps({"type": "IN-MEMORY", "config": config}, sort_keys=True)


def query_frontend(settings: ThanosSettings) -> Workload:
    response_cache = in_memory_cache(FRONTEND_CACHE_SIZE, settings.query_cache_validity)
    return Workload(
        name=QUERY_FRONTEND,
        subcommand="query-frontend",
        args=[
            f"--http-address=0.0.0.0:{FRONTEND_PORT}",
            *common_args(),
            f"--query-frontend.downstream-url=http://{QUERY}.{MONITORING}.svc:{HTTP_PORT}",
            "--query-frontend.compress-responses",
            "--query-range.split-interval=24h",
            "--query-range.max-retries-per-request=3",
            f"--query-range.response-cache-config={response_cache}",
            "--labels.split-interval=24h",
            # Raw samples live `thanos.retentionRaw` only: a range older than that that asks for raw
            # data (auto-downsampling picks step/5) comes back empty or cut short. Ask again for the
            # 5m and 1h data that is still there instead of showing a gap.
            "--query-range.request-downsampled",
        ],
        ports={"http": FRONTEND_PORT},
        resources=resources(cpu="50m", memory="128Mi", memory_limit="512Mi"),
    )


def objstore_mount() -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name="objstore", mount_path=OBJSTORE_MOUNT_DIR, read_only=True)


def data_mount(path: str) -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name="data", mount_path=path)


def store(settings: ThanosSettings) -> Workload:
    limit = quantity_bytes(settings.store_memory_limit)
    return Workload(
        name=STORE,
        subcommand="store",
        args=[
            f"--data-dir={DATA_DIR}/store",
            f"--objstore.config-file={OBJSTORE_MOUNT_DIR}/{OBJSTORE_KEY}",
            f"--http-address=0.0.0.0:{HTTP_PORT}",
            f"--grpc-address=0.0.0.0:{GRPC_PORT}",
            *common_args(),
            # Index cache at most half the limit (settings), chunk pool a quarter: the rest is for series.
            f"--index-cache-size={thanos_bytes(settings.store_index_cache_size)}",
            f"--chunk-pool-size={limit // 4 // 2**20}MB",
            "--store.enable-index-header-lazy-reader",
        ],
        ports={"grpc": GRPC_PORT, "http": HTTP_PORT},
        resources=resources(cpu="100m", memory=f"{limit // 2 // 2**20}Mi", memory_limit=settings.store_memory_limit),
        volume_mounts=[data_mount(f"{DATA_DIR}/store"), objstore_mount()],
    )


def retention_args(settings: ThanosSettings) -> list[str]:
    """How long the bucket keeps each resolution (`thanos.retention*`). Raw samples serve zooming
    into the recent past; the 5m and 1h blocks carry the long-term history, which the Query Frontend
    falls back to for older ranges (`--query-range.request-downsampled`). The Compactor downsamples
    before it deletes: raw blocks become 5m blocks at 40h, 5m blocks 1h blocks at 10 days (the
    settings' minimums)."""
    return [
        f"--retention.resolution-raw={settings.retention_raw}",
        f"--retention.resolution-5m={settings.retention_5m}",
        f"--retention.resolution-1h={settings.retention_1h}",
    ]


def compactor(settings: ThanosSettings) -> Workload:
    return Workload(
        name=COMPACTOR,
        subcommand="compact",
        args=[
            # Keep running and compact every wait interval (one replica: compaction is not shardable).
            "--wait",
            "--wait-interval=5m",
            f"--data-dir={DATA_DIR}/compact",
            f"--objstore.config-file={OBJSTORE_MOUNT_DIR}/{OBJSTORE_KEY}",
            f"--http-address=0.0.0.0:{HTTP_PORT}",
            *common_args(),
            *retention_args(settings),
            # Store Gateways stop using a block 24h after it is marked for deletion (their default
            # `--ignore-deletion-marks-delay`); deleting it at 48h never pulls it from under them.
            "--delete-delay=48h",
            "--compact.concurrency=1",
            "--downsample.concurrency=1",
        ],
        ports={"http": HTTP_PORT},
        resources=resources(cpu="100m", memory="512Mi", memory_limit="2Gi"),
        volume_mounts=[data_mount(f"{DATA_DIR}/compact"), objstore_mount()],
    )


def container(workload: Workload, version: str) -> k8s.core.v1.ContainerArgs:
    def probe(path: str) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=6,
        )

    return k8s.core.v1.ContainerArgs(
        name=workload.subcommand,
        image=image(version),
        args=[workload.subcommand, *workload.args],
        ports=[k8s.core.v1.ContainerPortArgs(name=name, container_port=port) for name, port in workload.ports.items()],
        resources=k8s.core.v1.ResourceRequirementsArgs(**workload.resources),
        security_context=k8s.core.v1.SecurityContextArgs(**snake_case(restricted_container_security())),
        readiness_probe=probe("/-/ready"),
        liveness_probe=probe("/-/healthy"),
        volume_mounts=workload.volume_mounts or None,
    )


def pod_template(
    workload: Workload, version: str, volumes: list[k8s.core.v1.VolumeArgs] | None = None
) -> k8s.core.v1.PodTemplateSpecArgs:
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=workload.labels, annotations=workload.pod_annotations or None),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=workload.name,
            automount_service_account_token=False,
            security_context=k8s.core.v1.PodSecurityContextArgs(**snake_case(restricted_pod_security())),
            containers=[container(workload, version)],
            volumes=[*workload.volumes, *(volumes or [])] or None,
            termination_grace_period_seconds=120,
            # Replicas on different nodes where there are several; on one node they still start.
            topology_spread_constraints=[
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="kubernetes.io/hostname",
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=workload.selector),
                )
            ],
        ),
    )


def objstore_volume(component: str) -> k8s.core.v1.VolumeArgs:
    """The component's own object-store Secret (`objstore.yml`, and `ca.crt` when a CA is configured)."""
    return k8s.core.v1.VolumeArgs(
        name="objstore", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=thanos_objstore_secret(component))
    )


def data_claim(storage_class: str, size: str) -> k8s.core.v1.PersistentVolumeClaimArgs:
    return k8s.core.v1.PersistentVolumeClaimArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            storage_class_name=storage_class,
            access_modes=["ReadWriteOnce"],
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": size}),
        ),
    )


def ui_login(namespace: str) -> LoginMiddleware:
    """The basic-auth login in front of the Query Frontend; Traefik's component creates the Middleware
    (its CRD comes with Traefik)."""
    return LoginMiddleware(namespace, UI_AUTH_SECRET, "Thanos")


class ThanosCentral(Component):
    """Thanos Query (+PDB), Query Frontend (+ingress), Store Gateway and Compactor.

    Its options wait for Longhorn (volumes), the object-store Secrets and kube-prometheus-stack
    (the ServiceMonitor CRD, and the sidecar Query reads from).
    """

    ui_password: pulumi.Output[str]

    def __init__(self, name: str, args: ThanosCentralArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("thanos:ThanosCentral", name, opts)
        self._ns, self._storage_class = args["namespace"], args["storage_class"]
        version, settings = args["thanos_version"], args["thanos"]

        endpoints = endpoints_file(args["edges"])
        querier = query(endpoints, args["grpc_tls_checksum"])
        self._deployment(querier, version, settings.query_replicas, self._endpoints_config_map(querier, endpoints))
        self._pod_disruption_budget(querier)
        frontend = query_frontend(settings)
        self._deployment(frontend, version, 1)
        gateway = store(settings)
        self._statefulset(
            gateway, version, settings.store_storage_size, objstore_volume("store"), settings.store_replicas
        )
        if settings.store_replicas > 1:
            self._pod_disruption_budget(gateway)
        self._statefulset(compactor(settings), version, settings.compactor_storage_size, objstore_volume("compactor"))
        self.ui_password = self._ingress(frontend, args["hostname"], name)
        self.register_outputs({"uiPassword": self.ui_password})

    def _metadata(self, name: str, labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=self._ns, labels=labels)

    def _common(self, workload: Workload, headless: bool) -> None:
        """ServiceAccount (no API token: Thanos needs no API access), Service and ServiceMonitor of a workload."""
        k8s.core.v1.ServiceAccount(
            workload.name,
            metadata=self._metadata(workload.name, workload.labels),
            automount_service_account_token=False,
            opts=self.child(),
        )
        k8s.core.v1.Service(
            workload.name,
            metadata=self._metadata(workload.name, workload.labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None" if headless else None,
                selector=workload.selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port_name)
                    for port_name, port in workload.ports.items()
                ],
            ),
            opts=self.child(),
        )
        k8s.apiextensions.CustomResource(
            workload.name,
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=self._metadata(workload.name, workload.labels | SELECTOR_LABELS),
            spec={
                "selector": {"matchLabels": workload.selector},
                "endpoints": [{"port": "http", "interval": "30s"}],
            },
            opts=self.child(),
        )

    def _endpoints_config_map(self, querier: Workload, endpoints: str) -> k8s.core.v1.ConfigMap:
        """Query's endpoint file."""
        return k8s.core.v1.ConfigMap(
            QUERY_ENDPOINTS,
            metadata=self._metadata(QUERY_ENDPOINTS, querier.labels),
            data={ENDPOINTS_FILE: endpoints},
            opts=self.child(),
        )

    def _deployment(self, workload: Workload, version: str, replicas: int, *depends_on: pulumi.Resource) -> None:
        self._common(workload, headless=False)
        k8s.apps.v1.Deployment(
            workload.name,
            metadata=self._metadata(workload.name, workload.labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=workload.selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                template=pod_template(workload, version),
            ),
            opts=self.child(*depends_on),
        )

    def _pod_disruption_budget(self, workload: Workload) -> None:
        k8s.policy.v1.PodDisruptionBudget(
            workload.name,
            metadata=self._metadata(workload.name, workload.labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=workload.selector),
            ),
            opts=self.child(),
        )

    def _statefulset(
        self, workload: Workload, version: str, size: str, objstore: k8s.core.v1.VolumeArgs, replicas: int = 1
    ) -> None:
        """Replicas with a volume each; the Compactor keeps one, which is what makes it a singleton."""
        self._common(workload, headless=True)
        k8s.apps.v1.StatefulSet(
            workload.name,
            metadata=self._metadata(workload.name, workload.labels),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                replicas=replicas,
                service_name=workload.name,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=workload.selector),
                template=pod_template(workload, version, volumes=[objstore]),
                volume_claim_templates=[data_claim(self._storage_class, size)],
            ),
            opts=self.child(),
        )

    def _ingress(self, frontend: Workload, hostname: str, name: str) -> pulumi.Output[str]:
        """`thanos.<domain>` to the Query Frontend, behind basic auth (Thanos has no login of its own)."""
        auth = basic_auth(self, name, UI_AUTH_SECRET, self._ns)
        https_ingress(
            QUERY_FRONTEND,
            self._ns,
            hostname,
            QUERY_FRONTEND,
            "http",
            frontend.labels,
            ui_login(self._ns).ingress_annotations(),
            self.child(auth.secret),
        )
        return auth.password
