"""No secret leaks: every value derived from a secret stays a Pulumi secret.

Offline, secret config values are `REDACTED-SECRET-<key>` placeholders and generated passwords
are a fixed string, so a secret that lost its secret marking on the way (string formatting
outside `Output`, `Output.apply` results, a plain Helm value) is visible: any input or stack
output containing one outside a `Secret` wrapper would land in plain text in the state file.
Kubernetes `Secret` objects must carry their `data`/`stringData` as Pulumi secrets.
"""

from __future__ import annotations

from typing import Any

from tools.engine import MOCK_PASSWORD, MOCK_PRIVATE_KEY, SECRET_PLACEHOLDER_PREFIX, Rendering, Resource, Secret
from tools.validators.common import Finding, describe, join_path, walk

NAME = "secret-leaks"
MARKERS = (SECRET_PLACEHOLDER_PREFIX, MOCK_PASSWORD, MOCK_PRIVATE_KEY)


def validate(rendering: Rendering) -> list[Finding]:
    findings = []
    for resource in rendering.resources:
        findings += [
            Finding(NAME, describe(resource), problem) for problem in _plain_markers(resource.inputs, "inputs")
        ]
        findings += [Finding(NAME, describe(resource), problem) for problem in _kubernetes_secret(resource)]
    for key, value in rendering.outputs.items():
        findings += [Finding(NAME, f"stack output {key}", problem) for problem in _plain_markers(value, "value")]
    return findings


def _plain_markers(value: Any, root: str) -> list[str]:
    return [
        f"{join_path(path) or root} holds a secret in plain text (it must stay a Pulumi secret)"
        for path, leaf, inside_secret in walk(value)
        if isinstance(leaf, str) and not inside_secret and any(marker in leaf for marker in MARKERS)
    ]


def _kubernetes_secret(resource: Resource) -> list[str]:
    if resource.kind != "Secret" or resource.inputs.get("apiVersion") != "v1":
        return []
    return [
        f"{field} is not a Pulumi secret: wrap it (pulumi.Output.secret) so it is encrypted in the state"
        for field in ("data", "stringData")
        if field in resource.inputs and not _is_secret(resource.inputs[field])
    ]


def _is_secret(value: Any) -> bool:
    """A secret as a whole, or a map whose every value is one."""
    if isinstance(value, Secret):
        return True
    return isinstance(value, dict) and all(isinstance(item, Secret) for item in value.values())
