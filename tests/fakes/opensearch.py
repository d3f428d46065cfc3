"""OpenSearch 3.6 as `tools.verify` reads it: `_cat/indices`, cluster health, ISM explain, the
snapshot repository's `_verify` and the Snapshot Management policy's `_explain`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import Reply, Request, json_reply

PASSWORD = "opensearch-admin-password"


def today_index() -> str:
    return f"logs-{dt.datetime.now(dt.UTC):%Y.%m.%d}"


def index_row(name: str, health: str = "green", replicas: int = 0, status: str = "open") -> dict[str, str]:
    return {"index": name, "health": health, "status": status, "pri": "1", "rep": str(replicas), "docs.count": "4242"}


def ism_entry(index: str, policy: str | None = "logs-retention", enabled: bool = True) -> dict[str, Any]:
    return {
        "index.plugins.index_state_management.policy_id": policy,
        "index.opendistro.index_state_management.policy_id": policy,
        "index": index,
        "policy_id": policy,
        "enabled": enabled,
        "info": {"message": "Successfully initialized policy: logs-retention"},
    }


def sm_policy(status: str | None = "SUCCESS", enabled: bool = True) -> dict[str, Any]:
    creation: dict[str, Any] = {"current_state": "CREATION_FINISHED", "trigger": {"time": 1764205200000}}
    if status is not None:
        creation["latest_execution"] = {
            "status": status,
            "start_time": 1764118800000,
            "end_time": 1764118860000,
            "info": {"message": "Snapshot logs-daily-2026.11.26 creation end with state SUCCESS."}
            if status == "SUCCESS"
            else {"message": "Caught exception while creating snapshot.", "cause": "repository_exception: [logs-s3]"},
        }
    return {
        "name": "logs-daily",
        "creation": creation,
        "policy_seq_no": 3,
        "policy_primary_term": 1,
        "enabled": enabled,
    }


def _error(kind: str, reason: str, status: int) -> Reply:
    return json_reply(
        {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status},
        status,
    )


@dataclass
class FakeOpenSearch:
    indices: dict[str, dict[str, str]] = field(default_factory=lambda: {today_index(): index_row(today_index())})
    data_nodes: int = 1
    ism: dict[str, dict[str, Any]] = field(default_factory=lambda: {today_index(): ism_entry(today_index())})
    repository: str = "ok"  # ok | missing | broken
    sm: dict[str, Any] | None = field(default_factory=sm_policy)

    def handle(self, request: Request) -> Reply:
        if request.basic_auth() != ("admin", PASSWORD):
            return _error("security_exception", "missing authentication credentials for REST request", 401)
        path = request.path
        if request.method == "GET" and path.startswith("/_cat/indices/"):
            row = self.indices.get(path.removeprefix("/_cat/indices/"))
            if row is None:
                return _error("index_not_found_exception", f"no such index [{path}]", 404)
            assert request.query.get("format") == "json"
            return json_reply([row])
        if request.method == "GET" and path == "/_cluster/health":
            return json_reply(
                {"status": "green", "number_of_nodes": self.data_nodes, "number_of_data_nodes": self.data_nodes}
            )
        if request.method == "GET" and path.startswith("/_plugins/_ism/explain/"):
            index = path.removeprefix("/_plugins/_ism/explain/")
            entry = self.ism.get(index, {"index.plugins.index_state_management.policy_id": None, "enabled": None})
            return json_reply({index: entry, "total_managed_indices": 1 if index in self.ism else 0})
        if request.method == "POST" and path == "/_snapshot/logs-s3/_verify":
            return self._verify()
        if request.method == "GET" and path == "/_plugins/_sm/policies/logs-daily/_explain":
            return json_reply({"policies": [self.sm] if self.sm else []})
        return _error("invalid_request", f"{request.method} {path}", 400)

    def _verify(self) -> Reply:
        if self.repository == "missing":
            return _error("repository_missing_exception", "[logs-s3] missing", 404)
        if self.repository == "broken":
            return _error(
                "repository_verification_exception",
                "[logs-s3] path [hub] is not accessible on cluster-manager node",
                500,
            )
        return json_reply({"nodes": {"nX4fQx": {"name": "opensearch-cluster-master-0"}}})
