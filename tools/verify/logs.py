"""Logging: OpenSearch through `opensearchUrl` as `admin`: today's index, its health and retention,
the snapshot repository and the daily snapshot policy.

API shapes (OpenSearch 3.6, index-management plugin):
- `GET _cat/indices/<index>?format=json`: `[{"index", "health", "status", "pri", "rep", "docs.count"}]`,
  404 `index_not_found_exception` when absent;
- `GET _plugins/_ism/explain/<index>`: `{"<index>": {"index.plugins.index_state_management.policy_id",
  "policy_id", "enabled", "info": {"message"}}, "total_managed_indices": n}`;
- `POST _snapshot/<repo>/_verify`: `{"nodes": {id: {"name"}}}`; it writes and deletes a test blob
  under the repository's base path, nothing else, so it is read-only in effect;
- `GET _plugins/_sm/policies/<name>/_explain`: `{"policies": [{"name", "enabled", "creation":
  {"current_state", "trigger": {"time"}, "latest_execution": {"status": IN_PROGRESS | RETRYING |
  SUCCESS | FAILED | TIME_LIMIT_EXCEEDED, "start_time", "end_time", "info": {"message", "cause"}}}}]}`
  (index-management `SMMetadata.kt` WorkflowMetadata/LatestExecution).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from tools.verify.context import Context, Endpoint, UnexpectedResponse
from tools.verify.outputs import BASIC_AUTH_USER, need
from tools.verify.report import Result, fail, not_run, ok

INDEX_PREFIX = "logs-"
ISM_POLICY = "logs-retention"
REPOSITORY = "logs-s3"
SM_POLICY = "logs-daily"
# Right after midnight UTC Fluent-bit may not have flushed into the new day's index yet.
MIDNIGHT_GRACE = dt.timedelta(minutes=15)


def endpoint(ctx: Context) -> Endpoint:
    if "opensearch" not in ctx.shared:
        ctx.shared["opensearch"] = ctx.endpoint(
            "OpenSearch",
            need(ctx.outputs.opensearch_url, "opensearchUrl"),
            auth=(BASIC_AUTH_USER, need(ctx.outputs.opensearch_password, "opensearchAdminPassword")),
            ingress=True,
            auth_hint="OpenSearch refused admin/opensearchAdminPassword: the password was rotated outside the stack "
            '(README "Rotate the OpenSearch admin password")',
        )
    found: Endpoint = ctx.shared["opensearch"]
    return found


def index_name(day: dt.date) -> str:
    return f"{INDEX_PREFIX}{day:%Y.%m.%d}"


def _error(body: Any) -> str:
    """`type: reason` of an OpenSearch error answer (root cause first)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        cause = (error.get("root_cause") or [error])[0]
        return f"{cause.get('type')}: {cause.get('reason')}"
    return str(error or body)[:300]


def _cat_index(ctx: Context, index: str) -> dict[str, Any] | None:
    response = endpoint(ctx).request(
        "GET", f"_cat/indices/{index}", {"format": "json", "h": "index,health,status,pri,rep,docs.count"}, ok=(200, 404)
    )
    if response.status_code == 404:
        return None
    rows = endpoint(ctx).json_of(response)
    if not isinstance(rows, list) or len(rows) != 1:
        raise UnexpectedResponse(f"_cat/indices/{index}: expected one row, got {rows!r:.200}")
    row: dict[str, Any] = rows[0]
    return row


def todays_index(ctx: Context) -> tuple[str, dict[str, Any] | None, str]:
    """Today's (UTC) index and its `_cat` row, or yesterday's within the grace after midnight."""
    if "logs.index" not in ctx.shared:
        today = index_name(ctx.now.date())
        row, note = _cat_index(ctx, today), ""
        if row is None and ctx.now - ctx.now.replace(hour=0, minute=0, second=0, microsecond=0) < MIDNIGHT_GRACE:
            yesterday = index_name(ctx.now.date() - dt.timedelta(days=1))
            row = _cat_index(ctx, yesterday)
            if row is not None:
                today, note = yesterday, f" (today's does not exist yet, {MIDNIGHT_GRACE} after midnight UTC)"
        ctx.shared["logs.index"] = (today, row, note)
    found: tuple[str, dict[str, Any] | None, str] = ctx.shared["logs.index"]
    return found


def check_index(ctx: Context) -> Result:
    index, row, note = todays_index(ctx)
    if row is None:
        return fail(
            "logging.index",
            f"{index} does not exist",
            "Fluent-bit writes nothing today: see fluent-bit.retries, kubectl -n fluent-bit logs <pod>",
        )
    if row.get("status") != "open":
        return fail("logging.index", f"{index} is {row.get('status')}", f"POST {index}/_open")
    return ok("logging.index", f"{index} exists with {row.get('docs.count', '?')} documents{note}")


def check_health(ctx: Context) -> Result:
    index, row, _ = todays_index(ctx)
    if row is None:
        return not_run("logging.index-health", f"{index} does not exist (see logging.index)")
    health, replicas = row.get("health"), int(row.get("rep") or 0)
    if health == "green":
        return ok("logging.index-health", f"{index} green ({row.get('pri')} primary, {replicas} replicas)")
    nodes = int(endpoint(ctx).get_json("_cluster/health").get("number_of_data_nodes", 0))
    if health == "yellow" and replicas > 0 and nodes > 1:
        return ok(
            "logging.index-health", f"{index} yellow: {replicas} replicas configured on {nodes} data nodes, recovering"
        )
    if health == "yellow":
        return fail(
            "logging.index-health",
            f"{index} yellow: {replicas} replicas cannot be placed on {nodes} data node(s)",
            "the index template `logs` must set number_of_replicas 0 on a single node: "
            f'PUT {index}/_settings {{"index.number_of_replicas": 0}} and fix the template',
        )
    return fail(
        "logging.index-health",
        f"{index} {health}: a primary shard is unassigned",
        "GET _cluster/allocation/explain says why (disk watermark on the Longhorn volume, node down)",
    )


def check_ism(ctx: Context) -> Result:
    index, row, _ = todays_index(ctx)
    if row is None:
        return not_run("logging.ism", f"{index} does not exist (see logging.index)")
    explain = endpoint(ctx).get_json(f"_plugins/_ism/explain/{index}")
    entry = explain.get(index) or {}
    policy = entry.get("index.plugins.index_state_management.policy_id") or entry.get("policy_id")
    if policy != ISM_POLICY:
        return fail(
            "logging.ism",
            f"{index} has ISM policy {policy!r}, not {ISM_POLICY!r}",
            f'the index was created before the policy existed: POST _plugins/_ism/add/{index} {{"policy_id": '
            f'"{ISM_POLICY}"}}; check the policy\'s ism_template matches {INDEX_PREFIX}*',
        )
    if entry.get("enabled") is False:
        message = (entry.get("info") or {}).get("message", "no message")
        return fail(
            "logging.ism",
            f"{ISM_POLICY} is attached to {index} but disabled: {message}",
            f"POST _plugins/_ism/retry/{index} after fixing the cause",
        )
    return ok("logging.ism", f"{index} is managed by {ISM_POLICY}")


def check_repository(ctx: Context) -> Result:
    response = endpoint(ctx).request("POST", f"_snapshot/{REPOSITORY}/_verify", ok=(200, 404, 500))
    body = endpoint(ctx).json_of(response)
    if response.status_code == 404:
        return fail(
            "logging.snapshot-repository",
            f"repository {REPOSITORY} is not registered: {_error(body)}",
            "pulumi up registers it after the release is up; the repository-s3 plugin must be installed",
        )
    if response.status_code != 200:
        return fail(
            "logging.snapshot-repository",
            f"{REPOSITORY} does not verify: {_error(body)}",
            "OpenSearch cannot write to the bucket: MinIO reachable from the pod (NetworkPolicy), keystore keys "
            "(logging/opensearch-s3-keystore), the MinIO CA in its truststore, the user's prefix policy",
        )
    nodes = body.get("nodes") or {}
    return ok("logging.snapshot-repository", f"{REPOSITORY} verified by {len(nodes)} node(s)")


def _time(value: Any) -> str:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def check_snapshot_policy(ctx: Context) -> Result:
    check = "logging.snapshot-policy"
    response = endpoint(ctx).request("GET", f"_plugins/_sm/policies/{SM_POLICY}/_explain", ok=(200, 404))
    policies = (endpoint(ctx).json_of(response).get("policies") or []) if response.status_code == 200 else []
    policy = next((p for p in policies if p.get("name") == SM_POLICY), None)
    if policy is None:
        return fail(check, f"Snapshot Management policy {SM_POLICY} does not exist", "pulumi up creates it")
    if policy.get("enabled") is False:
        return fail(check, f"{SM_POLICY} is disabled", f"POST _plugins/_sm/policies/{SM_POLICY}/_start")
    creation = policy.get("creation") or {}
    latest = creation.get("latest_execution")
    next_run = _time((creation.get("trigger") or {}).get("time", "?"))
    if not latest:
        return fail(
            check,
            f"{SM_POLICY} has not created a snapshot yet (next at {next_run})",
            "expected on a platform younger than a day: re-run after the next scheduled creation",
        )
    status, info = latest.get("status"), latest.get("info") or {}
    if status != "SUCCESS":
        cause = "; ".join(str(v) for v in (info.get("message"), info.get("cause")) if v) or "no message"
        return fail(
            check,
            f"{SM_POLICY}'s last creation ({_time(latest.get('start_time'))}) is {status}: {cause}",
            "in progress: re-run later; failed: see logging.snapshot-repository and GET _snapshot/logs-s3/_all",
        )
    return ok(
        check, f"{SM_POLICY}'s last creation succeeded at {_time(latest.get('end_time') or latest.get('start_time'))}"
    )


CHECKS = (
    ("logging.index", check_index),
    ("logging.index-health", check_health),
    ("logging.ism", check_ism),
    ("logging.snapshot-repository", check_repository),
    ("logging.snapshot-policy", check_snapshot_policy),
)


def run(ctx: Context) -> list[Result]:
    return [result for check, body in CHECKS for result in ctx.run(check, functools.partial(body, ctx))]
