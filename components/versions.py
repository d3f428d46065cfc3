"""Pinned versions: one set that can be installed today (supported releases, no known critical CVE).

Every chart and image tag here is a default; stack config can override each one under the
`versions` key (see `settings.VersionSettings`). An upgrade is one reviewed diff of this file,
plus the reference material it is checked against (`python -m tools.reference fetch`).
Each pin names where it comes from; the README's version table says why this set.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kubernetes (kubernetes/kubernetes releases): 1.36 is supported until mid-2027.
KUBERNETES = "v1.36.3"
# minikube (kubernetes/minikube releases): the oldest release that knows Kubernetes 1.36.
MINIKUBE_MINIMUM = "1.39.0"
# crictl (kubernetes-sigs/cri-tools releases): cri-tools versions follow Kubernetes minors.
CRICTL = "v1.36.0"
# CNI reference plugins (containernetworking/plugins releases): the `none` driver needs them in /opt/cni/bin.
CNI_PLUGINS = "v1.9.1"

# Thanos (thanos-io/thanos releases, image quay.io/thanos/thanos): v0.42 fixes CVE-2026-33186
# (gRPC authorization bypass), which matters here: edges expose the sidecar's gRPC to another host.
THANOS_IMAGE = "quay.io/thanos/thanos"
THANOS = "v0.42.4"


@dataclass(frozen=True)
class Chart:
    """A Helm chart pinned to one version, with the repository it comes from."""

    name: str
    repo: str
    version: str


# traefik/traefik-helm-chart (Traefik v3.7.11): replaces ingress-nginx, retired in March 2026.
TRAEFIK = Chart("traefik", "https://traefik.github.io/charts", "41.3.0")
# longhorn/longhorn `chart/` (Longhorn 1.12.1).
LONGHORN = Chart("longhorn", "https://charts.longhorn.io", "1.12.1")
# prometheus-community/helm-charts (Prometheus Operator v0.93.1, Prometheus 3; Grafana chart
# 12.11.1 from grafana-community/helm-charts as its subchart).
KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "88.5.3")
# opensearch-project/helm-charts (OpenSearch 3.6.0).
OPENSEARCH = Chart("opensearch", "https://opensearch-project.github.io/helm-charts", "3.6.0")
# fluent/helm-charts (Fluent Bit 5.1.1).
FLUENT_BIT = Chart("fluent-bit", "https://fluent.github.io/helm-charts", "0.58.1")
# busybox (docker.io/library/busybox): kube-prometheus-stack's CRD upgrade Job unpacks the CRDs with it;
# the tag the Grafana subchart 12.11.1 pins for its own busybox, instead of the chart's `latest`.
BUSYBOX = "1.38.0"
# The image the opensearch chart runs (its appVersion); used where we run OpenSearch's own tools (keytool).
OPENSEARCH_IMAGE = "opensearchproject/opensearch:3.6.0"
# prometheus-community/elasticsearch_exporter releases (image quay.io/prometheuscommunity/elasticsearch-exporter):
# v1.10.0 reads OpenSearch too; its snapshots collector (`--collector.snapshots`) gives the snapshot metrics.
ELASTICSEARCH_EXPORTER_IMAGE = "quay.io/prometheuscommunity/elasticsearch-exporter:v1.10.0"

CHARTS: dict[str, Chart] = {
    chart.name: chart for chart in (TRAEFIK, LONGHORN, KUBE_PROMETHEUS_STACK, OPENSEARCH, FLUENT_BIT)
}
