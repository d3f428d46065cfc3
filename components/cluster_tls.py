"""ClusterTls: this cluster's certificates from the platform CA, as the Secrets its workloads mount.

The certificates come from `PlatformCa` on central (its own entry directly, an edge's through the
central stack). Every Secret and ConfigMap a workload reads is created here, under a name the
workload's component imports from this module:

- `platform-ingress-tls` (kubernetes.io/tls, namespace `ingress`): `*.<domain>`, Traefik's default
  certificate (TLSStore `default`);
- `thanos-grpc-tls` (`monitoring`): mutual TLS on the edges' NodePort 30901. On an edge the
  sidecar's server certificate (from the platform CA) with the StoreAPI client CA as `ca.crt`, the
  only CA whose clients it accepts; on central Query's client certificate (from the StoreAPI client
  CA) with the platform CA as `ca.crt`, which it verifies the sidecars with;
- `opensearch-tls` (`logging`): OpenSearch's node certificate and the CA (HTTP and transport layers);
- ConfigMap `platform-ca` (`logging`, `fluent-bit`): the CA certificate, trusted by Traefik's
  ServersTransport to OpenSearch and by Fluent-bit.

The cluster's OpenSearch admin certificate (`opensearchAdmin`, break-glass) is in the entry too, and
deliberately in no Secret: it is the operator's, taken from central's state when the admin password
is lost; only its end of validity reaches the `certificates` output.

A renewed certificate changes the Secret in place; Traefik reloads it, and the pods that mount one
(Prometheus, Query, OpenSearch) roll because their pod templates carry the certificates' hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, Component

INGRESS_TLS_SECRET = "platform-ingress-tls"
THANOS_GRPC_TLS_SECRET = "thanos-grpc-tls"
OPENSEARCH_TLS_SECRET = "opensearch-tls"
PLATFORM_CA_CONFIGMAP = "platform-ca"
CERTIFICATE_KEY = "tls.crt"
PRIVATE_KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
GRPC_TLS_DIR = "/etc/thanos/grpc-tls"
"""Where Thanos containers mount `thanos-grpc-tls`."""
TLS_CHECKSUM = "checksum/tls"
"""Pod-template annotation: the hash of the certificates a pod mounts, so a renewal rolls it."""

# The certificates `PlatformCa` issues each cluster (entries of its `issued` output).
INGRESS = "ingress"
OPENSEARCH = "opensearch"
SIDECAR = "sidecar"
QUERY_CLIENT = "queryClient"
STOREAPI_CLIENT_CA = "storeApiClientCa"
"""The CA of Query's client certificate (certificate only, no key): the edge sidecars' client CA."""
OPENSEARCH_ADMIN = "opensearchAdmin"
"""The cluster's break-glass OpenSearch admin client certificate: for the operator, from central's
state; no Secret carries it into any cluster (only its end of validity is reported)."""
CA_ENTRY = "platform-ca"
"""The CA in the `certificates` stack output: its end of validity is worth watching too."""


class CertificatesDoNotFit(pulumi.RunError):
    """Central issued this cluster certificates for another domain, or not all it needs."""


ClusterCertificates = dict[str, dict[str, Any]]
"""{kind: {"certificate", "privateKey", "notAfter", "hosts"}} of one cluster."""


class ClusterTlsArgs(TypedDict):
    cluster_name: str
    """This cluster (named in the message when central's certificates do not fit it)."""
    domain: str
    """This cluster's wildcard DNS domain: its ingress certificate must be for `*.<domain>`."""
    central: bool
    """Central holds Query's client certificate, an edge its sidecar's server certificate."""
    certificates: pulumi.Input[ClusterCertificates]
    """This cluster's entry of the platform CA's certificates (secret)."""
    ca_certificate: pulumi.Input[str]
    """The platform CA certificate (public)."""
    ca_not_after: pulumi.Input[str]
    """The end of the CA's validity, reported with the certificates."""
    ingress_namespace: str
    monitoring_namespace: str
    logging_namespace: str
    fluent_bit_namespace: str


def grpc_kind(central: bool) -> str:
    return QUERY_CLIENT if central else SIDECAR


def checked(certificates: ClusterCertificates, cluster: str, domain: str, central: bool) -> ClusterCertificates:
    """The certificates, refused when they were issued for another domain or role than this stack's."""
    wildcard = f"*.{domain}"
    hosts = certificates.get(INGRESS, {}).get("hosts") or []
    if wildcard not in hosts:
        raise CertificatesDoNotFit(
            f"the central stack issued {cluster}'s ingress certificate for {hosts}, but this stack's domain is "
            f"{domain}: set `domain: {domain}` on {cluster}'s entry under central's `edges` and run central's "
            "`pulumi up` first"
        )
    missing = [
        kind for kind in (INGRESS, OPENSEARCH, grpc_kind(central), STOREAPI_CLIENT_CA) if kind not in certificates
    ]
    if missing:
        raise CertificatesDoNotFit(
            f"the central stack issued no {', '.join(missing)} certificate for {cluster}: run central's `pulumi up` "
            "with this version of the program first"
        )
    return certificates


def expiry_summary(certificates: ClusterCertificates, ca_not_after: str | None = None) -> dict[str, Any]:
    """`{kind: {notAfter, hosts}}`: what a stack reports of its certificates (no keys)."""
    summary = {
        kind: {"notAfter": entry["notAfter"], "hosts": list(entry.get("hosts") or [])}
        for kind, entry in sorted(certificates.items())
    }
    if ca_not_after is not None:
        summary[CA_ENTRY] = {"notAfter": ca_not_after, "hosts": []}
    return summary


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def tls_secret_data(entry: Mapping[str, Any], ca: str) -> dict[str, str]:
    return {CERTIFICATE_KEY: entry["certificate"], PRIVATE_KEY_KEY: entry["privateKey"], CA_KEY: ca}


def grpc_ca(certificates: ClusterCertificates, platform_ca: str, central: bool) -> str:
    """The `ca.crt` of `thanos-grpc-tls`: what Query verifies the sidecars' server certificates with
    (central: the platform CA), or the CA an edge's sidecar accepts clients of (the StoreAPI client
    CA, never the platform CA, which also signs every OpenSearch node certificate)."""
    return platform_ca if central else str(certificates[STOREAPI_CLIENT_CA]["certificate"])


class ClusterTls(Component):
    """The Secrets and ConfigMaps that carry this cluster's certificates to its workloads."""

    certificates: pulumi.Output[dict[str, Any]]
    """Public summary `{kind: {notAfter, hosts}}`, the CA included: the `certificates` stack output."""
    grpc_checksum: pulumi.Output[str]
    """Hash of the gRPC certificate and its `ca.crt`: Prometheus (edge) and Query (central) roll when
    either changes (a renewed certificate, a new platform or StoreAPI client CA)."""
    opensearch_checksum: pulumi.Output[str]
    """Hash of OpenSearch's certificate and CA: OpenSearch rolls when it changes."""
    ready: list[pulumi.Resource]
    """Every object created: what a workload mounting one of them waits for."""

    def __init__(self, name: str, args: ClusterTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tls:ClusterTls", name, opts)
        cluster, domain, central = args["cluster_name"], args["domain"], args["central"]
        own: pulumi.Output[ClusterCertificates] = pulumi.Output.secret(args["certificates"]).apply(
            lambda certificates: checked(certificates, cluster, domain, central)
        )
        ca = pulumi.Output.from_input(args["ca_certificate"])
        grpc = grpc_kind(central)

        def secret_of(kind: str) -> pulumi.Output[dict[str, str]]:
            return pulumi.Output.all(own, ca).apply(lambda both: tls_secret_data(both[0][kind], both[1]))

        grpc_trust = pulumi.Output.all(own, ca).apply(lambda both: grpc_ca(both[0], both[1], central))
        grpc_data = pulumi.Output.all(own, grpc_trust).apply(lambda both: tls_secret_data(both[0][grpc], both[1]))

        ingress = own.apply(
            lambda issued: {
                CERTIFICATE_KEY: issued[INGRESS]["certificate"],
                PRIVATE_KEY_KEY: issued[INGRESS]["privateKey"],
            }
        )
        trusting = (args["logging_namespace"], args["fluent_bit_namespace"])
        self.ready = [
            self._secret(INGRESS_TLS_SECRET, args["ingress_namespace"], ingress, "kubernetes.io/tls"),
            self._secret(THANOS_GRPC_TLS_SECRET, args["monitoring_namespace"], grpc_data),
            self._secret(OPENSEARCH_TLS_SECRET, args["logging_namespace"], secret_of(OPENSEARCH)),
            *(self._ca_config_map(namespace, ca) for namespace in trusting),
        ]
        self.certificates = pulumi.Output.unsecret(
            pulumi.Output.all(own, args["ca_not_after"]).apply(lambda both: expiry_summary(both[0], both[1]))
        )
        self.grpc_checksum = pulumi.Output.unsecret(
            pulumi.Output.all(own, grpc_trust).apply(lambda both: fingerprint(both[0][grpc]["certificate"], both[1]))
        )
        self.opensearch_checksum = pulumi.Output.unsecret(
            pulumi.Output.all(own, ca).apply(lambda both: fingerprint(both[0][OPENSEARCH]["certificate"], both[1]))
        )
        self.register_outputs({"certificates": self.certificates})

    def _secret(
        self, name: str, namespace: str, data: pulumi.Input[dict[str, str]], type_: str = "Opaque"
    ) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{namespace}-{name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=MANAGED_BY),
            type=type_,
            string_data=pulumi.Output.secret(data),
            opts=self.child(),
        )

    def _ca_config_map(self, namespace: str, ca: pulumi.Output[str]) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            f"{namespace}-{PLATFORM_CA_CONFIGMAP}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=PLATFORM_CA_CONFIGMAP, namespace=namespace, labels=MANAGED_BY),
            data={CA_KEY: ca},
            opts=self.child(),
        )
