"""thanos-multi-cluster: one stack per cluster; the stack config's `role` decides what it gets.

Reads like the table in DESIGN section 1: host -> Minikube node -> Kubernetes provider ->
namespaces -> ingress and storage -> ...
"""

import pulumi
import pulumi_kubernetes as k8s

from components import namespaces, settings
from components.ingress_nginx import IngressNginx
from components.longhorn import Longhorn
from components.minikube_node import MinikubeNode
from components.namespaces import Namespaces

config, secrets = settings.load()
cluster = config.cluster_name

node = MinikubeNode(
    cluster,
    {
        "host": config.host,
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

ingress = IngressNginx(
    f"{cluster}-ingress",
    {
        "provider": provider,
        "namespace": owned[namespaces.INGRESS],
        "chart_version": config.versions.ingress_nginx,
        "service_monitor": False,
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
        "credentials": {
            "access_key": secrets.longhorn_backup_access_key,
            "secret_key": secrets.longhorn_backup_secret_key,
        },
        "protect": config.protect,
    },
    opts=pulumi.ResourceOptions(depends_on=[ingress]),
)

pulumi.export("role", config.role.value)
pulumi.export("kubeconfig", node.kubeconfig)
pulumi.export("longhornUrl", f"http://{config.hostname('longhorn')}/")
pulumi.export("longhornUiPassword", storage.ui_password)
