"""tools.digests: which reference a registry is asked for, and how its answers are judged.

Asking a real registry is the integration tier's (tests/integration/test_digests.py, crane's own
registry on loopback); these are the parts that need none.
"""

from __future__ import annotations

import pytest

from components import versions
from tools import digests
from tools.digests import Answer

RECORDED = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def test_an_image_is_asked_for_by_its_registry_docker_hub_where_it_names_none() -> None:
    assert (
        digests.registry_reference("opensearchproject/opensearch:3.6.0")
        == "docker.io/opensearchproject/opensearch:3.6.0"
    )
    assert digests.registry_reference("quay.io/thanos/thanos:v0.42.4") == "quay.io/thanos/thanos:v0.42.4"
    assert digests.registry_reference("localhost:5000/x:v1") == "localhost:5000/x:v1"


def test_a_mirror_is_asked_for_the_registry_and_repository_under_its_path() -> None:
    assert (
        digests.registry_reference("docker.io/traefik:v3.7.11", "mirror.lab:5000/proxy/")
        == "mirror.lab:5000/proxy/docker.io/traefik:v3.7.11"
    )
    assert digests.registry_reference("busybox:1.38.0", "127.0.0.1:5055") == "127.0.0.1:5055/docker.io/busybox:1.38.0"


def test_list_names_every_image_with_its_digest_or_by_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    thanos = f"{versions.THANOS_IMAGE}:{versions.THANOS}"
    monkeypatch.setattr(versions, "DIGESTS", {thanos: RECORDED})
    lines = digests.list_lines()
    assert len(lines) == len(versions.IMAGES)
    assert f"{thanos}  {RECORDED}" in lines
    assert f"{versions.TRAEFIK_IMAGE}  by tag" in lines


def test_verify_passes_only_what_the_registry_serves_and_a_mismatch_outranks_an_unreachable_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = versions.IMAGES[:2]
    monkeypatch.setattr(versions, "DIGESTS", {a: RECORDED, b: RECORDED})
    assert digests.verify([Answer(a, RECORDED), Answer(b, RECORDED)]) == (
        0,
        [f"ok {a} {RECORDED}", f"ok {b} {RECORDED}"],
    )
    status, lines = digests.verify([Answer(a, None, "connection refused"), Answer(b, RECORDED)])
    assert (status, lines[0]) == (2, f"UNREACHABLE {a}: connection refused")
    status, lines = digests.verify([Answer(a, None, "connection refused"), Answer(b, OTHER)])
    assert status == 1
    assert lines[1] == f"MISMATCH {b}: recorded {RECORDED}, the registry serves {OTHER}"


def test_without_crane_verify_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert digests.main(["verify"]) == 2
    assert digests.CRANE_HINT in capsys.readouterr().err
