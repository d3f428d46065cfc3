"""tools.verify, TLS: each endpoint's certificate chains to the platform CA, names its host and is
not about to expire; the `certificates` output's nearest expiry. Real TLS servers on 127.0.0.1 with
certificates from throwaway CAs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.fakes import pki
from tests.fakes.platform import FAST, INGRESS_ADDRESS, FakePlatform, run_checks, ui_host
from tests.fakes.server import FakeServer, closed_port
from tests.fakes.web import FakeGrafana
from tools.verify import tls
from tools.verify.context import Options
from tools.verify.report import Result, Status

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


@pytest.fixture(scope="module")
def rogue(started: FakePlatform) -> pki.CA:
    return pki.CA(started.pki.directory, "rogue-ca")


def grafana_with(issued: pki.Issued) -> FakeServer:
    return FakeServer(FakeGrafana().handle, issued)


def tls_results(outputs: dict[str, object], options: Options = FAST) -> dict[str, Result]:
    return run_checks(outputs, tls.run, options)


def test_where_the_handshake_is_made() -> None:
    assert tls.tls_target("http://grafana.mkube-196.miribit.lab/") == ("grafana.mkube-196.miribit.lab", 443)
    assert tls.tls_target("https://opensearch.mkube-196.miribit.lab") == ("opensearch.mkube-196.miribit.lab", 443)
    assert tls.tls_target("https://localhost:8443/") == ("localhost", 8443)


def test_certificates_from_the_platform_ca_pass(platform: FakePlatform) -> None:
    found = tls_results(platform.outputs())
    assert {name: r.status for name, r in found.items()} == {
        "tls.grafana": Status.OK,
        "tls.opensearch": Status.OK,
        "tls.longhorn": Status.OK,
        "tls.thanos": Status.OK,
        "tls.certificates": Status.OK,
    }
    assert "chains to the platform CA" in found["tls.grafana"].detail
    assert "nearest expiry: ingress" in found["tls.certificates"].detail


def test_a_certificate_from_another_ca_fails(platform: FakePlatform, rogue: pki.CA) -> None:
    server = grafana_with(rogue.issue("grafana-rogue", hosts=(ui_host("grafana"),)))
    try:
        outputs = platform.outputs() | {"grafanaUrl": platform.url("grafana", server.port)}
        found = tls_results(outputs)["tls.grafana"]
    finally:
        server.stop()
    assert found.status is Status.FAIL
    assert "unable to get local issuer certificate" in found.detail
    assert "platformCaCertificate" in found.hint


def test_a_certificate_for_another_host_fails(platform: FakePlatform) -> None:
    server = grafana_with(platform.pki.platform.issue("grafana-elsewhere", hosts=("grafana.elsewhere.test",)))
    try:
        found = tls_results(platform.outputs() | {"grafanaUrl": platform.url("grafana", server.port)})["tls.grafana"]
    finally:
        server.stop()
    assert found.status is Status.FAIL and "Hostname mismatch" in found.detail


def test_a_certificate_expiring_within_the_threshold_fails(platform: FakePlatform) -> None:
    server = grafana_with(platform.pki.platform.issue("grafana-expiring", hosts=(ui_host("grafana"),), days=10))
    try:
        outputs = platform.outputs() | {"grafanaUrl": platform.url("grafana", server.port)}
        strict = tls_results(outputs)["tls.grafana"]
        lenient = tls_results(outputs, Options(timeout=2, total_timeout=30, expiry_days=5))["tls.grafana"]
    finally:
        server.stop()
    assert strict.status is Status.FAIL and "(10 days left)" in strict.detail and "renew" in strict.hint
    assert lenient.status is Status.OK


def test_a_closed_port_is_reported_as_unreachable(platform: FakePlatform) -> None:
    port = closed_port()
    found = tls_results(platform.outputs() | {"thanosUrl": platform.url("thanos", port)})["tls.thanos"]
    assert found.status is Status.FAIL
    assert (
        found.detail
        == f"thanos ingress ({ui_host('thanos')} via {INGRESS_ADDRESS}:{port}) unreachable: connection refused"
    )


def test_the_nearest_expiry_of_the_certificates_output_is_reported(platform: FakePlatform) -> None:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    outputs = platform.outputs()
    outputs["certificates"]["minio"] = {"notAfter": soon, "hosts": ["172.20.40.21"]}
    found = tls_results(outputs)["tls.certificates"]
    assert found.status is Status.FAIL
    assert found.detail.startswith("nearest expiry: minio on ") and "among 2 certificates" in found.detail


def test_a_malformed_or_empty_certificates_output_fails(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["certificates"] = {"ingress": {"notAfter": "next tuesday", "hosts": []}}
    assert "is not ISO-8601" in tls_results(outputs)["tls.certificates"].detail
    outputs["certificates"] = {}
    assert tls_results(outputs)["tls.certificates"].status is Status.FAIL


def test_an_edge_has_no_thanos_endpoint(platform: FakePlatform) -> None:
    found = tls_results(platform.outputs(role="edge"))
    assert found["tls.thanos"].status is Status.SKIP and found["tls.thanos"].not_applicable
    assert found["tls.grafana"].status is Status.OK


def test_the_certificate_expiry_output_stands_in_for_certificates(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    del outputs["certificates"]
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    outputs["certificateExpiry"] = {"ca": "2036-01-01T00:00:00Z", "hub/ingress": soon}
    found = tls_results(outputs)["tls.certificates"]
    assert found.status is Status.FAIL and found.detail.startswith("nearest expiry: hub/ingress on ")
