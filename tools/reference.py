"""Reference material: the pinned upstream facts the offline checks compare the program with, where it is
looked for, and fetching it from upstream into a local cache.

Nothing in it is ours: each file is an upstream artifact, or a list extracted from one. The layout (the
same as `../shared/reference`, which CI checks out beside the clone) and where each piece comes from:

- `charts/packages/<chart>-<version>.tgz`: the chart as `helm pull <chart> --repo <repo> --version <v>`
  fetches it (subcharts included), so `helm template` renders exactly what `helm install` would.
- `charts/<chart>-<version>.values.yaml`: the chart's default `values.yaml`, byte for byte from the
  package (what `helm show values` prints, without the newline helm v4 appends). For a subchart
  (grafana, kube-state-metrics, prometheus-node-exporter in kube-prometheus-stack): the
  `<parent>/charts/<sub>/values.yaml` bundled in its parent's package, else the subchart's own package.
- `crds/<project>-<version>/*.yaml`: every CustomResourceDefinition the chart installs. Files of a
  `crds/` directory (the chart's or a subchart's) are copied verbatim; CRDs the chart's templates
  create (Longhorn) are rendered with `helm template --include-crds`, one file per template.
- `thanos-flags/thanos-<version>-<component>.flags`: the flags of `thanos <component> --help` as the
  release's `docs/components/<component>.md` prints it (thanos-io/thanos at the tag): one per line,
  sorted; a boolean `--[no-]x` appears as both `--x` and `--no-x`.

What is fetched: the two version sets of `SETS` (seed: Kubernetes 1.28; 2026: Kubernetes 1.36) plus
whatever `components/versions.py` pins, so a newly pinned chart is fetched even before the table lists it.

Where it is looked for (`reference_dir()`): `$THANOS_MC_REFERENCE`, else `../shared/reference` beside the
repository, else the git-ignored cache `reference/` in the repository, which `fetch` fills.

CLI: `python -m tools.reference fetch [--dest DIR] [--set seed|2026|all] [--force]
[--chart-mirror URL] [--github-raw URL]` and `python -m tools.reference check`.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from components import versions
from tools import helm

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = ROOT.parent / "shared" / "reference"
CACHE_DIR = ROOT / "reference"

REFERENCE_ENV = "THANOS_MC_REFERENCE"
"""Overrides where the material is read from (the same name as `tools.validators.common.REFERENCE_ENV`)."""
CHART_MIRROR_ENV = "THANOS_MC_CHART_MIRROR"
"""One chart repository used instead of every upstream one (a mirror holding all the charts)."""
GITHUB_RAW_ENV = "THANOS_MC_GITHUB_RAW"
"""Base URL used instead of https://raw.githubusercontent.com (a mirror with the same paths)."""

GITHUB_RAW = "https://raw.githubusercontent.com"
THANOS_DOCS = "thanos-io/thanos/{version}/docs/components/{component}.md"
THANOS_COMPONENTS = ("query", "query-frontend", "store", "compact", "sidecar", "rule")

FETCH_COMMAND = "venv/bin/python -m tools.reference fetch"
NETWORK_NOTE = "needs network access to the chart repositories and GitHub"

DOWNLOAD_TIMEOUT = 60.0
PULL_TIMEOUT = 300.0

CRD_KIND = "CustomResourceDefinition"
YAML_SUFFIXES = (".yaml", ".yml", ".json")


# --- what the reference holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Subchart:
    """A chart bundled in another one whose default values the validators merge in."""

    name: str
    version: str
    repo: str
    """Where the subchart is published, for when its parent does not bundle it."""


@dataclass(frozen=True)
class ChartSource:
    """One chart version of the reference and what is kept of it."""

    name: str
    version: str
    repo: str
    crds: str | None = None
    """`crds/<this>/` for the CRDs the chart installs; None when it installs none."""
    crd_groups: tuple[str, ...] = ()
    """Keep only CRDs of these API groups (empty: all)."""
    values: bool = True
    """Write `charts/<chart>-<version>.values.yaml` (False: the package alone, kept for comparison)."""
    subcharts: tuple[Subchart, ...] = ()
    namespace: str = "default"
    """Release namespace for rendering CRDs from templates: a CRD's conversion webhook names it."""


@dataclass(frozen=True)
class ReferenceSet:
    """The charts and Thanos releases of one coherent version set."""

    kubernetes: str
    """`--kube-version` for rendering the set's charts (charts check it against their kubeVersion)."""
    charts: tuple[ChartSource, ...]
    thanos: tuple[str, ...]


PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts"
LONGHORN_REPO = "https://charts.longhorn.io"
OPENSEARCH_REPO = "https://opensearch-project.github.io/helm-charts"
FLUENT_REPO = "https://fluent.github.io/helm-charts"
INGRESS_NGINX_REPO = "https://kubernetes.github.io/ingress-nginx"
TRAEFIK_REPO = "https://traefik.github.io/charts"
GRAFANA_REPO = "https://grafana.github.io/helm-charts"
# Grafana's community charts (the grafana chart among them) moved here in January 2026; kube-prometheus-stack
# 88.x declares its grafana dependency from it.
GRAFANA_COMMUNITY_REPO = "https://grafana-community.github.io/helm-charts"

SETS: dict[str, ReferenceSet] = {
    "seed": ReferenceSet(
        kubernetes="v1.28.0",
        charts=(
            ChartSource(
                "kube-prometheus-stack", "55.5.0", PROMETHEUS_COMMUNITY, crds="prometheus-operator-v0.70.0",
                subcharts=(
                    Subchart("grafana", "7.0.22", GRAFANA_REPO),
                    Subchart("kube-state-metrics", "5.15.3", PROMETHEUS_COMMUNITY),
                    Subchart("prometheus-node-exporter", "4.24.0", PROMETHEUS_COMMUNITY),
                ),
            ),
            # Longhorn runs in longhorn-system only (its docs say so): the CRDs' conversion webhook points there.
            ChartSource("longhorn", "1.5.3", LONGHORN_REPO, crds="longhorn-v1.5.3", namespace="longhorn-system"),
            ChartSource("opensearch", "2.18.0", OPENSEARCH_REPO),
            ChartSource("fluent-bit", "0.42.0", FLUENT_REPO),
            ChartSource("ingress-nginx", "4.9.0", INGRESS_NGINX_REPO),
        ),
        thanos=("v0.32.5",),
    ),
    "2026": ReferenceSet(
        kubernetes="v1.36.0",
        charts=(
            ChartSource(
                "kube-prometheus-stack", "88.5.3", PROMETHEUS_COMMUNITY, crds="prometheus-operator-v0.93.1",
                subcharts=(
                    Subchart("grafana", "12.11.1", GRAFANA_COMMUNITY_REPO),
                    Subchart("kube-state-metrics", "8.4.0", PROMETHEUS_COMMUNITY),
                    Subchart("prometheus-node-exporter", "4.56.1", PROMETHEUS_COMMUNITY),
                ),
            ),
            ChartSource("longhorn", "1.12.1", LONGHORN_REPO, crds="longhorn-v1.12.1", namespace="longhorn-system"),
            ChartSource("opensearch", "3.6.0", OPENSEARCH_REPO),
            ChartSource("fluent-bit", "0.58.1", FLUENT_REPO),
            # The chart's crds/ also holds Traefik Hub's CRDs (hub.traefik.io, the commercial API gateway):
            # nothing here uses them, and the reference keeps Traefik's own.
            ChartSource("traefik", "41.3.0", TRAEFIK_REPO, crds="traefik-v3.7.11", crd_groups=("traefik.io",)),
            # Retired upstream in March 2026: the package is kept to compare renderings, not as a target.
            ChartSource("ingress-nginx", "4.15.1", INGRESS_NGINX_REPO, values=False),
        ),
        thanos=("v0.42.4",),
    ),
}  # fmt: skip

SELECTIONS = (*SETS, "all")


@dataclass(frozen=True)
class Plan:
    """Everything one fetch writes: charts (each with the Kubernetes version to render it for) and Thanos releases."""

    charts: tuple[tuple[ChartSource, str], ...]
    thanos: tuple[str, ...]


def plan(selection: str = "all") -> Plan:
    """The charts and Thanos releases of a set (or of all sets), plus what components/versions.py pins."""
    chosen = list(SETS.values()) if selection == "all" else [SETS[selection]]
    known = {(c.name, c.version): (c, s.kubernetes) for s in SETS.values() for c in s.charts}
    charts = {(c.name, c.version): (c, s.kubernetes) for s in chosen for c in s.charts}
    for pinned in versions.CHARTS.values():
        key = (pinned.name, pinned.version)
        generic = (ChartSource(pinned.name, pinned.version, pinned.repo), versions.KUBERNETES)
        source, kubernetes = known.get(key, generic)
        # The program installs it, so the values validator needs its defaults whatever the table says.
        charts[key] = (replace(source, values=True), kubernetes)
    thanos = {version for s in chosen for version in s.thanos} | {versions.THANOS}
    return Plan(tuple(charts.values()), tuple(sorted(thanos)))


# --- where it is --------------------------------------------------------------------------------


def reference_dir() -> Path:
    """`$THANOS_MC_REFERENCE` if set; else `../shared/reference` beside the repository if it exists; else the
    cache `<repo>/reference/` (also when it does not exist yet: that is where `fetch` puts the material)."""
    override = os.environ.get(REFERENCE_ENV)
    if override:
        return Path(override)
    return SHARED_DIR if SHARED_DIR.is_dir() else CACHE_DIR


def reference_missing() -> str | None:
    """None when the reference material is complete; otherwise one line saying what is missing and the command
    that fetches it (for skipping the checks that need it)."""
    root = reference_dir()
    command = FETCH_COMMAND if root == CACHE_DIR else f"{FETCH_COMMAND} --dest {root}"
    advice = f"run `{command}` ({NETWORK_NOTE})"
    if not root.is_dir():
        return f"reference material missing: {root} does not exist; {advice}"
    missing = [path for path in expected_paths(plan(), root) if not _present(path)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"reference material incomplete: {root} lacks {missing[0].relative_to(root)}{more}; {advice}"
    return None


def expected_paths(chosen: Plan, root: Path) -> list[Path]:
    """Every file (and CRD directory) a complete reference holds for a plan."""
    charts = root / "charts"
    paths: list[Path] = []
    for source, _ in chosen.charts:
        paths.append(package_path(root, source.name, source.version))
        if source.values:
            paths.append(charts / f"{source.name}-{source.version}.values.yaml")
        paths += [charts / f"{sub.name}-{sub.version}.values.yaml" for sub in source.subcharts]
        if source.crds:
            paths.append(root / "crds" / source.crds)
    paths += [flags_path(root, version, component) for version in chosen.thanos for component in THANOS_COMPONENTS]
    return paths


def package_path(root: Path, chart: str, version: str) -> Path:
    return root / "charts" / "packages" / f"{chart}-{version}.tgz"


def flags_path(root: Path, version: str, component: str) -> Path:
    return root / "thanos-flags" / f"thanos-{version}-{component}.flags"


def _present(path: Path) -> bool:
    """A file exists, or a (CRD) directory has something in it."""
    return any(path.iterdir()) if path.is_dir() else path.is_file()


# --- fetching -----------------------------------------------------------------------------------


class FetchError(Exception):
    """One item could not be fetched; the message says why in a line."""


ITEM_ERRORS = (FetchError, helm.HelmError, OSError, tarfile.TarError, yaml.YAMLError, UnicodeDecodeError, ValueError)
"""What fetching one item can fail with: upstream (FetchError, HelmError), the disk (OSError), bad content."""


@dataclass(frozen=True)
class Sources:
    """Where upstream is: the chart repositories (or one mirror for all) and raw.githubusercontent.com."""

    chart_mirror: str | None = None
    github_raw: str = GITHUB_RAW

    def chart_repo(self, repo: str) -> str:
        return self.chart_mirror or repo

    def thanos_docs(self, version: str, component: str) -> str:
        return f"{self.github_raw.rstrip('/')}/{THANOS_DOCS.format(version=version, component=component)}"


@dataclass
class Fetcher:
    """Fills `dest` for a plan, item by item: a failed item is reported in one line and the others go on."""

    dest: Path
    sources: Sources = field(default_factory=Sources)
    force: bool = False
    say: Callable[[str], None] = print
    complain: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    written: list[Path] = field(default_factory=list)
    present: int = 0
    failures: list[str] = field(default_factory=list)

    def run(self, chosen: Plan) -> bool:
        """Fetch everything of the plan; True when nothing failed."""
        for source, kubernetes in chosen.charts:
            self._attempt(f"{source.name} {source.version}", functools.partial(self.chart, source, kubernetes))
        for version in chosen.thanos:
            for component in THANOS_COMPONENTS:
                self._attempt(f"thanos {version} {component}", functools.partial(self.flags, version, component))
        return not self.failures

    def _attempt(self, what: str, action: Callable[[], None]) -> None:
        # Whatever an upstream or a disk can throw at one item becomes one line and the next item goes on;
        # anything else is a bug here and keeps its traceback.
        try:
            action()
        except ITEM_ERRORS as error:
            line = f"error: {what}: {_one_line(error)}"
            self.failures.append(line)
            self.complain(line)

    def _wanted(self, path: Path) -> bool:
        """Whether to (re)write a path: always with --force, else only when it is not there yet."""
        if self.force or not _present(path):
            return True
        self.present += 1
        return False

    def _wrote(self, path: Path, origin: str) -> None:
        self.written.append(path)
        self.say(f"fetched {path.relative_to(self.dest)} ({origin})")

    # --- charts

    def chart(self, source: ChartSource, kubernetes: str) -> None:
        """The package, its values, its subcharts' values and its CRDs."""
        package = package_path(self.dest, source.name, source.version)
        if self._wanted(package):
            pull(source.name, source.version, self.sources.chart_repo(source.repo), package)
            self._wrote(package, f"helm pull from {self.sources.chart_repo(source.repo)}")
        files = _Lazy(lambda: package_files(package))
        charts = self.dest / "charts"
        values = charts / f"{source.name}-{source.version}.values.yaml"
        if source.values and self._wanted(values):
            _write_atomic(values, chart_values(files.get(), source.name))
            self._wrote(values, f"{source.name}/values.yaml of {package.name}")
        for sub in source.subcharts:
            target = charts / f"{sub.name}-{sub.version}.values.yaml"
            if self._wanted(target):
                content, origin = self._subchart_values(files.get(), source, sub)
                _write_atomic(target, content)
                self._wrote(target, origin)
        self._crds(source, package, files, kubernetes)

    def _subchart_values(self, files: dict[str, bytes], parent: ChartSource, sub: Subchart) -> tuple[bytes, str]:
        bundled = bundled_values(files, parent.name, sub)
        if bundled is not None:
            return bundled, f"{parent.name}/charts/{sub.name}/values.yaml of {parent.name}-{parent.version}.tgz"
        # Not bundled: the subchart's own package, pulled aside (the reference keeps parent packages only).
        repo = self.sources.chart_repo(sub.repo)
        with tempfile.TemporaryDirectory(prefix="reference-subchart-") as scratch:
            package = Path(scratch) / f"{sub.name}-{sub.version}.tgz"
            pull(sub.name, sub.version, repo, package)
            return chart_values(package_files(package), sub.name), f"helm pull from {repo}"

    def _crds(self, source: ChartSource, package: Path, files: _Lazy, kubernetes: str) -> None:
        target = self.dest / "crds" / (source.crds or f"{source.name}-{source.version}")
        if not self._wanted(target):
            return
        found = crd_files(files.get(), source.crd_groups)
        if templates_mention_crds(files.get()):
            found.update(rendered_crds(source, package, kubernetes, taken=set(found)))
        if not found:
            if source.crds:
                raise FetchError(f"{package.name} installs no CustomResourceDefinition, expected {source.crds}")
            return  # a chart without CRDs: nothing to keep
        _write_directory(target, found)
        self._wrote(target, f"CRDs of {package.name} in {len(found)} file{'s' if len(found) > 1 else ''}")

    # --- Thanos flags

    def flags(self, version: str, component: str) -> None:
        target = flags_path(self.dest, version, component)
        if not self._wanted(target):
            return
        url = self.sources.thanos_docs(version, component)
        flags = flags_from_docs(download(url), component)
        _write_atomic(target, ("\n".join(flags) + "\n").encode())
        self._wrote(target, url)


class _Lazy:
    """A package's files, read on first use only (nothing is read when every output is already there)."""

    def __init__(self, load: Callable[[], dict[str, bytes]]) -> None:
        self._load = load
        self._files: dict[str, bytes] | None = None

    def get(self) -> dict[str, bytes]:
        if self._files is None:
            self._files = self._load()
        return self._files


# --- chart packages -----------------------------------------------------------------------------


def pull(chart: str, version: str, repo: str, target: Path) -> None:
    """`helm pull <chart> --repo <repo> --version <version>` into `target`, written atomically."""
    binary = helm.helm_binary()
    if binary is None:
        raise FetchError(helm.INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="reference-pull-") as scratch:
        out = Path(scratch) / "out"
        out.mkdir()
        command = [str(binary), "pull", chart, "--repo", repo, "--version", version, "-d", str(out)]
        # The isolated helm home: a developer's repositories and credentials must not change what is fetched.
        helm._run_helm(command, helm._isolated_env(Path(scratch)), PULL_TIMEOUT, f"helm pull {chart} {version}")
        pulled = out / f"{chart}-{version}.tgz"
        if not pulled.is_file():
            raise FetchError(f"helm pull wrote {sorted(p.name for p in out.iterdir())}, not {pulled.name}")
        _write_atomic(target, pulled.read_bytes())


def package_files(package: Path) -> dict[str, bytes]:
    """Every file of a chart package by path (`<chart>/values.yaml`, ...). A subchart bundled as a package
    (`<chart>/charts/<sub>-<v>.tgz`, as `helm package` keeps them) is expanded in place, so it reads the same
    as one bundled as a directory (`<chart>/charts/<sub>/...`, as kube-prometheus-stack ships them)."""
    with tarfile.open(package, mode="r:gz") as archive:
        return _archive_files(archive)


def _archive_files(archive: tarfile.TarFile) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for member in archive:
        stream = archive.extractfile(member) if member.isfile() else None
        if stream is None:
            continue
        data = stream.read()
        path = PurePosixPath(member.name)
        if path.parent.name == "charts" and path.name.endswith(".tgz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as nested:
                files.update({f"{path.parent}/{name}": content for name, content in _archive_files(nested).items()})
        else:
            files[member.name] = data
    return files


def chart_values(files: dict[str, bytes], chart: str) -> bytes:
    """The chart's own `values.yaml`, unchanged."""
    values = files.get(f"{chart}/values.yaml")
    if values is None:
        raise FetchError(f"the package has no {chart}/values.yaml")
    return values


def bundled_values(files: dict[str, bytes], parent: str, sub: Subchart) -> bytes | None:
    """The subchart's `values.yaml` as its parent bundles it; None when the parent does not bundle it."""
    base = f"{parent}/charts/{sub.name}"
    chart_yaml = files.get(f"{base}/Chart.yaml")
    if chart_yaml is None:
        return None
    bundled = str((yaml.safe_load(chart_yaml) or {}).get("version"))
    if bundled != sub.version:
        # The table is wrong about the parent, and the parent's is what the validators must see.
        raise FetchError(f"{parent} bundles {sub.name} {bundled}, not {sub.version}")
    return files.get(f"{base}/values.yaml", b"")


def chart_roots(files: Iterable[str]) -> list[str]:
    """`kube-prometheus-stack/`, `kube-prometheus-stack/charts/crds/`, ...: the chart and every subchart in it."""
    return sorted(path.removesuffix("Chart.yaml") for path in files if PurePosixPath(path).name == "Chart.yaml")


def crd_files(files: dict[str, bytes], groups: tuple[str, ...]) -> dict[str, bytes]:
    """The `crds/` files of the chart and its subcharts that hold CRDs (of `groups`, if given), verbatim;
    by file name (a later duplicate name is prefixed with its chart)."""
    found: dict[str, bytes] = {}
    for root in chart_roots(files):
        for path in sorted(p for p in files if p.startswith(f"{root}crds/") and p.endswith(YAML_SUFFIXES)):
            kept = _keep_crds(files[path], groups)
            if kept is not None:
                found[_free_name(found, path)] = kept
    return found


def _keep_crds(content: bytes, groups: tuple[str, ...]) -> bytes | None:
    """The file unchanged when all of its CRDs are kept; only the kept ones when some are; None when none is."""
    documents = [doc for doc in yaml.load_all(content, Loader=_loader()) if isinstance(doc, dict)]
    crds = [doc for doc in documents if doc.get("kind") == CRD_KIND]
    kept = [doc for doc in crds if _in_groups(doc, groups)]
    if not kept:
        return None
    return content if len(kept) == len(crds) else _dump_documents(kept, header=None)


def templates_mention_crds(files: dict[str, bytes]) -> bool:
    """Whether any template could create a CRD: rendering a chart is slow and may need values, so only then."""
    return any("/templates/" in path and CRD_KIND.encode() in data for path, data in files.items())


def rendered_crds(source: ChartSource, package: Path, kubernetes: str, taken: set[str]) -> dict[str, bytes]:
    """CRDs the chart's templates create with default values (crds/ files are copied verbatim instead),
    one file per template, each document headed by `# Source:` as `helm template` prints it."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for rendered in helm.template(source.name, package, source.namespace, {}, kubernetes):
        obj = rendered.obj
        if obj.get("kind") == CRD_KIND and "/templates/" in rendered.source and _in_groups(obj, source.crd_groups):
            by_source.setdefault(rendered.source, []).append(obj)
    found: dict[str, bytes] = {}
    for template, objects in by_source.items():
        found[_free_name(taken | set(found), template)] = _dump_documents(objects, header=template)
    return found


def _in_groups(crd: dict[str, Any], groups: tuple[str, ...]) -> bool:
    spec = crd.get("spec")
    return not groups or (isinstance(spec, dict) and spec.get("group") in groups)


def _free_name(taken: Collection[str], path: str) -> str:
    """The file name of `path`, or the whole path flattened when another file already has that name."""
    name = PurePosixPath(path).name
    return name if name not in taken else path.replace("/", "_")


def _dump_documents(objects: list[dict[str, Any]], header: str | None) -> bytes:
    prefix = f"# Source: {header}\n" if header else ""
    return "".join(f"---\n{prefix}{yaml.safe_dump(obj, sort_keys=False)}" for obj in objects).encode()


def _loader() -> Any:
    """The validators' loader (libyaml; YAML 1.1 `=` scalars in CRD enums read as strings), so a kept file is
    one they can read."""
    return helm._yaml_loader()


# --- Thanos flags -------------------------------------------------------------------------------

_FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
# `-h, --[no-]help`, `--log.level=info`, `--prometheus.ready_timeout=10m`: the flag at the start of a line.
_FLAG = re.compile(r"(?:-\w,\s+)?--(\[no-\])?([A-Za-z0-9][\w.-]*)")


def flags_from_docs(markdown: str, component: str) -> list[str]:
    """The sorted flags of the `thanos <component> --help` block of a docs page.

    Every line of the Flags section that starts with a flag counts, continuation lines included: kingpin wraps
    `(also try --help-long ...)` and `--no-x for disabling.` onto their own lines, and both name real flags."""
    usage = re.compile(rf"^usage: thanos {re.escape(component)}(\s|$)", re.MULTILINE)
    block = next((b for b in _FENCED.findall(markdown) if usage.search(b)), None)
    if block is None:
        raise FetchError(f"no `thanos {component} --help` block in the docs page")
    flags: set[str] = set()
    for line in _flags_section(block):
        match = _FLAG.match(line.strip())
        if match:
            negatable, name = match.groups()
            flags |= {f"--{name}", f"--no-{name}"} if negatable else {f"--{name}"}
    if not flags:
        raise FetchError(f"the `thanos {component} --help` block lists no flags")
    return sorted(flags)


def _flags_section(block: str) -> list[str]:
    """The lines after `Flags:` up to the next unindented line (another section, e.g. `Args:`)."""
    lines = block.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Flags:"), len(lines))
    section: list[str] = []
    for line in lines[start:]:
        if line.strip() and not line[0].isspace():
            break
        section.append(line)
    return section


def download(url: str) -> str:
    """A text file over HTTP(S) (the environment's proxy settings apply)."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as error:  # "HTTP Error 404: Not Found"
        raise FetchError(f"cannot download {url}: {error}") from error
    except OSError as error:  # URLError's text is "<urlopen error ...>" and names no URL
        raise FetchError(f"cannot download {url}: {getattr(error, 'reason', None) or error}") from error
    return data.decode("utf-8")


# --- files --------------------------------------------------------------------------------------


def _write_atomic(target: Path, data: bytes) -> None:
    """Write beside the target and rename: an interrupted fetch never leaves half a file that looks present."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _write_directory(target: Path, files: dict[str, bytes]) -> None:
    """A CRD directory, complete or not at all (a half-written one would count as present)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        for name, data in files.items():
            (partial / name).write_bytes(data)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reference", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="fetch the reference material from upstream (skips what is there)")
    fetch.add_argument("--dest", type=Path, default=CACHE_DIR, help=f"where to put it (default: {CACHE_DIR})")
    fetch.add_argument("--set", dest="selection", choices=SELECTIONS, default="all", help="version set (default: all)")
    fetch.add_argument("--force", action="store_true", help="fetch again what is already there")
    fetch.add_argument(
        "--chart-mirror", default=os.environ.get(CHART_MIRROR_ENV) or None,
        help=f"one chart repository to use instead of every upstream one (${CHART_MIRROR_ENV})",
    )  # fmt: skip
    fetch.add_argument(
        "--github-raw", default=os.environ.get(GITHUB_RAW_ENV) or GITHUB_RAW,
        help=f"base URL instead of {GITHUB_RAW} (${GITHUB_RAW_ENV})",
    )  # fmt: skip
    commands.add_parser("check", help="say whether the reference material is complete (exit 1 when not)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check_command()
    return _fetch_command(args.dest, args.selection, args.force, Sources(args.chart_mirror, args.github_raw))


def _fetch_command(dest: Path, selection: str, force: bool, sources: Sources) -> int:
    fetcher = Fetcher(dest, sources, force)
    ok = fetcher.run(plan(selection))
    failed = f", {len(fetcher.failures)} failed" if fetcher.failures else ""
    print(f"reference material in {dest}: {len(fetcher.written)} fetched, {fetcher.present} already there{failed}")
    return 0 if ok else 1


def _check_command() -> int:
    reason = reference_missing()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    print(f"reference material complete in {reference_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
