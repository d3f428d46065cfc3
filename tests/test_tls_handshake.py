"""Real TLS handshakes with the certificates central issues (the platform CA, and the StoreAPI
client CA for Query's client certificate), configured as the program configures each side.

The certificates are issued for real from the central rendering's inputs (`tests/certificates.py`);
each side's files come from the Secret or ConfigMap the program mounts at the path the program
names. So these tests fail when a path, a Secret key, a SAN, a key usage or a TLS setting is wrong,
not only when the idea is.

The edge sidecar is modelled by Thanos's documented rule: a server given a client CA
(`--grpc-server-tls-client-ca`, what prometheus-operator makes of `grpcServerTlsConfig.caFile`)
requires and verifies a client certificate: the chain and the `client_auth` usage, nothing else.
Central Query is modelled by its endpoint file's `client_config`: its certificate and key, the CA,
`server_name` and `min_version`.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.kube_prometheus_stack import SIDECAR_NODE_PORT
from tests.certificates import Materialized, materialize
from tests.conftest import CENTRAL_STACK, EDGE, OTHER_EDGE, rendered, settings
from tools.engine import Rendering, unwrap

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}
TLS_VERSIONS |= {"1.3": ssl.TLSVersion.TLSv1_3, "VersionTLS12": ssl.TLSVersion.TLSv1_2}


@pytest.fixture(scope="module")
def issued() -> Materialized:
    return materialize(rendered(CENTRAL_STACK))


@dataclass
class Outcome:
    server_error: str | None
    client_error: str | None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str) -> Outcome:
    """One connection on localhost: handshake, one request byte, one reply."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: dict[str, str | None] = {"server": None}

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
                tls.sendall(b"k")
        except (ssl.SSLError, OSError) as error:
            errors["server"] = str(error)
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_error = None
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"q")
            if tls.recv(1) != b"k":
                client_error = "no reply"
    except (ssl.SSLError, OSError) as error:
        client_error = str(error)
    thread.join(timeout=5)
    listener.close()
    return Outcome(errors["server"], client_error)


def write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


def mounted_files(issued: Materialized, secret_or_map: dict[str, Any], directory: Path) -> Path:
    """The keys of a Secret's `stringData` or a ConfigMap's `data`, as the kubelet would project them."""
    directory.mkdir(parents=True, exist_ok=True)
    write(directory, {key: issued.real(value) for key, value in unwrap(secret_or_map).items()})
    return directory


def projected(path: str, mount_dir: str, local_dir: Path) -> str:
    """A path inside the container, in the local copy of its mount."""
    assert path.startswith(f"{mount_dir}/"), (path, mount_dir)
    return str(local_dir / path.removeprefix(f"{mount_dir}/"))


# --- the edge sidecar's StoreAPI ------------------------------------------------------------


def sidecar_server(edge: Rendering, issued: Materialized, tmp: Path) -> ssl.SSLContext:
    spec = edge.release("kube-prometheus-stack").inputs["values"]["prometheus"]["prometheusSpec"]
    tls = spec["thanos"]["grpcServerTlsConfig"]
    (mount,) = [m for m in spec["thanos"]["volumeMounts"] if tls["certFile"].startswith(m["mountPath"])]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    secret = edge.k8s("Secret", volume["secret"]["secretName"], "monitoring").inputs["stringData"]
    local = mounted_files(issued, secret, tmp / "sidecar")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls["minVersion"]]
    context.load_cert_chain(
        projected(tls["certFile"], mount["mountPath"], local), projected(tls["keyFile"], mount["mountPath"], local)
    )
    if tls.get("caFile"):  # Thanos: a client CA means a client certificate is required and verified
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(projected(tls["caFile"], mount["mountPath"], local))
    return context


def query_endpoint(central: Rendering, address: str) -> dict[str, Any]:
    endpoints = central.k8s("ConfigMap", "thanos-query-endpoints", "monitoring").inputs["data"]["endpoints.yaml"]
    (entry,) = [e for e in yaml.safe_load(endpoints)["endpoints"] if e["address"] == address]
    return entry


def query_client(central: Rendering, issued: Materialized, address: str, tmp: Path) -> tuple[ssl.SSLContext, str]:
    """Query's client context for one edge, and the server name it verifies."""
    config = query_endpoint(central, address)["client_config"]
    tls = config["tls_config"]
    deployment = central.k8s("Deployment", "thanos-query", "monitoring").inputs["spec"]["template"]["spec"]
    (mount,) = [m for m in deployment["containers"][0]["volumeMounts"] if tls["cert_file"].startswith(m["mountPath"])]
    (volume,) = [v for v in deployment["volumes"] if v["name"] == mount["name"]]
    secret = central.k8s("Secret", volume["secret"]["secretName"], "monitoring").inputs["stringData"]
    local = mounted_files(issued, secret, tmp / "query")
    assert tls["enabled"] is True and not tls.get("insecure_skip_verify")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    context.minimum_version = TLS_VERSIONS[tls["min_version"]]
    context.load_verify_locations(projected(tls["ca_file"], mount["mountPath"], local))
    context.load_cert_chain(
        projected(tls["cert_file"], mount["mountPath"], local), projected(tls["key_file"], mount["mountPath"], local)
    )
    return context, config["server_name"]


def sidecar_address(stack: Rendering) -> str:
    return f"{settings(stack).host}:{SIDECAR_NODE_PORT}"


def test_query_reaches_an_edge_sidecar_with_its_client_certificate(issued: Materialized, tmp_path: Path) -> None:
    edge, central = rendered(EDGE), rendered(CENTRAL_STACK)
    client, server_name = query_client(central, issued, sidecar_address(edge), tmp_path)
    outcome = handshake(sidecar_server(edge, issued, tmp_path), client, server_name)
    assert outcome.ok, outcome


def test_the_sidecar_refuses_a_client_without_a_certificate(issued: Materialized, tmp_path: Path) -> None:
    edge, central = rendered(EDGE), rendered(CENTRAL_STACK)
    _, server_name = query_client(central, issued, sidecar_address(edge), tmp_path)
    anonymous = ssl.create_default_context(cadata=issued.real(edge.outputs["platformCaCertificate"]))
    outcome = handshake(sidecar_server(edge, issued, tmp_path), anonymous, server_name)
    assert outcome.server_error is not None and "certificate" in outcome.server_error.lower(), outcome
    assert outcome.client_error is not None, "the client gets no reply"


def test_the_sidecar_refuses_a_certificate_of_another_ca(issued: Materialized, tmp_path: Path) -> None:
    edge, central = rendered(EDGE), rendered(CENTRAL_STACK)
    _, server_name = query_client(central, issued, sidecar_address(edge), tmp_path)
    impostor = ssl.create_default_context(cadata=issued.real(edge.outputs["platformCaCertificate"]))
    cert, key = self_signed_client(tmp_path)
    impostor.load_cert_chain(cert, key)
    outcome = handshake(sidecar_server(edge, issued, tmp_path), impostor, server_name)
    assert outcome.server_error is not None and "certificate" in outcome.server_error.lower(), outcome


@pytest.mark.parametrize("holder", [EDGE, OTHER_EDGE, CENTRAL_STACK])
def test_the_sidecar_refuses_an_opensearch_node_certificate(holder: str, issued: Materialized, tmp_path: Path) -> None:
    """Every cluster's OpenSearch node certificate allows client authentication (OpenSearch's
    transport layer needs it) and its key sits in that cluster: it comes from the platform CA, which
    the sidecar does not trust for clients."""
    edge = rendered(EDGE)
    _, server_name = query_client(rendered(CENTRAL_STACK), issued, sidecar_address(edge), tmp_path)
    secret = rendered(holder).k8s("Secret", "opensearch-tls", "logging").inputs["stringData"]
    files = mounted_files(issued, secret, tmp_path / f"opensearch-{holder}")
    node = x509.load_pem_x509_certificate((files / "tls.crt").read_bytes())
    assert ExtendedKeyUsageOID.CLIENT_AUTH in node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    opensearch = ssl.create_default_context(cadata=issued.real(edge.outputs["platformCaCertificate"]))
    opensearch.load_cert_chain(str(files / "tls.crt"), str(files / "tls.key"))
    outcome = handshake(sidecar_server(edge, issued, tmp_path), opensearch, server_name)
    assert outcome.server_error is not None and "certificate verify failed" in outcome.server_error, outcome
    # The unknown-CA alert or, when the server closed first, an EOF: in TLS 1.3 it comes after the handshake.
    assert outcome.client_error is not None, "the client gets no reply"


def test_querys_certificate_chains_to_the_sidecars_client_ca_and_nothing_else_does(
    issued: Materialized, tmp_path: Path
) -> None:
    """Of all the keys central hands out, only Query's opens a sidecar: its certificate alone is
    signed by the StoreAPI client CA (the sidecar's `ca.crt`), every other one by the platform CA."""
    edge, central = rendered(EDGE), rendered(CENTRAL_STACK)
    grpc = mounted_files(issued, edge.k8s("Secret", "thanos-grpc-tls", "monitoring").inputs["stringData"], tmp_path)
    client_ca = x509.load_pem_x509_certificate((grpc / "ca.crt").read_bytes())
    platform_ca = x509.load_pem_x509_certificate(issued.real(edge.outputs["platformCaCertificate"]).encode())
    assert client_ca.subject != platform_ca.subject
    query = f"{central.stack}-platform-ca-{central.stack}-query-client"
    for name, certificate in issued.certificates.items():
        if name in issued.issuers:
            expected = client_ca if name == query else platform_ca
            certificate.verify_directly_issued_by(expected)
            assert certificate.issuer == expected.subject, name


def test_another_edge_cannot_use_its_server_certificate_as_a_client(issued: Materialized, tmp_path: Path) -> None:
    """Each edge holds a certificate from the same CA, but for serving only (no client_auth usage)."""
    edge, other = rendered(EDGE), rendered(OTHER_EDGE)
    _, server_name = query_client(rendered(CENTRAL_STACK), issued, sidecar_address(edge), tmp_path)
    neighbour = ssl.create_default_context(cadata=issued.real(edge.outputs["platformCaCertificate"]))
    files = mounted_files(
        issued, other.k8s("Secret", "thanos-grpc-tls", "monitoring").inputs["stringData"], tmp_path / "o"
    )
    neighbour.load_cert_chain(str(files / "tls.crt"), str(files / "tls.key"))
    outcome = handshake(sidecar_server(edge, issued, tmp_path), neighbour, server_name)
    assert outcome.server_error is not None, outcome


def test_query_refuses_a_sidecar_that_answers_for_another_edge(issued: Materialized, tmp_path: Path) -> None:
    """The other edge's sidecar certificate names the other host: Query dialling this edge rejects it."""
    edge, other, central = rendered(EDGE), rendered(OTHER_EDGE), rendered(CENTRAL_STACK)
    client, server_name = query_client(central, issued, sidecar_address(edge), tmp_path)
    outcome = handshake(sidecar_server(other, issued, tmp_path), client, server_name)
    assert outcome.client_error is not None and "certificate" in outcome.client_error.lower(), outcome


def self_signed_client(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thanos-query")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "impostor.crt", directory / "impostor.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


# --- the ingress and OpenSearch ------------------------------------------------------------


def server_from_secret(issued: Materialized, secret: Any, directory: Path) -> ssl.SSLContext:
    local = mounted_files(issued, secret, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(local / "tls.crt"), str(local / "tls.key"))
    return context


def trusting(issued: Materialized, ca: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=issued.real(ca))


def ingress_hosts(stack: Rendering) -> Iterator[str]:
    for url in ("grafanaUrl", "longhornUrl", "opensearchUrl", "thanosUrl"):
        if url in stack.outputs:
            yield str(stack.outputs[url]).removeprefix("https://").rstrip("/")


@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE])
def test_every_ui_host_is_served_with_a_certificate_browsers_trusting_the_ca_accept(
    stack: str, issued: Materialized, tmp_path: Path
) -> None:
    rendering = rendered(stack)
    secret = rendering.k8s("Secret", "platform-ingress-tls", "ingress").inputs["stringData"]
    server = server_from_secret(issued, secret, tmp_path / "ingress")
    hosts = list(ingress_hosts(rendering))
    assert len(hosts) >= 3
    for host in hosts:
        assert handshake(server, trusting(issued, rendering.outputs["platformCaCertificate"]), host).ok, host
    foreign = f"grafana.{settings(rendered(OTHER_EDGE)).domain}"
    outcome = handshake(server, trusting(issued, rendering.outputs["platformCaCertificate"]), foreign)
    assert outcome.client_error is not None, "another cluster's host is not covered"


def test_traefik_and_fluent_bit_verify_opensearch_by_the_name_they_dial(issued: Materialized, tmp_path: Path) -> None:
    edge = rendered(EDGE)
    secret = edge.k8s("Secret", "opensearch-tls", "logging").inputs["stringData"]
    server = server_from_secret(issued, secret, tmp_path / "opensearch")
    transport = edge.k8s("ServersTransport", "opensearch", "logging").inputs["spec"]
    (root,) = transport["rootCAs"]
    ca = edge.k8s("ConfigMap", root["configMap"], "logging").inputs["data"]["ca.crt"]
    assert handshake(server, trusting(issued, ca), transport["serverName"]).ok
    fluent_bit_ca = edge.k8s("ConfigMap", "platform-ca", "fluent-bit").inputs["data"]["ca.crt"]
    outputs = edge.release("fluent-bit").inputs["values"]["config"]["outputs"]
    (host,) = re.findall(r"^\s*Host\s+(\S+)$", outputs, flags=re.MULTILINE)
    assert handshake(server, trusting(issued, fluent_bit_ca), host).ok
    assert not handshake(server, trusting(issued, ca), "opensearch.example.org").ok
