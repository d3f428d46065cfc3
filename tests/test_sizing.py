"""The platform's requests leave room on the node: central at most half of it, an edge at most 40 %.

Counted as `render --check`'s capacity report counts them (tools/validators/capacity.py): every
container we define or a chart runs with our values, the pods the operators create (Prometheus,
Alertmanager, Longhorn's CSI, engine-image and instance-manager pods), the LimitRange's requests for
Longhorn's unsized containers and the CPU Longhorn guarantees its instance manager, against the
whole node of each stack file (`node.*`). The system pods' reserve is not the platform's, and the
init containers and Jobs that run before the steady state are not summed.
"""

from __future__ import annotations

import pytest

from tests.conftest import COMMITTED_STACKS, STACKS, committed, rendered, requires_reference, role_of
from tools.engine import ROOT
from tools.validators import capacity

GOAL = {"central": 0.5, "edge": 0.4}
"""The largest share of the node's CPU and memory the platform may request, by role."""


def assert_within_goal(report: capacity.Capacity, role: str) -> None:
    for attribute in ("cpu_request", "memory_request"):
        share = report.node_share(attribute)
        assert share <= GOAL[role], f"{report.stack} ({role}): {attribute} {share:.1%} of the node\n{report.report()}"


@requires_reference
@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_each_committed_stack_requests_at_most_its_share_of_the_node(stack: str) -> None:
    assert_within_goal(capacity.capacity(committed(stack)), role_of(stack, ROOT))


@requires_reference
@pytest.mark.parametrize("stack", STACKS)
def test_each_fixture_stack_requests_at_most_its_share_of_the_node(stack: str) -> None:
    assert_within_goal(capacity.capacity(rendered(stack)), role_of(stack))


@requires_reference
def test_longhorns_unsized_containers_and_instance_manager_are_counted() -> None:
    """Ten containers Longhorn runs get the LimitRange's requests; the instance manager its guaranteed
    share of the node's CPUs (Longhorn's default 12 %): together about a quarter of the platform's CPU."""
    report = capacity.capacity(committed(COMMITTED_STACKS[0]))
    longhorn = [entry for entry in report.entries if entry.source.startswith("helm release longhorn ")]
    unsized = [entry for entry in longhorn if "(LimitRange default)" in entry.source]
    assert sum(entry.count for entry in unsized) == 10
    assert {entry.memory_limit for entry in unsized} == {None}, "the LimitRange sets no limit, deliberately"
    (manager,) = [entry for entry in longhorn if "instance-manager" in entry.source]
    assert manager.cpu_request == pytest.approx(report.node.cpus * 0.12)
