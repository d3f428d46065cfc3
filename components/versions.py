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

# --- Image digests ----------------------------------------------------------------------------
# Every image runs by tag today: no digest is pinned, because none can be known from here. The
# machines that build and test this project reach package registries only (PyPI, Debian, ...), no
# container registry, and none of the chart packages (reference/charts/packages) carries a digest.
# checkov flags each of these containers twice (CKV_K8S_43 "image should use digest", CKV_K8S_15
# "pull policy Always"; with a digest both pass): security/scan-baseline.yaml accepts those until
# the digests are pinned.
#
# To pin, at the first pull from a machine that reaches the registry (the digest of the multi-arch
# index, which is what a node resolves the tag to):
#     crane digest quay.io/thanos/thanos:v0.42.4
#     docker buildx imagetools inspect quay.io/thanos/thanos:v0.42.4 --format '{{json .Manifest.Digest}}'
#     # or on a cluster node after the pull: crictl inspecti -o go-template --template '{{.status.repoDigests}}' <image>
# and record it here next to its tag, set as the value named below. Where a chart has no digest
# value, `tag: <tag>@sha256:<digest>` works: the templates join `repository:tag`.
#
# Where each image comes from (tag: the chart's default unless pinned above), and its digest value:
#   kube-prometheus-stack 88.5.3 (values under the release):
#     quay.io/prometheus-operator/prometheus-operator:v0.93.1    prometheusOperator.image.sha
#     quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1
#                                                       prometheusOperator.prometheusConfigReloader.image.sha
#     quay.io/prometheus/prometheus:v3.14.0-distroless           prometheus.prometheusSpec.image.sha
#     quay.io/prometheus/alertmanager:v0.34.0                    alertmanager.alertmanagerSpec.image.sha
#     quay.io/thanos/thanos (THANOS above: the sidecar, our Thanos components) `THANOS_IMAGE:THANOS@sha256:...`
#     ghcr.io/jkroepke/kube-webhook-certgen:1.8.7                prometheusOperator.admissionWebhooks.patch.image.sha
#     registry.k8s.io/kubectl:v1.36.0 (CRD upgrade Job)          crds.upgradeJob.image.kubectl.sha
#     docker.io/busybox (BUSYBOX above, CRD upgrade Job)         crds.upgradeJob.image.busybox.sha
#     docker.io/grafana/grafana:13.2.0                           grafana.image.sha
#     quay.io/kiwigrid/k8s-sidecar:2.10.1                        grafana.sidecar.image.sha
#     registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0  kube-state-metrics.image.sha
#     quay.io/prometheus/node-exporter:v1.12.1-distroless        prometheus-node-exporter.image.digest
#   Traefik 41.3.0: docker.io/traefik:v3.7.11                        image.digest (with versionOverride)
#   Fluent Bit 0.58.1: cr.fluentbit.io/fluent/fluent-bit:5.1.1       image.digest
#   OpenSearch 3.6.0: OPENSEARCH_IMAGE above (the chart and our Jobs) image.tag `3.6.0@sha256:...`
#   ELASTICSEARCH_EXPORTER_IMAGE above (our snapshot exporter)       `...:v1.10.0@sha256:...`
#   Longhorn 1.12.1, docker.io/longhornio/* (no digest values: `image.longhorn.<name>.tag`,
#   `image.csi.<name>.tag` as `<tag>@sha256:...`): longhorn-manager, longhorn-engine,
#   longhorn-instance-manager, longhorn-share-manager, backing-image-manager, longhorn-ui (v1.12.1),
#   support-bundle-kit v0.0.92, csi-attacher v4.12.0, csi-provisioner v5.3.0,
#   csi-node-driver-registrar v2.17.0, csi-resizer v2.2.1, csi-snapshotter v8.6.0, livenessprobe
#   v2.19.0. The manager starts the engine, instance-manager and CSI images itself: check after
#   pinning that it reports them by the pinned reference (`kubectl -n longhorn-system get engineimages`).
