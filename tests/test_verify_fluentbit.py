"""tools.verify, Fluent-bit: retries piling up in its OpenSearch output, read from its metrics
through the Kubernetes API's pod proxy, two scrapes apart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import pki
from tests.fakes.kubernetes import metrics
from tests.fakes.platform import FakePlatform, run_checks
from tools.verify import fluentbit
from tools.verify.context import Context
from tools.verify.report import Result, Status

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")
POD = "fluent-bit-abcde"


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def run(ctx: Context) -> list[Result]:
    return fluentbit.run(ctx, kubernetes_usable=True)


def retries(platform: FakePlatform) -> Result:
    return run_checks(platform.outputs(), run)[fluentbit.CHECK]


def test_the_prometheus_text_parser_reads_the_output_counters() -> None:
    parsed = fluentbit.parse_prometheus(
        metrics(10, 3, 1) + 'fluentbit_output_retries_total{name="es.1",x="a\\"b"} 7 1700\n'
    )
    assert parsed[("fluentbit_output_proc_records_total", "opensearch.0")] == 10
    assert parsed[("fluentbit_output_retries_failed_total", "opensearch.0")] == 1
    assert parsed[("fluentbit_output_retries_total", "es.1")] == 7
    assert not any(name == "fluentbit_input_records_total" for name, _ in parsed)


def test_an_output_delivering_without_new_retries_passes(platform: FakePlatform) -> None:
    result = retries(platform)
    assert result.status is Status.OK
    assert "60 records delivered" in result.detail and "2 retries" in result.detail
    scrapes = [r.path for r in platform.servers["kubernetes"].requests if "proxy" in r.path]
    assert scrapes == [f"/api/v1/namespaces/fluent-bit/pods/{POD}:2020/proxy/api/v2/metrics/prometheus"] * 2


def test_chunks_dropped_during_the_window_fail(platform: FakePlatform) -> None:
    platform.kubernetes.scrapes[POD] = [metrics(100, 5, 1), metrics(130, 8, 3)]
    result = retries(platform)
    assert result.status is Status.FAIL
    assert f"{POD} opensearch.0: 2 chunks dropped after their last retry" in result.detail
    assert "OpenSearch refuses" in result.hint


def test_retries_growing_while_nothing_is_delivered_fail(platform: FakePlatform) -> None:
    platform.kubernetes.scrapes[POD] = [metrics(100, 5, 0), metrics(100, 9, 0)]
    result = retries(platform)
    assert result.status is Status.FAIL
    assert "4 retries and no record delivered" in result.detail


def test_retries_while_records_are_still_delivered_pass(platform: FakePlatform) -> None:
    platform.kubernetes.scrapes[POD] = [metrics(100, 5, 0), metrics(150, 6, 0)]
    assert retries(platform).status is Status.OK


def test_old_dropped_chunks_that_stopped_growing_are_reported_but_pass(platform: FakePlatform) -> None:
    platform.kubernetes.scrapes[POD] = [metrics(100, 5, 4), metrics(120, 5, 4)]
    result = retries(platform)
    assert result.status is Status.OK and "4 dropped chunks since the pod started" in result.detail


def test_an_older_fluent_bit_is_read_on_the_v1_endpoint(platform: FakePlatform) -> None:
    platform.kubernetes.v2_metrics = False
    assert retries(platform).status is Status.OK
    assert any(r.path.endswith("/api/v1/metrics/prometheus") for r in platform.servers["kubernetes"].requests)


def test_no_running_fluent_bit_pod_fails(platform: FakePlatform) -> None:
    platform.kubernetes.fluent_pods = []
    result = retries(platform)
    assert result.status is Status.FAIL and "no running Fluent-bit pod" in result.detail


def test_a_pod_whose_proxy_fails_is_reported(platform: FakePlatform) -> None:
    platform.kubernetes.scrapes = {}
    result = retries(platform)
    assert result.status is Status.FAIL and "HTTP 503" in result.detail


def test_without_the_kubernetes_api_the_check_is_not_run(platform: FakePlatform) -> None:
    results = run_checks(platform.outputs(), lambda ctx: fluentbit.run(ctx, kubernetes_usable=False))
    assert results[fluentbit.CHECK].status is Status.SKIP
