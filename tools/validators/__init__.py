"""The validators `render --check` and the tests share: each is `(Rendering) -> list[Finding]`.

One module per validator:

- `kubernetes_schema`: typed built-in objects against the Kubernetes schema, strict;
- `crds`: custom resources against their CRD in the reference material;
- `helm_values`: Helm values keys against the pinned chart's defaults;
- `thanos_flags`: Thanos container arguments against the component's flag list;
- `prometheus_rules`: PrometheusRules through `promtool check rules`;
- `secret_leaks`: secrets that lost their Pulumi secret marking;
- `capacity`: requests and limits against the node (also renders the capacity report).

The reference material is `../shared/reference` beside the clone, or `$THANOS_MC_REFERENCE`.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.engine import Rendering
from tools.validators import (
    capacity,
    crds,
    helm_values,
    kubernetes_schema,
    prometheus_rules,
    secret_leaks,
    thanos_flags,
)
from tools.validators.common import Finding, reference_dir

Validator = Callable[[Rendering], list[Finding]]

VALIDATORS: dict[str, Validator] = {
    kubernetes_schema.NAME: kubernetes_schema.validate,
    crds.NAME: crds.validate,
    helm_values.NAME: helm_values.validate,
    thanos_flags.NAME: thanos_flags.validate,
    prometheus_rules.NAME: prometheus_rules.validate,
    secret_leaks.NAME: secret_leaks.validate,
    capacity.NAME: capacity.validate,
}


def run_all(rendering: Rendering) -> list[Finding]:
    """Every validator's findings for one rendering, in a stable order."""
    findings: list[Finding] = []
    for validate in VALIDATORS.values():
        findings += sorted(set(validate(rendering)))
    return findings


__all__ = ["VALIDATORS", "Finding", "Validator", "reference_dir", "run_all"]
