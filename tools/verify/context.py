"""What every check shares: the outputs, the trust anchors, the time limits and HTTP endpoints.

Time is bounded twice: each request waits at most `--timeout` seconds (connect and each read), and
the whole run at most `--total-timeout`; a check that would start past it is "not run". An endpoint
that cannot be reached is reported once, by the first check that tries it; every later check on
the same host and port is "not run" at once instead of waiting out its own timeout again.

No DNS is needed for the UIs (Grafana, the Longhorn UI, OpenSearch, Thanos): their URLs name hosts
under the cluster's wildcard domain, which Traefik serves on port 443 of the host's address, the
stack output `ingressAddress`. A UI whose URL's host is a name is dialled at that address with the
name as TLS server name (SNI), as the name its certificate must carry, and as `Host` (what Traefik
routes by); its messages say both, e.g. `grafana.edge-a.lab.test via 10.20.0.11:443`. `--use-dns`
looks the names up instead (a machine that resolves the wildcard domain), and so does a stack from
before `ingressAddress` was exported. The Kubernetes API
and MinIO are dialled as their URLs say.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_match_hostname import CertificateError

from components.server_name import ServerNameAdapter
from tools.verify.outputs import MissingOutput, Outputs, need
from tools.verify.report import Result, fail, not_run

DEFAULT_TIMEOUT = 10.0
DEFAULT_TOTAL_TIMEOUT = 180.0
DEFAULT_EXPIRY_DAYS = 30
DEFAULT_FLUENT_BIT_WINDOW = 15.0


class BudgetExhausted(Exception):
    """The run's total time limit is spent."""


class Budget:
    """The total time a run may take; every wait is cut to what is left of it."""

    def __init__(self, total: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._clock = clock
        self._deadline = clock() + total

    def remaining(self) -> float:
        return self._deadline - self._clock()

    def timeout(self, per_request: float) -> float:
        left = self.remaining()
        if left <= 0.05:
            raise BudgetExhausted
        return min(per_request, left)

    def sleep(self, seconds: float) -> None:
        if self.remaining() <= seconds:
            raise BudgetExhausted
        time.sleep(seconds)


@dataclass
class Down:
    """An endpoint found unreachable, and the check that said so."""

    target: str
    cause: str
    reported_by: str = ""


class EndpointDown(Exception):
    """The first failure to use an endpoint (unreachable, TLS, credentials): its one FAIL line."""

    def __init__(self, endpoint: str, down: Down, hint: str) -> None:
        super().__init__(f"{endpoint} ({down.target}) {down.cause}")
        self.endpoint = endpoint
        self.down = down
        self.hint = hint


class AlreadyDown(Exception):
    """An endpoint already reported unreachable: the check is not run."""

    def __init__(self, down: Down) -> None:
        super().__init__(down.target)
        self.down = down


class UnexpectedResponse(Exception):
    """An answer whose shape is not the documented one (another API version, a proxy's page)."""


STATUS_HINTS: Mapping[int, str] = {
    401: "the credentials from the stack outputs were refused: the password changed outside Pulumi?",
    403: "authenticated but not allowed: check the user's role or policy",
    404: "the object does not exist: was `pulumi up` completed for this stack?",
    502: "the ingress has no healthy backend: is the service's pod ready?",
    503: "the service is not ready or its ingress has no endpoints",
    504: "the ingress timed out waiting for the backend",
}


class HttpError(Exception):
    """An answer with an unexpected HTTP status."""

    def __init__(self, endpoint: str, method: str, url: str, status: int, body: str, auth_hint: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status}")
        self.endpoint = endpoint
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.auth_hint = auth_hint

    def describe(self) -> str:
        excerpt = " ".join(self.body.split())[:300]
        return f"{self.endpoint}: {self.method} {self.url} answered HTTP {self.status}" + (
            f": {excerpt}" if excerpt else ""
        )

    def hint(self) -> str:
        if self.status == 401 and self.auth_hint:
            return self.auth_hint
        return STATUS_HINTS.get(self.status, "see the service's logs")


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


WILDCARD_DNS_HINT = "check the wildcard DNS record for the cluster's domain"
NAME_HINT = "check the host name in the stack output, and that this machine resolves it"


@dataclass(frozen=True)
class Route:
    """Where a URL's host is dialled: the host itself (looked up in DNS when it is a name), or
    `address`, with the host as TLS server name and `netloc` as `Host`."""

    host: str
    port: int
    netloc: str
    """The URL's host and port as written: the `Host` header when dialled at `address`."""
    address: str | None = None
    dns_hint: str = NAME_HINT
    """The fix when `host` does not resolve."""

    @property
    def target(self) -> str:
        """The endpoint in messages and in down-tracking: `name via address:port` or `host:port`."""
        if self.address is None:
            return f"{self.host}:{self.port}"
        return f"{self.host} via {self._address_netloc}"

    @property
    def _address_netloc(self) -> str:
        address = f"[{self.address}]" if self.address and ":" in self.address else self.address
        return f"{address}:{self.port}"

    def dial(self, url: str) -> str:
        """The URL to send: `url` with the address in place of the name (unchanged without one)."""
        return url if self.address is None else urlunsplit(urlsplit(url)._replace(netloc=self._address_netloc))

    def named(self, url: str) -> str:
        """The URL as the operator knows it: the inverse of `dial`."""
        return url if self.address is None else urlunsplit(urlsplit(url)._replace(netloc=self.netloc))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, including those urllib3 keeps in `args` (MaxRetryError.reason)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 12:
        chain.append(current)
        nested = [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        current = (
            current.__cause__ or current.__context__ or getattr(current, "reason", None) or next(iter(nested), None)
        )
        if not isinstance(current, BaseException):
            current = None
    return chain


def describe_transport_error(
    exc: BaseException, timeout: float, trust: str = "platformCaCertificate", dns_hint: str = NAME_HINT
) -> tuple[str, str]:
    """A short cause and fix for a failure below HTTP: refused, no answer, DNS, TLS."""
    chain = _chain(exc)
    text = " | ".join(str(e) for e in chain)
    verification = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verification is not None:
        return (
            f"failed TLS verification: {verification.verify_message or verification.reason}",
            f"its certificate must chain to {trust} and name this host",
        )
    # urllib3 checks the name itself when it was given one (`ServerNameAdapter`): its own error.
    mismatch = next((e for e in chain if isinstance(e, CertificateError)), None)
    if mismatch is not None:
        return (f"failed TLS verification: {mismatch}", f"its certificate must chain to {trust} and name this host")
    handshake = next((e for e in reversed(chain) if isinstance(e, ssl.SSLError)), None)
    if handshake is not None or isinstance(exc, requests.exceptions.SSLError):
        reason = (handshake.reason or str(handshake)) if handshake is not None else _last_line(text)
        return (
            f"unreachable: TLS handshake failed ({reason})",
            "the server refused the handshake: a client certificate it does not accept, or no TLS on that port",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout) or "connect timeout" in text.lower():
        return (
            f"unreachable: no TCP connection within {timeout:g}s",
            "host down, wrong address, or a firewall dropping packets",
        )
    if isinstance(exc, requests.exceptions.ReadTimeout | socket.timeout | TimeoutError):
        return (
            f"unreachable: connected, but no answer within {timeout:g}s",
            "the service hangs or is overloaded; raise --timeout only if it is merely slow",
        )
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return ("unreachable: the host name does not resolve", dns_hint)
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text
    if refused or any(getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return ("unreachable: connection refused", "nothing listens on that port: is the ingress controller running?")
    return (f"unreachable: {_last_line(str(chain[-1]))[:300]}", "check the address and that the service runs")


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else "unknown error"


@dataclass
class Endpoint:
    """An HTTP(S) service reached through one base URL with one trust store and credentials."""

    ctx: Context
    name: str
    base_url: str
    verify: str
    auth: tuple[str, str] | None = None
    cert: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth_hint: str = ""
    trust: str = "platformCaCertificate"
    """What its certificate must chain to, for the hint of a verification failure."""
    ingress: bool = False
    """Served by Traefik: a name is dialled at `ingressAddress` (see the module's docstring)."""

    def __post_init__(self) -> None:
        self.route = self.ctx.route(self.base_url, self.ingress)
        self.session = requests.Session()
        self.session.trust_env = False  # a proxy from the environment must not stand between us and the host
        self.session.verify = self.verify
        self.session.auth = self.auth
        self.session.cert = self.cert
        if self.route.address is not None:
            self.session.mount("https://", ServerNameAdapter(self.route.host))
            self.session.headers["Host"] = self.route.netloc
        self.session.headers.update(self.headers)

    def url(self, path: str) -> str:
        return urljoin(self.base_url if self.base_url.endswith("/") else self.base_url + "/", path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        target = self.route.target
        self.ctx.raise_if_down(target)
        timeout = self.ctx.budget.timeout(self.ctx.timeout)
        url = self.url(path)
        try:
            response = self.session.request(
                method, self.route.dial(url), params=params, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.exceptions.RequestException as exc:
            cause, hint = describe_transport_error(exc, timeout, self.trust, self.route.dns_hint)
            raise EndpointDown(self.name, self.ctx.mark_down(target, cause), hint) from None
        if response.status_code == 401 and 401 not in ok:
            # Every later request would be refused too: one FAIL line, the other checks "not run".
            down = self.ctx.mark_down(target, "refused the credentials from the stack outputs (HTTP 401)")
            raise EndpointDown(self.name, down, self.auth_hint or STATUS_HINTS[401])
        if response.status_code not in ok:
            raise HttpError(self.name, method, url, response.status_code, response.text, self.auth_hint)
        return response

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.json_of(self.request("GET", path, params))

    def json_of(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponse(f"{self.name}: {self.route.named(response.url)} did not answer JSON") from None


@dataclass
class Options:
    timeout: float = DEFAULT_TIMEOUT
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    expiry_days: int = DEFAULT_EXPIRY_DAYS
    fluent_bit_window: float = DEFAULT_FLUENT_BIT_WINDOW
    namespaces: tuple[str, ...] | None = None
    use_dns: bool = False
    """Look the UI names up in DNS instead of dialling `ingressAddress`."""


class Context:
    """One run: the outputs, the options, files the clients need (CA bundles, client keys), and state."""

    def __init__(self, outputs: Outputs, options: Options, now: dt.datetime | None = None) -> None:
        self.outputs = outputs
        self.options = options
        self.timeout = options.timeout
        self.budget = Budget(options.total_timeout)
        self.now = now or dt.datetime.now(dt.UTC)
        self._tmp = tempfile.TemporaryDirectory(prefix="verify-")
        self.tmpdir = Path(self._tmp.name)  # mode 0700: client keys and passwords never leave it
        self._down: dict[str, Down] = {}
        self._files = 0
        self.shared: dict[str, Any] = {}
        """Answers one check fetched and another reuses (Thanos stores for the topology)."""

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- reachability ---------------------------------------------------------------------

    def mark_down(self, target: str, cause: str) -> Down:
        down = self._down.setdefault(target, Down(target, cause))
        return down

    def down(self, target: str) -> Down | None:
        return self._down.get(target)

    def raise_if_down(self, target: str) -> None:
        if target in self._down:
            raise AlreadyDown(self._down[target])

    def route(self, url: str, ingress: bool, port: int | None = None) -> Route:
        """Where `url` is dialled; `ingress`: a UI served by Traefik (a name goes to `ingressAddress`)."""
        host, default = target_of(url)
        parts = urlsplit(url)
        route = Route(host, port or default, parts.netloc.rpartition("@")[2])
        if not ingress or is_address(host):
            return route
        if self.options.use_dns:
            return replace(route, dns_hint=WILDCARD_DNS_HINT)
        if self.outputs.ingress_address is None:
            hint = f"{WILDCARD_DNS_HINT}, or `pulumi up` so the stack exports ingressAddress (no DNS needed then)"
            return replace(route, dns_hint=hint)
        return replace(route, address=self.outputs.ingress_address)

    # --- files ----------------------------------------------------------------------------

    def write_file(self, stem: str, content: str | bytes) -> str:
        self._files += 1
        path = self.tmpdir / f"{self._files:02d}-{stem}"
        path.touch(mode=0o600)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def platform_bundle(self) -> str:
        """A CA file with the platform CA only: every platform endpoint must chain to it."""
        if "platform" not in self.shared:
            self.shared["platform"] = self.write_file(
                "platform-ca.pem", need(self.outputs.platform_ca, "platformCaCertificate")
            )
        path: str = self.shared["platform"]
        return path

    def object_store_bundle(self) -> str:
        """MinIO's trust: the platform CA plus `objectStore.caCertificate`, or public CAs when that is null."""
        store = need(self.outputs.object_store, "objectStore")
        extra = store.ca_certificate or Path(DEFAULT_CA_BUNDLE_PATH).read_text(encoding="utf-8")
        platform = need(self.outputs.platform_ca, "platformCaCertificate")
        return self.write_file("objectstore-ca.pem", platform.rstrip() + "\n" + extra)

    def endpoint(self, name: str, url: str, **kwargs: Any) -> Endpoint:
        return Endpoint(self, name, url, verify=kwargs.pop("verify", None) or self.platform_bundle(), **kwargs)

    # --- running checks -------------------------------------------------------------------

    def run(self, check: str, body: Callable[[], Result | list[Result]]) -> list[Result]:
        """Run one check; whatever goes wrong becomes its FAIL or SKIP line, never a traceback."""
        try:
            produced = body()
        except EndpointDown as exc:
            exc.down.reported_by = exc.down.reported_by or check
            return [fail(check, f"{exc.endpoint} ({exc.down.target}) {exc.down.cause}", exc.hint)]
        except AlreadyDown as exc:
            return [not_run(check, f"{exc.down.target} failed earlier (see {exc.down.reported_by})")]
        except BudgetExhausted:
            return [
                not_run(
                    check,
                    f"the total time limit of {self.budget.total:g}s was reached",
                    "raise --total-timeout, or fix the endpoints that time out",
                )
            ]
        except MissingOutput as exc:
            return [not_run(check, f"the stack output {exc.key} is missing or malformed (see the outputs check)")]
        except HttpError as exc:
            return [fail(check, exc.describe(), exc.hint())]
        except UnexpectedResponse as exc:
            return [
                fail(check, f"unexpected answer: {exc}", "the service's API differs from the version this tool reads")
            ]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            return [
                fail(
                    check,
                    f"unexpected answer ({type(exc).__name__}: {exc})",
                    "the service's API differs from the version this tool reads, or a bug in tools/verify",
                )
            ]
        except Exception as exc:  # a bug here must not hide the other checks' results
            return [fail(check, f"internal error: {type(exc).__name__}: {exc}", "a bug in tools/verify")]
        return produced if isinstance(produced, list) else [produced]
