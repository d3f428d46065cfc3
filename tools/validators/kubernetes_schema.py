"""Every built-in Kubernetes object validates against the cluster version's schema, strictly:
ours, and every object the charts render with our values (`tools.cluster`).

Strict mode rejects fields the API does not know (the API server would otherwise drop a misspelt
field silently). Objects the schema set does not know are custom resources, checked by the CRD
validator; an object that neither knows is a finding here.
"""

from __future__ import annotations

from tools.cluster import KubeObject, cluster
from tools.engine import Rendering
from tools.validators import schemas
from tools.validators.common import Finding, describe, join_path, kubernetes_minor

NAME = "kubernetes-schema"
NEEDS_REFERENCE = True


def validate(rendering: Rendering) -> list[Finding]:
    minor = kubernetes_minor(rendering)
    findings = []
    for o in cluster(rendering).applied():
        obj = o.obj
        validator = schemas.object_validator(str(obj.get("apiVersion")), str(obj.get("kind")), minor)
        if validator is None:
            if schemas.find_crd(str(obj.get("apiVersion")), str(obj.get("kind"))) is None:
                findings.append(
                    Finding(
                        NAME,
                        _where(o),
                        f"{obj.get('apiVersion')} {obj.get('kind')} is neither a Kubernetes {minor} kind nor a "
                        "custom resource whose CRD is in the reference material",
                    )
                )
        elif (error := next(validator.iter_errors(obj), None)) is not None:
            where = join_path(list(error.path)) or "(object)"
            findings.append(Finding(NAME, _where(o), f"{where}: {schemas.shorten(error.message)}"))
    return findings


def _where(o: KubeObject) -> str:
    """Ours as the resource's usual name; a chart's object with its release."""
    return describe(o.resource) if o.origin == "ours" and o.resource else o.describe()
