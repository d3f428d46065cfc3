"""Thanos (central only), through `thanosUrl`: the Query Frontend behind basic auth.

The Query Frontend hands every path it does not split or cache to Query unchanged (Thanos v0.42
`cmd/thanos/query_frontend.go`: one handler for "/" with the downstream round tripper), so
`/api/v1/stores` and instant `/api/v1/query` answer as Query itself does.

`GET /api/v1/stores` in Thanos v0.42 (`pkg/api/query/v1.go` stores(), `pkg/query/endpointset.go`
EndpointStatus): `{"status": "success", "data": {"<component>": [{"name": "host:port", "lastCheck":
RFC 3339, "lastError": string | null, "labelSets": [{label: value}], "minTime": ms, "maxTime": ms}]}}`,
grouped by component type ("sidecar", "store", "rule", "receive", "query"). An endpoint Query never
reached has no component type and is left out, so a dead edge shows as a missing cluster.

Store Gateway blocks: read from its entry in the same answer rather than its own `/api/v1/blocks`
(which is on its pod's HTTP port, behind NetworkPolicies, not on `thanosUrl`). Its `labelSets` are
the external label sets of the blocks it has loaded, one per cluster, and its `minTime` is that of
its oldest block. A sidecar only uploads a 2h block once Prometheus has cut it, about 3h after the
block's start, so a loaded block of a cluster always holds data older than 2h: per cluster, its
label set being present (and the store's minTime older than now - 2h) is the proof asked for.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from tools.verify.context import Context, Endpoint, UnexpectedResponse
from tools.verify.outputs import BASIC_AUTH_USER, need
from tools.verify.report import Result, fail, not_run, ok, role_skip

CHECKS = (
    "thanos.stores",
    "thanos.unique-labels",
    "thanos.clusters-up",
    "thanos.store-gateway-blocks",
    "thanos.compactor",
    "topology",
)
CLUSTER_LABEL = "cluster"
BLOCK_AGE = dt.timedelta(hours=2)
# Components whose external labels must be unique: Query itself only warns for sidecars and rulers
# (endpointset.go, "found duplicate storeAPI producer"). The Store Gateway serves the same label sets
# as the sidecars by design (the sidecars' uploaded blocks), so it is left out of the comparison.
PRODUCERS = ("sidecar", "rule", "receive")
SIDECAR_HINT = (
    "on that cluster: kubectl -n monitoring get pods (Prometheus with its thanos-sidecar container); from central: "
    "NodePort 30901 of the edge must be reachable (firewall, the edge's NetworkPolicy allows centralAddress only) "
    "and the certificates must match: the sidecar's from the platform CA, Query's from the StoreAPI client CA, "
    "which the edge must hold (a TLS error after a CA change or renewal: pulumi up -s <edge>)"
)


def endpoint(ctx: Context) -> Endpoint:
    if "thanos" not in ctx.shared:
        ctx.shared["thanos"] = ctx.endpoint(
            "Thanos Query Frontend",
            need(ctx.outputs.thanos_url, "thanosUrl"),
            auth=(BASIC_AUTH_USER, need(ctx.outputs.thanos_password, "thanosUiPassword")),
            ingress=True,
            auth_hint="the ingress refused admin/thanosUiPassword: its basic-auth Secret and the output disagree; "
            "run `pulumi up` for central",
        )
    found: Endpoint = ctx.shared["thanos"]
    return found


def _data(body: Any, what: str) -> Any:
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise UnexpectedResponse(f"{what}: status is not success ({error or body!r:.200})")
    return body["data"]


def stores(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    if "thanos.stores" not in ctx.shared:
        data = _data(endpoint(ctx).get_json("api/v1/stores"), "/api/v1/stores")
        if not isinstance(data, dict):
            raise UnexpectedResponse("/api/v1/stores: data is not an object of component groups")
        ctx.shared["thanos.stores"] = data
    found: dict[str, list[dict[str, Any]]] = ctx.shared["thanos.stores"]
    return found


def query(ctx: Context, promql: str) -> list[dict[str, Any]]:
    data = _data(endpoint(ctx).get_json("api/v1/query", {"query": promql}), promql)
    if data.get("resultType") != "vector":
        raise UnexpectedResponse(f"{promql}: resultType {data.get('resultType')!r}, not vector")
    result: list[dict[str, Any]] = data["result"]
    return result


def clusters_of(entry: dict[str, Any]) -> set[str]:
    return {ls[CLUSTER_LABEL] for ls in entry.get("labelSets") or [] if isinstance(ls, dict) and ls.get(CLUSTER_LABEL)}


def healthy(entry: dict[str, Any]) -> bool:
    return not entry.get("lastError")


def expected_clusters(ctx: Context) -> list[str]:
    return sorted(need(ctx.outputs.clusters, "clusters"))


def _ms(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- checks ---------------------------------------------------------------------------------


def healthy_sidecar_clusters(ctx: Context) -> Counter[str]:
    return Counter(c for e in stores(ctx).get("sidecar") or [] if healthy(e) for c in clusters_of(e))


def check_stores(ctx: Context) -> Result:
    expected = expected_clusters(ctx)
    sidecars = stores(ctx).get("sidecar") or []
    counts = healthy_sidecar_clusters(ctx)
    problems = [p for cluster in expected if (p := _sidecar_problem(cluster, counts[cluster], sidecars))]
    unexpected = sorted(set(counts) - set(expected))
    if unexpected:
        problems.append(f"sidecars of clusters central does not expect: {', '.join(unexpected)}")
    gateways = [e for e in stores(ctx).get("store") or [] if healthy(e)]
    if not gateways:
        errors = [f"{e.get('name')}: {e.get('lastError')}" for e in stores(ctx).get("store") or []]
        problems.append("no healthy Store Gateway" + (f" ({'; '.join(errors)})" if errors else ""))
    if problems:
        hint = SIDECAR_HINT if not unexpected else "remove the stray endpoint or add its cluster to central's `edges`"
        if not gateways:
            hint += "; Store Gateway: kubectl -n monitoring logs statefulset/thanos-store"
        return fail("thanos.stores", "; ".join(problems), hint)
    return ok(
        "thanos.stores",
        f"one healthy sidecar per cluster ({', '.join(expected)}) and {len(gateways)} healthy Store Gateway",
    )


def _sidecar_problem(cluster: str, healthy_count: int, sidecars: list[dict[str, Any]]) -> str | None:
    if healthy_count == 1:
        return None
    if healthy_count > 1:
        return f"{cluster}: {healthy_count} healthy sidecars carry cluster={cluster}, expected one"
    broken = [f"{e.get('name')}: {e.get('lastError')}" for e in sidecars if cluster in clusters_of(e)]
    return f"{cluster}: no healthy sidecar with cluster={cluster}" + (f" ({'; '.join(broken)})" if broken else "")


def check_unique_labels(ctx: Context) -> Result:
    seen: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for component in PRODUCERS:
        for entry in stores(ctx).get(component) or []:
            for labels in entry.get("labelSets") or []:
                seen.setdefault(tuple(sorted(labels.items())), []).append(f"{component} {entry.get('name')}")
    duplicates = [
        f"{{{', '.join(f'{k}={v}' for k, v in labels)}}} on {' and '.join(names)}"
        for labels, names in seen.items()
        if len(names) > 1
    ]
    if duplicates:
        return fail(
            "thanos.unique-labels",
            "shared external label sets: " + "; ".join(duplicates),
            "each cluster's Prometheus needs its own `cluster` external label (clusterName = stack name); "
            "two stacks with one clusterName write over each other's blocks",
        )
    return ok("thanos.unique-labels", f"{len(seen)} distinct external label sets among sidecars and rulers")


def up_clusters(ctx: Context) -> set[str]:
    if "thanos.up" not in ctx.shared:
        ctx.shared["thanos.up"] = {r["metric"].get(CLUSTER_LABEL, "") for r in query(ctx, "count by (cluster) (up)")}
    found: set[str] = ctx.shared["thanos.up"]
    return found


def check_clusters_up(ctx: Context) -> Result:
    expected = set(expected_clusters(ctx))
    seen = up_clusters(ctx)
    missing, unexpected = sorted(expected - seen), sorted(seen - expected)
    if missing or unexpected:
        parts = [f"missing: {', '.join(missing)}"] if missing else []
        if unexpected:
            parts.append("unexpected: " + ", ".join(c or "(series without a cluster label)" for c in unexpected))
        return fail(
            "thanos.clusters-up",
            f"count by (cluster) (up): {'; '.join(parts)}",
            "a missing cluster's sidecar is not connected (see thanos.stores); an unexpected one is a Prometheus "
            "whose external label is wrong or a cluster not in central's `edges`",
        )
    return ok("thanos.clusters-up", f"count by (cluster) (up) returns exactly {', '.join(sorted(expected))}")


def check_store_gateway_blocks(ctx: Context) -> Result:
    check = "thanos.store-gateway-blocks"
    gateways = [e for e in stores(ctx).get("store") or [] if healthy(e)]
    if not gateways:
        return fail(check, "no healthy Store Gateway in Query's stores", "see thanos.stores")
    cutoff = int((ctx.now - BLOCK_AGE).timestamp() * 1000)
    loaded = set().union(*(clusters_of(e) for e in gateways))
    oldest = min(int(e.get("minTime", 2**63 - 1)) for e in gateways)
    missing = [c for c in expected_clusters(ctx) if c not in loaded]
    problems = [f"no block of {', '.join(missing)} loaded"] if missing else []
    if oldest > cutoff:
        problems.append("no data older than 2h" if not loaded else f"oldest data {_ms(oldest)}, newer than 2h ago")
    if problems:
        return fail(
            check,
            "; ".join(problems),
            "a cluster younger than ~3h has uploaded no block yet (re-run later); otherwise its sidecar cannot upload "
            "(kubectl -n monitoring logs <prometheus pod> -c thanos-sidecar | grep -i upload: MinIO reachability, "
            "credentials) or the Store Gateway cannot read the bucket",
        )
    return ok(check, f"blocks of {', '.join(sorted(loaded))} loaded; oldest data {_ms(oldest)}")


def check_compactor(ctx: Context) -> Result:
    check = "thanos.compactor"
    series = query(ctx, "thanos_compact_halted")
    if not series:
        return fail(
            check,
            "thanos_compact_halted is absent",
            "the Compactor is down or not scraped: kubectl -n monitoring get pods,servicemonitor | grep compactor",
        )
    halted = [s for s in series if float(s["value"][1]) != 0]
    if halted:
        return fail(
            check,
            f"the Compactor halted ({len(halted)} of {len(series)} series report thanos_compact_halted=1)",
            "kubectl -n monitoring logs statefulset/thanos-compactor | grep -i halt: fix the cause (typically "
            "overlapping blocks: two clusters sharing a label, or a bad block to mark no-compact), then delete the pod",
        )
    return ok(check, "thanos_compact_halted is 0: the Compactor runs")


def check_topology(ctx: Context) -> Result:
    expected = expected_clusters(ctx)
    in_query, in_up = healthy_sidecar_clusters(ctx), up_clusters(ctx)
    problems = []
    if ctx.outputs.cluster_name and ctx.outputs.cluster_name not in expected:
        problems.append(f"clusters does not list central itself ({ctx.outputs.cluster_name})")
    for cluster in expected:
        where = [name for name, present in (("Query", cluster in in_query), ("up", cluster in in_up)) if not present]
        if where:
            problems.append(f"{cluster} missing from {' and '.join(where)}")
    if problems:
        return fail(
            "topology", "; ".join(problems), "deploy the missing cluster (pulumi up -s <cluster>); " + SIDECAR_HINT
        )
    return ok("topology", f"{len(expected)} clusters, each in Query and in up: {', '.join(expected)}")


def run(ctx: Context) -> list[Result]:
    if not ctx.outputs.central:
        return [role_skip(ctx, check) for check in CHECKS]
    results = ctx.run("thanos.stores", lambda: check_stores(ctx))
    results += ctx.run("thanos.unique-labels", lambda: check_unique_labels(ctx))
    results += ctx.run("thanos.clusters-up", lambda: check_clusters_up(ctx))
    results += ctx.run("thanos.store-gateway-blocks", lambda: check_store_gateway_blocks(ctx))
    results += ctx.run("thanos.compactor", lambda: check_compactor(ctx))
    if "thanos.stores" in ctx.shared and "thanos.up" in ctx.shared:
        results += ctx.run("topology", lambda: check_topology(ctx))
    else:
        results.append(not_run("topology", "needs the answers of thanos.stores and thanos.clusters-up"))
    return results
