"""The policy pack: passes on all three real stacks, reports on deliberately broken records."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components import kube
from components.settings import PROJECT, SECRET_KEYS
from policy.guardrails import POLICIES, SECRET_CONFIG_ANNOTATION, SECRET_CONFIG_KEYS
from tests.conftest import CENTRAL_STACK, STACKS, rendered, run_fixture
from tools.engine import Rendering, Resource
from tools.validators import policy_pack


def violations(resources: list[Resource], only: str | None = None) -> list[str]:
    """The messages of every policy (or the one named) over the records."""
    return [violation.message for violation in policy_pack.violations(resources, only)]


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


def make_lb(inputs: dict[str, Any]) -> None:
    inputs["values"]["service"] = {"enabled": True, "spec": {"type": "LoadBalancer"}}


def test_a_load_balancer_on_minikube_is_reported(central: Rendering) -> None:
    resources = broken(central, "kubernetes:helm.sh/v3:Release", make_lb, "traefik")
    assert violations(resources, "no-load-balancers-on-minikube") == ["Helm value service.spec.type = LoadBalancer"]


def test_an_existing_cluster_may_ask_for_a_load_balancer(existing_central: Rendering) -> None:
    resources = broken(existing_central, "kubernetes:helm.sh/v3:Release", make_lb, "traefik")
    assert violations(resources, "no-load-balancers-on-minikube") == []
    assert [r for r in resources if r.type == "thanos-multi-cluster:minikube:MinikubeNode"] == []


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


def test_secrets_fed_from_secret_config_pass_as_the_readme_configures_them() -> None:
    """Alerting with its secret URL and a rotated OpenSearch admin password (README, "Alerts" and
    "Rotate the OpenSearch admin password"): data no resource produces, named by its annotation."""
    configured = run_fixture(
        CENTRAL_STACK,
        {
            f"{PROJECT}:alerting": json.dumps({"webhook": {"egress": [{"cidr": "203.0.113.10/32", "port": 443}]}}),
            f"{PROJECT}:alertWebhookUrl": "https://chat.example.org/hooks/T0KEN",
            f"{PROJECT}:opensearchAdminPassword": "Rotated-adm1n.pass",
        },
    )
    assert violations(configured.resources) == []
    annotations = {
        r.metadata["name"]: r.metadata.get("annotations", {}).get(SECRET_CONFIG_ANNOTATION)
        for r in configured.kubernetes_objects()
        if r.kind == "Secret" and r.metadata.get("annotations", {}).get(SECRET_CONFIG_ANNOTATION)
    }
    assert annotations == {
        "alertmanager-receivers": "alertWebhookUrl",
        "opensearch-internal-users": "opensearchAdminPassword",
    }


def test_a_secret_naming_what_is_no_secret_config_is_reported(central: Rendering) -> None:
    resources = copy.deepcopy(central.resources)
    secret = next(r for r in resources if r.kind == "Secret")
    secret.property_dependencies = {}
    secret.inputs["metadata"]["annotations"] = {SECRET_CONFIG_ANNOTATION: "opensearchAdminPassword,domain"}
    assert violations(resources, "secrets-not-from-plain-config") == [
        f"Secret {secret.name!r} names ['domain'], which are no secret config"
    ]


def test_the_pack_knows_the_projects_secret_config_keys() -> None:
    assert {secret.key for secret in SECRET_KEYS} == SECRET_CONFIG_KEYS
    assert kube.SECRET_CONFIG_ANNOTATION == SECRET_CONFIG_ANNOTATION


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
