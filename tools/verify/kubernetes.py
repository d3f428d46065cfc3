"""Kubernetes: the API answers with the stack's kubeconfig; the platform's workloads are ready, its
volumes bound, and Longhorn's backup target available.

API shapes: apps/v1 and core/v1 as in Kubernetes 1.36; Longhorn 1.12's `backuptargets.longhorn.io/v1beta2`
(longhorn-manager `k8s/pkg/apis/longhorn/v1beta2/backuptarget.go`: `status.available` bool,
`status.conditions[]` of {type, status, reason, message}, `Unavailable` when it is not, `lastSyncedAt`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from tools.verify.context import Context, Endpoint
from tools.verify.outputs import need
from tools.verify.report import Result, Status, fail, not_installed, not_run, ok

# The namespaces the program creates (README "What you get"; the ingress controller's moves to `ingress`
# with Traefik). `--namespaces` overrides this while the program and this list disagree.
PLATFORM_NAMESPACES = ("monitoring", "node-exporter", "logging", "fluent-bit", "longhorn-system", "ingress")
LONGHORN_NAMESPACE = "longhorn-system"
BACKUP_TARGET = "default"
WORKLOAD_KINDS = (("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets"))


class KubeconfigError(Exception):
    """The kubeconfig output cannot be used (not YAML, no current context, verification disabled)."""


@dataclass(frozen=True)
class Kubeconfig:
    server: str
    ca_pem: bytes | None
    client_cert_pem: bytes | None
    client_key_pem: bytes | None
    token: str | None


def _inline(entry: dict[str, Any], key: str) -> bytes | None:
    """`<key>-data` (base64) as bytes; a file path cannot be followed from another machine."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"{key}-data is not base64") from exc
    if entry.get(key):
        raise KubeconfigError(f"{key} points at a file ({entry[key]}); the output must inline it as {key}-data")
    return None


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for item in config.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(section[:-1])
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"no {section[:-1]} named {name!r}")


def parse_kubeconfig(text: str) -> Kubeconfig:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"not YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise KubeconfigError("not a kubeconfig object")
    contexts = config.get("contexts") or []
    current = config.get("current-context") or (contexts[0].get("name") if len(contexts) == 1 else None)
    if not current:
        raise KubeconfigError("no current-context")
    context = _named(config, "contexts", current)
    cluster = _named(config, "clusters", str(context.get("cluster")))
    user = _named(config, "users", str(context.get("user"))) if context.get("user") else {}
    if cluster.get("insecure-skip-tls-verify"):
        raise KubeconfigError("insecure-skip-tls-verify is set; this tool never disables verification")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise KubeconfigError(f"the cluster's server is not an https URL: {server!r}")
    return Kubeconfig(
        server=server,
        ca_pem=_inline(cluster, "certificate-authority"),
        client_cert_pem=_inline(user, "client-certificate"),
        client_key_pem=_inline(user, "client-key"),
        token=user.get("token"),
    )


def api(ctx: Context) -> Endpoint:
    """The API server, trusting the kubeconfig's CA (the cluster's own, as kubectl does)."""
    if "kube" not in ctx.shared:
        config = parse_kubeconfig(need(ctx.outputs.kubeconfig, "kubeconfig"))
        verify = ctx.write_file("kube-ca.pem", config.ca_pem) if config.ca_pem else ctx.platform_bundle()
        cert = None
        if config.client_cert_pem and config.client_key_pem:
            cert = (
                ctx.write_file("kube-client.pem", config.client_cert_pem),
                ctx.write_file("kube-client.key", config.client_key_pem),
            )
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        ctx.shared["kube"] = ctx.endpoint(
            "Kubernetes API",
            config.server,
            verify=verify,
            cert=cert,
            headers=headers,
            trust="the kubeconfig's certificate-authority-data" if config.ca_pem else "platformCaCertificate",
            auth_hint="the kubeconfig's client certificate or token was refused: take the current `kubeconfig` output",
        )
    endpoint: Endpoint = ctx.shared["kube"]
    return endpoint


def items(response: Any) -> list[dict[str, Any]]:
    found = response["items"]
    if not isinstance(found, list):
        raise TypeError("items is not a list")
    return found


def check_api(ctx: Context) -> Result:
    try:
        endpoint = api(ctx)
    except KubeconfigError as exc:
        return fail(
            "kubernetes.api",
            f"the kubeconfig output is unusable: {exc}",
            "run `pulumi up` again so the output is refreshed",
        )
    version = endpoint.get_json("version")
    return ok("kubernetes.api", f"Kubernetes {version.get('gitVersion', '?')} at {endpoint.base_url}")


# --- workloads ------------------------------------------------------------------------------


def _count(status: dict[str, Any], key: str) -> int:
    return int(status.get(key) or 0)


def workload_problem(kind: str, obj: dict[str, Any]) -> str | None:
    """Why a workload is not ready, or None: ready == desired, rollout observed and complete."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = int(obj["metadata"].get("generation") or 0)
    observed = _count(status, "observedGeneration")
    if kind == "DaemonSet":
        desired = _count(status, "desiredNumberScheduled")
        ready, updated = _count(status, "numberReady"), _count(status, "updatedNumberScheduled")
        if desired == 0:
            return "scheduled on no node (nodeSelector, taints?)"
    else:
        desired = int(spec.get("replicas", 1))
        ready, updated = _count(status, "readyReplicas"), _count(status, "updatedReplicas")
        if desired == 0:
            return "scaled to 0 replicas"
    if observed < generation:
        return f"generation {generation} not yet observed by its controller (observed {observed})"
    if ready < desired:
        return f"{ready}/{desired} ready"
    rolling = kind == "Deployment" or (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and updated < desired:
        return f"rollout incomplete: {updated}/{desired} updated"
    return None


def _namespaces(ctx: Context) -> tuple[str, ...]:
    platform = tuple(ns for ns in PLATFORM_NAMESPACES if ctx.outputs.longhorn or ns != LONGHORN_NAMESPACE)
    return ctx.options.namespaces or platform


def _existing_namespaces(ctx: Context) -> set[str]:
    if "namespaces" not in ctx.shared:
        ctx.shared["namespaces"] = {ns["metadata"]["name"] for ns in items(api(ctx).get_json("api/v1/namespaces"))}
    found: set[str] = ctx.shared["namespaces"]
    return found


def _workloads(ctx: Context) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every Deployment, StatefulSet and DaemonSet by namespace (three cluster-wide lists)."""
    wanted = set(_namespaces(ctx))
    by_namespace: dict[str, list[tuple[str, dict[str, Any]]]] = {ns: [] for ns in wanted}
    for kind, plural in WORKLOAD_KINDS:
        for obj in items(api(ctx).get_json(f"apis/apps/v1/{plural}")):
            namespace = obj["metadata"]["namespace"]
            if namespace in wanted:
                by_namespace[namespace].append((kind, obj))
    return by_namespace


def _summary(workloads: Iterable[tuple[str, dict[str, Any]]]) -> str:
    counts: dict[str, int] = {}
    for kind, _ in workloads:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items())


def check_workloads(ctx: Context) -> list[Result]:
    existing = _existing_namespaces(ctx)
    by_namespace = _workloads(ctx)
    return [_namespace_result(ns, ns in existing, by_namespace[ns]) for ns in _namespaces(ctx)]


def _namespace_result(namespace: str, exists: bool, workloads: list[tuple[str, dict[str, Any]]]) -> Result:
    check = f"kubernetes.workloads[{namespace}]"
    if not exists:
        return fail(
            check, f"namespace {namespace} does not exist", "`pulumi up` did not finish, or the namespace was deleted"
        )
    if not workloads:
        return fail(
            check, f"no Deployment, StatefulSet or DaemonSet in {namespace}", "its Helm release failed or was removed"
        )
    problems = [
        f"{kind} {obj['metadata']['name']}: {problem}"
        for kind, obj in workloads
        if (problem := workload_problem(kind, obj)) is not None
    ]
    if problems:
        return fail(
            check,
            "; ".join(problems),
            f"kubectl -n {namespace} get pods; kubectl -n {namespace} describe pod <pod> (image pulls, probes, "
            "scheduling, volumes)",
        )
    return ok(check, f"{_summary(workloads)} ready")


def check_volumes(ctx: Context) -> Result:
    existing = _existing_namespaces(ctx)
    wanted = {ns for ns in _namespaces(ctx) if ns in existing}
    claims = [
        pvc
        for pvc in items(api(ctx).get_json("api/v1/persistentvolumeclaims"))
        if pvc["metadata"]["namespace"] in wanted
    ]
    unbound = [
        f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}: {phase or 'no phase'}"
        for pvc in claims
        if (phase := (pvc.get("status") or {}).get("phase")) != "Bound"
    ]
    if unbound:
        return fail(
            "kubernetes.volumes",
            "not Bound: " + "; ".join(unbound),
            "kubectl describe pvc: its StorageClass must provision it (with Longhorn: `kubectl -n longhorn-system "
            "get pods`, Longhorn running and its StorageClass the default)",
        )
    if not claims:
        return fail(
            "kubernetes.volumes",
            "no PersistentVolumeClaim in the platform's namespaces",
            "Prometheus, Alertmanager, Grafana and OpenSearch each claim a Longhorn volume: their releases are missing",
        )
    return ok("kubernetes.volumes", f"{len(claims)} PersistentVolumeClaims Bound")


# --- Longhorn -------------------------------------------------------------------------------


def describe_conditions(conditions: Any) -> str:
    parts = [
        f"{c.get('type')}={c.get('status')}"
        + (f" ({c['reason']})" if c.get("reason") else "")
        + (f": {c['message']}" if c.get("message") else "")
        for c in conditions or []
        if isinstance(c, dict)
    ]
    return "; ".join(parts) or "no conditions reported"


def check_backup_target(ctx: Context) -> Result:
    check = "longhorn.backup-target"
    path = f"apis/longhorn.io/v1beta2/namespaces/{LONGHORN_NAMESPACE}/backuptargets/{BACKUP_TARGET}"
    response = api(ctx).request("GET", path, ok=(200, 404))
    if response.status_code == 404:
        return fail(
            check,
            f"no BackupTarget {BACKUP_TARGET!r} in {LONGHORN_NAMESPACE}",
            "Longhorn is not running (1.8+ creates it), or its CRDs are missing",
        )
    status = api(ctx).json_of(response).get("status") or {}
    url = (api(ctx).json_of(response).get("spec") or {}).get("backupTargetURL", "?")
    if status.get("available") is True:
        return ok(check, f"{url} available, last synced {status.get('lastSyncedAt') or 'never'}")
    return fail(
        check,
        f"{url} not available: {describe_conditions(status.get('conditions'))}",
        "Longhorn cannot reach or authenticate to the bucket: check MinIO is up, the Secret "
        "longhorn-system/longhorn-backup-credentials (keys, AWS_ENDPOINTS, AWS_CERT) and the NetworkPolicy to S3",
    )


def run(ctx: Context) -> list[Result]:
    results = ctx.run("kubernetes.api", lambda: check_api(ctx))
    if any(r.status is not Status.OK for r in results):
        # Without the API nothing else here can be asked; say so per check rather than repeat the failure.
        dependents = [f"kubernetes.workloads[{ns}]" for ns in _namespaces(ctx)]
        dependents += ["kubernetes.volumes", "longhorn.backup-target"]
        return results + [
            not_run(check, "the Kubernetes API is not usable (see kubernetes.api)") for check in dependents
        ]
    results += ctx.run("kubernetes.workloads", lambda: check_workloads(ctx))
    results += ctx.run("kubernetes.volumes", lambda: check_volumes(ctx))
    if not ctx.outputs.longhorn:
        why = f"volumes are on StorageClass {ctx.outputs.storage_class}"
        return [*results, not_installed("longhorn.backup-target", why)]
    results += ctx.run("longhorn.backup-target", lambda: check_backup_target(ctx))
    return results
