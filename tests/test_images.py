"""Images run by digest where one is recorded (components/versions.py), by the tag it was recorded for."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from components import versions
from tests.conftest import CENTRAL_STACK, LONGHORN_STACKS, requires_charts, role_of, run_fixture
from tools.cluster import cluster
from tools.validators.common import lookup

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
RELOADER_FLAG = "--prometheus-config-reloader="
EDGE_WITH_LONGHORN = next(stack for stack in LONGHORN_STACKS if role_of(stack) == "edge")


def synthetic_digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def images(stack: str) -> Iterator[tuple[str, str]]:
    """Every image the stack's pods run: the containers of what Helm and Pulumi apply, and, for the pods
    the Prometheus Operator makes, the images its custom resources and its own flags name."""
    objects = cluster(run_fixture(stack))
    for pod in objects.pods():
        if pod.source.modelled:
            continue
        for field_name in ("initContainers", "containers"):
            for container in pod.spec.get(field_name) or []:
                yield f"{pod.endpoint}/{container['name']}", container["image"]
                for arg in container.get("args") or []:
                    if arg.startswith(RELOADER_FLAG):
                        yield f"{pod.endpoint} {RELOADER_FLAG}", arg.removeprefix(RELOADER_FLAG)
    for o in objects.of_kind("Prometheus", "Alertmanager"):
        for field_path in ("image", "thanos.image"):
            image = lookup(o.obj, f"spec.{field_path}")
            if image is not None:
                yield f"{o.kind} {o.name} spec.{field_path}", str(image)


def without_digest(image: str) -> str:
    return image.partition("@")[0]


def test_every_recorded_digest_is_a_sha256_of_an_image_the_platform_runs() -> None:
    for image, digest in versions.DIGESTS.items():
        assert image in versions.IMAGES, f"{image}: not an image of versions.IMAGES (a stale entry?)"
        assert DIGEST.match(digest), f"{image}: {digest!r} is not sha256:<64 hex digits>"


def test_images_are_named_with_their_registry_and_one_tag() -> None:
    assert len(set(versions.IMAGES)) == len(versions.IMAGES)
    for image in versions.IMAGES:
        assert "@" not in image, f"{image}: the digest belongs in versions.DIGESTS"
        assert versions.tag_of(image) and image.endswith(f":{versions.tag_of(image)}")


def test_pinned_joins_a_recorded_digest_and_leaves_other_images_by_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions, "DIGESTS", {"quay.io/thanos/thanos:v0.42.4": "sha256:" + "a" * 64})
    assert versions.pinned("quay.io/thanos/thanos:v0.42.4") == "quay.io/thanos/thanos:v0.42.4@sha256:" + "a" * 64
    assert versions.pinned_tag("quay.io/thanos/thanos:v0.42.4") == "v0.42.4@sha256:" + "a" * 64
    assert versions.pinned("quay.io/thanos/thanos:v0.41.0") == "quay.io/thanos/thanos:v0.41.0"
    assert versions.chart_image("quay.io/thanos/thanos:v0.42.4") == {"tag": "v0.42.4", "sha": "a" * 64}
    assert versions.chart_image("quay.io/thanos/thanos:v0.41.0", "digest", prefixed=True) == {"tag": "v0.41.0"}
    assert versions.tag_of("localhost:5000/thanos:v1") == "v1", "a registry's port is not the tag"


@requires_charts
@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE_WITH_LONGHORN])
def test_with_every_digest_recorded_every_container_runs_by_digest(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a digest for every image of versions.IMAGES, no container of the stack (charts' pods,
    our own, the operator's Prometheus and Alertmanager) is left by tag, and each runs the digest
    recorded for the tag it shows: an image added without its digest value fails here."""
    digests = {image: synthetic_digest(image) for image in versions.IMAGES}
    monkeypatch.setattr(versions, "DIGESTS", digests)
    by_digest = {digest: image for image, digest in digests.items()}
    seen = set()
    for where, image in images(stack):
        name, _, digest = image.partition("@")
        assert digest, f"{where} runs {image} by tag"
        assert digest in by_digest, f"{where}: {digest} is recorded for no image"
        recorded_for = by_digest[digest]
        seen.add(recorded_for)
        # The Traefik chart drops the tag when it is given a digest: the repository must still match.
        expected = recorded_for if ":" in name.rpartition("/")[2] else recorded_for.rpartition(":")[0]
        assert name == expected, f"{where} shows {name} with the digest recorded for {recorded_for}"
    assert seen, "no container found"


@requires_charts
@pytest.mark.parametrize("stack", [CENTRAL_STACK, EDGE_WITH_LONGHORN])
def test_the_recorded_digests_are_what_the_stack_runs(stack: str) -> None:
    for where, image in images(stack):
        name = without_digest(image)
        recorded = {i: d for i, d in versions.DIGESTS.items() if i == name or i.rpartition(":")[0] == name}
        if recorded:
            assert image.partition("@")[2] in recorded.values(), f"{where} runs {image}, not its recorded digest"
