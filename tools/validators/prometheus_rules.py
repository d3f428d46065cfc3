"""Every Prometheus rule we ship passes `promtool check rules` (Debian/Ubuntu package `prometheus`).

Rules come from typed PrometheusRule objects and from kube-prometheus-stack's
`additionalPrometheusRulesMap` / `additionalPrometheusRules` values. Without promtool nothing can
be checked: that is a finding (CI installs it); the tests skip instead.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tools.engine import Rendering
from tools.validators.common import Finding, describe, lookup, validation_view

NAME = "promtool"
MISSING = "promtool is not installed (Debian/Ubuntu package `prometheus`), so no rule could be checked"
TIMEOUT_SECONDS = 120


def promtool() -> str | None:
    return shutil.which("promtool")


def rule_files(rendering: Rendering) -> list[tuple[str, dict[str, Any]]]:
    """(resource description, rule file content with `groups`) for every rule set in the stack."""
    files: list[tuple[str, dict[str, Any]]] = []
    for resource in rendering.kubernetes_objects():
        if resource.kind == "PrometheusRule" and str(resource.inputs.get("apiVersion", "")).startswith(
            "monitoring.coreos.com/"
        ):
            spec = validation_view(resource.inputs.get("spec")) or {}
            files.append((describe(resource), {"groups": spec.get("groups") or []}))
    for release in rendering.helm_releases():
        if release.inputs.get("chart") != "kube-prometheus-stack":
            continue
        values = validation_view(release.inputs.get("values")) or {}
        rules_map = lookup(values, "additionalPrometheusRulesMap") or {}
        for name, rules in rules_map.items() if isinstance(rules_map, dict) else []:
            files.append(
                (f"{describe(release)} additionalPrometheusRulesMap.{name}", {"groups": rules.get("groups") or []})
            )
        for index, rules in enumerate(lookup(values, "additionalPrometheusRules") or []):
            files.append(
                (f"{describe(release)} additionalPrometheusRules[{index}]", {"groups": rules.get("groups") or []})
            )
    return files


def validate(rendering: Rendering) -> list[Finding]:
    files = rule_files(rendering)
    if not files:
        return []
    binary = promtool()
    if binary is None:
        return [Finding(NAME, f"stack {rendering.stack}", MISSING)]
    findings = []
    for where, content in files:
        findings += [Finding(NAME, where, problem) for problem in check(binary, content)]
    return findings


def check(binary: str, content: dict[str, Any]) -> list[str]:
    """promtool's complaints about one rule file (empty when it passes)."""
    with tempfile.TemporaryDirectory(prefix="promtool-") as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        result = subprocess.run(
            [binary, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode == 0:
        return []
    lines = [line.strip().replace(f"{path}: ", "").replace(str(path), "rules") for line in result.stderr.splitlines()]
    lines += [line.strip() for line in result.stdout.splitlines() if "FAILED" not in line and "Checking" not in line]
    return [line for line in lines if line and line != "FAILED:"] or [f"promtool exited {result.returncode}"]
