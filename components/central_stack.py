"""CentralStack: what an edge reads from the central stack, through one StackReference.

Central issues what each edge needs and publishes it as secret outputs keyed by cluster name: the
MinIO users (`objectStoreCredentials`) and the certificates (`tlsCertificates`), plus the public
platform CA (`platformCaCertificate`, `platformCaNotAfter`). An edge keeps only its own entries.
When central has not been deployed yet, was deployed by an older version of the program, or does
not list the edge, the edge stops with one message that says what to deploy first.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.kube import Component
from components.object_storage import CREDENTIALS_OUTPUT
from components.platform_ca import CA_NOT_AFTER_OUTPUT, CA_OUTPUT, CERTIFICATES_OUTPUT

PER_CLUSTER_OUTPUTS = {CREDENTIALS_OUTPUT: "object-store credentials", CERTIFICATES_OUTPUT: "certificates"}
"""Central's outputs with one entry per cluster, and what an entry is, for the messages."""
SHARED_OUTPUTS = (CA_OUTPUT, CA_NOT_AFTER_OUTPUT)


class CentralStackNotReady(pulumi.RunError):
    """The central stack has not published what this cluster needs (yet)."""


def published_for(outputs: Any, cluster: str, central_stack: str) -> dict[str, Any]:
    """This cluster's view of central's outputs: its own entry of each per-cluster output and every
    shared one; the first thing missing stops the program with what to do."""
    outputs = outputs if isinstance(outputs, dict) else {}
    short = central_stack.rsplit("/", 1)[-1]
    first = f"deploy the central stack first (`pulumi up -s {short}`), then this one"
    view: dict[str, Any] = {}
    for output, what in PER_CLUSTER_OUTPUTS.items():
        published = outputs.get(output)
        if published == {} and outputs.get(CA_OUTPUT):
            # The engine hands a StackReference `{}` for each secret output it cannot decrypt (it only
            # logs "eliding undecryptable secrets"): central is deployed, its passphrase is not ours.
            raise CentralStackNotReady(
                f"the central stack {central_stack} has published `{output}`, but this stack cannot decrypt it: "
                "run this stack with central's backend and secrets passphrase (PULUMI_CONFIG_PASSPHRASE or "
                "PULUMI_CONFIG_PASSPHRASE_FILE); every stack must share both"
            )
        if not isinstance(published, dict) or not published:
            raise CentralStackNotReady(f"the central stack {central_stack} has no `{output}` output: {first}")
        entry = published.get(cluster)
        if not isinstance(entry, dict) or not entry:
            raise CentralStackNotReady(
                f"the central stack {central_stack} has no {what} for {cluster}: list it under `edges` in "
                f"the central stack config and deploy the central stack first (`pulumi up -s {short}`)"
            )
        view[output] = entry
    for output in SHARED_OUTPUTS:
        if not outputs.get(output):
            raise CentralStackNotReady(f"the central stack {central_stack} has no `{output}` output: {first}")
        view[output] = outputs[output]
    return view


class CentralStack(Component):
    """The central stack as an edge sees it: one StackReference, and this cluster's view of it."""

    def __init__(self, name: str, cluster: str, stack_name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("central:CentralStack", name, opts)
        reference = pulumi.StackReference(f"{name}-reference", stack_name=stack_name, opts=self.child())
        # Secret whatever the reference says: the view holds this cluster's keys.
        view: pulumi.Output[dict[str, Any]] = reference.outputs.apply(
            lambda outputs: published_for(outputs, cluster, stack_name)
        )
        self._view: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(view)
        self.register_outputs({})

    def own(self, output: str) -> pulumi.Output[dict[str, Any]]:
        """This cluster's entry of a per-cluster output (secret)."""
        return self._view.apply(lambda view: view[output])

    def value(self, output: str) -> pulumi.Output[Any]:
        """A shared, public output (the CA certificate and its end)."""
        return pulumi.Output.unsecret(self._view.apply(lambda view: view[output]))
