"""Pinned versions: the coherent December 2023 set.

Every value here is a default; stack config can override each one under the `versions` key
(see `settings.VersionSettings`). An upgrade is one reviewed diff of this file.
"""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES = "v1.28.0"
THANOS_IMAGE = "quay.io/thanos/thanos"
THANOS = "v0.32.5"
# Oldest minikube that knows Kubernetes v1.28.0 and `--cni=calico` with containerd.
MINIKUBE_MINIMUM = "1.31.0"
# crictl (kubernetes-sigs/cri-tools releases): cri-tools versions follow Kubernetes minors, so v1.28 for KUBERNETES.
CRICTL = "v1.28.0"
# CNI reference plugins (containernetworking/plugins releases): the version minikube's none-driver FAQ installs.
CNI_PLUGINS = "v1.3.0"


@dataclass(frozen=True)
class Chart:
    """A Helm chart pinned to one version, with the repository it comes from."""

    name: str
    repo: str
    version: str


INGRESS_NGINX = Chart("ingress-nginx", "https://kubernetes.github.io/ingress-nginx", "4.9.0")
LONGHORN = Chart("longhorn", "https://charts.longhorn.io", "1.5.3")
KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "55.5.0")
OPENSEARCH = Chart("opensearch", "https://opensearch-project.github.io/helm-charts", "2.18.0")
FLUENT_BIT = Chart("fluent-bit", "https://fluent.github.io/helm-charts", "0.42.0")
# The image chart 2.18.0 runs (its appVersion); used where we run OpenSearch's own tools (keytool).
OPENSEARCH_IMAGE = "opensearchproject/opensearch:2.12.0"

CHARTS: dict[str, Chart] = {
    chart.name: chart for chart in (INGRESS_NGINX, LONGHORN, KUBE_PROMETHEUS_STACK, OPENSEARCH, FLUENT_BIT)
}
