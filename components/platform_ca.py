"""PlatformCa: the deployment's certificate authority, and every certificate it signs (central only).

One CA per deployment, kept by the central stack: a key and a self-signed CA certificate made with
pulumi-tls (protected: replacing the CA means every browser and client trusting it must learn the
new one), or the operator's own CA (`tls.caCertificate`, its key the secret `platformCaKey`). The CA
key never leaves central's state. For every cluster central knows (itself and each of its `edges`)
it issues:

- `ingress`: `*.<domain>` and `<domain>`, Traefik's default certificate, so every UI and API host is
  served over HTTPS;
- `opensearch`: OpenSearch's own certificate for its in-cluster Service names, so Traefik and
  Fluent-bit verify whom they send credentials and logs to;
- `opensearchAdmin`: the break-glass client certificate OpenSearch's security plugin trusts as its
  admin (`opensearch-admin.<cluster>`, `plugins.security.authcz.admin_dn`), one per cluster so that
  none is admin elsewhere. RSA like the node certificate (what the plugin documents), client
  authentication only. It is for the operator, from this state (`securityadmin.sh` when the admin
  password is lost): no cluster gets its key in a Secret;
- edges, `sidecar`: the Thanos sidecar's gRPC server certificate for the edge's host address, which
  central Query verifies when it dials `<host>:30901`;
- central, `queryClient`: Thanos Query's client certificate, which every edge sidecar requires.
  It is the one certificate the platform CA does not sign: the StoreAPI client CA, a second CA kept
  by central, signs it and nothing else, and is the edge sidecars' only client CA. The platform CA
  cannot be that: it also signs every cluster's OpenSearch node certificate, which carries
  `client_auth` (OpenSearch's transport layer needs it) and whose key sits in every cluster, and
  Thanos checks nothing but the chain and the key usage. Always generated (also with the operator's
  own platform CA: only the sidecars trust it), protected, valid `tls.caValidityDays`; its
  certificate (public) is in every cluster's entry as `storeApiClientCa`, its key never leaves
  central.

Each cluster's certificates and keys are one entry of a secret stack output (`tlsCertificates`); an
edge reads its own through its StackReference, as it reads its object-store credentials, so the
edge's keys are generated here too. Certificates are valid `tls.validityDays` and issued anew by the
first `pulumi up` of central within `tls.renewBeforeDays` of their end (pulumi-tls
`early_renewal_hours`); each edge installs its new ones on its next `pulumi up`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import pulumi
import pulumi_tls as tls
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components.cluster_tls import (
    INGRESS,
    OPENSEARCH,
    OPENSEARCH_ADMIN,
    QUERY_CLIENT,
    SIDECAR,
    STOREAPI_CLIENT_CA,
)
from components.kube import Component
from components.opensearch import NODE_NAME as OPENSEARCH_NODE_NAME
from components.opensearch import admin_common_name as opensearch_admin_name
from components.opensearch import service_names as opensearch_names
from components.settings import PROJECT, EdgeCluster, SettingsError, TlsSettings

CA_OUTPUT = "platformCaCertificate"
"""Stack output: the CA certificate (public; edges read it from central, every stack exports it)."""
CA_NOT_AFTER_OUTPUT = "platformCaNotAfter"
CERTIFICATES_OUTPUT = "tlsCertificates"
"""Central's secret stack output: every cluster's certificates and keys (an edge reads its own)."""
ECDSA = ("ECDSA", "P256")
RSA = ("RSA", "")
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]
CLIENT_USES = ["digital_signature", "key_encipherment", "client_auth"]
NODE_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
"""OpenSearch nodes present their certificate to each other on the transport layer, too."""
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
CA_COMMON_NAME = f"{PROJECT} platform CA"
STOREAPI_CLIENT_CA_COMMON_NAME = f"{PROJECT} StoreAPI client CA"
"""The CA of Query's client certificate alone: the only client CA of the edge sidecars."""
QUERY_CLIENT_NAME = "thanos-query"
"""The common name central Query presents to the edge sidecars."""

IssuedCertificates = dict[str, dict[str, dict[str, Any]]]
"""{cluster: {kind: {"certificate": PEM, "privateKey": PKCS#8 PEM, "notAfter": RFC 3339, "hosts": [...]}}};
the StoreAPI client CA's entry has no `privateKey`."""


@dataclass(frozen=True)
class SigningCa:
    """A CA as its certificates' issuer: its certificate, its key and its end of validity."""

    certificate: pulumi.Input[str]
    key: pulumi.Input[str]
    not_after: pulumi.Output[str]


@dataclass(frozen=True)
class ClusterIdentity:
    """What a cluster's certificates name: its stack name, wildcard domain and host address."""

    name: str
    domain: str
    host: str
    address: str
    central: bool


def identities(
    cluster_name: str, domain: str, host: str, address: str, edges: Sequence[EdgeCluster]
) -> list[ClusterIdentity]:
    """Central itself, then each edge as central's config lists it."""
    own = ClusterIdentity(cluster_name, domain, host, address, central=True)
    return [own, *(ClusterIdentity(e.name, e.domain, e.host, e.ip, central=False) for e in edges)]


def ingress_names(domain: str) -> list[str]:
    """Every host under the cluster's wildcard DNS, and the domain itself."""
    return [f"*.{domain}", domain]


def sidecar_names(identity: ClusterIdentity) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of an edge sidecar's StoreAPI: the address Query dials, and the
    host name too when the host is configured by name."""
    dns = [identity.host] if identity.host != identity.address else []
    return dns, [identity.address]


def operator_ca_end(pem: str) -> str:
    """The end of validity of the operator's CA, refusing a certificate that is no CA."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise SettingsError(f"invalid stack config: {PROJECT}:tls.caCertificate is not a PEM certificate") from exc
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:tls.caCertificate is not a CA certificate (basicConstraints CA:TRUE)"
        )
    end = certificate.not_valid_after_utc
    if end <= dt.datetime.now(dt.UTC):
        raise SettingsError(f"invalid stack config: {PROJECT}:tls.caCertificate expired on {end.date()}")
    return end.isoformat().replace("+00:00", "Z")


def check_key_matches(certificate_pem: str, key_pem: str) -> str:
    """The operator's CA key, refused unless it belongs to `tls.caCertificate`."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SettingsError(
            f"invalid stack config: {PROJECT}:platformCaKey is not an unencrypted PEM private key"
        ) from exc
    public = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*der) != public.public_bytes(*der):
        raise SettingsError(f"invalid stack config: {PROJECT}:platformCaKey is not the key of tls.caCertificate")
    return key_pem


class PlatformCaArgs(TypedDict):
    cluster_name: str
    """The central cluster."""
    domain: str
    """Central's wildcard DNS domain."""
    host: str
    """Central's host (IP or name)."""
    address: str
    """Central's IP address."""
    edges: Sequence[EdgeCluster]
    """The edges to issue certificates for (each with its `domain`)."""
    tls: TlsSettings
    """Validity, renewal window and the operator's own CA, if any."""
    ca_private_key: pulumi.Input[str] | None
    """Secret config `platformCaKey`: the key of the operator's own CA (`tls.caCertificate`); None: generate."""


class PlatformCa(Component):
    """The CA (protected when generated), the StoreAPI client CA (protected) and every cluster's
    certificates; central only.

    `protect` (in the options) protects the generated CAs' keys and certificates.
    """

    certificate: pulumi.Output[str]
    """The CA certificate (public): every client of the platform trusts it."""
    not_after: pulumi.Output[str]
    """The end of the CA's validity."""
    issued: pulumi.Output[IssuedCertificates]
    """Secret: every cluster's certificates and keys, with their ends and names."""

    def __init__(self, name: str, args: PlatformCaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tls:PlatformCa", name, opts)
        settings = args["tls"]
        self._validity_hours = settings.validity_days * 24
        self._renewal_hours = settings.renew_before_days * 24
        self._platform = self._ca(name, args)
        self._storeapi_clients = self._storeapi_client_ca(name, args)
        self.not_after = self._platform.not_after
        clusters = identities(args["cluster_name"], args["domain"], args["host"], args["address"], args["edges"])
        issued = {identity.name: self._cluster(name, identity) for identity in clusters}
        self.certificate = pulumi.Output.from_input(self._platform.certificate)
        # from_input resolves the nested Outputs; its stub cannot say so.
        self.issued = pulumi.Output.secret(pulumi.Output.from_input(cast("pulumi.Input[IssuedCertificates]", issued)))
        self.register_outputs({"certificate": self.certificate, "notAfter": self.not_after})

    def _ca(self, name: str, args: PlatformCaArgs) -> SigningCa:
        """The operator's CA, or a generated one (protected, valid `tls.caValidityDays`)."""
        own = args["tls"].ca_certificate
        if own is not None:
            if args["ca_private_key"] is None:
                raise SettingsError(f"invalid stack config: {PROJECT}:tls.caCertificate is set without platformCaKey")
            end = operator_ca_end(own)
            own_key = pulumi.Output.secret(args["ca_private_key"]).apply(lambda pem: check_key_matches(own, pem))
            return SigningCa(own, own_key, pulumi.Output.from_input(end))
        return self._generated_ca(f"{name}-ca", CA_COMMON_NAME, args["tls"])

    def _storeapi_client_ca(self, name: str, args: PlatformCaArgs) -> SigningCa:
        """The CA of Query's client certificate alone, always generated. Protected like the platform
        CA: a new one locks Query out of every edge until that edge's next `pulumi up` installs it."""
        return self._generated_ca(f"{name}-storeapi-client-ca", STOREAPI_CLIENT_CA_COMMON_NAME, args["tls"])

    def _generated_ca(self, name: str, common_name: str, settings: TlsSettings) -> SigningCa:
        key = tls.PrivateKey(f"{name}-key", algorithm=ECDSA[0], ecdsa_curve=ECDSA[1], opts=self.child(stateful=True))
        certificate = tls.SelfSignedCert(
            name,
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=common_name, organization=PROJECT),
            validity_period_hours=settings.ca_validity_days * 24,
            allowed_uses=CA_USES,
            opts=self.child(stateful=True),
        )
        return SigningCa(certificate.cert_pem, key.private_key_pem, certificate.validity_end_time)

    def _cluster(self, name: str, identity: ClusterIdentity) -> dict[str, Any]:
        prefix = f"{name}-{identity.name}"
        issued = {
            INGRESS: self._issue(
                f"{prefix}-ingress", identity.domain, ingress_names(identity.domain), [], SERVER_USES, ECDSA
            ),
            # RSA: what OpenSearch's security plugin documents for PEM node certificates.
            OPENSEARCH: self._issue(
                f"{prefix}-opensearch", OPENSEARCH_NODE_NAME, opensearch_names(), [], NODE_USES, RSA
            ),
            # The security plugin's admin for this cluster alone (its `admin_dn`); the operator's, never in a Secret.
            OPENSEARCH_ADMIN: self._issue(
                f"{prefix}-opensearch-admin", opensearch_admin_name(identity.name), [], [], CLIENT_USES, RSA
            ),
            # Public: an edge's sidecar trusts it for clients; central reports its end.
            STOREAPI_CLIENT_CA: {
                "certificate": self._storeapi_clients.certificate,
                "notAfter": self._storeapi_clients.not_after,
                "hosts": [],
            },
        }
        if identity.central:
            issued[QUERY_CLIENT] = self._issue(
                f"{prefix}-query-client", QUERY_CLIENT_NAME, [], [], CLIENT_USES, ECDSA, self._storeapi_clients
            )
        else:
            dns, ips = sidecar_names(identity)
            common_name = f"thanos-sidecar.{identity.name}"
            issued[SIDECAR] = self._issue(f"{prefix}-sidecar", common_name, dns, ips, SERVER_USES, ECDSA)
        return issued

    def _issue(
        self,
        name: str,
        common_name: str,
        dns_names: list[str],
        ip_addresses: list[str],
        uses: list[str],
        key_type: tuple[str, str],
        ca: SigningCa | None = None,
    ) -> dict[str, Any]:
        """A key and a certificate signed by `ca` (default: the platform CA)."""
        signer = ca or self._platform
        algorithm, curve = key_type
        key = tls.PrivateKey(
            f"{name}-key",
            algorithm=algorithm,
            ecdsa_curve=curve or None,
            rsa_bits=2048 if algorithm == "RSA" else None,
            opts=self.child(),
        )
        request = tls.CertRequest(
            f"{name}-request",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization=PROJECT),
            dns_names=dns_names or None,
            ip_addresses=ip_addresses or None,
            opts=self.child(),
        )
        certificate = tls.LocallySignedCert(
            name,
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=signer.certificate,
            ca_private_key_pem=signer.key,
            validity_period_hours=self._validity_hours,
            early_renewal_hours=self._renewal_hours,
            allowed_uses=uses,
            opts=self.child(),
        )
        return {
            "certificate": certificate.cert_pem,
            # PKCS#8: the one key format Go, Java (OpenSearch) and Python all read.
            "privateKey": key.private_key_pem_pkcs8,
            "notAfter": certificate.validity_end_time,
            "hosts": [*dns_names, *ip_addresses] or [common_name],
        }
