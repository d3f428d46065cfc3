"""A whole fake cluster of the platform: its CAs, a fake of every service, and the stack outputs
that point at them. `FakePlatform.started()` starts it with every check passing; tests break one
thing through a fake's state, and `reset()` makes it healthy again.

The clusters are the fixture stacks (`tests/conftest.py`). As behind Traefik, each UI (Grafana,
OpenSearch, the Longhorn UI, Thanos) is a name under its cluster's domain whose certificate names it
alone, served at an address: its URL is `https://<service>.<domain>:<port>/` and `ingressAddress` is
127.0.0.1, so the names need not (and, `*.lab.test`, cannot) resolve."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import CENTRAL_STACK, HUB_EDGES, raw_config
from tests.fakes import opensearch, pki, s3, thanos, web
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.opensearch import FakeOpenSearch
from tests.fakes.pki import CA
from tests.fakes.s3 import FakeS3
from tests.fakes.server import FakeServer, Reply, Request
from tests.fakes.thanos import FakeThanos
from tests.fakes.web import FakeGrafana, FakeLonghornUi
from tools.verify.context import Context, Options
from tools.verify.outputs import parse
from tools.verify.report import Result

CENTRAL = CENTRAL_STACK
EDGES = list(HUB_EDGES)
INGRESS_ADDRESS = "127.0.0.1"
"""Where every fake UI listens: the ingress address as the stack outputs give it."""
UIS = ("grafana", "opensearch", "longhorn", "thanos")
"""The services served by the ingress under a name of the cluster's domain."""


@functools.cache
def domain_of(stack: str) -> str:
    """A fixture stack's wildcard DNS domain."""
    domain: str = raw_config(stack)["domain"]
    return domain


def stack_of(role: str) -> str:
    """The fixture stack the outputs of a role describe: central, or the first edge."""
    return CENTRAL if role == "central" else EDGES[0]


def ui_host(service: str, role: str = "central") -> str:
    """The ingress name of a UI, e.g. `grafana.<domain>`."""
    return f"{service}.{domain_of(stack_of(role))}"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass
class PKI:
    """The platform CA (every ingress), minikube's CA (API server, client cert) and MinIO's own CA."""

    directory: Path
    platform: CA = field(init=False)
    minikube: CA = field(init=False)
    minio: CA = field(init=False)

    def __post_init__(self) -> None:
        self.platform = CA(self.directory, "platform-ca")
        self.minikube = CA(self.directory, "minikube-ca")
        self.minio = CA(self.directory, "minio-ca")


def healthy_services() -> dict[str, Any]:
    return {
        "kubernetes": FakeKubernetes(),
        "thanos": FakeThanos([CENTRAL, *EDGES]),
        "opensearch": FakeOpenSearch(),
        "s3": FakeS3(),
        "grafana": FakeGrafana(),
        "longhorn": FakeLonghornUi(),
    }


class FakePlatform:
    """The fakes behind their servers; `reset()` makes every fake healthy again without a restart."""

    kubernetes: FakeKubernetes
    thanos: FakeThanos
    opensearch: FakeOpenSearch
    s3: FakeS3
    grafana: FakeGrafana
    longhorn: FakeLonghornUi

    def __init__(self, pki: PKI) -> None:
        self.pki = pki
        self.reset()
        self.servers = {name: self._server(name) for name in healthy_services()}
        self._kubeconfig = self._make_kubeconfig()

    def _server(self, name: str) -> FakeServer:
        ca = {"s3": self.pki.minio, "kubernetes": self.pki.minikube}.get(name, self.pki.platform)
        client_ca = self.pki.minikube.cert if name == "kubernetes" else None
        # A UI's certificate names its ingress names only (central's and the edge's): no address.
        hosts = tuple(ui_host(name, role) for role in ("central", "edge")) if name in UIS else pki.LOCAL_HOSTS
        return FakeServer(functools.partial(self._dispatch, name), ca.issue(name, hosts), client_ca=client_ca)

    def url(self, service: str, port: int | None = None, role: str = "central") -> str:
        """A UI's URL as the stack outputs give it, on its fake's port or on `port`."""
        return f"https://{ui_host(service, role)}:{port or self.servers[service].port}/"

    def _dispatch(self, name: str, request: Request) -> Reply:
        reply: Reply = getattr(self, name).handle(request)
        return reply

    def reset(self) -> None:
        for name, service in healthy_services().items():
            setattr(self, name, service)
        for server in getattr(self, "servers", {}).values():
            server.requests.clear()

    def requests(self) -> list[Request]:
        return [request for server in self.servers.values() for request in server.requests]

    def _make_kubeconfig(self) -> str:
        client = self.pki.minikube.issue("minikube-user", client=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": CENTRAL,
            "clusters": [
                {
                    "name": CENTRAL,
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.servers['kubernetes'].port}",
                        "certificate-authority-data": _b64(self.pki.minikube.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": CENTRAL,
                    "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)},
                }
            ],
            "contexts": [{"name": CENTRAL, "context": {"cluster": CENTRAL, "user": CENTRAL}}],
        }
        return yaml.safe_dump(config)

    def outputs(self, role: str = "central") -> dict[str, Any]:
        not_after = (dt.datetime.now(dt.UTC) + dt.timedelta(days=300)).isoformat()
        out: dict[str, Any] = {
            "role": role,
            "clusterName": stack_of(role),
            "kubeconfig": self._kubeconfig,
            "ingressAddress": INGRESS_ADDRESS,
            "grafanaUrl": self.url("grafana", role=role),
            "grafanaAdminPassword": web.GRAFANA_PASSWORD,
            "opensearchUrl": self.url("opensearch", role=role),
            "opensearchAdminPassword": opensearch.PASSWORD,
            "longhornUrl": self.url("longhorn", role=role),
            "longhornUiPassword": web.LONGHORN_PASSWORD,
            "platformCaCertificate": self.pki.platform.pem,
            "certificates": {"ingress": {"notAfter": not_after, "hosts": [f"*.{domain_of(stack_of(role))}"]}},
            "objectStore": {
                "endpoint": f"localhost:{self.servers['s3'].port}",
                "useTls": True,
                "region": s3.REGION,
                "caCertificate": self.pki.minio.pem,
                "buckets": {"thanos": "thanos", "opensearch": "opensearch-logs", "longhorn": "longhorn-backups"},
            },
        }
        if role == "central":
            out |= {
                "thanosUrl": self.url("thanos"),
                "thanosUiPassword": thanos.PASSWORD,
                "clusters": [CENTRAL, *EDGES],
                "verifierCredentials": {"accessKey": s3.ACCESS_KEY, "secretKey": s3.SECRET_KEY},
            }
        return out

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[FakePlatform]:
        with tempfile.TemporaryDirectory(prefix="fake-platform-") as tmp:
            platform = cls(PKI(Path(tmp)))
            try:
                yield platform
            finally:
                platform.stop()


FAST = Options(timeout=2.0, total_timeout=60.0, fluent_bit_window=0.05)
"""Short limits for tests: every fake answers at once."""


def run_checks(
    outputs: dict[str, Any], area: Callable[[Context], list[Result]], options: Options = FAST
) -> dict[str, Result]:
    """One area's results by check name, for the given outputs."""
    with Context(parse(outputs), options) as ctx:
        return {result.check: result for result in area(ctx)}
