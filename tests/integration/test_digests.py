"""`python -m tools.digests` against a real registry: crane v0.22.1's `crane registry serve` on loopback.

No registry of the images' own is reachable here, so the digests recorded in components/versions.py
are not checked by this file (the README says where that is done). What it proves is the tool: that
it asks a registry for a tag through the mirror path it says (`<mirror>/<registry>/<repository>`),
that what it reads is the digest of the tag's multi-arch index (computed here independently, as the
sha256 of the raw index the registry serves), and that a recorded digest the registry does not serve
for the tag, or an image it does not hold, fail the run with the image named.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import versions
from tests.integration import programs
from tests.integration.conftest import Proves, need
from tools import digests

PUSHED = (f"{versions.THANOS_IMAGE}:{versions.THANOS}", versions.TRAEFIK_IMAGE)
NOT_PUSHED = versions.OPENSEARCH_IMAGE
SERVING = re.compile(r"serving on port (\d+)")


@pytest.fixture(scope="module")
def crane() -> Path:
    return need("crane")


@pytest.fixture(scope="module")
def registry(crane: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(crane), "registry", "serve", "--address", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := SERVING.search(log.read_text())):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield f"127.0.0.1:{found.group(1)}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def layer(directory: Path, content: str) -> Path:
    path = directory / f"{hashlib.sha256(content.encode()).hexdigest()[:12]}.tar"
    with tarfile.open(path, "w") as archive:
        data = content.encode()
        info = tarfile.TarInfo("etc/image-of-the-digest-test")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def crane_run(crane: Path, *args: str) -> str:
    result = subprocess.run([str(crane), *args, "--insecure"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def index_digests(crane: Path, registry: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each of PUSHED as a two-image index under the registry's mirror path, and the sha256 of that index."""
    directory = tmp_path_factory.mktemp("layers")
    served = {}
    for image in PUSHED:
        reference = digests.registry_reference(image, registry)
        members = []
        for arch in ("amd64", "arm64"):
            member = f"{reference}-{arch}"
            crane_run(crane, "append", "-f", str(layer(directory, f"{image} {arch}")), "-t", member)
            members += ["-m", member]
        crane_run(crane, "index", "append", *members, "-t", reference)
        raw = subprocess.run(
            [str(crane), "manifest", reference, "--insecure"], capture_output=True, timeout=60, check=True
        ).stdout
        assert b"manifests" in raw, "an index, as a multi-arch image's tag names"
        served[image] = "sha256:" + hashlib.sha256(raw).hexdigest()
    return served


def verify(crane: Path, registry: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = digests.main(["verify", "--crane", str(crane), "--mirror", registry, "--insecure"])
    return status, capsys.readouterr().out.splitlines()


def test_recorded_digests_that_the_registry_serves_pass(
    crane: Path,
    registry: str,
    index_digests: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    proves: Proves,
) -> None:
    monkeypatch.setattr(versions, "DIGESTS", dict(index_digests))
    status, lines = verify(crane, registry, capsys)
    assert status == 0, lines
    assert sorted(lines) == sorted(f"ok {image} {digest}" for image, digest in index_digests.items())
    proves(
        "crane", programs.CRANE,
        "tools.digests verify read each tag's index digest from `crane registry serve` through the mirror path, "
        "equal to the sha256 of the raw index",
    )  # fmt: skip


def test_a_digest_the_registry_does_not_serve_for_the_tag_fails_naming_both(
    crane: Path,
    registry: str,
    index_digests: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    thanos, traefik = PUSHED
    # Traefik's digest recorded for Thanos: a digest the registry serves, but for another tag.
    monkeypatch.setattr(versions, "DIGESTS", {thanos: index_digests[traefik], traefik: index_digests[traefik]})
    status, lines = verify(crane, registry, capsys)
    assert status == 1, lines
    assert f"MISMATCH {thanos}: recorded {index_digests[traefik]}, the registry serves {index_digests[thanos]}" in lines
    assert f"ok {traefik} {index_digests[traefik]}" in lines


def test_an_image_the_registry_does_not_hold_is_unreachable_not_ok(
    crane: Path,
    registry: str,
    index_digests: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(versions, "DIGESTS", {NOT_PUSHED: "sha256:" + "0" * 64})
    status, lines = verify(crane, registry, capsys)
    assert status == 2, lines
    (line,) = lines
    assert line.startswith(f"UNREACHABLE {NOT_PUSHED}: "), line


def test_resolve_prints_what_the_registry_serves_as_lines_for_the_table(
    crane: Path,
    registry: str,
    index_digests: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = digests.main(["resolve", "--crane", str(crane), "--mirror", registry, "--insecure"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 2, "most images are not in this registry"
    for image, digest in index_digests.items():
        assert f'    "{image}": "{digest}",' in lines
    assert any(line.startswith(f"    # {NOT_PUSHED}: ") for line in lines)
