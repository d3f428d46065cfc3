"""The stack outputs the verifier consumes, read from `pulumi stack output` or a file, and checked.

The contract (every key a stack output of this program):

- `role` ("central" | "edge"), `clusterName`;
- `kubeconfig`: kubeconfig YAML with inline certificates (the Minikube node's, API server `https://<host>:8443`,
  or an existing cluster's, as the operator set it);
- `ingressAddress`: the host's IP (an existing cluster's `ingress.address`), where Traefik serves every
  UI name on 443 (optional: without it, an older stack's UI names are looked up in DNS, and the
  `outputs` check says so);
- `grafanaUrl`, `grafanaAdminPassword`; `opensearchUrl` (https), `opensearchAdminPassword` (user `admin`);
  `storageClass` (where the volumes are claimed; `longhorn` unless the cluster brings its own, optional:
  older stacks did not export it), and with Longhorn `longhornUrl`, `longhornUiPassword` (user `admin`);
- central only: `thanosUrl` (Query Frontend, basic auth user `admin`), `thanosUiPassword`, `clusters`
  (every cluster central expects: itself and each edge);
- `platformCaCertificate` (PEM), `certificates` ({name: {"notAfter": ISO-8601, "hosts": [...]}}; without
  it, `certificateExpiry` ({name: ISO-8601}) is read instead);
- `objectStore` ({"endpoint": "host:port", "useTls", "region", "caCertificate": PEM | null,
  "buckets": {"thanos", "opensearch", "longhorn"}}); central only: `verifierCredentials`
  ({"accessKey", "secretKey"}, a read-only MinIO user).

A missing or malformed key is reported once (check `outputs`); each check that needs it is then
"not run", so one broken output never hides the checks that do not need it.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

CENTRAL = "central"
EDGE = "edge"
BASIC_AUTH_USER = "admin"
"""The user of every basic-auth endpoint (Thanos, Longhorn UI) and of OpenSearch and Grafana."""


class OutputsUnavailable(Exception):
    """The outputs could not be read at all (no Pulumi CLI, no such stack, not JSON)."""


class MissingOutput(Exception):
    """A check needs an output the stack does not provide (already reported by the `outputs` check)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Certificate:
    name: str
    not_after: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str
    use_tls: bool
    region: str
    ca_certificate: str | None
    buckets: dict[str, str]


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass
class Outputs:
    """The parsed outputs; a field is None when its key is missing or malformed (see `problems`)."""

    role: str | None = None
    cluster_name: str | None = None
    kubeconfig: str | None = None
    grafana_url: str | None = None
    grafana_password: str | None = None
    opensearch_url: str | None = None
    opensearch_password: str | None = None
    longhorn_url: str | None = None
    longhorn_password: str | None = None
    storage_class: str | None = None
    """Where the volumes are claimed; None for a stack from before it was exported (Longhorn then)."""
    thanos_url: str | None = None
    thanos_password: str | None = None
    clusters: list[str] | None = None
    platform_ca: str | None = None
    certificates: list[Certificate] | None = None
    object_store: ObjectStore | None = None
    verifier: Credentials | None = None
    ingress_address: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the `outputs` check reports without failing (an optional key an older stack lacks)."""

    @property
    def longhorn(self) -> bool:
        """The stack installs Longhorn (no StorageClass of the cluster's own)."""
        return self.storage_class in (None, LONGHORN_CLASS)

    @property
    def central(self) -> bool:
        return self.role == CENTRAL


T = TypeVar("T")


def need(value: T | None, key: str) -> T:
    """The value of an output a check cannot do without."""
    if value is None:
        raise MissingOutput(key)
    return value


def read_stack_outputs(stack: str, timeout: float) -> dict[str, Any]:
    """`pulumi stack output --json --show-secrets --stack S`, bounded in time."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise OutputsUnavailable("the Pulumi CLI is not on the PATH")
    command = [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OutputsUnavailable(f"`pulumi stack output` did not answer within {timeout:g}s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise OutputsUnavailable(f"`pulumi stack output --stack {stack}` failed: {last}")
    return _as_object(done.stdout, "`pulumi stack output`")


def read_outputs_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputsUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _as_object(text, str(path))


def _as_object(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputsUnavailable(f"{source} is not JSON: {exc.msg} (line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise OutputsUnavailable(f"{source} is not a JSON object of stack outputs")
    return data


class _Reader:
    """Reads typed keys from the raw outputs, collecting one problem per bad key."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.problems.append(f"{key} is missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{key} is not a non-empty string")
            return None
        return value

    def url(self, key: str, required: bool = True) -> str | None:
        value = self.text(key, required)
        if value is not None and not value.startswith(("https://", "http://")):
            self.problems.append(f"{key} is not an http(s) URL: {value!r}")
            return None
        return value

    def address(self, key: str) -> str | None:
        value = self.text(key, required=False)
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            self.problems.append(f"{key} is not an IP address: {value!r}")
            return None

    def clusters(self) -> list[str] | None:
        value = self.raw.get("clusters")
        if value is None:
            self.problems.append("clusters is missing")
            return None
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            self.problems.append("clusters is not a non-empty list of cluster names")
            return None
        return list(value)

    def certificates(self) -> list[Certificate] | None:
        value = self.raw.get("certificates")
        expiry = self.raw.get("certificateExpiry")
        if value is None and isinstance(expiry, dict) and all(isinstance(v, str) for v in expiry.values()):
            # The program's PlatformCa exports `certificateExpiry` ({name: RFC 3339 end}): the same
            # ends without their hosts, accepted until it exports `certificates`.
            return [Certificate(str(name), end, ()) for name, end in expiry.items()]
        if value is None:
            self.problems.append("certificates is missing")
            return None
        if not isinstance(value, dict):
            self.problems.append("certificates is not an object {name: {notAfter, hosts}}")
            return None
        parsed: list[Certificate] = []
        for name, cert in value.items():
            if not isinstance(cert, dict) or not isinstance(cert.get("notAfter"), str):
                self.problems.append(f"certificates.{name} has no notAfter string")
                continue
            hosts = cert.get("hosts") or []
            parsed.append(Certificate(name, cert["notAfter"], tuple(str(h) for h in hosts)))
        return parsed

    def object_store(self) -> ObjectStore | None:
        value = self.raw.get("objectStore")
        if not isinstance(value, dict):
            self.problems.append("objectStore is missing" if value is None else "objectStore is not an object")
            return None
        buckets = value.get("buckets")
        endpoint = value.get("endpoint")
        bad = [
            *([] if isinstance(endpoint, str) and ":" in endpoint else ["endpoint (host:port)"]),
            *([] if isinstance(value.get("useTls"), bool) else ["useTls"]),
            *([] if isinstance(value.get("region"), str) else ["region"]),
            *(
                []
                if value.get("caCertificate") is None or isinstance(value["caCertificate"], str)
                else ["caCertificate"]
            ),
            *(
                []
                if isinstance(buckets, dict) and all(isinstance(buckets.get(k), str) for k in BUCKET_ROLES)
                else ["buckets {thanos, opensearch, longhorn}"]
            ),
        ]
        if bad:
            self.problems.append(f"objectStore lacks or mistypes: {', '.join(bad)}")
            return None
        assert isinstance(buckets, dict) and isinstance(endpoint, str)
        return ObjectStore(
            endpoint=endpoint,
            use_tls=value["useTls"],
            region=value["region"] or "us-east-1",
            ca_certificate=value.get("caCertificate"),
            buckets={role: buckets[role] for role in BUCKET_ROLES},
        )

    def credentials(self) -> Credentials | None:
        value = self.raw.get("verifierCredentials")
        if not isinstance(value, dict):
            missing = value is None
            self.problems.append(
                "verifierCredentials is missing" if missing else "verifierCredentials is not an object"
            )
            return None
        access, secret = value.get("accessKey"), value.get("secretKey")
        if not isinstance(access, str) or not isinstance(secret, str) or not access or not secret:
            self.problems.append("verifierCredentials lacks accessKey or secretKey")
            return None
        return Credentials(access, secret)


BUCKET_ROLES = ("thanos", "opensearch", "longhorn")
LONGHORN_CLASS = "longhorn"
NO_INGRESS_ADDRESS = (
    "no ingressAddress (a stack from before it was exported): the UI names are looked up in DNS; `pulumi up` exports it"
)


def parse(raw: dict[str, Any]) -> Outputs:
    """The typed outputs of one stack; what is wrong is listed in `problems`."""
    read = _Reader(raw)
    role = read.text("role")
    if role is not None and role not in (CENTRAL, EDGE):
        read.problems.append(f"role is {role!r}, not central or edge")
        role = None
    central = role == CENTRAL
    storage_class = read.text("storageClass", required=False)
    longhorn = storage_class in (None, LONGHORN_CLASS)
    out = Outputs(
        role=role,
        cluster_name=read.text("clusterName"),
        kubeconfig=read.text("kubeconfig"),
        grafana_url=read.url("grafanaUrl"),
        grafana_password=read.text("grafanaAdminPassword"),
        opensearch_url=read.url("opensearchUrl"),
        opensearch_password=read.text("opensearchAdminPassword"),
        longhorn_url=read.url("longhornUrl", required=longhorn),
        longhorn_password=read.text("longhornUiPassword", required=longhorn),
        storage_class=storage_class,
        thanos_url=read.url("thanosUrl", required=central),
        thanos_password=read.text("thanosUiPassword", required=central),
        clusters=read.clusters() if central else None,
        platform_ca=read.text("platformCaCertificate"),
        certificates=read.certificates(),
        object_store=read.object_store(),
        verifier=read.credentials() if central else None,
        ingress_address=read.address("ingressAddress"),
    )
    if raw.get("ingressAddress") is None:
        out.notes.append(NO_INGRESS_ADDRESS)
    if out.platform_ca is not None and "BEGIN CERTIFICATE" not in out.platform_ca:
        read.problems.append("platformCaCertificate is not a PEM certificate")
        out.platform_ca = None
    out.problems = read.problems
    return out
