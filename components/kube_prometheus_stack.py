"""KubePrometheusStack: Prometheus with a Thanos sidecar, Alertmanager and Grafana.

Every Prometheus carries the external label `cluster: <stack name>`, unique so that Query and the
Compactor never take the clusters' otherwise identical series for one another, keeps a short local
retention and lets its Thanos sidecar upload 2h blocks to the bucket. Central Query reaches the
sidecar through the headless `kps-thanos-discovery` Service (central) or NodePort 30901 on the
host address (edges: central's DNS cannot resolve another cluster's Service names). On central,
Grafana's default datasource is Thanos (through the Query Frontend); the local Prometheus stays as
the second one.

Least privilege, where the chart's values allow it (README, "Security"): node-exporter keeps only the
host views it reports on; kube-state-metrics exports no Secret metadata and so reads no Secret;
Grafana's sidecars read ConfigMaps of Grafana's namespace only, and Grafana runs read-only;
Alertmanager mounts no API token; the admission certificate Jobs run as `nobody`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import alertmanager, versions
from components.cluster_tls import (
    CA_KEY,
    CERTIFICATE_KEY,
    GRPC_TLS_DIR,
    PRIVATE_KEY_KEY,
    THANOS_GRPC_TLS_SECRET,
    TLS_CHECKSUM,
)
from components.kube import MANAGED_BY, Component, from_secret_config, helm_release, resources
from components.object_storage import OBJSTORE_KEY, OBJSTORE_MOUNT_DIR, thanos_objstore_secret
from components.settings import AlertingSettings, MonitoringSettings, host_cidr, quantity_bytes
from components.traefik import INGRESS_CLASS, https_only, ingress_tls

RELEASE = "kube-prometheus-stack"
FULLNAME = "kps"
"""`fullnameOverride`: every resource the chart names itself starts with this."""
PROMETHEUS = f"{FULLNAME}-prometheus"
"""Name of the Prometheus custom resource, its Service (port 9090) and its scrape `job`."""
THANOS_DISCOVERY_SERVICE = f"{FULLNAME}-thanos-discovery"
"""Headless Service of the sidecar's gRPC (and metrics) port; the chart's `thanosService`."""
SIDECAR_NODE_PORT = 30901
"""Edge clusters expose the sidecar's StoreAPI on this port of the host address: central's DNS
cannot resolve another cluster's Service names."""
SIDECAR_GRPC_PORT = 10901
"""The sidecar's StoreAPI (gRPC), a container port of the Prometheus pod."""
SIDECAR_HTTP_PORT = 10902
"""The sidecar's metrics."""
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_MESH_PORT = 9094
CONFIG_RELOADER_PORT = 8080
"""The operator's config-reloader sidecar in the Prometheus and Alertmanager pods (metrics)."""
GRAFANA_PORT = 3000
KUBE_STATE_METRICS_PORT = 8080
OPERATOR_PORT = 10250
"""The Prometheus Operator's HTTPS port: its metrics and the admission webhook the API server calls."""
NODE_EXPORTER_PORT = 9100
SIDECAR_JOB = "thanos-sidecar"
"""Prometheus `job` label of the sidecar's metrics. The ServiceMonitor scrapes the Service
`kps-thanos-discovery` and relabels the job to this name, the one the upstream Thanos mixin
selects (`job=~".*thanos-sidecar.*"`): its dashboards and alerts work unchanged if imported."""
GRAFANA_SERVICE = f"{RELEASE}-grafana"
"""The Grafana subchart names itself after the release, not `fullnameOverride`."""
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
GRAFANA_SIDECAR_ROLE = "grafana-sidecars"
"""Our Role for Grafana's dashboard and datasource sidecars: ConfigMaps of Grafana's namespace only.
The chart's own Role (or, not namespaced, ClusterRole) would also let them read every Secret."""
GRAFANA_SIDECAR_RULES: list[dict[str, Any]] = [
    {"api_groups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
]
"""What the dashboard and datasource sidecars need: to list and watch ConfigMaps (in one namespace)."""
GRAFANA_TMP_VOLUMES = {"grafana": "grafana-tmp", "dashboards": "sc-dashboard-tmp", "datasources": "sc-datasources-tmp"}
"""An emptyDir /tmp per container of the Grafana pod: their root filesystems are read-only."""
TMP_SIZE_LIMIT = "64Mi"
NODE_EXPORTER_UID = 65534
"""The chart's (and the image's) `nobody`."""
ADMISSION_JOB_UID = 65534
"""The admission webhook certificate Jobs: `nobody` instead of the chart's UID 2000, which could be a
host user's."""
CLUSTER_LABEL = "cluster"
"""External label that tells the clusters apart; never a replica label, or Query would merge the clusters."""
REPLICA_LABEL = "prometheus_replica"
"""The operator's replica external label; Query deduplicates on it and on nothing else."""
SELECTOR_LABELS = {"release": RELEASE}
"""Labels a ServiceMonitor or PrometheusRule needs to be picked up (the chart's default selectors)."""
THANOS_DATASOURCE_UID = "thanos"
OBJSTORE_VOLUME = "thanos-objstore"
GRPC_TLS_VOLUME = "thanos-grpc-tls"
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": PROMETHEUS}
"""Labels the operator puts on the Prometheus pods (Prometheus and its Thanos sidecar container)."""
CRD_UPGRADE_POD_LABELS = {"app": f"{RELEASE}-crds-upgrade"}
"""Labels of the chart's CRD upgrade Job pod (a Helm hook that talks to the API server only). The
chart labels only the Job itself, so without these its pod would match no NetworkPolicy."""


@dataclass(frozen=True)
class SidecarExposure:
    """The edge sidecar's StoreAPI for central: NodePort 30901 of the node(s), or a LoadBalancer on 10901."""

    service_type: str
    central_address: str
    """The one source admitted: also the load balancer's source range, where the cloud filters before us."""
    annotations: dict[str, str]

    def service_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "enabled": True,
            "type": self.service_type,
            # Keep the client address: the NetworkPolicy admits only the central cluster.
            "externalTrafficPolicy": "Local",
        }
        if self.annotations:
            values["annotations"] = self.annotations
        if self.service_type == "NodePort":
            values["nodePort"] = SIDECAR_NODE_PORT
        else:
            values["loadBalancerSourceRanges"] = [host_cidr(self.central_address)]
        return values


class KubePrometheusStackArgs(TypedDict):
    namespace: str
    """The monitoring namespace."""
    node_exporter_namespace: str
    """node-exporter's own namespace (it runs on the host network with the host's PID namespace)."""
    cluster_name: str
    """The stack name: the unique `cluster` external label of this Prometheus."""
    central: bool
    """Central gets the local discovery Service only; edges also the Service central dials (`sidecar_exposure`)."""
    sidecar_exposure: SidecarExposure | None
    """Edges: how the sidecar's StoreAPI is exposed to central. Central: None."""
    storage_class: str
    """The StorageClass of Prometheus', Alertmanager's and Grafana's volumes."""
    grafana_hostname: str
    """Ingress host of Grafana, e.g. grafana.mkube-196.miribit.lab."""
    grafana_url: str
    """Where users reach Grafana (`https://grafana.<domain>/`, with the port behind a NodePort): its root_url."""
    chart_version: str
    """Pinned kube-prometheus-stack chart version."""
    thanos_version: str
    """Thanos image tag of the sidecar (the same as the central components)."""
    monitoring: MonitoringSettings
    """Retention, sizes and memory of Prometheus, Alertmanager and Grafana."""
    thanos_datasource_url: str | None
    """Central only: URL of the Thanos Query Frontend, Grafana's default datasource."""
    objstore_ca: bool
    """The object-store config references `ca.crt` (a CA is configured): mount the Secret for the sidecar."""
    grpc_tls_checksum: pulumi.Input[str] | None
    """Edges: hash of the sidecar's gRPC certificate and client CA (`ClusterTls.grpc_checksum`); the
    sidecar serves its StoreAPI with mutual TLS from `thanos-grpc-tls`, and a new certificate or
    client CA rolls Prometheus. Central: None."""
    service_monitors: list[dict[str, Any]]
    """Scrape targets of components installed before this chart's CRDs exist (Longhorn), in the
    chart's `additionalServiceMonitors` form: the chart creates them once the CRDs are there."""
    alerting: AlertingSettings
    """Alertmanager's receivers (none: every alert goes to the `null` receiver, with a warning)."""
    alert_webhook_url: pulumi.Input[str] | None
    """The secret config `alertWebhookUrl` (with `alerting.webhook`)."""
    alert_smtp_password: pulumi.Input[str] | None
    """The secret config `alertSmtpPassword` (with `alerting.email`)."""


def retention_size(storage: str) -> str:
    """85% of the volume in Prometheus units, so size-based retention acts before the disk is full."""
    return f"{quantity_bytes(storage) * 85 // 100 // 2**20}MiB"


def volume_claim(storage_class: str, size: str) -> dict[str, Any]:
    return {
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
    }


def thanos_sidecar(args: KubePrometheusStackArgs) -> dict[str, Any]:
    """`prometheusSpec.thanos`: the sidecar container the operator adds to the Prometheus pod."""
    sidecar: dict[str, Any] = {
        "image": versions.pinned(f"{versions.THANOS_IMAGE}:{args['thanos_version']}"),
        "version": args["thanos_version"],
        "objectStorageConfig": {
            "existingSecret": {"name": thanos_objstore_secret("sidecar"), "key": OBJSTORE_KEY},
        },
        # Idle between uploads: it ships one 2h block every two hours and proxies Query's reads.
        "resources": resources(cpu="25m", memory="128Mi", memory_limit="512Mi"),
    }
    mounts = []
    if args["objstore_ca"]:
        mounts.append({"name": OBJSTORE_VOLUME, "mountPath": OBJSTORE_MOUNT_DIR, "readOnly": True})
    if args["grpc_tls_checksum"] is not None:
        mounts.append({"name": GRPC_TLS_VOLUME, "mountPath": GRPC_TLS_DIR, "readOnly": True})
        sidecar["grpcServerTlsConfig"] = grpc_server_tls()
    if mounts:
        sidecar["volumeMounts"] = mounts
    return sidecar


def grpc_server_tls() -> dict[str, str]:
    """The edge sidecar's StoreAPI: its certificate, and the CA every client certificate must chain to.

    With a client CA, Thanos requires and verifies a client certificate on every connection (the
    chain and the `client_auth` usage, nothing else). `ca.crt` is the StoreAPI client CA, which signs
    central Query's certificate and nothing else, so only Query gets past the handshake on 30901;
    not the platform CA, which also signs every cluster's OpenSearch node certificate (`client_auth`
    too). The NetworkPolicy's source-address rule stays as a second fence."""
    return {
        "certFile": f"{GRPC_TLS_DIR}/{CERTIFICATE_KEY}",
        "keyFile": f"{GRPC_TLS_DIR}/{PRIVATE_KEY_KEY}",
        "caFile": f"{GRPC_TLS_DIR}/{CA_KEY}",
        "minVersion": "TLS13",
    }


def prometheus_values(args: KubePrometheusStackArgs) -> dict[str, Any]:
    monitoring = args["monitoring"]
    spec: dict[str, Any] = {
        "image": versions.chart_image(versions.PROMETHEUS_IMAGE),
        "externalLabels": {CLUSTER_LABEL: args["cluster_name"]},
        "replicas": 1,
        "retention": monitoring.prometheus_retention,
        "retentionSize": retention_size(monitoring.prometheus_storage_size),
        # No `disableCompaction`: with Prometheus >= 3.9 and a sidecar >= 0.41 the operator keeps local
        # compaction and points Prometheus at the sidecar's shipper file
        # (`--storage.tsdb.delay-compact-file.path`), so a 2h block is compacted only once uploaded.
        # Forcing it off would only cost local disk and query speed; for older versions the operator
        # turns compaction off by itself.
        # One node's targets (kubelet and cAdvisor, the API server, kube-state-metrics, node-exporter,
        # the platform's own exporters) every 30s: on the order of 1-2 thousand samples a second,
        # a small share of one core (Prometheus's cost is per sample, and its 2-hourly head
        # compaction is a burst). An estimate, not a measurement (no running platform here); no CPU
        # limit, so rule evaluation and compaction take the node's idle CPU.
        "resources": resources(
            cpu="200m", memory=monitoring.prometheus_memory, memory_limit=monitoring.prometheus_memory_limit
        ),
        "storageSpec": {"volumeClaimTemplate": volume_claim(args["storage_class"], monitoring.prometheus_storage_size)},
        "thanos": thanos_sidecar(args),
    }
    volumes = []
    if args["objstore_ca"]:
        volumes.append({"name": OBJSTORE_VOLUME, "secret": {"secretName": thanos_objstore_secret("sidecar")}})
    if args["grpc_tls_checksum"] is not None:
        volumes.append({"name": GRPC_TLS_VOLUME, "secret": {"secretName": THANOS_GRPC_TLS_SECRET}})
        # The sidecar reads its certificate at start only: a renewed one rolls the pod.
        spec["podMetadata"] = {"annotations": {TLS_CHECKSUM: args["grpc_tls_checksum"]}}
    if volumes:
        spec["volumes"] = volumes
    values: dict[str, Any] = {
        "prometheusSpec": spec,
        # Headless Service for Query's DNS SRV discovery on central; the ServiceMonitor for the
        # sidecar's metrics needs it on every cluster (the upload alerts run locally).
        "thanosService": {"enabled": True},
        # The mixin's job name instead of the Service's (`SIDECAR_JOB`); the operator appends our
        # relabelings after its own, so this replaces the job it derived from the Service.
        "thanosServiceMonitor": {
            "enabled": True,
            "relabelings": [{"action": "replace", "targetLabel": "job", "replacement": SIDECAR_JOB}],
        },
        "additionalServiceMonitors": args["service_monitors"],
    }
    exposure = args["sidecar_exposure"]
    if exposure is not None:
        values["thanosServiceExternal"] = exposure.service_values()
    return values


def thanos_datasource(url: str) -> dict[str, Any]:
    """Grafana datasource for Thanos through the Query Frontend; the default one on central."""
    return {
        "name": "Thanos",
        "uid": THANOS_DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "isDefault": True,
        "editable": False,
        "jsonData": {"prometheusType": "Thanos", "timeInterval": "30s", "httpMethod": "POST"},
    }


def grafana_values(args: KubePrometheusStackArgs) -> dict[str, Any]:
    """Grafana with read-only root filesystems and namespaced, ConfigMap-only discovery.

    - The sidecars find dashboards and datasources in Grafana's namespace only (every dashboard and
      datasource ConfigMap of the platform is there), only among ConfigMaps, with our Role
      `grafana-sidecars` (`rbac.namespaced` + `useExistingRole`): no Secret of the cluster, nor of the
      namespace (the object-store keys, the receivers' credentials), is readable by Grafana's token.
    - Each container writes only to its volumes: the PVC (`/var/lib/grafana`), the search index, the
      sidecars' shared folders and a small emptyDir `/tmp` each (the sidecars' Python needs one).
    - No download at start: the background plugin installer (Grafana 12+) would fetch and replace
      bundled plugins, which a read-only image cannot take (and egress to the internet is closed
      anyway); the update checks and usage reporting are off for the same reason.
    """
    namespace = args["namespace"]
    read_only = {"readOnlyRootFilesystem": True}
    tmp = GRAFANA_TMP_VOLUMES
    values: dict[str, Any] = {
        "image": versions.chart_image(versions.GRAFANA_IMAGE),
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "ingress": {
            "enabled": True,
            "ingressClassName": INGRESS_CLASS,
            "annotations": https_only(),
            "hosts": [args["grafana_hostname"]],
            "path": "/",
            "tls": ingress_tls(args["grafana_hostname"]),
        },
        # Grafana builds its links and login redirects from root_url; the cookie never travels over HTTP.
        "grafana.ini": {
            "server": {"root_url": args["grafana_url"]},
            "security": {"cookie_secure": True},
            "plugins": {"preinstall_disabled": True, "preinstall_auto_update": False},
            "analytics": {"check_for_updates": False, "check_for_plugin_updates": False, "reporting_enabled": False},
        },
        "persistence": {
            "enabled": True,
            "type": "pvc",
            "storageClassName": args["storage_class"],
            "accessModes": ["ReadWriteOnce"],
            "size": args["monitoring"].grafana_storage_size,
        },
        # fsGroup already gives Grafana its volume; the chown init container would run as root.
        "initChownData": {"enabled": False},
        "testFramework": {"enabled": False},
        "resources": resources(cpu="50m", memory="256Mi", memory_limit="512Mi"),
        "rbac": {"namespaced": True, "useExistingRole": GRAFANA_SIDECAR_ROLE},
        "containerSecurityContext": read_only,
        "extraContainerVolumes": [
            {"name": volume, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}} for volume in tmp.values()
        ],
        "extraVolumeMounts": [{"name": tmp["grafana"], "mountPath": "/tmp", "readOnly": False}],
        "sidecar": {
            "image": versions.chart_image(versions.GRAFANA_SIDECAR_IMAGE),
            "resources": resources(cpu="10m", memory="64Mi", memory_limit="128Mi"),
            "securityContext": read_only,
            "dashboards": {
                "searchNamespace": namespace,  # the chart's default in kube-prometheus-stack is ALL
                "resource": "configmap",
                "extraMounts": [{"name": tmp["dashboards"], "mountPath": "/tmp"}],
            },
            "datasources": {
                "searchNamespace": namespace,
                "resource": "configmap",
                "extraMounts": [{"name": tmp["datasources"], "mountPath": "/tmp"}],
            },
        },
    }
    if args["thanos_datasource_url"] is not None:
        # The chart's local Prometheus datasource stays, as the second one (only one may be default).
        values["sidecar"]["datasources"].update({"defaultDatasourceEnabled": True, "isDefaultDatasource": False})
        values["additionalDataSources"] = [thanos_datasource(args["thanos_datasource_url"])]
    return values


def crds_values() -> dict[str, Any]:
    """The chart's CRDs, upgraded with the chart.

    `helm.v3.Release` runs Helm's own install and upgrade, and Helm creates a chart's `crds/` on
    the first install only, never on an upgrade: 55.5.0 -> 88.5.3 would leave the operator v0.70.0
    CRDs in place, and the API server would prune every field operator v0.93.1 and our values need
    from the custom resources. The chart's upgrade Job (a pre-install/pre-upgrade/pre-rollback hook)
    server-side-applies this chart version's CRDs before the new operator starts, and takes them
    over from Helm's field manager (`forceConflicts`). Rejected: `skip_crds` with the CRDs as Pulumi
    resources, which would need the CRD files outside the chart, and would put every Prometheus,
    ServiceMonitor and rule in the cluster one replaced or deleted CRD away from deletion.
    """
    return {
        "enabled": True,
        "upgradeJob": {
            "enabled": True,
            "image": {
                "busybox": versions.chart_image(versions.BUSYBOX_IMAGE),
                "kubectl": versions.chart_image(versions.KUBECTL_IMAGE),
                # The chart's template asks `upgradeJob.image.sha`, not `image.busybox.sha`, whether
                # busybox has a digest: set both.
                **versions.digest_value(versions.BUSYBOX_IMAGE),
            },
            "podLabels": CRD_UPGRADE_POD_LABELS,
            # kubectl parses ~4.5MB of CRD YAML; busybox (its init container) shares the block.
            "resources": resources(cpu="50m", memory="128Mi", memory_limit="512Mi"),
        },
    }


def alertmanager_values(args: KubePrometheusStackArgs) -> dict[str, Any]:
    """One replica; receivers and routing from the `alerting` settings, their secrets mounted from
    the Secret `alertmanager-receivers` (the configuration only names the files); no API token."""
    alerting = args["alerting"]
    spec: dict[str, Any] = {
        "image": versions.chart_image(versions.ALERTMANAGER_IMAGE),
        "replicas": 1,
        "storage": {
            "volumeClaimTemplate": volume_claim(args["storage_class"], args["monitoring"].alertmanager_storage_size)
        },
        "resources": resources(cpu="20m", memory="64Mi", memory_limit="128Mi"),
        # Neither Alertmanager nor its config-reloader calls the API server (the configuration and
        # the receivers' Secret are mounted files): no token in the pod.
        "automountServiceAccountToken": False,
    }
    if alertmanager.secret_data(alerting, args["alert_webhook_url"], args["alert_smtp_password"]):
        spec["secrets"] = [alertmanager.RECEIVERS_SECRET]
    return {"config": alertmanager.alertmanager_config(alerting), "alertmanagerSpec": spec}


def kube_prometheus_stack_values(args: KubePrometheusStackArgs) -> dict[str, Any]:
    # Minikube binds etcd, controller-manager, scheduler and kube-proxy metrics to 127.0.0.1:
    # their monitors would be down forever, and their alerts with them.
    unreachable = {"enabled": False}
    return {
        "fullnameOverride": FULLNAME,
        "crds": crds_values(),
        "defaultRules": {
            "rules": {
                "etcd": False,
                "kubeControllerManager": False,
                "kubeSchedulerAlerting": False,
                "kubeSchedulerRecording": False,
                "kubeProxy": False,
                "windows": False,
            }
        },
        "kubeEtcd": unreachable,
        "kubeControllerManager": unreachable,
        "kubeScheduler": unreachable,
        "kubeProxy": unreachable,
        "prometheus": prometheus_values(args),
        "alertmanager": alertmanager_values(args),
        "grafana": grafana_values(args),
        "prometheusOperator": {
            "image": versions.chart_image(versions.PROMETHEUS_OPERATOR_IMAGE),
            "resources": resources(cpu="50m", memory="128Mi", memory_limit="256Mi"),
            "prometheusConfigReloader": {
                "image": versions.chart_image(versions.PROMETHEUS_CONFIG_RELOADER_IMAGE),
                "resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi"),
            },
            "admissionWebhooks": {
                "patch": {
                    "image": versions.chart_image(versions.ADMISSION_CERTGEN_IMAGE),
                    "resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi"),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": ADMISSION_JOB_UID,
                        "runAsGroup": ADMISSION_JOB_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            },
        },
        # No Secret collector: its metrics (names, types, labels of every Secret) feed no rule or
        # dashboard, and without it kube-state-metrics' ClusterRole reads no Secret.
        "kube-state-metrics": {
            "image": versions.chart_image(versions.KUBE_STATE_METRICS_IMAGE, prefixed=True),
            "resources": resources(cpu="20m", memory="64Mi", memory_limit="128Mi"),
            "collectorsExclude": ["secrets"],
        },
        "prometheus-node-exporter": node_exporter_values(args["node_exporter_namespace"]),
    }


def node_exporter_values(namespace: str) -> dict[str, Any]:
    """node-exporter in a namespace of its own: it needs the host's network and PID namespace and its
    `/`, `/proc` and `/sys` (read-only, the chart's hostPath mounts), which would otherwise hold every
    monitoring pod to the `privileged` Pod Security level. Nothing else: it runs as `nobody` without
    any capability (a non-root process reads those files without one), cannot gain privileges, with
    the runtime's default seccomp profile (its default collectors' syscalls are allowed there, the
    timex collector's read-only `adjtimex` too since containerd 1.4; the perf collector, which would
    need `perf_event_open`, is off) and a read-only root filesystem, and mounts no API token (the
    chart's default)."""
    return {
        # The chart appends `-distroless` to its tag itself: only the digest is ours to give.
        "image": versions.digest_value(versions.NODE_EXPORTER_IMAGE, "digest", prefixed=True),
        "namespaceOverride": namespace,
        "resources": resources(cpu="20m", memory="32Mi", memory_limit="64Mi"),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NODE_EXPORTER_UID,
            "runAsGroup": NODE_EXPORTER_UID,
            "fsGroup": NODE_EXPORTER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }


class KubePrometheusStack(Component):
    """The kube-prometheus-stack release and Grafana's generated admin login.

    Its options wait for Longhorn (the volumes) and the object-store Secrets; `protect` protects
    the release (uninstalling it deletes Grafana's volume).
    """

    release: k8s.helm.v3.Release
    grafana_admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: KubePrometheusStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("monitoring:KubePrometheusStack", name, opts)
        namespace = args["namespace"]
        password = random.RandomPassword(f"{name}-grafana-admin-password", length=24, special=False, opts=self.child())
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        admin = k8s.core.v1.Secret(
            GRAFANA_ADMIN_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_ADMIN_SECRET, namespace=namespace, labels=MANAGED_BY),
            type="Opaque",
            string_data=pulumi.Output.secret(
                {"admin-user": GRAFANA_ADMIN_USER, "admin-password": self.grafana_admin_password}
            ),
            opts=self.child(),
        )
        sidecar_role = k8s.rbac.v1.Role(
            GRAFANA_SIDECAR_ROLE,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_SIDECAR_ROLE, namespace=namespace, labels=MANAGED_BY),
            rules=[k8s.rbac.v1.PolicyRuleArgs(**rule) for rule in GRAFANA_SIDECAR_RULES],
            opts=self.child(),
        )
        # The chart's RoleBinding names it: the sidecars start with their permissions in place.
        before_release: list[pulumi.Resource] = [admin, sidecar_role]
        alerting = args["alerting"]
        receiver_secrets = alertmanager.secret_data(alerting, args["alert_webhook_url"], args["alert_smtp_password"])
        if receiver_secrets:
            # Mounted into the Alertmanager pod: it must exist before the pod starts.
            before_release.append(
                k8s.core.v1.Secret(
                    alertmanager.RECEIVERS_SECRET,
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=alertmanager.RECEIVERS_SECRET,
                        namespace=namespace,
                        labels=MANAGED_BY,
                        annotations=from_secret_config(*alertmanager.secret_config_keys(alerting)),
                    ),
                    type="Opaque",
                    string_data=pulumi.Output.secret(receiver_secrets),
                    opts=self.child(),
                )
            )
        warning = alertmanager.no_receiver_warning(alerting)
        if warning:
            pulumi.log.warn(warning, resource=self)
        self.release = helm_release(
            RELEASE,
            versions.KUBE_PROMETHEUS_STACK,
            args["chart_version"],
            namespace=namespace,
            values=kube_prometheus_stack_values(args),
            opts=self.child(*before_release, stateful=True),
            timeout_seconds=900,
        )
        self.register_outputs({"release": self.release.name, "grafanaAdminPassword": self.grafana_admin_password})
