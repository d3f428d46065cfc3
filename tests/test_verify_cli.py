"""tools.verify end to end: the command line with `--outputs` and `--json` against the fake platform,
exit codes, unreachable endpoints within the timeout (closed port, a blackholed port, a silent
service) without a traceback, the outputs contract, and the total time limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import pki
from tests.fakes.platform import CENTRAL, EDGES, INGRESS_ADDRESS, FakePlatform, ui_host
from tests.fakes.server import Blackhole, Silent, closed_port
from tools.verify.context import Options
from tools.verify.outputs import parse
from tools.verify.report import Result, Status, exit_code, fail, not_applicable, not_run, ok
from tools.verify.runner import verify

pytestmark = pytest.mark.skipif(pki.MISSING is not None, reason=pki.MISSING or "")
ROOT = Path(__file__).resolve().parent.parent
FAST_ARGS = ["--timeout", "1", "--fluent-bit-window", "0.1"]


@pytest.fixture(scope="module")
def started() -> Iterator[FakePlatform]:
    with FakePlatform.started() as platform:
        yield platform


@pytest.fixture
def platform(started: FakePlatform) -> FakePlatform:
    started.reset()
    return started


def cli(
    tmp_path: Path, outputs: dict[str, Any] | None, *args: str, stack: str = CENTRAL
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tools.verify", "--stack", stack, *FAST_ARGS, *args]
    if outputs is not None:
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        command += ["--outputs", str(path)]
    env = {**os.environ, "PATH": str(tmp_path)}  # no pulumi on the PATH
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_healthy_central_exits_0_with_a_json_line_per_check(platform: FakePlatform, tmp_path: Path) -> None:
    done = cli(tmp_path, platform.outputs(), "--json")
    assert done.returncode == 0, done.stdout
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert all(set(line) == {"check", "status", "detail", "hint"} for line in report)
    assert {line["status"] for line in report} == {"OK"}
    checks = [line["check"] for line in report]
    assert checks[0] == "outputs" and "topology" in checks and "objectstore.longhorn.lifecycle" in checks
    assert len(checks) == len(set(checks)) == 38


def test_a_healthy_edge_exits_0_with_the_central_checks_skipped(platform: FakePlatform, tmp_path: Path) -> None:
    done = cli(tmp_path, platform.outputs(role="edge"), "--json", stack=EDGES[0])
    assert done.returncode == 0, done.stdout
    skipped = {line["check"] for line in json.loads(done.stdout) if line["status"] == "SKIP"}
    assert skipped == {
        "thanos.stores",
        "thanos.unique-labels",
        "thanos.clusters-up",
        "thanos.store-gateway-blocks",
        "thanos.compactor",
        "topology",
        "tls.thanos",
        *(
            f"objectstore.{r}.{a}"
            for r in ("thanos", "opensearch", "longhorn")
            for a in ("exists", "versioning", "lifecycle")
        ),
    }


def test_one_failure_exits_1_and_prints_its_cause_and_fix(platform: FakePlatform, tmp_path: Path) -> None:
    platform.thanos.compact_halted = [1.0]
    done = cli(tmp_path, platform.outputs())
    assert done.returncode == 1 and done.stderr == ""
    lines = done.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert len(failed) == 1 and "thanos.compactor" in lines[failed[0]] and "halted" in lines[failed[0]]
    assert lines[failed[0] + 1].strip().startswith("-> kubectl -n monitoring logs statefulset/thanos-compactor")
    assert lines[-1] == "37 OK, 1 FAIL, 0 SKIP: platform NOT verified"


def test_unreachable_endpoints_are_one_fail_each_within_the_timeout(platform: FakePlatform, tmp_path: Path) -> None:
    refused, blackhole, silent = closed_port(), Blackhole(), Silent()
    outputs = platform.outputs() | {
        "opensearchUrl": platform.url("opensearch", refused),
        "thanosUrl": platform.url("thanos", blackhole.port),
        "grafanaUrl": platform.url("grafana", silent.port),
    }
    at = {service: f"{ui_host(service)} via {INGRESS_ADDRESS}" for service in ("opensearch", "thanos", "grafana")}
    try:
        started = time.monotonic()
        done = cli(tmp_path, outputs, "--json")
        elapsed = time.monotonic() - started
    finally:
        blackhole.close()
        silent.close()
    assert done.returncode == 1 and done.stderr == "" and "Traceback" not in done.stdout
    # Each endpoint costs one timeout (1 s) at most: later checks on it are not run, not retried.
    assert elapsed < 15
    report = {line["check"]: line for line in json.loads(done.stdout)}
    fails = {name: line["detail"] for name, line in report.items() if line["status"] == "FAIL"}
    assert fails == {
        "logging.index": f"OpenSearch ({at['opensearch']}:{refused}) unreachable: connection refused",
        "thanos.stores": f"Thanos Query Frontend ({at['thanos']}:{blackhole.port}) unreachable: "
        "no TCP connection within 1s",
        "grafana.login": fails["grafana.login"],
    }
    assert fails["grafana.login"].startswith(f"Grafana ({at['grafana']}:{silent.port}) unreachable:")
    assert "within 1s" in fails["grafana.login"]
    for service, port in (("opensearch", refused), ("thanos", blackhole.port), ("grafana", silent.port)):
        check = report[f"tls.{service}"]
        assert check["status"] == "SKIP" and f"{at[service]}:{port} failed earlier" in check["detail"]
    assert (
        report["logging.snapshot-policy"]["detail"]
        == f"not run: {at['opensearch']}:{refused} failed earlier (see logging.index)"
    )
    assert report["kubernetes.api"]["status"] == "OK"


def test_an_unreadable_outputs_file_is_one_fail_line(tmp_path: Path) -> None:
    done = cli(tmp_path, None, "--outputs", str(tmp_path / "missing.json"))
    assert done.returncode == 1 and done.stderr == ""
    assert done.stdout.splitlines()[0].startswith("FAIL  outputs  cannot read")


def test_without_the_pulumi_cli_the_outputs_check_says_so(tmp_path: Path) -> None:
    done = cli(tmp_path, None, "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout) == [
        {
            "check": "outputs",
            "status": "FAIL",
            "detail": "the Pulumi CLI is not on the PATH",
            "hint": "install the Pulumi CLI and select the backend, or pass --outputs FILE",
        }
    ]


def test_missing_outputs_fail_once_and_their_checks_are_not_run(platform: FakePlatform, tmp_path: Path) -> None:
    outputs = platform.outputs()
    del outputs["opensearchUrl"]
    outputs["clusters"] = "hub"
    done = cli(tmp_path, outputs, "--json")
    report = {line["check"]: line for line in json.loads(done.stdout)}
    assert done.returncode == 1
    assert report["outputs"]["detail"] == "opensearchUrl is missing; clusters is not a non-empty list of cluster names"
    assert report["logging.index"]["status"] == "SKIP" and "opensearchUrl" in report["logging.index"]["detail"]
    assert report["thanos.stores"]["status"] == "SKIP" and "clusters" in report["thanos.stores"]["detail"]
    assert report["kubernetes.api"]["status"] == "OK"


def test_the_outputs_contract_requires_the_central_keys_only_on_central(platform: FakePlatform) -> None:
    central = platform.outputs()
    edge = platform.outputs(role="edge")
    assert parse(central).problems == [] and parse(edge).problems == []
    for key in ("thanosUrl", "thanosUiPassword", "clusters", "verifierCredentials"):
        assert f"{key} is missing" in parse({k: v for k, v in central.items() if k != key}).problems
    assert parse(edge | {"role": "hub"}).problems[0] == "role is 'hub', not central or edge"


def test_the_total_time_limit_stops_the_run_with_checks_not_run(platform: FakePlatform) -> None:
    blackhole = Blackhole()
    outputs = platform.outputs() | {"thanosUrl": platform.url("thanos", blackhole.port)}
    try:
        started = time.monotonic()
        results = verify(outputs, CENTRAL, Options(timeout=3, total_timeout=1.5, fluent_bit_window=0.05))
        elapsed = time.monotonic() - started
    finally:
        blackhole.close()
    assert elapsed < 6
    over = [r for r in results if "total time limit of 1.5s" in r.detail]
    assert over and all(r.status is Status.SKIP for r in over)
    assert exit_code(results) == 1


def test_only_skips_of_checks_that_do_not_apply_pass() -> None:
    assert exit_code([ok("a", ""), not_applicable("b", "edge")]) == 0
    assert exit_code([ok("a", ""), not_run("b", "endpoint down")]) == 1
    assert exit_code([ok("a", ""), fail("b", "broken", "fix")]) == 1
    assert exit_code([Result("c", Status.SKIP, "x", not_applicable=False)]) == 1
