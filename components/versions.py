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

# --- Images and their digests ------------------------------------------------------------------
# Every image the charts and our own pods run, by the tag the pinned chart (or this file) gives it.
# Each is set explicitly in its release's values together with its digest, so the tag a reader sees
# and the digest a node pulls cannot drift apart (a test renders every stack and compares).
# A stack that overrides a version (`versions.*`) runs that tag without a digest.
PROMETHEUS_OPERATOR_IMAGE = "quay.io/prometheus-operator/prometheus-operator:v0.93.1"
PROMETHEUS_CONFIG_RELOADER_IMAGE = "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"
PROMETHEUS_IMAGE = "quay.io/prometheus/prometheus:v3.14.0-distroless"
ALERTMANAGER_IMAGE = "quay.io/prometheus/alertmanager:v0.34.0"
ADMISSION_CERTGEN_IMAGE = "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.36.0"
"""kube-prometheus-stack's CRD upgrade Job: its default tag is the cluster's own version, pinned here
instead so that its digest can be (kubectl 1.36 applies CRDs to API servers 1.35 to 1.37)."""
BUSYBOX_IMAGE = f"docker.io/busybox:{BUSYBOX}"
"""The CRD upgrade Job unpacks the CRDs with busybox, `latest` by default: pinned, so an upgrade
never pulls a moving tag."""
GRAFANA_IMAGE = "docker.io/grafana/grafana:13.2.0"
GRAFANA_SIDECAR_IMAGE = "quay.io/kiwigrid/k8s-sidecar:2.10.1"
KUBE_STATE_METRICS_IMAGE = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
NODE_EXPORTER_IMAGE = "quay.io/prometheus/node-exporter:v1.12.1-distroless"
TRAEFIK_IMAGE = "docker.io/traefik:v3.7.11"
FLUENT_BIT_IMAGE = "cr.fluentbit.io/fluent/fluent-bit:5.1.1"
LONGHORN_MANAGER_IMAGE = "docker.io/longhornio/longhorn-manager:v1.12.1"
LONGHORN_UI_IMAGE = "docker.io/longhornio/longhorn-ui:v1.12.1"
LONGHORN_SHARE_MANAGER_IMAGE = "docker.io/longhornio/longhorn-share-manager:v1.12.1"

IMAGES: tuple[str, ...] = (
    f"{THANOS_IMAGE}:{THANOS}",
    PROMETHEUS_OPERATOR_IMAGE,
    PROMETHEUS_CONFIG_RELOADER_IMAGE,
    PROMETHEUS_IMAGE,
    ALERTMANAGER_IMAGE,
    ADMISSION_CERTGEN_IMAGE,
    KUBECTL_IMAGE,
    BUSYBOX_IMAGE,
    GRAFANA_IMAGE,
    GRAFANA_SIDECAR_IMAGE,
    KUBE_STATE_METRICS_IMAGE,
    NODE_EXPORTER_IMAGE,
    TRAEFIK_IMAGE,
    FLUENT_BIT_IMAGE,
    OPENSEARCH_IMAGE,
    ELASTICSEARCH_EXPORTER_IMAGE,
    LONGHORN_MANAGER_IMAGE,
    LONGHORN_UI_IMAGE,
    LONGHORN_SHARE_MANAGER_IMAGE,
)
"""Every image the platform runs with the default versions (the ones the charts and our pods name)."""

DIGESTS: dict[str, str] = {}
"""`<repository>:<tag>` -> the digest of the multi-arch index that tag names (`sha256:<hex>`), for
the images of IMAGES. Every release's values take the digest from here (tests/test_images.py renders
the stacks with one recorded for each image: no container is then left by tag), and
security/scan-baseline.yaml accepts checkov's two digest checks only for workloads without one.

Empty: no container registry is reachable from the machines this project is built and checked on,
and a digest is not to be copied from elsewhere. Public repositories that pin these tags disagree
where a tag was pushed again (docker.io/busybox:1.38.0 and opensearchproject/opensearch:3.6.0 each
appear with three different digests), and an older digest of a tag still pulls: it would pin a
superseded build, perhaps the one a rebuild fixed a CVE in. On a machine that reaches the registries:

    python -m tools.digests resolve       # `crane digest` of every tag, as lines for this table
    python -m tools.digests verify        # later, and at every bump of a tag here: still what is served?

then paste the lines here, review the diff, render and scan (README, "Security"). The Longhorn
manager starts the engine, instance-manager and CSI images itself, by tag.
"""


def digest(image: str) -> str | None:
    """The recorded digest of `<repository>:<tag>`, or None where the tag runs without one."""
    return DIGESTS.get(image)


def pinned(image: str) -> str:
    """`<repository>:<tag>@<digest>` where the digest is recorded, else the image by tag."""
    recorded = digest(image)
    return f"{image}@{recorded}" if recorded else image


def tag_of(image: str) -> str:
    """The tag of `<repository>:<tag>` (a registry's port is never mistaken for it)."""
    return image.rpartition("/")[2].partition("@")[0].rpartition(":")[2]


def pinned_tag(image: str) -> str:
    """`<tag>@<digest>`, or the tag: for charts that join `repository:tag` and have no digest value."""
    return pinned(image).rpartition("/")[2].partition(":")[2]


def digest_value(image: str, key: str = "sha", *, prefixed: bool = False) -> dict[str, str]:
    """The recorded digest under a chart's own key, bare hex (`sha` in kube-prometheus-stack and Grafana)
    or `sha256:<hex>` (`prefixed`); empty where none is recorded."""
    recorded = digest(image)
    if not recorded:
        return {}
    return {key: recorded if prefixed else recorded.removeprefix("sha256:")}


def chart_image(image: str, key: str = "sha", *, prefixed: bool = False) -> dict[str, str]:
    """A chart's `image` values: the tag and, where recorded, its digest (see `digest_value`)."""
    return {"tag": tag_of(image), **digest_value(image, key, prefixed=prefixed)}
