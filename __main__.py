"""thanos-multi-cluster: one stack per cluster; the stack config's `role` decides what it gets.

In the order a cluster is built: the Minikube node and a Kubernetes provider built from its
kubeconfig (an existing cluster's comes from the secret `kubeconfig`); namespaces and their
NetworkPolicies; object storage and certificates (issued by central, read by edges); Longhorn
(unless the cluster brings a StorageClass of its own); kube-prometheus-stack with the Thanos
sidecar; the ingress controller; central Thanos; alerts; OpenSearch and Fluent-bit. Every
component is in `components/`, one per file. Components take configuration in their args and the
provider, what to wait for and `protect` in their options.
"""

import pulumi
import pulumi_kubernetes as k8s

from components import longhorn, namespaces, opensearch_exporter, settings
from components.alertmanager import egress as alert_egress
from components.central_stack import CentralStack
from components.cluster_tls import INGRESS_TLS_SECRET, ClusterTls
from components.fluent_bit import FluentBit
from components.kube_prometheus_stack import SELECTOR_LABELS, KubePrometheusStack, SidecarExposure
from components.longhorn import STORAGE_CLASS, Longhorn
from components.minikube_node import MinikubeNode
from components.namespaces import Namespaces
from components.network_policies import NetworkPolicies
from components.object_storage import CREDENTIALS_OUTPUT, ObjectStorage
from components.opensearch import HTTP_PORT as OPENSEARCH_PORT
from components.opensearch import WRITER_SECRET, OpenSearch
from components.opensearch import ingress_backend as opensearch_backend
from components.platform_alerts import PlatformAlerts
from components.platform_ca import CA_NOT_AFTER_OUTPUT, CA_OUTPUT, CERTIFICATES_OUTPUT, PlatformCa
from components.s3_credentials import S3Credentials
from components.thanos import QUERY_FRONTEND_URL, ThanosCentral
from components.thanos import ui_login as thanos_login
from components.traefik import Exposure, Traefik

config, secrets = settings.load()
cluster = config.cluster_name
protected = pulumi.ResourceOptions(protect=config.protect)

# Minikube on the stack's host, or an existing cluster reached with the secret `kubeconfig`.
node = (
    MinikubeNode(
        cluster,
        {
            "host": str(config.host),
            "address": config.ip,
            "minikube": config.minikube_node,
            "ssh_private_key": secrets.ssh_private_key,
            "ssh_private_key_password": secrets.ssh_private_key_password,
        },
        opts=protected,
    )
    if config.on_minikube
    else None
)
provider = k8s.Provider(
    f"{cluster}-kubernetes",
    kubeconfig=node.kubeconfig if node else secrets.kubeconfig,
    # Only a new cluster identifier (the cluster name unless `kubernetes.clusterIdentifier` says otherwise)
    # replaces the provider, and with it every object; a new kubeconfig of the same cluster updates it.
    cluster_identifier=config.cluster_identifier,
    # Without these, a change of a Secret's or ConfigMap's data replaces the object, delete first (its
    # name is fixed): a renewed certificate would vanish from Traefik for the moment in between.
    enable_secret_mutable=True,
    enable_config_map_mutable=True,
    opts=pulumi.ResourceOptions(depends_on=[node] if node else []),
)
storage_class = config.storage.class_name or STORAGE_CLASS
exposure = Exposure(config.ingress.service_type, config.ip, config.ingress.annotations, config.node_count)
host_ports = exposure.host_ports


def on_cluster(*depends_on: pulumi.Resource, protect: bool = False) -> pulumi.ResourceOptions:
    """Options of a component that lives in the cluster: its provider, what it waits for."""
    return pulumi.ResourceOptions(provider=provider, depends_on=list(depends_on), protect=protect or None)


owned = Namespaces(
    f"{cluster}-namespaces",
    {"kubernetes_version": config.kubernetes_version, "longhorn": config.storage.longhorn, "host_ports": host_ports},
    opts=on_cluster(),
)
# Default deny plus the flows the platform needs, before any workload starts (Calico enforces them).
NetworkPolicies(
    f"{cluster}-network-policies",
    {
        "central": config.is_central,
        "node_cidrs": config.node_cidrs,
        "api_server": config.api_server,
        "longhorn": config.storage.longhorn,
        "plugin_installer": config.logging.image is None,
        "central_address": config.central_ip,
        "edge_sidecars": [(edge.ip, edge.sidecar_port) for edge in config.edges],
        "s3_address": config.s3.address,
        "s3_port": config.s3.port,
        "alert_receivers": alert_egress(config.alerting),
    },
    opts=on_cluster(owned),
)

# Central owns the buckets, every cluster's MinIO users and the platform CA; edges read what is
# theirs from central's outputs.
central_stack = None if config.is_central else CentralStack(f"{cluster}-central", cluster, config.central_stack)
object_storage = (
    ObjectStorage(
        f"{cluster}-object-storage",
        {
            "cluster_name": cluster,
            "edges": [edge.name for edge in config.edges],
            "s3": config.s3,
            "admin_user": secrets.minio_admin_user,
            "admin_password": secrets.minio_admin_password,
        },
        opts=protected,
    )
    if config.is_central
    else None
)
platform_ca = (
    PlatformCa(
        f"{cluster}-platform-ca",
        {
            "cluster_name": cluster,
            "domain": config.domain,
            "host": config.host or config.ip,
            "address": config.ip,
            "edges": config.edges,
            "tls": config.tls,
            "ca_private_key": secrets.platform_ca_key,
        },
        opts=protected,
    )
    if config.is_central
    else None
)
if object_storage and platform_ca:
    own_credentials = object_storage.credentials.apply(lambda issued: issued[cluster])
    own_certificates = platform_ca.issued.apply(lambda issued: issued[cluster])
    ca_certificate, ca_not_after = platform_ca.certificate, platform_ca.not_after
else:
    assert central_stack is not None
    own_credentials = central_stack.own(CREDENTIALS_OUTPUT)
    own_certificates = central_stack.own(CERTIFICATES_OUTPUT)
    ca_certificate, ca_not_after = central_stack.value(CA_OUTPUT), central_stack.value(CA_NOT_AFTER_OUTPUT)
s3_credentials = S3Credentials(
    f"{cluster}-s3-credentials",
    {
        "monitoring_namespace": namespaces.MONITORING,
        "logging_namespace": namespaces.LOGGING,
        "central": config.is_central,
        "s3": config.s3,
        "credentials": own_credentials,
    },
    opts=on_cluster(owned),
)
tls = ClusterTls(
    f"{cluster}-tls",
    {
        "cluster_name": cluster,
        "domain": config.domain,
        "central": config.is_central,
        "certificates": own_certificates,
        "ca_certificate": ca_certificate,
        "ca_not_after": ca_not_after,
        "ingress_namespace": namespaces.INGRESS,
        "monitoring_namespace": namespaces.MONITORING,
        "logging_namespace": namespaces.LOGGING,
        "fluent_bit_namespace": namespaces.FLUENT_BIT,
    },
    opts=on_cluster(owned),
)
storage = (
    Longhorn(
        f"{cluster}-longhorn",
        {
            "namespace": namespaces.LONGHORN,
            "cluster_name": cluster,
            "hostname": config.hostname("longhorn"),
            "chart_version": config.versions.longhorn,
            "s3": config.s3,
            "longhorn": config.longhorn,
            "credentials": s3_credentials.longhorn,
            "replicas": config.longhorn_replicas,
            "default_class": config.on_minikube,
        },
        opts=on_cluster(owned, protect=config.protect),
    )
    if config.storage.longhorn
    else None
)
# What a workload with a volume waits for: Longhorn's release, or nothing on the cluster's own StorageClass.
volumes = [storage.release] if storage else []
monitoring = KubePrometheusStack(
    f"{cluster}-monitoring",
    {
        "namespace": namespaces.MONITORING,
        "node_exporter_namespace": namespaces.NODE_EXPORTER,
        "cluster_name": cluster,
        "central": config.is_central,
        "sidecar_exposure": None
        if config.is_central
        else SidecarExposure(
            "LoadBalancer" if config.ingress.service_type == "LoadBalancer" else "NodePort",
            config.central_ip,
            config.ingress.sidecar_annotations,
        ),
        "storage_class": storage_class,
        "grafana_hostname": config.hostname("grafana"),
        "grafana_url": exposure.url(config.hostname("grafana")),
        "chart_version": config.versions.kube_prometheus_stack,
        "thanos_version": config.versions.thanos,
        "monitoring": config.monitoring,
        "thanos_datasource_url": QUERY_FRONTEND_URL if config.is_central else None,
        "objstore_ca": config.s3.ca_certificate is not None,
        "grpc_tls_checksum": None if config.is_central else tls.grpc_checksum,
        "service_monitors": [
            *([longhorn.service_monitor(namespaces.LONGHORN)] if storage else []),
            opensearch_exporter.service_monitor(namespaces.LOGGING),
        ],
        "alerting": config.alerting,
        "alert_webhook_url": secrets.alert_webhook_url,
        "alert_smtp_password": secrets.alert_smtp_password,
    },
    opts=on_cluster(owned, *volumes, s3_credentials, tls, protect=config.protect),
)
# After kube-prometheus-stack: its ServiceMonitor needs the CRD. Ingress objects of other
# components may exist before the controller does; the Middlewares and ServersTransports they
# name come with it (Traefik brings their CRDs).
ingress = Traefik(
    f"{cluster}-ingress",
    {
        "namespace": namespaces.INGRESS,
        "chart_version": config.versions.traefik,
        "exposure": exposure,
        "service_monitor_labels": SELECTOR_LABELS,
        "logins": [
            *([longhorn.ui_login(namespaces.LONGHORN)] if storage else []),
            *([thanos_login(namespaces.MONITORING)] if config.is_central else []),
        ],
        "https_backends": [opensearch_backend(namespaces.LOGGING)],
        "default_certificate_secret": INGRESS_TLS_SECRET,
    },
    opts=on_cluster(owned, monitoring.release, tls),
)
thanos = (
    ThanosCentral(
        f"{cluster}-thanos",
        {
            "namespace": namespaces.MONITORING,
            "thanos_version": config.versions.thanos,
            "hostname": config.hostname("thanos"),
            "edges": config.edges,
            "storage_class": storage_class,
            "thanos": config.thanos,
            "grpc_tls_checksum": tls.grpc_checksum,
        },
        opts=on_cluster(owned, *volumes, s3_credentials, tls, monitoring.release),
    )
    if config.is_central
    else None
)
PlatformAlerts(
    f"{cluster}-platform-alerts",
    {
        "namespace": namespaces.MONITORING,
        "central": config.is_central,
        "expected_clusters": [cluster, *(edge.name for edge in config.edges)],
        "snapshot_repository": config.logging.repository_name,
        "longhorn": config.storage.longhorn,
    },
    opts=on_cluster(owned, monitoring.release),
)
logs = OpenSearch(
    f"{cluster}-opensearch",
    {
        "namespace": namespaces.LOGGING,
        "writer_namespace": namespaces.FLUENT_BIT,
        "cluster_name": cluster,
        "hostname": config.hostname("opensearch"),
        "ingress_address": config.ip,
        "ingress_port": exposure.https_port,
        "chart_version": config.versions.opensearch,
        "storage_class": storage_class,
        "logging": config.logging,
        "s3": config.s3,
        "admin_password": secrets.opensearch_admin_password,
        "ca_certificate": ca_certificate,
        "tls_checksum": tls.opensearch_checksum,
    },
    # Pulumi manages the policies through the ingress, so the controller comes first.
    opts=on_cluster(owned, *volumes, s3_credentials, tls, ingress, protect=config.protect),
)
FluentBit(
    f"{cluster}-fluent-bit",
    {
        "namespace": namespaces.FLUENT_BIT,
        "cluster_name": cluster,
        "chart_version": config.versions.fluent_bit,
        "logging": config.logging,
        "opensearch": {"host": logs.service_host, "port": OPENSEARCH_PORT, "credentials_secret": WRITER_SECRET},
    },
    # Its ServiceMonitor needs the CRD; its first index needs the template and ISM policy.
    opts=on_cluster(owned, monitoring.release, *logs.ready_for_logs),
)

pulumi.export("role", config.role.value)
pulumi.export("kubeconfig", node.kubeconfig if node else secrets.kubeconfig)
pulumi.export("clusterName", cluster)
pulumi.export("ingressAddress", config.ip)
pulumi.export("storageClass", storage_class)
if storage:
    pulumi.export("longhornUrl", exposure.url(config.hostname("longhorn")))
    pulumi.export("longhornUiPassword", storage.ui_password)
pulumi.export("grafanaUrl", exposure.url(config.hostname("grafana")))
pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
pulumi.export("opensearchUrl", logs.url)
pulumi.export("opensearchAdminPassword", logs.admin_password)
if thanos:
    pulumi.export("thanosUrl", exposure.url(config.hostname("thanos")))
    pulumi.export("thanosUiPassword", thanos.ui_password)
pulumi.export(CA_OUTPUT, ca_certificate)
pulumi.export("certificates", tls.certificates)
pulumi.export("objectStore", config.s3.verify_view())
if object_storage and platform_ca:
    pulumi.export("clusters", [cluster, *(edge.name for edge in config.edges)])
    pulumi.export("verifierCredentials", object_storage.verifier_credentials)
    pulumi.export(CREDENTIALS_OUTPUT, object_storage.credentials)
    pulumi.export(CERTIFICATES_OUTPUT, platform_ca.issued)
    pulumi.export(CA_NOT_AFTER_OUTPUT, platform_ca.not_after)
