"""The resource graph of each stack: what exists, in which order, through which provider."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.settings import PROJECT, SECRET_KEYS, SettingsError, settings_of
from tests.certificates import materialize
from tests.conftest import (
    STACKS,
    central_of,
    committed,
    committed_stack_files,
    rendered,
    requires_charts,
    run_fixture,
)
from tools.cluster import cluster
from tools.engine import ROOT, Rendering, run_stack, secret_placeholder, unwrap
from tools.plan import plan
from tools.verify.outputs import parse


def test_the_project_runs_python_from_its_own_venv() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "thanos-multi-cluster"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}


def test_every_kubernetes_resource_uses_the_clusters_explicit_provider(any_stack: Rendering) -> None:
    provider = any_stack.one("pulumi:providers:kubernetes")
    kubernetes = [r for r in any_stack.resources if r.type.startswith("kubernetes:") and r.custom]
    assert kubernetes
    for resource in kubernetes:
        assert resource.provider and resource.provider.startswith(provider.urn), resource.name


def test_provider_is_built_from_the_nodes_secret_kubeconfig_after_the_node(minikube_stack: Rendering) -> None:
    any_stack = minikube_stack
    provider = any_stack.one("pulumi:providers:kubernetes")
    node = any_stack.one("command:remote:Command", f"{any_stack.stack}-minikube")
    assert any_stack.depends_on(provider, node)
    assert provider.inputs["clusterIdentifier"] == any_stack.stack
    # A Secret or ConfigMap whose data changes is updated, not deleted and created again (provider
    # settings reach the provider as JSON text).
    assert (provider.inputs["enableSecretMutable"], provider.inputs["enableConfigMapMutable"]) == ("true", "true")
    assert provider.inputs["kubeconfig"] == "[secret]" or type(provider.inputs["kubeconfig"]).__name__ == "Secret"


def test_an_existing_clusters_provider_is_built_from_the_secret_kubeconfig(existing_stack: Rendering) -> None:
    provider = existing_stack.one("pulumi:providers:kubernetes")
    assert provider.depends_on == []
    assert type(provider.inputs["kubeconfig"]).__name__ == "Secret"
    assert provider.inputs["kubeconfig"].value == secret_placeholder("kubeconfig")
    assert (
        provider.inputs["clusterIdentifier"]
        == settings_of(existing_stack.config, existing_stack.stack).cluster_identifier
    )
    assert (provider.inputs["enableSecretMutable"], provider.inputs["enableConfigMapMutable"]) == ("true", "true")


def test_a_new_kubeconfig_of_the_same_cluster_updates_the_provider_and_replaces_nothing(
    existing_stack: Rendering,
) -> None:
    rotated = run_fixture(existing_stack.stack, {f"{PROJECT}:kubeconfig": "apiVersion: v1\nkind: Config  # rotated"})
    steps = plan(existing_stack, rotated)
    assert steps.step("pulumi:providers:kubernetes", f"{existing_stack.stack}-kubernetes").op == "update"
    assert [step for step in steps.steps if step.op == "replace"] == []
    renamed = run_fixture(
        existing_stack.stack,
        {f"{PROJECT}:kubernetes": json.dumps({**raw_kubernetes(existing_stack), "clusterIdentifier": "moved"})},
    )
    assert (
        plan(existing_stack, renamed).step("pulumi:providers:kubernetes", f"{existing_stack.stack}-kubernetes").op
        == "replace"
    )


def raw_kubernetes(stack: Rendering) -> dict[str, Any]:
    return dict(json.loads(stack.config[f"{PROJECT}:kubernetes"]))


def test_namespaces_come_before_everything_in_them(any_stack: Rendering) -> None:
    namespaces = {ns.metadata["name"]: ns for ns in any_stack.kubernetes_objects() if ns.kind == "Namespace"}
    for release in any_stack.helm_releases():
        assert any_stack.depends_on(release, namespaces[release.inputs["namespace"]]), release.name


def test_helm_releases_have_explicit_names_and_pinned_versions(any_stack: Rendering) -> None:
    for release in any_stack.helm_releases():
        assert release.inputs["name"] == release.name
        assert release.inputs["version"].count(".") == 2
        assert release.inputs["repositoryOpts"]["repo"].startswith("https://")


@requires_charts
def test_an_atomic_release_has_no_pre_delete_hook_that_its_rollback_would_run(any_stack: Rendering) -> None:
    """Rolling back a failed install uninstalls the release, which runs its pre-delete hooks."""
    hooked = {o.resource.urn for o in cluster(any_stack).applied() if o.resource and "pre-delete" in o.hooks}
    atomic = {release.urn for release in any_stack.helm_releases() if release.inputs.get("atomic")}
    if settings_of(any_stack.config, any_stack.stack).storage.longhorn:
        assert hooked, "Longhorn's chart has a pre-delete hook: the model must see it"
    assert atomic and not atomic & hooked


def test_components_follow_the_design_table(any_stack: Rendering) -> None:
    config = settings_of(any_stack.config, any_stack.stack)
    components = {r.type for r in any_stack.resources if not r.custom}
    expected = {"thanos-multi-cluster:namespaces:Namespaces", "thanos-multi-cluster:ingress:Traefik"}
    expected |= {"thanos-multi-cluster:minikube:MinikubeNode"} if config.on_minikube else set()
    expected |= {"thanos-multi-cluster:storage:Longhorn"} if config.storage.longhorn else set()
    assert expected <= components
    assert ("thanos-multi-cluster:minikube:MinikubeNode" in components) is config.on_minikube
    assert ("thanos-multi-cluster:storage:Longhorn" in components) is config.storage.longhorn


def test_children_of_components_are_parented_to_them(any_stack: Rendering) -> None:
    for resource in any_stack.resources:
        if resource.custom and resource.type != "pulumi:providers:kubernetes":
            assert resource.parent_urn, f"{resource.type} {resource.name} is not inside a component"


def test_stack_outputs_keep_secrets_secret(any_stack: Rendering) -> None:
    from tools.engine import Secret

    for key in ("kubeconfig", "longhornUiPassword", "grafanaAdminPassword", "opensearchAdminPassword"):
        if key in any_stack.outputs:
            assert isinstance(any_stack.outputs[key], Secret), key
    assert "kubeconfig" in any_stack.outputs


def test_committed_stack_files_hold_no_secrets() -> None:
    files = committed_stack_files()
    assert sorted(files) == sorted(path.name for path in ROOT.glob("Pulumi.*.yaml") if path.name != "Pulumi.yaml")
    for name, text in files.items():
        assert "secure:" not in text, f"{name} holds an encrypted secret: set it in CI instead"
        config = (yaml.safe_load(text) or {}).get("config") or {}
        for secret in SECRET_KEYS:
            assert f"{PROJECT}:{secret.key}" not in config, f"{name} commits {secret.key}"


def test_committed_stacks_say_who_signed_the_object_stores_certificate() -> None:
    """Each committed stack states its choice; a stack that leaves its CA to the operator is refused,
    naming the key, until the operator sets it (README, Quick start)."""
    for name, text in committed_stack_files().items():
        s3 = yaml.safe_load(text)["config"][f"{PROJECT}:s3"]
        assert "publicCa" in s3 or "caCertificate" in s3, f"{name} does not say who signed MinIO's certificate"
        stack = name.removeprefix("Pulumi.").removesuffix(".yaml")
        if not s3.get("caCertificate") and not s3.get("publicCa"):
            with pytest.raises(SettingsError, match=r"^invalid stack config: thanos-multi-cluster:s3.caCertificate is"):
                run_stack(stack)
            assert committed(stack).outputs["objectStore"]["caCertificate"], "with the operator's CA it renders"


def test_every_child_waits_for_what_its_component_waits_for(any_stack: Rendering) -> None:
    """The SDK holds a child back only for its own dependencies: a component's `depends_on` must be
    passed on, or its children race what the component was told to wait for."""
    for component in (r for r in any_stack.resources if not r.custom and r.depends_on):
        for child in (r for r in any_stack.resources if r.parent_urn == component.urn):
            for dependency in component.depends_on:
                assert any_stack.depends_on(child, any_stack.by_urn(dependency)), (child.name, dependency)


def test_only_stateful_children_are_protected(any_stack: Rendering) -> None:
    settings = settings_of(any_stack.config, any_stack.stack)
    protected = {r.name for r in any_stack.resources if r.custom and r.protect}
    stateful = {"kube-prometheus-stack", "opensearch"}
    stateful |= {f"{any_stack.stack}-minikube"} if settings.on_minikube else set()
    stateful |= {"longhorn"} if settings.storage.longhorn else set()
    if settings.is_central:
        buckets = settings.s3.buckets
        stateful |= {buckets.thanos, buckets.opensearch, buckets.longhorn}
        # The platform CA: every browser and client trusts it; a new one would have to be trusted anew.
        stateful |= {f"{any_stack.stack}-platform-ca-ca-key", f"{any_stack.stack}-platform-ca-ca"}
        # The StoreAPI client CA: a new one locks Query out of every edge until the edge's next `up`.
        client_ca = f"{any_stack.stack}-platform-ca-storeapi-client-ca"
        stateful |= {f"{client_ca}-key", client_ca}
    assert protected == stateful


@pytest.mark.parametrize("stack", STACKS)
def test_the_outputs_are_what_verify_reads(stack: str) -> None:
    """`python -m tools.verify` takes URLs, credentials and expectations from the stack outputs."""
    rendering = rendered(stack)
    central = rendered(central_of(stack))
    real = materialize(central).real({key: unwrap(value) for key, value in rendering.outputs.items()})
    outputs = parse(real)
    assert outputs.problems == []
    assert outputs.cluster_name == stack
    config = settings_of(rendering.config, stack)
    if config.is_central:
        assert outputs.clusters == [stack, *(edge.name for edge in config.edges)]
        assert outputs.verifier is not None
    assert outputs.object_store is not None and outputs.object_store.endpoint == config.s3.endpoint
    assert outputs.ingress_address == config.ip, "where Traefik serves every UI name: verify needs no DNS"
    assert outputs.longhorn is config.storage.longhorn
    assert outputs.storage_class == (config.storage.class_name or "longhorn")
    urls = (outputs.grafana_url, outputs.opensearch_url, *([outputs.longhorn_url] if outputs.longhorn else []))
    assert all(url is not None and url.startswith("https://") for url in urls)
    assert (outputs.longhorn_url is None) is not config.storage.longhorn
