"""Real certificates for an offline rendering: what pulumi-tls would issue from the same inputs.

The offline engine answers pulumi-tls with placeholder text (`offline-engine-certificate-...`), so
the Secrets a rendering holds cannot be used for a handshake. `materialize` reads the central
rendering's `tls:` resources (keys, requests, the CAs, the signed certificates) and issues the same
certificates with `cryptography`: same key algorithms, subjects, SANs, key usages and validity, each
signed by the CA its `LocallySignedCert` names (the platform CA, or the StoreAPI client CA).
`Materialized.real` then swaps every placeholder in a value for its real PEM, so a test can take a
Secret or ConfigMap exactly as the program wrote it and serve it.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools.engine import Rendering, Resource, unwrap

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"

KEY_USAGES = {
    "digital_signature": "digital_signature",
    "key_encipherment": "key_encipherment",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}
EXTENDED_USAGES = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class Materialized:
    """Real PEMs for the placeholders of one rendering."""

    pems: dict[str, str] = field(default_factory=dict)
    """Placeholder text -> real PEM (certificates and keys, in every form the program reads)."""
    certificates: dict[str, x509.Certificate] = field(default_factory=dict)
    """Resource name of each certificate (the CAs' too) -> the issued certificate."""
    issuers: dict[str, str] = field(default_factory=dict)
    """Resource name of each locally signed certificate -> the resource name of the CA that signed it."""

    def real(self, value: Any) -> Any:
        """`value` with every placeholder replaced by its PEM (recursively, secrets unwrapped)."""
        value = unwrap(value)
        if isinstance(value, str):
            return self.pems.get(value, value)
        if isinstance(value, dict):
            return {key: self.real(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.real(item) for item in value]
        return value


def _key(resource: Resource) -> PrivateKey:
    if resource.inputs.get("algorithm") == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(resource.inputs.get("rsaBits", 2048)))
    assert resource.inputs.get("ecdsaCurve") == "P256", resource.inputs
    return ec.generate_private_key(ec.SECP256R1())


def _name(subject: dict[str, Any]) -> x509.Name:
    attributes = []
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attributes)


def _pem(key: PrivateKey, pkcs8: bool) -> str:
    if pkcs8:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    form = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode()


def _issue(
    inputs: dict[str, Any],
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    signer: PrivateKey,
    sans: list[x509.GeneralName],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    uses = list(inputs.get("allowedUses") or [])
    flags = {flag: False for flag in ("content_commitment", "data_encipherment", "key_agreement", "encipher_only")}
    flags |= {"decipher_only": False}
    usage = {attr: use in uses for use, attr in KEY_USAGES.items()}
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=int(inputs["validityPeriodHours"])))
        .add_extension(x509.KeyUsage(**usage, **flags), critical=True)
        .add_extension(x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None), critical=True)
    )
    extended = [EXTENDED_USAGES[use] for use in uses if use in EXTENDED_USAGES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class _Ca:
    name: str
    subject: x509.Name
    key: PrivateKey


def materialize(central: Rendering) -> Materialized:
    """Issue, for real, every certificate the central rendering declares: each self-signed CA, then
    each locally signed certificate with the CA its `caCertPem` is the certificate of."""
    done = Materialized()
    keys: dict[str, PrivateKey] = {}
    for resource in central.of_type(PRIVATE_KEY):
        key = keys[resource.name] = _key(resource)
        done.pems[resource.state["privateKeyPem"]] = _pem(key, pkcs8=False)
        done.pems[resource.state["privateKeyPemPkcs8"]] = _pem(key, pkcs8=True)

    def key_pem(name: str) -> Any:
        return unwrap(central.one(PRIVATE_KEY, name).state["privateKeyPem"])

    cas: dict[str, _Ca] = {}
    """The placeholder of each CA's certificate (what a `LocallySignedCert` names) -> that CA."""
    for ca in central.of_type(SELF_SIGNED):
        if unwrap(ca.inputs["privateKeyPem"]) != key_pem(f"{ca.name}-key"):
            raise AssertionError(f"{ca.name} is not self-signed with {ca.name}-key")
        ca_key = keys[f"{ca.name}-key"]
        ca_name = _name(ca.inputs["subject"])
        ca_certificate = _issue(ca.inputs, ca_name, ca_key.public_key(), ca_name, ca_key, [])
        done.certificates[ca.name] = ca_certificate
        done.pems[ca.state["certPem"]] = ca_certificate.public_bytes(serialization.Encoding.PEM).decode()
        cas[ca.state["certPem"]] = _Ca(ca.name, ca_name, ca_key)
    for certificate in central.of_type(LOCALLY_SIGNED):
        signer = cas.get(unwrap(certificate.inputs["caCertPem"]))
        if signer is None:
            raise ValueError(f"{certificate.name} is signed by a CA the rendering does not generate (an operator's)")
        if unwrap(certificate.inputs["caPrivateKeyPem"]) != key_pem(f"{signer.name}-key"):
            raise AssertionError(f"{certificate.name} names {signer.name}'s certificate with another key")
        request = central.one(CERT_REQUEST, f"{certificate.name}-request")
        key = keys[f"{certificate.name}-key"]
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in request.inputs.get("dnsNames") or []]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in request.inputs.get("ipAddresses") or []]
        subject = _name(request.inputs["subject"])
        issued = _issue(certificate.inputs, subject, key.public_key(), signer.subject, signer.key, sans)
        done.certificates[certificate.name] = issued
        done.issuers[certificate.name] = signer.name
        done.pems[certificate.state["certPem"]] = issued.public_bytes(serialization.Encoding.PEM).decode()
    return done


@functools.cache
def throwaway_ca(name: str = "Test MinIO CA (tests only)") -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A self-signed CA, PEM and key, made once per test process: the object store's CA an operator
    gives with `s3.caCertificate`, for stacks whose committed files leave it to the operator."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key
