"""The programs the integration tier runs are the versions the platform deploys.

Also the tier's announcer: without `THANOS_MC_INTEGRATION=1` (`bash tools/integration.sh` sets it)
this is the only module of `tests/integration` collected, skipped with one reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components import versions
from tests.integration import programs
from tests.integration.conftest import DISABLED_REASON, ENABLED, blocked
from tools import reference

pytestmark = pytest.mark.skipif(not ENABLED, reason=DISABLED_REASON)
ROOT = Path(__file__).resolve().parents[2]


def tag(image: str) -> str:
    return image.rpartition(":")[2]


def chart_image_tag(chart: versions.Chart, repository: str) -> str:
    """The tag a pinned chart's default values give an image."""
    missing = reference.reference_missing()
    if missing:
        blocked("reference material", f"{chart.name}-{chart.version}", missing)
    values = yaml.safe_load(
        (reference.reference_dir() / "charts" / f"{chart.name}-{chart.version}.values.yaml").read_text()
    )
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("repository") == repository and isinstance(node.get("tag"), str):
                found.append(node["tag"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(values)
    assert found, f"{chart.name} {chart.version} has no image {repository}"
    return found[0]


def test_thanos_is_the_deployed_image() -> None:
    assert programs.THANOS == versions.THANOS


def test_prometheus_and_alertmanager_are_what_kube_prometheus_stack_runs() -> None:
    chart = versions.KUBE_PROMETHEUS_STACK
    prometheus = chart_image_tag(chart, "prometheus/prometheus").removesuffix("-distroless")
    assert prometheus == programs.PROMETHEUS
    major, minor, patch = prometheus.removeprefix("v").split(".")
    assert f"v0.{int(major) * 100 + int(minor)}.{patch}" == programs.PROMETHEUS_MODULE, (
        "Prometheus 3.x is module v0.3xx"
    )
    assert chart_image_tag(chart, "prometheus/alertmanager") == programs.ALERTMANAGER


def test_the_exporter_and_opensearch_are_the_deployed_images() -> None:
    assert tag(versions.ELASTICSEARCH_EXPORTER_IMAGE) == programs.ELASTICSEARCH_EXPORTER
    assert tag(versions.OPENSEARCH_IMAGE) == programs.OPENSEARCH_VERSION


def test_kubernetes_pieces_are_the_nodes_release() -> None:
    assert programs.KUBERNETES == versions.KUBERNETES
    assert versions.KUBERNETES.replace("v1.", "v0.", 1) == programs.POD_SECURITY_ADMISSION


def test_the_engine_is_the_sdks_release_or_the_nearest_served_after_it() -> None:
    """The Python SDK's release of the CLI is not served by the proxy; the nearest newer one stands in."""
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert sdk is not None
    wanted = tuple(int(part) for part in sdk.group(1).split("."))
    built = tuple(int(part) for part in programs.PULUMI.removeprefix("v").split("."))
    assert wanted <= built < (wanted[0], wanted[1] + 10, 0), f"CLI {programs.PULUMI} for SDK {sdk.group(1)}"
