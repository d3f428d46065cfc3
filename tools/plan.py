"""What `pulumi up` would do to go from one rendering of a stack to another, and what it refuses.

Mocks compute no diff, so a program change that makes the engine replace a protected resource
(the Minikube node, a bucket, a Helm release holding volumes) passes every offline test and fails
the first real `pulumi up`, or worse, replaces something unprotected that holds data. This module
models the engine's plan from two renderings (say, the committed stack and the same stack with one
setting changed):

- resources are matched by URN, or by an alias the new registration names;
- a matched resource whose inputs differ is updated in place, unless an input that forces
  replacement changed; inputs under `ignoreChanges` keep their recorded value. Which inputs force
  replacement is the provider's business; `REPLACING_INPUTS` below is what this model knows of
  the providers we use;
- `replaceOnChanges` is the engine's: it replaces when one of its paths contains a path of the
  provider's detailed diff (is that path or a parent of it). Who makes that diff decides what a
  secret is in it (seen with the real engine v3.274, tests/integration/test_engine.py): pulumi-command
  (pulumi-go-provider) reports a secret input, one the program marked secret or one it declares
  secret (`SECRET_INPUTS`), as a single entry at its own path, so `replaceOnChanges:
  ["connection.host"]` never matches a new host inside its secret `connection`; the engine itself,
  diffing for a provider that leaves it the diff (a dynamic provider), and pulumi-kubernetes, which
  reports a Secret's `stringData` as the `data` keys it becomes, diff inside secrets;
- a resource whose provider is replaced is replaced with it;
- a Secret's or ConfigMap's data replaces it unless its provider enables their mutation, and a
  Kubernetes object replaced under the same name is deleted before it is created again (`delete_first`);
- a certificate is replaced once `now` is within its `earlyRenewalHours` of its recorded end of
  validity (pulumi-tls marks it `readyForRenewal` when it reads it on the next `up`);
- replacing or deleting a protected resource is refused, as the engine refuses it at preview;
  deleting a resource with `retainOnDelete` only drops it from the state.

Not modelled: values only known after `up` (both sides hold the same placeholder), provider-side
normalisation of inputs, and drift of the live objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pulumi.output import Unknown

from tools.engine import OFFLINE_CLOCK, TLS_CERTIFICATES, Rendering, Resource, Secret, unwrap

Operation = Literal["same", "create", "update", "replace", "delete", "retain"]

ANY_INPUT = "*"
UNKNOWN = "[unknown]"


def _kubernetes_identity(resource: Resource) -> tuple[str, ...]:
    return ("metadata.name", "metadata.namespace", "apiVersion", "kind")


def _kubernetes_provider(resource: Resource) -> tuple[str, ...]:
    # With `clusterIdentifier` set only a new identifier replaces the provider (and so everything
    # it manages); without it, any kubeconfig change does.
    return ("clusterIdentifier",) if "clusterIdentifier" in resource.inputs else ("kubeconfig",)


# Kubernetes fields the API server refuses to change: the provider replaces the object instead.
_IMMUTABLE_KUBERNETES_FIELDS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "DaemonSet": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy"),
    "Job": ("spec.template", "spec.selector"),
    "Secret": ("type",),
    "PersistentVolumeClaim": ("spec.accessModes", "spec.storageClassName", "spec.volumeName", "spec.selector"),
    "Service": ("spec.clusterIP",),
}

ReplacingInputs = Callable[[Resource], tuple[str, ...]]

REPLACING_INPUTS: dict[str, ReplacingInputs] = {
    # pulumi-command: `triggers` replaces (provider-side for the whole list; its SDK adds the
    # engine-side `replaceOnChanges: ["triggers[*]"]` for its elements); any other change, of
    # `create` or of the `connection`, is an update that runs `create` again (no `update` is set).
    "command:remote:Command": lambda r: ("triggers",),
    "command:local:Command": lambda r: ("triggers",),
    # pulumi-random: every input forces a new value.
    "random:index/randomPassword:RandomPassword": lambda r: (ANY_INPUT,),
    "random:index/randomString:RandomString": lambda r: (ANY_INPUT,),
    # pulumi-tls: a key, a request or a certificate is never changed in place, only issued anew.
    "tls:index/privateKey:PrivateKey": lambda r: (ANY_INPUT,),
    "tls:index/certRequest:CertRequest": lambda r: (ANY_INPUT,),
    "tls:index/selfSignedCert:SelfSignedCert": lambda r: (ANY_INPUT,),
    "tls:index/locallySignedCert:LocallySignedCert": lambda r: (ANY_INPUT,),
    # A Helm release is addressed by name and namespace.
    "kubernetes:helm.sh/v3:Release": lambda r: ("name", "namespace"),
    "pulumi:providers:kubernetes": _kubernetes_provider,
    # pulumi-minio: the name of a bucket, user or policy is its identity.
    "minio:index/s3Bucket:S3Bucket": lambda r: ("bucket",),
    "minio:index/iamUser:IamUser": lambda r: ("name",),
    "minio:index/iamPolicy:IamPolicy": lambda r: ("name",),
    "minio:index/iamUserPolicyAttachment:IamUserPolicyAttachment": lambda r: ("userName", "policyName"),
    "minio:index/s3BucketVersioning:S3BucketVersioning": lambda r: ("bucket",),
    "minio:index/ilmPolicy:IlmPolicy": lambda r: ("bucket",),
    "pulumi:pulumi:StackReference": lambda r: ("name",),
}


# The data of a Secret or ConfigMap: pulumi-kubernetes replaces the object when it changes, unless its
# provider has `enableSecretMutable` / `enableConfigMapMutable` (and the object is not `immutable`).
_DATA_FIELDS: dict[str, tuple[str, str]] = {
    "Secret": ("enableSecretMutable", "data stringData"),
    "ConfigMap": ("enableConfigMapMutable", "data binaryData"),
}


def _replaced_data_fields(resource: Resource, provider: Resource | None) -> tuple[str, ...]:
    if resource.kind not in _DATA_FIELDS:
        return ()
    switch, fields = _DATA_FIELDS[resource.kind]
    mutable = provider is not None and unwrap(provider.inputs.get(switch)) in (True, "true")
    return () if mutable and resource.inputs.get("immutable") is not True else tuple(fields.split())


# Inputs a provider declares secret as a whole, whatever the program passes in them: the
# detailed diff reports any change inside one at the input's own path.
SECRET_INPUTS: dict[str, tuple[str, ...]] = {
    "command:remote:Command": ("connection",),  # pulumi-command: `provider:"secret"`
}


def replacing_inputs(resource: Resource, provider: Resource | None = None) -> tuple[str, ...]:
    """The input paths whose change replaces `resource` (`*`: any input); `provider` is its explicit
    provider. The resource's `replaceOnChanges` come first: they match by containment (see `detailed_diff`)."""
    paths = tuple(resource.replace_on_changes)
    rule = REPLACING_INPUTS.get(resource.type)
    if rule is not None:
        return paths + rule(resource)
    if resource.type.startswith("kubernetes:") and resource.kind:
        immutable = _IMMUTABLE_KUBERNETES_FIELDS.get(resource.kind, ())
        return paths + _kubernetes_identity(resource) + immutable + _replaced_data_fields(resource, provider)
    if resource.type.startswith("pulumi-python:dynamic"):
        return (*paths, "object_name")  # our OpenSearch provider's diff replaces on a new name only
    return paths


PROTECT_HINT = (
    "To unprotect the resource, remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`"
)


@dataclass(frozen=True)
class Step:
    """What the engine does with one resource, and why."""

    op: Operation
    urn: str
    type: str
    name: str
    changed: tuple[str, ...] = ()
    """Top-level inputs that differ (update and replace)."""
    replaced_by: tuple[str, ...] = ()
    """The replacing inputs that changed, or `provider` when the provider is replaced."""
    protected: bool = False
    delete_first: bool = False
    """A replacement that deletes the old resource before creating the new one: the resource's
    `deleteBeforeReplace`, or a Kubernetes object whose name stays the same (the provider must)."""


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def step(self, type_: str, name: str) -> Step:
        matches = [s for s in self.steps if s.type == type_ and s.name == name]
        if len(matches) != 1:
            raise LookupError(f"expected one step for {type_} {name}, found {len(matches)}")
        return matches[0]

    def of(self, *ops: Operation) -> list[Step]:
        return [s for s in self.steps if s.op in ops]

    def refusals(self) -> list[str]:
        """The errors the engine stops the update with, at preview, before anything changes."""
        messages = []
        for step in self.steps:
            if not step.protected:
                continue
            # The engine's words (v3.274); `replaced_by` says why the replacement was planned.
            if step.op == "replace":
                messages.append(
                    f'unable to replace resource "{step.urn}"\nas it is currently marked for protection. '
                    + PROTECT_HINT
                )
            elif step.op == "delete":
                quoted = "'" + step.urn.replace("'", "'\\''") + "'"
                messages.append(
                    f'resource "{step.urn}" cannot be deleted\nbecause it is protected. To unprotect the resource, '
                    "either remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, "
                    f"or use the command:\n`pulumi state unprotect {quoted}`"
                )
        return messages


def plan(old: Rendering, new: Rendering, now: datetime | None = None) -> Plan:
    """The engine's plan for turning the state `old` into the program `new`, at time `now`
    (default: when the offline engine issued `old`'s certificates, so nothing is due)."""
    clock = now or OFFLINE_CLOCK
    olds = {r.urn: r for r in old.resources}
    matched: dict[str, Resource] = {}
    for resource in new.resources:
        previous = olds.get(resource.urn) or _by_alias(resource, olds)
        if previous is not None:
            matched[resource.urn] = previous
    replaced_providers: set[str] = set()
    providers = {r.urn: r for r in new.resources if r.type.startswith("pulumi:providers:")}
    steps: list[Step] = []
    for resource in _providers_first(new.resources):
        previous = matched.get(resource.urn)
        if previous is None:
            steps.append(Step("create", resource.urn, resource.type, resource.name))
            continue
        provider = providers.get((resource.provider or "").rsplit("::", 1)[0])
        step = _compare(previous, resource, provider, replaced_providers, clock)
        if step.op == "replace" and resource.type.startswith("pulumi:providers:"):
            replaced_providers.add(previous.urn)
        steps.append(step)
    kept = {previous.urn for previous in matched.values()}
    for resource in old.resources:
        if resource.urn not in kept:
            op: Operation = "retain" if resource.retain_on_delete else "delete"
            steps.append(Step(op, resource.urn, resource.type, resource.name, protected=resource.protect))
    return Plan(steps)


def _by_alias(resource: Resource, olds: dict[str, Resource]) -> Resource | None:
    for alias in resource.aliases:
        if alias in olds:
            return olds[alias]
        for previous in olds.values():  # a type alias: same name and parent, former type
            if previous.type == alias and previous.name == resource.name and previous.parent_urn == resource.parent_urn:
                return previous
    return None


def _providers_first(resources: list[Resource]) -> list[Resource]:
    return sorted(resources, key=lambda r: not r.type.startswith("pulumi:providers:"))


def _due_for_renewal(old: Resource, now: datetime) -> bool:
    if old.type not in TLS_CERTIFICATES:
        return False
    end = old.state.get("validityEndTime")
    if old.state.get("readyForRenewal") is True:
        return True
    if not isinstance(end, str):
        return False
    early = timedelta(hours=int(old.inputs.get("earlyRenewalHours") or 0))
    return now >= datetime.fromisoformat(end.replace("Z", "+00:00")) - early


def _compare(
    old: Resource, new: Resource, provider: Resource | None, replaced_providers: set[str], now: datetime
) -> Step:
    before, after = _comparable(old.inputs), _comparable(new.inputs)
    for path in new.ignore_changes:  # the engine sends the recorded value instead
        _set(after, path, _lookup(before, path))
    changed = tuple(sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key)))
    provider_replaced = any((old.provider or "").startswith(ref) for ref in replaced_providers)
    diff = detailed_diff(old, new)
    engine_side = set(new.replace_on_changes)
    reasons = tuple(
        path
        for path in replacing_inputs(new, provider)
        if (_contains_any(path, diff) if path in engine_side else _differs(before, after, path))
    )
    if provider_replaced:
        reasons += ("provider",)
    if _due_for_renewal(old, now):
        reasons += ("renewal window",)
    if reasons:
        op: Operation = "replace"
    elif changed or not _same_provider(old, new):
        op = "update"
    else:
        op = "same"
    delete_first = op == "replace" and (new.delete_before_replace or _keeps_its_kubernetes_name(old, new))
    # The engine refuses a replacement only while both the state and the program protect the resource:
    # unprotecting and replacing in one `up` is allowed.
    protected = old.protect and (new.protect or op != "replace")
    return Step(op, new.urn, new.type, new.name, changed, reasons, protected=protected, delete_first=delete_first)


def _keeps_its_kubernetes_name(old: Resource, new: Resource) -> bool:
    """pulumi-kubernetes replaces a named object delete-first: the new one cannot be created beside it."""
    if not (new.type.startswith("kubernetes:") and new.kind):
        return False
    name, namespace = new.metadata.get("name"), new.metadata.get("namespace")
    return bool(name) and (name, namespace) == (old.metadata.get("name"), old.metadata.get("namespace"))


PropertyPath = tuple[str | int, ...]
_PATH_PART = re.compile(r'\[(\d+|\*|"(?:[^"\\]|\\.)*")\]|\.?([^.\[\]]+)')


WHOLE_SECRET_DIFFS = ("command:",)
"""Packages whose provider diffs a secret as one value (pulumi-go-provider's `infer`)."""


def detailed_diff(old: Resource, new: Resource) -> list[PropertyPath]:
    """The detailed diff of the inputs as the engine matches `replaceOnChanges` against it: one path
    per changed value; for a provider of `WHOLE_SECRET_DIFFS` a secret input (see `SECRET_INPUTS`)
    or a value the program marked secret counts as one value at its own path; nothing under
    `ignoreChanges`."""
    if new.type.startswith(WHOLE_SECRET_DIFFS):
        secret = SECRET_INPUTS.get(new.type, ())
        before, after = _secret_inputs(old.inputs, secret), _secret_inputs(new.inputs, secret)
    else:
        before, after = _as_checked(old), _as_checked(new)
    ignored = [_parse_path(path) for path in new.ignore_changes]
    return [path for path in _diff(before, after, ()) if not any(_contains(i, path) for i in ignored)]


def _as_checked(resource: Resource) -> dict[str, Any]:
    """The inputs with secrets unwrapped; a Kubernetes Secret's `stringData` as the `data` keys
    pulumi-kubernetes's Check turns it into."""
    inputs = dict(unwrap(resource.inputs))
    if resource.type.startswith("kubernetes:") and resource.kind == "Secret" and "stringData" in inputs:
        inputs["data"] = {**(inputs.get("data") or {}), **(inputs.pop("stringData") or {})}
    return inputs


def _secret_inputs(inputs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        key: Secret(value) if key in keys and value is not None and not isinstance(value, Secret) else value
        for key, value in inputs.items()
    }


def _diff(before: Any, after: Any, at: PropertyPath) -> Iterator[PropertyPath]:
    if isinstance(before, Secret) or isinstance(after, Secret):
        if _known(unwrap(before)) != _known(unwrap(after)):
            yield at
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from _diff(before.get(key), after.get(key), (*at, key))
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            old = before[index] if index < len(before) else None
            new = after[index] if index < len(after) else None
            yield from _diff(old, new, (*at, index))
    elif _known(before) != _known(after):
        yield at


def _parse_path(path: str) -> PropertyPath:
    """`a.b[0]["c.d"][*]` as ("a", "b", 0, "c.d", "*"), the engine's property path."""
    parts: list[str | int] = []
    for index, name in _PATH_PART.findall(path):
        if name:
            parts.append(name)
        elif index == "*" or index.startswith('"'):
            parts.append(json.loads(index) if index.startswith('"') else index)
        else:
            parts.append(int(index))
    return tuple(parts)


def _contains(outer: PropertyPath, inner: PropertyPath) -> bool:
    """The engine's `PropertyPath.Contains`: `outer` is `inner` or a parent of it; `*` matches any
    key or index."""
    if len(inner) < len(outer):
        return False
    return all(part == "*" or part == other for part, other in zip(outer, inner[: len(outer)], strict=True))


def _contains_any(path: str, diff: list[PropertyPath]) -> bool:
    outer = _parse_path(path)
    return any(_contains(outer, changed) for changed in diff)


def _comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    """Secrets revealed and values only known after `up` as one placeholder, so that two
    renderings of the same program compare equal."""
    return _known(unwrap(inputs))


def _known(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {key: _known(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_known(item) for item in value]
    return value


def _same_provider(old: Resource, new: Resource) -> bool:
    """Provider references carry the provider's id after `::`; only the URN part names it."""
    return (old.provider or "").split("::")[:-1] == (new.provider or "").split("::")[:-1]


def _differs(before: dict[str, Any], after: dict[str, Any], path: str) -> bool:
    if path == ANY_INPUT:
        return before != after
    return _lookup(before, path) != _lookup(after, path)


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            return
        node = child
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


def _lookup(tree: Any, path: str) -> Any:
    """The value at `a.b.c`; `list[*]` stands for the whole list (how SDKs write replaceOnChanges)."""
    node = tree
    for part in path.replace("[*]", "").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def describe(steps: list[Step]) -> Iterator[str]:
    """One line per step, for messages."""
    for step in steps:
        why = f" ({', '.join(step.replaced_by)})" if step.replaced_by else ""
        yield f"{step.op} {step.type} {step.name}{why}"
