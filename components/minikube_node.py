"""MinikubeNode: a bare host turned into a single-node Minikube cluster.

Two pulumi-command steps run the shell scripts in `components/scripts/` on the host (over SSH,
or locally when Pulumi runs on the host): the host prerequisites, then `minikube start`, whose
stdout is the flattened kubeconfig. Parameters reach the scripts as shell-quoted `export` lines
prepended to the script text, not through the SSH environment (sshd drops variables that its
`AcceptEnv` does not list).

Both steps converge in place: a change of a script or of a setting changes the command text,
and pulumi-command runs `create` again on an update (no `update` command is set). A new SSH key,
passphrase or user changes only the connection: an update too, which runs the scripts again.

Only the node's identity, the host it runs on and its profile, replaces it. The identity is the
commands' `triggers`, the input pulumi-command replaces on: a plain, non-secret value. (The SSH
`connection` cannot carry it: pulumi-command declares the whole connection secret, so the engine
diffs it as one value at `connection`, and `replaceOnChanges: ["connection.host"]` never matches.)
The start step deletes its old profile before the new one starts (`deleteBeforeReplace`); the
node is usually protected, so a replacement needs the operator to lift the protection first: a
new host is a new cluster. The prerequisites carry the same identity: they belong to the host,
so a new host gets a step of its own, created (and so run) there, in local mode too, where
nothing else in their inputs names the host.
"""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import TypedDict

import pulumi
from pulumi_command import local, remote

from components import versions
from components.kube import Component
from components.settings import MINIKUBE_APISERVER_PORT, PROJECT, MinikubeSettings

SCRIPTS = Path(__file__).parent / "scripts"
PROFILE = "minikube"
APISERVER_PORT = MINIKUBE_APISERVER_PORT
"""Minikube's API server port, on the node's address (the `none` driver puts the control plane there)."""
KUBELET_PORT = 10250


class MinikubeNodeArgs(TypedDict):
    host: str
    """Address of the host (IP or DNS name): the SSH target and the API server address."""
    address: str
    """The host's IP address (the same as `host` when that is an IP); the kubelet's node IP."""
    minikube: MinikubeSettings
    """Validated Minikube options (mode, driver, runtime, CNI, versions, kubelet config)."""
    ssh_private_key: pulumi.Input[str] | None
    """Secret private key for `mode: ssh`; None for `mode: local`, or to authenticate with the SSH agent
    at `$SSH_AUTH_SOCK` (pulumi-command offers it by itself)."""
    ssh_private_key_password: pulumi.Input[str] | None
    """Secret passphrase of an encrypted `ssh_private_key`, or None."""


def identity(host: str) -> list[dict[str, str]]:
    """What makes a node this node, as the commands' `triggers`: a change replaces them; every
    other change updates them in place."""
    return [{"host": host, "profile": PROFILE}]


def script(name: str) -> str:
    """The text of one of the node scripts."""
    return (SCRIPTS / name).read_text()


def with_exports(variables: dict[str, str], body: str) -> str:
    """The script preceded by shell-quoted exports of `variables` (after its shebang line)."""
    shebang, _, rest = body.partition("\n")
    exports = "\n".join(f"export {key}={shlex.quote(value)}" for key, value in sorted(variables.items()))
    return f"{shebang}\n{exports}\n{rest}"


def apiserver_flag(host: str) -> str:
    """`--apiserver-ips` for an address, `--apiserver-names` for a DNS name: the cert must name the host."""
    try:
        ipaddress.ip_address(host)
        return f"--apiserver-ips={host}"
    except ValueError:
        return f"--apiserver-names={host}"


def kubelet_extra_config(settings: dict[str, str]) -> str:
    """The kubelet settings as the space-separated `key=value` list the start script splits
    (the settings refuse whitespace in them, and `node-ip`, which this component sets)."""
    return " ".join(f"{key}={value}" for key, value in sorted(settings.items()))


def start_variables(host: str, address: str, minikube: MinikubeSettings) -> dict[str, str]:
    """Everything `minikube-start.sh` is told."""
    return {
        "PROFILE": PROFILE,
        "DRIVER": minikube.driver,
        "CONTAINER_RUNTIME": minikube.container_runtime,
        "CNI": minikube.cni,
        "KUBERNETES_VERSION": minikube.kubernetes_version,
        "DISK_SIZE": minikube.disk_size,
        "APISERVER_FLAG": apiserver_flag(host),
        "HOST_ADDRESS": host,
        # Pinned so that a second NIC cannot make the kubelet report another address than the
        # one every NetworkPolicy and peer cluster uses for this node.
        "NODE_IP": address,
        "EXTRA_CONFIG": kubelet_extra_config(minikube.extra_kubelet_config),
    }


def prerequisite_variables(minikube: MinikubeSettings) -> dict[str, str]:
    """Everything `host-prerequisites.sh` is told."""
    return {
        "CRICTL_VERSION": versions.CRICTL,
        "CNI_PLUGINS_VERSION": versions.CNI_PLUGINS,
        "MINIKUBE_MINIMUM_VERSION": minikube.minimum_minikube_version,
        "KUBERNETES_VERSION": minikube.kubernetes_version,
        "CONTAINERD_MINIMUM_VERSION": minikube.minimum_containerd_version,
    }


def unpinned_host_key_warning(host: str, port: int) -> str:
    """Without `minikube.sshHostKey` pulumi-command accepts any host key (`InsecureIgnoreHostKey`)."""
    scan = f"ssh-keyscan -t ed25519 {'-p ' + str(port) + ' ' if port != 22 else ''}{host} | cut -d' ' -f2-"
    return (
        f"the SSH host key of {host} is not pinned ({PROJECT}:minikube.sshHostKey): pulumi-command accepts any "
        "key, so a man in the middle would get a root session on the host. Pin it: "
        f'`pulumi config set --path minikube.sshHostKey "$({scan})"`, after checking its fingerprint on the host '
        "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)"
    )


class MinikubeNode(Component):
    """Host prerequisites and `minikube start`; exposes the kubeconfig as a secret output.

    `protect` (in the options) protects the node: deleting or replacing it deletes the cluster.
    """

    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: MinikubeNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("minikube:MinikubeNode", name, opts)
        minikube = args["minikube"]
        prerequisites_script = with_exports(prerequisite_variables(minikube), script("host-prerequisites.sh"))
        start_script = with_exports(
            start_variables(args["host"], args["address"], minikube), script("minikube-start.sh")
        )
        delete_script = with_exports({"PROFILE": PROFILE}, script("minikube-delete.sh"))

        prerequisites = self._command(
            f"{name}-host-prerequisites",
            args,
            create=prerequisites_script,
            delete=None,
            opts=self.child(),
        )
        start = self._command(
            f"{name}-minikube",
            args,
            create=start_script,
            delete=delete_script,
            opts=self.child(
                prerequisites,
                stateful=True,
                delete_before_replace=True,  # one host runs one profile: the old must go first
                additional_secret_outputs=["stdout"],
            ),
            secret_stdout=True,
        )
        self.kubeconfig = pulumi.Output.secret(start.stdout)
        if minikube.mode == "ssh" and minikube.ssh_host_key is None:
            pulumi.log.warn(unpinned_host_key_warning(args["host"], minikube.ssh_port), resource=self)
        self.register_outputs({"kubeconfig": self.kubeconfig})

    @staticmethod
    def _command(
        name: str,
        args: MinikubeNodeArgs,
        create: str,
        delete: str | None,
        opts: pulumi.ResourceOptions,
        secret_stdout: bool = False,
    ) -> local.Command | remote.Command:
        """`secret_stdout`: stdout is a secret (the kubeconfig, with its client key): only stderr is logged."""
        triggers = identity(args["host"])
        if args["minikube"].mode == "local":
            return local.Command(
                name,
                create=create,
                delete=delete,
                interpreter=["/bin/bash", "-c"],
                triggers=triggers,
                logging=local.Logging.STDERR if secret_stdout else local.Logging.STDOUT_AND_STDERR,
                add_previous_output_in_env=False,
                opts=opts,
            )
        logging = remote.Logging.STDERR if secret_stdout else remote.Logging.STDOUT_AND_STDERR
        # No agent_socket_path: pulumi-command uses $SSH_AUTH_SOCK when it is set, and a path that
        # changes with every login would make every `pulumi up` run the scripts again.
        connection = remote.ConnectionArgs(
            host=args["host"],
            user=args["minikube"].ssh_user,
            port=args["minikube"].ssh_port,
            private_key=args["ssh_private_key"],
            private_key_password=args["ssh_private_key_password"],
            host_key=args["minikube"].ssh_host_key,
        )
        # remote.Command runs the text through the login shell; bash is asked for explicitly.
        return remote.Command(
            name,
            connection=connection,
            create=f"bash -s <<'NODE_SCRIPT'\n{create}\nNODE_SCRIPT",
            delete=f"bash -s <<'NODE_SCRIPT'\n{delete}\nNODE_SCRIPT" if delete else None,
            triggers=triggers,
            logging=logging,
            # Not offered to sshd as PULUMI_COMMAND_STDOUT: for the start command that is the kubeconfig.
            add_previous_output_in_env=False,
            opts=opts,
        )
