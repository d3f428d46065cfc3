"""The offline engine refuses what the real engine refuses, and orders what the real SDK orders."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from tests import synthetic
from tests.conftest import EDGE, any_stack_name, run_fixture
from tools.engine import (
    DISABLE_DEFAULT_PROVIDERS,
    PROJECT,
    EngineRefusal,
    Rendering,
    default_provider_denials,
    project_config,
)


def with_disabled(rendering: Rendering, packages: list[str]) -> Rendering:
    config = dict(rendering.config) | {DISABLE_DEFAULT_PROVIDERS: json.dumps(packages)}
    return Rendering(rendering.stack, rendering.resources, rendering.outputs, config)


def test_project_config_from_pulumi_yaml_reaches_every_stack(any_stack: Rendering) -> None:
    assert DISABLE_DEFAULT_PROVIDERS in project_config()
    assert any_stack.config[DISABLE_DEFAULT_PROVIDERS] == project_config()[DISABLE_DEFAULT_PROVIDERS]


def test_the_packages_that_would_act_on_ambient_configuration_have_no_default_provider() -> None:
    disabled = json.loads(project_config()[DISABLE_DEFAULT_PROVIDERS])
    assert set(disabled) == {"kubernetes", "minio"}


def test_the_program_passes_the_engines_default_provider_rule(any_stack: Rendering) -> None:
    assert default_provider_denials(any_stack) == []


def test_disabling_every_default_provider_is_refused_like_the_real_engine_does(minikube_stack: Rendering) -> None:
    """With `*` the engine refuses the default provider of command, random and the dynamic
    providers too; the first `pulumi preview` would stop at the Minikube node."""
    any_stack = minikube_stack
    denials = default_provider_denials(with_disabled(any_stack, ["*"]))
    packages = {message.split("'")[1] for message in denials}
    assert {"command", "random", "pulumi-python"} <= packages
    assert all(message.endswith("must use an explicit provider.") for message in denials)
    node = next(m for m in denials if f"{any_stack.stack}-minikube'" in m)
    assert node.startswith("Default provider for 'command' disabled. 'urn:pulumi:")


def test_a_run_with_a_refused_default_provider_stops_with_the_engines_message() -> None:
    override: dict[str, str | None] = {DISABLE_DEFAULT_PROVIDERS: json.dumps(["command"])}
    with pytest.raises(EngineRefusal, match=r"^Default provider for 'command' disabled\. .* \(and 1 more\)$"):
        run_fixture(any_stack_name(role="edge"), override)


def test_a_kubernetes_object_without_the_explicit_provider_is_refused() -> None:
    stray = synthetic.kubernetes({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    stray.custom = True
    rendering = synthetic.rendering(stray, config={DISABLE_DEFAULT_PROVIDERS: '["kubernetes"]'})
    assert default_provider_denials(rendering) == [
        f"Default provider for 'kubernetes' disabled. '{stray.urn}' must use an explicit provider."
    ]


def test_the_pulumi_package_and_provider_resources_are_never_refused() -> None:
    reference = synthetic.resource("pulumi:pulumi:StackReference", "central")
    provider = synthetic.resource("pulumi:providers:kubernetes", "cluster")
    rendering = synthetic.rendering(reference, provider, config={DISABLE_DEFAULT_PROVIDERS: '["*"]'})
    assert default_provider_denials(rendering) == []


# --- dependency order ----------------------------------------------------------------------


def test_a_parents_depends_on_does_not_hold_its_children_back() -> None:
    """The SDK registers a child once its parent's URN is known: what the component was told to
    wait for does not reach the child unless the child is told too."""
    first = synthetic.resource("random:index/randomPassword:RandomPassword", "first")
    component = synthetic.resource(f"{PROJECT}:test:Component", "component", custom=False, depends_on=[first.urn])
    child = synthetic.resource("random:index/randomPassword:RandomPassword", "child", parent=component.urn)
    rendering = synthetic.rendering(first, component, child)
    assert rendering.depends_on(component, first)
    assert not rendering.depends_on(child, first)


def test_waiting_for_a_component_means_waiting_for_its_children() -> None:
    component = synthetic.resource(f"{PROJECT}:test:Component", "component", custom=False)
    child = synthetic.resource("random:index/randomPassword:RandomPassword", "child", parent=component.urn)
    later = synthetic.resource("random:index/randomPassword:RandomPassword", "later", depends_on=[component.urn])
    assert synthetic.rendering(component, child, later).depends_on(later, child)


def test_an_input_taken_from_another_resource_is_a_dependency() -> None:
    source = synthetic.resource("random:index/randomPassword:RandomPassword", "source")
    user = synthetic.resource("random:index/randomPassword:RandomPassword", "user")
    user.property_dependencies = {"keepers": [source.urn]}
    assert synthetic.rendering(source, user).depends_on(user, source)


def wrapping_depth(method: Any) -> int:
    """How many closures wrap a function (the SDK's sorting wrappers of pickle)."""
    depth = 0
    while method.__closure__:
        inner = [cell.cell_contents for cell in method.__closure__ if callable(cell.cell_contents)]
        if not inner:
            break
        method, depth = inner[0], depth + 1
    return depth


def test_running_the_program_again_and_again_does_not_nest_pickle_wrappers() -> None:
    """The SDK wraps pickle once per dynamic provider it serialises and never unwraps: a long test
    session would hit the recursion limit. Each run starts from the original method."""
    run_fixture(EDGE)
    first = wrapping_depth(pickle._Pickler._batch_setitems)  # type: ignore[attr-defined]
    for _ in range(3):
        run_fixture(EDGE)
    assert wrapping_depth(pickle._Pickler._batch_setitems) == first  # type: ignore[attr-defined]
