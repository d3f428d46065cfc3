"""What every validator shares: the finding type, the reference material, value walking, quantities."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi.output import Unknown

from components import versions
from tools import parsed_yaml, reference
from tools.engine import PROJECT, SECRET_TEXT, Rendering, Resource, Secret

REFERENCE_ENV = "THANOS_MC_REFERENCE"
"""Environment variable that overrides where the reference material lives."""

UNKNOWN_TEXT = "[unknown]"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: which validator found it, in which resource, and what is wrong."""

    validator: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.validator}: {self.resource}: {self.message}"


def reference_dir() -> Path:
    """Pinned upstream material (chart defaults, CRDs, Thanos flags): `$THANOS_MC_REFERENCE`, else
    `../shared/reference`, else the cache `python -m tools.reference fetch` fills (`tools.reference`)."""
    return reference.reference_dir()


class _ReferenceLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml when available: the CRDs are megabytes) that also reads the `=` scalars
    in CRD enums (YAML 1.1 `value` tag) as strings."""


_ReferenceLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@functools.cache
def load_yaml_documents(path: Path) -> tuple[Any, ...]:
    """Every non-empty document of a reference YAML file (cached: the files are large and immutable)."""
    return tuple(doc for doc in parsed_yaml.load_all(path.read_text(), _ReferenceLoader) if doc is not None)


# --- naming -------------------------------------------------------------------------------


def describe(resource: Resource) -> str:
    """How findings name a resource: `Kind namespace/name` for Kubernetes objects."""
    if resource.type == "kubernetes:helm.sh/v3:Release":
        return f"helm release {resource.inputs.get('name', resource.name)}"
    if resource.kind and "apiVersion" in resource.inputs:
        meta = resource.metadata
        name = meta.get("name", resource.name)
        namespace = meta.get("namespace")
        return f"{resource.kind} {namespace}/{name}" if isinstance(namespace, str) else f"{resource.kind} {name}"
    return f"{resource.type} {resource.name}"


def join_path(path: tuple[str | int, ...] | list[str | int]) -> str:
    """`spec.template.spec.containers[0].args` from path parts."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- values -------------------------------------------------------------------------------


def validation_view(value: Any) -> Any:
    """The value with its structure but no secret content: every string inside a secret becomes
    "[secret]" (numbers and booleans keep their type so schemas still apply); unknowns become
    "[unknown]". Validator messages quote values, so they only ever see this view."""
    return _view(value, inside_secret=False)


def _view(value: Any, inside_secret: bool) -> Any:
    if isinstance(value, Secret):
        return _view(value.value, inside_secret=True)
    if isinstance(value, Unknown):
        return UNKNOWN_TEXT
    if isinstance(value, dict):
        return {key: _view(item, inside_secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_view(item, inside_secret) for item in value]
    if isinstance(value, str) and inside_secret:
        return SECRET_TEXT
    return value


def reveal(value: Any) -> Any:
    """Secret wrappers removed (structure walking only; never put the result into a message)."""
    while isinstance(value, Secret):
        value = value.value
    return value


def walk(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any, bool]]:
    """Every leaf as (path, value, inside_secret)."""
    yield from _walk(value, path, False)


def _walk(value: Any, path: tuple[str | int, ...], secret: bool) -> Iterator[tuple[tuple[str | int, ...], Any, bool]]:
    if isinstance(value, Secret):
        yield from _walk(value.value, path, True)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key), secret)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index), secret)
    else:
        yield path, value, secret


def lookup(tree: Any, dotted: str | tuple[str, ...], default: Any = None) -> Any:
    """`tree["a"]["b"]` for "a.b" (or a tuple of keys, for keys that contain dots); a number
    indexes a list (`extraContainers.0.resources`)."""
    parts = dotted.split(".") if isinstance(dotted, str) else dotted
    node = reveal(tree)
    for part in parts:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = reveal(node[int(part)])
            continue
        if not isinstance(node, dict) or part not in node:
            return default
        node = reveal(node[part])
    return node


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's value merge: maps merge key by key, anything else replaces; null deletes a key."""
    base, override = reveal(base), reveal(override)
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        if reveal(value) is None:
            merged.pop(key, None)
        else:
            merged[key] = deep_merge(merged.get(key), value)
    return merged


# --- stack facts --------------------------------------------------------------------------


def stack_config(rendering: Rendering, key: str) -> Any:
    """A structured config value of the rendering (JSON-decoded), or None."""
    raw = rendering.config.get(f"{PROJECT}:{key}")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def kubernetes_minor(rendering: Rendering) -> str:
    """`1.35` from the stack's kubernetes.kubernetesVersion (an existing cluster) or
    minikube.kubernetesVersion (default: the pinned version)."""
    version = None
    for section in ("kubernetes", "minikube"):
        value = stack_config(rendering, section)
        version = version or (value.get("kubernetesVersion") if isinstance(value, dict) else None)
    match = re.match(r"v?(\d+\.\d+)", version or versions.KUBERNETES)
    return match.group(1) if match else versions.KUBERNETES.lstrip("v").rsplit(".", 1)[0]


# --- workloads ----------------------------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a typed workload (CronJob: its job template's pod)."""
    kind = obj.get("kind")
    if kind == "Pod":
        spec = obj.get("spec")
    elif kind == "CronJob":
        spec = lookup(obj, "spec.jobTemplate.spec.template.spec")
    else:
        spec = lookup(obj, "spec.template.spec")
    spec = reveal(spec)
    return spec if isinstance(spec, dict) else None


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(field, container, is_init) for every container and init container of a pod spec."""
    for field_name in ("initContainers", "containers"):
        for container in reveal(spec.get(field_name)) or []:
            container = reveal(container)
            if isinstance(container, dict):
                yield field_name, container, field_name == "initContainers"


# --- quantities ---------------------------------------------------------------------------

_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity as a number: CPU in cores ("250m" -> 0.25), memory in bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2) or ""]
