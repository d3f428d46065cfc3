"""IngressNginx: the NGINX ingress controller on the host network (DESIGN section 1).

A DaemonSet with `hostNetwork: true` serves ports 80/443 on the host address, where the wildcard
DNS `*.<domain>` points; the Service stays ClusterIP (no LoadBalancer exists on Minikube).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.kube import child_opts, helm_release, resources

RELEASE = "ingress-nginx"
INGRESS_CLASS = "nginx"
METRICS_PORT = 10254


class IngressNginxArgs(TypedDict):
    provider: k8s.Provider
    """The cluster's explicit Kubernetes provider."""
    namespace: k8s.core.v1.Namespace
    """Namespace the controller runs in (created first)."""
    chart_version: str
    """Pinned ingress-nginx chart version."""
    service_monitor: bool
    """Create the controller's ServiceMonitor; only once the Prometheus Operator CRDs exist."""


def ingress_nginx_values(service_monitor: bool) -> dict[str, Any]:
    return {
        "controller": {
            "kind": "DaemonSet",
            "hostNetwork": True,
            # With hostNetwork the pod would otherwise resolve through the host, not CoreDNS.
            "dnsPolicy": "ClusterFirstWithHostNet",
            "reportNodeInternalIp": True,
            "service": {"type": "ClusterIP"},
            "ingressClassResource": {"name": INGRESS_CLASS, "default": True},
            "config": {
                "use-forwarded-headers": "true",
                "compute-full-forwarded-for": "true",
                # Large OpenSearch bulk requests and Grafana dashboards exceed the 1m default.
                "proxy-body-size": "20m",
            },
            "allowSnippetAnnotations": False,
            "metrics": {
                "enabled": True,
                "port": METRICS_PORT,
                "serviceMonitor": {
                    "enabled": service_monitor,
                    "additionalLabels": {"release": "kube-prometheus-stack"},
                },
            },
            "resources": resources(cpu="100m", memory="128Mi", memory_limit="384Mi"),
            "admissionWebhooks": {
                "createSecretJob": {"resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi")},
                "patchWebhookJob": {"resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi")},
            },
        },
    }


class IngressNginx(pulumi.ComponentResource):
    """The ingress-nginx Helm release."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: IngressNginxArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("thanos-multi-cluster:ingress:IngressNginx", name, None, opts)
        self.release = helm_release(
            RELEASE,
            versions.INGRESS_NGINX,
            args["chart_version"],
            namespace=args["namespace"].metadata.name,
            values=ingress_nginx_values(args["service_monitor"]),
            opts=child_opts(self, args["provider"], depends_on=[args["namespace"]]),
        )
        self.register_outputs({"release": self.release.name})
