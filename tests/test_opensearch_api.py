"""The OpenSearch dynamic provider against an in-process server speaking the API subset it uses.

`FakeOpenSearch` keeps objects the way OpenSearch does (server-added fields, settings as strings,
`_seq_no`/`_primary_term` on ISM and SM documents, 409 on a conflicting write, 404 for a missing
object) and can inject failures: error statuses for the next N matching requests, or a delay.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc
from pytest_httpserver import HTTPServer
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from werkzeug import Request, Response

from components import opensearch_api as api
from components import opensearch_policies as policies
from components.settings import LoggingSettings
from tests.conftest import CENTRAL_STACK, EDGE
from tests.fakes.pki import CA
from tests.fakes.server import FakeServer, json_reply

PASSWORD = "Adm1n-pass-word"
NEW_PASSWORD = "R0tated-pass-word"
UNREACHABLE = "http://127.0.0.1:9"

# --- the fake server ---------------------------------------------------------------------


def error(status: int, type_: str, reason: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"root_cause": [{"type": type_, "reason": reason}], "type": type_, "reason": reason}}


def strings(value: Any) -> Any:
    """OpenSearch returns index settings and repository settings as strings."""
    if isinstance(value, dict):
        return {key: strings(item) for key, item in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


@dataclass
class Stored:
    document: dict[str, Any]
    seq_no: int = 0
    primary_term: int = 1


@dataclass
class Injected:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 500
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0


class FakeOpenSearch:
    """Snapshot repositories, ISM, SM, index templates and the security API, in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Stored] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any, tuple[str, str] | None]] = []
        self.injected: list[Injected] = []
        self.seq_no = 0
        self.lock = threading.Lock()
        self.admin_password = PASSWORD
        """The one password the security index holds for `admin` (a rotation inside OpenSearch changes it)."""

    # failure injection
    def fail(self, method: str, path: str, status: int = 500, times: int = 1, reason: str = "injected") -> None:
        self.injected.append(Injected(method, re.compile(path), times, status, error(status, "injected", reason)[1]))

    def delay(self, method: str, path: str, seconds: float, times: int = 100) -> None:
        self.injected.append(Injected(method, re.compile(path), times, 200, {}, seconds))

    def calls(self, method: str, path: str) -> list[tuple[str, str, dict[str, str], Any, tuple[str, str] | None]]:
        return [r for r in self.requests if r[0] == method and re.fullmatch(path, r[1])]

    # WSGI handler
    def __call__(self, request: Request) -> Response:
        path = request.path.lstrip("/")
        body = request.get_json(silent=True)
        auth = request.authorization
        credentials = (auth.username or "", auth.password or "") if auth else None
        with self.lock:
            self.requests.append((request.method, path, dict(request.args), body, credentials))
            rule = next((i for i in self.injected if i.method == request.method and i.path.fullmatch(path)), None)
            if rule:
                rule.times -= 1
                if rule.times == 0:
                    self.injected.remove(rule)
        if rule and rule.delay:
            time.sleep(rule.delay)
        elif rule:
            return Response(json.dumps(rule.body), rule.status, content_type="application/json")
        if credentials != ("admin", self.admin_password):
            status, payload = 401, {"status": "UNAUTHORIZED", "message": "Unauthorized"}
        else:
            with self.lock:
                status, payload = self.route(request.method, path, dict(request.args), body)
        return Response(json.dumps(payload), status, content_type="application/json")

    def route(self, method: str, path: str, args: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        if path == "_plugins/_security/api/account" and method == "GET":
            return 200, {"user_name": "admin", "is_reserved": True, "is_internal_user": True, "roles": ["all_access"]}
        if match := re.fullmatch(r"_snapshot/([^/]+)/_verify", path):
            if ("repo", match[1]) not in self.objects:
                return error(404, "repository_missing_exception", f"[{match[1]}] missing")
            return 200, {"nodes": {"n1": {"name": "opensearch-cluster-master-0"}}}
        for pattern, kind in (
            (r"_snapshot/([^/]+)", "repo"),
            (r"_plugins/_ism/policies/([^/]+)", "ism"),
            (r"_plugins/_sm/policies/([^/]+)", "sm"),
            (r"_index_template/([^/]+)", "template"),
            (r"_plugins/_security/api/(roles|internalusers|rolesmapping)/([^/]+)", "security"),
        ):
            if match := re.fullmatch(pattern, path):
                name = match[match.lastindex or 1]
                key = (f"security/{match[1]}" if kind == "security" else kind, name)
                return getattr(self, f"_{kind}")(method, key, args, body)
        return error(400, "illegal_argument_exception", f"no handler for {method} /{path}")

    def _next_seq(self) -> int:
        self.seq_no += 1
        return self.seq_no

    def _get_or_missing(self, key: tuple[str, str], missing: tuple[int, dict[str, Any]]) -> Any:
        stored = self.objects.get(key)
        return (stored, None) if stored else (None, missing)

    def _delete(self, key: tuple[str, str], missing: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        if self.objects.pop(key, None) is None:
            return missing
        return 200, {"acknowledged": True}

    def _repo(self, method: str, key: tuple[str, str], args: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        missing = error(404, "repository_missing_exception", f"[{key[1]}] missing")
        if method == "PUT":
            if set(body.get("settings", {})) & {"access_key", "secret_key"}:
                return error(400, "illegal_argument_exception", "Setting [access_key] is insecure")
            self.objects[key] = Stored({"type": body["type"], "settings": strings(body["settings"])})
            return 200, {"acknowledged": True}
        if method == "DELETE":
            return self._delete(key, missing)
        stored, problem = self._get_or_missing(key, missing)
        return problem or (200, {key[1]: stored.document})

    def _ism(self, method: str, key: tuple[str, str], args: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        missing = error(404, "status_exception", "Policy not found")
        stored = self.objects.get(key)
        if method == "PUT":
            if "policy" not in body:
                return error(400, "illegal_argument_exception", "Required [policy] is missing")
            if "if_seq_no" in args:
                if not stored or (int(args["if_seq_no"]), int(args["if_primary_term"])) != (
                    stored.seq_no,
                    stored.primary_term,
                ):
                    return error(409, "version_conflict_engine_exception", "version conflict, required seqNo")
            elif stored:
                return error(409, "version_conflict_engine_exception", f"[{key[1]}]: version conflict, document exists")
            document = copy.deepcopy(body["policy"])
            document.update(policy_id=key[1], last_updated_time=1700000000000, schema_version=19)
            document["error_notification"] = None
            for state in document["states"]:
                for action in state["actions"]:
                    action["retry"] = {"count": 3, "backoff": "exponential", "delay": "1m"}
            for template in document.get("ism_template", []):
                template["last_updated_time"] = 1700000000000
            self.objects[key] = Stored(document, self._next_seq())
            return (200 if stored else 201), {"_id": key[1], "_seq_no": self.seq_no, "_primary_term": 1}
        if method == "DELETE":
            return self._delete(key, (404, {"_id": key[1], "result": "not_found"}))
        if not stored:
            return missing
        return 200, {
            "_id": key[1],
            "_seq_no": stored.seq_no,
            "_primary_term": stored.primary_term,
            "policy": stored.document,
        }

    def _sm(self, method: str, key: tuple[str, str], args: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        stored = self.objects.get(key)
        if method in ("POST", "PUT"):
            if "condition" not in body.get("deletion", {"condition": None}):
                # The real parser ignores unknown keys (such as `delete_condition`), then requires `condition`.
                return error(400, "illegal_argument_exception", "condition must not be null.")
            if method == "POST" and stored:
                return error(409, "version_conflict_engine_exception", f"[{key[1]}-sm-policy]: document exists")
            if method == "PUT":
                if "if_seq_no" not in args:
                    return error(400, "illegal_argument_exception", "if_seq_no and if_primary_term are required")
                if not stored or int(args["if_seq_no"]) != stored.seq_no:
                    return error(409, "version_conflict_engine_exception", "version conflict")
            document = copy.deepcopy(body)
            document.update(name=key[1], schema_version=19, last_updated_time=1700000000000)
            document["schedule"] = {"interval": {"start_time": 1700000000000, "period": 1, "unit": "Minutes"}}
            self.objects[key] = Stored(document, self._next_seq())
            return 201, {"_id": f"{key[1]}-sm-policy", "_seq_no": self.seq_no, "_primary_term": 1}
        if method == "DELETE":
            return self._delete(key, error(404, "status_exception", "Snapshot management policy not found"))
        if not stored:
            return error(404, "status_exception", "Snapshot management policy not found")
        return 200, {
            "_id": f"{key[1]}-sm-policy",
            "_seq_no": stored.seq_no,
            "_primary_term": 1,
            "sm_policy": stored.document,
        }

    def _template(
        self, method: str, key: tuple[str, str], args: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        missing = error(404, "index_template_missing_exception", f"index template matching [{key[1]}] not found")
        if method == "PUT":
            document = copy.deepcopy(body)
            document.setdefault("composed_of", [])
            settings = document.get("template", {}).get("settings")
            if settings:
                document["template"]["settings"] = strings(settings)
            self.objects[key] = Stored(document)
            return 200, {"acknowledged": True}
        if method == "DELETE":
            return self._delete(key, missing)
        stored, problem = self._get_or_missing(key, missing)
        return problem or (200, {"index_templates": [{"name": key[1], "index_template": stored.document}]})

    def _security(
        self, method: str, key: tuple[str, str], args: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        missing = (404, {"status": "NOT_FOUND", "message": f"Resource '{key[1]}' not found."})
        if method == "PUT":
            document = copy.deepcopy(body)
            if key[0] == "security/internalusers":
                if len(document.get("password", "")) < 8:
                    return 400, {"status": "error", "reason": "Weak password"}
                document["hash"] = ""
                document.pop("password")
            document.update(reserved=False, hidden=False, static=False)
            existed = key in self.objects
            self.objects[key] = Stored(document)
            return (200, {"status": "OK"}) if existed else (201, {"status": "CREATED"})
        if method == "DELETE":
            return self._delete(key, missing)
        stored, problem = self._get_or_missing(key, missing)
        return problem or (200, {key[1]: stored.document})


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    http = HTTPServer(host="127.0.0.1", threaded=True)
    http.start()
    try:
        yield http
    finally:
        http.clear()
        http.stop()


@pytest.fixture
def fake(server: HTTPServer) -> tuple[FakeOpenSearch, str]:
    """A fresh, empty OpenSearch for each test, and its URL."""
    opensearch = FakeOpenSearch()
    server.clear_all_handlers()
    server.expect_request(re.compile(".*")).respond_with_handler(opensearch)
    return opensearch, server.url_for("/").rstrip("/")


# --- helpers -----------------------------------------------------------------------------

LOGGING = LoggingSettings()


def props(url: str, name: str, body: dict[str, Any], **connection: Any) -> dict[str, Any]:
    """Inputs as the provider receives them (numbers arrive as floats through gRPC)."""
    base = {
        "url": url,
        "username": "admin",
        "password": PASSWORD,
        "verify_tls": False,
        "timeout_seconds": 2.0,
        "retries": 3.0,
        "backoff_factor": 0.01,
        "object_name": name,
        "body": as_floats(body),
        "__provider": "serialized",
    }
    return base | connection


def as_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_floats(item) for item in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def provider(kind: api.Kind) -> api.OpenSearchObjectProvider:
    return api.OpenSearchObjectProvider(kind)


ISM = provider(api.IsmPolicyKind())
SM = provider(api.SnapshotPolicyKind())
REPO = provider(api.SnapshotRepositoryKind())
TEMPLATE = provider(api.IndexTemplateKind())
USER = provider(api.InternalUserKind())


# --- create ------------------------------------------------------------------------------


def test_create_registers_the_repository_and_verifies_it(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    body = policies.snapshot_repository("opensearch-logs", EDGE)
    result = REPO.create(props(url, "logs-s3", body))
    assert result.id == "logs-s3"
    assert "__provider" not in (result.outs or {})
    assert server.objects["repo", "logs-s3"].document["settings"] == {
        "bucket": "opensearch-logs",
        "base_path": EDGE,
        "client": "default",
        "s3_async_client_type": "netty",
        "shard_path_type": "fixed",
    }
    assert [r[0] for r in server.requests] == ["GET", "PUT", "POST"]
    assert server.calls("POST", "_snapshot/logs-s3/_verify")


def test_numbers_are_sent_as_integers_not_floats(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    SM.create(props(url, "logs-daily", policies.snapshot_policy(LOGGING)))
    sent = server.calls("POST", "_plugins/_sm/policies/logs-daily")[0][3]
    assert sent["deletion"]["condition"]["min_count"] == 7
    assert isinstance(sent["deletion"]["condition"]["min_count"], int)


def test_a_second_create_adopts_the_existing_object_instead_of_duplicating_it(
    fake: tuple[FakeOpenSearch, str],
) -> None:
    server, url = fake
    body = policies.snapshot_policy(LOGGING)
    SM.create(props(url, "logs-daily", body))
    SM.create(props(url, "logs-daily", body))  # e.g. after the state was lost mid-`up`
    assert len([key for key in server.objects if key[0] == "sm"]) == 1
    assert len(server.calls("POST", "_plugins/_sm/policies/logs-daily")) == 1, "no second create"
    update = server.calls("PUT", "_plugins/_sm/policies/logs-daily")
    assert len(update) == 1 and update[0][2] == {"if_seq_no": "1", "if_primary_term": "1"}


def test_a_create_that_races_another_writer_updates_that_object(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    body = policies.ism_policy(LOGGING)
    # Someone else created the policy after our read said "missing": our create gets 409 and adopts it.
    server.objects["ism", "logs-retention"] = Stored({"description": "other writer", "states": []}, seq_no=5)
    server.fail("GET", "_plugins/_ism/policies/logs-retention", status=404, times=1)
    ISM.create(props(url, "logs-retention", body))
    puts = server.calls("PUT", "_plugins/_ism/policies/logs-retention")
    assert [put[2] for put in puts] == [{}, {"if_seq_no": "5", "if_primary_term": "1"}]
    assert server.objects["ism", "logs-retention"].document["description"] == body["description"]


# --- update ------------------------------------------------------------------------------


def test_update_replaces_the_ism_policy_with_its_sequence_numbers(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    old = props(url, "logs-retention", policies.ism_policy(LOGGING))
    ISM.create(old)
    seq_no = server.objects["ism", "logs-retention"].seq_no
    new = props(url, "logs-retention", policies.ism_policy(LoggingSettings(retention_days=30)))
    ISM.update("logs-retention", old, new)
    put = server.calls("PUT", "_plugins/_ism/policies/logs-retention")[-1]
    assert put[2] == {"if_seq_no": str(seq_no), "if_primary_term": "1"}
    stored = server.objects["ism", "logs-retention"].document
    assert stored["states"][0]["transitions"][0]["conditions"] == {"min_index_age": "30d"}


def test_update_of_a_template_is_a_plain_replace(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    old = props(url, "logs", policies.index_template(0))
    TEMPLATE.create(old)
    TEMPLATE.update("logs", old, props(url, "logs", policies.index_template(1)))
    settings = server.objects["template", "logs"].document["template"]["settings"]
    assert settings == {"index": {"number_of_shards": "1", "number_of_replicas": "1"}}


# --- diff --------------------------------------------------------------------------------


def test_diff_is_stable_although_the_server_adds_fields_and_stringifies_numbers(
    fake: tuple[FakeOpenSearch, str],
) -> None:
    _server, url = fake
    for prov, name, body in (
        (ISM, "logs-retention", policies.ism_policy(LOGGING)),
        (SM, "logs-daily", policies.snapshot_policy(LOGGING)),
        (REPO, "logs-s3", policies.snapshot_repository("opensearch-logs", CENTRAL_STACK)),
        (TEMPLATE, "logs", policies.index_template(0)),
        (USER, "fluent-bit", {"password": "Fluent-b1t-pass", "backend_roles": []}),
    ):
        state = props(url, name, body)
        prov.create(state)
        result = prov.diff(name, state, props(url, name, body))
        assert result.changes is False, name


def test_a_changed_payload_in_a_new_program_version_is_an_update(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    old = props(url, "logs-daily", policies.snapshot_policy(LOGGING))
    SM.create(old)
    requests_before = len(server.requests)
    new = props(url, "logs-daily", policies.snapshot_policy(LoggingSettings(snapshot_retention="365d")))
    result = SM.diff("logs-daily", old, new)
    assert result.changes is True
    assert not result.replaces
    assert len(server.requests) == requests_before, "an input change needs no round trip"


def test_diff_sees_drift_made_outside_pulumi(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    state = props(url, "logs-retention", policies.ism_policy(LOGGING))
    ISM.create(state)
    server.objects["ism", "logs-retention"].document["states"][0]["transitions"][0]["conditions"] = {
        "min_index_age": "3d"
    }
    assert ISM.diff("logs-retention", state, state).changes is True


def test_diff_sees_an_object_deleted_outside_pulumi(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    state = props(url, "logs", policies.index_template(0))
    TEMPLATE.create(state)
    del server.objects["template", "logs"]
    assert TEMPLATE.diff("logs", state, state).changes is True


def test_diff_ignores_the_password_the_api_never_returns_but_sees_a_new_one(fake: tuple[FakeOpenSearch, str]) -> None:
    _server, url = fake
    state = props(url, "fluent-bit", {"password": "Fluent-b1t-pass", "backend_roles": []})
    USER.create(state)
    assert USER.diff("fluent-bit", state, state).changes is False
    rotated = props(url, "fluent-bit", {"password": "An0ther-pass-word", "backend_roles": []})
    assert USER.diff("fluent-bit", state, rotated).changes is True


def test_renaming_replaces_the_object(fake: tuple[FakeOpenSearch, str]) -> None:
    _server, url = fake
    body = policies.index_template(0)
    result = TEMPLATE.diff("logs", props(url, "logs", body), props(url, "logs-v2", body))
    assert result.changes is True and result.replaces == ["object_name"]


def test_diff_during_preview_with_unknown_inputs_reports_a_change_without_calling(
    fake: tuple[FakeOpenSearch, str],
) -> None:
    server, url = fake
    state = props(url, "fluent-bit", {"password": "Fluent-b1t-pass", "backend_roles": []})
    preview = props(url, "fluent-bit", {"password": rpc.UNKNOWN, "backend_roles": []})
    assert USER.diff("fluent-bit", state, preview).changes is True
    assert server.requests == []


def test_diff_far_from_the_cluster_compares_inputs_only() -> None:
    state = props("http://127.0.0.1:9", "logs", policies.index_template(0), retries=0.0)
    started = time.monotonic()
    assert TEMPLATE.diff("logs", state, state).changes is False
    assert time.monotonic() - started < 5


def test_read_returns_the_live_object_for_refresh(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    state = props(url, "logs-retention", policies.ism_policy(LOGGING))
    ISM.create(state)
    server.objects["ism", "logs-retention"].document["description"] = "edited by hand"
    refreshed = ISM.read("logs-retention", state)
    assert refreshed.id == "logs-retention"
    outs = refreshed.outs or {}
    assert outs["body"]["description"] == "edited by hand"
    assert "policy_id" not in outs["body"], "server-only fields stay out of the state"
    del server.objects["ism", "logs-retention"]
    assert ISM.read("logs-retention", state).id == ""


# --- failures ----------------------------------------------------------------------------


def test_a_500_then_success_is_retried_with_backoff(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.fail("PUT", "_index_template/logs", status=500, times=2)
    TEMPLATE.create(props(url, "logs", policies.index_template(0)))
    assert len(server.calls("PUT", "_index_template/logs")) == 3
    assert ("template", "logs") in server.objects


def test_429_is_retried_too(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.fail("GET", "_snapshot/logs-s3", status=429, times=1)
    REPO.create(props(url, "logs-s3", policies.snapshot_repository("b", "c")))
    assert len(server.calls("GET", "_snapshot/logs-s3")) == 2


def test_retries_are_bounded_and_the_last_reason_is_reported(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.fail("POST", "_snapshot/logs-s3/_verify", status=500, times=100, reason="store location is not accessible")
    with pytest.raises(api.OpenSearchError, match=r"snapshot repository logs-s3: .*HTTP 500.*store location"):
        REPO.create(props(url, "logs-s3", policies.snapshot_repository("b", "c"), retries=2.0))
    assert len(server.calls("POST", "_snapshot/logs-s3/_verify")) == 3


def test_a_400_fails_at_once_with_opensearchs_reason(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    body = policies.snapshot_policy(LOGGING)
    # The research note's shape (`deletion.delete_condition`) is not the API's (`deletion.condition`).
    body["deletion"]["delete_condition"] = body["deletion"].pop("condition")
    with pytest.raises(api.OpenSearchError) as raised:
        SM.create(props(url, "logs-daily", body))
    message = str(raised.value)
    assert "snapshot management policy logs-daily" in message
    assert "HTTP 400" in message and "illegal_argument_exception: condition must not be null." in message
    assert len(server.calls("POST", "_plugins/_sm/policies/logs-daily")) == 1, "4xx is not retried"


def test_the_security_plugins_error_shape_is_surfaced_too(fake: tuple[FakeOpenSearch, str]) -> None:
    _server, url = fake
    with pytest.raises(api.OpenSearchError, match="HTTP 400: Weak password"):
        USER.create(props(url, "fluent-bit", {"password": "short"}))


def test_wrong_credentials_fail_with_401(fake: tuple[FakeOpenSearch, str]) -> None:
    _server, url = fake
    with pytest.raises(api.OpenSearchError, match="HTTP 401: Unauthorized"):
        TEMPLATE.create(props(url, "logs", policies.index_template(0), password="wrong"))


def test_a_request_that_times_out_is_retried_then_fails(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.delay("GET", "_index_template/logs", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(api.OpenSearchUnreachable, match=r"no answer after 2 retries.*[Rr]ead timed out"):
        TEMPLATE.create(props(url, "logs", policies.index_template(0), timeout_seconds=0.2, retries=2.0))
    assert time.monotonic() - started < 5
    assert len(server.calls("GET", "_index_template/logs")) == 3
    assert not server.calls("PUT", "_index_template/logs")


# --- delete ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prov", "name", "body"),
    [
        (REPO, "logs-s3", policies.snapshot_repository("b", "c")),
        (ISM, "logs-retention", policies.ism_policy(LOGGING)),
        (SM, "logs-daily", policies.snapshot_policy(LOGGING)),
        (TEMPLATE, "logs", policies.index_template(0)),
        (USER, "fluent-bit", {"password": "Fluent-b1t-pass"}),
    ],
)
def test_delete_removes_the_object_and_deleting_a_missing_one_succeeds(
    fake: tuple[FakeOpenSearch, str], prov: api.OpenSearchObjectProvider, name: str, body: dict[str, Any]
) -> None:
    server, url = fake
    state = props(url, name, body)
    prov.create(state)
    assert len(server.objects) == 1
    prov.delete(name, state)
    assert server.objects == {}
    prov.delete(name, state)  # already gone: still a success


# --- the admin-password guard ------------------------------------------------------------

GUARD = api.AdminCredentialsProvider()
ROTATION = 'README section "Rotate the OpenSearch admin password"'


def credentials(url: str, **changes: Any) -> dict[str, Any]:
    """The guard's inputs as the provider receives them."""
    base = {
        "url": url,
        "username": "admin",
        "password": PASSWORD,
        "verify_tls": False,
        "timeout_seconds": 2.0,
        "retries": 3.0,
        "backoff_factor": 0.01,
        "__provider": "serialized",
    }
    return base | changes


def password_checks(server: FakeOpenSearch) -> list[tuple[str, str] | None]:
    """The credentials of every password check the guard sent."""
    return [request[4] for request in server.calls("GET", "_plugins/_security/api/account")]


def test_create_checks_that_opensearch_accepts_the_admin_password(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    result = GUARD.create(credentials(url))
    assert result.id == "admin"
    outs = result.outs or {}
    assert "__provider" not in outs and outs["password"] == PASSWORD
    assert password_checks(server) == [("admin", PASSWORD)]
    assert server.objects == {}, "the guard writes nothing"


def test_create_with_a_password_opensearch_rejects_fails_with_the_way_out(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.admin_password = NEW_PASSWORD  # changed inside OpenSearch only, or a state that lost the password
    with pytest.raises(api.AdminPasswordRejected) as raised:
        GUARD.create(credentials(url))
    message = str(raised.value)
    assert f"OpenSearch at {url} does not accept the stack's admin password (HTTP 401)" in message
    assert "took the admin password from internal_users.yml when it created its security index" in message
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" not in message, "the demo installer's variable plays no part"
    assert "`pulumi config set --secret opensearchAdminPassword <password>`" in message
    assert ROTATION in message
    assert len(password_checks(server)) == 1, "a 401 is an answer, not retried"


def test_diff_of_unchanged_credentials_is_no_change_and_calls_nothing(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    assert GUARD.diff("admin", credentials(url), credentials(url)).changes is False
    assert server.requests == []


def test_diff_of_a_new_password_opensearch_accepts_is_a_change(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.admin_password = NEW_PASSWORD  # rotated inside OpenSearch first, as the README says
    result = GUARD.diff("admin", credentials(url), credentials(url, password=NEW_PASSWORD))
    assert result.changes is True
    assert not result.replaces
    assert password_checks(server) == [("admin", NEW_PASSWORD)]


def test_diff_of_a_new_password_opensearch_rejects_fails_the_preview(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    with pytest.raises(api.AdminPasswordRejected) as raised:
        GUARD.diff("admin", credentials(url), credentials(url, password=NEW_PASSWORD))
    message = str(raised.value)
    assert message.startswith("The OpenSearch admin password changed in the stack but not in OpenSearch: ")
    assert f"{url} rejects the new one (HTTP 401)" in message
    assert "internal_users.yml" in message and "account API" in message and "zxcvbn" in message
    assert "reserved" not in message, "our admin is not reserved: it changes its own password"
    assert ROTATION in message
    assert password_checks(server) == [("admin", NEW_PASSWORD)], "checked with the new password"


def test_diff_of_a_new_password_far_from_the_cluster_is_a_change_update_will_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = credentials(UNREACHABLE, timeout_seconds=30.0, retries=6.0)
    started = time.monotonic()
    assert GUARD.diff("admin", old, old | {"password": NEW_PASSWORD}).changes is True
    assert time.monotonic() - started < 5, "a preview far from the cluster must not hang"
    assert "opensearch: the new admin password not checked: " in capsys.readouterr().err


def test_diff_of_a_new_password_while_opensearch_fails_is_a_change_update_will_check(
    fake: tuple[FakeOpenSearch, str],
) -> None:
    server, url = fake
    server.fail("GET", "_plugins/_security/api/account", status=503, times=100)
    assert GUARD.diff("admin", credentials(url), credentials(url, password=NEW_PASSWORD)).changes is True
    assert len(password_checks(server)) == 1 + api.DRIFT_CHECK_RETRIES


def test_diff_of_a_password_preview_does_not_know_yet_is_a_change_without_calling(
    fake: tuple[FakeOpenSearch, str],
) -> None:
    server, url = fake
    assert GUARD.diff("admin", credentials(url), credentials(url, password=rpc.UNKNOWN)).changes is True
    assert server.requests == []


def test_update_checks_the_new_password_and_records_it(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.admin_password = NEW_PASSWORD
    result = GUARD.update("admin", credentials(url), credentials(url, password=NEW_PASSWORD))
    assert (result.outs or {})["password"] == NEW_PASSWORD
    assert password_checks(server) == [("admin", NEW_PASSWORD)]


def test_update_to_a_password_opensearch_rejects_fails_with_the_way_out(fake: tuple[FakeOpenSearch, str]) -> None:
    _server, url = fake
    with pytest.raises(api.AdminPasswordRejected, match="changed in the stack but not in OpenSearch") as raised:
        GUARD.update("admin", credentials(url), credentials(url, password=NEW_PASSWORD))
    assert ROTATION in str(raised.value)


def test_update_for_another_connection_setting_checks_the_password_again(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    server.admin_password = NEW_PASSWORD
    with pytest.raises(api.AdminPasswordRejected, match="does not accept the stack's admin password"):
        GUARD.update("admin", credentials(UNREACHABLE), credentials(url))


def test_deleting_the_guard_touches_nothing_in_opensearch(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    GUARD.delete("admin", credentials(url))
    assert server.requests == []


# --- transport ---------------------------------------------------------------------------


def test_retries_come_from_urllib3_mounted_through_the_adapter() -> None:
    client = api.Client(api.Connection("https://opensearch.example", "admin", "x", retries=4))
    adapter = client.session.get_adapter("https://opensearch.example")
    assert isinstance(adapter, HTTPAdapter)
    retry = adapter.max_retries
    assert isinstance(retry, Retry)
    assert retry.total == 4
    assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist or ())
    assert retry.backoff_factor > 0


def test_requests_carry_basic_auth_and_a_timeout(
    fake: tuple[FakeOpenSearch, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = fake
    client = api.Client(api.Connection(url, "admin", PASSWORD, timeout_seconds=7, retries=0))
    captured: dict[str, Any] = {}
    original = client.session.request

    def spy(method: str, address: str, **kwargs: Any) -> Any:
        captured.update(kwargs)
        return original(method, address, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    client.call("GET", "_index_template/logs", allow=(404,))
    assert captured["timeout"] == (api.CONNECT_TIMEOUT_SECONDS, 7)
    assert server.requests[-1][4] == ("admin", PASSWORD)


def test_matching_projects_the_live_object_onto_the_body() -> None:
    desired = {"a": 1, "b": {"c": True}, "d": [{"e": "x"}]}
    assert api.matches(desired, {"a": "1", "b": {"c": "true", "extra": 2}, "d": [{"e": "x", "retry": {}}], "z": 0})
    assert not api.matches(desired, {"a": "2", "b": {"c": True}, "d": [{"e": "x"}]})
    assert not api.matches(desired, {"a": 1, "b": {"c": True}, "d": [{"e": "x"}, {"e": "y"}]})
    assert not api.matches(desired, {"a": 1, "d": [{"e": "x"}]})


def test_drift_checks_use_a_short_leash() -> None:
    quick = api.Connection("https://opensearch.example", "admin", "x", timeout_seconds=60, retries=8).quick()
    assert quick.retries == 1
    assert quick.timeout_seconds <= 5 and quick.connect_timeout_seconds <= 3


# --- where Pulumi connects -----------------------------------------------------------------

INGRESS_NAME = "opensearch.edge.lab.test"


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeServer, CA, list[str | None]]]:
    """Traefik as the operator's machine sees it: a certificate for the ingress name only, no IP."""
    ca = CA(tmp_path_factory.mktemp("pki"), "platform-ca")
    server = FakeServer(lambda request: json_reply({"user_name": "admin"}), ca.issue("ingress", (INGRESS_NAME,)))
    names: list[str | None] = []
    server.server.socket.context.sni_callback = lambda _socket, name, _context: names.append(name)  # type: ignore[attr-defined]
    yield server, ca, names
    server.stop()


def test_the_api_is_reached_at_an_address_asking_for_the_ingress_name(
    ingress: tuple[FakeServer, CA, list[str | None]],
) -> None:
    server, ca, names = ingress
    direct = api.Connection(
        f"https://127.0.0.1:{server.port}", "admin", PASSWORD, server_name=INGRESS_NAME, ca_certificate=ca.pem
    )
    api.verify_admin(direct)
    assert names[-1] == INGRESS_NAME, "TLS asks for the ingress name (SNI), so Traefik serves its certificate"
    assert server.requests[-1].headers["host"] == INGRESS_NAME, "and the router sees it as Host"


def test_without_the_server_name_the_address_does_not_match_the_certificate(
    ingress: tuple[FakeServer, CA, list[str | None]],
) -> None:
    server, ca, _ = ingress
    bare = api.Connection(f"https://127.0.0.1:{server.port}", "admin", PASSWORD, ca_certificate=ca.pem, retries=0)
    with pytest.raises(api.OpenSearchUnreachable, match=r"CERTIFICATE_VERIFY_FAILED|match"):
        api.verify_admin(bare)


def test_a_named_server_is_verified_against_the_platform_ca_only(
    ingress: tuple[FakeServer, CA, list[str | None]], tmp_path: Path
) -> None:
    server, _, _ = ingress
    stranger = CA(tmp_path, "another-ca")
    direct = api.Connection(
        f"https://127.0.0.1:{server.port}",
        "admin",
        PASSWORD,
        server_name=INGRESS_NAME,
        ca_certificate=stranger.pem,
        retries=0,
    )
    with pytest.raises(api.OpenSearchUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        api.verify_admin(direct)


def test_a_proxy_from_the_environment_is_not_asked_for_the_hosts_address(
    monkeypatch: pytest.MonkeyPatch, ingress: tuple[FakeServer, CA, list[str | None]]
) -> None:
    server, ca, _ = ingress
    monkeypatch.setenv("HTTPS_PROXY", UNREACHABLE)
    direct = api.Connection(
        f"https://127.0.0.1:{server.port}", "admin", PASSWORD, server_name=INGRESS_NAME, ca_certificate=ca.pem
    )
    api.verify_admin(direct)
