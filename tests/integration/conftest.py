"""The integration tier: the real programs that consume what the program generates.

`bash tools/integration.sh` runs it (`THANOS_MC_INTEGRATION=1`, one process, as root). Without that
variable, as in `bash tools/test.sh`, only `test_pins.py` is collected and skipped with one reason,
so a machine without Go, Java or root runs the unit suite as before.

Every test says what it proved for which real component (`proves`), and a program that cannot be
had is reported (`need`) instead of skipped quietly. At the end the suite prints one line per
component, `REAL <component> <version>: <what was proven>` or `BLOCKED <component>: <module@version>
<why>`; a test skipped for any other reason fails the run.

Servers listen only on loopback or on addresses of network namespaces this suite creates
(`tests/integration/netns.py`): the fixture stacks' 10.20.0.0/24, with no route out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.binaries import Blocked, catalogue
from tests.integration.netns import Host, Lan
from tests.integration.platform import (
    ObjectStore,
    Pki,
    Platform,
    host_addresses,
    make_pki,
    object_store_endpoint,
    running_object_store,
)

ENABLED = os.environ.get("THANOS_MC_INTEGRATION") == "1"
DISABLED_REASON = (
    "the integration tier (real Thanos, Prometheus, Alertmanager, OpenSearch, S3 server, Pulumi engine) "
    "runs with `bash tools/integration.sh`"
)

ANNOUNCER = "test_pins.py"
"""Collected even when the tier is off: skipped with DISABLED_REASON, the tier's one line in the unit suite."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not ENABLED and collection_path.name.startswith("test_") and collection_path.name != ANNOUNCER:
        return True
    return None


# --- the report ------------------------------------------------------------------------------


@dataclass
class Report:
    """What each real component proved, what could not be had, and what was skipped without a reason."""

    real: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    blocked: dict[str, Blocked] = field(default_factory=dict)
    silent_skips: list[str] = field(default_factory=list)

    def prove(self, component: str, version: str, what: str) -> None:
        _, proofs = self.real.setdefault(component, (version, []))
        if what not in proofs:
            proofs.append(what)

    def block(self, blocked: Blocked) -> None:
        self.blocked.setdefault(blocked.name, blocked)

    def lines(self) -> list[str]:
        lines = [f"REAL {name} {version}: {'; '.join(proofs)}" for name, (version, proofs) in sorted(self.real.items())]
        lines += [blocked.line() for _, blocked in sorted(self.blocked.items())]
        lines += [f"SILENTLY SKIPPED {test}" for test in self.silent_skips]
        return lines


REPORT = Report()
BLOCKED_PREFIX = "BLOCKED "


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if ENABLED and report.skipped and report.nodeid.startswith("tests/integration/"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if not reason.removeprefix("Skipped: ").startswith(BLOCKED_PREFIX):
            REPORT.silent_skips.append(f"{report.nodeid}: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


_PASSED = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ENABLED:
        return
    terminalreporter.section("real components")
    for line in REPORT.lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ENABLED and REPORT.silent_skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


Proves = Callable[[str, str, str], None]


@pytest.fixture
def proves(request: pytest.FixtureRequest) -> Iterator[Proves]:
    """`proves(component, version, what)`: recorded once the test has passed."""
    pending: list[tuple[str, str, str]] = []
    yield lambda component, version, what: pending.append((component, version, what))
    if request.node.stash.get(_PASSED, False):
        for entry in pending:
            REPORT.prove(*entry)


def need(name: str) -> Path:
    """The path of a pinned program (`tests/integration/programs.py`), built or fetched if missing;
    a program that cannot be had is reported BLOCKED and the test skipped with that line."""
    outcome = catalogue()[name].build()
    if isinstance(outcome, Blocked):
        REPORT.block(outcome)
        pytest.skip(outcome.line())
    return outcome


def blocked(name: str, coordinates: str, why: str) -> None:
    """Report a component that cannot run here (with the evidence) and skip the test."""
    entry = Blocked(name, coordinates, why)
    REPORT.block(entry)
    pytest.skip(entry.line())


# --- the platform under test -------------------------------------------------------------------


@pytest.fixture(scope="session")
def lan() -> Iterator[Lan]:
    """The fixture topology's network: one namespace per host, on one bridge, no route out."""
    unavailable = Lan.unavailable()
    if unavailable:
        blocked("network namespaces", "iproute2", unavailable)
    with Lan() as network:
        yield network


@pytest.fixture(scope="session")
def hosts(lan: Lan) -> dict[str, Host]:
    """A host (namespace) per fixture stack, at the stack's `host` address."""
    return {stack: lan.host(stack, address) for stack, address in host_addresses().items()}


@pytest.fixture(scope="session")
def object_store_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The object store's private CA and server certificate: what the operator gives as `s3.caCertificate`."""
    address, _ = object_store_endpoint()
    return make_pki(tmp_path_factory.mktemp("s3-pki"), "throwaway S3 CA (integration tests)", address)


@pytest.fixture(scope="session")
def platform(object_store_pki: Pki) -> Platform:
    return Platform(object_store_pki.ca.read_text())


@pytest.fixture(scope="session")
def object_store(
    lan: Lan, object_store_pki: Pki, platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObjectStore]:
    """moto in a namespace at the fixture stacks' S3 endpoint, holding what central's MinIO resources create."""
    address, _ = object_store_endpoint()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with running_object_store(lan.host("s3", address), object_store_pki, log, platform.central) as store:
        yield store
