"""thanos-multi-cluster: one stack per cluster; the stack config's `role` decides what it gets.

In the order of DESIGN section 1's table: the Minikube node and a Kubernetes provider built from
its kubeconfig; namespaces and their NetworkPolicies; object storage (owned by central, read by
edges); Longhorn; kube-prometheus-stack with the Thanos sidecar; ingress-nginx; central Thanos;
alerts; OpenSearch and Fluent-bit. Every component is in `components/`, one per file.
"""

import pulumi
import pulumi_kubernetes as k8s

from components import namespaces, settings
from components.fluent_bit import FluentBit
from components.ingress_nginx import IngressNginx
from components.kube_prometheus_stack import KubePrometheusStack
from components.longhorn import STORAGE_CLASS, Longhorn
from components.minikube_node import MinikubeNode
from components.namespaces import Namespaces
from components.network_policies import NetworkPolicies
from components.object_storage import CREDENTIALS_OUTPUT, ObjectStorage
from components.opensearch import HTTP_PORT as OPENSEARCH_PORT
from components.opensearch import WRITER_SECRET, OpenSearch
from components.s3_credentials import S3Credentials
from components.thanos import QUERY_FRONTEND_URL, ThanosCentral
from components.thanos_alerts import ThanosAlerts

config, secrets = settings.load()
cluster = config.cluster_name

node = MinikubeNode(
    cluster,
    {
        "host": config.host,
        "address": config.ip,
        "minikube": config.minikube,
        "ssh_private_key": secrets.ssh_private_key,
        "protect": config.protect,
    },
)
provider = k8s.Provider(
    f"{cluster}-kubernetes",
    kubeconfig=node.kubeconfig,
    # Only a new cluster name replaces the provider (and with it every object); other changes update it.
    cluster_identifier=cluster,
    opts=pulumi.ResourceOptions(depends_on=[node]),
)
owned = Namespaces(f"{cluster}-namespaces", {"provider": provider})
# Default deny plus DESIGN section 2's flows, before any workload starts (Calico enforces them: C3).
NetworkPolicies(
    f"{cluster}-network-policies",
    {
        "provider": provider,
        "namespaces": owned,
        "central": config.is_central,
        "node_address": config.ip,
        "central_address": config.ip if config.is_central else str(config.central_address),
        "edge_addresses": [edge.ip for edge in config.edges],
        "s3_address": config.s3.host if settings.is_ip(config.s3.host) else None,
        "s3_port": config.s3.port,
    },
)

# Central owns the buckets and every cluster's MinIO users; edges read theirs from central's output.
object_storage = (
    ObjectStorage(
        f"{cluster}-object-storage",
        {
            "cluster_name": cluster,
            "edges": [edge.name for edge in config.edges],
            "s3": config.s3,
            "admin_user": secrets.minio_admin_user,
            "admin_password": secrets.minio_admin_password,
            "protect": config.protect,
        },
    )
    if config.is_central
    else None
)
s3_credentials = S3Credentials(
    f"{cluster}-s3-credentials",
    {
        "provider": provider,
        "monitoring": owned[namespaces.MONITORING],
        "logging": owned[namespaces.LOGGING],
        "cluster_name": cluster,
        "central": config.is_central,
        "s3": config.s3,
        "issued": object_storage.credentials if object_storage else None,
        "central_stack": config.central_stack,
    },
)
storage = Longhorn(
    f"{cluster}-longhorn",
    {
        "provider": provider,
        "namespace": owned[namespaces.LONGHORN],
        "cluster_name": cluster,
        "hostname": config.hostname("longhorn"),
        "chart_version": config.versions.longhorn,
        "s3": config.s3,
        "longhorn": config.longhorn,
        "credentials": s3_credentials.longhorn,
        "protect": config.protect,
    },
)
monitoring = KubePrometheusStack(
    f"{cluster}-monitoring",
    {
        "provider": provider,
        "namespace": owned[namespaces.MONITORING],
        "cluster_name": cluster,
        "central": config.is_central,
        "grafana_hostname": config.hostname("grafana"),
        "chart_version": config.versions.kube_prometheus_stack,
        "thanos_version": config.versions.thanos,
        "monitoring": config.monitoring,
        "thanos_datasource_url": QUERY_FRONTEND_URL if config.is_central else None,
        "objstore_ca": config.s3.ca_certificate is not None,
        "depends_on": [storage.release, s3_credentials],
        "protect": config.protect,
    },
)
# After kube-prometheus-stack: its ServiceMonitor needs the CRD. Ingress objects of other
# components may exist before the controller does.
ingress = IngressNginx(
    f"{cluster}-ingress",
    {
        "provider": provider,
        "namespace": owned[namespaces.INGRESS],
        "chart_version": config.versions.ingress_nginx,
        "service_monitor": True,
    },
    opts=pulumi.ResourceOptions(depends_on=[monitoring.release]),
)
thanos = (
    ThanosCentral(
        f"{cluster}-thanos",
        {
            "provider": provider,
            "namespace": owned[namespaces.MONITORING],
            "thanos_version": config.versions.thanos,
            "hostname": config.hostname("thanos"),
            "edges": config.edges,
            "thanos": config.thanos,
            "kps_release": monitoring.release,
            "depends_on": [storage.release, s3_credentials],
        },
    )
    if config.is_central
    else None
)
ThanosAlerts(
    f"{cluster}-thanos-alerts",
    {
        "provider": provider,
        "namespace": owned[namespaces.MONITORING],
        "central": config.is_central,
        "expected_clusters": [cluster, *(edge.name for edge in config.edges)],
        "kps_release": monitoring.release,
    },
)
logs = OpenSearch(
    f"{cluster}-opensearch",
    {
        "provider": provider,
        "namespace": owned[namespaces.LOGGING],
        "cluster_name": cluster,
        "hostname": config.hostname("opensearch"),
        "chart_version": config.versions.opensearch,
        "storage_class": STORAGE_CLASS,
        "logging": config.logging,
        "s3": config.s3,
        # Pulumi manages the policies through the ingress, so the controller comes first.
        "depends_on": [storage.release, s3_credentials, ingress],
        "protect": config.protect,
    },
)
FluentBit(
    f"{cluster}-fluent-bit",
    {
        "provider": provider,
        "namespace": owned[namespaces.LOGGING],
        "cluster_name": cluster,
        "chart_version": config.versions.fluent_bit,
        "logging": config.logging,
        "opensearch": {"host": logs.service_host, "port": OPENSEARCH_PORT, "credentials_secret": WRITER_SECRET},
        "depends_on": logs.writer_ready,
    },
)

pulumi.export("role", config.role.value)
pulumi.export("kubeconfig", node.kubeconfig)
pulumi.export("longhornUrl", f"http://{config.hostname('longhorn')}/")
pulumi.export("longhornUiPassword", storage.ui_password)
pulumi.export("grafanaUrl", f"http://{config.hostname('grafana')}/")
pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
pulumi.export("opensearchUrl", logs.url)
pulumi.export("opensearchAdminPassword", logs.admin_password)
if thanos:
    pulumi.export("thanosUrl", f"http://{config.hostname('thanos')}/")
    pulumi.export("thanosUiPassword", thanos.ui_password)
if object_storage:
    pulumi.export(CREDENTIALS_OUTPUT, object_storage.credentials)
