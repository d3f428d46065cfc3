"""Upstream's Pod Security evaluator, built from the Go module beside this file, run once per batch.

`main.go` is a few lines of ours around `k8s.io/pod-security-admission`, the code of the API
server's PodSecurity admission plugin, at the Kubernetes release the platform deploys (`go.mod`).
Its first use builds it with the machine's Go (`go build -trimpath`, `GOFLAGS=-mod=readonly`,
`GOTOOLCHAIN=local`) into `~/.cache/thanos-multi-cluster-tools/bin/podsecurity-<go version>-<source
digest>/` (`$THANOS_MC_TOOLS_CACHE` instead of `~/.cache/thanos-multi-cluster-tools`; not
`$XDG_CACHE_HOME`, which the unit tests point at a scratch directory per run). Later runs, and other
processes, find it there; a changed source or another Go builds anew, nothing else does. Go's build
cache for it is `go-build/` beside `bin/` unless `$GOCACHE` names one, for the same reason: Go's
default follows `$XDG_CACHE_HOME`, and a cold cache compiles Kubernetes' API packages again (minutes).

- `evaluate(checks)`: every check in one run of the program, the verdicts in the same order;
- `unavailable()`: why the evaluator cannot be had here (no Go; the build failed, with the end of
  Go's error), or None; asked once per process.

    python -m tools.podsecurity    # build it now (or find it built): prints its path, or why not
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Level = Literal["privileged", "baseline", "restricted"]
"""A Pod Security Standard, from the least to the most strict."""

LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")

SOURCE = Path(__file__).resolve().parent
"""The Go module: `go.mod`, `go.sum` and `main.go`."""
UPSTREAM = "k8s.io/pod-security-admission"
CACHE_ENV = "THANOS_MC_TOOLS_CACHE"
PROGRAM = "podsecurity"
BUILD_ENVIRONMENT = {"GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
"""readonly: a stale go.sum fails the build instead of being rewritten; no VCS stamp of the checkout;
local: the machine's Go, never a toolchain download; no cgo: a static binary."""
BUILD_FLAGS = ("-trimpath",)
BUILD_TIMEOUT_SECONDS = 1800
RUN_TIMEOUT_SECONDS = 300
ERROR_TAIL_LINES = 12


class EvaluatorUnavailable(RuntimeError):
    """The evaluator cannot be had here; the message says why (no Go, the build's error)."""


class EvaluatorError(RuntimeError):
    """The evaluator refused its input or failed: a bug of ours, never a verdict."""


# --- the checks and their verdicts -------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One pod to judge, at what a namespace with `namespace_labels` enforces (read as the admission
    plugin reads them: no labels is privileged, an unparsable level is restricted), with `level`
    and `version` replacing what the labels say when given. A check needs labels or a level."""

    id: str
    pod: Mapping[str, Any]
    """`{"metadata": {...}, "spec": {...PodSpec...}}`: a Pod, or a workload's pod template."""
    namespace_labels: Mapping[str, str] | None = None
    level: Level | None = None
    version: str | None = None
    """`v1.36` or `latest`."""

    def request(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "podSpec": self.pod.get("spec") or {},
            "metadata": self.pod.get("metadata") or {},
        }
        if self.namespace_labels is not None:
            entry["namespaceLabels"] = dict(self.namespace_labels)
        if self.level is not None:
            entry["level"] = self.level
        if self.version is not None:
            entry["version"] = self.version
        return entry


@dataclass(frozen=True)
class Forbidden:
    """One failed upstream check: its ForbiddenReason and ForbiddenDetail."""

    reason: str
    detail: str

    def __str__(self) -> str:
        """As the API server words it (`host namespaces (hostNetwork=true)`)."""
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


@dataclass(frozen=True)
class Verdict:
    id: str
    level: Level
    version: str
    """The level and version the pod was judged at (`restricted`, `v1.36`)."""
    allowed: bool
    forbidden: tuple[Forbidden, ...]
    """Every failed check, in upstream's order; empty when allowed."""
    label_errors: tuple[str, ...] = ()
    """What upstream could not parse in the namespace labels (it then falls back as the API server does)."""
    error: str = ""
    """Why the pod could not be judged at all (not a PodSpec); `allowed` is then False."""

    @property
    def messages(self) -> list[str]:
        return [str(forbidden) for forbidden in self.forbidden]


def evaluate(checks: Sequence[Check], binary: Path | None = None) -> list[Verdict]:
    """The verdict of every check, in order, from one run of the evaluator.

    Raises EvaluatorUnavailable when it cannot be had (see `unavailable`), EvaluatorError when it fails."""
    if not checks:
        return []
    program = binary or evaluator()
    request = json.dumps({"checks": [check.request() for check in checks]})
    try:
        result = subprocess.run(
            [str(program)], input=request, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise EvaluatorError(f"{program} took more than {RUN_TIMEOUT_SECONDS}s") from error
    if result.returncode != 0:
        raise EvaluatorError(f"{program} exited {result.returncode}: {tail(result.stderr)}")
    results = json.loads(result.stdout)["results"]
    if [entry["id"] for entry in results] != [check.id for check in checks]:
        raise EvaluatorError(f"{program} answered other checks than it was asked")
    return [_verdict(entry) for entry in results]


def _verdict(entry: Mapping[str, Any]) -> Verdict:
    return Verdict(
        id=entry["id"],
        level=entry["level"],
        version=entry["version"],
        allowed=entry["allowed"],
        forbidden=tuple(Forbidden(item["reason"], item["detail"]) for item in entry["forbidden"]),
        label_errors=tuple(entry["labelErrors"]),
        error=entry["error"],
    )


# --- the build ---------------------------------------------------------------------------


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "thanos-multi-cluster-tools"


def source_files(source: Path = SOURCE) -> list[Path]:
    """What the build reads from the module: go.mod, go.sum and the Go files."""
    return sorted([source / "go.mod", source / "go.sum", *source.glob("*.go")])


def source_digest(source: Path = SOURCE) -> str:
    hasher = hashlib.sha256(repr((BUILD_FLAGS, sorted(BUILD_ENVIRONMENT.items()))).encode())
    for path in source_files(source):
        hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:12]


def go_version(environ: Mapping[str, str]) -> str:
    """`go1.26.8`: the machine's Go (never a toolchain it would download)."""
    go = shutil.which("go", path=environ.get("PATH", os.defpath))
    if go is None:
        raise EvaluatorUnavailable(
            "no `go` command on this machine: the Pod Security evaluator (tools/podsecurity) is built with Go "
            f"{_required_go()} or newer"
        )
    result = subprocess.run(
        [go, "env", "GOVERSION"], env={**environ, **BUILD_ENVIRONMENT}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise EvaluatorUnavailable(f"`go env GOVERSION` failed: {tail(result.stderr)}")
    return result.stdout.strip()


def _required_go() -> str:
    for line in (SOURCE / "go.mod").read_text().splitlines():
        if line.startswith("go "):
            return line.removeprefix("go ").strip()
    return "(see tools/podsecurity/go.mod)"


def required_modules(source: Path = SOURCE) -> dict[str, str]:
    """Module -> version, of every `require` line of go.mod (direct and indirect)."""
    modules: dict[str, str] = {}
    for line in (source / "go.mod").read_text().splitlines():
        fields = line.split("//")[0].split()
        if fields[:1] == ["require"]:
            fields = fields[1:]
        if len(fields) == 2 and "." in fields[0] and fields[1].startswith("v"):
            modules[fields[0]] = fields[1]
    return modules


def upstream_version() -> str:
    """The version of `k8s.io/pod-security-admission` the evaluator is built from (`v0.36.3`)."""
    return required_modules()[UPSTREAM]


def binary_path(version: str, source: Path = SOURCE, root: Path | None = None) -> Path:
    return (root or cache_root()) / "bin" / f"{PROGRAM}-{version}-{source_digest(source)}" / PROGRAM


def build(source: Path = SOURCE, root: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The evaluator's path, built first if it is not in the cache. Raises EvaluatorUnavailable."""
    environment = dict(os.environ if environ is None else environ)
    environment.setdefault("GOCACHE", str(cache_root() / "go-build"))
    target = binary_path(go_version(environment), source, root)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / ".lock"):  # another process may be building it
        if target.exists():
            return target
        partial = target.with_name(f".{PROGRAM}.{os.getpid()}.partial")
        command = ["go", "build", *BUILD_FLAGS, "-o", str(partial), "."]
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                cwd=source,
                env={**environment, **BUILD_ENVIRONMENT},
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            partial.unlink(missing_ok=True)
            raise EvaluatorUnavailable(f"`go build` of {source} took more than {BUILD_TIMEOUT_SECONDS}s") from error
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise EvaluatorUnavailable(f"`go build` of {source} failed: {tail(result.stderr or result.stdout)}")
        partial.replace(target)
    seconds = time.monotonic() - started
    print(f"built the Pod Security evaluator in {seconds:.0f}s: {target}", file=sys.stderr)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def _obtained() -> Path | EvaluatorUnavailable:
    try:
        return build()
    except EvaluatorUnavailable as why:
        return why


def evaluator() -> Path:
    """The evaluator of this process (built or found once). Raises EvaluatorUnavailable."""
    obtained = _obtained()
    if isinstance(obtained, EvaluatorUnavailable):
        raise obtained
    return obtained


def unavailable() -> str | None:
    """Why the evaluator cannot be had here, or None (then it is built and cached)."""
    obtained = _obtained()
    return str(obtained) if isinstance(obtained, EvaluatorUnavailable) else None


def tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    """The last lines of a tool's output, on one line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def main() -> int:
    why = unavailable()
    if why is not None:
        print(f"the Pod Security evaluator is not available: {why}", file=sys.stderr)
        return 1
    print(evaluator())
    return 0


__all__ = [
    "LEVELS",
    "Check",
    "EvaluatorError",
    "EvaluatorUnavailable",
    "Forbidden",
    "Level",
    "Verdict",
    "build",
    "evaluate",
    "evaluator",
    "unavailable",
    "upstream_version",
]
