"""The validators `render --check` and the tests share: each module has `NAME` and
`validate(rendering) -> list[Finding]`.

- `kubernetes_schema`: every object (ours and the charts') against the Kubernetes schema, strict;
- `crds`: custom resources against their CRD in the reference material;
- `helm_values`: Helm values keys against the pinned chart's defaults;
- `thanos_flags`: Thanos container arguments against the component's flag list;
- `prometheus_rules`: PrometheusRules through `promtool check rules`;
- `secret_leaks`: secrets that lost their Pulumi secret marking;
- `capacity`: requests and limits against the node (also renders the capacity report);
- `host_ports`: no two host-network listeners share a port, none takes one the node uses;
- `pod_security`: every pod passes its namespace's Pod Security level, and that level is the strictest it
  can be, judged by upstream's evaluator (`tools.podsecurity`);
- `network_flows`: the NetworkPolicies allow every flow the platform needs and none it must not have;
- `transport_security`: every Ingress over TLS with a certificate for its host, no client with
  verification off, the exposed StoreAPI requiring client certificates;
- `policy_pack`: the policy pack (`policy/`) as `pulumi preview --policy-pack policy` runs it.

The modules are imported when `validators()` is first asked for, not with the package: the checks
of the whole cluster (`tools.cluster`) use the helpers in `common`, so an eager import would be a cycle.

A module with `NEEDS_REFERENCE = True` compares with the pinned upstream material (chart defaults,
CRDs, Thanos flags) or needs the charts rendered (chart packages and helm): without those it is
skipped, never run on half the objects (`missing_prerequisite` says why). A module that needs more
(a program of its own, such as the Pod Security evaluator built with Go) has `prerequisite() -> str |
None`, why it cannot run here; it is asked only when the reference material is there. `skipped()`
gathers both: every validator that cannot run here, with the reason; `runnable()` is the others.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from tools.engine import Rendering
from tools.validators.common import Finding, reference_dir

Validator = Callable[[Rendering], list[Finding]]

MODULES = (
    "kubernetes_schema",
    "crds",
    "helm_values",
    "thanos_flags",
    "prometheus_rules",
    "secret_leaks",
    "capacity",
    "host_ports",
    "pod_security",
    "network_flows",
    "transport_security",
    "policy_pack",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"tools.validators.{module}") for module in MODULES]


@functools.cache
def validators() -> dict[str, Validator]:
    """Validator name -> function, in the order `render --check` runs them."""
    return {module.NAME: module.validate for module in _modules()}


def needs_reference() -> frozenset[str]:
    """The validators that need the reference material and helm."""
    return frozenset(module.NAME for module in _modules() if getattr(module, "NEEDS_REFERENCE", False))


def missing_prerequisite() -> str | None:
    """Why the reference-dependent validators cannot run here (no material, no helm), or None."""
    from tools import helm, reference

    missing = reference.reference_missing()
    if missing:
        return missing
    return helm.INSTALL_HINT if helm.helm_binary() is None else None


def skipped() -> dict[str, str]:
    """Validator name -> why it cannot run here, for each that cannot (in `MODULES` order): the
    reference material or helm missing (`missing_prerequisite`), else the module's own `prerequisite()`."""
    missing = missing_prerequisite()
    reasons: dict[str, str] = {}
    for module in _modules():
        if getattr(module, "NEEDS_REFERENCE", False) and missing is not None:
            reasons[module.NAME] = missing
        elif (prerequisite := getattr(module, "prerequisite", None)) is not None and (why := prerequisite()):
            reasons[module.NAME] = why
    return reasons


def skipped_by_reason() -> dict[str, list[str]]:
    """Reason -> the validators skipped for it: one `skipped <names>: <reason>` line each."""
    names: dict[str, list[str]] = {}
    for name, reason in skipped().items():
        names.setdefault(reason, []).append(name)
    return {reason: sorted(group) for reason, group in names.items()}


def runnable() -> dict[str, Validator]:
    """The validators that can run here: those `skipped()` does not name."""
    cannot = skipped()
    return {name: validate for name, validate in validators().items() if name not in cannot}


def prepare(rendering: Rendering) -> None:
    """Build the cluster model (`tools.cluster`) while the reference CRDs load in another thread:
    the model spends most of its time waiting for `helm template`. Only when the material is here."""
    from tools.cluster import cluster
    from tools.validators import schemas

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(schemas.preload)  # an error is met again, and reported, by the validator that loads it
        cluster(rendering)


def run_all(rendering: Rendering) -> list[Finding]:
    """The findings of every validator that can run here, for one rendering, in a stable order.

    The validators only read the rendering and the cluster model, which is built first (each would
    otherwise render the charts itself): they run in threads, so that those waiting on a program
    of their own (network-config-analyzer, the Pod Security evaluator, promtool) overlap the others.
    Their findings are gathered in `MODULES` order, each validator's sorted."""
    from tools.cluster import cluster

    if missing_prerequisite() is None:
        prepare(rendering)
    else:
        cluster(rendering)
    validate_all = list(runnable().values())
    with ThreadPoolExecutor(max_workers=max(len(validate_all), 1)) as pool:
        results = [pool.submit(validate, rendering) for validate in validate_all]
        return [finding for result in results for finding in sorted(set(result.result()))]


__all__ = [
    "MODULES",
    "Finding",
    "Validator",
    "missing_prerequisite",
    "needs_reference",
    "prepare",
    "reference_dir",
    "run_all",
    "runnable",
    "skipped",
    "skipped_by_reason",
    "validators",
]
