"""A Pulumi dynamic provider for the OpenSearch REST API objects the program manages.

Pulumi reaches OpenSearch through its ingress: it connects to the host's address on 443 and names
`opensearch.<domain>` as TLS server name and `Host`, so the operator's machine needs no DNS entry for
it (`logging.apiUrl` dials a URL as it is instead, for a machine with DNS or a proxy). Each
resource is one named object: a snapshot repository, an ISM policy, a Snapshot Management policy,
an index template, or a security role, user or role mapping. For every kind the provider:

- creates idempotently: it reads first and adopts an object that already exists, so a repeated
  create (after a lost state, or an interrupted `up`) converges instead of failing or duplicating;
- diffs stably: the desired body is compared with the live object projected onto the keys the body
  sets, so fields the server adds (`last_updated_time`, ISM `retry` blocks, `schema_version`, string
  forms of numbers) never show as changes; a changed body in a new program version is a change;
- updates with optimistic concurrency where OpenSearch offers it (`if_seq_no`/`if_primary_term`);
- deletes idempotently: a 404 means "already gone", which is what delete wants.

One resource class, `OpenSearchObject`, serves every kind; a `Kind` says how its objects are
addressed and compared. Every object depends on `AdminCredentials`, a guard that proves OpenSearch
accepts the stack's admin password: OpenSearch takes that password only on its first start, so a
password changed in the stack alone would make every call fail with 401. A changed password is
checked against the live cluster already during preview, and refused with the way out.

Transport: a `requests.Session` per operation with urllib3's `Retry` mounted through an
`HTTPAdapter`: bounded retries with exponential backoff on 429, 5xx and connection errors, a
connect and a read timeout on every request. A 4xx fails at once with OpenSearch's own reason.
Credentials are resource inputs marked secret (never plain), and the serialized provider holds
none: it is the same for every resource of a kind.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

import pulumi
import pulumi.dynamic as dynamic
import requests
from pulumi.runtime import rpc
from urllib3.util.retry import Retry

from components.ca_file import ca_file
from components.server_name import ServerNameAdapter

CONNECT_TIMEOUT_SECONDS = 10.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Every method we send is safe to repeat: PUTs replace, POST creates are adopted on 409 (below).
RETRY_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
# `pulumi preview` must not hang on an unreachable cluster just to look for drift.
DRIFT_CHECK_RETRIES = 1
DRIFT_CHECK_TIMEOUT_SECONDS = 5.0
DRIFT_CHECK_CONNECT_TIMEOUT_SECONDS = 3.0
CONNECTION_INPUTS = (
    "url",
    "server_name",
    "username",
    "password",
    "ca_certificate",
    "timeout_seconds",
    "retries",
    "backoff_factor",
)


class OpenSearchError(Exception):
    """OpenSearch refused a request; the message carries the method, path, status and OpenSearch's reason."""


class OpenSearchUnreachable(OpenSearchError):
    """No answer (connection error or timeout) after every retry."""


# --- transport ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """Where and how to call the REST API; built from a resource's inputs."""

    url: str
    username: str
    password: str
    server_name: str | None = None
    """The name the server is asked for (TLS server name and `Host`) when `url` is an address; None: `url`'s."""
    ca_certificate: str | None = None
    """PEM of the only CA the server's certificate may chain to (the platform CA); None: the system's CAs.
    Verification is never off."""
    timeout_seconds: float = 30.0
    retries: int = 6
    backoff_factor: float = 1.0
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS

    @staticmethod
    def of(props: dict[str, Any]) -> Connection:
        return Connection(
            url=str(props["url"]).rstrip("/"),
            username=str(props["username"]),
            password=str(props["password"]),
            server_name=str(props["server_name"]) if props.get("server_name") else None,
            ca_certificate=str(props["ca_certificate"]) if props.get("ca_certificate") else None,
            timeout_seconds=float(props.get("timeout_seconds", 30.0)),
            retries=int(props.get("retries", 6)),
            backoff_factor=float(props.get("backoff_factor", 1.0)),
        )

    def quick(self) -> Connection:
        """The same endpoint with a short timeout and one retry (drift checks during preview)."""
        return Connection(
            self.url,
            self.username,
            self.password,
            self.server_name,
            self.ca_certificate,
            min(self.timeout_seconds, DRIFT_CHECK_TIMEOUT_SECONDS),
            min(self.retries, DRIFT_CHECK_RETRIES),
            self.backoff_factor,
            min(self.connect_timeout_seconds, DRIFT_CHECK_CONNECT_TIMEOUT_SECONDS),
        )


class Client:
    """JSON over HTTPS with bounded retries; raises `OpenSearchError` for anything but 2xx (and allowed codes)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        retry = Retry(
            total=connection.retries,
            connect=connection.retries,
            read=connection.retries,
            status=connection.retries,
            other=0,
            allowed_methods=RETRY_METHODS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=connection.backoff_factor,
            backoff_max=30,
            # The last 5xx is returned (not raised) so its reason can be reported.
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        self.session = requests.Session()
        adapter = ServerNameAdapter(connection.server_name, max_retries=retry)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if connection.server_name:
            self.session.headers["Host"] = connection.server_name
            # The address is the host's own: a proxy from the environment would be asked for it instead.
            self.session.trust_env = False
        self.session.auth = (connection.username, connection.password)
        self.session.verify = ca_file(connection.ca_certificate, "platform-ca") if connection.ca_certificate else True
        self.session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """One request; statuses in `allow` (e.g. 404 on a read) are returned instead of raised."""
        url = f"{self.connection.url}/{path}"
        try:
            response = self.session.request(
                method,
                url,
                json=plain(body) if body is not None else None,
                params=params,
                timeout=(self.connection.connect_timeout_seconds, self.connection.timeout_seconds),
            )
        except requests.RequestException as error:
            raise OpenSearchUnreachable(
                f"{method} {url}: no answer after {self.connection.retries} retries: {_innermost(error)}"
            ) from None
        if response.ok or response.status_code in allow:
            return response
        raise OpenSearchError(f"{method} /{path} failed with HTTP {response.status_code}: {reason(response)}")


def _innermost(error: BaseException) -> str:
    """The root cause of a requests/urllib3 exception chain, e.g. `Read timed out`."""
    cause: BaseException = error
    while True:
        inner = getattr(cause, "reason", None)
        if isinstance(inner, BaseException):
            cause = inner
            continue
        if cause.args and isinstance(cause.args[0], BaseException):
            cause = cause.args[0]
            continue
        return f"{type(cause).__name__}: {cause}"


def reason(response: requests.Response) -> str:
    """OpenSearch's own explanation of an error response (`error.type: error.reason` and its cause)."""
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if not isinstance(payload, dict):
        return str(payload)[:500]
    error = payload.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
        caused_by = error.get("caused_by")
        if isinstance(caused_by, dict) and caused_by.get("reason"):
            text += f" (caused by {caused_by.get('type')}: {caused_by['reason']})"
        return text
    if isinstance(error, str):
        return error
    # The security plugin answers {"status": "BAD_REQUEST", "message"/"reason": "..."}.
    for key in ("message", "reason"):
        if payload.get(key):
            return str(payload[key])
    return str(payload)[:500]


# --- comparing ---------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Pulumi delivers numbers as floats: integral ones become ints again before they are sent."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical(value: Any) -> Any:
    """A form where `1`, `1.0` and `"1"` (or `True` and `"true"`) are equal: OpenSearch stringifies settings."""
    if isinstance(value, dict):
        return {str(key): canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value


def project(live: Any, desired: Any) -> Any:
    """The part of `live` that `desired` talks about: keys the body does not set are left out."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {key: project(live[key], item) for key, item in desired.items() if key in live}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [project(have, want) for have, want in zip(live, desired, strict=True)]
    return live


def contains_unknowns(value: Any) -> bool:
    """True when a preview has not computed some input yet."""
    if isinstance(value, dict):
        return any(contains_unknowns(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_unknowns(item) for item in value)
    return value == rpc.UNKNOWN


# --- kinds of objects --------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """An object as OpenSearch returned it, with its concurrency token where the API has one."""

    document: dict[str, Any]
    seq_no: int | None = None
    primary_term: int | None = None

    def concurrency(self) -> dict[str, int]:
        if self.seq_no is None or self.primary_term is None:
            return {}
        return {"if_seq_no": self.seq_no, "if_primary_term": self.primary_term}


class Kind:
    """How one kind of object is addressed, read back, written and deleted."""

    label: ClassVar[str] = "object"
    type_name: ClassVar[str]
    """The kind's name in the program and in the state: `OpenSearchObject`'s `kind` input and the
    class name each kind had when every kind was its own resource class (see `legacy_type`)."""
    drift_ignored: ClassVar[frozenset[str]] = frozenset()
    """Body keys the API never returns (e.g. a user's password): not compared with the live object."""
    secret_outputs: ClassVar[tuple[str, ...]] = ("password",)
    """Outputs stored encrypted in the state: the admin password, and for some kinds the body."""

    def path(self, name: str) -> str:
        raise NotImplementedError

    def extract(self, payload: dict[str, Any], name: str) -> Live | None:
        """The object inside a GET response."""
        document = payload.get(name)
        return Live(document) if isinstance(document, dict) else None

    def read(self, client: Client, name: str) -> Live | None:
        response = client.call("GET", self.path(name), allow=(404,))
        return None if response.status_code == 404 else self.extract(response.json(), name)

    def write(self, client: Client, name: str, body: dict[str, Any], live: Live | None) -> None:
        """Create or replace (PUT is create-or-replace for most of the API)."""
        client.call("PUT", self.path(name), body)

    def verify(self, client: Client, name: str) -> None:
        """A check after each write (a repository's `_verify`); most kinds have none."""

    def delete(self, client: Client, name: str) -> None:
        client.call("DELETE", self.path(name), allow=(404,))


class SnapshotRepositoryKind(Kind):
    label = "snapshot repository"
    type_name = "SnapshotRepository"

    def path(self, name: str) -> str:
        return f"_snapshot/{name}"

    def verify(self, client: Client, name: str) -> None:
        # Every node writes, reads and deletes a test blob under base_path: fails on bad keys, bucket or
        # CA. Not a proof of delete permission: a refused delete is only logged by the node.
        client.call("POST", f"_snapshot/{name}/_verify")


class IndexTemplateKind(Kind):
    label = "index template"
    type_name = "IndexTemplate"

    def path(self, name: str) -> str:
        return f"_index_template/{name}"

    def extract(self, payload: dict[str, Any], name: str) -> Live | None:
        for entry in payload.get("index_templates", []):
            if entry.get("name") == name:
                return Live(entry["index_template"])
        return None


class _SequencedKind(Kind):
    """Objects stored as documents: updates must name the `_seq_no`/`_primary_term` they replace."""

    wrapper: ClassVar[str]
    create_method: ClassVar[str]

    def extract(self, payload: dict[str, Any], name: str) -> Live | None:
        document = payload.get(self.wrapper)
        if not isinstance(document, dict):
            return None
        return Live(document, payload.get("_seq_no"), payload.get("_primary_term"))

    def write(self, client: Client, name: str, body: dict[str, Any], live: Live | None) -> None:
        if live is None:
            client.call(self.create_method, self.path(name), self.request_body(body))
        else:
            client.call("PUT", self.path(name), self.request_body(body), params=live.concurrency())

    def request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return body


class IsmPolicyKind(_SequencedKind):
    label = "ISM policy"
    type_name = "IsmPolicy"
    wrapper = "policy"
    create_method = "PUT"

    def path(self, name: str) -> str:
        return f"_plugins/_ism/policies/{name}"

    def request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"policy": body}


class SnapshotPolicyKind(_SequencedKind):
    label = "snapshot management policy"
    type_name = "SnapshotPolicy"
    wrapper = "sm_policy"
    create_method = "POST"

    def path(self, name: str) -> str:
        return f"_plugins/_sm/policies/{name}"


class SecurityKind(Kind):
    """Objects of the security plugin's REST API (`PUT` creates or replaces)."""

    api: ClassVar[str]

    def path(self, name: str) -> str:
        return f"_plugins/_security/api/{self.api}/{name}"


class RoleKind(SecurityKind):
    label = "security role"
    type_name = "SecurityRole"
    api = "roles"


class InternalUserKind(SecurityKind):
    label = "internal user"
    type_name = "InternalUser"
    api = "internalusers"
    # The API returns a hash, never the password: password changes are seen by comparing inputs.
    drift_ignored = frozenset({"password"})
    # The body holds the user's password.
    secret_outputs = ("password", "body")


class RoleMappingKind(SecurityKind):
    label = "role mapping"
    type_name = "RoleMapping"
    api = "rolesmapping"


# --- the provider ------------------------------------------------------------------------


class OpenSearchObjectProvider(dynamic.ResourceProvider):
    """CRUD for one kind of named OpenSearch object; credentials come with each resource's inputs."""

    def __init__(self, kind: Kind) -> None:
        super().__init__()
        self.kind = kind

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        name = props["object_name"]
        self._ensure(Client(Connection.of(props)), name, props["body"])
        return dynamic.CreateResult(id_=name, outs=_outputs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        self._ensure(Client(Connection.of(news)), news["object_name"], news["body"])
        return dynamic.UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self.kind.delete(Client(Connection.of(props)), props["object_name"])

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        live = self.kind.read(Client(Connection.of(props)), props["object_name"])
        if live is None:
            return dynamic.ReadResult(id_="", outs={})  # gone: `pulumi refresh` drops it from the state
        body = props["body"]
        seen = project(live.document, body)
        # Keys the API never returns keep their recorded value instead of showing as removed.
        seen.update({key: body[key] for key in self.kind.drift_ignored if key in body})
        return dynamic.ReadResult(id_=id_, outs={**_outputs(props), "body": seen})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if olds.get("object_name") != news.get("object_name"):
            return dynamic.DiffResult(changes=True, replaces=["object_name"])
        changed = [key for key in ("body", *CONNECTION_INPUTS) if canonical(olds.get(key)) != canonical(news.get(key))]
        if changed:
            return dynamic.DiffResult(changes=True)
        if contains_unknowns(news):
            return dynamic.DiffResult(changes=True)
        return dynamic.DiffResult(changes=self.drifted(news))

    def drifted(self, props: dict[str, Any]) -> bool:
        """True when the live object is gone or differs from the body in a key the body sets.

        Best effort: when OpenSearch cannot be reached (a preview far from the cluster), drift is
        not known and only the inputs were compared; `pulumi refresh` is the authoritative check.
        """
        try:
            live = self.kind.read(Client(Connection.of(props).quick()), props["object_name"])
        except OpenSearchUnreachable as error:
            print(f"opensearch: drift of {props['object_name']} not checked: {error}", file=sys.stderr)
            return False
        return live is None or not matches(props["body"], live.document, self.kind.drift_ignored)

    def _ensure(self, client: Client, name: str, body: dict[str, Any]) -> None:
        """Create or update `name` to `body`, adopting an object that already exists."""
        try:
            live = self.kind.read(client, name)
            try:
                self.kind.write(client, name, body, live)
            except OpenSearchError as error:
                if live is not None or "HTTP 409" not in str(error):
                    raise
                # Created by someone else between our read and our create: update that one instead.
                self.kind.write(client, name, body, self.kind.read(client, name))
            self.kind.verify(client, name)
        except OpenSearchError as error:
            raise type(error)(f"{self.kind.label} {name}: {error}") from None


def matches(desired: dict[str, Any], live: dict[str, Any], ignored: frozenset[str] = frozenset()) -> bool:
    """True when every key the desired body sets has the same value in the live object."""
    wanted = {key: value for key, value in desired.items() if key not in ignored}
    return bool(canonical(project(live, wanted)) == canonical(wanted))


def _outputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in props.items() if key != "__provider"}


# --- the admin-password guard ------------------------------------------------------------

ACCOUNT_PATH = "_plugins/_security/api/account"
"""Answers 200 to any user whose credentials OpenSearch accepts, and 401 to wrong ones."""
PASSWORD_CONFIG_KEY = "opensearchAdminPassword"
ROTATION_SECTION = "Rotate the OpenSearch admin password"


class AdminPasswordRejected(OpenSearchError):
    """OpenSearch answered 401 to the stack's admin credentials."""


def rejection(url: str, changed: bool) -> AdminPasswordRejected:
    """Why a 401 cannot be fixed from the stack alone, and where the way out is described."""
    # The security plugin reads `internal_users.yml` (our Secret opensearch-internal-users) only when
    # it creates its security index, on the first start; from then on the index holds the password.
    what = (
        f"The OpenSearch admin password changed in the stack but not in OpenSearch: {url} rejects the new one"
        if changed
        else f"OpenSearch at {url} does not accept the stack's admin password"
    )
    return AdminPasswordRejected(
        f"{what} (HTTP 401). OpenSearch took the admin password from internal_users.yml when it created its "
        "security index, on its first start, and keeps it there: a new password in the stack never reaches it. "
        "Make the two agree: change the password inside OpenSearch with the account API (as admin, with the "
        "current password; the security plugin asks for a strong password by its zxcvbn score), then give the "
        f"same one to the stack with `pulumi config set --secret {PASSWORD_CONFIG_KEY} <password>` "
        f'(see the README section "{ROTATION_SECTION}").'
    )


def verify_admin(connection: Connection, changed: bool = False) -> None:
    """Raise `AdminPasswordRejected` unless OpenSearch accepts the connection's credentials."""
    response = Client(connection).call("GET", ACCOUNT_PATH, allow=(401,))
    if response.status_code == 401:
        raise rejection(connection.url, changed)


def _changed_connection(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    return [key for key in CONNECTION_INPUTS if canonical(olds.get(key)) != canonical(news.get(key))]


class AdminCredentialsProvider(dynamic.ResourceProvider):
    """Proves that OpenSearch accepts the stack's admin password before any object is written with it.

    Nothing is stored in OpenSearch: the resource only records the credentials it checked, so that
    a changed password is a diff, checked against the live cluster during preview.
    """

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        verify_admin(Connection.of(props))
        return dynamic.CreateResult(id_=str(props["username"]), outs=_outputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = _changed_connection(olds, news)
        if "password" in changed and not contains_unknowns(news):
            self._check_new_password(news)
        return dynamic.DiffResult(changes=bool(changed))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        verify_admin(Connection.of(news), changed="password" in _changed_connection(olds, news))
        return dynamic.UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to delete: the guard creates nothing in OpenSearch."""

    @staticmethod
    def _check_new_password(news: dict[str, Any]) -> None:
        """Fail the preview when OpenSearch rejects the new password; without an answer, `update` decides."""
        try:
            verify_admin(Connection.of(news).quick(), changed=True)
        except AdminPasswordRejected:
            raise
        except OpenSearchError as error:
            print(f"opensearch: the new admin password not checked: {error}", file=sys.stderr)


# --- resources ---------------------------------------------------------------------------

LEGACY_TYPE_PREFIX = "pulumi-python:dynamic/opensearch:"
"""How the SDK names a `dynamic.Resource` subclass declared with `module="opensearch", name=<name>`."""


def legacy_type(kind: Kind) -> str:
    """The type token of `kind`'s resources when each kind had its own class (`IsmPolicy`, ...)."""
    return f"{LEGACY_TYPE_PREFIX}{kind.type_name}"


class ApiConnection(TypedDict):
    """How Pulumi reaches the REST API (through the ingress)."""

    url: str
    """`https://<host address>`, or `logging.apiUrl`."""
    server_name: str | None
    """`opensearch.<domain>` when `url` is the host's address; None when `url` names the server itself."""
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    """Made secret before it becomes an input."""
    ca_certificate: pulumi.Input[str]
    """The platform CA: the ingress certificate must chain to it."""
    timeout_seconds: float
    """Read timeout of each request."""
    retries: int
    """Retries on 429, 5xx and connection errors, with exponential backoff."""


def _connection_props(connection: ApiConnection) -> dict[str, Any]:
    return {
        "url": connection["url"],
        "server_name": connection["server_name"],
        "username": connection["username"],
        "password": pulumi.Output.secret(connection["password"]),
        "ca_certificate": connection["ca_certificate"],
        "timeout_seconds": connection["timeout_seconds"],
        "retries": connection["retries"],
        "backoff_factor": 1.0,
    }


class AdminCredentials(dynamic.Resource, module="opensearch", name="AdminCredentials"):
    """The admin credentials every `OpenSearchObject` uses, verified first (`AdminCredentialsProvider`)."""

    connection: ApiConnection

    def __init__(self, name: str, connection: ApiConnection, opts: pulumi.ResourceOptions | None = None) -> None:
        self.connection = connection
        secret = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(
            AdminCredentialsProvider(), name, _connection_props(connection), pulumi.ResourceOptions.merge(opts, secret)
        )


class ObjectArgs(TypedDict):
    kind: Kind
    """What the object is: its API path, how it is read back, written and compared."""
    admin: AdminCredentials
    """The verified admin credentials: the object is written with them, after they were checked."""
    object_name: str
    """The object's name in its API path; renaming replaces the object."""
    body: pulumi.Input[dict[str, Any]]
    """The JSON body, as built in `components/opensearch_policies.py`."""


class OpenSearchObject(dynamic.Resource, module="opensearch", name="Object"):
    """One named object of the REST API, of any kind (`SnapshotRepositoryKind`, `IsmPolicyKind`, ...)."""

    def __init__(self, name: str, args: ObjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        kind, admin = args["kind"], args["admin"]
        props = {
            **_connection_props(admin.connection),
            "kind": kind.type_name,
            "object_name": args["object_name"],
            "body": args["body"],
        }
        own = pulumi.ResourceOptions(
            depends_on=[admin],
            additional_secret_outputs=list(kind.secret_outputs),
            # Each kind was its own class, with its own type: the alias keeps existing objects' URNs.
            aliases=[pulumi.Alias(type_=legacy_type(kind))],
        )
        super().__init__(OpenSearchObjectProvider(kind), name, props, pulumi.ResourceOptions.merge(opts, own))
