"""Schema material shared by the validators: Kubernetes type definitions and the reference CRDs.

The CRD schemas are structural OpenAPI v3; they are translated to JSON Schema the way the API
server reads them: a field the schema does not declare is pruned (we treat it as an error, so a
misspelt field cannot vanish silently) unless `x-kubernetes-preserve-unknown-fields` keeps it;
`x-kubernetes-int-or-string` accepts both; `nullable` admits null. CEL rules
(`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import kubernetes_validate
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource

from components import versions
from tools import reference
from tools.validators.common import join_path, load_yaml_documents, reference_dir, validation_view

MESSAGE_LIMIT = 300
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def shorten(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


# --- Kubernetes type definitions ----------------------------------------------------------


@functools.cache
def _definitions(minor: str) -> tuple[str, Registry]:
    """The strict definitions kubernetes-validate ships for the newest version <= `minor`."""
    candidates = [v for v in kubernetes_validate.utils.all_versions() if _minor_tuple(v) <= _minor_tuple(minor)]
    contents = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{candidates[-1]}-local-strict/_definitions.json", minor
    )
    registry: Registry = Resource.from_contents(contents) @ Registry()
    return str(contents.get("$id", "")), registry


@functools.cache
def object_validator(api_version: str, kind: str, minor: str) -> Draft202012Validator | None:
    """The strict validator `kubernetes_validate.validate(obj, minor, strict=True)` builds for an
    object of `apiVersion`/`kind`, built once: that function reads the whole definitions file and
    builds a fresh validator (and its reference cache) for every object. None when the schema set
    has no such kind (its `SchemaNotFoundError`). Its first error is the one it raises."""
    utils = kubernetes_validate.utils
    desired = minor.removeprefix("v")
    if utils.major_minor(desired) > utils.latest_version():
        raise kubernetes_validate.VersionNotSupportedError(version=utils.major_minor(desired))
    # The same choice as kubernetes_validate (it compares "major.minor" as strings).
    version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(desired)][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{api}.json", desired)
    except FileNotFoundError:
        return None
    registry: Registry = _strict_definitions(schema_dir, desired) @ (Resource.from_contents(schema) @ Registry())
    return Draft202012Validator(schema, registry=registry)


@functools.cache
def _strict_definitions(schema_dir: str, desired: str) -> Resource[Any]:
    return Resource.from_contents(kubernetes_validate.utils.schema_contents(f"{schema_dir}/_definitions.json", desired))


def _minor_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def definition_errors(value: Any, definition: str, minor: str) -> list[tuple[str, str]]:
    """Strict-schema errors (path, message) of `value` as the Kubernetes type `definition`
    (e.g. `io.k8s.api.core.v1.Affinity`)."""
    schema_id, registry = _definitions(minor)
    validator = Draft202012Validator({"$ref": f"{schema_id}#/$defs/{definition}"}, registry=registry)
    return _messages(validator, value)


def _messages(validator: Draft7Validator | Draft202012Validator, value: Any) -> list[tuple[str, str]]:
    errors = sorted(validator.iter_errors(validation_view(value)), key=lambda e: [str(p) for p in e.path])
    return [(join_path(list(error.path)), shorten(error.message)) for error in errors]


def under(prefix: str, path: str) -> str:
    """`prefix.path` (or `prefix[0]...`, or just `prefix` for the value itself)."""
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") or not prefix else f"{prefix}.{path}"


# --- CRDs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crd:
    group: str
    kind: str
    source: str
    """Reference file the CRD came from (for messages)."""
    versions: dict[str, dict[str, Any]]
    """Served version name -> its openAPIV3Schema, translated to JSON Schema."""


def deployed_crd_directories() -> set[str]:
    """The reference's CRD directories of the charts at the versions the program deploys. The
    reference also keeps older sets (the seed's Longhorn 1.5.3, Prometheus Operator 0.70.0) to compare
    with; their CRDs must never stand for the deployed ones."""
    pinned = {(chart.name, chart.version) for chart in versions.CHARTS.values()}
    return {
        source.crds
        for reference_set in reference.SETS.values()
        for source in reference_set.charts
        if source.crds and (source.name, source.version) in pinned
    }


@functools.cache
def _crd_index() -> dict[tuple[str, str], Crd]:
    root = reference_dir() / "crds"
    index: dict[tuple[str, str], Crd] = {}
    deployed = deployed_crd_directories()
    for path in sorted(p for p in root.glob("**/*.yaml") if p.relative_to(root).parts[0] in deployed):
        for doc in load_yaml_documents(path):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            served = {
                version["name"]: to_json_schema(version.get("schema", {}).get("openAPIV3Schema", {}), root=True)
                for version in spec.get("versions", [])
                if version.get("served", True)
            }
            key = (spec["group"], spec["names"]["kind"])
            index[key] = Crd(spec["group"], spec["names"]["kind"], str(path.relative_to(root)), served)
    return index


def preload() -> None:
    """Read the reference CRDs now (`tools.validators.prepare` does it while helm renders)."""
    _crd_index()


def find_crd(api_version: str, kind: str) -> Crd | None:
    group = api_version.rpartition("/")[0]
    return _crd_index().get((group, kind)) if group else None


def schema_errors(value: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for every place `value` breaks a translated CRD (sub-)schema."""
    return _messages(Draft7Validator(schema), value)


def crd_spec_property(group: str, kind: str, version: str, name: str) -> dict[str, Any] | None:
    """The translated schema of `spec.<name>` of a CRD version, or None when it has no such field."""
    crd = _crd_index().get((group, kind))
    schema = crd.versions.get(version) if crd else None
    prop = (schema or {}).get("properties", {}).get("spec", {}).get("properties", {}).get(name)
    return prop if isinstance(prop, dict) else None


_NESTED_MAPS = ("properties", "patternProperties", "definitions")
_NESTED_LISTS = ("allOf", "anyOf", "oneOf")
_DROPPED = ("description", "example", "externalDocs", "nullable")


def to_json_schema(schema: dict[str, Any], root: bool = False) -> dict[str, Any]:
    """Translate one structural schema node (recursively)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _NESTED_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _NESTED_LISTS and isinstance(value, list):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in _DROPPED or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if root and "properties" in out:
        # The API server checks metadata itself (ObjectMeta); the CRD declares it as a bare object.
        out["properties"]["metadata"] = {"type": "object"}
    if _closed(schema):
        out["additionalProperties"] = False
    return out


def _closed(schema: dict[str, Any]) -> bool:
    """The API server prunes fields a structural schema does not declare: an object node with
    declared properties (or a bare `type: object`) unless it has additionalProperties,
    `x-kubernetes-preserve-unknown-fields` or is an embedded resource."""
    if "additionalProperties" in schema:
        return False
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-embedded-resource"):
        return False
    return "properties" in schema or schema.get("type") == "object"
