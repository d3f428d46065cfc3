"""Pod Security, judged by upstream's own evaluator: every pod passes the level its namespace
enforces, and no namespace enforces less than its pods need.

Every pod of the cluster (`tools.cluster`: ours, the charts', the operators') in a namespace the
program creates goes to `k8s.io/pod-security-admission` (`tools.podsecurity`), all in one run:

- at what the API server would enforce on it: the namespace's labels as the program renders them,
  read by upstream as the PodSecurity admission plugin reads them (the `enforce` level at the
  pinned `enforce-version`). Each failed check is a finding with upstream's reason and detail,
  `namespace monitoring enforces restricted: host namespaces (hostNetwork=true)`;
- at each stricter level, at the same version: a namespace whose pods would all pass a stricter
  level than it enforces is a finding (`enforce restricted`), so every level is the strictest its
  pods allow. So is a namespace whose Pod Security labels upstream cannot parse.

Namespaces the program does not create (kube-system) are not ours to judge. The evaluator sees the
pod as rendered, with the API server's defaults that Pod Security reads (a volume without a source
is an emptyDir; with hostNetwork, container ports are host ports; `tools/podsecurity/main.go`); not
what other admission plugins would change, nor fields a disabled feature gate would drop. The
built-in admission configuration applies: no exemptions.

Without Go the evaluator cannot be built: `prerequisite()` says why and `render --check` skips this
validator with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools import podsecurity
from tools.cluster import Pod, cluster
from tools.engine import Rendering
from tools.podsecurity import LEVELS, Check, Level, Verdict
from tools.validators.common import Finding

NAME = "pod-security"
NEEDS_REFERENCE = True
"""The charts' pods are most of the pods: judged on our objects alone, the verdict would be half of one."""


def prerequisite() -> str | None:
    """Why the evaluator cannot be had here (no Go, a failed build), or None."""
    return podsecurity.unavailable()


def validate(rendering: Rendering) -> list[Finding]:
    model = cluster(rendering)
    judged: list[tuple[Pod, dict[str, str]]] = []
    for pod in model.pods():
        labels = model.namespace_labels(pod.namespace)
        if labels is not None:  # a namespace we do not create (kube-system): not ours to judge
            judged.append((pod, labels))
    checks: list[Check] = []
    for index, (pod, labels) in enumerate(judged):
        checks.append(Check(str(index), pod.template(), namespace_labels=labels))
        for level in LEVELS[1:]:
            checks.append(Check(f"{index} {level}", pod.template(), namespace_labels=labels, level=level))
    verdicts = {verdict.id: verdict for verdict in podsecurity.evaluate(checks)}

    findings: list[Finding] = []
    enforced: dict[str, Verdict] = {}
    passed_by_all: dict[str, set[Level]] = {}
    for index, (pod, _) in enumerate(judged):
        verdict = verdicts[str(index)]
        enforced.setdefault(pod.namespace, verdict)
        where = pod.source.describe()
        if verdict.error:
            findings.append(Finding(NAME, where, f"not judged by Pod Security: {verdict.error}"))
        for message in verdict.messages:
            findings.append(Finding(NAME, where, f"namespace {pod.namespace} enforces {verdict.level}: {message}"))
        passed: set[Level] = {"privileged", *(level for level in LEVELS[1:] if verdicts[f"{index} {level}"].allowed)}
        passed_by_all[pod.namespace] = passed_by_all.get(pod.namespace, passed) & passed
    for namespace, verdict in enforced.items():
        if verdict.label_errors:
            errors = "; ".join(verdict.label_errors)
            message = f"Pod Security labels not understood ({errors}): the API server enforces {_policy(verdict)}"
            findings.append(Finding(NAME, f"Namespace {namespace}", message))
        needed = max(passed_by_all[namespace], key=LEVELS.index)
        if LEVELS.index(verdict.level) < LEVELS.index(needed):
            message = f"enforces {verdict.level}, but every pod in it passes {needed}: enforce {needed}"
            findings.append(Finding(NAME, f"Namespace {namespace}", message))
    return findings


def violations(pod: Mapping[str, Any], level: Level, version: str = "latest") -> list[str]:
    """Why `level` at `version` (`v1.36`, `1.36` or `latest`) would not admit `pod`
    (`{"metadata", "spec"}`), in upstream's words; empty when it would. One evaluator run per call:
    for many pods, `tools.podsecurity.evaluate` them together."""
    version = version if version == "latest" or version.startswith("v") else f"v{version}"
    (verdict,) = podsecurity.evaluate([Check("pod", pod, level=level, version=version)])
    if verdict.error:
        raise ValueError(f"not a pod: {verdict.error}")
    return verdict.messages


def _policy(verdict: Verdict) -> str:
    return f"{verdict.level}:{verdict.version}"
