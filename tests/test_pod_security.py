"""The Pod Security Admission model, as a specification table.

A compliant restricted pod is the baseline of every case: each case breaks exactly one check and
states which levels reject it and what the single message says, so a check that stops firing, fires
at the wrong level, or fires alongside another check fails the table. Expected messages are written
out in full from upstream's wording (k8s.io/pod-security-admission/policy/check_*.go).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from tools.validators.pod_security import (
    ENFORCE_LABEL,
    LEVELS,
    SUPPORTED_VERSIONS,
    Level,
    level_of,
    strictest_level,
    violations,
)

Path = tuple[str | int, ...]
DELETE = object()
"""A change value that removes the key instead of setting it."""

C0: Path = ("spec", "containers", 0)
C0_SC: Path = (*C0, "securityContext")
POD_SC: Path = ("spec", "securityContext")
APPARMOR = "container.apparmor.security.beta.kubernetes.io/"


def compliant_pod() -> dict[str, Any]:
    """A pod every level admits: the restricted profile, written the usual way."""
    return {
        "metadata": {"name": "app", "annotations": {"team": "obs"}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
            },
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "app"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "token", "projected": {"sources": []}},
            ],
        },
    }


def changed(pod: Mapping[str, Any], changes: Sequence[tuple[Path, Any]]) -> dict[str, Any]:
    """A deep copy of `pod` with each path set to its value (or removed, for DELETE); parents are created."""
    result = copy.deepcopy(dict(pod))
    for path, value in changes:
        parent: Any = result
        for key, next_key in itertools.pairwise(path):
            if isinstance(parent, dict) and key not in parent:
                parent[key] = [] if isinstance(next_key, int) else {}
            parent = parent[key]
        if value is DELETE:
            del parent[path[-1]]
        elif isinstance(parent, list) and path[-1] == len(parent):
            parent.append(value)
        else:
            parent[path[-1]] = value
    return result


def second_container(name: str, **overrides: Any) -> dict[str, Any]:
    """A restricted-compliant container, with top-level fields replaced."""
    container: dict[str, Any] = {
        "name": name,
        "image": "registry.example/helper:1",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    container.update(overrides)
    return container


@dataclass(frozen=True)
class Case:
    """A pod breaking one check: the changes, and the message each rejecting level gives (others admit)."""

    name: str
    changes: Sequence[tuple[Path, Any]]
    rejected: Mapping[Level, str] = field(default_factory=dict)
    version: str = "latest"

    def pod(self) -> dict[str, Any]:
        return changed(compliant_pod(), self.changes)


def both(message: str) -> dict[Level, str]:
    """A baseline check: both baseline and restricted give the same message."""
    return {"baseline": message, "restricted": message}


def assert_case(case: Case) -> None:
    for level in LEVELS:
        expected = [case.rejected[level]] if level in case.rejected else []
        assert violations(case.pod(), level, case.version) == expected, level


# --- the compliant pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_compliant_pod_is_admitted_at_every_level_and_version(version: str) -> None:
    for level in LEVELS:
        assert violations(compliant_pod(), level, version) == []
    assert strictest_level(compliant_pod(), version) == "restricted"


def test_the_privileged_level_admits_anything() -> None:
    pod = changed(
        compliant_pod(),
        [(("spec", "hostNetwork"), True), ((*C0_SC, "privileged"), True), ((*C0_SC, "allowPrivilegeEscalation"), True)],
    )
    assert violations(pod, "privileged") == []
    assert len(violations(pod, "restricted")) == 3


# --- one check broken at a time ------------------------------------------------------------------------

BASELINE_CASES = [
    Case("hostNetwork", [(("spec", "hostNetwork"), True)], both("host namespaces (hostNetwork=true)")),
    Case("hostPID", [(("spec", "hostPID"), True)], both("host namespaces (hostPID=true)")),
    Case("hostIPC", [(("spec", "hostIPC"), True)], both("host namespaces (hostIPC=true)")),
    Case(
        "all host namespaces",
        [(("spec", "hostIPC"), True), (("spec", "hostNetwork"), True), (("spec", "hostPID"), True)],
        both("host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    ),
    Case(
        "privileged",
        [((*C0_SC, "privileged"), True)],
        both('privileged (container "app" must not set securityContext.privileged=true)'),
    ),
    Case(
        "capability beyond the default set",
        [((*C0_SC, "capabilities", "add"), ["NET_ADMIN", "SYS_ADMIN", "CHOWN"])],
        {
            "baseline": 'non-default capabilities (container "app" must not include "NET_ADMIN", "SYS_ADMIN" '
            "in securityContext.capabilities.add)",
            # The restricted capabilities check replaces the baseline one (OverrideCheckIDs).
            "restricted": 'unrestricted capabilities (container "app" must not include "CHOWN", "NET_ADMIN", '
            '"SYS_ADMIN" in securityContext.capabilities.add)',
        },
    ),
    Case(
        "NET_RAW is not a default capability",
        [((*C0_SC, "capabilities", "add"), ["NET_RAW"])],
        {
            "baseline": 'non-default capabilities (container "app" must not include "NET_RAW" '
            "in securityContext.capabilities.add)",
            "restricted": 'unrestricted capabilities (container "app" must not include "NET_RAW" '
            "in securityContext.capabilities.add)",
        },
    ),
    Case(
        "hostPath volume",
        [(("spec", "volumes", 3), {"name": "varlog", "hostPath": {"path": "/var/log"}})],
        {
            "baseline": 'hostPath volumes (volume "varlog")',
            # restrictedVolumes replaces hostPathVolumes at restricted.
            "restricted": 'restricted volume types (volume "varlog" uses restricted volume type "hostPath")',
        },
    ),
    Case(
        "hostPort",
        [((*C0, "ports", 0, "hostPort"), 8080)],
        both('hostPort (container "app" uses hostPort 8080)'),
    ),
    Case(
        "AppArmor annotation unconfined",
        [(("metadata", "annotations", APPARMOR + "app"), "unconfined")],
        both(
            f'forbidden AppArmor profile (annotation must not set AppArmor profile type to {APPARMOR}app="unconfined")'
        ),
    ),
    Case(
        "AppArmor container field unconfined",
        [((*C0_SC, "appArmorProfile"), {"type": "Unconfined"})],
        both('forbidden AppArmor profile (container "app" must not set AppArmor profile type to "Unconfined")'),
    ),
    Case(
        "AppArmor pod field unconfined",
        [((*POD_SC, "appArmorProfile"), {"type": "Unconfined"})],
        both('forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")'),
    ),
    Case(
        "SELinux type outside the allow-list",
        [((*C0_SC, "seLinuxOptions"), {"type": "spc_t"})],
        both('seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "spc_t")'),
    ),
    Case(
        "SELinux user",
        [((*POD_SC, "seLinuxOptions"), {"user": "system_u"})],
        both("seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"),
    ),
    Case(
        "SELinux role",
        [((*C0_SC, "seLinuxOptions"), {"role": "system_r", "type": "container_t"})],
        both('seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: role may not be set)'),
    ),
    Case(
        "procMount Unmasked",
        [((*C0_SC, "procMount"), "Unmasked")],
        both('procMount (container "app" must not set securityContext.procMount to "Unmasked")'),
    ),
    Case(
        "seccomp Unconfined at pod level",
        [((*POD_SC, "seccompProfile", "type"), "Unconfined")],
        both('seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    ),
    Case(
        "seccomp Unconfined in a container",
        [((*C0_SC, "seccompProfile"), {"type": "Unconfined"})],
        both('seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ),
    Case(
        "unsafe sysctl",
        [((*POD_SC, "sysctls", 1), {"name": "kernel.msgmax", "value": "65536"})],
        both("forbidden sysctls (kernel.msgmax)"),
    ),
    Case(
        "Windows hostProcess container",
        [((*C0_SC, "windowsOptions"), {"hostProcess": True})],
        both('hostProcess (container "app" must not set securityContext.windowsOptions.hostProcess=true)'),
    ),
    Case(
        "Windows hostProcess pod",
        [((*POD_SC, "windowsOptions"), {"hostProcess": True})],
        both("hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"),
    ),
    Case(
        "probe host",
        [((*C0, "readinessProbe", "httpGet", "host"), "10.0.0.1")],
        both('probe or lifecycle host (container "app" uses probe or lifecycle host "10.0.0.1")'),
    ),
    Case(
        "lifecycle handler host",
        [((*C0, "lifecycle"), {"preStop": {"tcpSocket": {"host": "db.internal", "port": 5432}}})],
        both('probe or lifecycle host (container "app" uses probe or lifecycle host "db.internal")'),
    ),
]

RESTRICTED_CASES = [
    Case(
        "volume type outside the restricted list",
        [(("spec", "volumes", 3), {"name": "data", "nfs": {"server": "nas", "path": "/data"}})],
        {"restricted": 'restricted volume types (volume "data" uses restricted volume type "nfs")'},
    ),
    Case(
        "allowPrivilegeEscalation unset",
        [((*C0_SC, "allowPrivilegeEscalation"), DELETE)],
        {
            "restricted": "allowPrivilegeEscalation != false "
            '(container "app" must set securityContext.allowPrivilegeEscalation=false)'
        },
    ),
    Case(
        "allowPrivilegeEscalation true",
        [((*C0_SC, "allowPrivilegeEscalation"), True)],
        {
            "restricted": "allowPrivilegeEscalation != false "
            '(container "app" must set securityContext.allowPrivilegeEscalation=false)'
        },
    ),
    Case(
        "runAsNonRoot unset",
        [((*POD_SC, "runAsNonRoot"), DELETE)],
        {"restricted": 'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)'},
    ),
    Case(
        "runAsNonRoot false at pod level",
        [((*POD_SC, "runAsNonRoot"), False)],
        {"restricted": "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"},
    ),
    Case(
        "runAsUser 0 at pod level",
        [((*POD_SC, "runAsUser"), 0)],
        {"restricted": "runAsUser=0 (pod must not set runAsUser=0)"},
    ),
    Case(
        "runAsUser 0 in a container",
        [((*C0_SC, "runAsUser"), 0)],
        {"restricted": 'runAsUser=0 (container "app" must not set runAsUser=0)'},
    ),
    Case(
        "seccomp unset",
        [((*POD_SC, "seccompProfile"), DELETE)],
        {
            "restricted": 'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type '
            'to "RuntimeDefault" or "Localhost")'
        },
    ),
    Case(
        "capabilities not dropped",
        [((*C0_SC, "capabilities"), DELETE)],
        {
            "restricted": "unrestricted capabilities "
            '(container "app" must set securityContext.capabilities.drop=["ALL"])'
        },
    ),
    Case(
        "a default capability added",
        [((*C0_SC, "capabilities", "add"), ["CHOWN"])],
        {
            "restricted": 'unrestricted capabilities (container "app" must not include "CHOWN" '
            "in securityContext.capabilities.add)"
        },
    ),
]


@pytest.mark.parametrize("case", BASELINE_CASES + RESTRICTED_CASES, ids=lambda case: case.name)
def test_breaking_one_check(case: Case) -> None:
    assert_case(case)


ADMITTED_VARIANTS: list[tuple[str, Sequence[tuple[Path, Any]]]] = [
    ("explicit false host namespaces", [(("spec", "hostNetwork"), False), (("spec", "hostPID"), False)]),
    ("privileged false", [((*C0_SC, "privileged"), False)]),
    ("NET_BIND_SERVICE added", [((*C0_SC, "capabilities", "add"), ["NET_BIND_SERVICE"])]),
    ("hostPort 0", [((*C0, "ports", 0, "hostPort"), 0)]),
    ("Localhost seccomp", [((*POD_SC, "seccompProfile"), {"type": "Localhost", "localhostProfile": "p.json"})]),
    ("container RuntimeDefault seccomp", [((*C0_SC, "seccompProfile"), {"type": "RuntimeDefault"})]),
    ("AppArmor RuntimeDefault field", [((*C0_SC, "appArmorProfile"), {"type": "RuntimeDefault"})]),
    ("AppArmor Localhost field", [((*POD_SC, "appArmorProfile"), {"type": "Localhost", "localhostProfile": "p"})]),
    ("SELinux container_init_t", [((*C0_SC, "seLinuxOptions"), {"type": "container_init_t", "level": "s0:c1"})]),
    ("procMount Default", [((*C0_SC, "procMount"), "Default")]),
    ("runAsUser non-zero in a container", [((*C0_SC, "runAsUser"), 1000)]),
    ("probe without host", [((*C0, "livenessProbe"), {"tcpSocket": {"port": 8080}})]),
    ("probe with empty host", [((*C0, "livenessProbe"), {"httpGet": {"port": 8080, "host": ""}})]),
    ("safe sysctls", [((*POD_SC, "sysctls", 1), {"name": "net.ipv4.ping_group_range", "value": "0 1"})]),
    ("hostProcess false", [((*C0_SC, "windowsOptions"), {"hostProcess": False})]),
    ("volume without source (defaulted to emptyDir)", [(("spec", "volumes", 3), {"name": "scratch"})]),
    ("secret volume", [(("spec", "volumes", 3), {"name": "s", "secret": {"secretName": "s"}})]),
    ("downwardAPI volume", [(("spec", "volumes", 3), {"name": "d", "downwardAPI": {"items": []}})]),
    ("persistentVolumeClaim volume", [(("spec", "volumes", 3), {"name": "p", "persistentVolumeClaim": {}})]),
    ("csi volume", [(("spec", "volumes", 3), {"name": "c", "csi": {"driver": "d"}})]),
    ("ephemeral volume", [(("spec", "volumes", 3), {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}})]),
    ("image volume", [(("spec", "volumes", 3), {"name": "i", "image": {"reference": "registry.example/data:1"}})]),
]


@pytest.mark.parametrize(("name", "changes"), ADMITTED_VARIANTS, ids=[name for name, _ in ADMITTED_VARIANTS])
def test_allowed_values_are_admitted_at_restricted(name: str, changes: Sequence[tuple[Path, Any]]) -> None:
    assert violations(changed(compliant_pod(), changes), "restricted") == []


def test_messages_come_in_upstream_order_baseline_then_restricted() -> None:
    pod = changed(
        compliant_pod(),
        [
            ((*C0_SC, "allowPrivilegeEscalation"), DELETE),
            ((*C0_SC, "privileged"), True),
            (("spec", "hostNetwork"), True),
        ],
    )
    reasons = [message.split(" (")[0] for message in violations(pod, "restricted")]
    assert reasons == ["host namespaces", "privileged", "allowPrivilegeEscalation != false"]


@pytest.mark.parametrize(
    ("version", "reasons"),
    [
        # Before 1.35 the baseline procMount check runs at restricted too, in baseline ID order.
        ("1.34", ["procMount", "forbidden sysctls"]),
        # From 1.35 the restricted procMount_restricted check replaces it, after every baseline check.
        ("1.35", ["forbidden sysctls", "procMount"]),
    ],
)
def test_procmount_moves_to_the_restricted_checks_in_135(version: str, reasons: list[str]) -> None:
    pod = changed(
        compliant_pod(), [((*C0_SC, "procMount"), "Unmasked"), ((*POD_SC, "sysctls"), [{"name": "vm.swappiness"}])]
    )
    assert [message.split(" (")[0] for message in violations(pod, "restricted", version)] == reasons


# --- container settings against pod-level settings --------------------------------------------------

OVERRIDE_CASES = [
    Case(
        "container runAsNonRoot false under pod true",
        [((*C0_SC, "runAsNonRoot"), False)],
        {"restricted": 'runAsNonRoot != true (container "app" must not set securityContext.runAsNonRoot=false)'},
    ),
    Case(
        "every container runAsNonRoot true without pod level",
        [((*POD_SC, "runAsNonRoot"), DELETE), ((*C0_SC, "runAsNonRoot"), True)],
    ),
    Case(
        "only some containers runAsNonRoot true without pod level",
        [
            ((*POD_SC, "runAsNonRoot"), DELETE),
            ((*C0_SC, "runAsNonRoot"), True),
            (("spec", "containers", 1), second_container("sidecar")),
        ],
        {"restricted": 'runAsNonRoot != true (pod or container "sidecar" must set securityContext.runAsNonRoot=true)'},
    ),
    Case(
        "container runAsNonRoot true cannot rescue pod false",
        [((*POD_SC, "runAsNonRoot"), False), ((*C0_SC, "runAsNonRoot"), True)],
        {"restricted": "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"},
    ),
    Case(
        "container seccomp Unconfined under pod RuntimeDefault",
        [((*C0_SC, "seccompProfile"), {"type": "Unconfined"})],
        both('seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ),
    Case(
        "container seccomp covers a missing pod level",
        [((*POD_SC, "seccompProfile"), DELETE), ((*C0_SC, "seccompProfile"), {"type": "Localhost"})],
    ),
    Case(
        "container seccomp RuntimeDefault cannot rescue pod Unconfined",
        [((*POD_SC, "seccompProfile", "type"), "Unconfined"), ((*C0_SC, "seccompProfile"), {"type": "RuntimeDefault"})],
        both('seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    ),
    Case(
        "container runAsUser cannot rescue pod runAsUser 0",
        [((*POD_SC, "runAsUser"), 0), ((*C0_SC, "runAsUser"), 1000)],
        {"restricted": "runAsUser=0 (pod must not set runAsUser=0)"},
    ),
    Case(
        "pod and container both bad",
        [((*POD_SC, "runAsUser"), 0), ((*C0_SC, "runAsUser"), 0)],
        {"restricted": 'runAsUser=0 (pod and container "app" must not set runAsUser=0)'},
    ),
    Case(
        "container SELinux bad under valid pod level",
        [
            ((*POD_SC, "seLinuxOptions"), {"type": "container_t"}),
            ((*C0_SC, "seLinuxOptions"), {"type": "unconfined_t"}),
        ],
        both('seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "unconfined_t")'),
    ),
]


@pytest.mark.parametrize("case", OVERRIDE_CASES, ids=lambda case: case.name)
def test_container_settings_against_pod_settings(case: Case) -> None:
    assert_case(case)


# --- init and ephemeral containers count ----------------------------------------------------------------

CONTAINER_KIND_CASES = [
    Case(
        "init container without allowPrivilegeEscalation",
        [
            (
                ("spec", "initContainers", 0),
                second_container("init", securityContext={"capabilities": {"drop": ["ALL"]}}),
            )
        ],
        {
            "restricted": "allowPrivilegeEscalation != false "
            '(container "init" must set securityContext.allowPrivilegeEscalation=false)'
        },
    ),
    Case(
        "init container without drop ALL",
        [
            (
                ("spec", "initContainers", 0),
                second_container("init", securityContext={"allowPrivilegeEscalation": False}),
            )
        ],
        {
            "restricted": "unrestricted capabilities "
            '(container "init" must set securityContext.capabilities.drop=["ALL"])'
        },
    ),
    Case(
        "init container with a hostPort",
        [(("spec", "initContainers", 0), second_container("init", ports=[{"containerPort": 53, "hostPort": 53}]))],
        both('hostPort (container "init" uses hostPort 53)'),
    ),
    Case(
        "privileged ephemeral container",
        [
            (
                ("spec", "ephemeralContainers", 0),
                second_container(
                    "debug",
                    securityContext={
                        "privileged": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                ),
            )
        ],
        both('privileged (container "debug" must not set securityContext.privileged=true)'),
    ),
    Case(
        "ephemeral container without seccomp and no pod level",
        [
            ((*POD_SC, "seccompProfile"), DELETE),
            ((*C0_SC, "seccompProfile"), {"type": "RuntimeDefault"}),
            (("spec", "ephemeralContainers", 0), second_container("debug")),
        ],
        {
            "restricted": 'seccompProfile (pod or container "debug" must set securityContext.seccompProfile.type '
            'to "RuntimeDefault" or "Localhost")'
        },
    ),
    Case(
        "several containers named, init first",
        [
            ((*C0_SC, "allowPrivilegeEscalation"), DELETE),
            (
                ("spec", "initContainers", 0),
                second_container("init", securityContext={"capabilities": {"drop": ["ALL"]}}),
            ),
        ],
        {
            "restricted": "allowPrivilegeEscalation != false "
            '(containers "init", "app" must set securityContext.allowPrivilegeEscalation=false)'
        },
    ),
]


@pytest.mark.parametrize("case", CONTAINER_KIND_CASES, ids=lambda case: case.name)
def test_init_and_ephemeral_containers_count(case: Case) -> None:
    assert_case(case)


# --- version dependence --------------------------------------------------------------------------------

SYSCTL_ADMITTED_FROM = [
    ("kernel.shm_rmid_forced", "1.28"),
    ("net.ipv4.ip_local_port_range", "1.28"),
    ("net.ipv4.tcp_syncookies", "1.28"),
    ("net.ipv4.ip_local_reserved_ports", "1.28"),
    ("net.ipv4.tcp_keepalive_time", "1.29"),
    ("net.ipv4.tcp_fin_timeout", "1.29"),
    ("net.ipv4.tcp_keepalive_intvl", "1.29"),
    ("net.ipv4.tcp_keepalive_probes", "1.29"),
    ("net.ipv4.tcp_rmem", "1.32"),
    ("net.ipv4.tcp_wmem", "1.32"),
]


def minor(version: str) -> int:
    return 36 if version == "latest" else int(version.split(".")[1])


@pytest.mark.parametrize(("sysctl", "since"), SYSCTL_ADMITTED_FROM)
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_safe_sysctls_grow_by_version(sysctl: str, since: str, version: str) -> None:
    pod = changed(compliant_pod(), [((*POD_SC, "sysctls"), [{"name": sysctl, "value": "1"}])])
    expected = [] if minor(version) >= minor(since) else [f"forbidden sysctls ({sysctl})"]
    assert violations(pod, "baseline", version) == expected


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_sysctls_only_added_after_136_stay_forbidden(version: str) -> None:
    names = ["net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat", "net.core.somaxconn"]
    pod = changed(compliant_pod(), [((*POD_SC, "sysctls"), [{"name": name} for name in names])])
    assert violations(pod, "baseline", version) == [f"forbidden sysctls ({', '.join(names)})"]


VERSIONED_CASES = [
    Case(
        "SELinux container_engine_t before 1.31",
        [((*C0_SC, "seLinuxOptions"), {"type": "container_engine_t"})],
        both(
            'seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "container_engine_t")'
        ),
        version="1.30",
    ),
    Case(
        "SELinux container_engine_t from 1.31",
        [((*C0_SC, "seLinuxOptions"), {"type": "container_engine_t"})],
        {},
        "1.31",
    ),
    Case(
        "image volume before 1.33",
        [(("spec", "volumes", 3), {"name": "model", "image": {"reference": "registry.example/model:1"}})],
        {"restricted": 'restricted volume types (volume "model" uses restricted volume type "image")'},
        version="1.32",
    ),
    Case(
        "image volume from 1.33",
        [(("spec", "volumes", 3), {"name": "model", "image": {"reference": "registry.example/model:1"}})],
        version="1.33",
    ),
    Case("probe host before 1.34", [((*C0, "readinessProbe", "httpGet", "host"), "10.0.0.1")], version="1.33"),
    Case(
        "probe host from 1.34",
        [((*C0, "readinessProbe", "httpGet", "host"), "10.0.0.1")],
        both('probe or lifecycle host (container "app" uses probe or lifecycle host "10.0.0.1")'),
        version="1.34",
    ),
    Case(
        "AppArmor field before 1.30 (no such field)",
        [((*C0_SC, "appArmorProfile"), {"type": "Unconfined"})],
        version="1.29",
    ),
    Case(
        "AppArmor annotation before 1.30",
        [(("metadata", "annotations", APPARMOR + "app"), "unconfined")],
        both(
            f'forbidden AppArmor profile (annotation must not set AppArmor profile type to {APPARMOR}app="unconfined")'
        ),
        version="1.28",
    ),
    Case(
        "runAsUser 0 in a user namespace before 1.35",
        [(("spec", "hostUsers"), False), ((*POD_SC, "runAsUser"), 0)],
        {"restricted": "runAsUser=0 (pod must not set runAsUser=0)"},
        version="1.34",
    ),
    Case(
        "runAsUser 0 in a user namespace from 1.35",
        [(("spec", "hostUsers"), False), ((*POD_SC, "runAsUser"), 0)],
        version="1.35",
    ),
    Case(
        "runAsNonRoot false in a user namespace before 1.35",
        [(("spec", "hostUsers"), False), ((*POD_SC, "runAsNonRoot"), False)],
        {"restricted": "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"},
        version="1.34",
    ),
    Case(
        "runAsNonRoot false in a user namespace from 1.35",
        [(("spec", "hostUsers"), False), ((*POD_SC, "runAsNonRoot"), False)],
        version="1.35",
    ),
    Case(
        "runAsUser 0 with host users from 1.35",
        [(("spec", "hostUsers"), True), ((*POD_SC, "runAsUser"), 0)],
        {"restricted": "runAsUser=0 (pod must not set runAsUser=0)"},
        version="1.36",
    ),
    Case(
        "unmasked procMount in a user namespace from 1.35",
        [(("spec", "hostUsers"), False), ((*C0_SC, "procMount"), "Unmasked")],
        {"restricted": 'procMount (container "app" must not set securityContext.procMount to "Unmasked")'},
        version="1.35",
    ),
    Case(
        "unmasked procMount in a user namespace before 1.35",
        [(("spec", "hostUsers"), False), ((*C0_SC, "procMount"), "Unmasked")],
        both('procMount (container "app" must not set securityContext.procMount to "Unmasked")'),
        version="1.34",
    ),
    Case(
        "unmasked procMount with host users from 1.35",
        [(("spec", "hostUsers"), True), ((*C0_SC, "procMount"), "Unmasked")],
        both('procMount (container "app" must not set securityContext.procMount to "Unmasked")'),
        version="1.36",
    ),
]


@pytest.mark.parametrize("case", VERSIONED_CASES, ids=lambda case: case.name)
def test_version_dependent_checks(case: Case) -> None:
    assert_case(case)


def test_windows_pods_are_exempt_from_linux_only_restricted_checks() -> None:
    pod = changed(
        compliant_pod(),
        [
            (("spec", "os"), {"name": "windows"}),
            ((*POD_SC, "seccompProfile"), DELETE),
            ((*C0_SC, "allowPrivilegeEscalation"), DELETE),
            ((*C0_SC, "capabilities"), DELETE),
        ],
    )
    assert violations(pod, "restricted") == []
    linux = changed(pod, [(("spec", "os"), {"name": "linux"})])
    assert len(violations(linux, "restricted")) == 3


@pytest.mark.parametrize("version", ["1.27", "1.37", "2.0", "v1", "newest", ""])
def test_unsupported_versions_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="unsupported Kubernetes version"):
        violations(compliant_pod(), "baseline", version)


def test_a_v_prefixed_version_is_accepted() -> None:
    pod = changed(compliant_pod(), [((*POD_SC, "sysctls"), [{"name": "net.ipv4.tcp_rmem"}])])
    assert violations(pod, "baseline", "v1.32") == []
    assert violations(pod, "baseline", "v1.31") == ["forbidden sysctls (net.ipv4.tcp_rmem)"]


def test_unknown_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        violations(compliant_pod(), "Restricted", "latest")  # type: ignore[arg-type]


# --- annotation forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ("runtime/default", True),
        ("localhost/k8s-apparmor-example", True),
        ("", True),
        ("unconfined", False),
        ("docker/default", False),
        ("RuntimeDefault", False),
    ],
)
def test_apparmor_annotation_values(value: str, admitted: bool) -> None:
    pod = changed(compliant_pod(), [(("metadata", "annotations", APPARMOR + "app"), value)])
    assert (violations(pod, "baseline") == []) is admitted


def test_apparmor_annotations_count_for_any_container_name_and_are_listed_sorted() -> None:
    pod = changed(
        compliant_pod(),
        [
            (("metadata", "annotations", APPARMOR + "zz-gone"), "unconfined"),
            (("metadata", "annotations", APPARMOR + "app"), "unconfined"),
            ((*C0_SC, "appArmorProfile"), {"type": "Unconfined"}),
        ],
    )
    assert violations(pod, "baseline") == [
        'forbidden AppArmor profiles (container "app" and annotations must not set AppArmor profile type to '
        f'"Unconfined", {APPARMOR}app="unconfined", {APPARMOR}zz-gone="unconfined")'
    ]


def test_deprecated_seccomp_annotations_are_ignored() -> None:
    unconfined = {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/app": "unconfined",
    }
    pod = changed(compliant_pod(), [(("metadata", "annotations"), unconfined)])
    assert violations(pod, "restricted") == []
    # Nor does a runtime/default annotation stand in for the restricted seccompProfile field.
    runtime_default = {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}
    without_field = changed(
        pod, [(("metadata", "annotations"), runtime_default), ((*POD_SC, "seccompProfile"), DELETE)]
    )
    assert [message.split(" (")[0] for message in violations(without_field, "restricted")] == ["seccompProfile"]


# --- strictest level and namespace labels --------------------------------------------------------------


def log_collector_daemonset_pod() -> dict[str, Any]:
    """A DaemonSet's pod template of the node-agent kind: host network and host log directories."""
    return {
        "metadata": {"labels": {"app": "fluent-bit"}},
        "spec": {
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "containers": [
                {
                    "name": "fluent-bit",
                    "image": "fluent/fluent-bit:3",
                    "volumeMounts": [{"name": "varlog", "mountPath": "/var/log", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}],
        },
    }


def root_pod() -> dict[str, Any]:
    """A pod running as root with no extra capabilities or host access: baseline, not restricted."""
    return {
        "metadata": {},
        "spec": {
            "securityContext": {"runAsUser": 0},
            "containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
        },
    }


def test_strictest_level_of_typical_pods() -> None:
    assert strictest_level(log_collector_daemonset_pod()) == "privileged"
    assert strictest_level(root_pod()) == "baseline"
    assert strictest_level(compliant_pod()) == "restricted"
    assert strictest_level({"spec": {"containers": [{"name": "bare"}]}}) == "baseline"


def test_strictest_level_depends_on_the_version() -> None:
    pod = changed(compliant_pod(), [((*POD_SC, "sysctls"), [{"name": "net.ipv4.tcp_keepalive_time"}])])
    assert strictest_level(pod, "1.28") == "privileged"
    assert strictest_level(pod, "1.29") == "restricted"


def test_the_daemonset_messages_name_what_is_wrong() -> None:
    assert violations(log_collector_daemonset_pod(), "baseline") == [
        "host namespaces (hostNetwork=true)",
        'hostPath volumes (volume "varlog")',
    ]


@pytest.mark.parametrize(
    ("labels", "level"),
    [
        ({}, "privileged"),
        ({"kubernetes.io/metadata.name": "obs"}, "privileged"),
        ({ENFORCE_LABEL: "privileged"}, "privileged"),
        ({ENFORCE_LABEL: "baseline"}, "baseline"),
        ({ENFORCE_LABEL: "restricted", f"{ENFORCE_LABEL}-version": "latest"}, "restricted"),
        # warn and audit do not enforce
        (
            {"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "baseline"},
            "privileged",
        ),
        # PSA fails closed on a value it cannot parse (levels are case-sensitive)
        ({ENFORCE_LABEL: "Baseline"}, "restricted"),
        ({ENFORCE_LABEL: ""}, "restricted"),
    ],
)
def test_level_of_namespace_labels(labels: dict[str, str], level: Level) -> None:
    assert level_of(labels) == level


def test_malformed_pods_read_as_unset_fields() -> None:
    pod: dict[str, Any] = {
        "metadata": {"annotations": None},
        "spec": {"securityContext": None, "containers": [{"name": "a", "securityContext": None}], "volumes": None},
    }
    assert violations(pod, "baseline") == []
    assert strictest_level(pod) == "baseline"
