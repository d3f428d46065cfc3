"""Alertmanager v0.34.0 and its amtool, the version kube-prometheus-stack 88.5.3 runs, fed the
configuration the hub stack generates, unedited.

The hub fixture stack is rendered with alerting configured as the README's "Alerts" says: a webhook
whose URL (token included) is the secret `alertWebhookUrl`, and e-mail over SMTP with STARTTLS
(`requireTls` left at its default, true) and the secret `alertSmtpPassword`. The configuration's
`url_file` and `auth_password_file` name `/etc/alertmanager/secrets/alertmanager-receivers/`, so
every amtool and Alertmanager process runs in a mount namespace of its own in which that path is
a bind mount of a directory holding the rendered Secret's keys, one file per key, as the
operator's Secret volume would be. No path and no setting of the configuration is changed.

- `amtool check-config` accepts the configuration of every receiver combination, and
  `amtool config routes test` routes each severity as the README's table says.
- A real Alertmanager runs in the hub's namespace (10.20.0.10) with a webhook (HTTPS,
  10.20.0.60:443) and an SMTP sink (STARTTLS and AUTH PLAIN, 10.20.0.61:587) in namespaces of their
  own, at the addresses and ports the stack's `egress` names. Both are servers of this file, run in
  this process on sockets made inside those namespaces. Their certificates come from throwaway CAs,
  which Alertmanager trusts via `SSL_CERT_FILE`: in the pod, the image's system roots play that
  part for a real receiver's certificate. That is the one thing the process is given that the pod
  does not have.

The configuration's timing is kept (`group_wait` 30s). All the alerts are posted at once, so every
aggregation group flushes for the first time about 30s later. The delivery fixture waits for that
flush: the webhook's two alerts, the mail and Alertmanager's own inhibition counter. After a short
grace period it reads what arrived (`group_interval` is 5m, so no second flush comes in the test).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import email
import email.message
import email.policy
import functools
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alertmanager
from tests.conftest import CENTRAL_STACK, run_fixture
from tests.integration import programs
from tests.integration.conftest import Proves, need
from tests.integration.netns import Host, Lan
from tests.integration.platform import Pki, make_pki
from tools.engine import PROJECT, Rendering, unwrap

VERSION = programs.ALERTMANAGER
CLUSTER = "hub"
"""The hub's `cluster` label: Prometheus's external label on every alert it sends."""

WEBHOOK_ADDRESS, WEBHOOK_PORT = "10.20.0.60", 443
WEBHOOK_PATH = "/hooks/T0KEN-only-in-the-secret"
WEBHOOK_URL = f"https://{WEBHOOK_ADDRESS}{WEBHOOK_PATH}"
SMTP_ADDRESS, SMTP_PORT = "10.20.0.61", 587
SMTP_USER, SMTP_PASSWORD = "alertmanager", "smtp-s3cret-only-in-the-secret"
ALERTMANAGER_PORT = 9093

WEBHOOK = {"egress": [{"cidr": f"{WEBHOOK_ADDRESS}/32", "port": WEBHOOK_PORT}]}
EMAIL = {
    "to": "oncall@hub.lab.test",
    "from": "alertmanager@hub.lab.test",
    "smarthost": f"{SMTP_ADDRESS}:{SMTP_PORT}",
    "username": SMTP_USER,
    "egress": [{"cidr": f"{SMTP_ADDRESS}/32", "port": SMTP_PORT}],
}


# --- what the hub stack deploys -------------------------------------------------------------------


@functools.cache
def hub_with(webhook: bool, email: bool) -> Rendering:
    """The hub fixture stack rendered with these receivers and their secrets, as the README sets them."""
    alerting: dict[str, Any] = {}
    overrides: dict[str, str | None] = {}
    if webhook:
        alerting["webhook"] = WEBHOOK
        overrides[f"{PROJECT}:alertWebhookUrl"] = WEBHOOK_URL
    if email:
        alerting["email"] = EMAIL
        overrides[f"{PROJECT}:alertSmtpPassword"] = SMTP_PASSWORD
    overrides[f"{PROJECT}:alerting"] = json.dumps(alerting) if alerting else None
    return run_fixture(CENTRAL_STACK, overrides)


@dataclass(frozen=True)
class Deployed:
    """What the Alertmanager pod gets: the chart's `alertmanager.config` and the receivers' Secret."""

    config: dict[str, Any]
    secret: dict[str, str]
    """The Secret `alertmanager-receivers`' keys (empty: no Secret, nothing mounted)."""
    egress: list[tuple[str, int]]
    """The Alertmanager NetworkPolicy's egress (address block, port)."""


def deployed(rendering: Rendering) -> Deployed:
    values = rendering.release("kube-prometheus-stack").inputs["values"]["alertmanager"]
    secret: dict[str, str] = {}
    if values["alertmanagerSpec"].get("secrets") == [alertmanager.RECEIVERS_SECRET]:
        resource = rendering.k8s("Secret", alertmanager.RECEIVERS_SECRET, "monitoring")
        secret = dict(unwrap(resource.inputs["stringData"]))
    policy = rendering.k8s("NetworkPolicy", "alertmanager", "monitoring").inputs["spec"]
    egress = [(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in policy.get("egress", [])]
    return Deployed(values["config"], secret, sorted(egress))


@dataclass(frozen=True)
class Files:
    """The configuration file and the Secret's directory, as written for one process."""

    config: Path
    secret_dir: Path | None
    scratch: Path


def write_files(deployed: Deployed, directory: Path) -> Files:
    """The configuration as the chart receives it (YAML of the same mapping) and one file per Secret key
    (a Secret volume's file holds the value exactly, no newline added)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yaml"
    config.write_text(yaml.safe_dump(deployed.config, sort_keys=False))
    secret_dir = None
    if deployed.secret:
        secret_dir = directory / "secret"
        secret_dir.mkdir()
        for key, value in deployed.secret.items():
            (secret_dir / key).write_text(value)
    return Files(config, secret_dir, directory)


MOUNT_SECRET = """set -eu
upper=$1 work=$2 secret=$3 target=$4
shift 4
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$upper,workdir=$work" /etc
mkdir -p "$target"
mount --bind "$secret" "$target"
exec "$@"
"""
"""Runs in a private mount namespace. /etc has no /etc/alertmanager on the test machine, so an overlay
over /etc (its changes kept in the test's directory) gets the mount point. The host's /etc is untouched."""


def with_secret_mounted(argv: Sequence[str], files: Files) -> list[str]:
    """`argv` in a mount namespace of its own where the Secret's directory is at the path the operator mounts it."""
    if files.secret_dir is None:
        return list(argv)
    target = f"{alertmanager.SECRETS_DIR}/{alertmanager.RECEIVERS_SECRET}"
    assert target.startswith("/etc/"), target
    upper, work = files.scratch / "etc-upper", files.scratch / "etc-work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    script = ["sh", "-c", MOUNT_SECRET, "mount-secret", str(upper), str(work), str(files.secret_dir), target]
    return ["unshare", "--mount", "--propagation", "private", *script, *argv]


def run(argv: Sequence[str], files: Files) -> subprocess.CompletedProcess[str]:
    return subprocess.run(with_secret_mounted(argv, files), capture_output=True, text=True, check=False, timeout=60)


def secret_files(config: dict[str, Any]) -> list[str]:
    """Every `*_file` path the configuration's receivers name."""
    return sorted(
        path
        for receiver in config["receivers"]
        for key, integrations in receiver.items()
        if key.endswith("_configs")
        for integration in integrations
        for name, path in integration.items()
        if name.endswith("_file")
    )


# --- amtool ----------------------------------------------------------------------------------------

COMBINATIONS = {"webhook and e-mail": (True, True), "webhook": (True, False), "e-mail": (False, True)}
COMBINATIONS_AND_NONE = {**COMBINATIONS, "no receiver": (False, False)}


@pytest.fixture(scope="module")
def amtool() -> Path:
    return need("amtool")


@pytest.mark.parametrize("receivers", COMBINATIONS_AND_NONE)
def test_amtool_check_config_accepts_the_generated_configuration_verbatim(
    receivers: str, amtool: Path, tmp_path: Path, proves: Proves
) -> None:
    stack = deployed(hub_with(*COMBINATIONS_AND_NONE[receivers]))
    files = write_files(stack, tmp_path)
    result = run([str(amtool), "check-config", str(files.config)], files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "4 inhibit rules" in result.stdout, result.stdout
    assert f"{len(stack.config['receivers'])} receivers" in result.stdout, result.stdout
    text = files.config.read_text()
    assert not any(value in text for value in stack.secret.values())  # the secrets are only in the files
    # Each file the configuration names is the Secret's key at the mounted path.
    paths = secret_files(stack.config)
    assert [Path(path).name for path in paths] == sorted(stack.secret)
    for path in paths:
        shown = run(["cat", path], files)
        assert shown.returncode == 0 and shown.stdout == stack.secret[Path(path).name], shown.stderr
    proves(
        "amtool",
        VERSION,
        "check-config accepts the hub's generated configuration verbatim for every receiver combination "
        "(url_file, auth_password_file at the mounted alertmanager-receivers Secret)",
    )


def routed(amtool: Path, files: Files, labels: dict[str, str]) -> str:
    argv = [str(amtool), "config", "routes", "test", f"--config.file={files.config}"]
    result = run([*argv, *(f"{name}={value}" for name, value in labels.items())], files)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


ROUTING = [
    # (receivers, severity (None: unlabelled), alertname, receivers notified): the README's table
    ("webhook and e-mail", "critical", "ThanosCompactorHalted", "webhook,email"),
    ("webhook and e-mail", "warning", "ThanosCompactorFailing", "webhook"),
    ("webhook and e-mail", "info", "KubeletTooManyPods", "null"),
    ("webhook and e-mail", "none", "SomethingToKnow", "null"),
    ("webhook and e-mail", "page", "SomethingElse", "null"),
    ("webhook and e-mail", None, "Unlabelled", "null"),
    ("webhook and e-mail", "none", "Watchdog", "null"),
    ("webhook and e-mail", "critical", "Watchdog", "null"),
    ("webhook and e-mail", "none", "InfoInhibitor", "null"),
    ("webhook and e-mail", "warning", "InfoInhibitor", "null"),
    ("webhook", "critical", "ThanosCompactorHalted", "webhook"),
    ("webhook", "warning", "ThanosCompactorFailing", "webhook"),
    ("webhook", "info", "KubeletTooManyPods", "null"),
    ("e-mail", "critical", "ThanosCompactorHalted", "email"),
    ("e-mail", "warning", "ThanosCompactorFailing", "email"),
    ("e-mail", "info", "KubeletTooManyPods", "null"),
    ("no receiver", "critical", "ThanosCompactorHalted", "null"),
    ("no receiver", "warning", "ThanosCompactorFailing", "null"),
]


@pytest.mark.parametrize(
    ("receivers", "severity", "alertname", "expected"),
    ROUTING,
    ids=[f"{case[0]}: {case[2]} {case[1]}" for case in ROUTING],
)
def test_amtool_routes_each_severity_to_the_receivers_the_readme_says(
    receivers: str, severity: str | None, alertname: str, expected: str, amtool: Path, tmp_path: Path, proves: Proves
) -> None:
    files = write_files(deployed(hub_with(*COMBINATIONS_AND_NONE[receivers])), tmp_path)
    labels = {"alertname": alertname, "cluster": CLUSTER, **({"severity": severity} if severity else {})}
    assert routed(amtool, files, labels) == expected
    proves(
        "amtool",
        VERSION,
        "config routes test: critical to every receiver, warning to the webhook (e-mail without one), "
        "info/none/other/unlabelled and Watchdog/InfoInhibitor to null",
    )


# --- receivers of our own, inside namespaces -------------------------------------------------------

CLONE_NEWNET = 0x40000000


def listening_socket(host: Host, port: int) -> socket.socket:
    """A TCP socket listening on `host`'s address, made inside its network namespace by a thread that
    joins it (a network namespace is per thread): the socket stays there, served from this process."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def bind() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{host.netns}", "rb") as namespace:
                if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {host.netns}")
            made.append(socket.create_server((host.address, port)))
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=bind, name=f"bind in {host.netns}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def tls_server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    return context


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Request:
    path: str
    host: str
    body: dict[str, Any]


class WebhookHandler(http.server.BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.received.append(Request(self.path, self.headers.get("Host", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class WebhookServer(http.server.ThreadingHTTPServer):
    """An HTTPS webhook receiver on a socket made elsewhere (in a namespace); it records every POST."""

    daemon_threads = True

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext) -> None:
        super().__init__(listener.getsockname(), WebhookHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = tls.wrap_socket(listener, server_side=True)
        self.received: list[Request] = []


@dataclass(frozen=True)
class Mail:
    tls: bool
    """STARTTLS was done before the mail was sent."""
    login: tuple[str, str]
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


class SmtpSession(socketserver.BaseRequestHandler):
    """Just enough ESMTP: STARTTLS first, then AUTH PLAIN (the expected login only), MAIL, RCPT, DATA."""

    server: SmtpSink

    def setup(self) -> None:
        self.connection: socket.socket = self.request
        self.reader = self.connection.makefile("rb")
        self.tls = False
        self.login: tuple[str, str] | None = None
        self.sender = ""
        self.recipients: list[str] = []

    def reply(self, line: str) -> None:
        self.connection.sendall(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 sink.lab.test ESMTP")
        while raw := self.reader.readline():
            verb, _, argument = raw.decode().rstrip("\r\n").partition(" ")
            if not self.command(verb.upper(), argument):
                return

    def command(self, verb: str, argument: str) -> bool:
        handlers: dict[str, Callable[[str], None]] = {
            "EHLO": self.ehlo,
            "STARTTLS": self.starttls,
            "AUTH": self.auth,
            "MAIL": self.mail,
            "RCPT": self.rcpt,
            "DATA": self.data,
        }
        if verb == "QUIT":
            self.reply("221 2.0.0 bye")
            return False
        if verb in ("RSET", "NOOP"):
            self.sender, self.recipients = ("", []) if verb == "RSET" else (self.sender, self.recipients)
            self.reply("250 2.0.0 ok")
        elif verb in handlers:
            handlers[verb](argument)
        else:
            self.reply("502 5.5.2 not implemented")
        return True

    def ehlo(self, _: str) -> None:
        lines = ["sink.lab.test", "AUTH PLAIN" if self.tls else "STARTTLS"]
        for index, line in enumerate(lines):
            self.reply(f"250{'-' if index < len(lines) - 1 else ' '}{line}")

    def starttls(self, _: str) -> None:
        self.reply("220 2.0.0 ready to start TLS")
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.reader = self.connection.makefile("rb")
        self.tls, self.login = True, None

    def auth(self, argument: str) -> None:
        mechanism, _, initial = argument.partition(" ")
        if not self.tls:
            self.reply("538 5.7.11 encryption required for requested authentication mechanism")
            return
        if mechanism.upper() != "PLAIN":
            self.reply("504 5.5.4 only PLAIN")
            return
        if not initial:
            self.reply("334 ")
            initial = self.reader.readline().decode().strip()
        _, user, password = base64.b64decode(initial).decode().split("\0")
        self.server.logins.append((user, password))
        if (user, password) != self.server.expected_login:
            self.reply("535 5.7.8 authentication credentials invalid")
            return
        self.login = (user, password)
        self.reply("235 2.7.0 authentication successful")

    def mail(self, argument: str) -> None:
        if self.login is None:
            self.reply("530 5.7.0 authentication required")
            return
        self.sender = argument.partition(":")[2].strip().strip("<>")
        self.reply("250 2.1.0 ok")

    def rcpt(self, argument: str) -> None:
        self.recipients.append(argument.partition(":")[2].strip().strip("<>"))
        self.reply("250 2.1.5 ok")

    def data(self, _: str) -> None:
        if self.login is None or not self.recipients:
            self.reply("503 5.5.1 need MAIL and RCPT first")
            return
        self.reply("354 end data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        while (line := self.reader.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.server.mails.append(Mail(self.tls, self.login, self.sender, self.recipients, message))
        self.sender, self.recipients = "", []
        self.reply("250 2.0.0 queued")


class SmtpSink(socketserver.ThreadingTCPServer):
    """An SMTP server on a socket made elsewhere (in a namespace); it keeps every mail it accepts."""

    daemon_threads = True

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext, expected_login: tuple[str, str]) -> None:
        super().__init__(listener.getsockname(), SmtpSession, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.tls = tls
        self.expected_login = expected_login
        self.logins: list[tuple[str, str]] = []
        self.mails: list[Mail] = []


# --- a real Alertmanager ---------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> float:
    """Seconds it took until `condition` held; fails with Alertmanager's log after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout:.0f}s; Alertmanager's log:\n{tail(log)}")
        time.sleep(0.25)
    return time.monotonic() - start


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def running_alertmanager(host: Host, binary: Path, files: Files, roots: Path) -> Iterator[str]:
    """Alertmanager in `host`'s namespace (and a mount namespace with the Secret): its base URL."""
    url = f"http://{host.address}:{ALERTMANAGER_PORT}"
    argv = [
        str(binary),
        f"--config.file={files.config}",
        f"--storage.path={files.scratch / 'data'}",
        f"--web.listen-address={host.address}:{ALERTMANAGER_PORT}",
        "--cluster.listen-address=",  # one replica: no gossip mesh
        "--log.level=debug",
    ]
    log = files.scratch / "alertmanager.log"
    env = {**os.environ, "SSL_CERT_FILE": str(roots)}
    with log.open("wb") as output:
        process = host.popen(with_secret_mounted(argv, files), stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: process.poll() is not None or answers(f"{url}/-/ready"), 30, "ready", log)
        assert process.poll() is None, f"Alertmanager exited ({process.returncode}):\n{tail(log)}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def alert(name: str, severity: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "cluster": CLUSTER, "namespace": "monitoring"},
        "annotations": {"summary": f"{name} ({severity}), posted by the integration test"},
    }


POSTED = [
    alert("DiskFull", "critical"),
    alert("DiskFull", "warning"),  # same cluster and alertname as the critical: inhibited
    alert("QueueSlow", "warning"),
    alert("SomethingToKnow", "info"),
    alert("Watchdog", "none"),
]


def metrics(url: str) -> dict[str, float]:
    """Alertmanager's own counters, by series (`name{labels}`)."""
    series: dict[str, float] = {}
    for line in get(f"{url}/metrics").decode().splitlines():
        if line.startswith("alertmanager_notification") and " " in line:
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]]


GRACE = 3.0
"""After the first flush: long enough for anything else the flush sends, far short of `group_interval`."""


@dataclass
class Delivery:
    deployed: Deployed
    webhook: list[Request]
    mails: list[Mail]
    logins: list[tuple[str, str]]
    alerts: list[dict[str, Any]]
    """Alertmanager's API view of the alerts (`/api/v2/alerts`) after the flush."""
    metrics: dict[str, float]
    waited: float
    log: str = field(repr=False)


def tls_pki(directory: Path, name: str, address: str) -> Pki:
    return make_pki(directory, f"throwaway {name} CA (integration tests)", address)


@pytest.fixture(scope="module")
def delivery(lan: Lan, hosts: dict[str, Host], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivery]:
    """The hub's Alertmanager with both receivers, the alerts of POSTED, and what reached each receiver."""
    binary = need("alertmanager")
    directory = tmp_path_factory.mktemp("alertmanager")
    stack = deployed(hub_with(True, True))
    files = write_files(stack, directory / "run")
    webhook_pki = tls_pki(directory / "webhook-pki", "webhook", WEBHOOK_ADDRESS)
    smtp_pki = tls_pki(directory / "smtp-pki", "SMTP", SMTP_ADDRESS)
    roots = directory / "roots.pem"
    roots.write_text(webhook_pki.ca.read_text() + smtp_pki.ca.read_text())
    webhook = WebhookServer(
        listening_socket(lan.host("webhook", WEBHOOK_ADDRESS), WEBHOOK_PORT), tls_server_context(webhook_pki)
    )
    sink = SmtpSink(
        listening_socket(lan.host("smtp", SMTP_ADDRESS), SMTP_PORT),
        tls_server_context(smtp_pki),
        (SMTP_USER, SMTP_PASSWORD),
    )
    log = files.scratch / "alertmanager.log"
    with serving(webhook), serving(sink), running_alertmanager(hosts[CLUSTER], binary, files, roots) as url:
        post_alerts(url, POSTED)

        def flushed() -> bool:
            inhibited = metrics(url).get('alertmanager_notifications_suppressed_total{reason="inhibition"}', 0)
            return sum(len(r.body["alerts"]) for r in webhook.received) >= 2 and bool(sink.mails) and inhibited >= 1

        group_wait = seconds(stack.config["route"]["group_wait"])
        waited = wait_for(flushed, group_wait + 30, "the first flush of every group", log)
        time.sleep(GRACE)
        alerts = json.loads(get(f"{url}/api/v2/alerts"))
        counters = metrics(url)
    yield Delivery(stack, webhook.received, sink.mails, sink.logins, alerts, counters, waited, tail(log, 200))


def delivered(requests: list[Request]) -> list[tuple[str, str]]:
    return sorted((a["labels"]["alertname"], a["labels"]["severity"]) for r in requests for a in r.body["alerts"])


def test_the_receivers_are_where_the_stacks_egress_lets_alertmanager_go(delivery: Delivery) -> None:
    assert delivery.deployed.egress == [(f"{WEBHOOK_ADDRESS}/32", WEBHOOK_PORT), (f"{SMTP_ADDRESS}/32", SMTP_PORT)]


def test_the_webhook_gets_the_critical_and_the_uninhibited_warning_at_the_url_of_the_secret(
    delivery: Delivery, proves: Proves
) -> None:
    assert delivered(delivery.webhook) == [("DiskFull", "critical"), ("QueueSlow", "warning")], delivery.log
    for request in delivery.webhook:
        assert (request.path, request.host) == (WEBHOOK_PATH, WEBHOOK_ADDRESS)  # only the Secret's file has them
        assert request.body["receiver"] == "webhook" and request.body["status"] == "firing"
        assert set(request.body["groupLabels"]) == {"cluster", "alertname"}
    assert delivery.waited >= seconds(delivery.deployed.config["route"]["group_wait"]) - 1  # group_wait was kept
    proves(
        "alertmanager",
        VERSION,
        "with the generated configuration it sends the critical and the uninhibited warning to the webhook "
        "over HTTPS at the URL read from the mounted Secret (url_file), after the configured group_wait",
    )


def test_the_mail_is_the_critical_over_starttls_with_the_password_of_the_secret(
    delivery: Delivery, proves: Proves
) -> None:
    (mail,) = delivery.mails
    assert delivery.logins == [(SMTP_USER, SMTP_PASSWORD)]  # read from auth_password_file
    assert mail.tls and mail.login == (SMTP_USER, SMTP_PASSWORD)
    assert (mail.sender, mail.recipients) == (EMAIL["from"], [EMAIL["to"]])
    subject = str(mail.message["Subject"])
    assert "DiskFull" in subject and "critical" in subject and "FIRING:1" in subject, subject
    proves(
        "alertmanager",
        VERSION,
        "e-mails only the critical, over STARTTLS (require_tls) with AUTH PLAIN and the password from the "
        "mounted Secret (auth_password_file)",
    )


def by_name(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["labels"]["alertname"], a["labels"]["severity"]): a for a in alerts}


def test_the_inhibited_warning_and_the_info_go_to_nobody(delivery: Delivery, proves: Proves) -> None:
    alerts = by_name(delivery.alerts)
    assert set(alerts) == {(a["labels"]["alertname"], a["labels"]["severity"]) for a in POSTED}
    critical, inhibited = alerts["DiskFull", "critical"], alerts["DiskFull", "warning"]
    assert inhibited["status"]["state"] == "suppressed"
    assert inhibited["status"]["inhibitedBy"] == [critical["fingerprint"]]
    for key in (("SomethingToKnow", "info"), ("Watchdog", "none")):
        assert [r["name"] for r in alerts[key]["receivers"]] == ["null"], alerts[key]
    sent = delivered(delivery.webhook) + [("DiskFull", "critical")] * len(delivery.mails)
    assert ("DiskFull", "warning") not in sent and ("SomethingToKnow", "info") not in sent
    assert delivery.metrics['alertmanager_notifications_total{integration="webhook"}'] == 2
    assert delivery.metrics['alertmanager_notifications_total{integration="email"}'] == 1
    failed = {series: value for series, value in delivery.metrics.items() if "failed_total" in series and value}
    assert failed == {}, failed
    proves(
        "alertmanager",
        VERSION,
        "inhibits the warning of the critical's cluster and alertname, keeps the info and the Watchdog at "
        "the null receiver, and no notification fails",
    )
