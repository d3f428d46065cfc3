"""Grafana's `/api/user` and the Longhorn UI's `/v1` behind basic auth."""

from __future__ import annotations

from dataclasses import dataclass

from tests.fakes.server import Reply, Request, json_reply

GRAFANA_PASSWORD = "grafana-admin-password"
LONGHORN_PASSWORD = "longhorn-ui-password"


@dataclass
class FakeGrafana:
    password: str = GRAFANA_PASSWORD

    def handle(self, request: Request) -> Reply:
        if request.basic_auth() != ("admin", self.password):
            return json_reply({"message": "invalid username or password"}, 401)
        if request.path == "/api/user":
            return json_reply({"id": 1, "login": "admin", "isGrafanaAdmin": True})
        return json_reply({"message": "not found"}, 404)


@dataclass
class FakeLonghornUi:
    password: str = LONGHORN_PASSWORD

    def handle(self, request: Request) -> Reply:
        if request.basic_auth() != ("admin", self.password):
            return Reply(401, b"<html>401 Authorization Required</html>", "text/html")
        if request.path.rstrip("/") == "/v1":
            return json_reply({"type": "apiVersion", "links": {"self": "/v1"}})
        return json_reply({"message": "not found"}, 404)
