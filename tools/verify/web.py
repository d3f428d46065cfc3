"""The user-facing UIs answer through the ingress with the stack's credentials: Grafana
(`GET /api/user` as admin: the password works and its database is up) and the Longhorn UI (its
basic auth in front of the Longhorn API at `/v1`)."""

from __future__ import annotations

import functools

from tools.verify.context import Context
from tools.verify.outputs import BASIC_AUTH_USER, need
from tools.verify.report import Result, not_installed, ok


def check_grafana(ctx: Context) -> Result:
    grafana = ctx.endpoint(
        "Grafana",
        need(ctx.outputs.grafana_url, "grafanaUrl"),
        auth=(BASIC_AUTH_USER, need(ctx.outputs.grafana_password, "grafanaAdminPassword")),
        ingress=True,
        auth_hint="Grafana refused admin/grafanaAdminPassword: the password was changed in Grafana; reset it with "
        "`grafana cli admin reset-admin-password` in its pod",
    )
    user = grafana.get_json("api/user")
    return ok("grafana.login", f"{grafana.base_url} answers; signed in as {user.get('login', '?')}")


def check_longhorn_ui(ctx: Context) -> Result:
    longhorn = ctx.endpoint(
        "Longhorn UI",
        need(ctx.outputs.longhorn_url, "longhornUrl"),
        auth=(BASIC_AUTH_USER, need(ctx.outputs.longhorn_password, "longhornUiPassword")),
        ingress=True,
        auth_hint="the ingress refused admin/longhornUiPassword: its basic-auth Secret "
        "longhorn-system/longhorn-ui-basic-auth and the output disagree; run pulumi up",
    )
    longhorn.get_json("v1")
    return ok("longhorn.ui", f"{longhorn.base_url} answers behind its basic auth")


def run(ctx: Context) -> list[Result]:
    results = ctx.run("grafana.login", functools.partial(check_grafana, ctx))
    if not ctx.outputs.longhorn:
        return [*results, not_installed("longhorn.ui", f"volumes are on StorageClass {ctx.outputs.storage_class}")]
    return results + ctx.run("longhorn.ui", functools.partial(check_longhorn_ui, ctx))
