"""The policy pack (`policy/`), run over a rendering the way `pulumi preview --policy-pack policy` runs it.

The pack's policies are pulumi-policy objects; here they are called with the offline engine's records
presented as pulumi-policy presents the engine's: each resource's inputs with secrets unwrapped (an
analyzer sees them so) and its property dependencies. A finding is `policy-pack: <resource>:
<policy>: <message>`; `summary` is the one line `render --check` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
from tools.engine import Rendering, Resource, unwrap
from tools.validators.common import Finding, describe

NAME = "policy-pack"


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str | None
    message: str


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


def violations(resources: list[Resource], only: str | None = None) -> list[Violation]:
    """Every policy of the pack (or the one named) over the records."""
    found: list[Violation] = []
    records = policy_resources(resources)
    for policy in POLICIES:
        if only and policy.name != only:
            continue
        found += _run(policy, records)
    return found


def _reporting_on(urn: str, report: Callable[[str, str | None], None]) -> Callable[[str, str | None], None]:
    """A resource policy's reporter: its violations are the resource's unless they name another."""

    def reporter(message: str, other: str | None = None) -> None:
        report(message, other or urn)

    return reporter


def _run(policy: ResourceValidationPolicy | StackValidationPolicy, records: list[PolicyResource]) -> list[Violation]:
    found: list[Violation] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(policy.name, urn, message))

    if isinstance(policy, ResourceValidationPolicy):
        checks = policy.validate if isinstance(policy.validate, list) else [policy.validate]
        for record in records:
            args = ResourceValidationArgs(
                record.resource_type, record.props, record.urn, record.name, record.opts, None
            )
            for check in checks:
                if check is not None:
                    check(args, _reporting_on(record.urn, report))
    elif policy.validate is not None:
        policy.validate(StackValidationArgs(records), report)
    return found


def validate(rendering: Rendering) -> list[Finding]:
    by_urn = {resource.urn: resource for resource in rendering.resources}
    return [
        Finding(NAME, describe(by_urn[v.urn]) if v.urn in by_urn else "stack", f"{v.policy}: {v.message}")
        for v in violations(rendering.resources)
    ]


def summary(findings: list[Finding]) -> str:
    """`policy pack: N policies ran, M violated`, from the findings of a run that included this validator."""
    violated = {finding.message.split(":", 1)[0] for finding in findings if finding.validator == NAME}
    return f"policy pack: {len(POLICIES)} policies ran, {len(violated)} violated"
