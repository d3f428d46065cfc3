"""Every exposed endpoint is served over TLS with a certificate for its name, every client we
configure verifies, and the cross-host StoreAPI requires a client certificate.

Checked on the cluster as Helm renders it (`tools.cluster`), so a chart's own Ingress or config
counts as much as ours:

- every Ingress has a `tls` entry for each of its hosts, and its router is not told to skip TLS;
- nothing turns verification off: no `insecureSkipVerify`/`insecure_skip_verify`, no Fluent Bit
  `tls.verify Off`, no Thanos `--grpc-client-tls-skip-verify`, no `insecure-skip-tls-verify`, in
  any object or in the inputs of any resource (the OpenSearch provider's included);
- every certificate's names match where it is served: each Ingress host by the ingress
  certificate, the names Traefik and Fluent-bit dial by OpenSearch's, and on an edge the host
  address central dials by the sidecar's (central: each edge's `server_name` by what it issued);
- an edge's sidecar StoreAPI, exposed to another host, has a server certificate and a client CA
  (Thanos then requires a client certificate), and that client CA is not the platform CA: the
  platform CA also signs every cluster's OpenSearch node certificate, which allows client
  authentication, so any OpenSearch key would open the StoreAPI (the client CA must be the StoreAPI
  client CA, which signs Query's certificate alone).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import yaml

from components.cluster_tls import INGRESS, OPENSEARCH, SIDECAR
from components.settings import SettingsError, settings_of
from tools.cluster import Cluster, cluster
from tools.engine import Rendering, Secret, unwrap
from tools.validators.common import Finding, lookup

NAME = "transport-security"
NEEDS_REFERENCE = True

SKIP_VERIFY_KEYS = frozenset({"insecureSkipVerify", "insecure_skip_verify", "insecure-skip-tls-verify"})
VERIFY_KEYS = frozenset({"verify_tls", "verifyTls", "tlsVerify", "tls.verify"})
"""Keys that switch verification off when false."""
SKIP_VERIFY_TEXT = (
    re.compile(r"insecure[_-]?skip[_-]?(tls[_-]?)?verify\"?\s*[:=]\s*\"?true", re.IGNORECASE),
    re.compile(r"^\s*tls\.verify\s+(off|false|0)\s*$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"--grpc-client-tls-skip-verify(=true)?(\s|$)"),
    re.compile(r"verify_tls\"?\s*[:=]\s*\"?false", re.IGNORECASE),
)
ROUTER_TLS = "traefik.ingress.kubernetes.io/router.tls"
ACCEPTED_SKIP_VERIFY: dict[tuple[str, str], str] = {
    # The one exception, kept visible here and in the README ("Security"): the kubelet's serving
    # certificate is self-signed by the kubelet itself (kubeadm's default, which minikube runs), so
    # no CA can verify it. Prometheus reaches the kubelet on the node's own address, on this one host:
    # the connection never leaves the machine. Verifying it needs `serverTLSBootstrap` and an
    # approver for the kubelet's serving CSRs, not done here.
    ("ServiceMonitor", "kps-kubelet"): "the kubelet's self-signed serving certificate, scraped on the same host",
}


def skipped_verification(value: Any) -> list[str]:
    """Where `value` turns certificate verification off."""
    found: list[str] = []
    _check(value, (), "", found)
    return found


def _check(value: Any, where: tuple[str | int, ...], key: str, found: list[str]) -> None:
    """`value` and everything in it (a secret stands for what it holds). `where` holds the keys and
    list indexes down to it, made a path only for a finding: the charts' objects have a million
    values. `key` is the path's last dotted part (what a key name is matched on; nothing for the
    root or a list item)."""
    while isinstance(value, Secret):
        value = value.value
    if key in SKIP_VERIFY_KEYS and value is True:
        found.append(f"{_path(where)} is true")
    elif key in VERIFY_KEYS and value is False:
        found.append(f"{_path(where)} is false: verification off")
    elif isinstance(value, str) and any(pattern.search(value) for pattern in SKIP_VERIFY_TEXT):
        found.append(f"{_path(where)} turns verification off")
    if isinstance(value, dict):
        for name, item in value.items():
            _check(item, (*where, str(name)), str(name).rsplit(".", 1)[-1], found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, (*where, index), "", found)


def _path(where: tuple[str | int, ...]) -> str:
    text = ""
    for part in where:
        text = f"{text}[{part}]" if isinstance(part, int) else (f"{text}.{part}" if text else part)
    return text


def covered(host: str, names: list[str]) -> bool:
    """Whether a certificate for `names` is valid for `host` (a wildcard covers one label)."""
    return any(name == host or (name.startswith("*.") and fnmatch.fnmatch(host, name) and
               host.count(".") == name.count(".")) for name in names)  # fmt: skip


def _ingress_findings(model: Cluster, ingress_names: list[str]) -> Iterator[Finding]:
    for ingress in model.of_kind("Ingress"):
        where = f"Ingress {ingress.namespace}/{ingress.name} ({ingress.origin})"
        tls_hosts = {host for entry in lookup(ingress.obj, "spec.tls") or [] for host in entry.get("hosts") or []}
        for rule in lookup(ingress.obj, "spec.rules") or []:
            host = rule.get("host")
            if host is None:
                yield Finding(NAME, where, "a rule without a host is served on every name, over plain HTTP too")
                continue
            if host not in tls_hosts:
                yield Finding(NAME, where, f"{host} has no `tls` entry: its router would serve plain HTTP")
            if not covered(host, ingress_names):
                yield Finding(NAME, where, f"{host} is not named by the ingress certificate {ingress_names}")
        annotations = lookup(ingress.obj, "metadata.annotations") or {}
        if str(annotations.get(ROUTER_TLS, "true")).lower() == "false":
            yield Finding(NAME, where, f"{ROUTER_TLS} is false")


def _verification_findings(rendering: Rendering, model: Cluster) -> Iterator[Finding]:
    for obj in model.objects:
        if (obj.kind, obj.name) in ACCEPTED_SKIP_VERIFY:
            continue
        for problem in skipped_verification(obj.obj):
            yield Finding(NAME, f"{obj.kind} {obj.namespace}/{obj.name} ({obj.origin})", problem)
    for resource in rendering.resources:
        if resource.type.startswith("kubernetes:") and resource.type != "kubernetes:helm.sh/v3:Release":
            continue  # the objects themselves are checked above, as the API server gets them
        for problem in skipped_verification(resource.inputs):
            yield Finding(NAME, f"{resource.type} {resource.name}", problem)


def _opensearch_findings(model: Cluster, names: list[str]) -> Iterator[Finding]:
    for transport in model.of_kind("ServersTransport"):
        server_name = lookup(transport.obj, "spec.serverName")
        where = f"ServersTransport {transport.namespace}/{transport.name}"
        if not server_name or not covered(server_name, names):
            yield Finding(NAME, where, f"serverName {server_name!r} is not named by OpenSearch's certificate")
        if not lookup(transport.obj, "spec.rootCAs"):
            yield Finding(NAME, where, "no rootCAs: the backend would be checked against public CAs only")
    for config in model.of_kind("ConfigMap"):
        text = (lookup(config.obj, "data") or {}).get("fluent-bit.conf")
        if not text:
            continue
        for host in re.findall(r"^\s*Host\s+(\S+)\s*$", text, flags=re.MULTILINE):
            if not covered(host, names):
                yield Finding(NAME, f"ConfigMap {config.namespace}/{config.name}", f"Fluent-bit dials {host}, "
                              "which OpenSearch's certificate does not name")  # fmt: skip


def _sidecar_findings(rendering: Rendering, model: Cluster, certificates: dict[str, Any]) -> Iterator[Finding]:
    try:
        config = settings_of(rendering.config, rendering.stack)
    except SettingsError:
        return  # a synthetic rendering without a stack's config: nothing to compare with
    if config.is_central:
        issued = unwrap(rendering.outputs.get("tlsCertificates")) or {}
        yield from _query_endpoint_findings(model, config.edges, issued)
        return
    sidecar_names = (certificates.get(SIDECAR) or {}).get("hosts") or []
    if config.host is not None and config.host not in sidecar_names:  # an existing cluster's is central's to say
        yield Finding(NAME, "certificates.sidecar", f"central dials {config.host}, not in {sidecar_names}")
    for prometheus in model.of_kind("Prometheus"):
        tls = lookup(prometheus.obj, "spec.thanos.grpcServerTlsConfig") or {}
        where = f"Prometheus {prometheus.namespace}/{prometheus.name}"
        for field in ("certFile", "keyFile"):
            if not tls.get(field):
                yield Finding(NAME, where, f"the sidecar's StoreAPI is exposed to central without TLS ({field})")
        if not tls.get("caFile"):
            yield Finding(NAME, where, "no client CA: the sidecar's StoreAPI would accept any client")
            continue
        client_ca = _mounted_secret_key(rendering, prometheus.obj, prometheus.namespace or "", tls["caFile"])
        platform_ca = str(unwrap(rendering.outputs.get("platformCaCertificate")) or "").strip()
        if client_ca is None:
            yield Finding(NAME, where, f"the sidecar's client CA {tls['caFile']} is in no Secret it mounts")
        elif platform_ca and platform_ca in client_ca:
            yield Finding(NAME, where, "the sidecar's client CA is the platform CA, which also signs every "
                          "cluster's OpenSearch node certificate (client_auth): any of their keys would open "
                          "the StoreAPI; it must be the StoreAPI client CA alone")  # fmt: skip


def _mounted_secret_key(rendering: Rendering, prometheus: dict[str, Any], namespace: str, path: str) -> str | None:
    """The text of the Secret key the sidecar reads at `path` (a mount of `spec.thanos.volumeMounts`),
    from the program's Secret (the cluster model shows no Secret's values)."""
    mounts = lookup(prometheus, "spec.thanos.volumeMounts") or []
    volumes = {v.get("name"): v for v in lookup(prometheus, "spec.volumes") or []}
    for mount in mounts:
        directory = str(mount.get("mountPath", "")).rstrip("/")
        secret = (volumes.get(mount.get("name")) or {}).get("secret") or {}
        if not path.startswith(f"{directory}/") or not secret.get("secretName"):
            continue
        key = path.removeprefix(f"{directory}/")
        try:
            data = unwrap(rendering.k8s("Secret", secret["secretName"], namespace).inputs.get("stringData")) or {}
        except LookupError:
            return None
        return None if key not in data else str(unwrap(data[key]))
    return None


def _query_endpoint_findings(model: Cluster, edges: Any, issued: dict[str, Any]) -> Iterator[Finding]:
    by_address = {f"{edge.host}": edge for edge in edges}
    for config_map in model.of_kind("ConfigMap"):
        text = (lookup(config_map.obj, "data") or {}).get("endpoints.yaml")
        if not text:
            continue
        where = f"ConfigMap {config_map.namespace}/{config_map.name}"
        for entry in yaml.safe_load(text).get("endpoints") or []:
            edge = by_address.get(str(entry.get("address", "")).rsplit(":", 1)[0])
            if edge is None:
                continue
            client = entry.get("client_config") or {}
            tls = client.get("tls_config") or {}
            if not tls.get("enabled") or not tls.get("cert_file") or not tls.get("ca_file"):
                yield Finding(NAME, where, f"{entry['address']}: not mutual TLS (enabled, cert_file, ca_file)")
            names = ((issued.get(edge.name) or {}).get(SIDECAR) or {}).get("hosts") or []
            if client.get("server_name") not in names:
                yield Finding(NAME, where, f"{entry['address']}: server_name {client.get('server_name')!r} "
                              f"is not named by {edge.name}'s sidecar certificate {names}")  # fmt: skip


def validate(rendering: Rendering) -> list[Finding]:
    model = cluster(rendering)
    certificates = unwrap(rendering.outputs.get("certificates")) or {}
    ingress_names = (certificates.get(INGRESS) or {}).get("hosts") or []
    opensearch_names = (certificates.get(OPENSEARCH) or {}).get("hosts") or []
    findings = [
        *_ingress_findings(model, ingress_names),
        *_verification_findings(rendering, model),
        *_opensearch_findings(model, opensearch_names),
        *_sidecar_findings(rendering, model, certificates),
    ]
    return sorted(set(findings), key=str)
