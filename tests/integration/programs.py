"""The pinned real programs of the integration suite: each at the version the platform deploys.

Where a version comes from is said beside it; `tests/integration/test_pins.py` checks that each
pin here agrees with what the program deploys (`components/versions.py`, the charts' images).
"""

from __future__ import annotations

from tests.integration.binaries import Blocked, GoBinary, MavenArtifact, Program
from tools import podsecurity


def prometheus_version_flags(version: str, module: str = "github.com/prometheus/common") -> tuple[str, ...]:
    """The version stamp Prometheus-family release builds set (promu's ldflags)."""
    package = f"{module}/version"
    return (
        f"-X {package}.Version={version.removeprefix('v')}",
        f"-X {package}.Revision=integration",
        f"-X {package}.Branch=HEAD",
        f"-X {package}.BuildUser=thanos-multi-cluster",
    )


# --- data plane -----------------------------------------------------------------------------

THANOS = "v0.42.4"  # components/versions.py THANOS
PROMETHEUS_MODULE = "v0.314.0"  # Prometheus 3.14.0: kube-prometheus-stack 88.5.3's prometheus image tag
PROMETHEUS = "v3.14.0"  # the release the module version v0.314.0 is (its VERSION file)
ALERTMANAGER = "v0.34.0"  # kube-prometheus-stack 88.5.3's alertmanager image tag
ELASTICSEARCH_EXPORTER = "v1.10.0"  # components/versions.py ELASTICSEARCH_EXPORTER_IMAGE
# k8s.io/pod-security-admission of Kubernetes v1.36.3: the Pod Security evaluator `render --check` builds
# itself (tools/podsecurity, its go.mod pins it), so not a program of this suite; pinned here for test_pins.
POD_SECURITY_ADMISSION = podsecurity.upstream_version()

# As each upstream's `.promu.yml` builds its release: CGO off (promu's default) and its build tags.
# Prometheus's release also sets `builtinassets`, which needs the web UI compiled by npm into the
# tree; the module zip lacks it, so our prometheus serves the API but not the web UI.
STATIC = {"CGO_ENABLED": "0"}
# Alertmanager's `ui` package embeds `ui/app/dist`, which its release build (`make assets`) compiles
# with npm and its module zip lacks (`pattern app/dist: no matching files found`). One placeholder
# file satisfies the embed: the API (v2) is served, the web UI's pages answer 404.
ALERTMANAGER_UI_NOT_BUILT = {
    "ui/app/dist/NOT-BUILT.txt": "The Alertmanager web UI is not built by the integration suite; the API is served.\n"
}

DATA_PLANE: tuple[Program, ...] = (
    GoBinary(
        "thanos",
        "github.com/thanos-io/thanos",
        THANOS,
        "github.com/thanos-io/thanos/cmd/thanos",
        "thanos",
        prometheus_version_flags(THANOS),
        tags=("netgo", "slicelabels"),
        env=STATIC,
    ),
    GoBinary(
        "prometheus",
        "github.com/prometheus/prometheus",
        PROMETHEUS_MODULE,
        "github.com/prometheus/prometheus/cmd/prometheus",
        "prometheus",
        prometheus_version_flags(PROMETHEUS),
        tags=("netgo",),
        env=STATIC,
    ),
    GoBinary(
        "promtool",
        "github.com/prometheus/prometheus",
        PROMETHEUS_MODULE,
        "github.com/prometheus/prometheus/cmd/promtool",
        "prometheus",
        prometheus_version_flags(PROMETHEUS),
        tags=("netgo",),
        env=STATIC,
    ),
    GoBinary(
        "alertmanager",
        "github.com/prometheus/alertmanager",
        ALERTMANAGER,
        "github.com/prometheus/alertmanager/cmd/alertmanager",
        "alertmanager",
        prometheus_version_flags(ALERTMANAGER),
        tags=("netgo",),
        env=STATIC,
        module_files=ALERTMANAGER_UI_NOT_BUILT,
    ),
    GoBinary(
        "amtool",
        "github.com/prometheus/alertmanager",
        ALERTMANAGER,
        "github.com/prometheus/alertmanager/cmd/amtool",
        "alertmanager",
        prometheus_version_flags(ALERTMANAGER),
        tags=("netgo",),
        env=STATIC,
    ),
    GoBinary(
        "elasticsearch_exporter",
        "github.com/prometheus-community/elasticsearch_exporter",
        ELASTICSEARCH_EXPORTER,
        "github.com/prometheus-community/elasticsearch_exporter",
        "elasticsearch_exporter",
        prometheus_version_flags(ELASTICSEARCH_EXPORTER),
        env=STATIC,
    ),
)

# --- OpenSearch -------------------------------------------------------------------------------

OPENSEARCH_VERSION = "3.6.0"  # components/versions.py OPENSEARCH_IMAGE (the opensearch chart 3.6.0's appVersion)
OPENSEARCH_PLUGINS_VERSION = "3.6.0.0"  # the plugin projects' own four-part version of that release
# The newest release whose security plugin Maven Central serves here (3.6.0.0 is refused): the security
# configuration is run through this one until the deployed version is served. Not what the platform deploys.
OPENSEARCH_SECURITY_NEAREST = "3.4.0"

OPENSEARCH: tuple[Program, ...] = (
    MavenArtifact("opensearch", "org.opensearch.distribution.integ-test-zip", "opensearch", OPENSEARCH_VERSION),
    MavenArtifact(
        "opensearch-job-scheduler", "org.opensearch.plugin", "opensearch-job-scheduler", OPENSEARCH_PLUGINS_VERSION
    ),
    # Maven Central has repository-s3's jar and pom, not its plugin zip: `tests/integration/opensearch_node.py`
    # assembles the zip from this jar and the dependencies its pom lists.
    MavenArtifact("repository-s3", "org.opensearch.plugin", "repository-s3", OPENSEARCH_VERSION, packaging="jar"),
    # Not served here (Maven's "Could not find artifact"): reported BLOCKED.
    MavenArtifact("opensearch-security", "org.opensearch.plugin", "opensearch-security", OPENSEARCH_PLUGINS_VERSION),
    MavenArtifact(
        "opensearch-index-management",
        "org.opensearch.plugin",
        "opensearch-index-management",
        OPENSEARCH_PLUGINS_VERSION,
    ),
    # The nearest release with a served security plugin (see OPENSEARCH_SECURITY_NEAREST).
    MavenArtifact(
        "opensearch-nearest", "org.opensearch.distribution.integ-test-zip", "opensearch", OPENSEARCH_SECURITY_NEAREST
    ),
    MavenArtifact(
        "opensearch-security-nearest",
        "org.opensearch.plugin",
        "opensearch-security",
        f"{OPENSEARCH_SECURITY_NEAREST}.0",
    ),
    MavenArtifact(
        "opensearch-job-scheduler-nearest",
        "org.opensearch.plugin",
        "opensearch-job-scheduler",
        f"{OPENSEARCH_SECURITY_NEAREST}.0",
    ),
    # 3.4.0's integ-test zip lacks the rule-framework module, which lends security this jar (the one
    # OpenSearch 3.6.0's rule-framework module bundles, byte for byte); rule-framework itself is not served.
    MavenArtifact(
        "commons-collections4-nearest", "org.apache.commons", "commons-collections4", "4.5.0", packaging="jar"
    ),
)

# --- Pulumi engine and Kubernetes API ---------------------------------------------------------

PULUMI = "v3.274.0"  # the nearest release after the SDK's 3.272.0 (requirements.txt) that the proxy serves
PULUMI_VERSION_FLAGS = (f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI}",)
# The providers' `provider` modules have no tags of their own (command, kubernetes) or are not
# served at all (tls, random): each pin says which commit it stands for and what the proxy said.
PULUMI_COMMAND = "v1.2.1"  # requirements.txt pulumi-command==1.2.1
PULUMI_COMMAND_MODULE = "v0.0.0-20260303235922-7f3eb6f3b77c"  # the v1.2.1 tag's commit; the proxy refuses it (403)
PULUMI_KUBERNETES_MODULE = "v4.0.0-20260115033456-f47bc2d6f199"  # the only version served; between v4.24.0 and v4.25.0
PULUMI_KUBERNETES = "4.24.1-alpha.1768448096+f47bc2d6f199"  # pulumictl's generic name for that commit (not 4.34.2)
PULUMI_TLS = "v5.6.2"  # requirements.txt pulumi-tls==5.6.2; not served (403)
PULUMI_RANDOM = "v4.21.4"  # requirements.txt pulumi-random==4.21.4; not served (403)
KUBERNETES = "v1.36.3"  # the apiserver the fixture stacks talk to; its staging modules are v0.36.3
ETCD = "v3.6.8"  # Kubernetes v1.36.3's etcd (hack/lib/etcd.sh, build/dependencies.yaml)
KWOK = "v0.8.0"


def kubernetes_version_flags(version: str, released: str) -> tuple[str, ...]:
    """`hack/lib/version.sh`'s stamp, set on client-go's and component-base's version packages."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": released,
    }
    return (
        "-s",
        "-w",
        *(
            f"-X {package}.{key}={value}"
            for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
            for key, value in values.items()
        ),
    )


KUBERNETES_FLAGS = kubernetes_version_flags(KUBERNETES, "2026-07-22T18:07:38Z")  # the tag's time (proxy .info)
KUBERNETES_TAGS = ("selinux", "notest", "grpcnotrace")  # hack/lib/golang.sh, non-debug builds
STATIC = {"CGO_ENABLED": "0"}

ENGINE: tuple[Program, ...] = (
    GoBinary(
        "pulumi",
        "github.com/pulumi/pulumi/pkg/v3",
        PULUMI,
        "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
        "pulumi",
        PULUMI_VERSION_FLAGS,
        env={"CGO_ENABLED": "0"},
    ),
    GoBinary(
        "pulumi-resource-command",
        "github.com/pulumi/pulumi-command/provider",
        PULUMI_COMMAND_MODULE,
        "github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command",
        "pulumi-command",
        (f"-X github.com/pulumi/pulumi-command/provider/pkg/version.Version={PULUMI_COMMAND}",),
        env=STATIC,
    ),
    GoBinary(
        "pulumi-resource-kubernetes",
        "github.com/pulumi/pulumi-kubernetes/provider/v4",
        PULUMI_KUBERNETES_MODULE,
        # ours: upstream's main embeds the schema its `go generate` writes (see the builder's main.go)
        "thanos-multi-cluster/integration/builders/pulumi-kubernetes/cmd/pulumi-resource-kubernetes",
        "pulumi-kubernetes",
        (f"-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version={PULUMI_KUBERNETES}",),
        env=STATIC,
        generator="github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes/generate.go",
        generator_env={"VERSION": PULUMI_KUBERNETES},
    ),
    GoBinary(
        "pulumi-resource-tls",
        "github.com/pulumi/pulumi-tls/provider/v5",
        PULUMI_TLS,
        "github.com/pulumi/pulumi-tls/provider/v5/cmd/pulumi-resource-tls",
        "pulumi-tls",
        (f"-X github.com/pulumi/pulumi-tls/provider/v5/pkg/version.Version={PULUMI_TLS}",),
        env=STATIC,
    ),
    GoBinary(
        "pulumi-resource-random",
        "github.com/pulumi/pulumi-random/provider/v4",
        PULUMI_RANDOM,
        "github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random",
        "pulumi-random",
        (f"-X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version={PULUMI_RANDOM}",),
        env=STATIC,
    ),
    GoBinary(
        "kube-apiserver",
        "k8s.io/kubernetes",
        KUBERNETES,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "kubernetes",
        KUBERNETES_FLAGS,
        KUBERNETES_TAGS,
        STATIC,
    ),
    GoBinary(
        "kube-controller-manager",
        "k8s.io/kubernetes",
        KUBERNETES,
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kubernetes",
        KUBERNETES_FLAGS,
        KUBERNETES_TAGS,
        STATIC,
    ),
    GoBinary(
        "kube-scheduler",
        "k8s.io/kubernetes",
        KUBERNETES,
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubernetes",
        KUBERNETES_FLAGS,
        KUBERNETES_TAGS,
        STATIC,
    ),
    GoBinary("etcd", "go.etcd.io/etcd/server/v3", ETCD, "go.etcd.io/etcd/server/v3", "etcd", env=STATIC),
    GoBinary("kwok", "sigs.k8s.io/kwok", KWOK, "sigs.k8s.io/kwok/cmd/kwok", "kwok", env=STATIC),
)

# Pinned above but refused by the proxy (their build returns Blocked): test_engine.py checks it on every run.
ENGINE_PROVIDERS_REFUSED = ("pulumi-resource-command", "pulumi-resource-tls", "pulumi-resource-random")
# The helper scripts of the engine's Python side are plain files of the SDK's Go module, at the CLI's release:
# python/dist/pulumi-resource-pulumi-python runs dynamic providers (`python -m pulumi.dynamic`).
PULUMI_SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"
PULUMI_LANGUAGE_PYTHON_MODULE = "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3"

# Programs that cannot be built at all, with the evidence: the suite prints these as BLOCKED lines.
ENGINE_BLOCKED: tuple[Blocked, ...] = (
    Blocked(
        "pulumi-language-python",
        f"{PULUMI_LANGUAGE_PYTHON_MODULE}@(pseudo-version of v3.274.0)",
        "the module has no tags, the proxy refuses its version list (`reading .../@v/list: 403 Forbidden | "
        "server response: This module version is not available.`) and its .info of the pulumi tags carries no "
        "commit hash to compose a pseudo-version from; the pseudo-versions of the v3.193.0 and v3.206.0 tag "
        "commits are refused too. Programs run inline through the Automation API instead (`pulumi up --client`).",
    ),
)

# --- Image digests ----------------------------------------------------------------------------

# crane (github.com/google/go-containerregistry), what `python -m tools.digests` asks registries with;
# its `crane registry serve` is the registry the digest tool is run against here.
CRANE = "v0.22.1"  # tools/digests.py CRANE_HINT
IMAGES: tuple[Program, ...] = (
    GoBinary(
        "crane",
        "github.com/google/go-containerregistry",
        CRANE,
        "github.com/google/go-containerregistry/cmd/crane",
        "crane",
        env=STATIC,
    ),
)

PROGRAMS: tuple[Program, ...] = (*DATA_PLANE, *OPENSEARCH, *ENGINE, *IMAGES)
