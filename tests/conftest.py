"""One offline engine for every test: each stack is rendered once per session and shared."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.engine import Rendering, run_stack  # noqa: E402

STACKS = ("cluster-196", "cluster-197", "cluster-198")
EDGE_STACKS = ("cluster-197", "cluster-198")
CENTRAL_STACK = "cluster-196"
REFERENCE = ROOT.parent / "shared" / "reference"


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
