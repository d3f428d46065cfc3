"""The policy pack: passes on all three real stacks, reports on deliberately broken records."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.guardrails import POLICIES
from tests.conftest import STACKS, rendered
from tools.engine import Rendering, Resource, unwrap


def _options(resource: Resource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=resource.ignore_changes,
        delete_before_replace=resource.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=resource.additional_secret_outputs,
        parent=resource.parent_urn,
    )


def policy_resources(resources: list[Resource]) -> list[PolicyResource]:
    """The engine's records as pulumi-policy presents them (secrets unwrapped, as analyzers see them)."""
    by_urn: dict[str, PolicyResource] = {}
    for resource in resources:
        by_urn[resource.urn] = PolicyResource(
            resource_type=resource.type,
            props=unwrap(resource.inputs),
            urn=resource.urn,
            name=resource.name,
            opts=_options(resource),
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for resource in resources:
        by_urn[resource.urn].property_dependencies = {
            key: [by_urn[urn] for urn in urns if urn in by_urn] for key, urns in resource.property_dependencies.items()
        }
    return list(by_urn.values())


def violations(resources: list[Resource], only: str | None = None) -> list[str]:
    """Run every policy (or the one named) over the records; return the reported messages."""
    reported: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append(message)

    records = policy_resources(resources)
    for policy in POLICIES:
        if only and policy.name != only:
            continue
        if isinstance(policy, ResourceValidationPolicy):
            for record in records:
                args = ResourceValidationArgs(
                    record.resource_type, record.props, record.urn, record.name, record.opts, None
                )
                for validate in policy.validate if isinstance(policy.validate, list) else [policy.validate]:
                    assert validate is not None
                    validate(args, report)
        elif isinstance(policy, StackValidationPolicy):
            assert policy.validate is not None
            policy.validate(StackValidationArgs(records), report)
    return reported


def broken(stack: Rendering, type_: str, mutate: Any, name: str | None = None) -> list[Resource]:
    """A copy of the stack's records with one resource of `type_` changed by `mutate(inputs)`."""
    resources = copy.deepcopy(stack.resources)
    target = next(r for r in resources if r.type == type_ and (name is None or r.name == name))
    mutate(target.inputs)
    return resources


def test_policy_names_are_unique() -> None:
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names)) == 9


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_stacks_pass_every_policy(stack: str) -> None:
    assert violations(rendered(stack).resources) == []


def test_an_unpinned_chart_is_reported(central: Rendering) -> None:
    resources = broken(central, "kubernetes:helm.sh/v3:Release", lambda i: i.update(version="^41.3"), "traefik")
    assert any("not pinned" in v for v in violations(resources, "helm-charts-are-pinned"))


def test_a_load_balancer_is_reported(central: Rendering) -> None:
    def make_lb(inputs: dict[str, Any]) -> None:
        inputs["values"]["service"] = {"enabled": True, "spec": {"type": "LoadBalancer"}}

    resources = broken(central, "kubernetes:helm.sh/v3:Release", make_lb, "traefik")
    assert violations(resources, "no-load-balancers") == ["Helm value service.spec.type = LoadBalancer"]


def test_an_ingress_without_tls_is_reported(central: Rendering) -> None:
    resources = broken(
        central, "kubernetes:networking.k8s.io/v1:Ingress", lambda i: i["spec"].pop("tls"), "thanos-query-frontend"
    )
    host = next(r for r in resources if r.name == "thanos-query-frontend" and r.kind == "Ingress")
    (rule,) = host.inputs["spec"]["rules"]
    assert violations(resources, "no-plaintext-ingress") == [
        f"Ingress host {rule['host']!r} has no tls entry: plain HTTP"
    ]


def test_a_chart_ingress_without_tls_is_reported(central: Rendering) -> None:
    resources = broken(
        central,
        "kubernetes:helm.sh/v3:Release",
        lambda i: i["values"]["grafana"]["ingress"].pop("tls"),
        "kube-prometheus-stack",
    )
    (problem,) = violations(resources, "no-plaintext-ingress")
    assert problem.startswith("Helm value grafana.ingress: host 'grafana.") and problem.endswith("plain HTTP")


def test_a_namespace_without_default_deny_is_reported(central: Rendering) -> None:
    resources = [
        r
        for r in copy.deepcopy(central.resources)
        if not (r.kind == "NetworkPolicy" and r.metadata.get("namespace") == "logging")
    ]
    assert violations(resources, "owned-namespaces-default-deny") == [
        "namespace 'logging' has no default-deny NetworkPolicy"
    ]


def test_a_secret_of_literal_values_is_reported(central: Rendering) -> None:
    resources = copy.deepcopy(central.resources)
    secret = next(r for r in resources if r.kind == "Secret")
    secret.property_dependencies = {}
    assert violations(resources, "secrets-not-from-plain-config") == [
        f"Secret {secret.name!r} holds only literal values, not generated or referenced ones"
    ]


def _workload(name: str, automount: bool | None, resources: dict[str, Any] | None) -> Resource:
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "containers": [{"name": "app", "image": "x", "resources": resources or {}}],
    }
    if automount is not None:
        pod["automountServiceAccountToken"] = automount
    return Resource(
        type="kubernetes:apps/v1:Deployment",
        name=name,
        urn=f"urn:pulumi:test::p::kubernetes:apps/v1:Deployment::{name}",
        custom=True,
        parent_urn=None,
        provider=None,
        depends_on=[],
        inputs={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "monitoring"},
            "spec": {"template": {"spec": pod}},
        },
    )


SIZED = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}


def test_a_token_mounted_without_api_access_is_reported() -> None:
    assert violations([_workload("thanos-query", None, SIZED)], "no-api-token-without-api-access")
    assert violations([_workload("thanos-query", False, SIZED)], "no-api-token-without-api-access") == []


def test_an_unsized_container_is_reported() -> None:
    reported = violations(
        [_workload("app", False, {"requests": {"cpu": "10m"}})], "containers-have-requests-and-memory-limits"
    )
    assert reported == ["container 'app' has no requests.memory, limits.memory"]


def test_a_wildcard_role_is_reported() -> None:
    role = Resource(
        type="kubernetes:rbac.authorization.k8s.io/v1:Role",
        name="too-much",
        urn="urn:pulumi:test::p::kubernetes:rbac.authorization.k8s.io/v1:Role::too-much",
        custom=True,
        parent_urn=None,
        provider=None,
        depends_on=[],
        inputs={"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]},
    )
    assert violations([role], "no-wildcard-rbac") == ["rule 0 grants every verb ('*')"]


def test_a_container_without_the_restricted_profile_is_reported(central: Rendering) -> None:
    def loosen(inputs: dict[str, Any]) -> None:
        container = inputs["spec"]["template"]["spec"]["containers"][0]
        container["securityContext"]["readOnlyRootFilesystem"] = False
        container["securityContext"].pop("seccompProfile")
        inputs["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile")

    resources = broken(central, "kubernetes:apps/v1:Deployment", loosen)
    (message,) = violations(resources, "restricted-security-context")
    assert "readOnlyRootFilesystem: true" in message and "seccompProfile RuntimeDefault" in message
