"""tools.verify, logging: today's index, its health and ISM policy, the snapshot repository and the
Snapshot Management policy, against a fake OpenSearch 3.6."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.fakes import pki
from tests.fakes.opensearch import index_row, ism_entry, sm_policy, today_index
from tests.fakes.platform import FAST, FakePlatform, run_checks
from tools.verify import logs
from tools.verify.context import Context
from tools.verify.outputs import parse
from tools.verify.report import Result, Status

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")
CHECKS = [name for name, _ in logs.CHECKS]


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def results(platform: FakePlatform) -> dict[str, Result]:
    return run_checks(platform.outputs(), logs.run)


def failing(platform: FakePlatform) -> dict[str, Result]:
    return {name: r for name, r in results(platform).items() if r.status is not Status.OK}


def test_a_healthy_opensearch_passes_every_logging_check(platform: FakePlatform) -> None:
    found = results(platform)
    assert {name: r.status for name, r in found.items()} == {name: Status.OK for name in CHECKS}
    assert found["logging.index"].detail == f"{today_index()} exists with 4242 documents"
    # Only GETs, and the repository's _verify POST.
    assert {(r.method, r.path) for r in platform.servers["opensearch"].requests if r.method != "GET"} == {
        ("POST", "/_snapshot/logs-s3/_verify")
    }


def test_a_missing_index_fails_and_its_health_and_policy_are_not_run(platform: FakePlatform) -> None:
    platform.opensearch.indices = {}
    found = failing(platform)
    assert set(found) == {"logging.index", "logging.index-health", "logging.ism"}
    assert found["logging.index"].detail == f"{today_index()} does not exist"
    assert "fluent-bit" in found["logging.index"].hint
    assert found["logging.index-health"].status is Status.SKIP and found["logging.ism"].status is Status.SKIP


def test_yesterdays_index_counts_just_after_midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    # The index name follows UTC: at 00:05 today's may not exist yet, so yesterday's is taken instead.
    asked: list[str] = []

    def cat_index(_ctx: Context, index: str) -> dict[str, str] | None:
        asked.append(index)
        return index_row(index) if index == "logs-2026.03.01" else None

    monkeypatch.setattr(logs, "_cat_index", cat_index)
    outputs = {"opensearchUrl": "https://unused.invalid/", "opensearchAdminPassword": "x"}
    with Context(parse(outputs), FAST, now=dt.datetime(2026, 3, 2, 0, 5, tzinfo=dt.UTC)) as ctx:
        index, row, note = logs.todays_index(ctx)
    assert asked == ["logs-2026.03.02", "logs-2026.03.01"]
    assert index == "logs-2026.03.01" and row is not None and "after midnight" in note


def test_a_yellow_index_on_a_single_node_fails(platform: FakePlatform) -> None:
    platform.opensearch.indices[today_index()] = index_row(today_index(), health="yellow", replicas=1)
    found = failing(platform)
    assert set(found) == {"logging.index-health"}
    assert "1 replicas cannot be placed on 1 data node(s)" in found["logging.index-health"].detail
    assert "number_of_replicas 0" in found["logging.index-health"].hint


def test_a_yellow_index_with_replicas_on_several_nodes_passes(platform: FakePlatform) -> None:
    platform.opensearch.indices[today_index()] = index_row(today_index(), health="yellow", replicas=1)
    platform.opensearch.data_nodes = 3
    assert results(platform)["logging.index-health"].status is Status.OK


def test_a_red_index_fails(platform: FakePlatform) -> None:
    platform.opensearch.indices[today_index()] = index_row(today_index(), health="red")
    found = failing(platform)
    assert "red: a primary shard is unassigned" in found["logging.index-health"].detail


def test_an_index_without_the_ism_policy_fails(platform: FakePlatform) -> None:
    platform.opensearch.ism = {}
    found = failing(platform)
    assert set(found) == {"logging.ism"}
    assert found["logging.ism"].detail == f"{today_index()} has ISM policy None, not 'logs-retention'"
    assert "_plugins/_ism/add" in found["logging.ism"].hint


def test_a_disabled_ism_policy_fails(platform: FakePlatform) -> None:
    platform.opensearch.ism[today_index()] = ism_entry(today_index(), enabled=False)
    assert "disabled" in failing(platform)["logging.ism"].detail


def test_an_unregistered_repository_fails(platform: FakePlatform) -> None:
    platform.opensearch.repository = "missing"
    found = failing(platform)
    assert set(found) == {"logging.snapshot-repository"}
    assert "logs-s3 is not registered: repository_missing_exception" in found["logging.snapshot-repository"].detail


def test_a_repository_that_does_not_verify_fails_with_the_reason(platform: FakePlatform) -> None:
    platform.opensearch.repository = "broken"
    found = failing(platform)
    assert "repository_verification_exception: [logs-s3] path [hub] is not accessible" in (
        found["logging.snapshot-repository"].detail
    )
    assert "keystore" in found["logging.snapshot-repository"].hint


def test_a_failed_snapshot_creation_fails(platform: FakePlatform) -> None:
    platform.opensearch.sm = sm_policy(status="FAILED")
    detail = failing(platform)["logging.snapshot-policy"].detail
    assert "is FAILED: Caught exception while creating snapshot.; repository_exception: [logs-s3]" in detail


def test_a_policy_that_never_created_a_snapshot_fails_with_the_next_run(platform: FakePlatform) -> None:
    platform.opensearch.sm = sm_policy(status=None)
    found = failing(platform)["logging.snapshot-policy"]
    assert "has not created a snapshot yet (next at 2025-11-27 01:00 UTC)" in found.detail
    assert "younger than a day" in found.hint


def test_a_disabled_or_missing_snapshot_policy_fails(platform: FakePlatform) -> None:
    platform.opensearch.sm = sm_policy(enabled=False)
    assert failing(platform)["logging.snapshot-policy"].detail == "logs-daily is disabled"
    platform.opensearch.sm = None
    assert "does not exist" in failing(platform)["logging.snapshot-policy"].detail


def test_a_rotated_admin_password_is_one_fail(platform: FakePlatform) -> None:
    outputs = platform.outputs()
    outputs["opensearchAdminPassword"] = "stale"
    found = run_checks(outputs, logs.run)
    assert [r.status for r in found.values()] == [Status.FAIL] + [Status.SKIP] * 4
    assert "Rotate the OpenSearch admin password" in found["logging.index"].hint
