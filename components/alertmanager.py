"""Alertmanager's configuration: receivers from stack config, routing by severity, inhibition.

Pure functions of the `alerting` settings, so the tests can read them like the specification
and feed the result to `amtool`:
- routing: grouped by `cluster` and `alertname` (Prometheus adds its `cluster` external label to
  every alert it sends); `critical` goes to every configured receiver, `warning` to the webhook
  (or to e-mail when there is no webhook), `info`, `none` and anything unlabelled to the `null`
  receiver; the chart's always-firing `Watchdog` and `InfoInhibitor` never notify anyone;
- inhibition: a critical alert silences the warnings and infos of the same `cluster` and
  `alertname`, a warning the infos (the chart's defaults, on `cluster` instead of `namespace`);
- secrets: the webhook URL (it usually carries a token) and the SMTP password are never in this
  configuration or in Helm values. They live in the Secret `alertmanager-receivers`, which the
  operator mounts at `/etc/alertmanager/secrets/alertmanager-receivers/`, and the configuration
  names the files (`url_file`, `auth_password_file`; Alertmanager v0.34.0 reads both).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import PROJECT, AlertingSettings

RECEIVERS_SECRET = "alertmanager-receivers"
"""The Secret (namespace `monitoring`) with the receivers' secrets, one file per key."""
SECRETS_DIR = "/etc/alertmanager/secrets"
"""Where the operator mounts `alertmanagerSpec.secrets` (one directory per Secret)."""
WEBHOOK_URL_KEY = "webhook-url"
SMTP_PASSWORD_KEY = "smtp-password"
NULL = "null"
"""The receiver without integrations: alerts routed here are kept in Alertmanager, never sent."""
WEBHOOK, EMAIL = "webhook", "email"
GROUP_BY = ["cluster", "alertname"]
SILENT_ALERTS = ("Watchdog", "InfoInhibitor")
"""kube-prometheus-stack's always-firing alerts: they prove the pipeline works, they page nobody."""
TEMPLATES = ["/etc/alertmanager/config/*.tmpl"]
"""The chart's default template glob (templates from `alertmanager.templateFiles`)."""


def secret_file(key: str) -> str:
    """The path of one key of the receivers' Secret inside the Alertmanager pod."""
    return f"{SECRETS_DIR}/{RECEIVERS_SECRET}/{key}"


def matcher(label: str, value: str, op: str = "=") -> str:
    return f'{label} {op} "{value}"'


def receivers(alerting: AlertingSettings) -> list[dict[str, Any]]:
    """`null` plus one receiver per configured integration; secrets by file only."""
    result: list[dict[str, Any]] = [{"name": NULL}]
    if alerting.webhook is not None:
        result.append(
            {
                "name": WEBHOOK,
                "webhook_configs": [
                    {"url_file": secret_file(WEBHOOK_URL_KEY), "send_resolved": alerting.webhook.send_resolved}
                ],
            }
        )
    if alerting.email is not None:
        email = alerting.email
        result.append(
            {
                "name": EMAIL,
                "email_configs": [
                    {
                        "to": email.to,
                        "from": email.from_,
                        "smarthost": email.smarthost,
                        "auth_username": email.username,
                        "auth_password_file": secret_file(SMTP_PASSWORD_KEY),
                        "require_tls": email.require_tls,
                        "send_resolved": email.send_resolved,
                    }
                ],
            }
        )
    return result


def severity_routes(alerting: AlertingSettings) -> list[dict[str, Any]]:
    """Criticals to every configured receiver (`continue` to the next), warnings to the first one."""
    configured = alerting.receivers
    routes: list[dict[str, Any]] = [
        {"receiver": NULL, "matchers": [matcher("alertname", name)]} for name in SILENT_ALERTS
    ]
    for index, name in enumerate(configured):
        route: dict[str, Any] = {"receiver": name, "matchers": [matcher("severity", "critical")]}
        if index < len(configured) - 1:
            route["continue"] = True
        routes.append(route)
    if configured:
        routes.append({"receiver": configured[0], "matchers": [matcher("severity", "warning")]})
    return routes


def inhibit_rules() -> list[dict[str, Any]]:
    """A critical silences the warnings and infos of its cluster and alert name; a warning the infos;
    the chart's InfoInhibitor silences infos of its namespace (and is itself always silenced)."""
    same = ["cluster", "alertname"]
    return [
        {
            "source_matchers": [matcher("severity", "critical")],
            "target_matchers": [matcher("severity", "warning|info", "=~")],
            "equal": same,
        },
        {
            "source_matchers": [matcher("severity", "warning")],
            "target_matchers": [matcher("severity", "info")],
            "equal": same,
        },
        {
            "source_matchers": [matcher("alertname", "InfoInhibitor")],
            "target_matchers": [matcher("severity", "info")],
            "equal": ["cluster", "namespace"],
        },
        {"target_matchers": [matcher("alertname", "InfoInhibitor")]},
    ]


def alertmanager_config(alerting: AlertingSettings) -> dict[str, Any]:
    """The whole configuration, as the chart's `alertmanager.config` (every key set, so nothing
    of the chart's default routing is merged in)."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": NULL,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": severity_routes(alerting),
        },
        "inhibit_rules": inhibit_rules(),
        "receivers": receivers(alerting),
        "templates": list(TEMPLATES),
    }


def secret_data(
    alerting: AlertingSettings, webhook_url: pulumi.Input[str] | None, smtp_password: pulumi.Input[str] | None
) -> dict[str, pulumi.Input[str]]:
    """The receivers' Secret: one key per configured receiver's secret (empty: no Secret is needed)."""
    data: dict[str, pulumi.Input[str]] = {}
    if alerting.webhook is not None and webhook_url is not None:
        data[WEBHOOK_URL_KEY] = webhook_url
    if alerting.email is not None and smtp_password is not None:
        data[SMTP_PASSWORD_KEY] = smtp_password
    return data


def secret_config_keys(alerting: AlertingSettings) -> list[str]:
    """The secret config keys the receivers' Secret holds."""
    configured = {"alertWebhookUrl": alerting.webhook, "alertSmtpPassword": alerting.email}
    return [key for key, receiver in configured.items() if receiver is not None]


def egress(alerting: AlertingSettings) -> list[tuple[str, int]]:
    """Every (address block, port) Alertmanager must reach: the configured receivers, nothing else."""
    rules = [
        (rule.cidr, rule.port)
        for receiver in (alerting.webhook, alerting.email)
        if receiver is not None
        for rule in receiver.egress
    ]
    return sorted(set(rules))


def no_receiver_warning(alerting: AlertingSettings) -> str | None:
    """Said at every preview while no receiver is configured: alerts would reach nobody."""
    if alerting.receivers:
        return None
    return (
        f"no alert receiver is configured ({PROJECT}:alerting): Alertmanager routes every alert to the "
        "`null` receiver and nobody is notified. Set alerting.webhook and the secret alertWebhookUrl, "
        "or alerting.email and the secret alertSmtpPassword (README, 'Alerts')"
    )
