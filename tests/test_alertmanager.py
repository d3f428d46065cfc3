"""Alert delivery: receivers from stack config, secrets by file, routing by severity, inhibition,
egress to exactly the receivers. The real amtool and Alertmanager of the version the chart runs
(v0.34.0) run the generated configuration, unedited, in the integration tier
(`tests/integration/test_alertmanager.py`)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
import yaml

from components import alertmanager
from components.settings import PROJECT, AlertingSettings, SettingsError, parse_settings
from tests.conftest import CENTRAL_STACK, EDGE, raw_config, requires_charts, run_fixture
from tools.cluster import cluster
from tools.engine import Rendering, Secret, unwrap

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


@requires_charts
def test_the_flow_check_requires_the_receivers_and_forbids_anything_else() -> None:
    from tools.validators import network_flows

    stack = both_receivers()
    t = network_flows.topology(stack)
    required = {(f.destination, f.port) for f in network_flows.required_flows(t) if "notifies a receiver" in f.why}
    assert required == {("203.0.113.10", 443), ("198.51.100.25", 587)}
    assert any("Alertmanager reaches only" in f.why for f in network_flows.forbidden_flows(t))
    assert network_flows.validate(stack) == []
