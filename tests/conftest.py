"""One offline engine for every test: each stack is rendered once per session and shared."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.engine import PROJECT, Rendering, load_stack_config, run_stack  # noqa: E402


def stack_names() -> tuple[str, ...]:
    """Every stack of the project: one `Pulumi.<stack>.yaml` each (adding a cluster adds a file)."""
    return tuple(sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in ROOT.glob("Pulumi.*.yaml")))


def role_of(stack: str) -> str:
    return load_stack_config(stack)[f"{PROJECT}:role"]


STACKS = stack_names()
EDGE_STACKS = tuple(stack for stack in STACKS if role_of(stack) == "edge")
CENTRAL_STACK = next(stack for stack in STACKS if role_of(stack) == "central")
REFERENCE = ROOT.parent / "shared" / "reference"


def _charts_missing() -> str | None:
    """Why the charts cannot be rendered here (no helm, no chart packages), or None."""
    from tools import helm

    if helm.helm_binary() is None:
        return helm.INSTALL_HINT
    if not (REFERENCE / "charts" / "packages").is_dir():
        return f"chart packages missing: {REFERENCE / 'charts' / 'packages'}"
    return None


requires_charts = pytest.mark.skipif(_charts_missing() is not None, reason=_charts_missing() or "")
"""For tests that need the charts rendered by the real helm (tools.cluster)."""


def any_stack_name(role: str) -> str:
    """One stack of a role, for tests that need one but not which."""
    return CENTRAL_STACK if role == "central" else EDGE_STACKS[0]


@functools.cache
def rendered(stack: str) -> Rendering:
    """The stack's program as the offline engine records it (cached: the program is deterministic)."""
    return run_stack(stack)


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture(params=EDGE_STACKS)
def edge(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


@pytest.fixture
def central() -> Rendering:
    return rendered(CENTRAL_STACK)


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference material missing: {REFERENCE} (CI has ../shared beside the clone)")
    return REFERENCE
