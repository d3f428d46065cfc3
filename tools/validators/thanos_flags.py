"""Every argument of every Thanos container is a flag its component knows, in the image's version.

Thanos refuses to start on an unknown flag, and a flag removed in a newer release (`--store` in
v0.38) breaks an upgrade: both show up here, offline, against the `--help` flag lists in
`reference/thanos-flags/thanos-<version>-<component>.flags`.

Checked: typed workloads whose image is the Thanos image (first argument = component), and the
sidecar's `additionalArgs` of a Prometheus custom resource or of kube-prometheus-stack values.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from components import versions
from tools.engine import Rendering
from tools.validators.common import (
    WORKLOAD_KINDS,
    Finding,
    containers,
    describe,
    lookup,
    pod_spec,
    reference_dir,
    validation_view,
)

NAME = "thanos-flags"
NEEDS_REFERENCE = True


def flags_file(version: str, component: str) -> Path:
    return reference_dir() / "thanos-flags" / f"thanos-{version}-{component}.flags"


@functools.cache
def known_flags(version: str, component: str) -> frozenset[str] | None:
    path = flags_file(version, component)
    if not path.exists():
        return None
    return frozenset(line.strip() for line in path.read_text().splitlines() if line.strip().startswith("--"))


def split_image(image: str) -> tuple[str, str | None]:
    """(repository, tag) of an image reference; the tag is None when it is pinned by digest only or absent."""
    name = image.split("@", 1)[0]
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repository, tag


def validate(rendering: Rendering) -> list[Finding]:
    findings = []
    for resource in rendering.kubernetes_objects():
        obj = validation_view(resource.inputs)
        where = describe(resource)
        if resource.kind in WORKLOAD_KINDS:
            spec = pod_spec(obj)
            for _, container, _ in containers(spec or {}):
                findings += [
                    Finding(NAME, f"{where} container {container.get('name')}", p)
                    for p in container_problems(container)
                ]
        elif resource.kind == "Prometheus" and str(obj.get("apiVersion", "")).startswith("monitoring.coreos.com/"):
            findings += [Finding(NAME, where, p) for p in sidecar_problems(lookup(obj, "spec.thanos"), "spec.thanos")]
    for release in rendering.helm_releases():
        if release.inputs.get("chart") == "kube-prometheus-stack":
            path = "prometheus.prometheusSpec.thanos"
            thanos = lookup(validation_view(release.inputs.get("values")), path)
            findings += [Finding(NAME, describe(release), p) for p in sidecar_problems(thanos, path)]
    return findings


def container_problems(container: dict[str, Any]) -> list[str]:
    """Problems of one container's command line, when it runs the Thanos image."""
    image = container.get("image")
    if not isinstance(image, str):
        return []
    repository, tag = split_image(image)
    if repository != versions.THANOS_IMAGE:
        return []
    if tag is None:
        return [f"image {image} has no version tag, so its flags cannot be checked"]
    command = [str(token) for token in container.get("command") or []]
    if command and command[0].rsplit("/", 1)[-1] == "thanos":
        command = command[1:]
    tokens = command + [str(token) for token in container.get("args") or []]
    if not tokens:
        return ["no component: the first argument must be the Thanos component (query, store, ...)"]
    component, rest = tokens[0], tokens[1:]
    flags = known_flags(tag, component)
    if flags is None:
        return [
            f"no flag list for thanos {tag} {component} ({flags_file(tag, component).name}): "
            "unknown version or component"
        ]
    return [f"{component} {tag}: {problem}" for problem in argument_problems(rest, flags)]


def argument_problems(tokens: list[str], flags: frozenset[str]) -> list[str]:
    problems = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name not in flags:
                problems.append(f"unknown flag {name}")
            if "=" not in token and index < len(tokens) and not tokens[index].startswith("-"):
                index += 1  # `--flag value`
        else:
            problems.append(f"unexpected argument {token!r} (Thanos components take --flags only)")
    return problems


def sidecar_problems(thanos: Any, path: str) -> list[str]:
    """The sidecar's `additionalArgs` ({name, value}) against the sidecar flags of its pinned version."""
    if not isinstance(thanos, dict):
        return []
    args = thanos.get("additionalArgs") or []
    if not args:
        return []
    image = thanos.get("image")
    tag = split_image(image)[1] if isinstance(image, str) else None
    tag = tag or thanos.get("version")
    if not isinstance(tag, str):
        return [f"{path}: additionalArgs are set but the sidecar's Thanos version is not pinned (image or version)"]
    flags = known_flags(tag, "sidecar")
    if flags is None:
        return [f"{path}: no flag list for thanos {tag} sidecar ({flags_file(tag, 'sidecar').name})"]
    names = [f"--{str(arg.get('name', '')).lstrip('-')}" for arg in args if isinstance(arg, dict)]
    return [f"{path}.additionalArgs: unknown sidecar flag {name} (thanos {tag})" for name in names if name not in flags]
