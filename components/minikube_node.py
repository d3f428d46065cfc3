"""MinikubeNode: a bare host turned into a single-node Minikube cluster (DESIGN C1-C4).

Two pulumi-command steps run the shell scripts in `components/scripts/` on the host (over SSH,
or locally when Pulumi runs on the host): the host prerequisites, then `minikube start`, whose
stdout is the flattened kubeconfig. Parameters reach the scripts as shell-quoted `export` lines
prepended to the script text, not through the SSH environment (sshd drops variables that its
`AcceptEnv` does not list).
"""

from __future__ import annotations

import hashlib
import ipaddress
import shlex
from pathlib import Path
from typing import TypedDict

import pulumi
from pulumi_command import local, remote

from components.settings import MinikubeSettings

SCRIPTS = Path(__file__).parent / "scripts"
CRICTL_VERSION = "v1.28.0"
CNI_PLUGINS_VERSION = "v1.3.0"
PROFILE = "minikube"


class MinikubeNodeArgs(TypedDict):
    host: str
    """Address of the host (IP or DNS name): the SSH target and the API server address."""
    address: str
    """The host's IP address (the same as `host` when that is an IP)."""
    minikube: MinikubeSettings
    """Validated Minikube options (mode, driver, runtime, CNI, versions, kubelet config)."""
    ssh_private_key: pulumi.Input[str] | None
    """Secret private key for `mode: ssh`; None for `mode: local`."""
    protect: bool
    """Protect the node: deleting or replacing it would delete the cluster."""


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


def start_variables(host: str, minikube: MinikubeSettings) -> dict[str, str]:
    """Everything `minikube-start.sh` is told (DESIGN C1, C3)."""
    return {
        "PROFILE": PROFILE,
        "DRIVER": minikube.driver,
        "CONTAINER_RUNTIME": minikube.container_runtime,
        "CNI": minikube.cni,
        "KUBERNETES_VERSION": minikube.kubernetes_version,
        "DISK_SIZE": minikube.disk_size,
        "APISERVER_FLAG": apiserver_flag(host),
        "HOST_ADDRESS": host,
        "EXTRA_CONFIG": " ".join(f"{key}={value}" for key, value in sorted(minikube.extra_kubelet_config.items())),
    }


def prerequisite_variables(minikube: MinikubeSettings) -> dict[str, str]:
    return {
        "CRICTL_VERSION": CRICTL_VERSION,
        "CNI_PLUGINS_VERSION": CNI_PLUGINS_VERSION,
        "MINIKUBE_MINIMUM_VERSION": minikube.minimum_minikube_version,
    }


def fingerprint(*texts: str) -> str:
    """A short digest of what a step runs: a change to it re-runs the step."""
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


class MinikubeNode(pulumi.ComponentResource):
    """Host prerequisites and `minikube start`; exposes the kubeconfig as a secret output."""

    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: MinikubeNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("thanos-multi-cluster:minikube:MinikubeNode", name, None, opts)
        minikube = args["minikube"]
        prerequisites_script = with_exports(prerequisite_variables(minikube), script("host-prerequisites.sh"))
        start_script = with_exports(start_variables(args["host"], minikube), script("minikube-start.sh"))
        delete_script = with_exports({"PROFILE": PROFILE}, script("minikube-delete.sh"))

        prerequisites = self._command(
            f"{name}-host-prerequisites",
            args,
            create=prerequisites_script,
            delete=None,
            triggers=[fingerprint(prerequisites_script)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        start = self._command(
            f"{name}-minikube",
            args,
            create=start_script,
            delete=delete_script,
            triggers=[fingerprint(start_script, delete_script)],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[prerequisites],
                delete_before_replace=True,  # one host runs one profile: the old must go first
                protect=args["protect"],
                additional_secret_outputs=["stdout"],
            ),
        )
        self.kubeconfig = pulumi.Output.secret(start.stdout)
        self.register_outputs({"kubeconfig": self.kubeconfig})

    @staticmethod
    def _command(
        name: str,
        args: MinikubeNodeArgs,
        create: str,
        delete: str | None,
        triggers: list[str],
        opts: pulumi.ResourceOptions,
    ) -> local.Command | remote.Command:
        if args["minikube"].mode == "local":
            return local.Command(
                name, create=create, delete=delete, triggers=triggers, interpreter=["/bin/bash", "-c"], opts=opts
            )
        connection = remote.ConnectionArgs(
            host=args["host"],
            user=args["minikube"].ssh_user,
            port=args["minikube"].ssh_port,
            private_key=args["ssh_private_key"],
        )
        # remote.Command runs the text through the login shell; bash is asked for explicitly.
        return remote.Command(
            name,
            connection=connection,
            create=f"bash -s <<'NODE_SCRIPT'\n{create}\nNODE_SCRIPT",
            delete=f"bash -s <<'NODE_SCRIPT'\n{delete}\nNODE_SCRIPT" if delete else None,
            triggers=triggers,
            opts=opts,
        )
