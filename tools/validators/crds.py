"""Every custom resource validates against its CRD's `openAPIV3Schema` from the reference material
(translation rules in `schemas.py`); its `metadata` against the Kubernetes ObjectMeta schema.
Ours, and those the charts render from our values (a Prometheus, a ServiceMonitor, ...)."""

from __future__ import annotations

from tools.cluster import cluster
from tools.engine import Rendering
from tools.validators import schemas
from tools.validators.common import Finding, describe, kubernetes_minor

NAME = "crd-schema"
NEEDS_REFERENCE = True


def validate(rendering: Rendering) -> list[Finding]:
    minor = kubernetes_minor(rendering)
    findings = []
    for o in cluster(rendering).applied():
        api_version, kind = str(o.obj.get("apiVersion")), o.kind
        crd = schemas.find_crd(api_version, kind)
        if crd is None:
            continue  # a built-in kind (or unknown: the kubernetes-schema validator reports it)
        where = describe(o.resource) if o.origin == "ours" and o.resource else o.describe()
        version = api_version.rpartition("/")[2]
        schema = crd.versions.get(version)
        if schema is None:
            served = ", ".join(sorted(crd.versions)) or "none"
            findings.append(Finding(NAME, where, f"{api_version} is not served by the {kind} CRD (serves {served})"))
            continue
        obj = o.obj
        findings += [
            Finding(NAME, where, f"{path or '(object)'}: {message}")
            for path, message in schemas.schema_errors(obj, schema)
        ]
        metadata = obj.get("metadata") or {}
        findings += [
            Finding(NAME, where, f"{schemas.under('metadata', path)}: {message}")
            for path, message in schemas.definition_errors(metadata, schemas.OBJECT_META, minor)
        ]
    return findings
