"""How long `render --check` takes against its floor, per stack, measured in one run.

    python -m tools.benchmark_render [--stack cluster-196 ...] [--config KEY=VALUE ...] [--repeat N]

The floor is what no `render --check` can do without: a Python process that runs the program under
the offline engine (`tools.engine`) and `helm template` of every release once, with the arguments
`render` gives it (its last call per release: the API versions of the CRDs installed before it
and its own). The full run is `python -m tools.render --stack S --check` itself. Both are timed as
fresh processes, interpreter start included, one after the other, `--repeat` times; one line per
stack gives the median of each and their ratio. Parsing helm's output is not part of the floor.
`--cold` empties what `render` keeps between runs (parsed YAML, `tools.parsed_yaml`, and the CRDs
each chart brings, `tools.cluster`) before each full run, as on a machine that never ran it.

Every stack file is measured unless `--stack` says which. Without `--config`, a stack whose file
sets neither `s3.caCertificate` nor `s3.publicCa` gets a throwaway CA (openssl) as
`s3.caCertificate`, as `.ci/run` renders the committed stacks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import helm, parsed_yaml
from tools.engine import PROJECT, ROOT, Rendering, load_stack_config, run_stack, stack_names

CA_KEY = "s3.caCertificate"
FLOOR_MARK = "floor: "


@dataclass(frozen=True)
class Floor:
    program: float
    """Interpreter start, imports and the program under the offline engine (seconds)."""
    helm: float
    """`helm template` of every release, once each."""
    releases: int

    @property
    def total(self) -> float:
        return self.program + self.helm


@dataclass(frozen=True)
class Measurement:
    stack: str
    floors: list[Floor]
    fulls: list[float]

    def line(self) -> str:
        floor = statistics.median(f.total for f in self.floors)
        program = statistics.median(f.program for f in self.floors)
        helm_time = statistics.median(f.helm for f in self.floors)
        full = statistics.median(self.fulls)
        return (
            f"{self.stack}: floor {floor:.1f} s (program {program:.1f} s, helm template {helm_time:.1f} s for "
            f"{self.floors[0].releases} releases), render --check {full:.1f} s, ratio {full / floor:.2f} "
            f"(median of {len(self.fulls)})"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = dict(setting.partition("=")[::2] for setting in args.config)
    if args.floor is not None:
        print(FLOOR_MARK + json.dumps(measure_floor(args.stack[0], settings, args.floor).__dict__))
        from tools.render import close_idle_event_loops  # after the timing: the floor imports no more than it needs

        close_idle_event_loops()
        return 0
    stacks = args.stack or stack_names()
    with tempfile.TemporaryDirectory(prefix="benchmark-render-") as scratch:
        throwaway = None if args.config else _throwaway_ca(Path(scratch))
        for stack in stacks:
            config = args.config or _default_config(stack, throwaway)
            print(benchmark(stack, config, args.repeat, args.cold).line(), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark_render", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", default=[], help="a stack to measure (default: every stack file)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="as `tools.render`'s")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each per stack (the median is printed)")
    parser.add_argument("--cold", action="store_true", help="empty render's caches before each full run")
    parser.add_argument("--floor", type=float, help=argparse.SUPPRESS)  # internal: the floor process, started at
    return parser


# --- the parent: one floor and one full run after the other ------------------------------------


def benchmark(stack: str, config: list[str], repeat: int, cold: bool = False) -> Measurement:
    options = [flag for setting in config for flag in ("--config", setting)]
    floors: list[Floor] = []
    fulls: list[float] = []
    for _ in range(repeat):
        floors.append(_floor_process(stack, options))
        if cold:
            from tools import cluster

            for kept in (parsed_yaml.cache_dir(), cluster.chart_crds_dir()):
                shutil.rmtree(kept, ignore_errors=True)
        fulls.append(_full_process(stack, options))
    return Measurement(stack, floors, fulls)


def _floor_process(stack: str, options: list[str]) -> Floor:
    command = [sys.executable, "-m", "tools.benchmark_render", "--stack", stack, *options, "--floor"]
    done = _run([*command, repr(time.time())])
    line = next(line for line in done.stdout.splitlines() if line.startswith(FLOOR_MARK))
    return Floor(**json.loads(line.removeprefix(FLOOR_MARK)))


def _full_process(stack: str, options: list[str]) -> float:
    start = time.perf_counter()
    _run([sys.executable, "-m", "tools.render", "--stack", stack, "--check", *options], findings_ok=True)
    return time.perf_counter() - start


def _run(command: list[str], findings_ok: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode not in ((0, 1) if findings_ok else (0,)):
        shown = [part if len(part) < 80 else "..." for part in command]
        raise SystemExit(f"{' '.join(shown)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _throwaway_ca(directory: Path) -> str:
    key, cert = directory / "ca.key", directory / "ca.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=benchmark throwaway MinIO CA", "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True)
    return cert.read_text()


def _default_config(stack: str, throwaway_ca: str | None) -> list[str]:
    s3 = json.loads(load_stack_config(stack).get(f"{PROJECT}:s3", "{}"))
    if throwaway_ca is None or "caCertificate" in s3 or s3.get("publicCa"):
        return []
    return [f"{CA_KEY}={throwaway_ca}"]


# --- the floor process -----------------------------------------------------------------------


def measure_floor(stack: str, settings: dict[str, str], started_at: float) -> Floor:
    """Times the program from the process start, then replays each release's last `helm template`."""
    rendering = run_stack(stack, settings=settings)
    program = time.time() - started_at
    calls = _helm_calls(rendering)
    start = time.perf_counter()
    for call in calls.values():
        helm.template_text(**call)
    return Floor(program=program, helm=time.perf_counter() - start, releases=len(calls))


def _helm_calls(rendering: Rendering) -> dict[str, dict[str, Any]]:
    """Release -> the arguments of the last `helm template` building the cluster made for it (untimed)."""
    from tools import cluster

    calls: dict[str, dict[str, Any]] = {}
    original = helm.template_text

    def recording(release: str, *args: Any, **kwargs: Any) -> str:
        names = ("chart", "namespace", "values", "kube_version", "api_versions", "timeout")
        calls[release] = {"release": release, **dict(zip(names, args, strict=False)), **kwargs}
        return original(release, *args, **kwargs)

    helm.template_text = recording  # type: ignore[assignment]
    try:
        cluster.cluster(rendering)
    finally:
        helm.template_text = original  # type: ignore[assignment]
    return calls


if __name__ == "__main__":
    sys.exit(main())
