"""The CI definitions (ours and the users' workflow) follow the stack files and the README."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.conftest import COMMITTED_STACKS, ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"


def steps(job: str) -> list[dict[str, str]]:
    return list(yaml.safe_load(WORKFLOW.read_text())["jobs"][job]["steps"])


def test_the_workflow_lists_the_stacks_from_the_stack_files() -> None:
    (listing,) = [step for step in steps("stacks") if step.get("id") == "list"]
    script = listing["run"].strip().removeprefix("python3 -c '").rsplit("'", 1)[0]
    printed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(printed.stdout.strip().removeprefix("list=")) == list(COMMITTED_STACKS)


def test_the_workflow_fetches_the_reference_material_and_runs_the_readme_test_command() -> None:
    commands = "\n".join(step.get("run", "") for step in steps("check"))
    assert "venv/bin/python -m tools.reference fetch" in commands
    assert "bash tools/test.sh" in commands
    assert "for file in Pulumi.*.yaml" in commands


def test_no_ci_definition_names_a_stack() -> None:
    for path in (WORKFLOW, ROOT / ".ci" / "run"):
        text = path.read_text()
        for stack in COMMITTED_STACKS:
            assert stack not in text, f"{path.name} names {stack}: loop over Pulumi.*.yaml instead"


def test_ci_runs_the_readme_test_command() -> None:
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "bash tools/test.sh" in readme and "bash tools/test.sh" in ci
