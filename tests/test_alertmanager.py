"""Alert delivery: receivers from stack config, secrets by file, routing by severity, inhibition,
egress to exactly the receivers; the configuration passes `amtool check-config`, `amtool config
routes test` shows each severity reaching its receiver, and a real Alertmanager delivers an alert
to a webhook on localhost."""

from __future__ import annotations

import base64
import copy
import http.server
import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alertmanager
from components.settings import PROJECT, AlertingSettings, SettingsError, parse_settings
from tests.conftest import CENTRAL_STACK, EDGE, raw_config, requires_charts, run_fixture
from tools.cluster import cluster
from tools.engine import Rendering, Secret, unwrap

AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool is not installed (Debian: prometheus-alertmanager)")
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None, reason="the Alertmanager binary is not installed (Debian: prometheus-alertmanager)"
)

WEBHOOK = {"egress": [{"cidr": "203.0.113.10/32", "port": 443}]}
EMAIL = {
    "to": "oncall@example.org",
    "from": "alertmanager@example.org",
    "smarthost": "smtp.example.org:587",
    "username": "alertmanager",
    "egress": [{"cidr": "198.51.100.25/32", "port": 587}],
}
WEBHOOK_URL = f"{PROJECT}:alertWebhookUrl"
SMTP_PASSWORD = f"{PROJECT}:alertSmtpPassword"


def with_receivers(stack: str = EDGE, **alerting: Any) -> Rendering:
    overrides: dict[str, str | None] = {f"{PROJECT}:alerting": json.dumps(alerting)}
    if "webhook" in alerting:
        overrides[WEBHOOK_URL] = "https://chat.example.org/hooks/T0KEN"
    if "email" in alerting:
        overrides[SMTP_PASSWORD] = "smtp-s3cret"
    return run_fixture(stack, overrides)


_both: dict[str, Rendering] = {}


def both_receivers() -> Rendering:
    if "edge" not in _both:
        _both["edge"] = with_receivers(webhook=WEBHOOK, email=EMAIL)
    return _both["edge"]


def am_values(stack: Rendering) -> dict[str, Any]:
    return dict(stack.release("kube-prometheus-stack").inputs["values"]["alertmanager"])


def settings_of(**alerting: Any) -> AlertingSettings:
    return AlertingSettings.model_validate(alerting)


# --- settings -----------------------------------------------------------------------------

BROKEN = [
    (
        "email without smarthost",
        {"email": {k: v for k, v in EMAIL.items() if k != "smarthost"}},
        "alerting.email.smarthost",
    ),
    (
        "smarthost with a scheme",
        {"email": {**EMAIL, "smarthost": "smtp://smtp.example.org:587"}},
        "alerting.email.smarthost",
    ),
    (
        "email egress misses the smarthost's port",
        {"email": {**EMAIL, "egress": [{"cidr": "198.51.100.25/32", "port": 25}]}},
        "port 587",
    ),
    ("bad recipient", {"email": {**EMAIL, "to": "oncall"}}, "alerting.email.to"),
    ("webhook without egress", {"webhook": {}}, "alerting.webhook.egress"),
    ("webhook egress to anywhere", {"webhook": {"egress": [{"cidr": "0.0.0.0/0", "port": 443}]}}, "every address"),
    (
        "egress that is no address block",
        {"webhook": {"egress": [{"cidr": "chat.example.org", "port": 443}]}},
        "address block",
    ),
    ("egress without port", {"webhook": {"egress": [{"cidr": "203.0.113.10/32"}]}}, "alerting.webhook.egress.0.port"),
    ("a receiver nobody knows", {"slack": {}}, "alerting.slack is not a known setting"),
]


@pytest.mark.parametrize(("alerting", "words"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_receiver_config_that_cannot_work_is_refused_with_one_line_naming_the_key(
    alerting: dict[str, Any], words: str
) -> None:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw_config(EDGE, alerting=alerting), EDGE)
    assert "\n" not in str(error.value)
    assert words in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("alerting", "overrides", "message"),
    [
        ({"webhook": WEBHOOK}, {}, r"alertWebhookUrl is required with alerting\.webhook"),
        ({"email": EMAIL}, {}, r"alertSmtpPassword is required with alerting\.email"),
        ({}, {WEBHOOK_URL: "https://x"}, r"alertWebhookUrl is set but alerting\.webhook is not"),
        ({}, {SMTP_PASSWORD: "x"}, r"alertSmtpPassword is set but alerting\.email is not"),
    ],
    ids=["webhook without its URL", "email without its password", "URL without webhook", "password without email"],
)
def test_a_receiver_needs_its_secret_and_a_secret_its_receiver(
    alerting: dict[str, Any], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        run_fixture(EDGE, {f"{PROJECT}:alerting": json.dumps(alerting), **overrides})


# --- what is deployed -----------------------------------------------------------------------


def test_the_receivers_secrets_are_a_kubernetes_secret_mounted_into_alertmanager() -> None:
    stack = both_receivers()
    secret = stack.k8s("Secret", alertmanager.RECEIVERS_SECRET, "monitoring")
    data = secret.inputs["stringData"]
    assert isinstance(data, Secret)
    assert set(unwrap(data)) == {alertmanager.WEBHOOK_URL_KEY, alertmanager.SMTP_PASSWORD_KEY}
    assert am_values(stack)["alertmanagerSpec"]["secrets"] == [alertmanager.RECEIVERS_SECRET]
    assert stack.depends_on(stack.release("kube-prometheus-stack"), secret)  # mounted: it must exist first


def test_no_secret_is_in_the_helm_values_only_the_files_that_hold_them() -> None:
    stack = both_receivers()
    values = json.dumps(stack.release("kube-prometheus-stack").inputs["values"])
    assert "T0KEN" not in values and "smtp-s3cret" not in values and "alertWebhookUrl" not in values
    receivers = {r["name"]: r for r in am_values(stack)["config"]["receivers"]}
    (webhook,) = receivers["webhook"]["webhook_configs"]
    assert webhook == {
        "url_file": "/etc/alertmanager/secrets/alertmanager-receivers/webhook-url",
        "send_resolved": True,
    }
    (email,) = receivers["email"]["email_configs"]
    assert email["auth_password_file"] == "/etc/alertmanager/secrets/alertmanager-receivers/smtp-password"
    assert "auth_password" not in email and email["require_tls"] is True
    assert email["smarthost"] == EMAIL["smarthost"] and email["to"] == EMAIL["to"]


def test_without_receivers_preview_warns_and_nothing_is_mounted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        stack = run_fixture(CENTRAL_STACK, {f"{PROJECT}:alerting": None})
    assert any("no alert receiver is configured" in record.getMessage() for record in caplog.records)
    secrets = [r for r in stack.kubernetes_objects() if r.kind == "Secret"]
    assert alertmanager.RECEIVERS_SECRET not in {r.name for r in secrets}
    assert "secrets" not in am_values(stack)["alertmanagerSpec"]
    assert alertmanager.no_receiver_warning(settings_of(webhook=WEBHOOK)) is None
    assert alertmanager.no_receiver_warning(settings_of(email=EMAIL)) is None


def routes(config: dict[str, Any]) -> list[tuple[list[str], str, bool]]:
    return [(r["matchers"], r["receiver"], bool(r.get("continue"))) for r in config["route"]["routes"]]


def test_routing_by_severity_grouped_by_cluster_and_alertname() -> None:
    config = alertmanager.alertmanager_config(settings_of(webhook=WEBHOOK, email=EMAIL))
    assert config["route"]["group_by"] == ["cluster", "alertname"]
    assert config["route"]["receiver"] == "null"  # info, none and anything unlabelled
    assert routes(config) == [
        (['alertname = "Watchdog"'], "null", False),
        (['alertname = "InfoInhibitor"'], "null", False),
        (['severity = "critical"'], "webhook", True),  # critical: every receiver
        (['severity = "critical"'], "email", False),
        (['severity = "warning"'], "webhook", False),  # warning: the webhook
    ]
    email_only = alertmanager.alertmanager_config(settings_of(email=EMAIL))
    assert routes(email_only)[-2:] == [
        (['severity = "critical"'], "email", False),
        (['severity = "warning"'], "email", False),
    ]
    nobody = alertmanager.alertmanager_config(settings_of())
    assert {receiver for _, receiver, _ in routes(nobody)} == {"null"}


def test_a_critical_inhibits_the_warning_of_the_same_cluster_and_alert() -> None:
    (first, *_) = alertmanager.inhibit_rules()
    assert first == {
        "source_matchers": ['severity = "critical"'],
        "target_matchers": ['severity =~ "warning|info"'],
        "equal": ["cluster", "alertname"],
    }


def test_alertmanager_reaches_exactly_the_configured_receivers() -> None:
    policy = both_receivers().k8s("NetworkPolicy", "alertmanager", "monitoring").inputs["spec"]
    assert "Egress" in policy["policyTypes"]
    egress = sorted((rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in policy["egress"])
    assert egress == [("198.51.100.25/32", 587), ("203.0.113.10/32", 443)]
    for rule in policy["egress"]:
        assert len(rule["to"]) == 1 and "except" not in rule["to"][0]["ipBlock"] and len(rule["ports"]) == 1
    without = run_fixture(EDGE, {f"{PROJECT}:alerting": None}).k8s("NetworkPolicy", "alertmanager", "monitoring")
    assert "egress" not in without.inputs["spec"]  # default deny: DNS only


@requires_charts
def test_the_chart_renders_our_configuration_into_the_operators_secret() -> None:
    stack = both_receivers()
    (secret,) = [o for o in cluster(stack).of_kind("Secret") if o.name == "alertmanager-kps-alertmanager"]
    rendered = yaml.safe_load(base64.b64decode(secret.obj["data"]["alertmanager.yaml"]))
    assert rendered == am_values(stack)["config"]


# --- amtool and a real Alertmanager --------------------------------------------------------


def amtool_version() -> tuple[int, int]:
    output = subprocess.run([str(AMTOOL), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\d+)\.(\d+)", output.stdout + output.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


URL_FILE_SINCE = (0, 26)
"""`webhook_configs[].url_file` is newer than Debian 12's Alertmanager 0.25; the chart runs v0.34.0."""


def local_copy(config: dict[str, Any], tmp_path: Path, webhook_url: str, version: tuple[int, int]) -> Path:
    """The configuration as deployed, with the secret files under `tmp_path` instead of
    /etc/alertmanager/secrets. An Alertmanager older than `url_file` gets the URL inline instead:
    the one change, and only in this local copy."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / alertmanager.WEBHOOK_URL_KEY).write_text(webhook_url)
    (secrets / alertmanager.SMTP_PASSWORD_KEY).write_text("smtp-s3cret")
    text = json.dumps(config).replace(f"{alertmanager.SECRETS_DIR}/{alertmanager.RECEIVERS_SECRET}", str(secrets))
    local = json.loads(text)
    local["templates"] = []
    for receiver in local["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            if version < URL_FILE_SINCE:
                webhook["url"] = Path(webhook.pop("url_file")).read_text()
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(local, sort_keys=False))
    return path


@needs_amtool
def test_the_configuration_passes_amtool_check_config(tmp_path: Path) -> None:
    config = am_values(both_receivers())["config"]
    path = local_copy(config, tmp_path, "https://chat.example.org/hooks/T0KEN", amtool_version())
    result = subprocess.run([str(AMTOOL), "check-config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 receivers" in result.stdout and "4 inhibit rules" in result.stdout


def route_test(path: Path, **labels: str) -> str:
    result = subprocess.run(
        [str(AMTOOL), "config", "routes", "test", f"--config.file={path}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@needs_amtool
@pytest.mark.parametrize(
    ("receivers", "severity", "alertname", "expected"),
    [
        ("both", "critical", "ThanosCompactorHalted", "webhook,email"),
        ("both", "warning", "ThanosCompactorFailing", "webhook"),
        ("both", "info", "KubeletTooManyPods", "null"),
        ("both", "none", "Watchdog", "null"),
        ("both", "critical", "Watchdog", "null"),
        ("email", "critical", "ThanosCompactorHalted", "email"),
        ("email", "warning", "ThanosCompactorFailing", "email"),
        ("none", "critical", "ThanosCompactorHalted", "null"),
    ],
)
def test_amtool_routes_each_severity_to_its_receiver(
    receivers: str, severity: str, alertname: str, expected: str, tmp_path: Path
) -> None:
    choices: dict[str, dict[str, Any]] = {"both": {"webhook": WEBHOOK, "email": EMAIL}, "email": {"email": EMAIL}}
    chosen = choices.get(receivers, {})
    config = alertmanager.alertmanager_config(settings_of(**chosen))
    path = local_copy(config, tmp_path, "https://chat.example.org/hooks/T0KEN", amtool_version())
    assert route_test(path, severity=severity, alertname=alertname, cluster="edge-a") == expected


class Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler: type[Webhook] = type("Receiver", (Webhook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def post_alerts(port: int, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "Alertmanager exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("Alertmanager did not become ready in 20s")


def alert(name: str, severity: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "cluster": "edge-a"},
        "annotations": {"summary": f"{name} test"},
    }


@needs_alertmanager
def test_a_real_alertmanager_delivers_to_the_webhook_and_inhibits_and_drops_the_rest(
    webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Debian's Alertmanager on localhost with the deployed configuration (group_wait cut to 1s)."""
    url, received = webhook
    config = copy.deepcopy(am_values(both_receivers())["config"])
    config["route"]["group_wait"] = "1s"
    version = amtool_version() if AMTOOL else (0, 0)
    path = local_copy(config, tmp_path, url, version)
    port = free_port()
    process = subprocess.Popen(
        [
            str(ALERTMANAGER),
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, process)
        post_alerts(
            port,
            [
                alert("DiskOnFire", "critical"),
                alert("DiskOnFire", "warning"),  # inhibited by the critical of the same cluster and name
                alert("QueueSlow", "warning"),
                alert("FYI", "info"),  # to the null receiver
                alert("Watchdog", "none"),
            ],
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(received) < 2:
            time.sleep(0.2)
        time.sleep(2)  # anything else that was going to arrive
    finally:
        process.terminate()
        process.wait(timeout=10)
    delivered = sorted(
        (a["labels"]["alertname"], a["labels"]["severity"]) for message in received for a in message["alerts"]
    )
    assert delivered == [("DiskOnFire", "critical"), ("QueueSlow", "warning")]
    assert all(message["receiver"] == "webhook" for message in received)
    assert all(set(message["groupLabels"]) == {"cluster", "alertname"} for message in received)


@requires_charts
def test_the_flow_check_requires_the_receivers_and_forbids_anything_else() -> None:
    from tools.validators import network_flows

    stack = both_receivers()
    t = network_flows.topology(stack)
    required = {(f.destination, f.port) for f in network_flows.required_flows(t) if "notifies a receiver" in f.why}
    assert required == {("203.0.113.10", 443), ("198.51.100.25", 587)}
    assert any("Alertmanager reaches only" in f.why for f in network_flows.forbidden_flows(t))
    assert network_flows.validate(stack) == []
