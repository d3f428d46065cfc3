"""Every values key we pass to a Helm release exists in that pinned chart's defaults.

Helm ignores a key no template reads, so a misspelt key is a silent no-op; this is the only
place it can be caught. The defaults are `reference/charts/<chart>-<version>.values.yaml`; the
subcharts of kube-prometheus-stack are checked against their own files (merged with the parent's
overrides, as Helm does). A key the chart documents only as a commented-out example in that file
(`# ingressClassName: nginx`) exists too: the comment's position says where. Where a chart default
is an empty map the chart copies whatever we give it, so the keys below are checked another way,
or explicitly allowed:

- Kubernetes types (`resources`, `affinity`, security contexts, probes ...) are validated against
  the Kubernetes schema, strictly;
- maps kube-prometheus-stack copies into a Prometheus/Alertmanager custom resource are validated
  against that CRD field;
- free-form maps (labels, annotations, the program's own config files ...) are listed below, each
  with the reason; nothing else passes unchecked.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from tools.engine import Rendering, Resource
from tools.validators import schemas
from tools.validators.common import (
    Finding,
    describe,
    kubernetes_minor,
    load_yaml_documents,
    reference_dir,
    reveal,
)

NAME = "helm-values"
NEEDS_REFERENCE = True

SUBCHARTS: dict[tuple[str, str], dict[str, str]] = {
    # Chart.lock of kube-prometheus-stack 55.5.0: values under these keys go to the subchart.
    ("kube-prometheus-stack", "55.5.0"): {
        "grafana": "grafana-7.0.22",
        "kube-state-metrics": "kube-state-metrics-5.15.3",
        "prometheus-node-exporter": "prometheus-node-exporter-4.24.0",
    },
    # Chart.yaml `dependencies` of kube-prometheus-stack 88.5.3 (the package has no Chart.lock); Grafana
    # now comes from grafana-community/helm-charts. Not listed: `crds` (the chart's own CRD subchart,
    # whose values the parent's `crds` block documents in full) and `prometheus-windows-exporter`
    # (0.12.*, disabled with `windowsMonitoring.enabled: false`; we set none of its values).
    ("kube-prometheus-stack", "88.5.3"): {
        "grafana": "grafana-12.11.1",
        "kube-state-metrics": "kube-state-metrics-8.4.0",
        "prometheus-node-exporter": "prometheus-node-exporter-4.56.1",
    },
}

# Free-form maps by key name, in any chart: their keys are ours, not the chart's.
FREE_FORM_KEYS: dict[str, str] = {
    "annotations": "Kubernetes annotations",
    "podAnnotations": "Kubernetes annotations",
    "labels": "Kubernetes labels",
    "podLabels": "Kubernetes labels",
    "commonLabels": "Kubernetes labels",
    "extraLabels": "Kubernetes labels",
    "customLabels": "Kubernetes labels",
    "additionalLabels": "Kubernetes labels (ServiceMonitor / PrometheusRule)",
    "matchLabels": "a label selector's labels",
    "nodeSelector": "node labels",
    "extraArgs": "command-line flags of the chart's program (map form)",
    "extraEnvs": "environment variables",
    "env": "environment variables (map form)",
}

# Values a chart's templates read that its values.yaml neither sets nor documents, with the template.
TEMPLATE_ONLY_VALUES: dict[str, dict[str, str]] = {
    "kube-prometheus-stack": {
        "crds.upgradeJob.image.sha": "charts/crds/templates/upgrade/job.yaml asks it whether busybox has a digest "
        "(and then reads `image.busybox.sha`)",
    },
}

# Free-form maps at one path of one chart (subchart paths start with the subchart key).
FREE_FORM_PATHS: dict[str, dict[str, str]] = {
    # Every other traefik map we set has keys in the chart's defaults (`ports.*`, `providers.*`, ...)
    # or is a Kubernetes type; labels (`serviceMonitor.additionalLabels`) are free-form by key name.
    "traefik": {
        "tlsStore": "name -> TLSStore spec (rendered as custom resources, checked against Traefik's CRD)",
        "tlsOptions": "name -> TLSOption spec (rendered as custom resources, checked against Traefik's CRD)",
        "ports.web.http.redirections.entryPoint": "Traefik's entrypoint redirection options (to, scheme, permanent)",
        "service.spec": "fields added to the Service's spec (type, externalTrafficPolicy): the rendered Service "
        "is checked against the Kubernetes schema",
    },
    "kube-prometheus-stack": {
        "prometheus.prometheusSpec.externalLabels": "Prometheus external labels (the per-cluster `cluster` label)",
        "alertmanager.config": "the Alertmanager configuration file",
        "additionalPrometheusRulesMap": "rule groups (checked by promtool)",
        "grafana.grafana.ini": "grafana.ini sections and options",
        "grafana.additionalDataSources": "Grafana datasource provisioning entries",
        "grafana.datasources": "Grafana datasource provisioning files",
        "grafana.dashboardProviders": "Grafana dashboard provider files",
        "grafana.dashboards": "Grafana dashboards by provider",
    },
    "opensearch": {
        "config": "file name -> content of OpenSearch's config files (opensearch.yml, log4j2.properties)",
        "securityConfig.config.data": "security plugin files",
    },
    "fluent-bit": {
        "config": "Fluent Bit configuration sections (service, inputs, filters, outputs, parsers)",
        "luaScripts": "file name -> Lua script",
        "serviceMonitor.selector": "labels put on the ServiceMonitor (the chart names them `selector`)",
    },
    # Longhorn: `defaultSettings` is NOT free-form. The 1.12.1 reference file lists 102 settings,
    # exactly those the chart's default-setting.yaml renders, so its keys are checked like any other
    # key; the per-data-engine ones have their shape in CHART_SHAPES.
}

# Kubernetes types a chart copies into a pod spec: checked against the strict schema.
KUBERNETES_TYPED_KEYS: dict[str, tuple[str, ...]] = {
    "resources": ("io.k8s.api.core.v1.ResourceRequirements",),
    "initResources": ("io.k8s.api.core.v1.ResourceRequirements",),  # opensearch: its init containers
    "sidecarResources": ("io.k8s.api.core.v1.ResourceRequirements",),  # opensearch: its sidecar
    # Charts use `securityContext` for the pod or the container; either shape is accepted.
    "securityContext": ("io.k8s.api.core.v1.SecurityContext", "io.k8s.api.core.v1.PodSecurityContext"),
    "containerSecurityContext": ("io.k8s.api.core.v1.SecurityContext",),
    "podSecurityContext": ("io.k8s.api.core.v1.PodSecurityContext",),
    "affinity": ("io.k8s.api.core.v1.Affinity",),
    "dnsConfig": ("io.k8s.api.core.v1.PodDNSConfig",),
    "lifecycle": ("io.k8s.api.core.v1.Lifecycle",),
    "opensearchLifecycle": ("io.k8s.api.core.v1.Lifecycle",),  # opensearch: its main container's hooks
    "livenessProbe": ("io.k8s.api.core.v1.Probe",),
    "readinessProbe": ("io.k8s.api.core.v1.Probe",),
    "startupProbe": ("io.k8s.api.core.v1.Probe",),
}

# Maps kube-prometheus-stack copies into a custom resource's spec (key renames where the chart differs).
CRD_BACKED: dict[tuple[str, str], tuple[str, str, str, dict[str, str]]] = {
    ("kube-prometheus-stack", "prometheus.prometheusSpec"): (
        "monitoring.coreos.com",
        "Prometheus",
        "v1",
        {"storageSpec": "storage"},
    ),
    ("kube-prometheus-stack", "alertmanager.alertmanagerSpec"): ("monitoring.coreos.com", "Alertmanager", "v1", {}),
    ("kube-prometheus-stack", "thanosRuler.thanosRulerSpec"): ("monitoring.coreos.com", "ThanosRuler", "v1", {}),
}


# Longhorn (1.10+) settings with one value per data engine: one value for every engine, or a map
# engine -> value that the chart renders as the JSON string of the Setting (`{"v1":"1","v2":"1"}`,
# values are strings).
LONGHORN_PER_ENGINE_SETTING: dict[str, Any] = {
    "anyOf": [
        {"type": ["string", "integer", "boolean"]},
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"v1": {"type": "string"}, "v2": {"type": "string"}},
        },
    ]
}

# Values a chart reshapes before copying them into a custom resource: the chart's own shape.
CHART_SHAPES: dict[tuple[str, str], dict[str, Any]] = {
    ("longhorn", "defaultSettings.defaultReplicaCount"): LONGHORN_PER_ENGINE_SETTING,
    ("longhorn", "defaultSettings.guaranteedInstanceManagerCPU"): LONGHORN_PER_ENGINE_SETTING,
    # kube-prometheus-stack turns `existingSecret` ({name, key}) or `secret` (the objstore config
    # it renders into a Secret) into the Prometheus CR's spec.thanos.objectStorageConfig.
    ("kube-prometheus-stack", "prometheus.prometheusSpec.thanos.objectStorageConfig"): {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "existingSecret": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
            },
            "secret": {"type": "object"},
        },
    },
}


def values_file(chart: str, version: str) -> Path:
    return reference_dir() / "charts" / f"{chart}-{version}.values.yaml"


@functools.cache
def chart_defaults(chart: str, version: str) -> dict[str, Any] | None:
    """The chart's default values with its subcharts' defaults merged in; None without a reference file."""
    path = values_file(chart, version)
    if not path.exists():
        return None
    documents = load_yaml_documents(path)
    defaults: dict[str, Any] = dict(documents[0]) if documents else {}
    for key, subchart in SUBCHARTS.get((chart, version), {}).items():
        sub_path = reference_dir() / "charts" / f"{subchart}.values.yaml"
        sub_docs = load_yaml_documents(sub_path) if sub_path.exists() else ()
        sub_defaults = dict(sub_docs[0]) if sub_docs else {}
        defaults[key] = _merge_defaults(sub_defaults, defaults.get(key) or {})
    return defaults


@functools.cache
def documented_paths(chart: str, version: str) -> frozenset[tuple[str, ...]]:
    """Key paths the chart documents as commented-out examples, subcharts included."""
    paths = _commented_keys(values_file(chart, version))
    for key, subchart in SUBCHARTS.get((chart, version), {}).items():
        paths |= {(key, *path) for path in _commented_keys(reference_dir() / "charts" / f"{subchart}.values.yaml")}
    return frozenset(paths)


_KEY_LINE = re.compile(r"^(\s*)(?:\"([^\"]+)\"|'([^']+)'|([^\s#'\"-][^:#]*?)):(?:\s+(.*))?$")
_COMMENTED_KEY = re.compile(r"^#(\s*)([A-Za-z_][\w.-]*):(?:\s|$)")


def _commented_keys(path: Path) -> set[tuple[str, ...]]:
    """Paths of `# key: value` lines. A comment block's first key is read two ways, both accepted:
    as a sibling of the real keys at the column of its `#` (a commented-out value), and, right
    below an empty map (`resources: {}`), as that map's child (an example of its content). Keys
    further right inside the same block nest under the key above them."""
    if not path.exists():
        return set()
    found: set[tuple[str, ...]] = set()
    real: list[tuple[int, str]] = []  # (indent, key) of the enclosing real keys
    open_map: tuple[int, tuple[str, ...]] | None = None  # the real key just above, when its value is empty
    block: list[tuple[int, set[tuple[str, ...]]]] = []  # (text column, paths) inside a comment block
    scalar_indent: int | None = None  # inside a block scalar (`key: |`) deeper than this
    for line in path.read_text().splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if scalar_indent is not None and (not stripped or indent > scalar_indent):
            continue
        scalar_indent = None
        if not stripped:
            block, open_map = [], None
            continue
        if stripped.startswith("#"):
            match = _COMMENTED_KEY.match(stripped)
            if match and not stripped.startswith("##"):
                column = indent + 1 + len(match.group(1))
                while block and block[-1][0] >= column:
                    block.pop()
                if block:
                    parents = block[-1][1]
                else:
                    parents = {tuple(key for col, key in real if col < indent)}
                    if open_map is not None and column > open_map[0]:
                        parents.add(open_map[1])
                paths = {(*parent, match.group(2)) for parent in parents}
                block.append((column, paths))
                found |= paths
            continue
        block, open_map = [], None
        match = _KEY_LINE.match(line)
        if match and not stripped.startswith("- "):
            key = (match.group(2) or match.group(3) or match.group(4)).strip()
            real = [(col, name) for col, name in real if col < indent] + [(indent, key)]
            value = (match.group(5) or "").strip()
            if value[:1] in ("|", ">"):
                scalar_indent = indent
            if value in ("", "{}", "[]", "~", "null"):
                open_map = (indent, tuple(name for _, name in real))
    return found


def _merge_defaults(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_defaults(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(rendering: Rendering) -> list[Finding]:
    minor = kubernetes_minor(rendering)
    findings = []
    for release in rendering.helm_releases():
        findings += [Finding(NAME, describe(release), message) for message in release_problems(release, minor)]
    return findings


def release_problems(release: Resource, minor: str) -> list[str]:
    chart, version = str(release.inputs.get("chart")), str(release.inputs.get("version"))
    defaults = chart_defaults(chart, version)
    if defaults is None:
        return [f"no reference defaults for chart {chart} {version} ({values_file(chart, version).name})"]
    values = reveal(release.inputs.get("values")) or {}
    if not isinstance(values, dict):
        return ["values must be a map"]
    return _ValuesCheck(chart, version, minor).check(values, defaults, ())


class _ValuesCheck:
    def __init__(self, chart: str, version: str, minor: str) -> None:
        self.chart = chart
        self.minor = minor
        self.documented = documented_paths(chart, version)
        self.label = f"{chart} {version}"

    def check(self, ours: dict[str, Any], defaults: Any, path: tuple[str, ...]) -> list[str]:
        problems: list[str] = []
        default_map = defaults if isinstance(defaults, dict) else {}
        for key, raw in ours.items():
            problems += self._key(str(key), reveal(raw), default_map, path)
        return problems

    def _key(self, key: str, value: Any, defaults: dict[str, Any], path: tuple[str, ...]) -> list[str]:
        dotted = ".".join((*path, key))
        if key in FREE_FORM_KEYS or dotted in FREE_FORM_PATHS.get(self.chart, {}):
            return []
        if dotted in TEMPLATE_ONLY_VALUES.get(self.chart, {}):
            return []
        shape = CHART_SHAPES.get((self.chart, dotted))
        if shape is not None:
            return [f"{schemas.under(dotted, p)}: {m}" for p, m in schemas.schema_errors(value, shape)]
        if key in KUBERNETES_TYPED_KEYS and isinstance(value, dict):
            return self._typed(dotted, value, KUBERNETES_TYPED_KEYS[key])
        if key not in defaults:
            if (*path, key) in self.documented:
                return self.check(value, {}, (*path, key)) if isinstance(value, dict) else []
            return [
                f"{dotted}: not a value of chart {self.label} (neither a default nor documented in its "
                "values.yaml; misspelt, or from another chart version?)"
            ]
        default = reveal(defaults[key])
        if isinstance(value, dict):
            if isinstance(default, dict) and default:
                return self.check(value, default, (*path, key))
            if default is None or default == {}:
                return self._open_map(path, key, value)
            return [f"{dotted}: the chart expects a {type(default).__name__} here, not a map"]
        if value is not None and isinstance(default, dict) and default:
            return [f"{dotted}: the chart expects a map here, not a {type(value).__name__}"]
        return []

    def _typed(self, dotted: str, value: dict[str, Any], definitions: tuple[str, ...]) -> list[str]:
        attempts = [schemas.definition_errors(value, definition, self.minor) for definition in definitions]
        if any(not errors for errors in attempts):
            return []
        kind = definitions[0].rpartition(".")[2]
        return [f"{schemas.under(dotted, path)}: {message} (as a Kubernetes {kind})" for path, message in attempts[0]]

    def _open_map(self, path: tuple[str, ...], key: str, value: dict[str, Any]) -> list[str]:
        dotted = ".".join((*path, key))
        backing = CRD_BACKED.get((self.chart, ".".join(path)))
        if backing is None:
            return [
                f"{dotted}: the chart default is an empty map, so its keys cannot be checked; "
                "list it as a free-form map in tools/validators/helm_values.py (with the reason) if it is one"
            ]
        group, kind, version, renames = backing
        field_name = renames.get(key, key)
        schema = schemas.crd_spec_property(group, kind, version, field_name)
        if schema is None:
            return [f"{dotted}: {kind} has no spec.{field_name}"]
        reshaped = {name for name in value if (self.chart, f"{dotted}.{name}") in CHART_SHAPES}
        problems = [
            f"{schemas.under(dotted, path)}: {message} (as {kind} spec.{field_name})"
            for path, message in schemas.schema_errors({k: v for k, v in value.items() if k not in reshaped}, schema)
        ]
        for name in sorted(reshaped):
            problems += self._key(name, reveal(value[name]), {}, (*path, key))
        return problems
