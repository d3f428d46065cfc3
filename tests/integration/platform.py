"""The platform under test: the fixture stacks' hosts as network namespaces, the object store, the renderings.

Session fixtures in `conftest.py` build on these: one `Lan` with a host per address of the fixture
topology (`tests/stacks/`), a real S3 server (moto over TLS, `s3_server.py`) holding what central's
pulumi-minio resources create, and each fixture stack rendered offline with that server's CA as the
operator's `s3.caCertificate`, so every real program is fed exactly what the program generates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.certificates import Materialized, materialize
from tests.conftest import CENTRAL_STACK, FIXTURE_STACKS_DIR, STACKS, run_fixture, settings
from tests.integration.netns import Host
from tests.integration.s3_server import (
    Credential,
    ObjectStorePlan,
    S3Server,
    apply_object_storage,
    plan_of,
)
from tools.engine import PROJECT, Rendering, load_stack_config

# --- a throwaway PKI ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _write_ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_pki(directory: Path, name: str, address: str) -> Pki:
    """A CA and a server certificate for `address` (an IP SAN, as clients dial the bare IP)."""
    ca_key, ca_cert = _write_ca(directory, name)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "s3.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "s3.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "s3.key").chmod(0o600)
    return Pki(directory / "ca.pem", directory / "s3.pem", directory / "s3.key")


# --- the object store ---------------------------------------------------------------------------


@dataclass
class ObjectStore:
    server: S3Server
    pki: Pki
    netns: str
    plan: ObjectStorePlan
    admin: Credential
    credentials: dict[str, Credential]
    clients: dict[tuple[Credential, str], Any] = field(default_factory=dict)

    def client(self, user: str | Credential, service: str = "s3") -> Any:
        """A client trusting only the throwaway CA, signed as `user` (made once: boto3 clients are slow to make)."""
        credential = user if isinstance(user, Credential) else self.credentials[user]
        if (credential, service) not in self.clients:
            self.clients[credential, service] = self.server.client(service, credential, self.pki.ca)
        return self.clients[credential, service]

    @property
    def s3(self) -> Any:
        """The admin's S3 client (MinIO's root credentials)."""
        return self.client(self.admin)

    def cluster_credentials(self, cluster: str, component: str) -> Credential:
        """The MinIO user central creates for `component` of `cluster` (e.g. `thanos-sidecar`)."""
        return self.credentials[f"{cluster}-{component}"]


def object_store_endpoint() -> tuple[str, int]:
    """The fixture stacks' S3 endpoint (they all name the same one)."""
    host, _, port = settings(run_fixture(CENTRAL_STACK)).s3.endpoint.rpartition(":")
    return host, int(port)


@contextmanager
def running_object_store(host: Host, pki: Pki, log: Path, central: Rendering) -> Iterator[ObjectStore]:
    """moto on `host`, serving TLS with `pki`'s certificate, holding what `central`'s MinIO resources create."""
    address, port = object_store_endpoint()
    plan = plan_of(central)
    server = S3Server(address, port, pki.cert, pki.key, log, prefix=host.command([]), region=plan.region)
    with server:
        server.wait_ready(pki.ca)
        admin = server.bootstrap_admin(pki.ca)
        yield ObjectStore(server, pki, host.netns, plan, admin, apply_object_storage(plan, server, admin, pki.ca))
        code = server.stop()
        assert code == 0, f"moto_server did not stop cleanly (exit {code}):\n{server.log_tail()}"


# --- the renderings -----------------------------------------------------------------------------


@dataclass
class Platform:
    """Every fixture stack rendered with the object store's CA, and the certificates each central issues."""

    object_store_ca: str
    renderings: dict[str, Rendering] = field(default_factory=dict)
    _certificates: dict[str, Materialized] = field(default_factory=dict)

    def rendering(self, stack: str) -> Rendering:
        if stack not in self.renderings:
            self.renderings[stack] = run_fixture(stack, settings={"s3.caCertificate": self.object_store_ca})
        return self.renderings[stack]

    @property
    def central(self) -> Rendering:
        return self.rendering(CENTRAL_STACK)

    def central_of(self, stack: str) -> str:
        """The central stack whose certificates `stack` holds: itself, or the one an edge references."""
        config = settings(self.rendering(stack))
        return stack if config.is_central else config.central_stack.rsplit("/", 1)[-1]

    def certificates_of(self, central: str) -> Materialized:
        """`central`'s pulumi-tls resources issued for real (the same subjects, names and usages)."""
        if central not in self._certificates:
            self._certificates[central] = materialize(self.rendering(central))
        return self._certificates[central]

    @property
    def certificates(self) -> Materialized:
        return self.certificates_of(CENTRAL_STACK)

    def real(self, value: Any, stack: str = CENTRAL_STACK) -> Any:
        """`value` (a Secret's data, a ConfigMap's, of `stack`) with every offline placeholder swapped
        for its real PEM: those `stack`'s central issues (two centrals' key placeholders are alike)."""
        return self.certificates_of(self.central_of(stack)).real(value)


def host_addresses() -> dict[str, str]:
    """Every host of the fixture topology: each Minikube stack's `host`, by stack name (a stack for an
    existing cluster has none)."""
    configs = {stack: load_stack_config(stack, FIXTURE_STACKS_DIR) for stack in STACKS}
    return {stack: config[f"{PROJECT}:host"] for stack, config in configs.items() if f"{PROJECT}:host" in config}
