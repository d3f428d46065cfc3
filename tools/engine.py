"""The offline engine: run `__main__.py` for a stack under Pulumi's mocks.

No Pulumi CLI, cluster, network or credentials are needed. Config comes from the project's
`Pulumi.yaml` (project-level `config:` values) and the real `Pulumi.<stack>.yaml` on top, as the
CLI merges them; every secret config key the program knows (`settings.SECRET_KEYS`) gets a
redacted placeholder. A recording monitor keeps every registration: type, name, parent,
provider, dependencies, options and inputs. Tests and `tools.render` both use `run_stack`.

Mocks accept anything; the real engine does not. What it refuses is modelled here, so the first
`pulumi preview` cannot be the first to find it:
- `pulumi:disable-default-providers`: a resource of a listed package (or any package but
  `pulumi` itself, for `*`) without an explicit provider stops the run with the engine's message;
- dependency order: a resource waits for its `dependsOn` and for the resources its inputs come
  from; waiting for a component means waiting for its children. A parent's `dependsOn` does NOT
  hold its children back (the SDK registers a child as soon as the parent's URN is known), so
  `Rendering.depends_on` does not count it either;
- protect and replacement: see `tools/plan.py`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import pickle
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.settings import PROJECT, SECRET_KEYS, cluster_kind

ROOT = Path(__file__).resolve().parent.parent
SECRET_MARKER = "4dabf18193072939515e22adb298388d"
SECRET_PLACEHOLDER_PREFIX = "REDACTED-SECRET-"
MOCK_STDOUT = "offline-engine: command output is only known after `pulumi up`"
MOCK_PASSWORD = "offline-engine-generated-password"
MOCK_PRIVATE_KEY = "offline-engine-private-key"
OFFLINE_CLOCK = datetime(2026, 1, 1, tzinfo=UTC)
"""When offline certificates are issued (fixed, so that two renderings are identical)."""
TLS_CERTIFICATES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
SECRET_TEXT = "[secret]"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret; rendered as "[secret]"."""

    value: Any


@dataclass
class Resource:
    """One registration the program made, with its options and normalised inputs."""

    type: str
    name: str
    urn: str
    custom: bool
    parent_urn: str | None
    provider: str | None
    depends_on: list[str]
    inputs: dict[str, Any]
    protect: bool = False
    delete_before_replace: bool = False
    retain_on_delete: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    additional_secret_outputs: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Input name -> URNs of the resources that input's value came from."""
    aliases: list[str] = field(default_factory=list)
    """Former types (`type`) or URNs (`urn`) this resource answers to, as the SDK sent them."""
    state: dict[str, Any] = field(default_factory=dict)
    """The outputs the (mock) provider returned: what the state file would record."""

    @property
    def package(self) -> str:
        """The package a custom resource's provider comes from: the type token's first part."""
        if self.type.startswith("pulumi:providers:"):
            return self.type.removeprefix("pulumi:providers:")
        return self.type.split(":", 1)[0]

    @property
    def kind(self) -> str | None:
        """The Kubernetes kind, for typed Kubernetes resources."""
        kind = self.inputs.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self.inputs.get("metadata")
        return metadata if isinstance(metadata, dict) else {}


@dataclass
class Rendering:
    """Everything a stack's program registered and exported."""

    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    config: dict[str, str] = field(default_factory=dict)
    """The full config keys the program ran with (secrets as placeholders), e.g. for node capacity."""

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        matches = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(matches) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {[r.name for r in matches]}")
        return matches[0]

    def kubernetes_objects(self) -> list[Resource]:
        """Typed Kubernetes objects (everything with apiVersion and kind, Helm releases excluded)."""
        return [r for r in self.resources if r.type.startswith("kubernetes:") and r.kind and "apiVersion" in r.inputs]

    def helm_releases(self) -> list[Resource]:
        return self.of_type("kubernetes:helm.sh/v3:Release")

    def release(self, name: str) -> Resource:
        return next(r for r in self.helm_releases() if r.inputs.get("name") == name)

    def k8s(self, kind: str, name: str, namespace: str | None = None) -> Resource:
        """A typed Kubernetes object by kind and metadata.name (and namespace)."""
        for r in self.kubernetes_objects():
            meta = r.metadata
            if r.kind == kind and meta.get("name") == name and namespace in (None, meta.get("namespace")):
                return r
        raise LookupError(f"no {kind} {namespace or '*'}/{name} in stack {self.stack}")

    def parent_of(self, resource: Resource) -> Resource | None:
        return self.by_urn(resource.parent_urn) if resource.parent_urn else None

    def ancestors(self, resource: Resource) -> Iterator[Resource]:
        parent = self.parent_of(resource)
        while parent is not None:
            yield parent
            parent = self.parent_of(parent)

    def depends_on(self, resource: Resource, other: Resource) -> bool:
        """True when `resource` waits, directly or through other resources, for `other` (or part of it)."""
        return any(self._under(urn, other) for urn in self.waits_for(resource))

    def waits_for(self, resource: Resource) -> set[str]:
        """URNs of every resource that must exist before `resource` is created.

        What the SDK holds a registration back for: the resource's own `dependsOn` (a component
        there stands for its children) and the resources its input values came from, and
        transitively theirs. Not its parent's `dependsOn`: a component's children are registered
        as soon as the component's URN is known, whatever the component was told to wait for.
        """
        children: dict[str, list[str]] = {}
        for r in self.resources:
            if r.parent_urn:
                children.setdefault(r.parent_urn, []).append(r.urn)
        by_urn = {r.urn: r for r in self.resources}
        waited: set[str] = set()
        pending = list(_direct_dependencies(resource))
        while pending:
            urn = pending.pop()
            if urn in waited or urn not in by_urn:
                continue
            waited.add(urn)
            pending += _direct_dependencies(by_urn[urn])
            pending += children.get(urn, [])
        return waited

    def _under(self, urn: str, other: Resource) -> bool:
        """True when the resource `urn` is `other` or a descendant of it."""
        current: Resource | None = next((r for r in self.resources if r.urn == urn), None)
        while current is not None:
            if current.urn == other.urn:
                return True
            current = self.parent_of(current)
        return False


def _direct_dependencies(resource: Resource) -> list[str]:
    return [*resource.depends_on, *(urn for urns in resource.property_dependencies.values() for urn in urns)]


# --- normalisation -----------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Integral floats to ints, secret marker dicts to `Secret`, recursively."""
    if isinstance(value, dict):
        if value.get(SECRET_MARKER) is not None and "value" in value:
            return Secret(normalise(value["value"]))
        return {key: normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def redact(value: Any) -> Any:
    """JSON-ready form: every value inside a secret becomes "[secret]"; a secret map or list keeps
    its shape, so a Kubernetes Secret still shows (and validates with) its keys."""
    if isinstance(value, Secret):
        return _mask(value.value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _mask(value: Any) -> Any:
    if isinstance(value, Secret):
        return _mask(value.value)
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return SECRET_TEXT


def unwrap(value: Any) -> Any:
    """The plain value with secrets revealed (for tests that check what a secret holds)."""
    if isinstance(value, Secret):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


# --- config ------------------------------------------------------------------------------


def stack_file(stack: str, stacks_dir: Path = ROOT) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def stack_names(stacks_dir: Path = ROOT) -> list[str]:
    """Every stack with a file in `stacks_dir`: adding a cluster is adding a file."""
    return sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in stacks_dir.glob("Pulumi.*.yaml"))


def project_config(root: Path = ROOT) -> dict[str, str]:
    """Project-level config of `Pulumi.yaml`, as the CLI applies it to every stack.

    A key is `namespace:name` (a bare name belongs to the project); its entry is either the
    value itself or a map with `value` (set for every stack) or `default` (used when the stack
    does not set it). Stack files override both.
    """
    document = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    config: dict[str, str] = {}
    for key, entry in (document.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(entry, dict) and ("value" in entry or "default" in entry):
            value = entry["value"] if "value" in entry else entry["default"]
        elif isinstance(entry, dict):
            continue  # a type declaration without a value
        else:
            value = entry
        config[full_key] = _config_string(value)
    return config


def load_stack_config(stack: str, stacks_dir: Path = ROOT) -> dict[str, str]:
    """The stack file's config as the engine passes it: strings, structured values as JSON."""
    path = stack_file(stack, stacks_dir)
    if not path.exists():
        known = stack_names(stacks_dir)
        raise FileNotFoundError(f"no stack file {path.name}; known stacks: {', '.join(known)}")
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    return {key: _config_string(value) for key, value in config.items()}


def config_path_overrides(stack: str, settings: Mapping[str, str], stacks_dir: Path = ROOT) -> dict[str, str]:
    """What `pulumi config set --path KEY VALUE` would change, as full-key overrides for `run_stack`.

    `settings` maps project keys to text values (`s3.caCertificate` -> a PEM): a dotted key sets a
    field inside the structured value of its first part, which keeps its other fields."""
    config = load_stack_config(stack, stacks_dir)
    overrides: dict[str, str] = {}
    for path, value in settings.items():
        top, _, rest = path.partition(".")
        full_key = f"{PROJECT}:{top}"
        if not rest:
            overrides[full_key] = value
            continue
        current = overrides.get(full_key, config.get(full_key))
        structured = json.loads(current) if current else {}
        node = structured
        *parents, last = rest.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        overrides[full_key] = json.dumps(structured)
    return overrides


def _config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def secret_placeholder(key: str) -> str:
    return f"{SECRET_PLACEHOLDER_PREFIX}{key}"


def _with_secret_placeholders(config: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    config = dict(config)
    role = config.get(f"{PROJECT}:role")
    kind = cluster_kind({"kubernetes": config.get(f"{PROJECT}:kubernetes")})
    secret_keys = []
    for secret in SECRET_KEYS:
        full_key = f"{PROJECT}:{secret.key}"
        if full_key in config:
            secret_keys.append(full_key)
        elif secret.required and role in secret.roles and kind in secret.clusters:  # others: refused or optional
            config[full_key] = secret_placeholder(secret.key)
            secret_keys.append(full_key)
    return config, secret_keys


# --- mocks -------------------------------------------------------------------------------

StackOutputs = dict[str, Any]


def _issued(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A certificate's outputs as pulumi-tls reports them, issued at the offline clock."""
    hours = int(inputs.get("validityPeriodHours") or 0)
    end = OFFLINE_CLOCK + timedelta(hours=hours)
    # The text names the certificate and what it was issued from: the same inputs give the same
    # text (renderings stay comparable), a new CA or request gives a new certificate, as it would.
    issued_from = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return {
        "certPem": f"offline-engine-certificate-{name}-{issued_from}",
        "validityStartTime": OFFLINE_CLOCK.isoformat().replace("+00:00", "Z"),
        "validityEndTime": end.isoformat().replace("+00:00", "Z"),
        "readyForRenewal": False,
    }


class _Mocks(pulumi.runtime.Mocks):
    """Answers every resource and invoke the program makes with plausible offline values."""

    def __init__(self, stack_outputs: Callable[[str], StackOutputs]) -> None:
        self._stack_outputs = stack_outputs

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        if args.typ in ("command:remote:Command", "command:local:Command"):
            state.update(stdout=MOCK_STDOUT, stderr="")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state.update(result=MOCK_PASSWORD, bcryptHash="offline")
        elif args.typ == "pulumi:pulumi:StackReference":
            name = state.get("name", args.name)
            state.update(outputs=self._stack_outputs(name), secretOutputNames=[])
        elif args.typ == "kubernetes:helm.sh/v3:Release":
            state["status"] = {"name": state.get("name", args.name), "namespace": state.get("namespace", "default")}
        elif args.typ == "tls:index/privateKey:PrivateKey":
            state.update(
                privateKeyPem=f"{MOCK_PRIVATE_KEY}-{args.name}",
                privateKeyPemPkcs8=f"{MOCK_PRIVATE_KEY}-pkcs8-{args.name}",
                publicKeyPem=f"offline-public-key-{args.name}",
            )
        elif args.typ == "tls:index/certRequest:CertRequest":
            state.update(certRequestPem=f"offline-engine-certificate-request-{args.name}")
        elif args.typ in TLS_CERTIFICATES:
            state.update(_issued(args.name, state))
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the offline engine has no answer for invoke {args.token}")


def _parent(urn: str) -> str | None:
    """The parent URN, or None when the parent is the stack itself."""
    if not urn or urn.split("::")[2] == STACK_TYPE:
        return None
    return urn


def _aliases(request: Any) -> list[str]:
    aliases = list(request.aliasURNs)
    for alias in request.aliases:
        if alias.urn:
            aliases.append(alias.urn)
        elif alias.spec.type:
            aliases.append(alias.spec.type)
    return aliases


class _RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that also keeps each request's options (parent, provider, dependencies...)."""

    def __init__(self, mocks_: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks_)
        self.recorded: list[Resource] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: a child's type is its parent's whole qualified type and its own,
        and a resource directly under the stack carries no `pulumi:pulumi:Stack$` (the SDK's mock
        monitor keeps only the parent's last type, and the stack's; the real engine was seen to)."""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != STACK_TYPE:
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            self.recorded.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    custom=bool(request.custom),
                    parent_urn=_parent(request.parent),
                    provider=request.provider or None,
                    depends_on=list(request.dependencies),
                    inputs=normalise(rpc.deserialize_properties(request.object, keep_unknowns=True)),
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=list(request.ignoreChanges),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    replace_on_changes=list(request.replaceOnChanges),
                    property_dependencies={
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items() if deps.urns
                    },
                    aliases=_aliases(request),
                    state=normalise(dict(self.resources[response.urn].state)) if response.urn in self.resources else {},
                )
            )
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self.recorded.append(
            Resource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                custom=True,
                parent_urn=_parent(request.parent),
                provider=request.provider or None,
                depends_on=list(request.dependencies),
                inputs=normalise(rpc.deserialize_properties(request.properties, keep_unknowns=True)),
            )
        )
        return response


# --- running -----------------------------------------------------------------------------


def offline_outputs(stack: str, stacks_dir: Path = ROOT, settings: Mapping[str, str] | None = None) -> StackOutputs:
    """What a StackReference to `stack` sees offline: that stack's own offline outputs (rendered with
    the same run `settings`)."""
    short = stack.rsplit("/", 1)[-1]
    if not stack_file(short, stacks_dir).exists():
        return {}
    nested = _in_fresh_context(lambda name: run_stack(name, stacks_dir=stacks_dir, settings=settings), short)
    return {key: unwrap(value) for key, value in nested.outputs.items()}


def _in_fresh_context(function: Callable[[str], Rendering], stack: str) -> Rendering:
    """Run a nested program on its own thread and event loop: a new thread starts with an empty
    `contextvars` context, so the nested run cannot reset the settings of the program asking for it."""
    result: list[Rendering] = []
    errors: list[BaseException] = []

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            result.append(function(stack))
        except BaseException as error:
            errors.append(error)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=target, name=f"offline-{stack}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def run_stack(
    stack: str,
    config_overrides: Mapping[str, str | None] | None = None,
    stack_outputs: Callable[[str], StackOutputs] | None = None,
    stacks_dir: Path = ROOT,
    settings: Mapping[str, str] | None = None,
) -> Rendering:
    """Run the program for `stack` offline and return what it registered and exported.

    `config_overrides` replaces (or, with None, removes) full config keys such as
    `thanos-multi-cluster:role`; `settings` sets project keys for this run, dotted ones inside
    their structured value (`s3.caCertificate`, as `pulumi config set --path`), here and in the
    stacks a StackReference renders; `stack_outputs` answers StackReferences (default: the
    referenced stack rendered offline); `stacks_dir` holds the stack files (default: the
    project's own, next to `Pulumi.yaml`; the tests keep small fixture stacks elsewhere).
    """
    if stack_outputs is None:
        stack_outputs = functools.partial(offline_outputs, stacks_dir=stacks_dir, settings=settings)
    config, secret_keys = _with_secret_placeholders(project_config() | load_stack_config(stack, stacks_dir))
    overrides = {**config_path_overrides(stack, settings or {}, stacks_dir), **(config_overrides or {})}
    for key, value in overrides.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return _run_program(stack, config, secret_keys, stack_outputs)


_UNWRAPPED_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]


def _undo_provider_serialisation_wrappers() -> None:
    """Give `pickle` back the method the Pulumi SDK wraps each time it serialises a dynamic provider.

    `pulumi.dynamic.serialize_provider` (SDK 3.272) replaces `pickle._Pickler._batch_setitems` with a
    sorting wrapper around the current one and never restores it: every dynamic resource adds a
    level. A `pulumi up` serialises a handful; a test session running the program hundreds of times
    in one process nests them until Python's recursion limit. One run starts from the original."""
    pickle._Pickler._batch_setitems = _UNWRAPPED_BATCH_SETITEMS  # type: ignore[attr-defined]


def _run_program(
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    stack_outputs: Callable[[str], StackOutputs],
) -> Rendering:
    saved_config = dict(pulumi.runtime.config.CONFIG.get())
    _undo_provider_serialisation_wrappers()
    reset_options()
    set_all_config(config, secret_keys)
    monitor = _RecordingMonitor(_Mocks(stack_outputs))
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        _sync_await(run_pulumi_func(_run_main))
        outputs = _sync_await(_resolve_outputs())
    finally:
        reset_options()
        set_all_config(saved_config, [])
    rendering = Rendering(stack=stack, resources=monitor.recorded, outputs=outputs, config=dict(config))
    refuse_default_providers(rendering)
    return rendering


# --- what the real engine refuses ---------------------------------------------------------


class EngineRefusal(Exception):
    """The real engine would stop `pulumi preview` here; the message is the engine's own."""


DISABLE_DEFAULT_PROVIDERS = "pulumi:disable-default-providers"


def disabled_default_providers(config: dict[str, str]) -> frozenset[str]:
    """The packages `pulumi:disable-default-providers` names (`*`: every package)."""
    raw = config.get(DISABLE_DEFAULT_PROVIDERS)
    if not raw:
        return frozenset()
    listed = json.loads(raw)
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise EngineRefusal(f"{DISABLE_DEFAULT_PROVIDERS} must be a list of package names, got {raw}")
    return frozenset(listed)


def default_provider_denials(rendering: Rendering) -> list[str]:
    """The engine's refusal for every custom resource that would need a disabled default provider.

    The engine resolves a resource without an explicit provider to its package's default provider
    and refuses it when the package is listed (or `*` is, for every package but `pulumi`).
    """
    disabled = disabled_default_providers(rendering.config)
    return [
        f"Default provider for '{resource.package}' disabled. '{resource.urn}' must use an explicit provider."
        for resource in rendering.resources
        if resource.custom
        and resource.provider is None
        and not resource.type.startswith("pulumi:providers:")
        and resource.package != "pulumi"
        and ("*" in disabled or resource.package in disabled)
    ]


def refuse_default_providers(rendering: Rendering) -> None:
    denials = default_provider_denials(rendering)
    if denials:
        more = f" (and {len(denials) - 1} more)" if len(denials) > 1 else ""
        raise EngineRefusal(f"{denials[0]}{more}")


def _run_main() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


async def _resolve_outputs() -> dict[str, Any]:
    root = pulumi.runtime.settings.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {}) or {}
    resolved: dict[str, Any] = {}
    for key, value in exported.items():
        output = pulumi.Output.from_input(value)
        plain = normalise(await output.future(with_unknowns=True))
        resolved[key] = Secret(plain) if await output.is_secret() else plain
    await asyncio.sleep(0)
    return resolved
