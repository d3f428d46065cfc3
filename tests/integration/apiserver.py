"""A real Kubernetes API on loopback: etcd, kube-apiserver and the garbage collector, throwaway certificates.

For the Pulumi engine tests (`test_engine.py`): pulumi-kubernetes creates, updates and replaces
Secrets and ConfigMaps against it. Of kube-controller-manager only the garbage collector runs:
pulumi-kubernetes deletes with foreground propagation by default, and the object only goes once the
garbage collector has removed its `foregroundDeletion` finalizer (without it every delete waits out
the provider's 10-minute timeout). No kubelet: Secrets and ConfigMaps need none.

    with running_apiserver(etcd, kube_apiserver, controller_manager, directory) as api:
        api.kubeconfig                                   # for k8s.Provider(kubeconfig=...)
        api.get("/api/v1/namespaces/default/secrets/x")  # the live object, as admin

Both listen on 127.0.0.1 only, on ports the kernel picks.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 90
ADMIN = "integration-admin"
ADMIN_GROUP = "system:masters"


# --- throwaway certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterPki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    service_account_key: Path
    service_account_public: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_cluster_pki(directory: Path) -> ClusterPki:
    """A CA, the API server's serving certificate (127.0.0.1, localhost), an admin client
    certificate (group system:masters) and the service-account signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway Kubernetes CA (integration tests)")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    server = _issue(
        (ca_key, ca_cert),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        server_names,
    )
    client = _issue(
        (ca_key, ca_cert),
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    service_accounts = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pki = ClusterPki(
        ca=directory / "ca.pem",
        server_cert=directory / "apiserver.pem",
        server_key=directory / "apiserver.key",
        client_cert=directory / "admin.pem",
        client_key=directory / "admin.key",
        service_account_key=directory / "sa.key",
        service_account_public=directory / "sa.pub",
    )
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for (key, cert), cert_path, key_path in (
        (server, pki.server_cert, pki.server_key),
        (client, pki.client_cert, pki.client_key),
    ):
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
    pki.service_account_key.write_bytes(_pem_key(service_accounts))
    pki.service_account_key.chmod(0o600)
    pki.service_account_public.write_bytes(
        service_accounts.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


# --- the servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ApiServer:
    url: str
    pki: ClusterPki
    version: str
    """What `kube-apiserver --version` says (`Kubernetes v1.36.3`)."""

    @property
    def kubeconfig(self) -> str:
        """An admin kubeconfig with the certificates inline (what minikube's would hold)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "integration",
                    "cluster": {"server": self.url, "certificate-authority-data": _b64(self.pki.ca)},
                }
            ],
            "users": [
                {
                    "name": ADMIN,
                    "user": {
                        "client-certificate-data": _b64(self.pki.client_cert),
                        "client-key-data": _b64(self.pki.client_key),
                    },
                }
            ],
            "contexts": [{"name": "integration", "context": {"cluster": "integration", "user": ADMIN}}],
            "current-context": "integration",
        }
        return yaml.safe_dump(config, sort_keys=False)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}{path}", context=self.context(), timeout=10) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def _tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait(ready: Any, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if ready():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {START_TIMEOUT_SECONDS}s:\n{_tail(log)}")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even killed before its teardown runs."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _etcd_argv(etcd: Path, directory: Path, client: int, peer: int) -> list[str]:
    return [
        str(etcd),
        "--name=integration",
        f"--data-dir={directory / 'etcd-data'}",
        f"--listen-client-urls=http://{LOOPBACK}:{client}",
        f"--advertise-client-urls=http://{LOOPBACK}:{client}",
        f"--listen-peer-urls=http://{LOOPBACK}:{peer}",
        f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer}",
        f"--initial-cluster=integration=http://{LOOPBACK}:{peer}",
        "--log-level=warn",
    ]


def _apiserver_argv(apiserver: Path, pki: ClusterPki, etcd_port: int, port: int) -> list[str]:
    return [
        str(apiserver),
        f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.server_cert}",
        f"--tls-private-key-file={pki.server_key}",
        f"--client-ca-file={pki.ca}",
        f"--service-account-key-file={pki.service_account_public}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
        # 127.0.0.1 is no valid endpoint of the `kubernetes` Service; nothing here needs that Service.
        "--endpoint-reconciler-type=none",
    ]


def _controller_manager_argv(controller_manager: Path, kubeconfig: Path) -> list[str]:
    return [
        str(controller_manager),
        f"--kubeconfig={kubeconfig}",
        "--controllers=garbage-collector-controller",
        "--leader-elect=false",
        f"--bind-address={LOOPBACK}",
        "--secure-port=0",
        "--use-service-account-credentials=false",
    ]


def kubernetes_version(apiserver: Path) -> str:
    result = subprocess.run([str(apiserver), "--version"], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.strip()


@contextmanager
def running_apiserver(etcd: Path, apiserver: Path, controller_manager: Path, directory: Path) -> Iterator[ApiServer]:
    """etcd, kube-apiserver and the garbage collector on loopback, until the block ends; logs in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = make_cluster_pki(directory / "pki")
    etcd_port, peer_port, port = free_port(), free_port(), free_port()
    with ExitStack() as stack:
        etcd_log = directory / "etcd.log"
        etcd_process = stack.enter_context(_process(_etcd_argv(etcd, directory, etcd_port, peer_port), etcd_log))

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{etcd_port}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")

        _wait(etcd_healthy, etcd_process, etcd_log, "etcd")
        log = directory / "kube-apiserver.log"
        process = stack.enter_context(_process(_apiserver_argv(apiserver, pki, etcd_port, port), log))
        api = ApiServer(f"https://{LOOPBACK}:{port}", pki, kubernetes_version(apiserver))

        def apiserver_ready() -> bool:
            with urllib.request.urlopen(f"{api.url}/readyz", context=api.context(), timeout=2) as response:
                return bool(response.status == 200)

        _wait(apiserver_ready, process, log, "kube-apiserver")
        _wait(lambda: api.get("/api/v1/namespaces/default")["metadata"]["name"] == "default", process, log, "default")
        kubeconfig = directory / "admin.kubeconfig"
        kubeconfig.write_text(api.kubeconfig)
        kubeconfig.chmod(0o600)
        stack.enter_context(
            _process(
                _controller_manager_argv(controller_manager, kubeconfig), directory / "kube-controller-manager.log"
            )
        )
        yield api
