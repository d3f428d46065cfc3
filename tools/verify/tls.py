"""TLS: every endpoint's certificate chains to the platform CA (trusted alone, no public CA), names
its host, and is more than `--expiry-days` (30) from expiry; plus the nearest expiry among the
certificates the stack reports in its `certificates` output.

The handshake is made on port 443 of each URL's host (the ingress), or on the URL's own port when
the URL is https with an explicit port, whatever the URL's scheme: an http URL still has its host
served over TLS by the ingress. A host that is a name is dialled at the stack's `ingressAddress`
with the name as TLS server name, unless `--use-dns` (see `tools.verify.context`).
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from tools.verify.context import Context, EndpointDown, Route, describe_transport_error
from tools.verify.outputs import need
from tools.verify.report import Result, fail, not_run, ok, role_skip

ENDPOINTS = ("grafana", "opensearch", "longhorn", "thanos")
RENEW_HINT = (
    "renew it before it expires: reissue from the platform CA and run pulumi up (the ingress serves the new one)"
)


def url_of(ctx: Context, name: str) -> str | None:
    out = ctx.outputs
    urls = {
        "grafana": out.grafana_url,
        "opensearch": out.opensearch_url,
        "longhorn": out.longhorn_url,
        "thanos": out.thanos_url,
    }
    return urls[name]


def tls_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port if parts.scheme == "https" and parts.port else 443
    return parts.hostname or "", port


def tls_route(ctx: Context, url: str) -> Route:
    """Where the handshake for `url` is made (`tls_target`), dialled as `Context.route` says."""
    return ctx.route(url, ingress=True, port=tls_target(url)[1])


def peer_certificate(host: str, port: int, ca_pem: str, timeout: float, address: str | None = None) -> dict[str, Any]:
    """The verified peer certificate (as `ssl` decodes it) of host:port, trusting `ca_pem` only;
    dialled at `address` when given, still asking for and verifying `host`."""
    context = ssl.create_default_context(cadata=ca_pem)  # with cadata, no system CA is loaded
    with (
        socket.create_connection((address or host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cert = tls.getpeercert()
    if not cert:
        raise ssl.SSLError("no peer certificate")
    return cert


def days_left(not_after: dt.datetime, now: dt.datetime) -> float:
    return (not_after - now).total_seconds() / 86400


def check_endpoint(ctx: Context, name: str) -> Result:
    check = f"tls.{name}"
    url = need(url_of(ctx, name), f"{name}Url")
    route = tls_route(ctx, url)
    host, target = route.host, route.target
    ca = need(ctx.outputs.platform_ca, "platformCaCertificate")
    timeout = ctx.budget.timeout(ctx.timeout)
    try:
        cert = peer_certificate(host, route.port, ca, timeout, route.address)
    except ssl.SSLCertVerificationError as exc:
        return fail(
            check,
            f"{target}: {exc.verify_message or exc.reason}",
            f"the certificate served for {host} must chain to platformCaCertificate and name {host}: check the "
            "ingress' TLS Secret for that host",
        )
    except ssl.SSLError as exc:
        return fail(check, f"{target}: TLS handshake failed: {exc.reason or exc}", "is this port serving TLS?")
    except OSError as exc:
        cause, hint = describe_transport_error(exc, timeout, dns_hint=route.dns_hint)
        raise EndpointDown(f"{name} ingress", ctx.mark_down(target, cause), hint) from None
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC)
    left = days_left(expires, ctx.now)
    if left < ctx.options.expiry_days:
        return fail(check, f"{target}: certificate expires {expires:%Y-%m-%d} ({left:.0f} days left)", RENEW_HINT)
    return ok(check, f"{target}: chains to the platform CA, valid until {expires:%Y-%m-%d} ({left:.0f} days)")


def parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def check_certificates_output(ctx: Context) -> Result:
    check = "tls.certificates"
    certificates = need(ctx.outputs.certificates, "certificates")
    if not certificates:
        return fail(
            check, "the certificates output lists no certificate", "the program must export the platform's certificates"
        )
    expiries: list[tuple[dt.datetime, str]] = []
    bad: list[str] = []
    for cert in certificates:
        try:
            expiries.append((parse_time(cert.not_after), cert.name))
        except ValueError:
            bad.append(f"{cert.name}: notAfter {cert.not_after!r} is not ISO-8601")
    if bad:
        return fail(check, "; ".join(bad), "the certificates output must give notAfter as ISO-8601")
    expires, name = min(expiries)
    left = days_left(expires, ctx.now)
    detail = f"nearest expiry: {name} on {expires:%Y-%m-%d} ({left:.0f} days) among {len(expiries)} certificates"
    if left < ctx.options.expiry_days:
        return fail(check, detail, RENEW_HINT)
    return ok(check, detail)


def _endpoint_result(ctx: Context, name: str) -> list[Result]:
    check = f"tls.{name}"
    if name == "thanos" and not ctx.outputs.central:
        return [role_skip(ctx, check)]
    url = url_of(ctx, name)
    if url is not None:
        down = ctx.down(tls_route(ctx, url).target)
        # A TLS failure seen by an HTTP client is this check's own subject: look again, in detail.
        if down is not None and not down.cause.startswith("failed TLS"):
            return [not_run(check, f"{down.target} failed earlier (see {down.reported_by})")]
    return ctx.run(check, functools.partial(check_endpoint, ctx, name))


def run(ctx: Context) -> list[Result]:
    results = [result for name in ENDPOINTS for result in _endpoint_result(ctx, name)]
    return results + ctx.run("tls.certificates", functools.partial(check_certificates_output, ctx))
