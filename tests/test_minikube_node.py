"""MinikubeNode: host prerequisites and `minikube start`, converged in place on every change.

The program-level tests read the stacks' rendering; the script-level tests run the real scripts
against fake `minikube`, `dpkg`, `containerd`, `systemctl`... on PATH, with the paths they write
(HOST_ROOT for /etc, NODE_STATE_DIR for the recorded start arguments) in a scratch directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import minikube_node, versions
from components.minikube_node import (
    PROFILE,
    SCRIPTS,
    identity,
    prerequisite_variables,
    script,
    start_variables,
    with_exports,
)
from components.settings import PROJECT, MinikubeSettings, SettingsError
from tests.conftest import EDGE, EXISTING_STACKS, rendered, run_fixture, settings
from tools.engine import Rendering, Secret, secret_placeholder, unwrap
from tools.plan import Step, plan

COMMAND = "command:remote:Command"
LOCAL_COMMAND = "command:local:Command"


@pytest.fixture
def any_stack(minikube_stack: Rendering) -> Rendering:
    """Every Minikube stack: a stack for an existing cluster has no node (below)."""
    return minikube_stack


@pytest.fixture
def edge(minikube_edge: Rendering) -> Rendering:
    return minikube_edge


@pytest.mark.parametrize("stack", EXISTING_STACKS)
def test_an_existing_cluster_runs_no_host_command_and_takes_no_ssh_key(stack: str) -> None:
    existing = rendered(stack)
    assert [r.name for r in existing.resources if r.type.startswith("command:")] == []
    assert [r for r in existing.resources if r.type == "thanos-multi-cluster:minikube:MinikubeNode"] == []
    with pytest.raises(SettingsError, match=r"sshPrivateKey is set on a stack for an existing cluster"):
        run_fixture(stack, {f"{PROJECT}:sshPrivateKey": "key"})


# The address the script-level tests start a node on (cluster-197's, like the stack file's).
ADDRESS = "192.168.101.197"


def start_command(stack: Rendering) -> str:
    return str(stack.one(COMMAND, f"{stack.stack}-minikube").inputs["create"])


def node_step(before: Rendering, after: Rendering) -> Step:
    """What the engine would do to the node going from one rendering to the other."""
    return plan(before, after).step(COMMAND, f"{before.stack}-minikube")


def host(stack: Rendering) -> str:
    return stack.config[f"{PROJECT}:host"]


def another_host(stack: Rendering) -> str:
    """An address in the stack's host network that is not its host."""
    return host(stack).rsplit(".", 1)[0] + ".250"


def node_ip(stack: Rendering) -> str:
    """The host's IP as the stack configures it: `address` when `host` is a DNS name."""
    return stack.config.get(f"{PROJECT}:address") or host(stack)


def minikube_config(stack: Rendering) -> dict[str, Any]:
    value = stack.config.get(f"{PROJECT}:minikube", "{}")
    return dict(json.loads(value))


def with_minikube(stack: Rendering, **changes: Any) -> Rendering:
    """The stack rendered again with some of its minikube settings changed."""
    config = minikube_config(stack) | changes
    return run_fixture(stack.stack, {f"{PROJECT}:minikube": json.dumps(config)})


# --- what the program asks for ------------------------------------------------------------


def test_node_starts_with_containerd_runtime_a_real_driver_and_calico(any_stack: Rendering) -> None:
    script = start_command(any_stack)
    assert "export CONTAINER_RUNTIME=containerd" in script
    assert "export DRIVER=none" in script  # containerd is a runtime, not a driver
    assert "export CNI=calico" in script  # a CNI that enforces NetworkPolicy
    assert f"export KUBERNETES_VERSION={versions.KUBERNETES}" in script
    assert f"export APISERVER_FLAG=--apiserver-ips={host(any_stack)}" in script
    assert "export EXTRA_CONFIG=max-pods=110" in script
    assert "--driver=containerd" not in script


def test_the_kubelet_node_ip_is_the_configured_host_ip(any_stack: Rendering) -> None:
    assert f"export NODE_IP={node_ip(any_stack)}\n" in start_command(any_stack)


def test_a_dns_host_name_goes_into_the_certificate_and_the_ip_becomes_the_node_ip() -> None:
    variables = start_variables("node1.lab", ADDRESS, MinikubeSettings())
    assert variables["APISERVER_FLAG"] == "--apiserver-names=node1.lab"
    assert variables["HOST_ADDRESS"] == "node1.lab"
    assert variables["NODE_IP"] == ADDRESS


def test_kubeconfig_is_a_secret_output_and_secret_in_state(any_stack: Rendering) -> None:
    assert isinstance(any_stack.outputs["kubeconfig"], Secret)
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert "stdout" in start.additional_secret_outputs


def test_a_nodes_identity_is_its_host_and_profile_in_triggers(any_stack: Rendering) -> None:
    """pulumi-command replaces a command when its `triggers` change; nothing else replaces it."""
    for step in ("host-prerequisites", "minikube"):
        command = any_stack.one(COMMAND, f"{any_stack.stack}-{step}")
        assert command.inputs["triggers"] == [{"host": host(any_stack), "profile": PROFILE}]
        assert not isinstance(command.inputs["triggers"], Secret), "a secret diffs as one value: keep it plain"
        assert "triggers" not in command.ignore_changes, "an ignored identity would never replace the node"
        assert not any(path.startswith("connection") for path in command.replace_on_changes), (
            "the connection is secret as a whole: a path inside it never matches the engine's diff"
        )
        assert "update" not in command.inputs, "without an update command, a changed create runs again in place"


def test_a_replacement_deletes_the_old_profile_first_and_protect_guards_the_node(any_stack: Rendering) -> None:
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert start.protect
    assert start.delete_before_replace
    assert "minikube delete" in start.inputs["delete"]
    prerequisites = any_stack.one(COMMAND, f"{any_stack.stack}-host-prerequisites")
    assert not prerequisites.protect, "the prerequisites hold no state: a new host gets its own"
    assert not prerequisites.delete_before_replace
    assert "delete" not in prerequisites.inputs


def test_a_new_host_replaces_the_node_which_protect_refuses(edge: Rendering) -> None:
    moved = run_fixture(edge.stack, {f"{PROJECT}:host": another_host(edge)})
    step = node_step(edge, moved)
    assert (step.op, step.protected) == ("replace", True)
    assert {reason.partition("[")[0] for reason in step.replaced_by} == {"triggers"}
    assert any(f"{edge.stack}-minikube" in refusal for refusal in plan(edge, moved).refusals())


def test_a_new_host_gets_its_prerequisites_run_there(edge: Rendering) -> None:
    moved = run_fixture(edge.stack, {f"{PROJECT}:host": another_host(edge)})
    step = plan(edge, moved).step(COMMAND, f"{edge.stack}-host-prerequisites")
    assert step.op == "replace", "created anew, so its create runs on the new host"
    assert not step.protected


def test_a_changed_kubelet_setting_updates_the_node_in_place(edge: Rendering) -> None:
    settings = dict(minikube_config(edge).get("extraKubeletConfig", {}))
    changed = with_minikube(edge, extraKubeletConfig=settings | {"max-pods": "120"})
    assert node_step(edge, changed).op == "update"
    assert "export EXTRA_CONFIG=max-pods=120" in start_command(changed)


def test_a_changed_kubernetes_version_updates_the_node_in_place(edge: Rendering) -> None:
    changed = with_minikube(edge, kubernetesVersion="v1.35.2")
    assert node_step(edge, changed).op == "update"
    assert "export KUBERNETES_VERSION=v1.35.2" in start_command(changed)


@pytest.mark.parametrize(
    ("name", "step"), [("host-prerequisites.sh", "host-prerequisites"), ("minikube-start.sh", "minikube")]
)
def test_a_changed_script_runs_again_in_place(
    edge: Rendering, name: str, step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed_scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, changed_scripts)
    (changed_scripts / name).write_text(script(name) + "# changed\n")
    monkeypatch.setattr(minikube_node, "SCRIPTS", changed_scripts)
    result = plan(edge, run_fixture(edge.stack))
    changed = result.step(COMMAND, f"{edge.stack}-{step}")
    assert (changed.op, changed.changed) == ("update", ("create",))
    assert result.refusals() == []


@pytest.mark.parametrize(
    "secrets",
    [{"sshPrivateKey": "another-key"}, {"sshPrivateKeyPassword": "a passphrase"}],
    ids=["new key", "passphrase added"],
)
def test_new_ssh_credentials_update_the_node_in_place(edge: Rendering, secrets: dict[str, str]) -> None:
    changed = run_fixture(edge.stack, {f"{PROJECT}:{key}": value for key, value in secrets.items()})
    result = plan(edge, changed)
    for step in ("host-prerequisites", "minikube"):
        assert result.step(COMMAND, f"{edge.stack}-{step}").op == "update", step
    assert result.refusals() == []


def test_ssh_connection_uses_the_secret_key(any_stack: Rendering) -> None:
    connection = any_stack.one(COMMAND, f"{any_stack.stack}-minikube").inputs["connection"]
    assert isinstance(connection, Secret), "a connection holding the key is secret as a whole"
    assert unwrap(connection)["host"] == host(any_stack)
    assert unwrap(connection)["privateKey"] == secret_placeholder("sshPrivateKey")
    assert "privateKeyPassword" not in unwrap(connection)


# An ed25519 host key as `ssh-keyscan` prints it (after the host name): type, then its wire encoding.
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def unpinned_warnings(caplog: pytest.LogCaptureFixture, stack: Rendering) -> set[str]:
    """The unpinned-host-key warnings about this stack's host (an edge also renders central)."""
    return {r.getMessage() for r in caplog.records if f"SSH host key of {host(stack)} is not pinned" in r.getMessage()}


def test_a_pinned_host_key_is_the_only_one_the_connection_accepts(caplog: pytest.LogCaptureFixture) -> None:
    unpinned = rendered(EDGE)
    caplog.clear()
    with caplog.at_level("WARNING"):
        pinned = with_minikube(unpinned, sshHostKey=HOST_KEY)
    for step in ("host-prerequisites", "minikube"):
        assert unwrap(pinned.one(COMMAND, f"{EDGE}-{step}").inputs["connection"])["hostKey"] == HOST_KEY
    assert unpinned_warnings(caplog, pinned) == set()


def test_an_unpinned_host_key_is_said_at_every_preview_with_how_to_pin_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        stack = run_fixture(EDGE)
    (warning,) = unpinned_warnings(caplog, stack)
    assert f"SSH host key of {host(stack)} is not pinned ({PROJECT}:minikube.sshHostKey)" in warning
    assert f"ssh-keyscan -t ed25519 {host(stack)}" in warning and "man in the middle" in warning
    assert "hostKey" not in unwrap(stack.one(COMMAND, f"{EDGE}-minikube").inputs["connection"])


@pytest.mark.parametrize(
    ("key", "refusal"),
    [
        (f"10.20.0.11 {HOST_KEY}", "drop the host name in front"),
        ("ssh-ed25519", "must be `<type> <base64>`"),
        ("ssh-ed25519 not-base64!", "not base64"),
        (HOST_KEY.replace("ssh-ed25519", "ecdsa-sha2-nistp256"), "not of type ecdsa-sha2-nistp256"),
    ],
)
def test_a_host_key_pulumi_command_could_not_read_is_refused(key: str, refusal: str) -> None:
    with pytest.raises(SettingsError, match=rf"minikube\.sshHostKey: .*{re.escape(refusal)}"):
        with_minikube(rendered(EDGE), sshHostKey=key)


def test_the_kubeconfig_is_neither_logged_nor_offered_to_sshd(any_stack: Rendering) -> None:
    """The start command's stdout is the kubeconfig, with the cluster's client key."""
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube").inputs
    assert start["logging"] == "stderr"
    for step in ("host-prerequisites", "minikube"):
        command = any_stack.one(COMMAND, f"{any_stack.stack}-{step}").inputs
        assert command["addPreviousOutputInEnv"] is False, f"{step}: PULUMI_COMMAND_STDOUT would carry the last output"
    assert any_stack.one(COMMAND, f"{any_stack.stack}-host-prerequisites").inputs["logging"] == "stdoutAndStderr"


def test_an_encrypted_key_is_opened_with_its_passphrase() -> None:
    stack = run_fixture(EDGE, {f"{PROJECT}:sshPrivateKeyPassword": "a passphrase"})
    for step in ("host-prerequisites", "minikube"):
        connection = stack.one(COMMAND, f"{EDGE}-{step}").inputs["connection"]
        assert isinstance(connection, Secret)
        assert unwrap(connection)["privateKeyPassword"] == "a passphrase"


def test_a_passphrase_without_its_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/agent.sock")
    overrides = {f"{PROJECT}:sshPrivateKey": None, f"{PROJECT}:sshPrivateKeyPassword": "a passphrase"}
    with pytest.raises(SettingsError, match="sshPrivateKeyPassword is set without sshPrivateKey") as error:
        run_fixture(EDGE, overrides)
    assert "\n" not in str(error.value)


def test_without_a_key_the_ssh_agent_authenticates(monkeypatch: pytest.MonkeyPatch) -> None:
    socket = "/run/user/1000/agent-1234.sock"
    monkeypatch.setenv("SSH_AUTH_SOCK", socket)
    stack = run_fixture(EDGE, {f"{PROJECT}:sshPrivateKey": None})
    for step in ("host-prerequisites", "minikube"):
        connection = unwrap(stack.one(COMMAND, f"{EDGE}-{step}").inputs["connection"])
        assert connection["host"] == host(stack)
        assert "privateKey" not in connection and "privateKeyPassword" not in connection
        assert "agentSocketPath" not in connection, "pulumi-command reads SSH_AUTH_SOCK itself"
    assert socket not in json.dumps([unwrap(r.inputs) for r in stack.resources], default=str)


def test_a_new_agent_socket_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket path changes with every login: it must not run the node scripts again."""
    overrides: dict[str, str | None] = {f"{PROJECT}:sshPrivateKey": None}
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-AAAA/agent.100")
    before = run_fixture(EDGE, overrides)
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-BBBB/agent.200")
    after = run_fixture(EDGE, overrides)
    for step in ("host-prerequisites", "minikube"):
        assert plan(before, after).step(COMMAND, f"{EDGE}-{step}").op == "same"


def test_without_a_key_or_an_agent_both_ways_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(SettingsError, match=r"sshPrivateKey is required when minikube\.mode is ssh") as error:
        run_fixture(EDGE, {f"{PROJECT}:sshPrivateKey": None})
    message = str(error.value)
    assert "\n" not in message
    assert "pulumi config set --secret sshPrivateKey" in message
    assert "ssh-add" in message and "SSH_AUTH_SOCK" in message


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
        "net.ipv4.ip_forward=1",
        "vm.max_map_count=262144",
        "fs.inotify.max_user_instances=8192",
        "fs.inotify.max_user_watches=524288",
        "multipathd",
        "crictl",
        "/opt/cni/bin",
        f"export CRICTL_VERSION={versions.CRICTL}",
        f"export CNI_PLUGINS_VERSION={versions.CNI_PLUGINS}",
    ):
        assert needed in prerequisites.inputs["create"], needed


def test_prerequisites_are_told_the_oldest_containerd_the_kubernetes_version_supports(any_stack: Rendering) -> None:
    prerequisites = str(any_stack.one(COMMAND, f"{any_stack.stack}-host-prerequisites").inputs["create"])
    minimum = settings(any_stack).minikube_node.minimum_containerd_version
    assert f"export CONTAINERD_MINIMUM_VERSION={minimum}\n" in prerequisites
    assert f"export KUBERNETES_VERSION={settings(any_stack).minikube_node.kubernetes_version}\n" in prerequisites


@pytest.mark.parametrize(("kubernetes", "containerd"), [("v1.35.2", "1.7.0"), ("v1.36.3", "2.0.0")])
def test_kubernetes_1_36_needs_containerd_2_and_1_35_still_takes_1_7(kubernetes: str, containerd: str) -> None:
    assert MinikubeSettings(kubernetes_version=kubernetes).minimum_containerd_version == containerd


def test_local_mode_runs_on_the_host_itself() -> None:
    stack = run_fixture(EDGE, {f"{PROJECT}:minikube": '{"mode": "local"}'})
    assert not stack.of_type(COMMAND)
    commands = stack.of_type(LOCAL_COMMAND)
    assert len(commands) == 2
    assert all(command.inputs["triggers"] == identity(host(stack)) for command in commands)


def test_in_local_mode_too_a_new_host_replaces_the_node() -> None:
    local_mode = {f"{PROJECT}:minikube": '{"mode": "local"}'}
    before = run_fixture(EDGE, local_mode)
    moved = run_fixture(EDGE, local_mode | {f"{PROJECT}:host": another_host(before)})
    result = plan(before, moved)
    assert result.step(LOCAL_COMMAND, f"{EDGE}-minikube").op == "replace"
    assert result.step(LOCAL_COMMAND, f"{EDGE}-host-prerequisites").op == "replace"
    assert any(f"{EDGE}-minikube" in refusal for refusal in result.refusals())


# --- the scripts themselves --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs the Debian package shellcheck")
def test_scripts_pass_shellcheck() -> None:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert len(scripts) == 3
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


class FakeHost:
    """A scratch host: fake commands on PATH that log their calls, and a root for /etc files."""

    def __init__(self, base: Path) -> None:
        self.bin = base / "bin"
        self.root = base / "root"
        self.state = base / "state"
        self.log = base / "calls.log"
        self.env: dict[str, str] = {}
        self.bin.mkdir()
        self.root.mkdir()
        self.log.touch()
        # The scripts run as an ordinary user, through a sudo that runs the command as it is:
        # the same path whether or not the tests run as root.
        self.fake("id", 'if [ "$1" = -u ]; then echo 1000; else exec /usr/bin/id "$@"; fi', logged=False)
        self.fake("sudo", 'if [ "$1" = -E ]; then shift; fi\nexec "$@"')

    def fake(self, name: str, body: str, logged: bool = True) -> None:
        record = f'echo "{name} $*" >> "{self.log}"\n' if logged else ""
        path = self.bin / name
        path.write_text(f"#!/usr/bin/env bash\n{record}{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)

    def calls(self, name: str) -> list[str]:
        prefix = f"{name} "
        return [line.removeprefix(prefix) for line in self.log.read_text().splitlines() if line.startswith(prefix)]

    def etc(self, relative: str) -> Path:
        return self.root / "etc" / relative

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run script text the way the component does: fed to `bash -s` on stdin."""
        env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "HOST_ROOT": str(self.root),
            "NODE_STATE_DIR": str(self.state),
            **self.env,
        }
        return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, env=env)

    def prerequisite(self, commands: str) -> subprocess.CompletedProcess[str]:
        """Run `commands` with host-prerequisites.sh sourced (its functions, not its main)."""
        return self.run(f"source {SCRIPTS / 'host-prerequisites.sh'}\n{commands}\n")


@pytest.fixture
def fake_host(tmp_path: Path) -> Iterator[FakeHost]:
    yield FakeHost(tmp_path)


# --- minikube-start.sh -------------------------------------------------------------------

FAKE_MINIKUBE_TEMPLATE = """
case "$*" in
  *" status "*) if [ "${FAKE_RUNNING:-no}" = yes ]; then echo Running; else echo Stopped; exit 7; fi ;;
  *"kubectl -- version"*) echo "{\\"serverVersion\\": {\\"gitVersion\\": \\"${FAKE_VERSION:-KUBERNETES}\\"}}" ;;
  *"config view"*) printf 'apiVersion: v1\\nclusters:\\n- cluster:\\n    server: https://10.0.0.1:8443\\n' ;;
  "start "*) echo "minikube says hello"; exit "${FAKE_START_RC:-0}" ;;
  *) echo "minikube says hello" ;;
esac
"""
FAKE_MINIKUBE = FAKE_MINIKUBE_TEMPLATE.replace("KUBERNETES", versions.KUBERNETES)


def start_script(minikube: MinikubeSettings | None = None) -> str:
    settings = minikube or MinikubeSettings()
    return with_exports(start_variables(ADDRESS, ADDRESS, settings), (SCRIPTS / "minikube-start.sh").read_text())


# systemd as a fresh none-driver node has it: minikube started the kubelet but did not enable it.
FAKE_SYSTEMCTL = 'if [ "$1" = is-enabled ]; then exit "${FAKE_KUBELET_ENABLED_RC:-1}"; fi'


def run_start(fake_host: FakeHost, running: bool, minikube: MinikubeSettings | None = None) -> list[str]:
    """Run minikube-start.sh against the fake minikube; return the `start` calls it made."""
    fake_host.fake("minikube", FAKE_MINIKUBE)
    fake_host.fake("systemctl", FAKE_SYSTEMCTL)
    fake_host.env["FAKE_RUNNING"] = "yes" if running else "no"
    before = len(fake_host.calls("minikube"))
    result = fake_host.run(start_script(minikube))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("apiVersion: v1"), "stdout must hold only the kubeconfig"
    assert f"server: https://{ADDRESS}:8443" in result.stdout, "server rewritten to the host"
    assert "hello" not in result.stdout
    calls = fake_host.calls("minikube")[before:]
    assert not any(" delete" in call for call in calls), "the start script never deletes"
    return [call for call in calls if call.startswith("start ")]


def recorded_arguments(fake_host: FakeHost) -> list[str]:
    return (fake_host.state / f"{PROFILE}.start-args").read_text().splitlines()


def test_a_node_that_is_not_running_is_started_with_the_requested_flags(fake_host: FakeHost) -> None:
    [start] = run_start(fake_host, running=False)
    assert start.startswith(f"start -p {PROFILE} ")
    for flag in (
        "--driver=none",
        "--container-runtime=containerd",
        "--cni=calico",
        f"--kubernetes-version={versions.KUBERNETES}",
        f"--apiserver-ips={ADDRESS}",
        f"--extra-config=kubelet.node-ip={ADDRESS}",
        "--extra-config=kubelet.max-pods=110",
    ):
        assert flag in start.split(), flag


def test_a_start_records_its_arguments_on_the_host(fake_host: FakeHost) -> None:
    [start] = run_start(fake_host, running=False)
    assert recorded_arguments(fake_host) == start.split()


def test_a_running_node_with_the_recorded_arguments_is_left_alone(fake_host: FakeHost) -> None:
    run_start(fake_host, running=False)
    assert run_start(fake_host, running=True) == []


def test_a_changed_kubelet_setting_starts_the_running_node_again_with_it(fake_host: FakeHost) -> None:
    run_start(fake_host, running=False)
    [start] = run_start(fake_host, running=True, minikube=MinikubeSettings(extra_kubelet_config={"max-pods": "150"}))
    assert "--extra-config=kubelet.max-pods=150" in start.split()
    assert "--extra-config=kubelet.max-pods=150" in recorded_arguments(fake_host)
    assert run_start(fake_host, running=True, minikube=MinikubeSettings(extra_kubelet_config={"max-pods": "150"})) == []


def test_a_running_node_without_recorded_arguments_is_started_again(fake_host: FakeHost) -> None:
    assert len(run_start(fake_host, running=True)) == 1


def test_a_running_node_of_another_kubernetes_version_is_started_again(fake_host: FakeHost) -> None:
    run_start(fake_host, running=False)
    fake_host.env["FAKE_VERSION"] = "v1.35.2"
    [start] = run_start(fake_host, running=True)
    assert f"--kubernetes-version={versions.KUBERNETES}" in start.split()


def test_a_failed_start_fails_records_nothing_and_deletes_nothing(fake_host: FakeHost) -> None:
    fake_host.fake("minikube", FAKE_MINIKUBE)
    fake_host.env["FAKE_START_RC"] = "1"
    result = fake_host.run(start_script())
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"minikube delete -p {PROFILE}" in result.stderr, "the operator is told how to recreate the node"
    assert not (fake_host.state / f"{PROFILE}.start-args").exists()
    assert not any(" delete" in call for call in fake_host.calls("minikube"))


def kubelet_enabled(fake_host: FakeHost) -> int:
    """How often the script enabled the kubelet."""
    return fake_host.calls("systemctl").count("enable kubelet")


def test_a_started_node_has_its_kubelet_enabled_so_that_it_comes_back_after_a_reboot(fake_host: FakeHost) -> None:
    run_start(fake_host, running=False)
    assert kubelet_enabled(fake_host) == 1


def test_a_running_node_left_alone_has_its_kubelet_enabled_too(fake_host: FakeHost) -> None:
    """A node started by an earlier version of the script gets it on its next `pulumi up`."""
    run_start(fake_host, running=False)
    assert run_start(fake_host, running=True) == []
    assert kubelet_enabled(fake_host) == 2


def test_an_enabled_kubelet_is_left_as_it_is(fake_host: FakeHost) -> None:
    fake_host.env["FAKE_KUBELET_ENABLED_RC"] = "0"
    run_start(fake_host, running=False)
    assert kubelet_enabled(fake_host) == 0


def test_a_failed_start_enables_no_kubelet(fake_host: FakeHost) -> None:
    fake_host.fake("minikube", FAKE_MINIKUBE)
    fake_host.fake("systemctl", FAKE_SYSTEMCTL)
    fake_host.env["FAKE_START_RC"] = "1"
    assert fake_host.run(start_script()).returncode != 0
    assert kubelet_enabled(fake_host) == 0


def test_only_the_none_driver_runs_the_kubelet_on_the_host(fake_host: FakeHost) -> None:
    run_start(fake_host, running=False, minikube=MinikubeSettings(driver="docker"))
    assert fake_host.calls("systemctl") == []


def test_minikubes_own_default_storage_class_is_disabled(fake_host: FakeHost) -> None:
    run_start(fake_host, running=True)
    calls = fake_host.calls("minikube")
    assert f"-p {PROFILE} addons disable default-storageclass" in calls
    assert f"-p {PROFILE} addons disable storage-provisioner" in calls


# --- host-prerequisites.sh: containerd ---------------------------------------------------

# Excerpts of `containerd config default`, in the layouts the rewrite has to handle.
CONTAINERD_1_7_DEBIAN = """disabled_plugins = []
imports = []
oom_score = 0
root = "/var/lib/containerd"
state = "/run/containerd"
version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.default_runtime]
        runtime_type = ""

        [plugins."io.containerd.grpc.v1.cri".containerd.default_runtime.options]

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            NoNewKeyring = false
            Root = ""
            ShimCgroup = ""
            SystemdCgroup = false

  [plugins."io.containerd.internal.v1.opt"]
    path = "/opt/containerd"
"""

CONTAINERD_2_0 = """version = 3
root = '/var/lib/containerd'
state = '/run/containerd'
disabled_plugins = []

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          cni_conf_dir = ''
          sandboxer = 'podsandbox'

          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            BinaryName = ''
            NoNewKeyring = false
            Root = ''
            ShimCgroup = ''

    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dir = '/opt/cni/bin'
      conf_dir = '/etc/cni/net.d'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
"""

# containerd 2.1 lists the CNI directories as `bin_dirs`.
CONTAINERD_2_1 = CONTAINERD_2_0.replace(
    "      bin_dir = '/opt/cni/bin'\n", "      bin_dir = ''\n      bin_dirs = ['/usr/lib/cni']\n"
)

# What Docker's containerd.io package installs as /etc/containerd/config.toml.
DOCKER_CONTAINERD_IO = """#   Copyright 2018-2022 Docker Inc.
disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
"""


def rewrite(fake_host: FakeHost, default_config: str) -> dict[str, Any]:
    result = fake_host.run(
        f"source {SCRIPTS / 'host-prerequisites.sh'}\nrewrite_containerd_config <<'CONFIG'\n{default_config}CONFIG\n"
    )
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


def test_containerd_1_x_config_gets_systemd_cgroups_and_the_cni_directory(fake_host: FakeHost) -> None:
    config = rewrite(fake_host, CONTAINERD_1_7_DEBIAN)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["cni"]["bin_dir"] == "/opt/cni/bin"
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.8", "the rest of the defaults stays"
    assert "SystemdCgroup" not in cri["containerd"]["default_runtime"]["options"], "only runc's options change"
    assert config["version"] == 2


def test_containerd_2_0_config_gets_a_systemd_cgroup_line_it_lacked(fake_host: FakeHost) -> None:
    config = rewrite(fake_host, CONTAINERD_2_0)
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["ShimCgroup"] == ""
    assert runtime["cni"]["bin_dir"] == "/opt/cni/bin"
    assert config["version"] == 3


def test_containerd_2_1_config_lists_only_the_cni_directory_in_bin_dirs(fake_host: FakeHost) -> None:
    cni = rewrite(fake_host, CONTAINERD_2_1)["plugins"]["io.containerd.cri.v1.runtime"]["cni"]
    assert cni["bin_dirs"] == ["/opt/cni/bin"]
    assert "bin_dir" not in cni, "containerd refuses bin_dir and bin_dirs together"


def fake_containerd(fake_host: FakeHost, default_config: str) -> None:
    fake_host.fake("containerd", f"if [ \"$*\" = 'config default' ]; then cat <<'CONFIG'\n{default_config}CONFIG\nfi")
    fake_host.fake("systemctl", "")


def test_a_missing_containerd_config_is_written_and_containerd_restarted_once(fake_host: FakeHost) -> None:
    fake_containerd(fake_host, CONTAINERD_2_0)
    for _ in range(2):
        result = fake_host.prerequisite("configure_containerd")
        assert result.returncode == 0, result.stderr
    config = tomllib.loads(fake_host.etc("containerd/config.toml").read_text())
    assert config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]["options"] == {
        "BinaryName": "",
        "NoNewKeyring": False,
        "Root": "",
        "ShimCgroup": "",
        "SystemdCgroup": True,
    }
    assert fake_host.calls("systemctl") == ["restart containerd"]


def test_docker_containerd_io_config_is_replaced_and_the_old_one_kept(fake_host: FakeHost) -> None:
    fake_containerd(fake_host, CONTAINERD_1_7_DEBIAN)
    path = fake_host.etc("containerd/config.toml")
    path.parent.mkdir(parents=True)
    path.write_text(DOCKER_CONTAINERD_IO)
    result = fake_host.prerequisite("configure_containerd")
    assert result.returncode == 0, result.stderr
    assert "disables the CRI plugin" in result.stderr
    assert tomllib.loads(path.read_text())["disabled_plugins"] == []
    assert path.with_name("config.toml.before-thanos-multi-cluster").read_text() == DOCKER_CONTAINERD_IO
    assert fake_host.calls("systemctl") == ["restart containerd"]


def test_a_containerd_config_minikube_can_use_is_left_alone(fake_host: FakeHost) -> None:
    fake_containerd(fake_host, CONTAINERD_2_0)
    path = fake_host.etc("containerd/config.toml")
    path.parent.mkdir(parents=True)
    usable = CONTAINERD_1_7_DEBIAN.replace("/usr/lib/cni", "/opt/cni/bin")
    path.write_text(usable)
    result = fake_host.prerequisite("configure_containerd")
    assert result.returncode == 0, result.stderr
    assert path.read_text() == usable
    assert fake_host.calls("systemctl") == []


def fake_dpkg(fake_host: FakeHost, statuses: dict[str, str]) -> None:
    """`dpkg -s` for the packages in `statuses` (their Status line); every other one is unknown."""
    cases = "\n".join(
        f'  {name}) echo "Package: {name}"; echo "Status: {status}" ;;' for name, status in statuses.items()
    )
    fake_host.fake("dpkg", f'case "$2" in\n{cases}\n  *) exit 1 ;;\nesac')


def test_docker_containerd_io_is_used_instead_of_debians_containerd(fake_host: FakeHost) -> None:
    fake_dpkg(fake_host, {"containerd.io": "install ok installed", "socat": "install ok installed"})
    fake_host.fake("apt-get", "")
    result = fake_host.prerequisite('install_packages "$(containerd_package)" conntrack socat')
    assert result.returncode == 0, result.stderr
    assert "containerd.io is installed" in result.stderr
    install = [call for call in fake_host.calls("apt-get") if " install " in f" {call} "]
    assert len(install) == 1
    assert install[0].split()[-1:] == ["conntrack"], "only the missing package, never Debian's containerd"


@pytest.mark.parametrize("status", [None, "deinstall ok config-files"])
def test_without_containerd_io_debians_containerd_is_installed(fake_host: FakeHost, status: str | None) -> None:
    fake_dpkg(fake_host, {"containerd.io": status} if status else {})
    result = fake_host.prerequisite("containerd_package")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "containerd\n"


def test_a_failing_apt_install_says_what_to_do(fake_host: FakeHost) -> None:
    fake_dpkg(fake_host, {})
    fake_host.fake("apt-get", 'if [ "$1" != update ]; then exit 100; fi')
    result = fake_host.prerequisite("install_packages conntrack")
    assert result.returncode == 1
    assert "sudo dpkg --configure -a" in result.stderr
    assert "run pulumi up again" in result.stderr


# --- host-prerequisites.sh: the containerd version ---------------------------------------

# `containerd --version` of the packages and builds the script meets.
DEBIAN_12_CONTAINERD = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1"
UBUNTU_24_04_CONTAINERD = "containerd github.com/containerd/containerd 1.7.24 1.7.24-0ubuntu1~24.04.2"
DOCKER_CONTAINERD_IO_2 = "containerd containerd.io v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376"
RELEASE_CONTAINERD_2 = "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376"


def prepare_packages(
    fake_host: FakeHost,
    installed: dict[str, str],
    candidate: str = "(none)",
    kubernetes: str = versions.KUBERNETES,
    release_binaries: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the package step of host-prerequisites.sh, told what the component tells it for
    `kubernetes`: `installed` maps packages to their `containerd --version`, `candidate` is the
    version `apt-cache policy containerd` offers, `release_binaries` the `--version` of a
    containerd in /usr/local/bin."""
    fake_dpkg(fake_host, dict.fromkeys(installed, "install ok installed"))
    fake_host.fake("apt-get", "")
    policy = f"containerd:\n  Installed: (none)\n  Candidate: {candidate}\n  Version table:\n"
    fake_host.fake("apt-cache", f"if [ \"$1 $2\" = 'policy containerd' ]; then printf '{policy}'; fi")
    for version in installed.values():
        fake_host.fake("containerd", f"if [ \"$1\" = --version ]; then echo '{version}'; fi")
    if release_binaries is not None:
        binary = fake_host.root / "usr/local/bin/containerd"
        binary.parent.mkdir(parents=True)
        binary.write_text(f"#!/usr/bin/env bash\nif [ \"$1\" = --version ]; then echo '{release_binaries}'; fi\n")
        binary.chmod(0o755)
    fake_host.env.update(prerequisite_variables(MinikubeSettings(kubernetes_version=kubernetes)))
    return fake_host.prerequisite("install_host_packages")


def installed_packages(fake_host: FakeHost) -> list[str]:
    return [package for call in fake_host.calls("apt-get") if " install " in f" {call} " for package in call.split()]


def the_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line that says why the script stopped."""
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "needs containerd" in line]
    return line


def test_a_containerd_too_old_for_the_kubernetes_version_is_refused(fake_host: FakeHost) -> None:
    refusal = the_refusal(prepare_packages(fake_host, {"containerd": DEBIAN_12_CONTAINERD}))
    minimum = MinikubeSettings().minimum_containerd_version
    assert "containerd 1.6.20 is installed" in refusal
    assert f"Kubernetes {versions.KUBERNETES} needs containerd {minimum} or newer" in refusal
    assert "containerd.io" in refusal and "Docker's apt repository" in refusal
    assert "release binaries" in refusal
    assert installed_packages(fake_host) == [], "nothing is installed on a host that cannot run the node"


def test_a_distribution_containerd_too_old_is_refused_before_apt_installs_it(fake_host: FakeHost) -> None:
    refusal = the_refusal(prepare_packages(fake_host, {}, candidate="1.6.20~ds1-1+b1"))
    assert "apt would install containerd 1.6.20" in refusal
    assert f"needs containerd {MinikubeSettings().minimum_containerd_version} or newer" in refusal
    assert "containerd.io" in refusal
    assert "update -q" in fake_host.calls("apt-get"), "the candidate is read from fresh package lists"
    assert installed_packages(fake_host) == []


def test_no_containerd_package_at_all_is_refused_too(fake_host: FakeHost) -> None:
    refusal = the_refusal(prepare_packages(fake_host, {}, candidate="(none)"))
    assert "apt has no containerd package" in refusal


def test_a_distribution_containerd_new_enough_is_installed(fake_host: FakeHost) -> None:
    result = prepare_packages(fake_host, {}, candidate="2.1.4~ds1-1")
    assert result.returncode == 0, result.stderr
    assert "containerd" in installed_packages(fake_host)


@pytest.mark.parametrize(
    ("installed", "release_binaries"),
    [({"containerd.io": DOCKER_CONTAINERD_IO_2}, None), ({}, RELEASE_CONTAINERD_2)],
    ids=["Docker's containerd.io 2.x", "containerd's release binaries"],
)
def test_a_containerd_new_enough_is_used_as_it_is(
    fake_host: FakeHost, installed: dict[str, str], release_binaries: str | None
) -> None:
    result = prepare_packages(fake_host, installed, candidate="1.6.20~ds1-1+b1", release_binaries=release_binaries)
    assert result.returncode == 0, result.stderr
    assert not {"containerd", "containerd.io"} & set(installed_packages(fake_host)), "no second containerd"


def test_kubernetes_1_35_still_runs_on_the_distributions_containerd_1_7(fake_host: FakeHost) -> None:
    result = prepare_packages(fake_host, {"containerd": UBUNTU_24_04_CONTAINERD}, kubernetes="v1.35.2")
    assert result.returncode == 0, result.stderr


# --- host-prerequisites.sh: multipath and kernel settings --------------------------------

UBUNTU_MULTIPATH_CONF = "defaults {\n    user_friendly_names yes\n}\n"
LONGHORN_BLACKLIST = 'devnode "^sd[a-z0-9]+"'


def blacklist(fake_host: FakeHost, times: int = 1) -> str:
    fake_host.fake("multipathd", "")
    fake_host.fake("systemctl", "")  # `is-active` succeeds: multipathd runs
    for _ in range(times):
        result = fake_host.prerequisite("blacklist_longhorn_devices")
        assert result.returncode == 0, result.stderr
    return fake_host.etc("multipath.conf").read_text()


def test_multipathd_is_kept_off_longhorns_devices_once(fake_host: FakeHost) -> None:
    fake_host.etc("multipath.conf").parent.mkdir(parents=True)
    fake_host.etc("multipath.conf").write_text(UBUNTU_MULTIPATH_CONF)
    conf = blacklist(fake_host, times=2)
    assert conf.startswith(UBUNTU_MULTIPATH_CONF)
    assert conf.endswith(f"blacklist {{\n    {LONGHORN_BLACKLIST}\n}}\n")
    assert conf.count(LONGHORN_BLACKLIST) == 1
    assert fake_host.calls("systemctl").count("restart multipathd.service") == 1


def test_an_existing_multipath_blacklist_gets_longhorns_devices(fake_host: FakeHost) -> None:
    fake_host.etc("multipath.conf").parent.mkdir(parents=True)
    fake_host.etc("multipath.conf").write_text('blacklist {\n    wwid "3600508b1001c5e9f"\n}\n')
    conf = blacklist(fake_host)
    assert conf == f'blacklist {{\n    {LONGHORN_BLACKLIST}\n    wwid "3600508b1001c5e9f"\n}}\n'


def test_a_missing_multipath_conf_is_created_with_the_blacklist(fake_host: FakeHost) -> None:
    assert blacklist(fake_host) == f"blacklist {{\n    {LONGHORN_BLACKLIST}\n}}\n"


@pytest.mark.skipif(
    any(Path(directory, "multipathd").exists() for directory in ("/usr/sbin", "/sbin")),
    reason="this machine has multipathd",
)
def test_without_multipathd_multipath_is_left_alone(fake_host: FakeHost) -> None:
    fake_host.fake("systemctl", "")
    result = fake_host.prerequisite("blacklist_longhorn_devices")
    assert result.returncode == 0, result.stderr
    assert not fake_host.etc("multipath.conf").exists()
    assert fake_host.calls("systemctl") == []


def fake_sysctl(fake_host: FakeHost, running: dict[str, int]) -> None:
    cases = "\n".join(f"    {key}) echo {value} ;;" for key, value in running.items())
    fake_host.fake("sysctl", f'if [ "$1" = -n ]; then\n  case "$2" in\n{cases}\n  esac\nfi')


def test_kernel_settings_are_raised_and_persisted_once(fake_host: FakeHost) -> None:
    fake_sysctl(fake_host, {"vm.max_map_count": 65530, "fs.inotify.max_user_instances": 128})
    runs = [fake_host.prerequisite("persist_sysctl") for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    assert "writing" in runs[0].stderr and "writing" not in runs[1].stderr
    path = fake_host.etc("sysctl.d/99-thanos-multi-cluster.conf")
    assert path.read_text().splitlines() == [
        "net.ipv4.ip_forward=1",
        "vm.max_map_count=262144",
        "fs.inotify.max_user_instances=8192",
        "fs.inotify.max_user_watches=524288",
    ]
    applied = [call for call in fake_host.calls("sysctl") if call.startswith("-q -p")]
    assert applied == [f"-q -p {path}"] * 2


def test_a_kernel_setting_tuned_higher_is_not_lowered(fake_host: FakeHost) -> None:
    fake_sysctl(fake_host, {"fs.inotify.max_user_watches": 1048576})
    result = fake_host.prerequisite("persist_sysctl")
    assert result.returncode == 0, result.stderr
    lines = fake_host.etc("sysctl.d/99-thanos-multi-cluster.conf").read_text().splitlines()
    assert "fs.inotify.max_user_watches=1048576" in lines
