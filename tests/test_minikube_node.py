"""MinikubeNode: host prerequisites and `minikube start`, converged in place on every change.

The program-level tests read the stacks' rendering; the script-level tests run the real scripts
against fake `minikube`, `dpkg`, `containerd`, `systemctl`... on PATH, with the paths they write
(HOST_ROOT for /etc, NODE_STATE_DIR for the recorded start arguments) in a scratch directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import versions
from components.minikube_node import PROFILE, SCRIPTS, start_variables, with_exports
from components.settings import PROJECT, MinikubeSettings
from tests.conftest import EDGE, run_fixture
from tools.engine import Rendering, Secret, secret_placeholder, unwrap
from tools.plan import Step, plan

COMMAND = "command:remote:Command"


# The address the script-level tests start a node on (cluster-197's, like the stack file's).
ADDRESS = "192.168.101.197"


def start_command(stack: Rendering) -> str:
    return str(stack.one(COMMAND, f"{stack.stack}-minikube").inputs["create"])


def node_step(before: Rendering, after: Rendering) -> Step:
    """What the engine would do to the node going from one rendering to the other."""
    return plan(before, after).step(COMMAND, f"{before.stack}-minikube")


def host(stack: Rendering) -> str:
    return stack.config[f"{PROJECT}:host"]


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


def test_only_the_nodes_host_can_replace_it_and_a_replacement_deletes_first(any_stack: Rendering) -> None:
    start = any_stack.one(COMMAND, f"{any_stack.stack}-minikube")
    assert start.protect
    assert start.delete_before_replace
    assert "connection.host" in start.replace_on_changes
    assert "triggers" not in start.inputs, "a change of triggers always replaces"
    assert "minikube delete" in start.inputs["delete"]
    assert "update" not in start.inputs, "without an update command, a changed create runs again in place"


def test_stacks_that_stored_a_script_digest_as_triggers_keep_it(any_stack: Rendering) -> None:
    """Earlier versions replaced the node on every script change through `triggers`; ignoring the
    stored value makes their first `pulumi up` with this version an update."""
    for step in ("host-prerequisites", "minikube"):
        assert any_stack.one(COMMAND, f"{any_stack.stack}-{step}").ignore_changes == ["triggers"]


def test_host_prerequisites_rerun_in_place_and_are_never_replaced(any_stack: Rendering) -> None:
    prerequisites = any_stack.one(COMMAND, f"{any_stack.stack}-host-prerequisites")
    assert "triggers" not in prerequisites.inputs
    assert "connection.host" not in prerequisites.replace_on_changes
    assert "update" not in prerequisites.inputs
    assert not prerequisites.delete_before_replace


def test_a_changed_kubelet_setting_updates_the_node_in_place(edge: Rendering) -> None:
    settings = dict(minikube_config(edge).get("extraKubeletConfig", {}))
    changed = with_minikube(edge, extraKubeletConfig=settings | {"max-pods": "120"})
    assert node_step(edge, changed).op == "update"
    assert "export EXTRA_CONFIG=max-pods=120" in start_command(changed)


def test_a_changed_kubernetes_version_updates_the_node_in_place(edge: Rendering) -> None:
    changed = with_minikube(edge, kubernetesVersion="v1.35.2")
    assert node_step(edge, changed).op == "update"
    assert "export KUBERNETES_VERSION=v1.35.2" in start_command(changed)


def test_a_new_host_replaces_the_node_which_protect_refuses(edge: Rendering) -> None:
    address = host(edge).rsplit(".", 1)[0] + ".250"
    moved = run_fixture(edge.stack, {f"{PROJECT}:host": address})
    step = node_step(edge, moved)
    assert (step.op, step.replaced_by, step.protected) == ("replace", ("connection.host",), True)
    assert any(f"{edge.stack}-minikube" in refusal for refusal in plan(edge, moved).refusals())


def test_ssh_connection_uses_the_secret_key(any_stack: Rendering) -> None:
    connection = any_stack.one(COMMAND, f"{any_stack.stack}-minikube").inputs["connection"]
    assert isinstance(connection, Secret), "a connection holding the key is secret as a whole"
    assert unwrap(connection)["host"] == host(any_stack)
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
        "fs.inotify.max_user_instances=8192",
        "fs.inotify.max_user_watches=524288",
        "multipathd",
        "crictl",
        "/opt/cni/bin",
        f"export CRICTL_VERSION={versions.CRICTL}",
        f"export CNI_PLUGINS_VERSION={versions.CNI_PLUGINS}",
    ):
        assert needed in prerequisites.inputs["create"], needed


def test_local_mode_runs_on_the_host_itself() -> None:
    stack = run_fixture(EDGE, {f"{PROJECT}:minikube": '{"mode": "local"}'})
    assert not stack.of_type(COMMAND)
    assert len(stack.of_type("command:local:Command")) == 2


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


def run_start(fake_host: FakeHost, running: bool, minikube: MinikubeSettings | None = None) -> list[str]:
    """Run minikube-start.sh against the fake minikube; return the `start` calls it made."""
    fake_host.fake("minikube", FAKE_MINIKUBE)
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
