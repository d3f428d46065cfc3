"""The real Pulumi engine, and `tools/plan.py`'s and `tools/engine.py`'s models of it checked against it.

Programs run inline through the Automation API (`tests/integration/engine.py`), under the project's
own `Pulumi.yaml` config, on a `file://` backend with passphrase secrets. Each reproduces a shape of
the program: the node's commands (a secret connection, the identity in `triggers`, protect), Secrets
and ConfigMaps behind a provider with and without the mutation switches (real pulumi-kubernetes
against a real kube-apiserver), a StackReference from an edge to central, the policy pack. Every
program is previewed a second time after its `up`, which must change nothing.

The node's commands run through two doubles, as pulumi-command itself is refused by the proxy: a
dynamic provider (the engine computes the diff) and `command_provider.py` (pulumi-command's diff,
reimplemented from pulumi-go-provider's source). What is proven is the engine's part: how it applies
`replaceOnChanges`, `deleteBeforeReplace` and `protect` to a provider's diff.

Tests named `test_the_plan_model_*`, `test_the_models_*` and `test_the_offline_engines_*` compare the
models with what the engine did on the same program: the model's prediction comes from the offline
engine's records of that program (`offline_rendering`) and `tools.plan.plan`. When one fails, the
model is wrong, not the engine: the model must follow.

The fixture stacks themselves cannot be previewed: their providers cannot be had (reported BLOCKED).
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi import automation as auto

from components.central_stack import CentralStackNotReady, published_for
from components.platform_ca import CA_OUTPUT
from policy.guardrails import SECRET_CONFIG_ANNOTATION
from tests.conftest import FIXTURE_STACKS_DIR, rendered
from tests.integration import command_double as dynamic
from tests.integration import command_provider as command
from tests.integration import programs
from tests.integration.apiserver import ApiServer, running_apiserver
from tests.integration.binaries import Blocked, catalogue
from tests.integration.conftest import REPORT, Proves, blocked, need
from tests.integration.engine import (
    DYNAMIC_PROVIDER,
    ROOT,
    Engine,
    Program,
    Run,
    engine_path,
    go_module_dir,
    offline_rendering,
    prepare,
    preview,
    python_plugin,
    sdk_script,
    up,
)
from tools import plan as plan_model
from tools.engine import Rendering, Resource, default_provider_denials, stack_names

CLI = programs.PULUMI
KUBERNETES_PLUGIN = programs.PULUMI_KUBERNETES


def requirement(package: str) -> str:
    """The version requirements.txt pins `package` to."""
    pinned = re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned, package
    return pinned.group(1)


def require(outcome: Path | Blocked) -> Path:
    """The path, or the test skipped with the BLOCKED line (and the line reported)."""
    if isinstance(outcome, Blocked):
        REPORT.block(outcome)
        pytest.skip(outcome.line())
    return outcome


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The CLI with our pulumi-kubernetes, the dynamic-provider runner of the CLI's own SDK release and
    the pulumi-command double (`command_provider.py`)."""
    cli = need("pulumi")
    kubernetes = need("pulumi-resource-kubernetes")
    sdk = require(go_module_dir("pulumi-resource-pulumi-python", programs.PULUMI_SDK_MODULE, CLI))
    runner = require(sdk_script(sdk, DYNAMIC_PROVIDER))
    prepared = prepare(tmp_path_factory.mktemp("engine"), cli, [kubernetes], [runner])
    assert prepared.version == CLI, prepared.version
    python_plugin(prepared.bin, f"pulumi-resource-{command.PACKAGE}", command.__name__)
    return prepared


# --- what cannot run ----------------------------------------------------------------------------

AVAILABLE_PACKAGES = frozenset({"pulumi", "kubernetes", "pulumi-python"})
"""The packages whose providers run here: the engine's own, ours (pulumi-kubernetes), dynamic ones."""


def test_the_fixture_stacks_cannot_run_for_their_providers_are_refused() -> None:
    """pulumi-command, -tls and -random are refused by the proxy, MinIO's provider is AGPL, the Python
    language host is refused: checked again on every run, so the BLOCKED lines stay true."""
    providers = {name: catalogue()[name].build() for name in programs.ENGINE_PROVIDERS_REFUSED}
    served = [name for name, outcome in providers.items() if not isinstance(outcome, Blocked)]
    assert not served, f"{served} can be built now: install them and preview the fixture stacks for real"
    for outcome in providers.values():
        assert isinstance(outcome, Blocked)
        REPORT.block(outcome)
    language_host = go_module_dir("pulumi-language-python", programs.PULUMI_LANGUAGE_PYTHON_MODULE, "latest")
    assert isinstance(language_host, Blocked), "the Python language host is served now: build it"
    assert "403 Forbidden" in language_host.why, language_host.why
    for entry in programs.ENGINE_BLOCKED:
        REPORT.block(entry)
    needed = {
        stack: sorted({r.package for r in rendered(stack).resources if r.custom} - AVAILABLE_PACKAGES)
        for stack in stack_names(FIXTURE_STACKS_DIR)
    }
    assert all(needed.values()), needed
    blocked(
        "fixture stacks (pulumi preview/up)",
        ", ".join(f"{stack}: {'+'.join(packages)}" for stack, packages in needed.items()),
        "need the providers of those packages: command, tls and random are refused by the Go module proxy "
        "(above), minio links an AGPL Terraform provider and is never built; and a Python project needs the "
        "language host (refused). Shapes of the program run inline instead (test_engine.py).",
    )


# --- 1. pulumi:disable-default-providers, and URNs -----------------------------------------------


class Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_, name, None, opts)
        self.register_outputs({})


def orphan_program(rendered_to: Path, with_orphan: bool) -> Program:
    """A dynamic resource on its default provider, two levels down in components (as the node's commands
    are), and a ConfigMap with an explicit provider (rendering YAML to `rendered_to`, no cluster);
    `with_orphan`: also a ConfigMap without a provider."""

    def program() -> None:
        outer = Component("test:index:Outer", "outer")
        inner = Component("test:index:Inner", "inner", pulumi.ResourceOptions(parent=outer))
        dynamic.RemoteCommand(
            "dynamic", "10.20.0.10", [{"host": "10.20.0.10"}], opts=pulumi.ResourceOptions(parent=inner)
        )
        provider = k8s.Provider("render", render_yaml_to_directory=str(rendered_to))
        k8s.core.v1.ConfigMap(
            "explicit", metadata={"name": "explicit"}, data={"a": "b"}, opts=pulumi.ResourceOptions(provider=provider)
        )
        if with_orphan:
            k8s.core.v1.ConfigMap("orphan", metadata={"name": "orphan", "namespace": "default"}, data={"a": "b"})

    return program


DENIAL = re.compile(r"Default provider for '(?P<package>[^']+)' disabled\. '(?P<urn>urn:[^']+)' must use an explicit")


@dataclass(frozen=True)
class DefaultProviders:
    allowed: Run
    refused: Run
    offline_allowed: Rendering
    offline_refused: Rendering


@pytest.fixture(scope="module")
def default_providers(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> DefaultProviders:
    rendered_to = tmp_path_factory.mktemp("rendered")
    allowed_program, refused_program = (orphan_program(rendered_to, orphan) for orphan in (False, True))
    stack = engine.stack("default-providers", "dev", allowed_program)
    return DefaultProviders(
        preview(stack, allowed_program),
        preview(stack, refused_program),
        offline_rendering(allowed_program, "default-providers", "dev"),
        offline_rendering(refused_program, "default-providers", "dev"),
    )


def test_disable_default_providers_is_enforced_by_the_engine(
    default_providers: DefaultProviders, proves: Proves
) -> None:
    allowed, refused = default_providers.allowed, default_providers.refused
    assert not allowed.failure, allowed.failure
    assert {allowed.step(name).op for name in ("dynamic", "explicit")} == {"create"}
    assert refused.failure, "the engine created a default Kubernetes provider"
    denials = [match.groupdict() for match in map(DENIAL.search, refused.errors) if match]
    assert [denial["package"] for denial in denials] == ["kubernetes"], refused.errors
    assert denials[0]["urn"].endswith("::kubernetes:core/v1:ConfigMap::orphan"), denials
    proves(
        "pulumi",
        CLI,
        "the project's pulumi:disable-default-providers ([kubernetes, minio]) refuses a Kubernetes resource "
        "without an explicit provider; a dynamic resource on its default provider is accepted",
    )


def test_the_models_default_provider_refusal_is_the_engines_message(default_providers: DefaultProviders) -> None:
    """`tools.engine.default_provider_denials` says what the engine says (the URN aside: see the next test)."""
    engine_says = next(error for error in default_providers.refused.errors if DENIAL.search(error))
    model = default_provider_denials(default_providers.offline_refused)
    assert len(model) == 1, model
    offline_urn = next(r.urn for r in default_providers.offline_refused.resources if r.name == "orphan")
    real_urn = DENIAL.search(engine_says)["urn"]  # type: ignore[index]
    assert model[0].replace(offline_urn, real_urn) == engine_says


def test_the_offline_engines_urns_are_the_engines(default_providers: DefaultProviders) -> None:
    """The offline engine's URNs (pulumi's MockMonitor) are the ones the engine gives the same program:
    what `tools.plan` matches resources by and quotes in its refusals."""
    real = {name: step.urn for name, step in default_providers.allowed.steps.items()}
    offline_urns = {r.name: r.urn for r in default_providers.offline_allowed.resources}
    wrong = {name: (urn, real[name]) for name, urn in offline_urns.items() if name in real and urn != real[name]}
    assert set(offline_urns) <= set(real), (sorted(offline_urns), sorted(real))
    assert not wrong, "offline URN -> the engine's URN:\n" + "\n".join(
        f"{name}: {urn} -> {engine_urn}" for name, (urn, engine_urn) in sorted(wrong.items())
    )


# --- 2. replaceOnChanges with a secret connection: the node's commands -----------------------------

HOST, NEW_HOST = "10.20.0.10", "10.20.0.250"
PROFILE = "minikube"
NODE_PROJECT = "node"


def identity(host: str) -> list[dict[str, str]]:
    """`components.minikube_node.identity`: the node's identity as the commands' `triggers`."""
    return [{"host": host, "profile": PROFILE}]


def node_program(moved: str, retriggered: str, guarded: str) -> Program:
    """The node's command shapes (a secret connection, the identity in `triggers`), twice: through the
    dynamic double (`dynamic-*`, the engine diffs) and through pulumi-command's diff (`command-*`):

    - `*-moved`: `replaceOnChanges: ["connection.host"]` (the program before issue 18 item 6), host `moved`;
    - `dynamic-whole-connection`: `replaceOnChanges: ["connection"]`, host `moved`;
    - `*-retriggered`: the identity of host `retriggered` in `triggers`, under pulumi-command's SDK's
      `replaceOnChanges: ["triggers[*]"]`, deleted before it is replaced (as the node's start command);
    - `*-guarded`: the same for host `guarded`, protected (`config.protect`).
    """

    def program() -> None:
        dynamic.RemoteCommand(
            "dynamic-moved", moved, identity(HOST), opts=pulumi.ResourceOptions(replace_on_changes=["connection.host"])
        )
        dynamic.RemoteCommand(
            "dynamic-whole-connection",
            moved,
            identity(HOST),
            opts=pulumi.ResourceOptions(replace_on_changes=["connection"]),
        )
        command.RemoteCommand(
            "command-moved", moved, identity(HOST), opts=pulumi.ResourceOptions(replace_on_changes=["connection.host"])
        )
        doubles: tuple[tuple[str, Callable[..., pulumi.CustomResource]], ...] = (
            ("dynamic", dynamic.RemoteCommand),
            ("command", command.RemoteCommand),
        )
        for prefix, remote_command in doubles:
            remote_command(
                f"{prefix}-retriggered",
                retriggered,
                identity(retriggered),
                opts=pulumi.ResourceOptions(replace_on_changes=["triggers[*]"], delete_before_replace=True),
            )
            remote_command(
                f"{prefix}-guarded",
                guarded,
                identity(guarded),
                opts=pulumi.ResourceOptions(
                    replace_on_changes=["triggers[*]"], delete_before_replace=True, protect=True
                ),
            )

    return program


DEPLOYED = node_program(HOST, HOST, HOST)
MOVED = node_program(NEW_HOST, NEW_HOST, HOST)
GUARDED_MOVED = node_program(NEW_HOST, NEW_HOST, NEW_HOST)
DYNAMIC_COMMANDS = ("dynamic-moved", "dynamic-whole-connection", "dynamic-retriggered", "dynamic-guarded")
COMMANDS = ("command-moved", "command-retriggered", "command-guarded")


@dataclass(frozen=True)
class NodeRuns:
    moved: Run
    """Preview of MOVED over DEPLOYED."""
    again: Run
    """Preview of MOVED after `up` of it."""
    guarded: Run
    """Preview of GUARDED_MOVED over MOVED: the protected commands would be replaced."""


@pytest.fixture(scope="module")
def node_runs(engine: Engine) -> NodeRuns:
    stack = engine.stack(NODE_PROJECT, "dev", DEPLOYED)
    up(stack, DEPLOYED)
    moved = preview(stack, MOVED)
    up(stack, MOVED)
    return NodeRuns(moved, preview(stack, MOVED), preview(stack, GUARDED_MOVED))


def test_the_engine_replaces_on_a_path_inside_a_secret_when_it_diffs_the_inputs_itself(
    node_runs: NodeRuns, proves: Proves
) -> None:
    """The dynamic double answers DIFF_UNKNOWN, so the engine diffs the inputs itself, secrets unwrapped
    (pulumi 3.274 `diffResource`, `unwrapResourceSecretsAndOutputs`): a new host inside the secret
    connection is the diff path `connection.host`, which `replaceOnChanges: ["connection.host"]` contains."""
    moved = node_runs.moved
    assert not moved.failure, moved.failure
    assert moved.step("dynamic-moved").detailed_diff == {"connection.host": "update-replace"}
    assert moved.step("dynamic-moved").op == "replace"
    assert moved.step("dynamic-whole-connection").op == "replace"
    assert moved.step("dynamic-whole-connection").detailed_diff == {"connection.host": "update-replace"}
    retriggered = moved.step("dynamic-retriggered")
    assert retriggered.op == "replace" and retriggered.delete_first, retriggered
    assert retriggered.detailed_diff == {"connection.host": "update", "triggers[0].host": "update-replace"}
    assert moved.step("dynamic-guarded").op == "same"
    proves(
        "pulumi",
        CLI,
        "replaceOnChanges over a provider that leaves the diff to the engine (a dynamic provider): the engine "
        "diffs with secrets unwrapped, so [connection.host] matches a new host inside the secret connection "
        "and replaces",
    )


def test_the_engine_contains_replace_on_changes_in_the_providers_detailed_diff(
    node_runs: NodeRuns, proves: Proves
) -> None:
    """With pulumi-command's diff (the secret connection one entry, `triggers` key-level replace only,
    `command_provider.py`): `replaceOnChanges: ["connection.host"]` does not contain `connection`, so a new
    host is an update; the SDK's `["triggers[*]"]` contains `triggers[0].host` and replaces, delete first."""
    moved = node_runs.moved
    command_moved = moved.step("command-moved")
    assert (command_moved.op, command_moved.detailed_diff) == ("update", {"connection": "update"}), command_moved
    retriggered = moved.step("command-retriggered")
    assert retriggered.op == "replace" and retriggered.delete_first, retriggered
    assert retriggered.detailed_diff == {"connection": "update", "triggers[0].host": "update-replace"}
    assert moved.step("command-guarded").op == "same"
    proves(
        "pulumi",
        CLI,
        "replaceOnChanges is matched by path containment against the provider's detailed diff: given "
        "pulumi-command's diff as pulumi-go-provider 1.3.0 computes it (reimplemented, the provider is refused), "
        "[connection.host] never matches a secret connection reported as one entry (update in place), "
        "[triggers[*]] matches triggers[0].host (replace, deleteBeforeReplace deletes first)",
    )


def test_protect_refuses_the_replacement_of_a_node(node_runs: NodeRuns, proves: Proves) -> None:
    guarded = node_runs.guarded
    assert guarded.failure, "the engine would replace a protected resource"
    for name in ("dynamic-guarded", "command-guarded"):
        urn = guarded.step(name).urn
        assert any(
            error.startswith(f'unable to replace resource "{urn}"\nas it is currently marked for protection')
            for error in guarded.errors
        ), (name, guarded.errors)
    proves("pulumi", CLI, "protect refuses, at preview, the replacement a new identity in triggers asks for")


def test_a_second_preview_of_the_node_commands_changes_nothing(node_runs: NodeRuns, proves: Proves) -> None:
    again = node_runs.again
    assert not again.failure, again.failure
    assert again.changes() == {}, {name: step.ops for name, step in again.steps.items()}
    proves(
        "pulumi-resource-pulumi-python", CLI, "dynamic resources created, replaced; a second preview changes nothing"
    )


def step_disagreements(old: Rendering, new: Rendering, run: Run, names: tuple[str, ...]) -> list[str]:
    """Where `tools.plan.plan(old, new)` plans another operation than the engine's `run`, or deletes first
    where the engine does not (or the other way round): one line each."""
    predicted = plan_model.plan(old, new)
    lines = []
    for name in names:
        model = next(step for step in predicted.steps if step.name == name)
        real = run.step(name)
        if model.op != real.op:
            why = f" (replaced by {', '.join(model.replaced_by)})" if model.replaced_by else ""
            lines.append(f"{name}: the engine plans {real.op} {real.ops}, the model {model.op}{why}")
        elif model.op == "replace" and model.delete_first != real.delete_first:
            lines.append(f"{name}: the engine deletes first: {real.delete_first}, the model: {model.delete_first}")
    return lines


def diff_disagreements(old: Rendering, new: Rendering, run: Run, names: tuple[str, ...]) -> list[str]:
    """Where `tools.plan.detailed_diff` (the paths replaceOnChanges is matched against) differs from the
    engine's detailed diff: one line each."""
    lines = []
    for name in names:
        real = run.step(name)
        paths = {engine_path(path) for path in plan_model.detailed_diff(_named(old, name), _named(new, name))}
        if real.op != "same" and paths != set(real.detailed_diff):
            lines.append(f"{name}: the engine's detailed diff is {real.detailed_diff}, the model's {sorted(paths)}")
    return lines


def _named(rendering: Rendering, name: str) -> Resource:
    return next(resource for resource in rendering.resources if resource.name == name)


def offline_node(program: Program) -> Rendering:
    """The offline records of a node program, the pulumi-command double's resources under pulumi-command's
    own type (`command:remote:Command`), the type `tools.plan` knows the provider's rules for."""
    rendering = offline_rendering(program, NODE_PROJECT, "dev")
    for resource in rendering.resources:
        if resource.type == command.TYPE:
            resource.type = "command:remote:Command"
    return rendering


def test_the_plan_model_predicts_the_engines_steps_for_the_node_commands(node_runs: NodeRuns) -> None:
    """`tools.plan` on the offline records of the same two programs, against the engine's preview."""
    names = DYNAMIC_COMMANDS + COMMANDS
    lines = step_disagreements(offline_node(DEPLOYED), offline_node(MOVED), node_runs.moved, names)
    assert not lines, "\n".join(lines)


def test_the_plan_models_detailed_diff_of_the_node_commands_is_the_engines(node_runs: NodeRuns) -> None:
    names = DYNAMIC_COMMANDS + COMMANDS
    lines = diff_disagreements(offline_node(DEPLOYED), offline_node(MOVED), node_runs.moved, names)
    assert not lines, "\n".join(lines)


def test_the_plan_model_refuses_the_protected_replacements_in_the_engines_words(node_runs: NodeRuns) -> None:
    old, new = offline_node(MOVED), offline_node(GUARDED_MOVED)
    refusals = plan_model.plan(old, new).refusals()
    assert len(refusals) == 2, refusals

    def sentence(text: str) -> str:
        return " ".join(text.split()).split(" protection", 1)[0] + " protection"

    for name in ("dynamic-guarded", "command-guarded"):
        real_urn, offline_urn = node_runs.guarded.step(name).urn, _named(new, name).urn
        engine_says = next(error for error in node_runs.guarded.errors if real_urn in error)
        model_says = next(refusal for refusal in refusals if offline_urn in refusal)
        assert sentence(model_says.replace(offline_urn, real_urn)) == sentence(engine_says), (
            f"the engine says: {engine_says!r}; the model (tools.plan.Plan.refusals): {model_says!r}"
        )


# --- 3. Secrets and ConfigMaps: pulumi-kubernetes against a real kube-apiserver ---------------------

CLUSTER_PROJECT = "cluster"
NAMESPACE = "default"
PROVIDERS = {"fixed": False, "mutable": True}
"""Provider name -> enableSecretMutable and enableConfigMapMutable: `mutable` is the program's provider
(`__main__.py`), `fixed` lacks both."""


def cluster_program(kubeconfig: str, renewal: int) -> Program:
    """Per provider, a TLS Secret (`stringData`, as ClusterTls writes a certificate) and a ConfigMap, both
    named; `renewal` stands for the certificate's and the configuration's content."""

    def program() -> None:
        for label, mutable in PROVIDERS.items():
            provider = k8s.Provider(
                label,
                kubeconfig=pulumi.Output.secret(kubeconfig),
                cluster_identifier="integration",
                enable_secret_mutable=mutable or None,
                enable_config_map_mutable=mutable or None,
            )
            options = pulumi.ResourceOptions(provider=provider)
            k8s.core.v1.Secret(
                f"{label}-secret",
                metadata={"name": f"{label}-tls", "namespace": NAMESPACE},
                type="kubernetes.io/tls",
                string_data={"tls.crt": f"certificate {renewal}", "tls.key": f"key {renewal}"},
                opts=options,
            )
            k8s.core.v1.ConfigMap(
                f"{label}-config",
                metadata={"name": f"{label}-config", "namespace": NAMESPACE},
                data={"config.yaml": f"renewal: {renewal}"},
                opts=options,
            )

    return program


OBJECTS = {
    "fixed-secret": "secrets/fixed-tls",
    "fixed-config": "configmaps/fixed-config",
    "mutable-secret": "secrets/mutable-tls",
    "mutable-config": "configmaps/mutable-config",
}
"""Resource name -> its path under the namespace."""


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    etcd, kube_apiserver, controller_manager = need("etcd"), need("kube-apiserver"), need("kube-controller-manager")
    with running_apiserver(etcd, kube_apiserver, controller_manager, tmp_path_factory.mktemp("apiserver")) as api:
        yield api


@dataclass(frozen=True)
class ClusterRuns:
    renewed: Run
    """Preview of renewal 2 over renewal 1."""
    deployed: Run
    """`up` of renewal 2."""
    again: Run
    """Preview of renewal 2 after its `up`."""
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    """The live objects after `up` of renewal 1 and of renewal 2."""
    old: Rendering
    new: Rendering
    """The offline records of both programs."""


def live(api: ApiServer) -> dict[str, dict[str, Any]]:
    return {name: api.get(f"/api/v1/namespaces/{NAMESPACE}/{path}") for name, path in OBJECTS.items()}


@pytest.fixture(scope="module")
def cluster_runs(engine: Engine, apiserver: ApiServer) -> ClusterRuns:
    first, second = cluster_program(apiserver.kubeconfig, 1), cluster_program(apiserver.kubeconfig, 2)
    stack = engine.stack(CLUSTER_PROJECT, "dev", first)
    up(stack, first)
    before = live(apiserver)
    renewed = preview(stack, second)
    deployed = up(stack, second)
    return ClusterRuns(
        renewed,
        deployed,
        preview(stack, second),
        before,
        live(apiserver),
        offline_rendering(first, CLUSTER_PROJECT, "dev"),
        offline_rendering(second, CLUSTER_PROJECT, "dev"),
    )


def test_without_the_switches_new_data_replaces_the_object_delete_first(
    cluster_runs: ClusterRuns, proves: Proves
) -> None:
    renewed = cluster_runs.renewed
    assert not renewed.failure, renewed.failure
    for name in ("fixed-secret", "fixed-config"):
        step = renewed.step(name)
        assert (step.op, step.delete_first) == ("replace", True), (name, step)
        assert cluster_runs.after[name]["metadata"]["uid"] != cluster_runs.before[name]["metadata"]["uid"], name
    proves(
        "pulumi-resource-kubernetes",
        KUBERNETES_PLUGIN,
        "against kube-apiserver v1.36.3: without enableSecretMutable/enableConfigMapMutable new data of a named "
        "Secret (stringData) or ConfigMap plans a replacement that deletes first, and `up` recreates it (new uid)",
    )


def test_with_the_switches_new_data_updates_the_object_in_place(cluster_runs: ClusterRuns, proves: Proves) -> None:
    renewed = cluster_runs.renewed
    for name in ("mutable-secret", "mutable-config"):
        assert renewed.step(name).op == "update", (name, renewed.step(name))
        assert cluster_runs.after[name]["metadata"]["uid"] == cluster_runs.before[name]["metadata"]["uid"], name
    certificate = base64.b64decode(cluster_runs.after["mutable-secret"]["data"]["tls.crt"]).decode()
    assert certificate == "certificate 2"
    assert cluster_runs.after["mutable-config"]["data"] == {"config.yaml": "renewal: 2"}
    proves(
        "pulumi-resource-kubernetes",
        KUBERNETES_PLUGIN,
        "with enableSecretMutable and enableConfigMapMutable (the program's provider) the same change updates "
        "the Secret and the ConfigMap in place (same uid, new data)",
    )


def test_a_second_preview_of_the_cluster_objects_changes_nothing(cluster_runs: ClusterRuns, proves: Proves) -> None:
    again = cluster_runs.again
    assert not again.failure, again.failure
    assert again.changes() == {}, {name: step.ops for name, step in again.steps.items() if step.op != "same"}
    proves("pulumi-resource-kubernetes", KUBERNETES_PLUGIN, "a second preview after `up` changes nothing")


def test_the_kubernetes_plugin_is_ours_from_path_under_its_own_version(
    cluster_runs: ClusterRuns, proves: Proves
) -> None:
    """The SDK asks for the plugin of its own version; the engine takes ours from PATH and says so."""
    sdk = requirement("pulumi-kubernetes")
    warnings = cluster_runs.deployed.infos
    assert any("using pulumi-resource-kubernetes from $PATH" in line for line in warnings), warnings
    mismatch = f"resource plugin kubernetes is expected to have version >={sdk}, but has {KUBERNETES_PLUGIN}"
    assert any(mismatch in line for line in warnings), warnings
    proves(
        "pulumi-resource-kubernetes",
        KUBERNETES_PLUGIN,
        f"run from PATH under the SDK pulumi-kubernetes=={sdk} (which asks for plugin {sdk}; the engine warns)",
    )


def test_the_plan_model_predicts_the_engines_steps_for_secrets_and_config_maps(cluster_runs: ClusterRuns) -> None:
    lines = step_disagreements(cluster_runs.old, cluster_runs.new, cluster_runs.renewed, tuple(OBJECTS))
    assert not lines, "\n".join(lines)


def test_the_plan_models_detailed_diff_of_secrets_and_config_maps_is_the_providers(cluster_runs: ClusterRuns) -> None:
    """pulumi-kubernetes reports a Secret's `stringData` as the `data` keys it becomes (its Check)."""
    lines = diff_disagreements(cluster_runs.old, cluster_runs.new, cluster_runs.renewed, tuple(OBJECTS))
    assert not lines, "\n".join(lines)


# --- 4. StackReference: an edge reads central's secret output --------------------------------------

PLATFORM_PROJECT = "platform"
OBJECT_STORE_KEY = "edge-a-object-store-secret-key"
CA_CERTIFICATE = "-----BEGIN CERTIFICATE----- (the platform CA, public)"
ANOTHER_PASSPHRASE = "not-the-platform-passphrase"


def central_program() -> None:
    """What central publishes for its edges: credentials (secret) and the CA certificate (public)."""
    pulumi.export("objectStoreCredentials", pulumi.Output.secret({"edge-a": {"secretKey": OBJECT_STORE_KEY}}))
    pulumi.export(CA_OUTPUT, CA_CERTIFICATE)


def edge_program() -> None:
    """`components.central_stack.CentralStack`: one StackReference, this cluster's entry kept secret."""
    reference = pulumi.StackReference(f"organization/{PLATFORM_PROJECT}/central")
    credentials = reference.get_output("objectStoreCredentials").apply(lambda published: published["edge-a"])
    pulumi.export("secretKey", pulumi.Output.secret(credentials).apply(lambda entry: entry["secretKey"]))
    pulumi.export("caCertificate", reference.get_output(CA_OUTPUT))


def probe_program() -> None:
    """What the edge's StackReference sees of central: its outputs, as they are."""
    pulumi.export("seen", pulumi.StackReference(f"organization/{PLATFORM_PROJECT}/central").outputs)


@dataclass(frozen=True)
class ReferenceRuns:
    edge: Run
    """`up` of the edge, same backend and passphrase as central."""
    again: Run
    """Its second preview."""
    stranger: Run
    """`up` of the probe in a stack of the same backend with another passphrase."""


@pytest.fixture(scope="module")
def reference_runs(engine: Engine) -> ReferenceRuns:
    up(engine.stack(PLATFORM_PROJECT, "central", central_program), central_program)
    edge = engine.stack(PLATFORM_PROJECT, "edge-a", edge_program)
    deployed = up(edge, edge_program)
    stranger = engine.stack(PLATFORM_PROJECT, "stranger", probe_program, passphrase=ANOTHER_PASSPHRASE)
    return ReferenceRuns(deployed, preview(edge, edge_program), up(stranger, probe_program))


def test_an_edge_reads_centrals_secret_output_through_a_stack_reference(
    reference_runs: ReferenceRuns, proves: Proves
) -> None:
    outputs = reference_runs.edge.outputs
    assert (outputs["secretKey"].value, outputs["secretKey"].secret) == (OBJECT_STORE_KEY, True)
    assert (outputs["caCertificate"].value, outputs["caCertificate"].secret) == (CA_CERTIFICATE, False)
    again = reference_runs.again
    assert not again.failure and again.changes() == {}, (again.failure, again.summary)
    proves(
        "pulumi",
        CLI,
        "a StackReference between two stacks of one file:// backend and passphrase reads central's secret "
        "output decrypted and still secret, a public one public; a second preview changes nothing",
    )


ELIDED = f"eliding undecryptable secrets for stack reference 'organization/{PLATFORM_PROJECT}/central'"


def test_with_another_passphrase_the_engine_elides_centrals_secrets(
    reference_runs: ReferenceRuns, proves: Proves
) -> None:
    """No error: the engine's StackReference (builtins.go readStackReference) replaces every secret it
    cannot decrypt by an empty value and says so in an info diagnostic only."""
    stranger = reference_runs.stranger
    assert not stranger.errors, stranger.errors
    assert ELIDED in stranger.infos, stranger.infos
    seen = stranger.outputs["seen"]
    assert seen.value == {CA_OUTPUT: CA_CERTIFICATE, "objectStoreCredentials": {}}, seen.value
    proves(
        "pulumi",
        CLI,
        "a stack with another passphrase does not fail on central's secrets: the engine elides them (the secret "
        f"output reads as {{}}) with the info {ELIDED!r}",
    )


def test_an_edge_with_another_passphrase_is_told_to_use_centrals(reference_runs: ReferenceRuns) -> None:
    """What `components.central_stack` makes of the elided outputs: it must name the passphrase, not
    send the operator to deploy a central stack that is deployed."""
    elided = reference_runs.stranger.outputs["seen"].value
    central = f"organization/{PLATFORM_PROJECT}/central"
    with pytest.raises(CentralStackNotReady) as refusal:
        published_for(elided, "edge-a", central)
    assert "passphrase" in str(refusal.value), f"the edge is told: {refusal.value}"


# --- 6. The policy pack under `pulumi preview --policy-pack` -----------------------------------------

POLICY_PROJECT = "policy"
DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
PACK = "thanos-multi-cluster-guardrails"


def policy_program(rendered_to: Path, literal: bool) -> Program:
    """A namespace with its default-deny policy and a Secret fed from secret config, as the program makes
    them; `literal`: also a Secret of literal values, which the pack refuses."""

    def program() -> None:
        provider = k8s.Provider("render", render_yaml_to_directory=str(rendered_to))
        options = pulumi.ResourceOptions(provider=provider)
        k8s.core.v1.Namespace("observed", metadata={"name": "observed"}, opts=options)
        k8s.networking.v1.NetworkPolicy(
            "default-deny",
            metadata={"name": "default-deny", "namespace": "observed"},
            spec=cast(k8s.networking.v1.NetworkPolicySpecArgsDict, DEFAULT_DENY),
            opts=options,
        )
        password = pulumi.Config().require_secret("opensearchAdminPassword")
        k8s.core.v1.Secret(
            "from-config",
            metadata={
                "name": "admin",
                "namespace": "observed",
                "annotations": {SECRET_CONFIG_ANNOTATION: "opensearchAdminPassword"},
            },
            string_data={"password": password},
            opts=options,
        )
        if literal:
            k8s.core.v1.Secret(
                "literal",
                metadata={"name": "literal", "namespace": "observed"},
                string_data={"password": "hunter2"},
                opts=options,
            )

    return program


@dataclass(frozen=True)
class PolicyRuns:
    directory: Run
    """`--policy-pack policy`: the pack's directory, as the README runs it."""
    compliant: Run
    literal: Run
    """`--policy-pack` of the pack's executable entry (ANALYZER_ENTRY), over the two programs."""


ANALYZER_ENTRY = "run-policy-pack"
ANALYZER_SCRIPT = """#!/bin/sh
# The pack as a binary analyzer: what the Python language host would start for it (its RunPlugin).
cd "$(dirname "$0")" && exec ./venv/bin/python -u -m pulumi.policy "$1" .
"""


def policy_pack_copy(directory: Path) -> Path:
    """The project's `policy/` with its dependencies where PulumiPolicy.yaml looks for them (`venv`,
    README: `python -m venv policy/venv`): the project's venv, which has requirements.txt's pins. Beside
    them an executable entry the engine can start without the language host."""
    pack = directory / "policy"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    (pack / "venv").symlink_to(ROOT / "venv")
    entry = pack / ANALYZER_ENTRY
    entry.write_text(ANALYZER_SCRIPT)
    entry.chmod(0o755)
    return pack


@pytest.fixture(scope="module")
def policy_runs(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> PolicyRuns:
    scratch = tmp_path_factory.mktemp("policy")
    pack = policy_pack_copy(scratch)
    compliant, literal = policy_program(scratch / "rendered", False), policy_program(scratch / "rendered", True)
    stack = engine.stack(POLICY_PROJECT, "dev", compliant)
    stack.set_config("opensearchAdminPassword", auto.ConfigValue("correct horse battery staple", secret=True))
    entry = [str(pack / ANALYZER_ENTRY)]
    return PolicyRuns(
        preview(stack, compliant, policy_packs=[str(pack)]),
        preview(stack, compliant, policy_packs=entry),
        preview(stack, literal, policy_packs=entry),
    )


LANGUAGE_HOST_MISSING = "no language plugin 'pulumi-language-python' found in the workspace or on your $PATH"


def test_policy_pack_directory_needs_the_python_language_host(policy_runs: PolicyRuns) -> None:
    """pulumi 3.274 starts a policy pack directory through its runtime's language host (RunPlugin); the
    old `pulumi-analyzer-policy-python` fallback is gone from pkg/resource/plugin.NewPolicyAnalyzer."""
    refused = policy_runs.directory
    assert refused.failure, "`--policy-pack policy` ran without the language host: record it as REAL"
    error = next((line for line in refused.failure.splitlines() if LANGUAGE_HOST_MISSING in line), "")
    assert error, refused.failure[-2000:]
    error = re.sub(r'"/[^"]*/policy"', '"policy"', error.strip().removeprefix("stderr: "))
    blocked(
        "pulumi preview --policy-pack policy",
        f"{programs.PULUMI_LANGUAGE_PYTHON_MODULE} (see pulumi-language-python)",
        f"the engine starts a pack directory through the Python language host: `{error}`",
    )


def test_the_policy_pack_runs_under_pulumi_preview(policy_runs: PolicyRuns, proves: Proves) -> None:
    compliant, literal = policy_runs.compliant, policy_runs.literal
    assert not compliant.failure, compliant.failure
    assert not compliant.violations, compliant.violations
    assert PACK in compliant.stdout, compliant.stdout
    assert literal.failure, "the pack let a Secret of literal values through"
    assert [(v.policy, v.urn.rsplit("::", 1)[-1], v.level) for v in literal.violations] == [
        ("secrets-not-from-plain-config", "literal", "mandatory")
    ], literal.violations
    proves(
        "pulumi",
        CLI,
        "`pulumi preview --policy-pack` ran the project's pack (pulumi-policy 1.21.0) started as a binary analyzer "
        "(`python -m pulumi.policy` in the pack, for the missing language host): a Secret fed from secret config "
        "passes, a Secret of literal values is a mandatory violation of secrets-not-from-plain-config",
    )
