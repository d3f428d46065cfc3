"""tools.benchmark_render: the line it prints and the config it gives each stack (timing is not tested)."""

from __future__ import annotations

from tools import benchmark_render
from tools.benchmark_render import CA_KEY, Floor, Measurement


def test_the_line_gives_both_medians_and_their_ratio() -> None:
    floors = [Floor(program=2.0, helm=1.0, releases=5), Floor(program=2.2, helm=1.2, releases=5), Floor(3.0, 2.0, 5)]
    line = Measurement("cluster-196", floors, [7.0, 9.0, 8.0]).line()
    assert line == (
        "cluster-196: floor 3.4 s (program 2.2 s, helm template 1.2 s for 5 releases), render --check 8.0 s, "
        "ratio 2.35 (median of 3)"
    )


def test_a_stack_that_leaves_the_minio_ca_to_its_operator_gets_a_throwaway_one() -> None:
    assert benchmark_render._default_config("cluster-196", "PEM") == [f"{CA_KEY}=PEM"]
    assert benchmark_render._default_config("cluster-196", None) == []
