"""The invariants of thanos-multi-cluster as Pulumi policies.

Each rule is a plain function over resource types and inputs (camelCase, as the engine sends
them), so the same rule runs under `pulumi preview --policy-pack policy` and in the unit tests
over the offline engine's records. The `POLICIES` list wraps them for pulumi-policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHARTS = ("kubernetes:helm.sh/v3:Chart", "kubernetes:helm.sh/v4:Chart")
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ROLES = ("kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
BINDINGS = (
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
)
POD_TEMPLATES = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
SECRET_CONFIG_ANNOTATION = "thanos-multi-cluster/from-secret-config"
"""`components/kube.py`'s annotation of a Secret fed from secret config (the pack has no project imports)."""
SECRET_CONFIG_KEYS = frozenset(
    {
        "sshPrivateKey",
        "sshPrivateKeyPassword",
        "minioAdminUser",
        "minioAdminPassword",
        "platformCaKey",
        "opensearchAdminPassword",
        "alertWebhookUrl",
        "alertSmtpPassword",
        "kubeconfig",
    }
)
"""`components/settings.py`'s SECRET_KEYS (a test keeps the two equal)."""


@dataclass(frozen=True)
class Resource:
    """What a stack rule needs of one resource (built from pulumi-policy's PolicyResource)."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    property_dependencies: Mapping[str, list[str]]


# --- helpers -----------------------------------------------------------------------------


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_TEMPLATES.get(resource_type)
    spec = _dig(props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def _namespace(props: Mapping[str, Any]) -> str | None:
    namespace = _dig(props, "metadata", "namespace")
    return namespace if isinstance(namespace, str) else None


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


# --- resource rules ----------------------------------------------------------------------


def unsized_containers(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every container of a workload has CPU and memory requests and a memory limit."""
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    problems = []
    for container in _containers(spec):
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        missing = [f"requests.{key}" for key in ("cpu", "memory") if key not in requests]
        missing += ["limits.memory"] if "memory" not in limits else []
        if missing:
            problems.append(f"container {container.get('name')!r} has no {', '.join(missing)}")
    return problems


def unpinned_charts(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Helm charts are installed at an exact version, so an upgrade is a reviewed change."""
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return []
    version = props.get("version")
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        return [f"chart {props.get('chart')!r} is not pinned to an exact version (got {version!r})"]
    return []


MINIKUBE_NODE = "thanos-multi-cluster:minikube:MinikubeNode"
"""The component of a Minikube stack (the pack has no project imports)."""


def load_balancer_requests(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """What in one resource asks for a Service of type LoadBalancer."""
    if resource_type == SERVICE and _dig(props, "spec", "type") == "LoadBalancer":
        return ["Service of type LoadBalancer"]
    if resource_type == HELM_RELEASE:
        return [
            f"Helm value {path} = LoadBalancer"
            for path, value in _walk(props.get("values") or {})
            if path.endswith("type") and value == "LoadBalancer"
        ]
    return []


def load_balancers_on_minikube(resources: list[Resource]) -> list[tuple[str, str]]:
    """No LoadBalancer on a Minikube node: it has none, so the Service would stay pending (an existing
    cluster's stack asks for one with `ingress.serviceType`)."""
    if not any(resource.type == MINIKUBE_NODE for resource in resources):
        return []
    return [
        (resource.urn, problem)
        for resource in resources
        for problem in load_balancer_requests(resource.type, resource.props)
    ]


def _maps(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping inside `value`, with its path."""
    if isinstance(value, Mapping):
        yield path, value
        for key, item in value.items():
            yield from _maps(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _maps(item, f"{path}[{index}]")


def _tls_hosts(tls: Any) -> set[str]:
    return {host for entry in tls or [] if isinstance(entry, Mapping) for host in entry.get("hosts") or []}


def _chart_ingress_hosts(ingress: Mapping[str, Any]) -> list[str]:
    """The hosts of a chart's `ingress` values: `hosts: [name]`, `hosts: [{host: name}]` or `host: name`."""
    hosts = [h if isinstance(h, str) else h.get("host") for h in ingress.get("hosts") or [] if h]
    return [h for h in [*hosts, ingress.get("host")] if isinstance(h, str) and h]


def plaintext_ingress(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every Ingress, ours or a chart's, serves each of its hosts over TLS (a `tls` entry per host)."""
    if resource_type == INGRESS:
        hosts = [rule.get("host") for rule in _dig(props, "spec", "rules") or [] if isinstance(rule, Mapping)]
        covered = _tls_hosts(_dig(props, "spec", "tls"))
        return [f"Ingress host {host!r} has no tls entry: plain HTTP" for host in hosts if host not in covered]
    if resource_type != HELM_RELEASE:
        return []
    problems = []
    for path, value in _maps(props.get("values") or {}):
        if not (path == "ingress" or path.endswith(".ingress")) or value.get("enabled") is not True:
            continue
        covered = _tls_hosts(value.get("tls")) if isinstance(value.get("tls"), list) else set()
        for host in _chart_ingress_hosts(value):
            if value.get("tls") is not True and host not in covered:
                problems.append(f"Helm value {path}: host {host!r} has no tls entry: plain HTTP")
    return problems


def wildcard_rbac(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Roles we create name their API groups, resources and verbs: no `*` anywhere."""
    if resource_type not in ROLES:
        return []
    return [
        f"rule {index} grants every {field[:-1]} ('*')"
        for index, rule in enumerate(props.get("rules") or [])
        for field in ("apiGroups", "resources", "verbs")
        if "*" in (rule.get(field) or [])
    ]


def _pod_or_container(spec: Mapping[str, Any], container: Mapping[str, Any], *path: str) -> Any:
    value = _dig(container.get("securityContext") or {}, *path)
    return value if value is not None else _dig(spec.get("securityContext") or {}, *path)


def unrestricted_containers(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Our workloads run at the Pod Security `restricted` level, with a read-only root filesystem."""
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    problems = []
    for container in _containers(spec):
        context = container.get("securityContext") or {}
        missing = [
            setting
            for setting, ok in (
                ("allowPrivilegeEscalation: false", context.get("allowPrivilegeEscalation") is False),
                ("readOnlyRootFilesystem: true", context.get("readOnlyRootFilesystem") is True),
                ("capabilities.drop: [ALL]", "ALL" in (_dig(context, "capabilities", "drop") or [])),
                ("runAsNonRoot: true", _pod_or_container(spec, container, "runAsNonRoot") is True),
                (
                    "seccompProfile RuntimeDefault",
                    _pod_or_container(spec, container, "seccompProfile", "type") == "RuntimeDefault",
                ),
            )
            if not ok
        ]
        if missing:
            problems.append(f"container {container.get('name')!r} lacks {', '.join(missing)}")
    return problems


# --- stack rules -------------------------------------------------------------------------


def _service_accounts_with_api_access(resources: Iterable[Resource]) -> set[tuple[str | None, str]]:
    bound = set()
    for resource in resources:
        if resource.type in BINDINGS:
            for subject in resource.props.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount":
                    bound.add((subject.get("namespace"), subject.get("name")))
    return bound


def mounted_tokens(resources: list[Resource]) -> list[tuple[str, str]]:
    """A workload whose ServiceAccount has no (Cluster)RoleBinding must not mount an API token."""
    bound = _service_accounts_with_api_access(resources)
    account_automount = {
        (_namespace(r.props), _dig(r.props, "metadata", "name")): r.props.get("automountServiceAccountToken")
        for r in resources
        if r.type == SERVICE_ACCOUNT
    }
    violations = []
    for resource in resources:
        spec = pod_spec(resource.type, resource.props)
        if spec is None:
            continue
        account = (_namespace(resource.props), spec.get("serviceAccountName") or "default")
        if account in bound:
            continue
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account_automount.get(account)
        if automount is not False:
            violations.append(
                (
                    resource.urn,
                    f"{resource.name}: ServiceAccount {account[1]!r} has no API access; "
                    "set automountServiceAccountToken: false",
                )
            )
    return violations


def _is_default_deny(props: Mapping[str, Any]) -> bool:
    spec = props.get("spec") or {}
    return (
        not (spec.get("podSelector") or {})
        and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def namespaces_without_default_deny(resources: list[Resource]) -> list[tuple[str, str]]:
    """Every namespace the program creates has a default-deny policy for ingress and egress."""
    denied = {_namespace(r.props) for r in resources if r.type == NETWORK_POLICY and _is_default_deny(r.props)}
    return [
        (r.urn, f"namespace {_dig(r.props, 'metadata', 'name')!r} has no default-deny NetworkPolicy")
        for r in resources
        if r.type == NAMESPACE and _dig(r.props, "metadata", "name") not in denied
    ]


def secrets_from_plain_config(resources: list[Resource]) -> list[tuple[str, str]]:
    """A Kubernetes Secret's data comes from resources (generated passwords, object-store users,
    StackReferences) or from secret config, never from literals: plain config cannot end up in one.

    An analyzer sees secrets unwrapped, so data from `pulumi config set --secret`, which no resource
    produces, looks like a literal: such a Secret names its keys in `SECRET_CONFIG_ANNOTATION`, and
    only the project's secret config keys are accepted there."""
    violations = []
    for resource in resources:
        if resource.type != SECRET:
            continue
        sources = [key for key in ("data", "stringData") if resource.props.get(key)]
        if not sources or any(resource.property_dependencies.get(key) for key in sources):
            continue
        declared = str(_dig(resource.props, "metadata", "annotations", SECRET_CONFIG_ANNOTATION) or "")
        keys = {key.strip() for key in declared.split(",") if key.strip()}
        unknown = sorted(keys - SECRET_CONFIG_KEYS)
        if not keys:
            violations.append(
                (resource.urn, f"Secret {resource.name!r} holds only literal values, not generated or referenced ones")
            )
        elif unknown:
            violations.append((resource.urn, f"Secret {resource.name!r} names {unknown}, which are no secret config"))
    return violations


# --- pulumi-policy wrappers --------------------------------------------------------------

RESOURCE_RULES = {
    "containers-have-requests-and-memory-limits": unsized_containers,
    "helm-charts-are-pinned": unpinned_charts,
    "no-wildcard-rbac": wildcard_rbac,
    "restricted-security-context": unrestricted_containers,
    "no-plaintext-ingress": plaintext_ingress,
}
STACK_RULES = {
    "no-load-balancers-on-minikube": load_balancers_on_minikube,
    "no-api-token-without-api-access": mounted_tokens,
    "owned-namespaces-default-deny": namespaces_without_default_deny,
    "secrets-not-from-plain-config": secrets_from_plain_config,
}


def from_policy_resource(resource: PolicyResource) -> Resource:
    return Resource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=resource.props,
        property_dependencies={key: [dep.urn for dep in deps] for key, deps in resource.property_dependencies.items()},
    )


def _resource_policy(name: str) -> ResourceValidationPolicy:
    rule = RESOURCE_RULES[name]

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for problem in rule(args.resource_type, args.props):
            report_violation(problem, None)

    return ResourceValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _stack_policy(name: str) -> StackValidationPolicy:
    rule = STACK_RULES[name]

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, problem in rule([from_policy_resource(r) for r in args.resources]):
            report_violation(problem, urn)

    return StackValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


POLICIES = [_resource_policy(name) for name in RESOURCE_RULES] + [_stack_policy(name) for name in STACK_RULES]
