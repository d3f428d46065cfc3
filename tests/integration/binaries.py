"""The real programs the integration suite runs, built or fetched from a registry, pinned, cached.

Each program is built from the upstream module at the version the platform deploys (Go, through a
builder module of ours in `tests/integration/builders/<builder>/`: a `go.mod` requiring the
upstream module and copying its non-local `replace` lines, and its `go.sum`), or downloaded by its
coordinates (Maven Central, PyPI). Nothing built or downloaded lives in the repository: outputs go
to `~/.cache/thanos-multi-cluster-integration/` (`$THANOS_MC_INTEGRATION_CACHE`), one directory per
program, version and builder digest, so a warm machine does not rebuild and a changed builder does.

    python -m tests.integration.binaries build [NAME ...]   # build what is missing; BLOCKED lines for the rest
    python -m tests.integration.binaries list                # what is pinned, and what is cached

A program that cannot be had is `Blocked`, with the module, the version and the tool's own error:
the suite reports it as `BLOCKED <component>: <module@version> <why>` instead of skipping quietly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BUILDERS = Path(__file__).resolve().parent / "builders"
CACHE_ENV = "THANOS_MC_INTEGRATION_CACHE"
BUILD_TIMEOUT_SECONDS = 3600
ERROR_TAIL_LINES = 12
DEADLINE_ENV = "THANOS_MC_BUILD_DEADLINE"
"""Seconds since the epoch after which no build runs on (`tools/integration.sh` sets it): a cold
machine builds what fits into CI's time and reports the rest, which the next run builds."""


def build_seconds_left() -> float:
    """How long a build or download may still take: `BUILD_TIMEOUT_SECONDS`, or less near the deadline."""
    deadline = os.environ.get(DEADLINE_ENV)
    if not deadline:
        return BUILD_TIMEOUT_SECONDS
    return min(BUILD_TIMEOUT_SECONDS, float(deadline) - time.time())


def out_of_time(what: str) -> str:
    return (
        f"{what} did not fit into this run's build time ({DEADLINE_ENV}, set by tools/integration.sh from "
        "THANOS_MC_BUILD_BUDGET): a cold cache; the next run goes on from the Go build cache"
    )


def cache_root() -> Path:
    """Not `$XDG_CACHE_HOME`: the unit tests point that at a scratch directory per run."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "thanos-multi-cluster-integration"


@dataclass(frozen=True)
class Blocked:
    """Why a program could not be had: the module or artifact, its version, and the evidence."""

    name: str
    coordinates: str
    """`module@version` (Go) or `group:artifact:version` (Maven)."""
    why: str

    def line(self) -> str:
        return f"BLOCKED {self.name}: {self.coordinates} {self.why}"


@dataclass(frozen=True)
class GoBinary:
    """One command of an upstream Go module, built by one of our builder modules."""

    name: str
    """The file name of the command (`thanos`, `promtool`)."""
    module: str
    """The upstream module the command belongs to."""
    version: str
    """The module version: the one the platform deploys."""
    package: str
    """The command's import path."""
    builder: str
    """Our builder module: `tests/integration/builders/<builder>/`."""
    ldflags: tuple[str, ...] = ()
    """Upstream's version stamping (`-X .../version.Version=...`), as its release build sets it."""
    tags: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra build environment (e.g. `CGO_ENABLED`)."""
    generator: str = ""
    """Upstream's `go generate` step, where its release build compiles files it generates (an embedded
    schema): the generator, as `<package import path>/<file>.go`. It is built with the builder module,
    run in a scratch copy of that package's directory with `generator_env`, and each file it writes is
    overlaid (`go build -overlay`) into the directory of `package`, which must then be the builder's
    own main package: Go refuses overlays inside the module cache."""
    generator_env: Mapping[str, str] = field(default_factory=dict)
    module_files: Mapping[str, str] = field(default_factory=dict)
    """Files upstream's release build writes into its own module tree before `go build` (web assets
    compiled by npm) and its module zip lacks, so a `go:embed` of them finds nothing: path in the
    module -> content. Go refuses overlays inside the module cache, so the build then runs against a
    scratch copy of the module with these files added, through a `replace` of the module by that copy
    in a scratch copy of the builder's go.mod (`-modfile`); the committed go.mod and go.sum stay."""

    @property
    def coordinates(self) -> str:
        return f"{self.module}@{self.version}"

    def builder_dir(self) -> Path:
        return BUILDERS / self.builder

    def digest(self) -> str:
        """What the build depends on besides the version: the builder's files and the Go version."""
        hasher = hashlib.sha256(go_version().encode())
        for path in sorted(self.builder_dir().rglob("*")):
            if path.is_file():
                hasher.update(path.relative_to(BUILDERS).as_posix().encode())
                hasher.update(path.read_bytes())
        hasher.update(repr((self.package, self.ldflags, self.tags, sorted(self.env.items()))).encode())
        if self.generator:
            hasher.update(repr((self.generator, sorted(self.generator_env.items()))).encode())
        if self.module_files:
            hasher.update(repr(sorted(self.module_files.items())).encode())
        return hasher.hexdigest()[:12]

    def path(self) -> Path:
        return cache_root() / "bin" / f"{self.name}-{self.version}-{self.digest()}" / self.name

    def build(self) -> Path | Blocked:
        target = self.path()
        if target.exists():
            return target
        if shutil.which("go") is None:
            return Blocked(self.name, self.coordinates, "no `go` command on this machine")
        if build_seconds_left() <= 0:
            return Blocked(self.name, self.coordinates, out_of_time("the build"))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{self.name}.{os.getpid()}.partial")
        command = ["go", "build", "-trimpath", "-o", str(partial)]
        if self.ldflags:
            command += ["-ldflags", " ".join(self.ldflags)]
        if self.tags:
            command += ["-tags", ",".join(self.tags)]
        command.append(self.package)
        # readonly: a stale go.sum fails the build instead of being rewritten (which would change the
        # digest the output is cached under); no VCS stamp of our own checkout in the binary.
        environment = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local", **self.env}
        started = time.monotonic()
        if self.generator:
            overlay = self.generate(environment, target.parent / ".generated")
            if isinstance(overlay, Blocked):
                return overlay
            command[-1:-1] = ["-overlay", str(overlay)]
        if self.module_files:
            modfile = self.copy_module(environment, target.parent / ".module")
            if isinstance(modfile, Blocked):
                return modfile
            command[-1:-1] = [f"-modfile={modfile}"]
        try:
            result = subprocess.run(
                command,
                cwd=self.builder_dir(),
                env=environment,
                capture_output=True,
                text=True,
                timeout=max(build_seconds_left(), 1),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Blocked(self.name, self.coordinates, out_of_time("go build"))
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            unavailable = self.download_error(environment)
            if unavailable:
                return Blocked(self.name, self.coordinates, f"go mod download failed: {unavailable}")
            return Blocked(self.name, self.coordinates, f"go build failed: {tail(result.stderr)}")
        partial.replace(target)
        if self.module_files:
            shutil.rmtree(target.parent / ".module", ignore_errors=True)
        print(f"built {self.name} {self.version} in {time.monotonic() - started:.0f}s: {target}", file=sys.stderr)
        return target

    def generate(self, environment: Mapping[str, str], scratch: Path) -> Path | Blocked:
        """Run upstream's generator (`generator`) and return the overlay file mapping what it wrote."""
        package, _, file = self.generator.rpartition("/")

        def go(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["go", *args], cwd=self.builder_dir(), env=environment, capture_output=True, text=True,
                timeout=BUILD_TIMEOUT_SECONDS, check=False,
            )  # fmt: skip

        directories = []
        for listed in (go("list", "-e", "-f", "{{.Dir}}", path) for path in (package, self.package)):
            if listed.returncode != 0 or not listed.stdout.strip():
                return Blocked(self.name, self.coordinates, f"go list failed: {tail(listed.stderr)}")
            directories.append(Path(listed.stdout.strip()))
        source, ours = directories
        shutil.rmtree(scratch, ignore_errors=True)
        work = scratch / "work"
        shutil.copytree(source, work)
        work.chmod(0o755)
        built = go("build", "-o", str(scratch / "generator"), str(source / file))
        if built.returncode != 0:
            return Blocked(self.name, self.coordinates, f"building the generator {file} failed: {tail(built.stderr)}")
        ran = subprocess.run(
            [str(scratch / "generator")], cwd=work, env={**environment, **self.generator_env},
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        (scratch / "generator").unlink()
        if ran.returncode != 0:
            return Blocked(self.name, self.coordinates, f"the generator {file} failed: {tail(ran.stderr)}")
        upstream = {path.name for path in source.iterdir()}
        written = {str(ours / path.name): str(path) for path in sorted(work.iterdir()) if path.name not in upstream}
        overlay = scratch / "overlay.json"
        overlay.write_text(json.dumps({"Replace": written}, indent=1))
        return overlay

    def copy_module(self, environment: Mapping[str, str], scratch: Path) -> Path | Blocked:
        """A scratch copy of the upstream module with `module_files` added; the go.mod that uses it."""
        downloaded = subprocess.run(
            ["go", "mod", "download", "-json", self.coordinates], cwd=self.builder_dir(), env=environment,
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        try:
            source = Path(json.loads(downloaded.stdout)["Dir"])
        except (ValueError, KeyError):
            why = tail(downloaded.stdout + downloaded.stderr)
            return Blocked(self.name, self.coordinates, f"go mod download failed: {why}")
        shutil.rmtree(scratch, ignore_errors=True)
        copy = scratch / "module"
        shutil.copytree(source, copy, copy_function=shutil.copyfile)
        for directory, _, _ in os.walk(copy):
            Path(directory).chmod(0o755)  # the module cache's directories are read-only
        for relative, content in self.module_files.items():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            (copy / relative).write_text(content)
        modfile = scratch / "builder.mod"
        builder_mod = (self.builder_dir() / "go.mod").read_text()
        modfile.write_text(f"{builder_mod}\nreplace {self.module} {self.version} => {copy}\n")
        shutil.copyfile(self.builder_dir() / "go.sum", scratch / "builder.sum")
        return modfile

    def download_error(self, environment: Mapping[str, str]) -> str:
        """The proxy's own answer when the pinned module cannot be had at all, else "".

        A builder whose module the proxy refuses has no go.sum, so `go build` only says "missing go.sum
        entry"; the evidence is what `go mod download` of the module says (outside any module, no go.sum).
        """
        with tempfile.TemporaryDirectory() as scratch:
            result = subprocess.run(
                ["go", "mod", "download", "-json", self.coordinates],
                cwd=scratch,
                env={**environment, "GOFLAGS": ""},
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        if result.returncode == 0:
            return ""
        try:
            error = str(json.loads(result.stdout).get("Error", ""))
        except ValueError:
            error = ""
        return tail(error or result.stderr)


@dataclass(frozen=True)
class MavenArtifact:
    """A file on Maven Central, by its coordinates (`mvn dependency:copy`)."""

    name: str
    group: str
    artifact: str
    version: str
    packaging: str = "zip"

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    def path(self) -> Path:
        return cache_root() / "maven" / f"{self.artifact}-{self.version}.{self.packaging}"

    def build(self) -> Path | Blocked:
        target = self.path()
        if target.exists():
            return target
        if shutil.which("mvn") is None:
            return Blocked(self.name, self.coordinates, "no `mvn` command on this machine")
        if build_seconds_left() <= 0:
            return Blocked(self.name, self.coordinates, out_of_time("the download"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            command = [
                "mvn", "-B", "-q", "-U", "-Dstyle.color=never", "dependency:copy",
                f"-Dartifact={self.coordinates}:{self.packaging}",
                f"-DoutputDirectory={scratch}",
                "-Dmdep.useBaseVersion=true",
            ]  # fmt: skip
            try:
                result = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=max(build_seconds_left(), 1),
                    check=False,
                    cwd=scratch,
                )
            except subprocess.TimeoutExpired:
                return Blocked(self.name, self.coordinates, out_of_time("mvn"))
            fetched = Path(scratch) / target.name
            if result.returncode != 0 or not fetched.exists():
                why = maven_error(result.stdout + result.stderr)
                return Blocked(self.name, self.coordinates, f"mvn dependency:copy failed: {why}")
            fetched.replace(target)
        return target


Program = GoBinary | MavenArtifact


def tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    """The last lines of a tool's output, on one line: the evidence in a BLOCKED line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def maven_error(output: str) -> str:
    """Maven's own reason: its first `[ERROR]` line (`Could not find artifact ... in central`).

    A failed `mvn` ends with the same advice every time (install the file by hand, `-e`, `-X`, the
    wiki link), so the last lines of its output (`tail`) would lose the cause."""
    for line in output.splitlines():
        _, marker, text = line.partition("[ERROR]")
        if marker and text.strip():
            return text.strip().split(": ", 1)[-1] if "Failed to execute goal" in text else text.strip()
    return tail(output)


_GO_VERSION: list[str] = []


def go_version() -> str:
    if not _GO_VERSION:
        go = shutil.which("go")
        output = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout if go else ""
        _GO_VERSION.append(output.strip() or "no go")
    return _GO_VERSION[0]


def catalogue() -> dict[str, Program]:
    """Every program the suite runs, by name (`tests/integration/programs.py` pins them)."""
    from tests.integration.programs import PROGRAMS

    return {program.name: program for program in PROGRAMS}


def obtain(names: Iterable[str]) -> dict[str, Path | Blocked]:
    programs = catalogue()
    unknown = sorted(set(names) - set(programs))
    if unknown:
        raise SystemExit(f"unknown programs {unknown}; known: {', '.join(sorted(programs))}")
    return {name: programs[name].build() for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.binaries")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build or fetch the programs (all by default)")
    build.add_argument("names", nargs="*")
    commands.add_parser("list", help="every pinned program and whether it is cached")
    args = parser.parse_args(argv)
    programs = catalogue()
    if args.command == "list":
        for name, program in sorted(programs.items()):
            state = "cached" if program.path().exists() else "missing"
            print(f"{name:28} {program.coordinates:70} {state}")
        return 0
    blocked = 0
    for name, outcome in obtain(args.names or sorted(programs)).items():
        if isinstance(outcome, Blocked):
            blocked += 1
            print(outcome.line())
        else:
            print(f"ready {name}: {outcome}")
    return 0 if not blocked else 3


if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`, while the catalogue's programs build with the
    # classes of `tests.integration.binaries`: use that module's `main`, so `isinstance(_, Blocked)`
    # sees the Blocked its programs return (with this module's own class, every one read as ready).
    from tests.integration import binaries

    sys.exit(binaries.main())
