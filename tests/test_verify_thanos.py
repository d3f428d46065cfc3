"""tools.verify, Thanos and topology (central only): StoreAPIs per cluster, unique external labels,
`count by (cluster) (up)`, Store Gateway blocks, the Compactor, against a fake Query in Thanos
v0.42's shapes behind basic auth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.fakes import pki
from tests.fakes.platform import CENTRAL, EDGES, FakePlatform, run_checks
from tests.fakes.thanos import sidecar, store_gateway
from tools.verify import thanos
from tools.verify.report import Result, Status, passed

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def results(platform: FakePlatform) -> dict[str, Result]:
    return run_checks(platform.outputs(), thanos.run)


def failing(platform: FakePlatform) -> dict[str, Result]:
    return {name: r for name, r in results(platform).items() if r.status is not Status.OK}


def test_a_healthy_query_passes_every_thanos_check(platform: FakePlatform) -> None:
    found = results(platform)
    assert {name: r.status for name, r in found.items()} == {name: Status.OK for name in thanos.CHECKS}
    assert found["topology"].detail == f"3 clusters, each in Query and in up: {', '.join(sorted([CENTRAL, *EDGES]))}"
    assert {r.method for r in platform.servers["thanos"].requests} == {"GET"}


def test_an_edge_whose_sidecar_query_never_reached_fails_stores_and_topology(platform: FakePlatform) -> None:
    # An endpoint Query never reached has no component type: /api/v1/stores leaves it out.
    platform.thanos.stores["sidecar"].pop()
    platform.thanos.up_clusters = [CENTRAL, EDGES[0]]
    found = failing(platform)
    assert set(found) == {"thanos.stores", "thanos.clusters-up", "topology"}
    assert f"{EDGES[1]}: no healthy sidecar with cluster={EDGES[1]}" in found["thanos.stores"].detail
    assert "NodePort 30901" in found["thanos.stores"].hint
    assert found["thanos.clusters-up"].detail == f"count by (cluster) (up): missing: {EDGES[1]}"
    assert found["topology"].detail == f"{EDGES[1]} missing from Query and up"


def test_an_unhealthy_sidecar_says_its_last_error(platform: FakePlatform) -> None:
    platform.thanos.stores["sidecar"][1] = sidecar(EDGES[0], "10.0.0.2:30901", error="rpc error: connection refused")
    found = failing(platform)
    assert "10.0.0.2:30901: rpc error: connection refused" in found["thanos.stores"].detail
    assert found["topology"].detail == f"{EDGES[0]} missing from Query"


def test_two_sidecars_of_one_cluster_fail_stores_and_unique_labels(platform: FakePlatform) -> None:
    platform.thanos.stores["sidecar"].append(sidecar(EDGES[0], "10.0.0.9:30901"))
    found = failing(platform)
    assert f"{EDGES[0]}: 2 healthy sidecars" in found["thanos.stores"].detail
    assert "shared external label sets" in found["thanos.unique-labels"].detail
    assert "10.0.0.9:30901" in found["thanos.unique-labels"].detail


def test_a_sidecar_of_an_unexpected_cluster_fails(platform: FakePlatform) -> None:
    platform.thanos.stores["sidecar"].append(sidecar("stray", "10.0.0.7:30901"))
    platform.thanos.up_clusters = [CENTRAL, *EDGES, "stray", ""]
    found = failing(platform)
    assert "sidecars of clusters central does not expect: stray" in found["thanos.stores"].detail
    assert "unexpected: (series without a cluster label), stray" in found["thanos.clusters-up"].detail
    assert "topology" not in found  # every expected cluster is present


def test_the_store_gateway_sharing_the_sidecars_label_sets_is_not_a_duplicate(platform: FakePlatform) -> None:
    assert results(platform)["thanos.unique-labels"].status is Status.OK


def test_no_healthy_store_gateway_fails(platform: FakePlatform) -> None:
    platform.thanos.stores["store"][0]["lastError"] = "bucket unreachable"
    found = failing(platform)
    assert "no healthy Store Gateway (thanos-store.monitoring.svc:10901: bucket unreachable)" in (
        found["thanos.stores"].detail
    )
    assert found["thanos.store-gateway-blocks"].status is Status.FAIL


def test_a_cluster_without_blocks_in_the_store_gateway_fails(platform: FakePlatform) -> None:
    platform.thanos.stores["store"] = [store_gateway([CENTRAL, EDGES[0]])]
    found = failing(platform)
    assert set(found) == {"thanos.store-gateway-blocks"}
    assert found["thanos.store-gateway-blocks"].detail == f"no block of {EDGES[1]} loaded"


def test_a_store_gateway_with_data_younger_than_two_hours_fails(platform: FakePlatform) -> None:
    platform.thanos.stores["store"] = [store_gateway([CENTRAL, *EDGES], oldest=dt.timedelta(minutes=90))]
    detail = failing(platform)["thanos.store-gateway-blocks"].detail
    assert detail.startswith("oldest data ") and detail.endswith("newer than 2h ago")


def test_a_halted_compactor_fails(platform: FakePlatform) -> None:
    platform.thanos.compact_halted = [1.0]
    found = failing(platform)
    assert set(found) == {"thanos.compactor"}
    assert "halted" in found["thanos.compactor"].detail and "no-compact" in found["thanos.compactor"].hint


def test_a_compactor_that_is_not_scraped_fails(platform: FakePlatform) -> None:
    platform.thanos.compact_halted = []
    assert failing(platform)["thanos.compactor"].detail == "thanos_compact_halted is absent"


def test_clusters_not_listing_central_itself_fails_the_topology(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["clusters"] = EDGES
    platform.thanos.up_clusters = EDGES
    platform.thanos.stores["sidecar"] = [sidecar(e, f"{e}:30901") for e in EDGES]
    topology = run_checks(outputs, thanos.run)["topology"]
    assert topology.status is Status.FAIL and f"clusters does not list central itself ({CENTRAL})" in topology.detail


def test_a_wrong_password_is_one_fail_and_the_rest_not_run(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["thanosUiPassword"] = "wrong"
    found = run_checks(outputs, thanos.run)
    assert found["thanos.stores"].status is Status.FAIL
    assert "HTTP 401" in found["thanos.stores"].detail and "thanosUiPassword" in found["thanos.stores"].hint
    assert all(found[name].status is Status.SKIP for name in thanos.CHECKS[1:])
    assert len(platform.servers["thanos"].requests) == 1


def test_an_edge_has_no_thanos_checks_and_still_passes(platform: FakePlatform) -> None:
    found = run_checks(platform.outputs(role="edge"), thanos.run)
    assert all(r.status is Status.SKIP and r.not_applicable for r in found.values())
    assert passed(found.values())
    assert platform.servers["thanos"].requests == []


def test_a_stack_without_a_role_does_not_pass_for_skipping_thanos(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    del outputs["role"]
    found = run_checks(outputs, thanos.run)
    assert all(r.status is Status.SKIP and not r.not_applicable for r in found.values())
    assert not passed(found.values())
