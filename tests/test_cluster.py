"""tools.cluster: a chart with CRDs of its own renders with them known, and a later run renders it once."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tools import cluster, helm
from tools.podsecurity import CACHE_ENV

CHART = {
    "widgets/Chart.yaml": "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    "widgets/crds/widgets.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: widgets.example.com\n"
        "spec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n"
        "  versions:\n  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}\n"
    ),
    "widgets/templates/widget.yaml": (
        '{{- if .Capabilities.APIVersions.Has "example.com/v1/Widget" }}\n'
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n"
    ),
}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if helm.helm_binary() is None:
        pytest.skip(helm.INSTALL_HINT)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "widgets-0.1.0.tgz"
    write_package(path, CHART)
    return path


def write_package(path: Path, files: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    path.write_bytes(buffer.getvalue())


def rendered(package: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[tuple[str, ...]]]:
    """The kinds the release renders, and the API versions of each `helm template` it took."""
    calls: list[tuple[str, ...]] = []
    original = helm.template_text

    def counting(*args: Any) -> str:
        calls.append(tuple(args[5]))
        return original(*args)

    monkeypatch.setattr(helm, "template_text", counting)
    cluster._template.cache_clear()
    objects = cluster._template("demo", str(package), "apps", "{}", "v1.36.0", ())
    return [o.obj["kind"] for o in objects], calls


def test_a_chart_is_rendered_with_its_own_crds_known_and_once_when_they_are_remembered(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = ("example.com/v1", "example.com/v1/Widget")
    assert rendered(package, monkeypatch) == (["CustomResourceDefinition", "Widget"], [(), own])
    assert rendered(package, monkeypatch) == (["CustomResourceDefinition", "Widget"], [own])


def test_another_package_under_the_same_name_is_rendered_twice_again(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered(package, monkeypatch)
    write_package(package, {**CHART, "widgets/templates/extra.yaml": "# nothing\n"})
    assert len(rendered(package, monkeypatch)[1]) == 2
