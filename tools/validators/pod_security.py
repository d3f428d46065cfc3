"""An offline model of Kubernetes Pod Security Admission (PSA): which Pod Security Standard admits a pod.

The API server's PodSecurity admission plugin rejects a pod whose spec breaks the level named by its
namespace's `pod-security.kubernetes.io/enforce` label. This module re-implements the plugin's checks
(upstream `k8s.io/pod-security-admission/policy/check_*.go`, in kubernetes/kubernetes under
`staging/src/k8s.io/pod-security-admission/policy/`) in plain Python, so rendered manifests can be
judged without a cluster:

- `violations(pod, level, version)`: one message per failed check, worded like the PSA warnings
  (`<reason> (<detail>)`, e.g. `host namespaces (hostNetwork=true)`), in upstream's order
  (baseline check IDs sorted, then restricted check IDs sorted); empty when the level admits the pod;
- `strictest_level(pod, version)`: the strictest level that admits the pod;
- `level_of(labels)`: a namespace's enforce level from its labels.

What is modelled: `pod-security.kubernetes.io/enforce-version: latest` on a Kubernetes 1.28 to 1.36
API server (`version` is that server's minor; `"latest"` means the newest modelled release, 1.36).
Upstream selects, per check, the newest revision whose minimum policy version is at most the
server's; the revisions that matter in this range:

- sysctls: the safe list grew at 1.27 (`net.ipv4.ip_local_reserved_ports`), 1.29 (`tcp_keepalive_time`,
  `tcp_fin_timeout`, `tcp_keepalive_intvl`, `tcp_keepalive_probes`) and 1.32 (`tcp_rmem`, `tcp_wmem`);
- SELinux: `container_engine_t` is an allowed type from 1.31;
- AppArmor: the `appArmorProfile` fields exist (and are checked) from 1.30; the
  `container.apparmor.security.beta.kubernetes.io/*` annotations are checked at every version;
- restricted volumes: `image` volumes are allowed from 1.33 (patched into the 1.0 check upstream);
- baseline forbids a `host` on probes and lifecycle handlers from 1.34 (`hostProbesAndHostLifecycle`);
- user namespaces (`spec.hostUsers: false`) relax `runAsNonRoot`, `runAsUser` and baseline `procMount`
  from 1.35 (before, only behind the off-by-default alpha gate `UserNamespacesPodSecurityStandards`);
  restricted keeps forbidding a non-default procMount (`procMount_restricted`, 1.35);
- `spec.os.name: windows` exempts a pod from the restricted `allowPrivilegeEscalation`, capabilities
  and seccomp checks (policy 1.25, so always here).

Containers, init containers and ephemeral containers all count, as in upstream's `visitContainers`.
A container-level setting replaces the pod-level one only where upstream says so: `runAsNonRoot` and
the restricted seccomp requirement are satisfied by the pod level or by every container, and a
container that sets a bad value fails even under a good pod-level value; a bad pod-level value fails
whatever the containers set (upstream does not let containers rescue it).

What is not modelled:

- admission exemptions (usernames, runtime classes, namespaces in the AdmissionConfiguration), the
  configuration's defaults (an unlabelled namespace is `privileged`, the built-in default), pinned
  `enforce-version` labels and API server emulation versions;
- mutation: other admission plugins and the API server's own defaulting are not applied, except that a
  volume without any source counts as `emptyDir` (what defaulting makes of it);
- fields the API server drops because their feature gate is off (e.g. `procMount` before `ProcMountType`
  is enabled by default in 1.33): the check still reports them, as PSA would if they reached it;
- the deprecated seccomp annotations (`seccomp.security.alpha.kubernetes.io/pod`,
  `container.seccomp.security.alpha.kubernetes.io/*`): PSA reads them only for policy versions before
  1.19 and the API server stopped copying them into the fields in 1.27, so from 1.28 they are ignored
  (an `unconfined` annotation is admitted, and a `runtime/default` one does not satisfy restricted);
- API validation: a pod PSA admits may still be invalid (e.g. capabilities on a Windows pod);
- pod updates (PSA only re-evaluates significant changes) and the audit/warn modes.

Messages follow upstream's wording but are not guaranteed byte-identical (e.g. AppArmor annotations).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tools.cluster import cluster
from tools.engine import Rendering
from tools.validators.common import Finding

Level = Literal["privileged", "baseline", "restricted"]
"""A Pod Security Standard, from the least to the most strict."""

LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
"""Every level, least strict first."""

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
"""The namespace label whose level the API server enforces."""

OLDEST_MINOR = 28
NEWEST_MINOR = 36
SUPPORTED_VERSIONS: tuple[str, ...] = (*(f"1.{minor}" for minor in range(OLDEST_MINOR, NEWEST_MINOR + 1)), "latest")
"""The `version` values `violations` accepts (a leading `v`, as in `v1.30`, is also accepted)."""

_LEVEL_BY_NAME: dict[str, Level] = {level: level for level in LEVELS}

_SAFE_SYSCTLS_SINCE: dict[str, int] = {
    "kernel.shm_rmid_forced": 0,
    "net.ipv4.ip_local_port_range": 0,
    "net.ipv4.tcp_syncookies": 0,
    "net.ipv4.ping_group_range": 0,
    "net.ipv4.ip_unprivileged_port_start": 0,
    "net.ipv4.ip_local_reserved_ports": 27,
    "net.ipv4.tcp_keepalive_time": 29,
    "net.ipv4.tcp_fin_timeout": 29,
    "net.ipv4.tcp_keepalive_intvl": 29,
    "net.ipv4.tcp_keepalive_probes": 29,
    "net.ipv4.tcp_rmem": 32,
    "net.ipv4.tcp_wmem": 32,
}
"""The safe sysctls (check_sysctls.go) and the policy minor that first allows each."""

_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
"""The container runtime's default capabilities (check_capabilities_baseline.go): adding them is harmless."""

_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPE_ENGINE = "container_engine_t"  # allowed from policy 1.31 (check_seLinuxOptions.go)

_RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_IMAGE_VOLUME = "image"  # allowed from 1.33 (patched into check_restrictedVolumes.go's 1.0 revision)

_PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})
"""The allowed seccomp and AppArmor profile types."""

_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_RUNTIME_DEFAULT = "runtime/default"
_APPARMOR_LOCALHOST_PREFIX = "localhost/"

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
"""Where containers live in a PodSpec, in upstream's visiting order."""

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_LIFECYCLE_HANDLERS = ("postStart", "preStop")
_HANDLER_ACTIONS = ("httpGet", "tcpSocket")

# --- the pod as the checks see it ------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else empty: absent and null fields read as unset, as in Go."""
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    """`value` if it is a list, else empty."""
    return value if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class _Pod:
    """A pod's metadata and spec, plus the API server minor whose check revisions apply."""

    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    minor: int

    @property
    def security_context(self) -> Mapping[str, Any]:
        return _mapping(self.spec.get("securityContext"))

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        return [_mapping(container) for key in _CONTAINER_LISTS for container in _sequence(self.spec.get(key))]

    @property
    def is_windows(self) -> bool:
        return _mapping(self.spec.get("os")).get("name") == "windows"

    @property
    def relaxed_for_user_namespace(self) -> bool:
        """upstream `relaxPolicyForUserNamespacePod`: unconditional from 1.35, gated off by default before."""
        return self.minor >= 35 and self.spec.get("hostUsers") is False


def _security_context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(container.get("securityContext"))


def _name(container: Mapping[str, Any]) -> str:
    return str(container.get("name", ""))


def _is_int(value: Any) -> bool:
    # bool is an int in Python but never a valid integer field in Kubernetes.
    return isinstance(value, int) and not isinstance(value, bool)


# --- message helpers (upstream helpers.go) -----------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """A failed check: upstream's ForbiddenReason and ForbiddenDetail."""

    reason: str
    detail: str = ""

    @property
    def message(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _containers_phrase(names: Sequence[str]) -> str:
    """`container "a"` or `containers "a", "b"`."""
    return f"{_pluralize('container', 'containers', len(names))} {_join_quote(names)}"


def _setters(pod_is_bad: bool, bad_containers: Sequence[str]) -> list[str]:
    """Who set a forbidden value: `pod` and/or the containers, as upstream's badSetters."""
    return (["pod"] if pod_is_bad else []) + ([_containers_phrase(bad_containers)] if bad_containers else [])


# --- baseline checks -------------------------------------------------------------------------------


def _host_namespaces(pod: _Pod) -> _Failure | None:
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(field) is True]
    return _Failure("host namespaces", ", ".join(used)) if used else None


def _privileged(pod: _Pod) -> _Failure | None:
    bad = [_name(c) for c in pod.containers if _security_context(c).get("privileged") is True]
    if not bad:
        return None
    return _Failure("privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true")


def _added_capabilities(container: Mapping[str, Any]) -> list[str]:
    return [str(cap) for cap in _sequence(_mapping(_security_context(container).get("capabilities")).get("add"))]


def _capabilities_baseline(pod: _Pod) -> _Failure | None:
    bad_containers: list[str] = []
    bad_capabilities: set[str] = set()
    for container in pod.containers:
        # Exact names: upstream compares strings, so "CAP_CHOWN" is not "CHOWN".
        extra = [cap for cap in _added_capabilities(container) if cap not in _BASELINE_CAPABILITIES]
        if extra:
            bad_containers.append(_name(container))
            bad_capabilities.update(extra)
    if not bad_containers:
        return None
    return _Failure(
        "non-default capabilities",
        f"{_containers_phrase(bad_containers)} must not include {_join_quote(sorted(bad_capabilities))} "
        "in securityContext.capabilities.add",
    )


def _volumes(pod: _Pod) -> list[Mapping[str, Any]]:
    return [_mapping(volume) for volume in _sequence(pod.spec.get("volumes"))]


def _host_path_volumes(pod: _Pod) -> _Failure | None:
    bad = [str(v.get("name", "")) for v in _volumes(pod) if v.get("hostPath") is not None]
    if not bad:
        return None
    return _Failure("hostPath volumes", f"{_pluralize('volume', 'volumes', len(bad))} {_join_quote(bad)}")


def _host_ports(pod: _Pod) -> _Failure | None:
    bad_containers: list[str] = []
    ports: set[str] = set()
    for container in pod.containers:
        used = [port.get("hostPort") for port in map(_mapping, _sequence(container.get("ports")))]
        # Any non-zero hostPort: the standard forbids host ports outright, with no range.
        used_ports = [str(port) for port in used if _is_int(port) and port != 0]
        if used_ports:
            bad_containers.append(_name(container))
            ports.update(used_ports)
    if not bad_containers:
        return None
    count = len(bad_containers)
    return _Failure(
        "hostPort",
        f"{_containers_phrase(bad_containers)} {_pluralize('uses', 'use', count)} "
        f"{_pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", _APPARMOR_RUNTIME_DEFAULT) or value.startswith(_APPARMOR_LOCALHOST_PREFIX)


def _apparmor_type(context: Mapping[str, Any]) -> str | None:
    """The `appArmorProfile.type` a security context sets, or None when it sets no profile."""
    profile = context.get("appArmorProfile")
    return None if profile is None else str(_mapping(profile).get("type", ""))


def _app_armor(pod: _Pod) -> _Failure | None:
    pod_type = _apparmor_type(pod.security_context)
    # The fields were added in 1.30; before, the API server had no such field and PSA read only annotations.
    fields_checked = pod.minor >= 30
    pod_is_bad = fields_checked and pod_type is not None and pod_type not in _PROFILE_TYPES
    bad_values = {pod_type} if pod_is_bad and pod_type is not None else set()
    bad_containers: list[str] = []
    for container in pod.containers if fields_checked else []:
        container_type = _apparmor_type(_security_context(container))
        if container_type is not None and container_type not in _PROFILE_TYPES:
            bad_containers.append(_name(container))
            bad_values.add(container_type)
    # Any key with the prefix counts, whether or not it names one of the pod's containers.
    bad_annotations = sorted(
        f'{key}="{value}"'
        for key, value in pod.annotations.items()
        if key.startswith(_APPARMOR_ANNOTATION_PREFIX) and not _allowed_apparmor_annotation(value)
    )
    setters = _setters(pod_is_bad, bad_containers)
    if bad_annotations:
        setters.append(_pluralize("annotation", "annotations", len(bad_annotations)))
    if not setters:
        return None
    values = [_join_quote(sorted(bad_values))] if bad_values else []
    count = len(bad_values) + len(bad_annotations)
    return _Failure(
        _pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", count),
        f"{' and '.join(setters)} must not set AppArmor profile type to {', '.join([*values, *bad_annotations])}",
    )


@dataclass
class _SELinuxFindings:
    """What the seLinuxOptions of the pod and its containers got wrong, across all of them."""

    types: set[str]
    user: bool = False
    role: bool = False

    def judge(self, options: Mapping[str, Any], allowed_types: frozenset[str]) -> bool:
        """Record what `options` gets wrong; True when it is valid."""
        selinux_type = str(options.get("type") or "")
        valid = True
        if selinux_type not in allowed_types:
            self.types.add(selinux_type)
            valid = False
        if options.get("user"):
            self.user, valid = True, False
        if options.get("role"):
            self.role, valid = True, False
        return valid

    def summary(self) -> str:
        parts = (
            [f"{_pluralize('type', 'types', len(self.types))} {_join_quote(sorted(self.types))}"] if self.types else []
        )
        parts += ["user may not be set"] if self.user else []
        parts += ["role may not be set"] if self.role else []
        return "; ".join(parts)


def _selinux_options(pod: _Pod) -> _Failure | None:
    allowed = _SELINUX_TYPES | {_SELINUX_TYPE_ENGINE} if pod.minor >= 31 else _SELINUX_TYPES
    findings = _SELinuxFindings(types=set())
    pod_options = pod.security_context.get("seLinuxOptions")
    pod_is_bad = pod_options is not None and not findings.judge(_mapping(pod_options), allowed)
    bad_containers = [
        _name(c)
        for c in pod.containers
        if (options := _security_context(c).get("seLinuxOptions")) is not None
        and not findings.judge(_mapping(options), allowed)
    ]
    setters = _setters(pod_is_bad, bad_containers)
    if not setters:
        return None
    return _Failure(
        "seLinuxOptions",
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {findings.summary()}",
    )


def _unmasked_proc_mount(pod: _Pod) -> _Failure | None:
    """upstream procMount_1_0: anything but `Default` (or unset) is forbidden."""
    bad_containers: list[str] = []
    bad_types: set[str] = set()
    for container in pod.containers:
        proc_mount = _security_context(container).get("procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad_containers.append(_name(container))
            bad_types.add(str(proc_mount))
    if not bad_containers:
        return None
    return _Failure(
        "procMount",
        f"{_containers_phrase(bad_containers)} must not set securityContext.procMount to "
        f"{_join_quote(sorted(bad_types))}",
    )


def _proc_mount_baseline(pod: _Pod) -> _Failure | None:
    # From 1.35 a user-namespaced pod may unmask /proc: its root is not the host's.
    return None if pod.relaxed_for_user_namespace else _unmasked_proc_mount(pod)


def _seccomp_type(context: Mapping[str, Any]) -> str | None:
    """The `seccompProfile.type` a security context sets, or None when it sets no profile."""
    profile = context.get("seccompProfile")
    return None if profile is None else str(_mapping(profile).get("type", ""))


def _seccomp_explicitly_bad(pod: _Pod) -> _Failure | None:
    """The pod level or containers setting a seccomp type other than RuntimeDefault/Localhost.

    Policy 1.19+ reads only the fields (the alpha annotations are ignored: see the module docstring).
    """
    pod_type = _seccomp_type(pod.security_context)
    pod_is_bad = pod_type is not None and pod_type not in _PROFILE_TYPES
    bad_values = {pod_type} if pod_is_bad and pod_type is not None else set()
    bad_containers: list[str] = []
    for container in pod.containers:
        container_type = _seccomp_type(_security_context(container))
        if container_type is not None and container_type not in _PROFILE_TYPES:
            bad_containers.append(_name(container))
            bad_values.add(container_type)
    setters = _setters(pod_is_bad, bad_containers)
    if not setters:
        return None
    return _Failure(
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        f"{_join_quote(sorted(bad_values))}",
    )


def _sysctls(pod: _Pod) -> _Failure | None:
    safe = {name for name, since in _SAFE_SYSCTLS_SINCE.items() if pod.minor >= since}
    names = [str(_mapping(sysctl).get("name", "")) for sysctl in _sequence(pod.security_context.get("sysctls"))]
    bad = [name for name in names if name not in safe]
    return _Failure("forbidden sysctls", ", ".join(bad)) if bad else None


def _host_process(context: Mapping[str, Any]) -> bool:
    return _mapping(context.get("windowsOptions")).get("hostProcess") is True


def _windows_host_process(pod: _Pod) -> _Failure | None:
    bad_containers = [_name(c) for c in pod.containers if _host_process(_security_context(c))]
    setters = _setters(_host_process(pod.security_context), bad_containers)
    if not setters:
        return None
    return _Failure(
        "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    )


def _handler_hosts(handler: Any) -> list[str]:
    """Non-empty `host`s of a probe's or lifecycle handler's httpGet/tcpSocket action."""
    actions = [_mapping(_mapping(handler).get(action)) for action in _HANDLER_ACTIONS]
    return [str(action["host"]) for action in actions if action.get("host")]


def _container_hosts(container: Mapping[str, Any]) -> list[str]:
    lifecycle = _mapping(container.get("lifecycle"))
    handlers = [container.get(probe) for probe in _PROBES] + [lifecycle.get(hook) for hook in _LIFECYCLE_HANDLERS]
    return [host for handler in handlers for host in _handler_hosts(handler)]


def _probe_hosts(pod: _Pod) -> _Failure | None:
    # A host on a probe or hook makes the kubelet connect to any address, from the node's network.
    bad_containers: set[str] = set()
    hosts: set[str] = set()
    for container in pod.containers:
        if found := _container_hosts(container):
            bad_containers.add(_name(container))
            hosts.update(found)
    if not bad_containers:
        return None
    count = len(bad_containers)
    return _Failure(
        "probe or lifecycle host",
        f"{_containers_phrase(sorted(bad_containers))} {_pluralize('uses', 'use', count)} "
        f"{_pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_join_quote(sorted(hosts))}",
    )


# --- restricted checks -----------------------------------------------------------------------------


def _volume_type(volume: Mapping[str, Any], allowed: frozenset[str]) -> str | None:
    """The forbidden source type of a volume, or None when its source is allowed."""
    sources = [key for key, value in volume.items() if key != "name" and value is not None]
    # No source at all: API defaulting makes it an emptyDir.
    if not sources or any(source in allowed for source in sources):
        return None
    return sources[0]


def _restricted_volumes(pod: _Pod) -> _Failure | None:
    allowed = _RESTRICTED_VOLUMES | {_IMAGE_VOLUME} if pod.minor >= 33 else _RESTRICTED_VOLUMES
    bad_volumes: list[str] = []
    bad_types: set[str] = set()
    for volume in _volumes(pod):
        if (volume_type := _volume_type(volume, allowed)) is not None:
            bad_volumes.append(str(volume.get("name", "")))
            bad_types.add(volume_type)
    if not bad_volumes:
        return None
    count = len(bad_volumes)
    return _Failure(
        "restricted volume types",
        f"{_pluralize('volume', 'volumes', count)} {_join_quote(bad_volumes)} {_pluralize('uses', 'use', count)} "
        f"{_pluralize('restricted volume type', 'restricted volume types', len(bad_types))} "
        f"{_join_quote(sorted(bad_types))}",
    )


def _allow_privilege_escalation(pod: _Pod) -> _Failure | None:
    if pod.is_windows:  # Windows has no setuid escalation; API validation forbids the field there.
        return None
    # Unset counts as true: the runtime allows escalation unless told not to.
    bad = [_name(c) for c in pod.containers if _security_context(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return _Failure(
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _run_as_non_root(pod: _Pod) -> _Failure | None:
    if pod.relaxed_for_user_namespace:  # root in a user namespace is not root on the node
        return None
    pod_value = pod.security_context.get("runAsNonRoot")
    explicitly_bad: list[str] = []
    implicitly_bad: list[str] = []
    for container in pod.containers:
        value = _security_context(container).get("runAsNonRoot")
        if value is None:
            # Unset inherits the pod level, which must then say true.
            if pod_value is not True:
                implicitly_bad.append(_name(container))
        elif value is not True:
            explicitly_bad.append(_name(container))
    setters = _setters(pod_value is False, explicitly_bad)
    if setters:
        return _Failure(
            "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
        )
    if implicitly_bad:
        return _Failure(
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicitly_bad)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _is_root(context: Mapping[str, Any]) -> bool:
    value = context.get("runAsUser")
    return _is_int(value) and value == 0


def _run_as_user(pod: _Pod) -> _Failure | None:
    if pod.relaxed_for_user_namespace:
        return None
    # Each setter is judged on its own: a pod-level 0 fails even when every container overrides it.
    bad_containers = [_name(c) for c in pod.containers if _is_root(_security_context(c))]
    setters = _setters(_is_root(pod.security_context), bad_containers)
    if not setters:
        return None
    return _Failure("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def _seccomp_restricted(pod: _Pod) -> _Failure | None:
    if pod.is_windows:  # Windows has no seccomp; API validation forbids the field there.
        return None
    if (explicit := _seccomp_explicitly_bad(pod)) is not None:
        return explicit
    if _seccomp_type(pod.security_context) is not None:  # a valid pod level covers the unset containers
        return None
    unset = [_name(c) for c in pod.containers if _seccomp_type(_security_context(c)) is None]
    if not unset:
        return None
    return _Failure(
        "seccompProfile",
        f'pod or {_containers_phrase(unset)} must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost"',
    )


def _capabilities_restricted(pod: _Pod) -> _Failure | None:
    if pod.is_windows:  # Windows has no Linux capabilities; API validation forbids the field there.
        return None
    missing_drop_all: list[str] = []
    adding_forbidden: list[str] = []
    forbidden: set[str] = set()
    for container in pod.containers:
        capabilities = _mapping(_security_context(container).get("capabilities"))
        if "ALL" not in [str(cap) for cap in _sequence(capabilities.get("drop"))]:
            missing_drop_all.append(_name(container))
        extra = [cap for cap in _added_capabilities(container) if cap != "NET_BIND_SERVICE"]
        if extra:
            adding_forbidden.append(_name(container))
            forbidden.update(extra)
    details: list[str] = []
    if missing_drop_all:
        details.append(f'{_containers_phrase(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding_forbidden:
        details.append(
            f"{_containers_phrase(adding_forbidden)} must not include {_join_quote(sorted(forbidden))} "
            "in securityContext.capabilities.add"
        )
    return _Failure("unrestricted capabilities", "; ".join(details)) if details else None


# --- the registry (upstream registry.go) ---------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One upstream check: its ID, level, evaluation, first minor, and the baseline checks it replaces."""

    id: str
    level: Literal["baseline", "restricted"]
    evaluate: Callable[[_Pod], _Failure | None]
    since: int = 0
    overrides: tuple[str, ...] = ()


_CHECKS: tuple[_Check, ...] = (
    _Check("hostNamespaces", "baseline", _host_namespaces),
    _Check("privileged", "baseline", _privileged),
    _Check("capabilities_baseline", "baseline", _capabilities_baseline),
    _Check("hostPathVolumes", "baseline", _host_path_volumes),
    _Check("hostPorts", "baseline", _host_ports),
    _Check("appArmorProfile", "baseline", _app_armor),
    _Check("seLinuxOptions", "baseline", _selinux_options),
    _Check("procMount", "baseline", _proc_mount_baseline),
    _Check("seccompProfile_baseline", "baseline", _seccomp_explicitly_bad),
    _Check("sysctls", "baseline", _sysctls),
    _Check("windowsHostProcess", "baseline", _windows_host_process),
    _Check("hostProbesAndHostLifecycle", "baseline", _probe_hosts, since=34),
    _Check("restrictedVolumes", "restricted", _restricted_volumes, overrides=("hostPathVolumes",)),
    _Check("allowPrivilegeEscalation", "restricted", _allow_privilege_escalation),
    _Check("runAsNonRoot", "restricted", _run_as_non_root),
    _Check("runAsUser", "restricted", _run_as_user),
    _Check("seccompProfile_restricted", "restricted", _seccomp_restricted, overrides=("seccompProfile_baseline",)),
    _Check("capabilities_restricted", "restricted", _capabilities_restricted, overrides=("capabilities_baseline",)),
    # Keeps restricted unconditional when baseline procMount relaxes for user namespaces (1.35).
    _Check("procMount_restricted", "restricted", _unmasked_proc_mount, since=35, overrides=("procMount",)),
)


def _checks_for(level: Level, minor: int) -> list[_Check]:
    """The checks a level runs at a minor, in upstream's order: baseline IDs sorted, then restricted IDs sorted."""
    active = [check for check in _CHECKS if check.since <= minor]
    restricted = sorted((c for c in active if c.level == "restricted"), key=lambda c: c.id)
    overridden = {override for check in restricted for override in check.overrides} if level == "restricted" else set()
    baseline = sorted((c for c in active if c.level == "baseline" and c.id not in overridden), key=lambda c: c.id)
    return baseline + (restricted if level == "restricted" else [])


# --- public API ----------------------------------------------------------------------------------------

_VERSION = re.compile(r"v?1\.(\d+)")


def _minor(version: str) -> int:
    """The API server minor a `version` names; `latest` is the newest modelled one."""
    if version == "latest":
        return NEWEST_MINOR
    match = _VERSION.fullmatch(version)
    minor = int(match.group(1)) if match else -1
    if not OLDEST_MINOR <= minor <= NEWEST_MINOR:
        raise ValueError(f"unsupported Kubernetes version {version!r}: expected one of {', '.join(SUPPORTED_VERSIONS)}")
    return minor


def _level(level: str) -> Level:
    if level not in _LEVEL_BY_NAME:
        raise ValueError(f"unknown Pod Security level {level!r}: expected one of {', '.join(LEVELS)}")
    return _LEVEL_BY_NAME[level]


def violations(pod: Mapping[str, Any], level: Level, version: str = "latest") -> list[str]:
    """Why `level` would not admit `pod` on a `version` API server, one message per failed check.

    `pod` is `{"metadata": {...}, "spec": {...PodSpec...}}`, a Pod or a workload's pod template.
    The messages read like the PodSecurity warnings, `<reason> (<detail>)`, and name the fields,
    containers and volumes at fault. Empty means admitted; `privileged` admits everything.
    Raises ValueError for an unknown level or a version outside `SUPPORTED_VERSIONS`.
    """
    checked_level, minor = _level(level), _minor(version)
    if checked_level == "privileged":
        return []
    metadata = _mapping(pod.get("metadata"))
    annotations = {str(key): str(value) for key, value in _mapping(metadata.get("annotations")).items()}
    view = _Pod(annotations=annotations, spec=_mapping(pod.get("spec")), minor=minor)
    failures = (check.evaluate(view) for check in _checks_for(checked_level, minor))
    return [failure.message for failure in failures if failure is not None]


def strictest_level(pod: Mapping[str, Any], version: str = "latest") -> Level:
    """The strictest level that admits `pod` on a `version` API server (`privileged` admits every pod)."""
    for level in reversed(LEVELS):
        if not violations(pod, level, version):
            return level
    raise AssertionError("unreachable: the privileged level admits every pod")


def level_of(labels: Mapping[str, str]) -> Level:
    """The level the API server enforces in a namespace with these labels.

    No `pod-security.kubernetes.io/enforce` label: `privileged` (the built-in AdmissionConfiguration
    default). An unknown value (levels are case-sensitive): `restricted`, since PSA fails closed.
    """
    value = labels.get(ENFORCE_LABEL)
    if value is None:
        return "privileged"
    return _LEVEL_BY_NAME.get(value, "restricted")


# --- the validator ---------------------------------------------------------------------------

NAME = "pod-security"
NEEDS_REFERENCE = True


def validate(rendering: Rendering) -> list[Finding]:
    """Every pod passes its namespace's enforced level, and no namespace we own enforces less than
    the strictest level all of its pods pass."""
    model = cluster(rendering)
    findings = []
    strictest: dict[str, list[Level]] = {}
    for pod in model.pods():
        labels = model.namespace_labels(pod.namespace)
        if labels is None:
            continue  # a namespace we do not create (kube-system): not ours to judge
        level = level_of(labels)
        version = _enforce_version(labels)
        for problem in violations(pod.template(), level, version):
            findings.append(
                Finding(NAME, pod.source.describe(), f"namespace {pod.namespace} enforces {level}: {problem}")
            )
        strictest.setdefault(pod.namespace, []).append(strictest_level(pod.template(), version))
    for namespace, levels in strictest.items():
        labels = model.namespace_labels(namespace) or {}
        needed = min(levels, key=LEVELS.index)
        enforced = level_of(labels)
        if LEVELS.index(enforced) < LEVELS.index(needed):
            message = f"enforces {enforced}, but every pod in it passes {needed}: enforce {needed}"
            findings.append(Finding(NAME, f"Namespace {namespace}", message))
    return findings


def _enforce_version(labels: Mapping[str, str]) -> str:
    version = labels.get(f"{ENFORCE_LABEL}-version", "latest")
    return version if version == "latest" else version.removeprefix("v")
