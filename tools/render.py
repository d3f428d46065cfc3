"""Render a stack offline: exactly what it would deploy, with no cluster, credentials or Pulumi CLI.

    python -m tools.render --stack cluster-197 --out build/cluster-197 [--check]

writes:

- `resources.json`: one entry per registered resource: `type`, `name`, `urn`, `parent`, `provider`
  and each `dependsOn` entry as `{type, name}` (or null), `protect`, `retainOnDelete`, and the
  `inputs` (secrets "[secret]" with their keys kept, values only known after `pulumi up` "[unknown]");
- `manifests.yaml`: every typed Kubernetes object, multi-document, as it would be applied;
- `helm/<release>.yaml`: per Helm release `{chart, repo, version, namespace, values}`;
- `helm/<release>.manifests.yaml`: what the release installs, rendered by the real chart with
  those values (`helm template`, hooks included), when helm and the chart package are available;
- `outputs.json`: the stack outputs, secrets redacted.

Bad stack config, or something the real engine would refuse (a default provider the project
disables), prints a one-line reason and exits 2. `--check` also runs every validator
(`tools.validators`), prints the capacity report and each finding as
`<validator>: <resource>: <problem>`, and exits 1 when there is any finding.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pulumi.output import Unknown

from components.settings import SettingsError
from tools.cluster import cluster
from tools.engine import EngineRefusal, Rendering, Resource, redact, run_stack

EXIT_FINDINGS = 1
EXIT_BAD_CONFIG = 2
UNKNOWN_TEXT = "[unknown]"
_MANIFEST_HEAD = ("apiVersion", "kind", "metadata")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = dict(setting.partition("=")[::2] for setting in args.config)
    return _render(args.stack, args.out, args.check, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.render",
        description="Render a stack offline (no cluster, credentials or Pulumi CLI) and optionally validate it.",
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. cluster-197 (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--out", type=Path, help="directory to write the rendering into (created if missing)")
    parser.add_argument("--check", action="store_true", help="run every validator; exit 1 on any finding")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="plain config for this run only, like `pulumi preview --config`; a dotted KEY sets a field "
        "(`s3.caCertificate=<pem>`), as `pulumi config set --path` would",
    )
    return parser


def _render(stack: str, out: Path | None, check: bool, settings: dict[str, str] | None = None) -> int:
    if out is None and not check:
        print("render: nothing to do: give --out DIR, --check, or both", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        rendering = run_stack(stack, settings=settings)
    except (SettingsError, EngineRefusal, FileNotFoundError) as error:
        print(str(error).splitlines()[0] if str(error) else type(error).__name__, file=sys.stderr)
        return EXIT_BAD_CONFIG
    if out is not None:
        write(rendering, out)
        print(f"rendered {stack} into {out}: {summary(rendering)}")
    return run_checks(rendering) if check else 0


def summary(rendering: Rendering) -> str:
    return (
        f"{len(rendering.resources)} resources, {len(rendering.kubernetes_objects())} Kubernetes objects, "
        f"{len(rendering.helm_releases())} Helm releases"
    )


def run_checks(rendering: Rendering) -> int:
    # Test requirements: only needed with --check.
    from tools.validators import capacity, missing_prerequisite, policy_pack, prepare, run_all, skipped_by_reason

    if missing_prerequisite() is None:
        prepare(rendering)
        print(capacity.capacity(rendering).report())
        for gap in cluster(rendering).gaps:
            print(f"not rendered: {gap}")
    for reason, names in skipped_by_reason().items():
        print(f"skipped {', '.join(names)}: {reason}")
    findings = run_all(rendering)
    print(policy_pack.summary(findings))
    for finding in findings:
        print(finding)
    verdict = f"{len(findings)} finding(s)" if findings else "no findings"
    print(f"check {rendering.stack}: {verdict}")
    return EXIT_FINDINGS if findings else 0


# --- the files ----------------------------------------------------------------------------


def write(rendering: Rendering, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Registration order depends on thread timing: sorted, two renderings of one program are identical.
    resources = sorted(rendering.resources, key=lambda r: r.urn)
    (out / "resources.json").write_text(_json([resource_entry(r) for r in resources]))
    (out / "manifests.yaml").write_text(manifests(rendering))
    helm = out / "helm"
    helm.mkdir(exist_ok=True)
    for stale in helm.glob("*.yaml"):
        stale.unlink()  # a release removed from the program must not linger in the review
    for release in rendering.helm_releases():
        name = str(release.inputs.get("name", release.name))
        (helm / f"{name}.yaml").write_text(_yaml(helm_entry(release), sort_keys=False))
    for name, text in chart_manifests(rendering).items():
        (helm / f"{name}.manifests.yaml").write_text(text)
    (out / "outputs.json").write_text(_json(plain(rendering.outputs)))


def resource_entry(resource: Resource) -> dict[str, Any]:
    return {
        "type": resource.type,
        "name": resource.name,
        "urn": resource.urn,
        "parent": urn_ref(resource.parent_urn),
        "provider": urn_ref(resource.provider.rsplit("::", 1)[0]) if resource.provider else None,
        "dependsOn": sorted(
            (urn_ref(urn) or {} for urn in set(resource.depends_on)), key=lambda r: (r["type"], r["name"])
        ),
        "protect": resource.protect,
        "retainOnDelete": resource.retain_on_delete,
        "inputs": plain(resource.inputs),
    }


def urn_ref(urn: str | None) -> dict[str, str] | None:
    """`{type, name}` of a URN (`urn:pulumi:<stack>::<project>::<parent types$type>::<name>`)."""
    if not urn:
        return None
    parts = urn.split("::", 3)
    if len(parts) != 4:
        return {"type": "", "name": urn}
    return {"type": parts[2].rsplit("$", 1)[-1], "name": parts[3]}


def manifests(rendering: Rendering) -> str:
    """Namespaces and CRDs first (as `kubectl apply` would need them), then by kind, namespace, name."""
    documents = []
    for resource in sorted(rendering.kubernetes_objects(), key=_apply_order):
        obj = plain(resource.inputs)
        ordered = {key: obj[key] for key in _MANIFEST_HEAD if key in obj}
        ordered.update({key: obj[key] for key in sorted(obj) if key not in _MANIFEST_HEAD})
        documents.append(f"---\n# {resource.type} {resource.name}\n{_yaml(ordered, sort_keys=False)}")
    return "".join(documents)


def chart_manifests(rendering: Rendering) -> dict[str, str]:
    """Per release, the objects the chart renders with our values (multi-document, helm's order)."""
    documents: dict[str, list[str]] = {}
    for o in cluster(rendering).applied():
        if o.origin.startswith("helm release "):
            name = o.origin.removeprefix("helm release ")
            documents.setdefault(name, []).append(f"---\n{_yaml(o.obj, sort_keys=False)}")
    return {name: "".join(docs) for name, docs in documents.items()}


def _apply_order(resource: Resource) -> tuple[int, str, str, str]:
    meta = resource.metadata
    first = 0 if resource.kind in ("Namespace", "CustomResourceDefinition") else 1
    return (first, str(resource.kind), str(meta.get("namespace", "")), str(meta.get("name", resource.name)))


def helm_entry(release: Resource) -> dict[str, Any]:
    inputs = plain(release.inputs)
    return {
        "chart": inputs.get("chart"),
        "repo": (inputs.get("repositoryOpts") or {}).get("repo"),
        "version": inputs.get("version"),
        "namespace": inputs.get("namespace"),
        "values": inputs.get("values") or {},
    }


def plain(value: Any) -> Any:
    """JSON-ready and redacted: secrets "[secret]", unknowns "[unknown]"."""
    return _known(redact(value))


def _known(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN_TEXT
    if isinstance(value, dict):
        return {key: _known(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_known(item) for item in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts, config files) as readable block scalars."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(value: Any, sort_keys: bool = True) -> str:
    if not sort_keys:
        value = {key: _sorted(item) for key, item in value.items()}
    return yaml.dump(value, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False, allow_unicode=True)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


# --- interpreter exit ---------------------------------------------------------------------


def close_idle_event_loops() -> None:
    """Close the event loops Pulumi's mock monitor left in its worker threads (CLI exit only).

    Each worker thread gets its own loop (pulumi.runtime.sync_await) that nobody closes; at
    interpreter exit the garbage collector may close a loop's self-pipe socket before the loop,
    and the loop's finaliser then prints "Invalid file descriptor: -1". Closing them while
    everything is intact makes the finaliser a no-op. Not for use in a process that goes on
    running programs: the worker threads would find their loop closed.
    """
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_running() and not obj.is_closed():
            obj.close()


if __name__ == "__main__":
    code = main()
    close_idle_event_loops()
    sys.exit(code)
