"""The engine's plan between two renderings: updates in place, replacements, and what protect refuses."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from tests import synthetic
from tests.conftest import any_stack_name, rendered, run_fixture, settings, with_section
from tools.engine import OFFLINE_CLOCK, PROJECT, Rendering, Resource, Secret
from tools.plan import plan, replacing_inputs

NODE = "command:remote:Command"


def edge() -> Rendering:
    return rendered(any_stack_name(role="edge"))


def changed_minikube(stack: str, **settings: object) -> Rendering:
    return with_section(stack, "minikube", **settings)


def without(rendering: Rendering, type_: str, name: str) -> Rendering:
    kept = [r for r in rendering.resources if not (r.type == type_ and r.name == name)]
    return Rendering(rendering.stack, kept, rendering.outputs, rendering.config)


def test_the_same_program_twice_changes_nothing() -> None:
    assert {step.op for step in plan(edge(), run_fixture(edge().stack)).steps} == {"same"}


def test_a_changed_kubelet_setting_updates_the_node_in_place() -> None:
    stack = edge().stack
    after = changed_minikube(stack, extraKubeletConfig={"max-pods": "150"})
    step = plan(edge(), after).step(NODE, f"{stack}-minikube")
    assert step.op == "update"
    assert "create" in step.changed
    assert plan(edge(), after).refusals() == []


def test_a_changed_kubernetes_version_updates_the_node_in_place() -> None:
    stack = edge().stack
    after = changed_minikube(stack, kubernetesVersion="v1.35.2")
    assert plan(edge(), after).step(NODE, f"{stack}-minikube").op == "update"


def test_a_new_host_replaces_the_node_which_protect_refuses() -> None:
    stack = edge().stack
    address = str(settings(edge()).host).rsplit(".", 1)[0] + ".250"
    moved = run_fixture(stack, {f"{PROJECT}:host": address})
    result = plan(edge(), moved)
    step = result.step(NODE, f"{stack}-minikube")
    assert step.op == "replace" and "triggers" in step.replaced_by
    assert any(f"{stack}-minikube" in message and "protection" in message for message in result.refusals())


def command(connection: object, replace_on_changes: list[str], type_: str = NODE) -> Resource:
    node = synthetic.resource(type_, "node")
    node.inputs = {"create": "start", "connection": connection}
    node.replace_on_changes = replace_on_changes
    return node


def replaced_by(old: Resource, new: Resource) -> tuple[str, ...]:
    step = plan(synthetic.rendering(old), synthetic.rendering(new)).steps[0]
    assert step.op == ("replace" if step.replaced_by else "update")
    return step.replaced_by


def test_replace_on_changes_inside_a_secret_input_never_matches() -> None:
    """The engine diffs a secret as one value at its own path, and a replaceOnChanges path only
    matches a diff path it contains: `connection.host` does not contain `connection`."""
    old = command(Secret({"host": "10.0.0.1", "user": "root"}), ["connection.host"])
    new = command(Secret({"host": "10.0.0.2", "user": "root"}), ["connection.host"])
    assert replaced_by(old, new) == ()
    old.replace_on_changes = new.replace_on_changes = ["connection"]
    assert replaced_by(old, new) == ("connection",), "the secret's own path does match"


def test_a_connection_pulumi_command_declares_secret_is_one_value_even_when_passed_plain() -> None:
    """Without a key (an SSH agent authenticates) nothing in the connection is secret in the
    program, but pulumi-command marks the whole connection secret all the same."""
    old = command({"host": "10.0.0.1"}, ["connection.host"])
    new = command({"host": "10.0.0.2"}, ["connection.host"])
    assert replaced_by(old, new) == ()


def test_replace_on_changes_matches_a_changed_value_inside_a_plain_input() -> None:
    old = command({"host": "10.0.0.1"}, ["connection.host"], type_="example:index:Thing")
    new = command({"host": "10.0.0.2"}, ["connection.host"], type_="example:index:Thing")
    assert replaced_by(old, new) == ("connection.host",)
    new.inputs["connection"] = old.inputs["connection"] | {"port": 2222}
    assert replaced_by(old, new) == (), "a change beside the path is no change of it"


@pytest.mark.parametrize(
    ("before", "after"),
    [([{"host": "a"}], [{"host": "b"}]), (None, [{"host": "a"}]), ([{"host": "a"}], [{"host": "a"}, "x"])],
    ids=["an element changed", "triggers added", "an element added"],
)
def test_any_change_of_a_commands_triggers_replaces_it(before: object, after: object) -> None:
    old, new = command(Secret({"host": "h"}), ["triggers[*]"]), command(Secret({"host": "h"}), ["triggers[*]"])
    old.inputs["triggers"], new.inputs["triggers"] = before, after
    assert replaced_by(old, new)


def test_removing_a_protected_release_is_refused_and_a_retained_one_only_leaves_the_state() -> None:
    release = edge().release("opensearch")
    assert release.protect
    result = plan(edge(), without(edge(), release.type, release.name))
    assert result.step(release.type, release.name).op == "delete"
    assert any(release.name in message for message in result.refusals())

    retained = copy.copy(release)
    retained.protect, retained.retain_on_delete = False, True
    old = Rendering("test", [retained], {}, {})
    assert plan(old, Rendering("test", [], {}, {})).step(release.type, release.name).op == "retain"


def test_an_ignored_input_keeps_its_recorded_value() -> None:
    old = synthetic.resource("command:remote:Command", "node")
    old.inputs = {"create": "v1", "triggers": ["digest-of-old-scripts"]}
    new = synthetic.resource("command:remote:Command", "node")
    new.inputs = {"create": "v2"}
    assert plan(synthetic.rendering(old), synthetic.rendering(new)).steps[0].op == "replace"
    new.ignore_changes = ["triggers"]
    assert plan(synthetic.rendering(old), synthetic.rendering(new)).steps[0].op == "update"


def test_a_replaced_kubernetes_provider_replaces_everything_it_manages() -> None:
    stack = edge().stack
    renamed = copy.deepcopy(edge())
    provider = renamed.one("pulumi:providers:kubernetes")
    provider.inputs["clusterIdentifier"] = "another-cluster"
    result = plan(edge(), renamed)
    assert result.step(provider.type, provider.name).op == "replace"
    namespace = next(r for r in renamed.kubernetes_objects() if r.kind == "Namespace")
    assert result.step(namespace.type, namespace.name).replaced_by == ("provider",)
    assert result.refusals(), f"{stack}: protected releases would be replaced with their provider"


def test_an_alias_carries_a_resource_over_to_a_new_type() -> None:
    old = synthetic.resource("pulumi-python:dynamic/opensearch:IsmPolicy", "policy")
    new = synthetic.resource("pulumi-python:dynamic/opensearch:Object", "policy")
    new.aliases = [old.type]
    result = plan(synthetic.rendering(old), synthetic.rendering(new))
    assert [step.op for step in result.steps] == ["same"]


@pytest.mark.parametrize(
    ("kind", "path"),
    [("StatefulSet", "spec.volumeClaimTemplates"), ("Deployment", "spec.selector"), ("Secret", "type")],
)
def test_immutable_kubernetes_fields_replace_the_object(kind: str, path: str) -> None:
    obj = synthetic.kubernetes({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "x"}})
    assert path in replacing_inputs(obj)


def test_every_input_of_a_random_password_replaces_it() -> None:
    password = Resource(
        "random:index/randomPassword:RandomPassword", "p", "urn:p", True, None, None, [], {"length": 24}
    )
    longer = copy.deepcopy(password)
    longer.inputs["length"] = 32
    assert plan(synthetic.rendering(password), synthetic.rendering(longer)).steps[0].op == "replace"


def certificate(validity_hours: int, early_renewal_hours: int) -> Resource:
    cert = synthetic.resource("tls:index/locallySignedCert:LocallySignedCert", "ingress")
    cert.inputs = {"validityPeriodHours": validity_hours, "earlyRenewalHours": early_renewal_hours}
    end = OFFLINE_CLOCK + timedelta(hours=validity_hours)
    cert.state = {"validityEndTime": end.isoformat().replace("+00:00", "Z"), "readyForRenewal": False}
    return cert


def test_a_certificate_is_replaced_once_it_enters_its_renewal_window() -> None:
    issued = synthetic.rendering(certificate(validity_hours=8760, early_renewal_hours=720))
    same_program = synthetic.rendering(certificate(validity_hours=8760, early_renewal_hours=720))
    early = plan(issued, same_program, now=OFFLINE_CLOCK + timedelta(days=300))
    assert early.steps[0].op == "same"
    due = plan(issued, same_program, now=OFFLINE_CLOCK + timedelta(days=336))
    assert (due.steps[0].op, due.steps[0].replaced_by) == ("replace", ("renewal window",))
