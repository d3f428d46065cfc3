"""One run of every check, in the order an on-call engineer reads them: outputs, the cluster, its
logs and metrics pipelines, storage, then the certificates in front of it all."""

from __future__ import annotations

from typing import Any

from tools.verify import fluentbit, kubernetes, logs, objectstore, thanos, tls, web
from tools.verify.context import Context, Options
from tools.verify.outputs import Outputs, parse
from tools.verify.report import Result, Status, fail, ok


def outputs_result(outputs: Outputs, stack: str, use_dns: bool = False) -> Result:
    problems = list(outputs.problems)
    if outputs.cluster_name and outputs.cluster_name != stack:
        problems.append(f"clusterName {outputs.cluster_name!r} is not the stack name {stack!r}")
    if problems:
        return fail(
            "outputs",
            "; ".join(problems + ([] if use_dns else outputs.notes)),
            "run `pulumi up` with the current program so it exports every output, or pass the right --outputs file",
        )
    expected = f", expects {', '.join(outputs.clusters or [])}" if outputs.central else ""
    if use_dns:
        reached = "the UI names are looked up in DNS (--use-dns)"
    elif outputs.ingress_address:
        reached = f"the UI names are reached at {outputs.ingress_address} (ingressAddress)"
    else:
        reached = "; ".join(outputs.notes)
    return ok("outputs", f"{outputs.role} cluster {outputs.cluster_name}{expected}; {reached}")


def verify(raw: dict[str, Any], stack: str, options: Options) -> list[Result]:
    outputs = parse(raw)
    results = [outputs_result(outputs, stack, options.use_dns)]
    with Context(outputs, options) as ctx:
        results += kubernetes.run(ctx)
        api_ok = any(r.check == "kubernetes.api" and r.status is Status.OK for r in results)
        results += fluentbit.run(ctx, api_ok)
        results += thanos.run(ctx)
        results += logs.run(ctx)
        results += objectstore.run(ctx)
        results += web.run(ctx)
        results += tls.run(ctx)
    return results
