"""A resource provider plugin that diffs `remote.Command` as pulumi-command v1.2.1 does, for the real engine.

pulumi-command cannot be built here (the proxy refuses its module). Its diff is pulumi-go-provider
v1.3.0's `infer` default, read from that source (`infer/resource.go`, `diff`): `Check` returns the
inputs with the `provider:"secret"` field `connection` made secret; `Diff` compares the old inputs with
the new ones as property values WITHOUT unwrapping secrets (`resource.PropertyMap.Diff`, where a
secret is compared whole), so a change inside the secret connection is ONE detailed-diff entry at
`connection`; an entry is a replacement only when its path is the name of a `replaceOnChanges`
property of the schema (`triggers`), so a changed element of `triggers` (`triggers[0].host`) is an
update on the provider's side and only the SDK's engine-side `replaceOnChanges: ["triggers[*]"]`
replaces. This module reimplements exactly that much; it is not pulumi-command.

Started by the engine as `pulumi-resource-commanddouble` (`engine.python_plugin`); package
`commanddouble`, resource type `commanddouble:remote:Command`.
"""

from __future__ import annotations

import re
import sys
import uuid
from concurrent import futures
from threading import Event
from typing import Any

import grpc
import pulumi
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

PACKAGE = "commanddouble"
TYPE = f"{PACKAGE}:remote:Command"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
SECRET_FIELDS = ("connection",)
"""pulumi-command's `provider:"secret"` inputs of `remote.Command`."""
REPLACE_ON_CHANGES = ("triggers",)
"""Its schema's `replaceOnChanges` properties (`common.ResourceInputs.Triggers`)."""

Kind = provider_pb2.PropertyDiff.Kind


def _plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def _secret(value: Any) -> Any:
    return value if _is_secret(value) else {SECRET_SIG: SECRET_VALUE, "value": value}


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def value_diff(old: Any, new: Any, at: str = "") -> dict[str, Any]:
    """`resource.PropertyValue.Diff` flattened to detailed-diff paths: objects and arrays are descended
    into, anything else (secrets included) is compared whole."""
    if isinstance(old, dict) and isinstance(new, dict) and not _is_secret(old) and not _is_secret(new):
        changes: dict[str, Any] = {}
        for key in sorted(set(old) | set(new)):
            if key not in new:
                changes[_path(at, key)] = Kind.DELETE
            elif key not in old:
                changes[_path(at, key)] = Kind.ADD
            else:
                changes |= value_diff(old[key], new[key], _path(at, key))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = {}
        for index in range(max(len(old), len(new))):
            if index >= len(new):
                changes[_path(at, index)] = Kind.DELETE
            elif index >= len(old):
                changes[_path(at, index)] = Kind.ADD
            else:
                changes |= value_diff(old[index], new[index], _path(at, index))
        return changes
    return {} if old == new else {at: Kind.UPDATE}


_AS_REPLACE: dict[Any, Any] = {
    Kind.ADD: Kind.ADD_REPLACE,
    Kind.DELETE: Kind.DELETE_REPLACE,
    Kind.UPDATE: Kind.UPDATE_REPLACE,
}


def _inputs(properties: dict[str, Any]) -> dict[str, Any]:
    """What infer diffs: no `version`, nothing underscore-prefixed."""
    return {key: value for key, value in properties.items() if key != "version" and not key.startswith("__")}


class CommandProvider(provider_pb2_grpc.ResourceProviderServicer):
    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> Any:
        return plugin_pb2.PluginInfo(version="0.0.1")

    def Configure(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True)

    def CheckConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        inputs = _plain(request.news)
        for field in SECRET_FIELDS:
            if field in inputs:
                inputs[field] = _secret(inputs[field])
        return provider_pb2.CheckResponse(inputs=_struct(inputs))

    def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
        olds = _inputs(_plain(request.old_inputs) if request.HasField("old_inputs") else _plain(request.olds))
        news = _inputs(_plain(request.news))
        detailed = {}
        for path, kind in value_diff(olds, news).items():
            replace = path in REPLACE_ON_CHANGES
            detailed[path] = provider_pb2.PropertyDiff(kind=_AS_REPLACE[kind] if replace else kind, inputDiff=True)
        replacing = {path for path, entry in detailed.items() if entry.kind in _AS_REPLACE.values()}
        replaces = sorted({re.split(r"[.\[]", path, maxsplit=1)[0] for path in replacing})
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if detailed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces,
            detailedDiff=detailed,
            hasDetailedDiff=True,
        )

    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.CreateResponse(id=uuid.uuid4().hex, properties=request.properties)

    def Read(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.UpdateResponse(properties=request.news)

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        return empty_pb2.Empty()

    def Cancel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return empty_pb2.Empty()


class RemoteCommand(pulumi.CustomResource):
    """`remote.Command` as pulumi-command's Python SDK registers it: `connection` passed as given (the
    provider makes it secret), `additionalSecretOutputs: ["connection"]` and `replaceOnChanges:
    ["triggers[*]"]` merged into the options."""

    def __init__(
        self,
        name: str,
        host: str,
        triggers: list[Any],
        create: str = "minikube start",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        sdk = pulumi.ResourceOptions(additional_secret_outputs=["connection"], replace_on_changes=["triggers[*]"])
        props = {"connection": {"host": host, "user": "root", "port": 22}, "create": create, "triggers": triggers}
        super().__init__(TYPE, name, props, pulumi.ResourceOptions.merge(opts, sdk))


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(CommandProvider(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    Event().wait()


if __name__ == "__main__":
    main()
