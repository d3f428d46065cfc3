"""MinikubeNode: host prerequisites and `minikube start` with the DESIGN C1/C3 flags."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from components.minikube_node import SCRIPTS, start_variables, with_exports
from components.settings import MinikubeSettings
from tools.engine import Rendering, Secret, secret_placeholder, unwrap

COMMAND = "command:remote:Command"


def start_command(stack: Rendering) -> str:
    return stack.one(COMMAND, f"{stack.stack}-minikube").inputs["create"]


def test_node_starts_with_containerd_runtime_a_real_driver_and_calico(any_stack: Rendering) -> None:
    script = start_command(any_stack)
    assert "export CONTAINER_RUNTIME=containerd" in script
    assert "export DRIVER=none" in script  # C1: containerd is a runtime, not a driver
    assert "export CNI=calico" in script  # C3: a CNI that enforces NetworkPolicy
    assert "export KUBERNETES_VERSION=v1.28.0" in script
    assert f"export APISERVER_FLAG=--apiserver-ips=192.168.101.{any_stack.stack[-3:]}" in script
    assert "export EXTRA_CONFIG=max-pods=110" in script
    assert "--driver=containerd" not in script


def test_kubelet_extra_config_becomes_extra_config_flags(tmp_path: Path) -> None:
    calls = run_start_script(tmp_path, running=False)
    assert "--extra-config=kubelet.max-pods=110" in calls
    assert "--container-runtime=containerd" in calls
    assert "--driver=none" in calls
    assert "--cni=calico" in calls
    assert "--apiserver-ips=192.168.101.197" in calls


def test_a_dns_host_name_goes_into_the_certificate_as_a_name() -> None:
    assert start_variables("node1.lab", MinikubeSettings())["APISERVER_FLAG"] == "--apiserver-names=node1.lab"


def test_kubeconfig_is_a_secret_output_and_secret_in_state(any_stack: Rendering) -> None:
    assert isinstance(any_stack.outputs["kubeconfig"], Secret)
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert "stdout" in start.additional_secret_outputs


def test_node_is_protected_replaced_delete_first_and_reruns_on_change(any_stack: Rendering) -> None:
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert start.protect
    assert start.delete_before_replace
    assert start.inputs["triggers"] and all(isinstance(t, str) for t in start.inputs["triggers"])
    assert "minikube delete" in start.inputs["delete"]


def test_ssh_connection_uses_the_secret_key(any_stack: Rendering) -> None:
    connection = any_stack.one(COMMAND, f"{any_stack.stack}-minikube").inputs["connection"]
    assert isinstance(connection, Secret), "a connection holding the key is secret as a whole"
    assert unwrap(connection)["host"] == f"192.168.101.{any_stack.stack[-3:]}"
    assert unwrap(connection)["privateKey"] == secret_placeholder("sshPrivateKey")


def test_prerequisites_run_before_start(any_stack: Rendering) -> None:
    prerequisites = any_stack.one(COMMAND, f"{any_stack.stack}-host-prerequisites")
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert any_stack.depends_on(start, prerequisites)
    for needed in (
        "containerd",
        "conntrack",
        "open-iscsi",
        "nfs-common",
        "iscsid",
        "vm.max_map_count=262144",
        "crictl",
        "/opt/cni/bin",
    ):
        assert needed in prerequisites.inputs["create"], needed


def test_local_mode_runs_on_the_host_itself() -> None:
    from tools.engine import run_stack

    stack = run_stack("cluster-197", {"thanos-multi-cluster:minikube": '{"mode": "local"}'})
    assert not stack.of_type(COMMAND)
    assert len(stack.of_type("command:local:Command")) == 2


def test_a_changed_kubernetes_version_changes_the_trigger() -> None:
    from tools.engine import run_stack

    before = run_stack("cluster-197").one(COMMAND, "cluster-197-minikube").inputs["triggers"]
    after = run_stack("cluster-197", {"thanos-multi-cluster:minikube": '{"kubernetesVersion": "v1.29.0"}'})
    assert after.one(COMMAND, "cluster-197-minikube").inputs["triggers"] != before


# --- the scripts themselves --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs the Debian package shellcheck")
def test_scripts_pass_shellcheck() -> None:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert len(scripts) == 3
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


FAKE_MINIKUBE = """#!/usr/bin/env bash
# Records every call; behaves like a minikube whose profile is {state}.
echo "$*" >> "{log}"
case "$*" in
  *"status"*) {status} ;;
  *"kubectl -- version"*) echo '{{"serverVersion": {{"gitVersion": "v1.28.0"}}}}' ;;
  *"config view"*) printf 'apiVersion: v1\\nclusters:\\n- cluster:\\n    server: https://10.0.0.1:8443\\n' ;;
  *) echo "minikube says hello" ;;
esac
"""


def run_start_script(tmp_path: Path, running: bool) -> str:
    """Run minikube-start.sh against a fake minikube; return what it was asked to do."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "minikube"
    status = "echo Running" if running else "echo Stopped; exit 7"
    fake.write_text(FAKE_MINIKUBE.format(state="running" if running else "absent", log=log, status=status))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    script = with_exports(
        start_variables("192.168.101.197", MinikubeSettings()), (SCRIPTS / "minikube-start.sh").read_text()
    )
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("apiVersion: v1"), "stdout must hold only the kubeconfig"
    assert "server: https://192.168.101.197:8443" in result.stdout, "server rewritten to the host"
    assert "hello" not in result.stdout
    return log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="the script uses sudo when not root")
def test_start_is_idempotent_on_a_running_node(tmp_path: Path) -> None:
    calls = run_start_script(tmp_path, running=True)
    assert not any(line.startswith("start") for line in calls.splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="the script uses sudo when not root")
def test_minikubes_own_default_storage_class_is_disabled(tmp_path: Path) -> None:
    calls = run_start_script(tmp_path, running=True).splitlines()
    assert "-p minikube addons disable default-storageclass" in calls


@pytest.mark.skipif(os.geteuid() != 0, reason="the script uses sudo when not root")
def test_start_starts_a_node_that_is_not_running(tmp_path: Path) -> None:
    calls = run_start_script(tmp_path, running=False)
    assert any(line.startswith("start -p minikube") for line in calls.splitlines())
