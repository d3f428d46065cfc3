"""A real Kubernetes control plane for the integration suite: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, all at the versions the platform runs.

    with running_kube_api(tmp_path, control_plane_binaries()) as api:
        api.kubectl("apply", "--server-side", "-f", "-", input=manifest)
        api.get("pods", "-n", "monitoring")            # parsed `-o json`

What runs, as a minikube 1.36 node's control plane runs it (kubeadm's static pods):

- etcd v3.6.8 (Kubernetes v1.36.3's), one member, plain HTTP on the listening address only;
- kube-apiserver v1.36.3 with kubeadm's flags (`--authorization-mode=Node,RBAC`, service-account
  issuer and signing key, `--allow-privileged`, the 10.96.0.0/12 service range) and minikube's
  `--enable-admission-plugins`, which add to the default set: PodSecurity with the built-in
  configuration (no exemptions, `privileged` by default), NamespaceLifecycle, LimitRanger,
  ServiceAccount, DefaultStorageClass, ResourceQuota, the admission webhooks, ... The plugins the
  server really loaded are in `KubeApi.admission_plugins()` (its own log line);
- kube-controller-manager v1.36.3 with kubeadm's flags (`--use-service-account-credentials`, all
  controllers, the cluster signing CA) and minikube's `--leader-elect=false`;
- kube-scheduler v1.36.3 (the default profile), built by the same builder module;
- kwok v0.8.0 managing fake nodes (`NodeSpec`: by default minikube's one, `minikube`; or the nodes of
  an existing cluster, each at its size and address), which it keeps Ready (heartbeat and lease), and
  on which it marks every pod bound to them Running and Ready (Job pods Succeeded): no container runs.

Every identity has a client certificate of a throwaway CA made here (the admin is in
`system:masters`, the controller-manager and scheduler are the users the bootstrap RBAC policy
knows); the serving certificate names the listening address, 127.0.0.1 and the names a pod uses
(`kubernetes.default.svc`, ...). Nothing listens beyond `address` (loopback unless a network
namespace is given through `prefix`, e.g. `Host.command([])`), and each port is picked free. The
controller-manager and scheduler serve no port of their own (`--secure-port=0`). Everything is
stopped and removed on exit; each process's log stays in `directory/logs/`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration import programs
from tests.integration.binaries import BUILDERS
from tools import helm

KUBERNETES = programs.KUBERNETES
ETCD = programs.ETCD
KWOK = programs.KWOK


MINIKUBE_ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "NodeRestriction",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)
"""minikube's `--enable-admission-plugins` (pkg/minikube/bootstrapper/bsutil); added to the defaults."""

SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.244.0.0/16"
POD_CIDR = "10.244.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_NAME = "minikube"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

T = TypeVar("T")


@dataclass(frozen=True)
class ControlPlaneBinaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None = None
    kube_scheduler: Path | None = None
    kwok: Path | None = None
    kubectl: Path | None = None


def kubectl_binary() -> Path | None:
    found = helm.kubectl_binary()
    return Path(found) if found else None


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A client certificate and key, and the kubeconfig that uses them."""

    name: str
    cert: Path
    key: Path
    kubeconfig: Path


@dataclass(frozen=True)
class ControlPlanePki:
    ca: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    service_account_pub: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _write(path: Path, content: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    return path


def _signed(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    name: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(cert_sign=False), True),
        (x509.ExtendedKeyUsage([usage]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[0].public_key()), False),
    ]
    if sans:
        extensions.append((x509.SubjectAlternativeName(list(sans)), False))
    return key, _signed(name, key.public_key(), ca, extensions, ca[0])


def serving_names(address: str, extra: Sequence[str] = ()) -> list[x509.GeneralName]:
    """What a client of the apiserver dials: the address, loopback, the `kubernetes` Service's IP and names."""
    service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
    ips = dict.fromkeys([address, "127.0.0.1", service_ip])
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    dns += ["kubernetes.default.svc.cluster.local", "control-plane.minikube.internal", *extra]
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return names + [x509.DNSName(name) for name in dict.fromkeys(dns)]


def make_control_plane_pki(directory: Path, address: str, extra_names: Sequence[str] = ()) -> ControlPlanePki:
    """A throwaway cluster CA, the apiserver's serving certificate and the service-account key pair."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway kubernetes CA (integration tests)")])
    ca_extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (_key_usage(cert_sign=True), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    ]
    ca_cert = _signed(ca_name, ca_key.public_key(), None, ca_extensions, ca_key)
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    sans = serving_names(address, extra_names)
    serving_key, serving_cert = _leaf((ca_key, ca_cert), server_name, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = serialization.Encoding.PEM
    return ControlPlanePki(
        ca=_write(directory / "ca.crt", ca_cert.public_bytes(pem)),
        ca_key=_write(directory / "ca.key", _pem_key(ca_key), 0o600),
        serving_cert=_write(directory / "apiserver.crt", serving_cert.public_bytes(pem)),
        serving_key=_write(directory / "apiserver.key", _pem_key(serving_key), 0o600),
        service_account_key=_write(directory / "sa.key", _pem_key(sa_key), 0o600),
        service_account_pub=_write(directory / "sa.pub", sa_pub),
    )


def make_identity(directory: Path, pki: ControlPlanePki, server: str, user: str, group: str = "") -> Identity:
    """A client certificate for `user` (in `group`) and its kubeconfig for `server`."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    if group:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, group))
    key, cert = _leaf((ca_key, ca_cert), x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH)
    slug = re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-")
    cert_path = _write(directory / f"{slug}.crt", cert.public_bytes(serialization.Encoding.PEM))
    key_path = _write(directory / f"{slug}.key", _pem_key(key), 0o600)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "integration", "cluster": {"server": server, "certificate-authority": str(pki.ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert_path), "client-key": str(key_path)}}],
        "contexts": [{"name": "integration", "context": {"cluster": "integration", "user": user}}],
        "current-context": "integration",
    }
    kubeconfig = _write(directory / f"{slug}.kubeconfig", yaml.safe_dump(config).encode(), 0o600)
    return Identity(user, cert_path, key_path, kubeconfig)


# --- processes ----------------------------------------------------------------------------------


class ControlPlaneFailed(RuntimeError):
    """A component exited or never became ready; the message ends with the tail of its log."""


NAMESPACE_PORTS = {"etcd-client": 2379, "etcd-peer": 2380, "kube-apiserver": 8443}
"""In a network namespace of its own the control plane has its ports to itself: etcd's and minikube's."""


def free_port(address: str, name: str) -> int:
    """A port the kernel says is free on `address`, or, where `address` is not this namespace's
    (the control plane runs in another one, `prefix`), the well-known port `NAMESPACE_PORTS[name]`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return NAMESPACE_PORTS[name]
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Component:
    """One running program of the control plane; its output goes to `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    killed: bool = False
    """It did not end within the stop timeout of SIGTERM and was killed."""

    def failed(self, why: str) -> ControlPlaneFailed:
        return ControlPlaneFailed(f"{self.name} {why}; the end of its log ({self.log}):\n{log_tail(self.log)}")

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise self.failed(f"exited with {self.process.returncode}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after `timeout` (`killed`); the exit code (negative for a signal)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


GRACEFUL_EXITS = {
    "kwok": 0,
    "kube-scheduler": 1,  # without leader election, its loop ends with "finished without leader elect"
    "kube-controller-manager": -signal.SIGTERM,  # it leaves SIGTERM's default action in place
    "kube-apiserver": 0,  # after draining ("Stopped listening on ...")
    "etcd": -signal.SIGTERM,  # it re-raises the signal once it has stopped serving
}
"""How each component ends on SIGTERM, by upstream's design: a clean stop is exactly this, unkilled."""


def start(name: str, argv: Sequence[str], logs: Path, prefix: Sequence[str] = ()) -> Component:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*prefix, *argv], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Component(name, process, log)


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """`probe()`'s first truthy result, polled every `interval` until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# --- the control plane --------------------------------------------------------------------------


@dataclass
class KubeApi:
    """A running control plane: its address, the admin's kubeconfig, kubectl against it."""

    directory: Path
    address: str
    port: int
    pki: ControlPlanePki
    admin: Identity
    kubectl_path: Path | None
    prefix: Sequence[str] = ()
    components: dict[str, Component] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    """The kwok nodes' names, once kwok manages them."""
    exit_codes: dict[str, int] = field(default_factory=dict)
    """How each component exited, once stopped."""
    killed: list[str] = field(default_factory=list)
    """Components that had to be killed on stop (none, for a clean stop)."""

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.admin.kubeconfig

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as the admin (`system:masters`); not checked unless `check`."""
        if self.kubectl_path is None:
            raise ControlPlaneFailed("no kubectl: `venv/bin/python -m tools.helm install` installs it")
        argv = [*self.prefix, str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}"]
        argv.append(f"--cache-dir={self.directory / 'kubectl-cache'}")
        result = subprocess.run([*argv, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise ControlPlaneFailed(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, parsed."""
        result = self.kubectl("get", *args, "-o", "json", check=True)
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def items(self, *args: str) -> list[dict[str, Any]]:
        return list(self.get(*args).get("items") or [])

    def check_running(self) -> None:
        for component in self.components.values():
            component.check_running()

    def log(self, name: str) -> Path:
        return self.components[name].log

    def admission_plugins(self) -> dict[str, list[str]]:
        """The admission plugins the apiserver loaded, by kind (`mutating`, `validating`), from its log."""
        loaded: dict[str, list[str]] = {}
        pattern = re.compile(
            r"Loaded \d+ (\w+) admission controller\(s\) successfully in the following order: ([\w,]+)"
        )
        for match in pattern.finditer(self.log("kube-apiserver").read_text(errors="replace")):
            loaded[match.group(1)] = match.group(2).split(",")
        return loaded

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context


def etcd_argv(binary: Path, data: Path, address: str, client: int, peer: int) -> list[str]:
    client_url, peer_url = f"http://{address}:{client}", f"http://{address}:{peer}"
    return [
        str(binary),
        "--name=integration",
        f"--data-dir={data}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=integration={peer_url}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # a throwaway store: no fsync, so applying hundreds of objects stays fast
        "--log-level=warn",
    ]


def apiserver_argv(binary: Path, api: KubeApi, etcd: str) -> list[str]:
    """kubeadm's flags for the kube-apiserver static pod, with minikube's admission plugins."""
    pki = api.pki
    argv = [
        str(binary),
        f"--advertise-address={api.address}",
        f"--bind-address={api.address}",
        f"--secure-port={api.port}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki.ca}",
        f"--enable-admission-plugins={','.join(MINIKUBE_ADMISSION_PLUGINS)}",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-servers={etcd}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--profiling=false",
    ]
    if ipaddress.ip_address(api.address).is_loopback:
        # The `kubernetes` Service cannot have a loopback endpoint; nothing here dials it.
        argv.append("--endpoint-reconciler-type=none")
    return argv


def controller_manager_argv(binary: Path, api: KubeApi, identity: Identity) -> list[str]:
    """kubeadm's flags for kube-controller-manager, with minikube's `--leader-elect=false`."""
    pki = api.pki
    return [
        str(binary),
        f"--kubeconfig={identity.kubeconfig}",
        f"--authentication-kubeconfig={identity.kubeconfig}",
        f"--authorization-kubeconfig={identity.kubeconfig}",
        f"--bind-address={api.address}",
        "--secure-port=0",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={CLUSTER_CIDR}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-signing-cert-file={pki.ca}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--leader-elect=false",
        f"--root-ca-file={pki.ca}",
        f"--service-account-private-key-file={pki.service_account_key}",
        "--use-service-account-credentials=true",
        "--concurrent-deployment-syncs=10",
        "--concurrent-replicaset-syncs=10",
        "--concurrent-statefulset-syncs=10",
        "--concurrent-daemonset-syncs=5",
    ]


def scheduler_argv(binary: Path, api: KubeApi, identity: Identity) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={identity.kubeconfig}",
        f"--authentication-kubeconfig={identity.kubeconfig}",
        f"--authorization-kubeconfig={identity.kubeconfig}",
        f"--bind-address={api.address}",
        "--secure-port=0",
        "--leader-elect=false",
    ]


def kwok_argv(binary: Path, api: KubeApi, config: Path) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={api.kubeconfig}",
        f"--config={config}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        f"--node-ip={api.address}",
        "--node-lease-duration-seconds=40",
    ]


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
"""The stages `kwokctl` gives kwok by default (with a node lease): under the module's `kustomize/stage/`."""


def kwok_config() -> str:
    """kwok's own default stages, read from the kwok module the binary was built from (no
    KwokConfiguration: kwok then takes its defaults, which a partial one would not get)."""
    listed = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=BUILDERS / "kwok",
        env={**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stages = Path(listed.stdout.strip()) / "kustomize" / "stage"
    if listed.returncode != 0 or not stages.is_dir():
        raise ControlPlaneFailed(f"kwok's stages not found in the module cache: {listed.stderr.strip()}")
    return "\n---\n".join((stages / stage).read_text() for stage in KWOK_STAGES)


@dataclass(frozen=True)
class NodeSpec:
    """A node kwok plays: its name (also its hostname label), InternalIP, resources and own labels."""

    name: str
    address: str
    capacity: Mapping[str, str]
    allocatable: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)


MINIKUBE_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
"""Room for every pod: a Minikube stack's size is its host's, checked by the capacity validator."""
MINIKUBE_LABELS = {"node-role.kubernetes.io/control-plane": "", "minikube.k8s.io/primary": "true"}


def minikube_node(address: str) -> NodeSpec:
    """minikube's single node: its labels, no taints (a single minikube node has none)."""
    return NodeSpec(NODE_NAME, address, MINIKUBE_CAPACITY, MINIKUBE_CAPACITY, MINIKUBE_LABELS)


def fake_node(spec: NodeSpec) -> dict[str, Any]:
    """The Node object of `spec`, marked for kwok to manage."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                **spec.labels,
                "type": "kwok",
            },
        },
        "status": {
            "capacity": dict(spec.capacity),
            "allocatable": dict(spec.allocatable),
            "addresses": [{"type": "InternalIP", "address": spec.address}, {"type": "Hostname", "address": spec.name}],
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": KUBERNETES},
        },
    }


def _start_etcd(api: KubeApi, binary: Path) -> str:
    client, peer = free_port(api.address, "etcd-client"), free_port(api.address, "etcd-peer")
    argv = etcd_argv(binary, api.directory / "etcd", api.address, client, peer)
    etcd = api.components["etcd"] = start("etcd", argv, api.directory / "logs", api.prefix)
    url = f"http://{api.address}:{client}"

    def healthy() -> bool:
        etcd.check_running()
        return _http_ok(f"{url}/health")

    wait_until("etcd /health", healthy, START_TIMEOUT)
    return url


def _start_apiserver(api: KubeApi, binary: Path, etcd: str) -> None:
    apiserver = api.components["kube-apiserver"] = start(
        "kube-apiserver", apiserver_argv(binary, api, etcd), api.directory / "logs", api.prefix
    )
    context = api.ssl_context()

    def ready() -> bool:
        apiserver.check_running()
        return _https_ok(f"{api.server}/readyz", context)

    try:
        wait_until("kube-apiserver /readyz", ready, START_TIMEOUT)
    except TimeoutError as error:
        raise apiserver.failed(str(error)) from error


def _start_nodes(api: KubeApi, binary: Path, nodes: Sequence[NodeSpec]) -> None:
    config = _write(api.directory / "kwok.yaml", kwok_config().encode())
    api.components["kwok"] = start("kwok", kwok_argv(binary, api, config), api.directory / "logs", api.prefix)
    # A stream of documents, not a `List`: kubectl validates a List's items against the full schema,
    # whose NodeSystemInfo requires the fields kwok fills in itself.
    documents = "\n---\n".join(json.dumps(fake_node(spec)) for spec in nodes)
    api.kubectl("create", "-f", "-", input=documents, check=True)
    names = [spec.name for spec in nodes]

    def nodes_ready() -> bool:
        api.components["kwok"].check_running()
        ready = {node["metadata"]["name"] for node in api.items("nodes") if ready_and_untainted(node)}
        return ready >= set(names)

    try:
        wait_until(f"nodes {', '.join(names)} Ready and untainted (kwok)", nodes_ready, START_TIMEOUT, interval=0.25)
    except TimeoutError as error:
        raise api.components["kwok"].failed(str(error)) from error
    api.nodes = names


def ready_and_untainted(node: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
    return conditions.get("Ready") == "True" and not node.get("spec", {}).get("taints")


def _wait_default_service_account(api: KubeApi) -> None:
    """The controller-manager is up once it has made the `default` ServiceAccount of `default`."""

    def made() -> bool:
        api.components["kube-controller-manager"].check_running()
        return api.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0

    try:
        wait_until("the default ServiceAccount (kube-controller-manager)", made, START_TIMEOUT, interval=0.25)
    except TimeoutError as error:
        raise api.components["kube-controller-manager"].failed(str(error)) from error


@contextlib.contextmanager
def running_kube_api(
    directory: Path,
    binaries: ControlPlaneBinaries,
    address: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    extra_names: Sequence[str] = (),
    nodes: Sequence[NodeSpec] | None = None,
) -> Iterator[KubeApi]:
    """The control plane in `directory`, listening on `address`; stopped cleanly on exit.

    Whatever of controller-manager, scheduler and kwok `binaries` has is started too; the apiserver
    and etcd always are. `prefix` runs every program elsewhere (`Host.command([])`: a namespace whose
    address is `address`); `extra_names` go into the serving certificate. kwok plays `nodes`
    (default: minikube's one node, at `address`)."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = make_control_plane_pki(directory / "pki", address, extra_names)
    port = free_port(address, "kube-apiserver")
    server = f"https://{address}:{port}"
    admin = make_identity(directory / "pki", pki, server, "kubernetes-admin", "system:masters")
    api = KubeApi(directory, address, port, pki, admin, binaries.kubectl or kubectl_binary(), prefix)
    try:
        _start_apiserver(api, binaries.kube_apiserver, _start_etcd(api, binaries.etcd))
        if binaries.kube_controller_manager:
            identity = make_identity(directory / "pki", pki, server, "system:kube-controller-manager")
            argv = controller_manager_argv(binaries.kube_controller_manager, api, identity)
            api.components["kube-controller-manager"] = start(
                "kube-controller-manager", argv, directory / "logs", prefix
            )
        if binaries.kube_scheduler:
            identity = make_identity(directory / "pki", pki, server, "system:kube-scheduler")
            argv = scheduler_argv(binaries.kube_scheduler, api, identity)
            api.components["kube-scheduler"] = start("kube-scheduler", argv, directory / "logs", prefix)
        if binaries.kube_controller_manager:
            _wait_default_service_account(api)
        if binaries.kwok:
            _start_nodes(api, binaries.kwok, nodes or [minikube_node(address)])
        yield api
    finally:
        api.exit_codes = stop(api)


def stop(api: KubeApi) -> dict[str, int]:
    """Every component stopped, the last started first: their exit codes."""
    codes = {name: component.stop() for name, component in reversed(list(api.components.items()))}
    api.killed = [name for name, component in api.components.items() if component.killed]
    api.components.clear()
    shutil.rmtree(api.directory / "etcd", ignore_errors=True)
    return codes


def in_dependency_order(manifests: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Objects in waves, each wave only after the one before it (see `WAVES`)."""
    waves: list[list[dict[str, Any]]] = [[] for _ in WAVES]
    for obj in manifests:
        waves[wave_of(obj)].append(obj)
    return waves


WAVES: tuple[frozenset[str], ...] = (
    frozenset({"Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass"}),
    frozenset(),  # everything else: configuration, RBAC, Services, policies, custom resources
    frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}),
    frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService"}),
)
"""Namespaces and CRDs first (their objects need them; CRDs must be Established), then what
workloads read (ServiceAccounts, Secrets, LimitRanges, ...), then the workloads, and webhook
configurations last: their servers (the operator) never run here, so nothing may be sent to them."""


def wave_of(obj: dict[str, Any]) -> int:
    kind = str(obj.get("kind"))
    for index, kinds in enumerate(WAVES):
        if kind in kinds:
            return index
    return 1


# --- applying objects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What the apiserver said to one object: accepted or not, its message and its warnings, verbatim."""

    obj: dict[str, Any]
    accepted: bool
    message: str
    """The apiserver's refusal (its Status `reason` and `message`), empty when accepted."""
    warnings: tuple[str, ...]
    """The apiserver's `Warning` headers (what kubectl prints as `Warning: ...`)."""

    @property
    def identity(self) -> str:
        metadata = self.obj.get("metadata") or {}
        namespace, name = metadata.get("namespace"), metadata.get("name")
        return f"{self.obj.get('kind')} {f'{namespace}/{name}' if namespace else name}"


@dataclass(frozen=True)
class ApiResource:
    plural: str
    namespaced: bool


_WARNING = re.compile(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"')


def _warnings(headers: list[str]) -> tuple[str, ...]:
    """RFC 7234 `Warning` headers (`299 - "text"`) as their texts."""
    texts = []
    for header in headers:
        match = _WARNING.match(header)
        texts.append(re.sub(r"\\(.)", r"\1", match.group(1)) if match else header)
    return tuple(texts)


class ApiClient:
    """The requests `kubectl apply --server-side --validate=strict` sends (its `-v=6` log: `PATCH
    .../configmaps/x?fieldManager=kubectl&fieldValidation=Strict&force=false` with an
    `application/apply-patch+yaml` body), made directly: one kubectl process per object costs a
    quarter of a second of CPU (it parses the OpenAPI document of the object's group each time), and
    one kubectl for many objects cannot say which object a warning was for. One connection per thread.
    """

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.context = api.ssl_context()
        self.local = threading.local()
        self.resources: dict[tuple[str, str], ApiResource] = {}
        self.lock = threading.Lock()

    def request(
        self, method: str, path: str, body: str | None = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any], tuple[str, ...]]:
        """The status, the JSON body and the warnings of one request."""
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(self.api.address, self.api.port, context=self.context, timeout=60)
            self.local.connection = connection
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw.decode(errors="replace")}
        return response.status, parsed, _warnings(response.headers.get_all("Warning") or [])

    def discover(self) -> None:
        """Every served resource by `(apiVersion, kind)`, as kubectl's discovery finds them."""
        found: dict[tuple[str, str], ApiResource] = {}
        versions = ["v1"]
        _, groups, _ = self.request("GET", "/apis")
        versions += [v["groupVersion"] for group in groups.get("groups") or [] for v in group["versions"]]
        for group_version in versions:
            path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            _, listed, _ = self.request("GET", path)
            for resource in listed.get("resources") or []:
                if "/" not in resource["name"]:
                    found[group_version, resource["kind"]] = ApiResource(resource["name"], resource["namespaced"])
        with self.lock:
            self.resources = found

    def resource(self, obj: dict[str, Any]) -> ApiResource | None:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        if key not in self.resources:
            self.discover()  # a kind served since the last discovery (a CRD just established)
        return self.resources.get(key)

    def path(self, obj: dict[str, Any], resource: ApiResource) -> str:
        api_version = str(obj["apiVersion"])
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        metadata = obj.get("metadata") or {}
        namespace = f"/namespaces/{urllib.parse.quote(metadata['namespace'])}" if resource.namespaced else ""
        return f"{prefix}{namespace}/{resource.plural}/{urllib.parse.quote(str(metadata.get('name')))}"

    def apply(self, obj: dict[str, Any], field_manager: str, dry_run: bool = False) -> Applied:
        """Server-side apply of `obj` with strict field validation (or its `dryRun=All`)."""
        resource = self.resource(obj)
        if resource is None:
            message = f'no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"'
            return Applied(obj, False, message, ())
        query = {"fieldManager": field_manager, "fieldValidation": "Strict", "force": "false"}
        if dry_run:
            query["dryRun"] = "All"
        path = f"{self.path(obj, resource)}?{urllib.parse.urlencode(query)}"
        status, body, warnings = self.request("PATCH", path, json.dumps(obj), "application/apply-patch+yaml")
        if 200 <= status < 300:
            return Applied(obj, True, "", warnings)
        return Applied(obj, False, f"{body.get('reason', status)}: {body.get('message', body)}", warnings)

    def apply_all(
        self, objects: Sequence[tuple[dict[str, Any], str]], dry_run: bool = False, workers: int = 4
    ) -> list[Applied]:
        """Each `(object, field manager)` applied, concurrently (they must not depend on each other)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda item: self.apply(item[0], item[1], dry_run), objects))


def wait_established(api: KubeApi, crds: Sequence[str], timeout: float = 60) -> dict[str, bool]:
    """Whether each CRD reached `Established` (and `NamesAccepted`) within `timeout`."""
    deadline = time.monotonic() + timeout
    state: dict[str, bool] = dict.fromkeys(crds, False)
    while time.monotonic() < deadline and not all(state.values()):
        for crd in api.items("customresourcedefinitions"):
            name = crd["metadata"]["name"]
            if name in state:
                conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions") or []}
                state[name] = conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"
        if not all(state.values()):
            time.sleep(0.25)
    return state


def wait_service_accounts(api: KubeApi, namespaces: Sequence[str], timeout: float = 30) -> None:
    """The controller-manager has made each namespace's `default` ServiceAccount (pods without one use it)."""

    def made() -> bool:
        found = {
            sa["metadata"]["namespace"]
            for sa in api.items("serviceaccounts", "-A", "--field-selector=metadata.name=default")
        }
        return set(namespaces) <= found

    wait_until(f"the default ServiceAccounts of {', '.join(namespaces)}", made, timeout, interval=0.25)


def provision_volumes(api: KubeApi, client: ApiClient) -> list[str]:
    """The storage provisioner's part, played here: a PersistentVolume pre-bound to each Pending claim
    (its class, size and access modes, a CSI source of the class's provisioner), so that
    kube-controller-manager's PV controller binds it and kube-scheduler can place the pod. A claim
    whose StorageClass the cluster does not have stays Pending, as it would. The claims so served."""
    provisioners = {sc["metadata"]["name"]: sc["provisioner"] for sc in api.items("storageclasses")}
    served = []
    for claim in api.items("persistentvolumeclaims", "-A"):
        if claim.get("status", {}).get("phase") != "Pending" or claim["spec"].get("volumeName"):
            continue
        storage_class = claim["spec"].get("storageClassName") or ""
        if storage_class not in provisioners:
            continue
        namespace, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{claim['metadata']['uid']}"},
            "spec": {
                "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                "accessModes": claim["spec"]["accessModes"],
                "storageClassName": storage_class,
                "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": namespace, "name": name, "uid": claim["metadata"]["uid"]},
                "csi": {"driver": provisioners[storage_class], "volumeHandle": f"{namespace}-{name}"},
            },
        }
        outcome = client.apply(volume, "provisioner-stand-in")
        if not outcome.accepted:
            raise ControlPlaneFailed(f"PersistentVolume for {namespace}/{name}: {outcome.message}")
        served.append(f"{namespace}/{name}")
    return served


def events(api: KubeApi, reason: str) -> list[dict[str, Any]]:
    """Every event of `reason` in the cluster (`involvedObject`, `message`, `source`, ...)."""
    return api.items("events", "-A", f"--field-selector=reason={reason}")


def rollout_status(api: KubeApi, kind: str, namespace: str, name: str, timeout: float = 60) -> tuple[bool, str]:
    """`kubectl rollout status`: whether the workload rolled out, and what kubectl said."""
    result = api.kubectl(
        "rollout",
        "status",
        f"{kind.lower()}/{name}",
        "-n",
        namespace,
        f"--timeout={int(timeout)}s",
        timeout=timeout + 30,
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()
