"""The `pod-security` validator, through upstream's own evaluator (`tools.podsecurity`).

The verdicts are upstream's (`k8s.io/pod-security-admission`), so these tests do not restate its
checks: they pin what the validator does with them. Every stack's pods pass the level their
namespace enforces at its pinned version; a real pod of a restricted namespace broken one way is
reported with upstream's reason; a namespace enforcing less than its pods need is reported; and the
runner builds the evaluator once, caches it, and says why when it cannot (no Go, a failed build).

The pods come from the fixture stacks (`tests/conftest.py`); the tests that need the evaluator skip
with one reason where it cannot be had (no Go), so the rest still run on such a machine.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import namespaces, versions
from tests import synthetic
from tests.conftest import (
    CENTRAL_STACK,
    EDGE,
    HOST_PORT_STACKS,
    ROOT,
    STACKS,
    rendered,
    requires_charts,
    requires_evaluator,
)
from tools import podsecurity
from tools.cluster import cluster
from tools.engine import Rendering, Resource
from tools.podsecurity import Check, EvaluatorError, EvaluatorUnavailable
from tools.validators import Finding, pod_security

ENFORCE = "pod-security.kubernetes.io/enforce"


def messages(findings: list[Finding]) -> list[str]:
    return sorted(str(finding) for finding in findings)


# --- a real pod of a restricted namespace, broken one way at a time -------------------------


def restricted_workload(stack: Rendering) -> tuple[Resource, Resource]:
    """The first workload of ours in a namespace enforcing restricted, and that Namespace."""
    restricted = {name for name, level in namespaces.ENFORCED_LEVEL.items() if level == "restricted"}
    workload = min(
        (
            r
            for r in stack.kubernetes_objects()
            if r.kind in ("Deployment", "StatefulSet") and r.metadata.get("namespace") in restricted
        ),
        key=lambda r: r.urn,  # registration order varies between runs
    )
    namespace = next(
        r
        for r in stack.kubernetes_objects()
        if r.kind == "Namespace" and r.metadata.get("name") == workload.metadata["namespace"]
    )
    return copy.deepcopy(workload), copy.deepcopy(namespace)


def pod_spec(workload: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = workload.inputs["spec"]["template"]["spec"]
    return spec


def first_container(spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = spec["containers"][0]
    return container


def judged(
    change: Callable[[dict[str, Any]], None] | None = None, labels: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """The restricted workload with `change` made to its pod spec and `labels` replaced in its
    namespace's: where the findings are reported, and what they say."""
    workload, namespace = restricted_workload(rendered(CENTRAL_STACK))
    if change is not None:
        change(pod_spec(workload))
    namespace.inputs["metadata"]["labels"].update(labels or {})
    findings = pod_security.validate(synthetic.rendering(namespace, workload))
    where = cluster(synthetic.rendering(workload)).pods()[0].source.describe()
    return where, messages(findings)


def enforced(reason: str) -> str:
    """A finding on the restricted workload, as the validator words it."""
    workload, _ = restricted_workload(rendered(CENTRAL_STACK))
    where = cluster(synthetic.rendering(workload)).pods()[0].source.describe()
    return f"pod-security: {where}: namespace {workload.metadata['namespace']} enforces restricted: {reason}"


def pinned_version() -> str:
    """The Pod Security version the program pins on the restricted workload's namespace (`v1.36`)."""
    _, namespace = restricted_workload(rendered(CENTRAL_STACK))
    return str(namespace.inputs["metadata"]["labels"][f"{ENFORCE}-version"])


def container_name() -> str:
    workload, _ = restricted_workload(rendered(CENTRAL_STACK))
    return str(first_container(pod_spec(workload))["name"])


def set_privileged(spec: dict[str, Any]) -> None:
    first_container(spec)["securityContext"]["privileged"] = True


def add_host_path(spec: dict[str, Any]) -> None:
    spec.setdefault("volumes", []).append({"name": "host-logs", "hostPath": {"path": "/var/log"}})


def use_host_pid(spec: dict[str, Any]) -> None:
    spec["hostPID"] = True


def drop_seccomp(spec: dict[str, Any]) -> None:
    spec["securityContext"].pop("seccompProfile", None)
    for container in spec["containers"] + spec.get("initContainers", []):
        container.get("securityContext", {}).pop("seccompProfile", None)


def unconfine_seccomp(spec: dict[str, Any]) -> None:
    spec["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def run_as_root(spec: dict[str, Any]) -> None:
    spec["securityContext"]["runAsUser"] = 0


def add_net_admin(spec: dict[str, Any]) -> None:
    first_container(spec)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def allow_escalation(spec: dict[str, Any]) -> None:
    first_container(spec)["securityContext"].pop("allowPrivilegeEscalation")


def unsafe_sysctl(spec: dict[str, Any]) -> None:
    spec["securityContext"]["sysctls"] = [{"name": "kernel.msgmax", "value": "65536"}]


BREAKAGES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (set_privileged, 'privileged (container "{c}" must not set securityContext.privileged=true)'),
    # restricted's restrictedVolumes check replaces baseline's hostPathVolumes.
    (add_host_path, 'restricted volume types (volume "host-logs" uses restricted volume type "hostPath")'),
    (use_host_pid, "host namespaces (hostPID=true)"),
    (
        drop_seccomp,
        'seccompProfile (pod or container "{c}" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")',
    ),
    (unconfine_seccomp, 'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    (run_as_root, "runAsUser=0 (pod must not set runAsUser=0)"),
    (
        add_net_admin,
        'unrestricted capabilities (container "{c}" must not include "NET_ADMIN" in securityContext.capabilities.add)',
    ),
    (
        allow_escalation,
        'allowPrivilegeEscalation != false (container "{c}" must set securityContext.allowPrivilegeEscalation=false)',
    ),
    (unsafe_sysctl, "forbidden sysctls (kernel.msgmax)"),
]


@requires_evaluator
def test_the_unbroken_workload_passes() -> None:
    assert judged()[1] == []


@requires_evaluator
@pytest.mark.parametrize(("change", "reason"), BREAKAGES, ids=[change.__name__ for change, _ in BREAKAGES])
def test_a_pod_broken_one_way_is_reported_with_upstreams_reason(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    # One finding: the pod fails restricted, so the namespace is not "looser than needed" either.
    assert judged(change)[1] == [enforced(reason.format(c=container_name()))]


@requires_evaluator
def test_host_network_is_reported_with_the_host_ports_the_api_server_gives_its_ports() -> None:
    """With hostNetwork the API server makes every container port a host port before admission."""
    _, found = judged(lambda spec: spec.__setitem__("hostNetwork", True))
    assert enforced("host namespaces (hostNetwork=true)") in found
    host_ports = [message for message in found if ": hostPort (" in message]
    assert len(found) == 2 and len(host_ports) == 1
    assert f'hostPort (container "{container_name()}" uses hostPort' in host_ports[0]


@requires_evaluator
def test_the_level_is_enforced_at_the_version_the_namespace_pins() -> None:
    """`net.ipv4.tcp_rmem` is a safe sysctl from Pod Security v1.32 on."""

    def tcp_rmem(spec: dict[str, Any]) -> None:
        spec["securityContext"]["sysctls"] = [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]

    assert judged(tcp_rmem)[1] == []  # the program pins the cluster's version
    older = judged(tcp_rmem, {f"{ENFORCE}-version": "v1.31"})[1]
    assert older == [enforced("forbidden sysctls (net.ipv4.tcp_rmem)")]


@requires_evaluator
def test_what_restricted_refuses_baseline_admits_and_then_baseline_is_the_strictest() -> None:
    assert judged(run_as_root, {ENFORCE: "baseline"})[1] == []


@requires_evaluator
def test_a_namespace_enforcing_less_than_its_pods_need_is_reported() -> None:
    workload, _ = restricted_workload(rendered(CENTRAL_STACK))
    namespace = workload.metadata["namespace"]
    for looser in ("privileged", "baseline"):
        assert judged(labels={ENFORCE: looser})[1] == [
            f"pod-security: Namespace {namespace}: enforces {looser}, but every pod in it passes restricted: "
            "enforce restricted"
        ]
    # A root pod needs baseline: a privileged namespace of it is told baseline, not restricted.
    assert judged(run_as_root, {ENFORCE: "privileged"})[1] == [
        f"pod-security: Namespace {namespace}: enforces privileged, but every pod in it passes baseline: "
        "enforce baseline"
    ]


@requires_evaluator
def test_labels_upstream_cannot_parse_fail_closed_and_are_reported() -> None:
    workload, _ = restricted_workload(rendered(CENTRAL_STACK))
    where, found = judged(run_as_root, {ENFORCE: "Restricted"})
    assert found == sorted(
        [
            f"pod-security: {where}: namespace {workload.metadata['namespace']} enforces restricted: "
            "runAsUser=0 (pod must not set runAsUser=0)",
            f"pod-security: Namespace {workload.metadata['namespace']}: Pod Security labels not understood "
            f'(metadata.labels[{ENFORCE}]: Invalid value: "Restricted": must be one of privileged, baseline, '
            f"restricted): the API server enforces restricted:{pinned_version()}",
        ]
    )


@requires_evaluator
def test_a_pod_that_is_not_a_pod_spec_is_reported_not_judged() -> None:
    def unknown_port(spec: dict[str, Any]) -> None:
        first_container(spec)["ports"][0]["containerPort"] = "[unknown]"

    where, found = judged(unknown_port)
    assert len(found) == 1
    assert found[0].startswith(f"pod-security: {where}: not judged by Pod Security: podSpec: json: cannot unmarshal")


@requires_evaluator
def test_pods_of_namespaces_the_program_does_not_create_are_not_judged() -> None:
    privileged = synthetic.deployment("agent", [synthetic.container("agent", securityContext={"privileged": True})])
    privileged["metadata"]["namespace"] = "kube-system"
    assert pod_security.validate(synthetic.rendering(synthetic.kubernetes(privileged))) == []


# --- the real stacks -----------------------------------------------------------------------------


@requires_evaluator
@requires_charts
@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_of_a_stack_passes_its_namespaces_level_and_no_level_is_looser_than_needed(stack: str) -> None:
    assert messages(pod_security.validate(rendered(stack))) == []


@requires_evaluator
@requires_charts
@pytest.mark.parametrize("stack", HOST_PORT_STACKS)
def test_traefik_needs_a_privileged_namespace_for_its_host_ports_and_nothing_else(stack: str) -> None:
    """Baseline refuses any hostPort; without its two, Traefik's pod would pass restricted: it is on the
    pod network, non-root, without capabilities (so `ingress` stays privileged, for that reason only)."""
    model = cluster(rendered(stack))
    (traefik,) = [pod for pod in model.pods() if pod.namespace == namespaces.INGRESS]
    version = (model.namespace_labels(namespaces.INGRESS) or {})[f"{ENFORCE}-version"]
    host_ports = 'hostPort (container "traefik" uses hostPorts 443, 80)'
    assert pod_security.violations(traefik.template(), "baseline", version) == [host_ports]
    assert pod_security.violations(traefik.template(), "restricted", version) == [host_ports]
    without = copy.deepcopy(traefik.template())
    for container in without["spec"]["containers"]:
        for port in container.get("ports") or []:
            port.pop("hostPort", None)
    assert pod_security.violations(without, "restricted", version) == []
    assert namespaces.ENFORCED_LEVEL[namespaces.INGRESS] == "privileged"


@requires_evaluator
@requires_charts
@pytest.mark.parametrize("stack", [stack for stack in STACKS if stack not in HOST_PORT_STACKS])
def test_behind_a_service_traefik_passes_restricted_and_its_namespace_enforces_it(stack: str) -> None:
    model = cluster(rendered(stack))
    (traefik,) = [pod for pod in model.pods() if pod.namespace == namespaces.INGRESS]
    labels = model.namespace_labels(namespaces.INGRESS) or {}
    assert labels[ENFORCE] == "restricted"
    assert pod_security.violations(traefik.template(), "restricted", labels[f"{ENFORCE}-version"]) == []


@requires_evaluator
@requires_charts
def test_every_pod_of_a_rendering_is_judged_in_one_run_at_each_level(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[list[Check]] = []
    evaluate = podsecurity.evaluate

    def recorded(checks: list[Check], binary: Path | None = None) -> list[podsecurity.Verdict]:
        runs.append(list(checks))
        return evaluate(checks, binary)

    monkeypatch.setattr(podsecurity, "evaluate", recorded)
    stack = rendered(EDGE)
    pod_security.validate(stack)
    model = cluster(stack)
    owned = [pod for pod in model.pods() if model.namespace_labels(pod.namespace) is not None]
    assert len(runs) == 1
    assert len(runs[0]) == 3 * len(owned)  # as enforced, and at baseline and restricted
    assert {pod.namespace for pod in owned} >= {namespaces.MONITORING, namespaces.INGRESS}


@requires_evaluator
@requires_charts
def test_loosening_any_namespace_of_a_stack_is_reported_and_tightening_one_refuses_its_pods() -> None:
    """Each enforced level is exactly what the namespace's pods need: one step looser is reported
    as looser than needed, one step stricter refuses a pod."""
    stack = rendered(EDGE)
    model = cluster(stack)
    with_pods = {pod.namespace for pod in model.pods()}
    for name, level in namespaces.ENFORCED_LEVEL.items():
        if name not in with_pods:
            continue
        step = {"restricted": "baseline", "privileged": "baseline"}[level]
        changed = copy.deepcopy(stack)
        ns = next(r for r in changed.kubernetes_objects() if r.kind == "Namespace" and r.metadata["name"] == name)
        ns.inputs["metadata"]["labels"][ENFORCE] = step
        found = messages(pod_security.validate(changed))
        if level == "restricted":
            expected = f"Namespace {name}: enforces baseline, but every pod in it passes restricted: enforce restricted"
            assert found == [f"pod-security: {expected}"], name
        else:
            assert found, f"{name}: its pods pass baseline, so it need not be privileged"
            assert all(f"namespace {name} enforces baseline: " in message for message in found), name


@requires_evaluator
def test_violations_judges_one_pod_at_a_level_and_version() -> None:
    workload, _ = restricted_workload(rendered(CENTRAL_STACK))
    pod = workload.inputs["spec"]["template"]
    version = pinned_version()
    assert pod_security.violations(pod, "restricted", version.removeprefix("v")) == []
    run_as_root(pod["spec"])
    assert pod_security.violations(pod, "restricted", version) == ["runAsUser=0 (pod must not set runAsUser=0)"]
    assert pod_security.violations(pod, "baseline") == []


# --- the runner: build once, cache, say why not -----------------------------------------------


def test_the_evaluator_is_the_release_of_the_kubernetes_the_platform_deploys() -> None:
    release = versions.KUBERNETES.replace("v1.", "v0.", 1)  # the staging modules of Kubernetes v1.x.y
    staging = ("k8s.io/api", "k8s.io/apimachinery", "k8s.io/component-base", podsecurity.UPSTREAM)
    modules = podsecurity.required_modules()
    assert {module: modules[module] for module in staging} == dict.fromkeys(staging, release)
    assert podsecurity.upstream_version() == release


def test_without_go_the_validator_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """A machine without Go: `unavailable()` says so, and the validators skip pod-security for it
    (or for the reference material, when that is missing too)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    script = (
        "import json\n"
        "from tools import podsecurity, validators\n"
        "print(json.dumps([podsecurity.unavailable(), validators.skipped().get('pod-security'),\n"
        "                  'pod-security' in validators.runnable(), validators.missing_prerequisite()]))\n"
    )
    environment = {**os.environ, "PATH": str(empty), podsecurity.CACHE_ENV: str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    why, skipped_for, runnable, reference_missing = json.loads(result.stdout.splitlines()[-1])
    assert why.startswith("no `go` command on this machine: the Pod Security evaluator (tools/podsecurity)")
    assert skipped_for == (reference_missing or why)
    assert runnable is False
    assert not (tmp_path / "cache").exists(), "nothing is built or cached without Go"


def test_without_go_build_raises_the_reason(tmp_path: Path) -> None:
    with pytest.raises(EvaluatorUnavailable, match="no `go` command on this machine"):
        podsecurity.build(root=tmp_path, environ={"PATH": str(tmp_path)})


def go_module_copy(tmp_path: Path) -> Path:
    copy_dir = tmp_path / "module"
    copy_dir.mkdir()
    for path in podsecurity.source_files():
        shutil.copyfile(path, copy_dir / path.name)
    return copy_dir


def test_the_cache_key_is_the_go_sources_and_nothing_else(tmp_path: Path) -> None:
    source = go_module_copy(tmp_path)
    assert podsecurity.source_digest(source) == podsecurity.source_digest()  # the Python files do not count
    (source / "main.go").write_text((source / "main.go").read_text() + "\n// changed\n")
    assert podsecurity.source_digest(source) != podsecurity.source_digest()
    path = podsecurity.binary_path("go1.99.0", source, tmp_path)
    assert path == tmp_path / "bin" / f"podsecurity-go1.99.0-{podsecurity.source_digest(source)}" / "podsecurity"


def test_the_default_cache_survives_the_tests_scratch_cache_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(podsecurity.CACHE_ENV, raising=False)
    assert podsecurity.cache_root() == Path.home() / ".cache" / "thanos-multi-cluster-tools"
    assert not podsecurity.cache_root().is_relative_to(os.environ["XDG_CACHE_HOME"])
    monkeypatch.setenv(podsecurity.CACHE_ENV, "/somewhere")
    assert podsecurity.cache_root() == Path("/somewhere")


@requires_evaluator
def test_the_build_is_cached_and_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    run = subprocess.run

    def recorded(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return run(command, **options)

    monkeypatch.setattr(podsecurity.subprocess, "run", recorded)
    path = podsecurity.build()
    assert path == podsecurity.evaluator()
    assert path.parent.name == f"podsecurity-{podsecurity.go_version(os.environ)}-{podsecurity.source_digest()}"
    assert path.parent.parent == podsecurity.cache_root() / "bin"
    assert not [command for command in commands if "build" in command], "built again though cached"


@requires_evaluator
def test_a_failed_build_says_why_with_the_end_of_gos_error(tmp_path: Path) -> None:
    source = go_module_copy(tmp_path)
    (source / "main.go").write_text("package main\n\nfunc main() { undefinedFunction() }\n")  # fails to compile
    with pytest.raises(EvaluatorUnavailable) as raised:
        podsecurity.build(source, root=tmp_path / "cache")
    assert f"`go build` of {source} failed: " in str(raised.value)
    assert "undefined: undefinedFunction" in str(raised.value)
    assert not list((tmp_path / "cache").rglob("podsecurity")), "a failed build leaves nothing to find"


@requires_evaluator
def test_bad_input_is_an_error_not_a_verdict() -> None:
    with pytest.raises(EvaluatorError, match="no namespaceLabels and no level"):
        podsecurity.evaluate([Check("pod", {"spec": {"containers": [{"name": "c"}]}})])
    with pytest.raises(EvaluatorError, match='level "Restricted"'):
        podsecurity.evaluate([Check("pod", {"spec": {}}, level="Restricted")])  # type: ignore[arg-type]
    assert podsecurity.evaluate([]) == []
