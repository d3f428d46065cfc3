"""Thanos Query (behind the Query Frontend's basic auth): `/api/v1/stores` and instant queries,
in the shapes of Thanos v0.42."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import Reply, Request, json_reply

PASSWORD = "thanos-ui-password"


def now_ms(offset: dt.timedelta = dt.timedelta()) -> int:
    return int((dt.datetime.now(dt.UTC) + offset).timestamp() * 1000)


def labels(cluster: str) -> dict[str, str]:
    # kube-prometheus-stack's Prometheus adds its own external labels next to `cluster`.
    return {
        "cluster": cluster,
        "prometheus": "monitoring/kps-prometheus",
        "prometheus_replica": "prometheus-kps-prometheus-0",
    }


def sidecar(cluster: str, address: str, error: str | None = None) -> dict[str, Any]:
    return {
        "name": address,
        "lastCheck": "2026-11-27T10:00:00Z",
        "lastError": error,
        "labelSets": [labels(cluster)],
        "minTime": now_ms(-dt.timedelta(hours=24)),
        "maxTime": 9223372036854775807,
    }


def store_gateway(clusters: list[str], oldest: dt.timedelta = dt.timedelta(days=3)) -> dict[str, Any]:
    return {
        "name": "thanos-store.monitoring.svc:10901",
        "lastCheck": "2026-11-27T10:00:00Z",
        "lastError": None,
        "labelSets": [labels(c) for c in clusters],
        "minTime": now_ms(-oldest),
        "maxTime": now_ms(-dt.timedelta(hours=3)),
    }


def healthy_stores(clusters: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {
        "sidecar": [sidecar(c, f"{c}.example:30901") for c in clusters],
        "store": [store_gateway(clusters)],
    }


@dataclass
class FakeThanos:
    clusters: list[str]
    stores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    up_clusters: list[str] | None = None
    compact_halted: list[float] = field(default_factory=lambda: [0.0])

    def __post_init__(self) -> None:
        self.stores = self.stores or healthy_stores(self.clusters)
        self.up_clusters = list(self.clusters) if self.up_clusters is None else self.up_clusters

    def handle(self, request: Request) -> Reply:
        if request.basic_auth() != ("admin", PASSWORD):
            return Reply(401, b"401 Unauthorized", "text/plain", {"WWW-Authenticate": 'Basic realm="thanos"'})
        if request.method != "GET":
            return json_reply({"status": "error", "error": "method"}, 405)
        if request.path == "/api/v1/stores":
            return json_reply({"status": "success", "data": self.stores})
        if request.path == "/api/v1/query":
            return self._query(request.query.get("query", ""))
        return json_reply({"status": "error", "error": "not found"}, 404)

    def _query(self, promql: str) -> Reply:
        ts = now_ms() / 1000
        if promql == "count by (cluster) (up)":
            result = [{"metric": {"cluster": c} if c else {}, "value": [ts, "12"]} for c in self.up_clusters or []]
        elif promql == "thanos_compact_halted":
            result = [
                {"metric": {"__name__": "thanos_compact_halted", "cluster": self.clusters[0]}, "value": [ts, str(v)]}
                for v in self.compact_halted
            ]
        else:
            return json_reply({"status": "error", "errorType": "bad_data", "error": f"unknown query {promql}"}, 400)
        return json_reply({"status": "success", "data": {"resultType": "vector", "result": result}})
