"""The real Pulumi engine, offline: an Automation API harness for the integration tests.

The CLI is the one `tests/integration/programs.py` builds (`need("pulumi")`); the Python language host
cannot be had, so programs run INLINE (`pulumi.automation`: the SDK in this process serves the program
and the CLI connects to it, `--client`). Everything lives in one scratch directory: `PULUMI_HOME`, a
`file://` backend, each project's work directory. Secrets are passphrase-encrypted, there is no update
check and no plugin download: the only plugins are ours, on the CLI's PATH (`bin/`):

- `pulumi-resource-kubernetes`, built from the module the proxy serves (`programs.PULUMI_KUBERNETES`).
  The SDK (pulumi-kubernetes 4.34.2) asks for plugin version 4.34.2; the engine takes the one it finds on
  PATH whatever its version, so the binary keeps its own version instead of being installed under
  another's name;
- `pulumi-resource-pulumi-python`, the dynamic-provider runner: a script of the CLI's own release of the
  `github.com/pulumi/pulumi/sdk/v3` module, running `python -m pulumi.dynamic` with this interpreter;
- plugins of the tests' own written in Python (`python_plugin`), such as the pulumi-command double.

Each project's `Pulumi.yaml` is the project's own with another `name`, so every program runs under
the project's `config:` (`pulumi:disable-default-providers`), with the project's venv beside it.

The same inline program also runs under the offline engine's mocks (`offline_rendering`): the records
`tools.plan` plans from, so its predictions can be compared with the engine's steps (`Observed`).
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi import automation as auto
from pulumi.automation import events as engine_events
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests.integration.binaries import Blocked, tail
from tests.integration.programs import PULUMI_SDK_MODULE
from tools import engine as offline
from tools.engine import Rendering

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "integration-passphrase"
DYNAMIC_PROVIDER = "pulumi-resource-pulumi-python"
GO_TIMEOUT_SECONDS = 600

Program = Callable[[], None]


# --- what the engine needs besides the CLI ----------------------------------------------------


def go_module_dir(name: str, module: str, version: str) -> Path | Blocked:
    """The module's files in the Go module cache (downloaded through the proxy if missing)."""
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"],
            cwd=scratch,
            env={**os.environ, "GOFLAGS": "", "GOTOOLCHAIN": "local"},
            capture_output=True,
            text=True,
            timeout=GO_TIMEOUT_SECONDS,
            check=False,
        )
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = {}
    if result.returncode != 0 or "Dir" not in answer:
        why = str(answer.get("Error") or "") or result.stderr
        return Blocked(name, f"{module}@{version}", f"go mod download failed: {tail(why)}")
    return Path(answer["Dir"])


def sdk_script(module_dir: Path, script: str) -> Path | Blocked:
    """One of the helper scripts the sdk/v3 module ships in `python/dist/`."""
    path = module_dir / "python" / "dist" / script
    if not path.exists():
        return Blocked(script, str(module_dir), f"no python/dist/{script} in this release of {PULUMI_SDK_MODULE}")
    return path


# --- the engine -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """The CLI, its plugins and a backend, in `root`."""

    root: Path
    version: str
    """What `pulumi version` says."""

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def backend(self) -> Path:
        return self.root / "state"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, passphrase: str, path: Sequence[Path] = ()) -> dict[str, str]:
        """The CLI's environment (on top of this process's): `path` comes first on PATH."""
        search = [*(str(directory) for directory in path), str(self.bin), os.environ.get("PATH", "")]
        return {
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PATH": os.pathsep.join(search),
            # The dynamic-provider process unpickles providers defined in this repository's modules.
            "PYTHONPATH": str(ROOT),
            "PULUMI_PYTHON_CMD": sys.executable,
        }

    def project_dir(self, project: str) -> Path:
        """A work directory holding the project's `Pulumi.yaml` under the name `project`, and its venv."""
        directory = self.root / "projects" / project
        if not directory.exists():
            directory.mkdir(parents=True)
            document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
            document["name"] = project
            (directory / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
            (directory / "venv").symlink_to(ROOT / "venv")
        return directory

    def stack(
        self, project: str, name: str, program: Program, passphrase: str = PASSPHRASE, path: Sequence[Path] = ()
    ) -> auto.Stack:
        """The stack `name` of `project` (created on first use), running `program` inline."""
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.project_dir(project)),
            pulumi_home=str(self.home),
            env_vars=self.env(passphrase, path),
            pulumi_command=auto.PulumiCommand(root=str(self.root)),
        )
        return auto.create_or_select_stack(name, project_name=project, program=program, opts=options)


def prepare(root: Path, cli: Path, plugins: Iterable[Path], scripts: Iterable[Path]) -> Engine:
    """`root/bin`: the CLI and each plugin binary (linked under its own name), each script (copied, executable)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    for binary in (cli, *plugins):
        link = bin_dir / binary.name
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    for script in scripts:
        install(script, bin_dir)
    version = subprocess.run(
        [str(bin_dir / "pulumi"), "version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    return Engine(root, version)


def python_plugin(directory: Path, name: str, module: str) -> Path:
    """An executable `name` in `directory` that runs `python -m module` with this interpreter: a plugin
    written in Python (the engine starts plugins by file name)."""
    target = directory / name
    target.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -u -m {module} "$@"\n')
    target.chmod(0o755)
    return target


def install(script: Path, directory: Path) -> Path:
    """A copy of `script` in `directory`, executable (the module cache's files are read-only)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / script.name
    shutil.copyfile(script, target)
    target.chmod(0o755)
    return target


# --- what the engine did --------------------------------------------------------------------------

REPLACEMENT_OPS = frozenset({"replace", "create-replacement", "delete-replaced"})


@dataclass
class Observed:
    """The engine's steps for one resource, in the order it announced them."""

    name: str
    type: str
    urn: str
    ops: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    """The top-level inputs that changed (the step's `diffs`)."""
    detailed_diff: dict[str, str] = field(default_factory=dict)
    """Property path -> kind (`update`, `update-replace`, ...), as the engine reports it."""
    replace_keys: list[str] = field(default_factory=list)

    @property
    def op(self) -> str:
        """`replace` for any replacement, else the one operation (`same`, `create`, `update`, `delete`)."""
        if REPLACEMENT_OPS & set(self.ops):
            return "replace"
        return self.ops[0]

    @property
    def delete_first(self) -> bool:
        """The old resource is deleted before its replacement is created."""
        if "delete-replaced" not in self.ops or "create-replacement" not in self.ops:
            return False
        return self.ops.index("delete-replaced") < self.ops.index("create-replacement")


@dataclass(frozen=True)
class Violation:
    """A policy's report: which policy, about which resource, what it said."""

    policy: str
    urn: str
    message: str
    level: str


@dataclass
class Run:
    """A preview or an update: the steps by resource name, the engine's errors, the summary."""

    steps: dict[str, Observed] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """The engine's error diagnostics (empty when it succeeded)."""
    infos: list[str] = field(default_factory=list)
    """Its info and warning diagnostics."""
    violations: list[Violation] = field(default_factory=list)
    failure: str = ""
    """The CLI's output when the command failed, else ""."""
    stdout: str = ""
    """The CLI's display, when the command succeeded."""
    summary: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, auto.OutputValue] = field(default_factory=dict)

    def step(self, name: str) -> Observed:
        return self.steps[name]

    def changes(self) -> dict[str, int]:
        """The summary without `same`: empty when nothing would change."""
        return {op: count for op, count in self.summary.items() if op != "same" and count}


def observe(events: Iterable[engine_events.EngineEvent]) -> Run:
    """The steps, errors and policy reports of an event stream."""
    run = Run()
    for event in events:
        diagnostic = event.diagnostic_event
        if diagnostic is not None:
            (run.errors if diagnostic.severity == "error" else run.infos).append(diagnostic.message.strip())
        if event.policy_event is not None:
            policy = event.policy_event
            run.violations.append(
                Violation(
                    policy.policy_name, policy.resource_urn or "", policy.message.strip(), policy.enforcement_level
                )
            )
        pre = event.resource_pre_event
        if pre is None:
            continue
        metadata = pre.metadata
        name = metadata.urn.rsplit("::", 1)[-1]
        observed = run.steps.setdefault(name, Observed(name, metadata.type, metadata.urn))
        observed.ops.append(metadata.op.value)
        observed.diffs = sorted(set(observed.diffs) | set(metadata.diffs or []))
        observed.replace_keys = sorted(set(observed.replace_keys) | set(metadata.keys or []))
        for path, diff in (metadata.detailed_diff or {}).items():
            observed.detailed_diff[path] = diff.diff_kind.value
    return run


def _op_name(op: object) -> str:
    return str(getattr(op, "value", op))


def fresh(program: Program) -> Program:
    """`program`, run with pickle as the SDK found it: `pulumi.dynamic` wraps a method of pickle's each
    time it serialises a provider and never unwraps it (see `tools.engine`); one process running many
    programs would nest the wrappers ever deeper."""

    def run() -> None:
        offline._undo_provider_serialisation_wrappers()
        program()

    return run


def preview(stack: auto.Stack, program: Program, **options: Any) -> Run:
    """`pulumi preview` of `program`; a refused preview is returned (`failure`), not raised."""
    events: list[engine_events.EngineEvent] = []
    try:
        result = stack.preview(program=fresh(program), on_event=events.append, **options)
    except auto.CommandError as error:
        run = observe(events)
        run.failure = str(error)
        # A program the engine stopped leaves the SDK's coroutine behind; finalised later, inside some
        # `ast.parse` of pytest's, it would break CPython 3.11's AST recursion check (SystemError).
        gc.collect()
        return run
    run = observe(events)
    run.summary = {_op_name(op): count for op, count in result.change_summary.items()}
    run.stdout = result.stdout
    return run


def up(stack: auto.Stack, program: Program, **options: Any) -> Run:
    """`pulumi up` of `program`; it must succeed."""
    events: list[engine_events.EngineEvent] = []
    result = stack.up(program=fresh(program), on_event=events.append, **options)
    run = observe(events)
    run.summary = {_op_name(op): count for op, count in (result.summary.resource_changes or {}).items()}
    run.outputs = dict(result.outputs)
    return run


# --- the same program, offline ---------------------------------------------------------------------


def offline_rendering(program: Program, project: str, stack: str, config: Mapping[str, str] | None = None) -> Rendering:
    """What the offline engine records of `program` (by default under the project's `Pulumi.yaml` config):
    the `Rendering` that `tools.plan` and `tools.engine`'s refusals work on."""
    settings = dict(offline.project_config() if config is None else config)
    saved = dict(pulumi.runtime.config.CONFIG.get())
    monitor = offline._RecordingMonitor(offline._Mocks(lambda _name: {}))
    reset_options()
    set_all_config(settings, [])
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    try:
        _sync_await(run_pulumi_func(fresh(program)))
    finally:
        reset_options()
        set_all_config(saved, [])
    return Rendering(stack=stack, resources=monitor.recorded, outputs={}, config=settings)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def engine_path(path: Sequence[str | int]) -> str:
    """A `tools.plan` property path as the engine prints it: `a.b[0]["c.d"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text
