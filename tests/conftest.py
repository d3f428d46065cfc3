"""One offline engine for every test, and the stacks the tests run on.

Unit tests run on the small fixture stacks in `tests/stacks/` (a central `hub` and two edges on
Minikube hosts in 10.20.0.0/24, and a central and an edge on existing three-node clusters): their
own topology, so no test depends on a committed host, address or name, and adding a cluster to the
project changes no test. The project's own stacks (`Pulumi.*.yaml` beside
`Pulumi.yaml`) are checked as a whole: each renders and passes every validator. Each stack is
rendered once per session and shared.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Central renders write the MinIO CA for Pulumi's provider into the cache directory: a test run's own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="thanos-multi-cluster-tests-")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.longhorn import STORAGE_CLASS  # noqa: E402
from components.settings import Settings, decode_config, settings_of  # noqa: E402
from tests.certificates import throwaway_ca  # noqa: E402
from tools import helm, podsecurity  # noqa: E402
from tools import reference as reference_material  # noqa: E402
from tools.engine import PROJECT, Rendering, load_stack_config, run_stack, stack_names  # noqa: E402

FIXTURE_STACKS_DIR = ROOT / "tests" / "stacks"


def role_of(stack: str, stacks_dir: Path = FIXTURE_STACKS_DIR) -> str:
    return load_stack_config(stack, stacks_dir)[f"{PROJECT}:role"]


def on_existing_cluster(stack: str, stacks_dir: Path = FIXTURE_STACKS_DIR) -> bool:
    """A stack for an existing cluster (a `kubernetes` section) rather than Minikube on a host."""
    return f"{PROJECT}:kubernetes" in load_stack_config(stack, stacks_dir)


STACKS = tuple(stack_names(FIXTURE_STACKS_DIR))
"""The fixture stacks the unit tests run on."""
MINIKUBE_STACKS = tuple(stack for stack in STACKS if not on_existing_cluster(stack))
"""The fixture stacks of Minikube hosts."""
EXISTING_STACKS = tuple(stack for stack in STACKS if on_existing_cluster(stack))
"""The fixture stacks of existing (multi-node) clusters."""
EDGE_STACKS = tuple(stack for stack in STACKS if role_of(stack) == "edge")
LONGHORN_STACKS = tuple(
    stack
    for stack in STACKS
    if "className" not in json.loads(load_stack_config(stack, FIXTURE_STACKS_DIR).get(f"{PROJECT}:storage", "{}"))
)
"""The fixture stacks that install Longhorn (no StorageClass of the cluster's own)."""
HOST_PORT_STACKS = tuple(
    stack
    for stack in STACKS
    if json.loads(load_stack_config(stack, FIXTURE_STACKS_DIR).get(f"{PROJECT}:ingress", "{}")).get(
        "serviceType", "hostPort"
    )
    == "hostPort"
)
"""The fixture stacks whose Traefik takes the node's 80/443 as host ports (every Minikube stack)."""
CENTRAL_STACK = next(stack for stack in MINIKUBE_STACKS if role_of(stack) == "central")
EDGE, OTHER_EDGE = (stack for stack in MINIKUBE_STACKS if role_of(stack) == "edge")
"""Two fixture edges on Minikube, for tests that need an edge, or an edge and another one."""
HUB_EDGES = tuple(
    edge["name"] for edge in json.loads(load_stack_config(CENTRAL_STACK, FIXTURE_STACKS_DIR)[f"{PROJECT}:edges"])
)
"""The edges `CENTRAL_STACK` lists: its fleet, with it."""
FLEET = (CENTRAL_STACK, *HUB_EDGES)
"""The Minikube central and the edges it queries: one platform."""


def central_of(stack: str) -> str:
    """The central stack of a fixture stack: itself, or the one its `centralStack` names."""
    config = load_stack_config(stack, FIXTURE_STACKS_DIR)
    if config[f"{PROJECT}:role"] == "central":
        return stack
    return config[f"{PROJECT}:centralStack"].rsplit("/", 1)[-1]


def fleet_of(stack: str) -> tuple[str, ...]:
    """The platform a fixture stack belongs to: its central and the edges that central lists."""
    central = central_of(stack)
    edges = json.loads(load_stack_config(central, FIXTURE_STACKS_DIR)[f"{PROJECT}:edges"])
    return (central, *(edge["name"] for edge in edges))


EXISTING_CENTRAL = next(stack for stack in EXISTING_STACKS if role_of(stack) == "central")
EXISTING_EDGE = next(stack for stack in EXISTING_STACKS if role_of(stack) == "edge")
COMMITTED_STACKS = tuple(stack_names(ROOT))
"""The project's own stacks, one per cluster."""
REFERENCE_MISSING = reference_material.reference_missing()
"""Why the reference material (chart defaults and packages, CRDs, Thanos flags) is not here, or None."""

requires_reference = pytest.mark.skipif(REFERENCE_MISSING is not None, reason=REFERENCE_MISSING or "")
"""For tests that compare the program with the pinned upstream material."""


def _charts_missing() -> str | None:
    """Why the charts cannot be rendered here (no helm, no chart packages), or None."""
    return REFERENCE_MISSING or (helm.INSTALL_HINT if helm.helm_binary() is None else None)


requires_charts = pytest.mark.skipif(_charts_missing() is not None, reason=_charts_missing() or "")
"""For tests that need the charts rendered by the real helm (tools.cluster)."""

EVALUATOR_MISSING = podsecurity.unavailable()
requires_evaluator = pytest.mark.skipif(
    EVALUATOR_MISSING is not None, reason=f"the Pod Security evaluator cannot be had here: {EVALUATOR_MISSING}"
)
"""For the tests that run upstream's Pod Security evaluator (`tools/podsecurity`, built with Go)."""


def any_stack_name(role: str) -> str:
    """One fixture stack of a role, for tests that need one but not which."""
    return CENTRAL_STACK if role == "central" else EDGE_STACKS[0]


def run_fixture(stack: str, overrides: Mapping[str, str | None] | None = None, **options: Any) -> Rendering:
    """A fixture stack rendered with some config replaced (full keys; None removes one)."""
    return run_stack(stack, overrides, stacks_dir=FIXTURE_STACKS_DIR, **options)


@functools.cache
def rendered(stack: str) -> Rendering:
    """A fixture stack's program as the offline engine records it (cached: it is deterministic)."""
    return run_fixture(stack)


def committed_stack_files() -> dict[str, str]:
    """The project's stack files as committed (`git show HEAD:`), not as the working tree has them: an
    operator's `pulumi config set --secret` writes `secure:` values into the working tree."""
    git = ["git", "-C", str(ROOT)]
    listed = subprocess.run([*git, "ls-files", "Pulumi.*.yaml"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, so nothing is committed: {listed.stderr.strip()}")
    return {
        name: subprocess.run([*git, "show", f"HEAD:{name}"], capture_output=True, text=True, check=True).stdout
        for name in listed.stdout.split()
        if name != "Pulumi.yaml"
    }


def operator_config(stack: str) -> dict[str, str]:
    """What the operator sets in a committed stack before its first preview (README, Quick start) that
    no commit can hold: the object store's CA, unknown to us (a throwaway one here), unless the stack
    says a public CA signed MinIO's certificate."""
    s3 = json.loads(load_stack_config(stack).get(f"{PROJECT}:s3", "{}"))
    if s3.get("useTls", True) in (False, "false") or s3.get("caCertificate") or s3.get("publicCa") in (True, "true"):
        return {}
    return {"s3.caCertificate": throwaway_ca()[0]}


def operator_config_args(stack: str) -> list[str]:
    """`operator_config` as `python -m tools.render` takes it (`--config KEY=VALUE`)."""
    return [argument for key, value in operator_config(stack).items() for argument in ("--config", f"{key}={value}")]


@functools.cache
def committed(stack: str) -> Rendering:
    """One of the project's own stacks, rendered with what its operator sets first (`operator_config`)."""
    return run_stack(stack, settings=operator_config(stack))


def raw_config(stack: str, **sections: Any) -> dict[str, Any]:
    """A fixture stack's config as the settings read it (decoded, no project prefix), with
    top-level sections replaced (None removes one): the input of `parse_settings`."""
    config = load_stack_config(stack, FIXTURE_STACKS_DIR)
    raw = decode_config(lambda key: config.get(f"{PROJECT}:{key}"))
    for key, value in sections.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def with_section(stack: str, section: str, **changes: Any) -> Rendering:
    """A fixture stack rendered with keys of one structured config section replaced."""
    merged = {**(raw_config(stack).get(section) or {}), **changes}
    return run_fixture(stack, {f"{PROJECT}:{section}": json.dumps(merged)})


def settings(rendering: Rendering) -> Settings:
    """The validated settings a rendering ran with (hosts, domains, edges: never spelled out in tests)."""
    return settings_of(rendering.config, rendering.stack)


def ui_url(rendering: Rendering, host: str) -> str:
    """Where users reach a UI of the stack: on 443, or on the node port 30443 behind a NodePort Service."""
    port = ":30443" if settings(rendering).ingress.service_type == "NodePort" else ""
    return f"https://{host}{port}/"


def storage_class(rendering: Rendering) -> str:
    """The StorageClass the stack's volumes are claimed from: the cluster's own, or Longhorn's."""
    return settings(rendering).storage.class_name or STORAGE_CLASS


@pytest.fixture(autouse=True)
def no_ssh_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's SSH agent (`SSH_AUTH_SOCK`) unless it sets one: with an agent the
    program takes no key, and what a test renders must not depend on the shell it runs in."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture(params=MINIKUBE_STACKS)
def minikube_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture(params=[stack for stack in MINIKUBE_STACKS if role_of(stack) == "edge"])
def minikube_edge(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture(params=LONGHORN_STACKS)
def longhorn_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture(params=EXISTING_STACKS)
def existing_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture
def existing_central() -> Rendering:
    return rendered(EXISTING_CENTRAL)


@pytest.fixture
def existing_edge() -> Rendering:
    return rendered(EXISTING_EDGE)


@pytest.fixture(params=EDGE_STACKS)
def edge(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture
def central() -> Rendering:
    return rendered(CENTRAL_STACK)


@pytest.fixture
def reference() -> Path:
    if REFERENCE_MISSING is not None:
        pytest.skip(REFERENCE_MISSING)
    return reference_material.reference_dir()
