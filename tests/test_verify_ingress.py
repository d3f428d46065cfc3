"""tools.verify, how the UIs are reached: a UI's URL names a host under the cluster's wildcard
domain, and Traefik serves every such name on 443 of the host's address, the stack output
`ingressAddress`. The verifier dials that address with the name as TLS server name and `Host`, so
the operator's machine needs no DNS entry; `--use-dns` looks the names up instead. The clusters are
the fixture stacks; their names (`*.lab.test`) cannot resolve, and a resolver stands in for DNS."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EDGE, OTHER_EDGE, raw_config
from tests.fakes import pki
from tests.fakes.platform import FAST, INGRESS_ADDRESS, UIS, FakePlatform, domain_of, run_checks, ui_host
from tests.fakes.server import FakeServer, closed_port
from tests.fakes.web import FakeGrafana
from tools.verify import tls, web
from tools.verify.__main__ import main
from tools.verify.context import WILDCARD_DNS_HINT, Context, Options
from tools.verify.outputs import parse
from tools.verify.report import Result, Status
from tools.verify.runner import outputs_result

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")
EDGE_ROLE = "edge"
USE_DNS = Options(timeout=FAST.timeout, total_timeout=FAST.total_timeout, use_dns=True)
VERIFICATION_HINT = "its certificate must chain to platformCaCertificate and name this host"


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


class Resolver:
    """DNS as this machine sees it: localhost and the names in `records`, no other name; addresses
    pass through."""

    def __init__(self, records: dict[str, str] | None = None) -> None:
        self.records = {"localhost": "127.0.0.1", **(records or {})}
        self.looked_up: list[str] = []
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        except OSError:
            self.looked_up.append(name)
            if name not in self.records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            return self._real(self.records[name], port, *args, **kwargs)
        return self._real(host, port, *args, **kwargs)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture(scope="module")
def edge_grafana(started: FakePlatform) -> Iterator[FakeServer]:
    """Grafana behind the edge's ingress: a certificate for `grafana.<edge domain>` only, no address."""
    issued = started.pki.platform.issue("grafana-edge-only", hosts=(ui_host("grafana", EDGE_ROLE),))
    server = FakeServer(FakeGrafana().handle, issued)
    yield server
    server.stop()


def ui_checks(outputs: dict[str, Any], options: Options = FAST) -> dict[str, Result]:
    return run_checks(outputs, lambda ctx: web.run(ctx) + tls.run(ctx), options)


def edge_outputs(platform: FakePlatform, grafana: FakeServer, **changes: Any) -> dict[str, Any]:
    outputs = platform.outputs(role=EDGE_ROLE) | {"grafanaUrl": platform.url("grafana", grafana.port, EDGE_ROLE)}
    return {key: value for key, value in (outputs | changes).items() if value is not None}


def test_the_fake_uis_are_names_of_the_fixture_domains_served_at_an_address(platform: FakePlatform) -> None:
    outputs = platform.outputs(role=EDGE_ROLE)
    assert outputs["grafanaUrl"].startswith(f"https://grafana.{domain_of(EDGE)}:")
    assert outputs["ingressAddress"] == INGRESS_ADDRESS


def test_a_ui_name_is_reached_at_the_ingress_address_without_dns(
    platform: FakePlatform, edge_grafana: FakeServer, dns: Resolver
) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    found = ui_checks(edge_outputs(platform, edge_grafana))
    assert found["grafana.login"].status is Status.OK, found["grafana.login"]
    assert found["grafana.login"].detail.startswith(f"https://{name}:{edge_grafana.port}/ answers")
    assert found["tls.grafana"].status is Status.OK, found["tls.grafana"]
    assert found["tls.grafana"].detail.startswith(f"{name} via {INGRESS_ADDRESS}:{edge_grafana.port}: chains to")
    assert dns.looked_up == [], "no name is looked up: every UI is dialled at ingressAddress"
    assert set(edge_grafana.server_names) == {name}, "TLS asks for the name (SNI), so Traefik serves its certificate"
    assert {r.headers["host"] for r in edge_grafana.requests} == {f"{name}:{edge_grafana.port}"}, "Host routes it"


def test_every_ui_is_reached_at_the_ingress_address(platform: FakePlatform, dns: Resolver) -> None:
    found = ui_checks(platform.outputs())
    assert {check: r.status for check, r in found.items() if check != "tls.certificates"} == {
        "grafana.login": Status.OK,
        "longhorn.ui": Status.OK,
        **{f"tls.{service}": Status.OK for service in UIS},
    }
    assert dns.looked_up == []


def test_with_use_dns_the_name_is_looked_up_and_dialled(
    platform: FakePlatform, edge_grafana: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    dns = Resolver({name: "127.0.0.1"})
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    found = ui_checks(edge_outputs(platform, edge_grafana, ingressAddress="127.0.0.2"), USE_DNS)
    assert found["grafana.login"].status is Status.OK, found["grafana.login"]
    assert found["tls.grafana"].detail.startswith(f"{name}:{edge_grafana.port}: chains to"), "no `via`"
    assert name in dns.looked_up, "the name, not ingressAddress (127.0.0.2, where nothing listens), is dialled"
    assert set(edge_grafana.server_names) == {name}


def test_with_use_dns_a_name_that_does_not_resolve_points_at_the_wildcard_record(
    platform: FakePlatform, edge_grafana: FakeServer, dns: Resolver
) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    found = ui_checks(edge_outputs(platform, edge_grafana), USE_DNS)["grafana.login"]
    assert found.status is Status.FAIL
    assert found.detail == f"Grafana ({name}:{edge_grafana.port}) unreachable: the host name does not resolve"
    assert found.hint == WILDCARD_DNS_HINT


def test_an_unreachable_ingress_says_the_name_and_the_address_and_never_blames_dns(
    platform: FakePlatform, dns: Resolver
) -> None:
    port = closed_port()
    name = ui_host("grafana", EDGE_ROLE)
    found = ui_checks(platform.outputs(role=EDGE_ROLE) | {"grafanaUrl": platform.url("grafana", port, EDGE_ROLE)})
    login, handshake = found["grafana.login"], found["tls.grafana"]
    assert login.status is Status.FAIL
    assert login.detail == f"Grafana ({name} via {INGRESS_ADDRESS}:{port}) unreachable: connection refused"
    assert "DNS" not in login.hint and "is the ingress controller running?" in login.hint
    assert handshake.status is Status.SKIP
    assert handshake.detail == f"not run: {name} via {INGRESS_ADDRESS}:{port} failed earlier (see grafana.login)"


def test_a_certificate_for_another_name_fails_verification(platform: FakePlatform, dns: Resolver) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    neighbour = f"grafana.{domain_of(OTHER_EDGE)}"
    server = FakeServer(FakeGrafana().handle, platform.pki.platform.issue("grafana-neighbour", hosts=(neighbour,)))
    try:
        found = ui_checks(edge_outputs(platform, server))
    finally:
        server.stop()
    login, handshake = found["grafana.login"], found["tls.grafana"]
    assert login.status is Status.FAIL
    assert login.detail.startswith(f"Grafana ({name} via {INGRESS_ADDRESS}:{server.port}) failed TLS verification:")
    assert neighbour in login.detail and login.hint == VERIFICATION_HINT
    assert handshake.status is Status.FAIL and "Hostname mismatch" in handshake.detail
    assert handshake.detail.startswith(f"{name} via {INGRESS_ADDRESS}:{server.port}: ")
    assert dns.looked_up == []


def test_the_outputs_check_says_how_the_uis_are_reached(platform: FakePlatform) -> None:
    outputs = platform.outputs(role=EDGE_ROLE)
    reached = outputs_result(parse(outputs), EDGE)
    assert reached.status is Status.OK
    assert reached.detail.endswith(f"; the UI names are reached at {INGRESS_ADDRESS} (ingressAddress)")
    assert outputs_result(parse(outputs), EDGE, use_dns=True).detail.endswith("looked up in DNS (--use-dns)")


def test_the_outputs_check_reports_a_missing_ingress_address(platform: FakePlatform) -> None:
    older = {key: value for key, value in platform.outputs(role=EDGE_ROLE).items() if key != "ingressAddress"}
    parsed = parse(older)
    assert parsed.problems == [] and parsed.ingress_address is None, "optional: an older stack still verifies"
    found = outputs_result(parsed, EDGE)
    assert found.status is Status.OK
    assert "no ingressAddress" in found.detail and "looked up in DNS" in found.detail


def test_a_malformed_ingress_address_is_a_problem(platform: FakePlatform) -> None:
    parsed = parse(platform.outputs(role=EDGE_ROLE) | {"ingressAddress": f"traefik.{domain_of(EDGE)}"})
    assert parsed.problems == [f"ingressAddress is not an IP address: 'traefik.{domain_of(EDGE)}'"]
    assert outputs_result(parsed, EDGE).status is Status.FAIL


def test_without_ingress_address_the_names_are_looked_up_and_the_hint_says_why(
    platform: FakePlatform, edge_grafana: FakeServer, dns: Resolver
) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    found = ui_checks(edge_outputs(platform, edge_grafana, ingressAddress=None))["grafana.login"]
    assert found.status is Status.FAIL and name in dns.looked_up
    assert found.detail == f"Grafana ({name}:{edge_grafana.port}) unreachable: the host name does not resolve"
    assert found.hint.startswith(WILDCARD_DNS_HINT) and "ingressAddress" in found.hint


def test_only_the_uis_go_through_the_ingress_address(platform: FakePlatform) -> None:
    host = raw_config(EDGE)["host"]  # the fixture edge's address, as its stack would export it
    name = ui_host("grafana", EDGE_ROLE)
    with Context(parse(platform.outputs(role=EDGE_ROLE) | {"ingressAddress": host}), FAST) as ctx:
        ui = ctx.endpoint("Grafana", f"https://{name}/", ingress=True)
        assert ui.route.target == f"{name} via {host}:443"
        assert ui.route.dial(ui.url("api/user")) == f"https://{host}:443/api/user"
        assert ui.route.named(f"https://{host}:443/api/user") == f"https://{name}/api/user"
        # The Kubernetes API and MinIO are dialled as their outputs say, a name or not.
        assert ctx.endpoint("MinIO", f"https://minio.{domain_of(EDGE)}:9000/").route.target.endswith(":9000")
        assert ctx.endpoint("MinIO", f"https://minio.{domain_of(EDGE)}:9000/").route.address is None
        assert ctx.endpoint("UI by address", f"https://{host}:8443/", ingress=True).route.address is None


def test_an_ipv6_ingress_address_is_bracketed(platform: FakePlatform) -> None:
    name = ui_host("grafana", EDGE_ROLE)
    with Context(parse(platform.outputs(role=EDGE_ROLE) | {"ingressAddress": "fd00:20::11"}), FAST) as ctx:
        route = ctx.endpoint("Grafana", f"https://{name}/", ingress=True).route
    assert route.target == f"{name} via [fd00:20::11]:443"
    assert route.dial(f"https://{name}/api/user") == "https://[fd00:20::11]:443/api/user"


def test_the_command_line_takes_use_dns(
    platform: FakePlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [ui_host(service) for service in UIS]
    dns = Resolver(dict.fromkeys(names, "127.0.0.1"))
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(platform.outputs() | {"ingressAddress": "127.0.0.2"}))
    args = ["--stack", platform.outputs()["clusterName"], "--outputs", str(path), "--json", "--timeout", "2"]
    code = main([*args, "--fluent-bit-window", "0.05", "--use-dns"])
    report = {line["check"]: line for line in json.loads(capsys.readouterr().out)}
    assert code == 0, [line for line in report.values() if line["status"] != "OK"]
    assert report["outputs"]["detail"].endswith("(--use-dns)")
    assert set(names) <= set(dns.looked_up)
