"""`python -m tools.render`: the offline rendering users review, and `--check` for CI (DESIGN section 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import namespaces, network_policies, traefik
from components.kube import restricted_container_security
from policy.guardrails import POLICIES
from tests import synthetic
from tests.conftest import (
    COMMITTED_STACKS,
    ROOT,
    committed,
    operator_config,
    operator_config_args,
    requires_charts,
    requires_evaluator,
)
from tools import render
from tools.engine import MOCK_PASSWORD, PROJECT, SECRET_PLACEHOLDER_PREFIX, Rendering, run_stack

A_STACK = COMMITTED_STACKS[0]
AN_EDGE = next(stack for stack in COMMITTED_STACKS if committed(stack).outputs["role"] == "edge")
ENTRY_KEYS = {"type", "name", "urn", "parent", "provider", "dependsOn", "protect", "retainOnDelete", "inputs"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.render", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module", params=COMMITTED_STACKS)
def cli_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Any]:
    """One end-to-end run per stack: render into a fresh directory and check."""
    out = tmp_path_factory.mktemp(request.param)
    stack = request.param
    return stack, out, cli("--stack", stack, "--out", str(out), "--check", *operator_config_args(stack))


@requires_charts
def test_render_writes_every_documented_file(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    rendering = committed(stack)
    assert sorted(p.name for p in out.iterdir()) == ["helm", "manifests.yaml", "outputs.json", "resources.json"]
    names = [str(r.inputs["name"]) for r in rendering.helm_releases()]
    expected = {f"{name}.yaml" for name in names} | {f"{name}.manifests.yaml" for name in names}
    assert {p.name for p in (out / "helm").iterdir()} == expected


@requires_charts
def test_chart_manifests_hold_what_helm_installs_with_our_values(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    objects = [d for d in yaml.safe_load_all((out / "helm" / "kube-prometheus-stack.manifests.yaml").read_text()) if d]
    prometheus = next(o for o in objects if o["kind"] == "Prometheus")
    assert prometheus["spec"]["externalLabels"] == {"cluster": stack}, "our values, rendered by the chart"
    assert any(o["kind"] == "CustomResourceDefinition" for o in objects), "CRDs are part of what Helm installs"


def test_resources_json_has_one_entry_per_registered_resource(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    entries = json.loads((out / "resources.json").read_text())
    assert sorted(e["urn"] for e in entries) == sorted(r.urn for r in committed(stack).resources)
    known = {(e["type"], e["name"]) for e in entries}
    for entry in entries:
        assert set(entry) == ENTRY_KEYS
        for ref in [entry["parent"], entry["provider"], *entry["dependsOn"]]:
            assert ref is None or (set(ref) == {"type", "name"} and (ref["type"], ref["name"]) in known), ref
    kubernetes = [e for e in entries if e["type"].startswith("kubernetes:")]
    assert kubernetes
    assert all(e["provider"]["type"] == "pulumi:providers:kubernetes" for e in kubernetes)  # explicit provider


def test_manifests_hold_every_typed_kubernetes_object(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    documents = [d for d in yaml.safe_load_all((out / "manifests.yaml").read_text()) if d]
    assert len(documents) == len(committed(stack).kubernetes_objects())
    for document in documents:
        assert list(document)[:3] == ["apiVersion", "kind", "metadata"]
    kinds = [d["kind"] for d in documents]
    assert kinds[: kinds.count("Namespace")] == ["Namespace"] * kinds.count("Namespace")  # namespaces first


def test_helm_files_hold_chart_repo_version_namespace_and_values(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    for release in committed(stack).helm_releases():
        entry = yaml.safe_load((out / "helm" / f"{release.inputs['name']}.yaml").read_text())
        assert list(entry) == ["chart", "repo", "version", "namespace", "values"]
        assert entry["chart"] == release.inputs["chart"]
        assert entry["repo"] == release.inputs["repositoryOpts"]["repo"]
        assert entry["version"] == release.inputs["version"]
        assert isinstance(entry["values"], dict) and entry["values"]


def test_outputs_are_written_with_secrets_redacted(cli_run: tuple[str, Path, Any]) -> None:
    stack, out, _ = cli_run
    outputs = json.loads((out / "outputs.json").read_text())
    assert set(outputs) == set(committed(stack).outputs)
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["role"] in ("central", "edge")


def test_secrets_in_manifests_keep_their_keys_and_stay_valid_objects(cli_run: tuple[str, Path, Any]) -> None:
    import kubernetes_validate

    _, out, _ = cli_run
    secrets = [d for d in yaml.safe_load_all((out / "manifests.yaml").read_text()) if d and d["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        data = secret.get("stringData") or secret.get("data")
        assert isinstance(data, dict) and data, secret["metadata"]["name"]
        assert set(data.values()) == {"[secret]"}, secret["metadata"]["name"]
        kubernetes_validate.validate(secret, "1.28", strict=True)


def test_no_secret_reaches_any_file(cli_run: tuple[str, Path, Any]) -> None:
    _, out, _ = cli_run
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert SECRET_PLACEHOLDER_PREFIX not in text, path
            assert MOCK_PASSWORD not in text, path


@requires_charts  # the capacity and schema checks read the cluster as helm renders it
def test_check_prints_the_capacity_report_and_exits_by_findings(cli_run: tuple[str, Path, Any]) -> None:
    stack, _, result = cli_run
    assert "Traceback" not in result.stderr
    assert "Invalid file descriptor" not in result.stderr
    assert f"capacity of {stack}: node " in result.stdout
    assert f"policy pack: {len(POLICIES)} policies ran, 0 violated" in result.stdout.splitlines()
    findings = [line for line in result.stdout.splitlines() if line.split(":", 1)[0] in _validator_names()]
    verdict = result.stdout.strip().splitlines()[-1]
    if findings:
        assert (result.returncode, verdict) == (1, f"check {stack}: {len(findings)} finding(s)")
    else:
        assert (result.returncode, verdict) == (0, f"check {stack}: no findings")


def _validator_names() -> set[str]:
    from tools.validators import validators

    return set(validators())


# --- exit codes ---------------------------------------------------------------------------


def test_bad_config_exits_2_with_the_one_line_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def bad_config(stack: str, **options: Any) -> Rendering:
        return run_stack(stack, {f"{PROJECT}:minikube": json.dumps({"cni": "bridge"})}, **options)

    monkeypatch.setattr(render, "run_stack", bad_config)
    out = str(tmp_path / "out")
    assert render.main(["--stack", A_STACK, "--out", out, "--check", *operator_config_args(A_STACK)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "invalid stack config: thanos-multi-cluster:minikube.cni: Input should be 'calico' or 'cilium' (got 'bridge')\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_unknown_stack_exits_2_with_one_line() -> None:
    result = cli("--stack", "cluster-999", "--check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"no stack file Pulumi.cluster-999.yaml; known stacks: {', '.join(COMMITTED_STACKS)}"
    ]


def test_nothing_to_do_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["--stack", A_STACK]) == 2
    assert "give --out DIR, --check, or both" in capsys.readouterr().err


@requires_charts  # the capacity and schema checks read the cluster as helm renders it
def test_check_exits_1_and_lists_every_finding(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unsized = synthetic.container(imagePullPolice="x", resources={})
    broken = synthetic.rendering(synthetic.kubernetes(synthetic.deployment(containers=[unsized])))
    monkeypatch.setattr(render, "run_stack", lambda stack, **_: broken)
    assert render.main(["--stack", A_STACK, "--check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("capacity of test: ")
    assert "\nkubernetes-schema: Deployment default/app: spec.template.spec.containers[0]: " in out
    assert (
        "\ncapacity: Deployment default/app container app: no CPU request, no memory request, no memory limit\n" in out
    )
    # The policy pack says so too, with the other guardrails the synthetic workload breaks.
    assert f"\npolicy pack: {len(POLICIES)} policies ran, 3 violated\n" in out
    assert "\npolicy-pack: Deployment default/app: containers-have-requests-and-memory-limits: " in out
    assert out.endswith("check test: 5 finding(s)\n")


@requires_charts  # the capacity and schema checks read the cluster as helm renders it
def test_check_exits_0_when_clean(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    guarded = synthetic.container(securityContext=restricted_container_security())
    workload = synthetic.deployment(containers=[guarded])
    workload["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    clean = synthetic.rendering(synthetic.kubernetes(workload))
    monkeypatch.setattr(render, "run_stack", lambda stack, **_: clean)
    assert render.main(["--stack", A_STACK, "--check"]) == 0
    out = capsys.readouterr().out
    assert "Deployment default/app container app" in out  # the capacity report is printed either way
    assert out.endswith("check test: no findings\n")


# --- file details -------------------------------------------------------------------------


def test_two_renderings_of_a_stack_are_identical(tmp_path: Path) -> None:
    render.write(run_stack(A_STACK, settings=operator_config(A_STACK)), tmp_path / "a")
    render.write(run_stack(A_STACK, settings=operator_config(A_STACK)), tmp_path / "b")
    for path in (tmp_path / "a").rglob("*.*"):
        assert path.read_text() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_text(), path


def test_a_removed_release_does_not_linger(tmp_path: Path) -> None:
    (tmp_path / "helm").mkdir()
    (tmp_path / "helm" / "gone.yaml").write_text("chart: gone\n")
    render.write(synthetic.rendering(synthetic.release("traefik", "41.3.0", {})), tmp_path)
    assert "gone.yaml" not in {p.name for p in (tmp_path / "helm").iterdir()}
    assert "traefik.yaml" in {p.name for p in (tmp_path / "helm").iterdir()}


def test_urns_become_type_and_name() -> None:
    urn = "urn:pulumi:s::p::pulumi:pulumi:Stack$thanos-multi-cluster:storage:Longhorn$kubernetes:core/v1:Secret::a::b"
    assert render.urn_ref(urn) == {"type": "kubernetes:core/v1:Secret", "name": "a::b"}
    assert render.urn_ref(None) is None


def test_multi_line_strings_stay_readable() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"f": "a\nb\n"}}
    text = render.manifests(synthetic.rendering(synthetic.kubernetes(config_map)))
    assert "  f: |\n    a\n    b\n" in text
    assert yaml.safe_load(text)["data"]["f"] == "a\nb\n"


def test_the_cli_closes_the_event_loops_worker_threads_left_behind() -> None:
    # The loops Pulumi's mock monitor creates in worker threads, left to the garbage collector at
    # exit, can print "Invalid file descriptor: -1"; the CLI closes them before exiting.
    script = (
        "import asyncio, threading\n"
        "from tools import render\n"
        "loops = []\n"
        "def work():\n"
        "    loop = asyncio.new_event_loop(); asyncio.set_event_loop(loop); loops.append(loop)\n"
        "    loop.run_until_complete(asyncio.sleep(0))\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "render.close_idle_event_loops()\n"
        "assert all(loop.is_closed() for loop in loops)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


# --- what the real engine and node enforce, put back one at a time ------------------------


def check_edge(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = render.main(["--stack", AN_EDGE, "--check", *operator_config_args(AN_EDGE)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_refuses_a_default_provider_the_project_disables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    every_package = {"pulumi:disable-default-providers": json.dumps(["*"])}
    monkeypatch.setattr(render, "run_stack", lambda stack, **options: run_stack(stack, dict(every_package), **options))
    code, output = check_edge(capsys)
    assert code == 2
    assert output.strip().startswith("Default provider for 'command' disabled.")
    assert len(output.strip().splitlines()) == 1


@requires_charts
def test_check_finds_a_host_network_listener_on_the_api_servers_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(traefik, "HTTPS_PORT", 8443)  # the chart's default for the websecure entrypoint
    code, output = check_edge(capsys)
    assert code == 1
    assert "host port 8443 is the node's kube-apiserver" in output


@requires_charts
@requires_evaluator
def test_check_finds_a_pod_above_its_namespaces_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(namespaces.ENFORCED_LEVEL, namespaces.FLUENT_BIT, "baseline")
    code, output = check_edge(capsys)
    assert code == 1
    assert "pod-security: DaemonSet fluent-bit/fluent-bit (helm release fluent-bit): " in output
    assert "namespace fluent-bit enforces baseline: hostPath volumes" in output


@requires_charts
def test_check_finds_a_blocked_required_flow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(network_policies, "ALERTMANAGER", {"app": "alertmanager"})  # a label the pods lack
    code, output = check_edge(capsys)
    assert code == 1
    assert "network-flows: NetworkPolicies: required flow blocked: " in output
    assert "alertmanager-kps-alertmanager-0:9093/TCP (send alerts)" in output


def test_without_the_reference_material_check_skips_what_needs_it_and_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("THANOS_MC_REFERENCE", str(tmp_path / "nowhere"))
    assert render.main(["--stack", A_STACK, "--check", *operator_config_args(A_STACK)]) == 0
    out = capsys.readouterr().out
    skipped = next(line for line in out.splitlines() if line.startswith("skipped "))
    assert "helm-values" in skipped and "network-flows" in skipped and "promtool" not in skipped
    assert "run `venv/bin/python -m tools.reference fetch" in skipped
    assert out.endswith(f"check {A_STACK}: no findings\n")
