"""A dynamic provider with the input shape of pulumi-command's `remote.Command`, for the real engine.

pulumi-command itself cannot be had (its provider module is refused by the Go module proxy,
`tests/integration/programs.py`), so the engine's part of a node's plan is shown with this double:
a SECRET `connection` object, a plain `triggers` list and the `create` script, under the same
`replaceOnChanges` the program and pulumi-command's SDK give the node.

The double has no `diff`: the Python dynamic provider then answers DIFF_UNKNOWN and the engine
diffs the inputs itself. pulumi-command computes its own detailed diff (pulumi-go-provider's
`infer`), which this double does not reproduce.

Its own module (a light one): the engine's dynamic-provider process (`python -m pulumi.dynamic`)
imports it by name to unpickle the provider, with the project root on PYTHONPATH.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider, UpdateResult

TYPE = "pulumi-python:dynamic:Resource"


class CommandDouble(ResourceProvider):
    """Records its inputs as outputs; a replacement gets a new id."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=dict(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=dict(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class RemoteCommand(Resource):
    """`remote.Command(connection=..., create=..., triggers=...)`, its connection secret as a whole."""

    def __init__(
        self,
        name: str,
        host: str,
        triggers: list[Any],
        create: str = "minikube start",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        connection = pulumi.Output.secret({"host": host, "user": "root", "port": 22})
        super().__init__(
            CommandDouble(), name, {"connection": connection, "create": create, "triggers": triggers}, opts
        )
