"""IngressNginx: the NGINX ingress controller on the host network.

A DaemonSet with `hostNetwork: true` serves ports 80/443 on the host address, where the wildcard
DNS `*.<domain>` points; the Service stays ClusterIP (no LoadBalancer exists on Minikube).
"""

from __future__ import annotations

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.kube import Component, helm_release, resources

RELEASE = "ingress-nginx"
INGRESS_CLASS = "nginx"
METRICS_PORT = 10254
WEBHOOK_PORT = 9443
"""The admission webhook's port. On the host network every port is the node's: the chart's default,
8443, is minikube's API server, and the webhook would answer with the API server's certificate."""


class IngressNginxArgs(TypedDict):
    namespace: str
    """Namespace the controller runs in."""
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
                "port": WEBHOOK_PORT,
                "createSecretJob": {"resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi")},
                "patchWebhookJob": {"resources": resources(cpu="10m", memory="32Mi", memory_limit="64Mi")},
            },
        },
    }


class IngressNginx(Component):
    """The ingress-nginx Helm release."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: IngressNginxArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ingress:IngressNginx", name, opts)
        self.release = helm_release(
            RELEASE,
            versions.INGRESS_NGINX,
            args["chart_version"],
            namespace=args["namespace"],
            values=ingress_nginx_values(args["service_monitor"]),
            opts=self.child(),
        )
        self.register_outputs({"release": self.release.name})
