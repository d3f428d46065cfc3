"""OpenSearch as the program configures it, run for real: two nodes, the dynamic provider, the exporter.

Maven Central serves OpenSearch 3.6.0, job-scheduler 3.6.0.0 and repository-s3 3.6.0 here, but not the
security plugin 3.6.0.0 nor any index-management 3.x. So the module starts two nodes, once each and
at the same time, each inside the network namespace of a fixture host:

- node A, host edge-a (10.20.0.11), edge-a's rendering: OpenSearch 3.6.0 with job-scheduler, and
  repository-s3 where the pod has it: not in the install, but on a directory standing for the plugin
  claim, put there by the installer Job's rendered script (run in edge-a's namespace, which has no
  route out, as the chart's user: its first run from the plugin zip as a file URL, since nothing here
  reaches artifacts.opensearch.org; a second run, verbatim, must download nothing), and bind-mounted
  read-only where the chart mounts it. Our `opensearch.yml` less its `plugins.security.*` keys (only the security plugin
  registers them, and OpenSearch refuses a setting nobody owns), every other key verbatim; the keystore
  entries of `logging/opensearch-s3-keystore` with edge-a's real S3 credentials (the object store's
  `edge-a-opensearch` user); the JVM options with the truststore our init container's script builds
  (paths moved into the node's directory). Without the security plugin it speaks plain HTTP.
- node B, host edge-b (10.20.0.12), edge-b's rendering: OpenSearch 3.4.0 with security 3.4.0.0 and
  job-scheduler 3.4.0.0, the nearest release whose security plugin is served. Our `opensearch.yml` less
  its `s3.client.*` keys (no repository-s3 on it, hence no keystore either), our node certificate and
  `internal_users.yml`. Its admin certificate is edge-b's entry `opensearchAdmin` of central's
  `tlsCertificates`, issued for real, as is another cluster's, which must not be admin there.

Ours and not overridden: `network.host: 0.0.0.0`. Inside a namespace of the suite's own it binds that
namespace's loopback and its one address, nothing of this machine; so the exporter's
`--es.uri=https://localhost:9200` and `--web.listen-address=:9114` are verbatim too. Test-only: a
512 MiB heap, `path.data`/`path.logs` in the node's directory, and `node.name`/`discovery.type`, which
the chart passes through the environment of a one-replica release.

The dynamic provider (`components/opensearch_api.py`) runs with each resource's inputs from the
rendering, as the engine hands them over (certificates real). What differs: there is no Traefik, so
instead of `https://<host>` on 443 with the ingress name, `url` is the node itself,
`https://10.20.0.12:9200` with `server_name` `opensearch-cluster-master.logging.svc` (a name of the
node certificate), or `http://10.20.0.11:9200` without one for node A. The S3 server is the session's moto
(`object_store`), over HTTPS with its private CA, as the fixture stacks' `s3.caCertificate`; one moto gap
is worked around on edge-a's S3 user for this module (`bulk_delete`).

Experiments beside the program's own configuration, each on a repository of its own under edge-a's
prefix: `s3_async_client_type: crt` (OpenSearch 3's default, which the program replaces by netty) and
both `shard_path_type`s. Index-management is reported BLOCKED; Snapshot Management's policy is checked
as far as real code can take it without the plugin: its `snapshot_config` through core's
create-snapshot, its schedules through job-scheduler's parser.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import functools
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components import opensearch as component
from components import opensearch_api as api
from components import opensearch_exporter as exporter
from components import opensearch_policies as policies
from components.cluster_tls import (
    CA_KEY,
    CERTIFICATE_KEY,
    OPENSEARCH_TLS_SECRET,
    PLATFORM_CA_CONFIGMAP,
    PRIVATE_KEY_KEY,
)
from components.namespaces import LOGGING
from components.object_storage import OPENSEARCH_KEYSTORE_SECRET
from tests.integration import programs
from tests.integration.binaries import Blocked, catalogue
from tests.integration.conftest import Proves, blocked, need
from tests.integration.netns import Host
from tests.integration.opensearch_files import (
    Generated,
    build_truststore,
    cat_plugins,
    chart_settings,
    deployed_release,
    node_java_opts,
    security_files,
    security_release,
    setting_lines,
)
from tests.integration.opensearch_node import (
    JAVA_HOME,
    RUN_AS,
    Client,
    OpenSearchNode,
    Release,
    Response,
    assemble,
    installed_plugins,
    link_tree,
    run_tool,
)
from tests.integration.platform import ObjectStore, Platform, make_pki
from tools.engine import Rendering, unwrap

NODE_A, NODE_B = "edge-a", "edge-b"
"""The fixture stacks (and hosts) whose renderings the two nodes run."""
HTTP_PORT = component.HTTP_PORT
TLS_NAME = f"{component.SERVICE}.{LOGGING}.svc"
"""A name of the node certificate: the TLS server name the provider asks node B for (no Traefik here)."""
START_TIMEOUT = 900
"""Two JVMs starting at once on a loaded 2-core machine; the security index comes on top on node B."""
OBJECT = "pulumi-python:dynamic/opensearch:Object"
GUARD = "pulumi-python:dynamic/opensearch:AdminCredentials"
KINDS: dict[str, api.Kind] = {
    kind.type_name: kind
    for kind in (
        api.SnapshotRepositoryKind(),
        api.IsmPolicyKind(),
        api.SnapshotPolicyKind(),
        api.IndexTemplateKind(),
        api.RoleKind(),
        api.InternalUserKind(),
        api.RoleMappingKind(),
    )
}
REPOSITORY = "logs-s3"
CRT_REPOSITORY = "logs-s3-crt"
MOTO_BULK_DELETE = "moto-multi-object-delete"
"""The inline policy of the moto workaround (`bulk_delete`)."""
CRT_BASE_PATH = f"{NODE_A}/crt-experiment"
"""Inside edge-a's prefix (its user may write nothing else), apart from the real repository's files."""
SECURITY_VERSION = f"{programs.OPENSEARCH_SECURITY_NEAREST}.0"
ELASTICSEARCH_EXPORTER = "elasticsearch-exporter"
WEAK_BY_ZXCVBN = "Password1!"
"""Upper and lower case, a digit, a special character, 10 long (the README's old rule), yet weak by zxcvbn."""
SECURITY_OBJECTS = (
    ("SecurityRole", policies.WRITER_ROLE),
    ("SecurityRole", exporter.ROLE),
    ("InternalUser", policies.WRITER_USER),
    ("InternalUser", exporter.USER),
    ("RoleMapping", policies.WRITER_ROLE),
    ("RoleMapping", exporter.ROLE),
    ("IndexTemplate", policies.INDEX_TEMPLATE),
)
"""What node B gets through the provider, in the program's dependency order."""
KEEP = os.environ.get("OPENSEARCH_IT_KEEP") == "1"
"""Keep the nodes' directories (logs, config) after the module, for a look at a failure."""


# --- what the program generates ----------------------------------------------------------------


@dataclass(frozen=True)
class Ours:
    """One stack's generated OpenSearch files and API objects, certificates real."""

    stack: str
    generated: Generated
    guard: dict[str, Any]
    objects: dict[tuple[str, str], dict[str, Any]]
    """(kind, object_name) -> the resource's inputs."""
    exporter_container: dict[str, Any]
    exporter_login: dict[str, str]
    writer_login: dict[str, str]
    platform_ca: str
    plugin_script: str
    """The plugin installer Job's `sh -c` script."""
    plugin_mounts: list[dict[str, Any]]
    """The release's mounts of the plugin claim (`subPath` on it, `mountPath` in the image)."""
    admin: dict[str, str]
    """This cluster's `opensearchAdmin` in central's `tlsCertificates`: certificate and key, real."""
    other_admin: dict[str, str]
    """Another cluster's admin certificate and key."""


def ours_of(platform: Platform, stack: str) -> Ours:
    rendering = platform.rendering(stack)
    real = platform.real
    values = unwrap(rendering.release(component.RELEASE).inputs["values"])

    def data(kind: str, name: str, namespace: str = LOGGING) -> dict[str, str]:
        inputs = real(rendering.k8s(kind, name, namespace).inputs)
        return dict(inputs["stringData" if kind == "Secret" else "data"])

    (init,) = (c for c in values["extraInitContainers"] if c["name"] == "s3-truststore")
    (container,) = (c for c in values["extraContainers"] if c["name"] == exporter.CONTAINER)
    generated = Generated(
        opensearch_yml=values["config"]["opensearch.yml"],
        internal_users_yml=data("Secret", component.INTERNAL_USERS_SECRET)["internal_users.yml"],
        tls=data("Secret", OPENSEARCH_TLS_SECRET),
        keystore=data("Secret", OPENSEARCH_KEYSTORE_SECRET),
        java_opts=values["opensearchJavaOpts"],
        truststore_script=init["command"][-1],
        s3_ca=data("ConfigMap", component.S3_CA_CONFIGMAP)["ca.crt"],
        environment={env["name"]: env["value"] for env in values["extraEnvs"]},
        single_node=bool(values["singleNode"]),
    )
    objects = {(r.inputs["kind"], r.inputs["object_name"]): real(r.inputs) for r in rendering.of_type(OBJECT)}
    job = unwrap(rendering.k8s("Job", component.PLUGIN_INSTALLER, LOGGING).inputs["spec"])
    (installer,) = job["template"]["spec"]["containers"]
    claims = {
        volume["name"]
        for volume in values["extraVolumes"]
        if volume.get("persistentVolumeClaim", {}).get("claimName") == component.PLUGINS_CLAIM
    }
    issued = real(platform.central.outputs["tlsCertificates"])
    other = next(cluster for cluster in sorted(issued) if cluster != stack)
    return Ours(
        stack=stack,
        generated=generated,
        guard=real(rendering.one(GUARD).inputs),
        objects=objects,
        exporter_container=container,
        exporter_login=data("Secret", exporter.CREDENTIALS_SECRET),
        writer_login=data("Secret", component.WRITER_SECRET, writer_namespace(rendering)),
        platform_ca=data("ConfigMap", PLATFORM_CA_CONFIGMAP)[CA_KEY],
        plugin_script=installer["command"][-1],
        plugin_mounts=[mount for mount in values["extraVolumeMounts"] if mount["name"] in claims],
        admin=dict(issued[stack]["opensearchAdmin"]),
        other_admin=dict(issued[other]["opensearchAdmin"]),
    )


def writer_namespace(rendering: Rendering) -> str:
    for resource in rendering.kubernetes_objects():
        if resource.kind == "Secret" and resource.metadata.get("name") == component.WRITER_SECRET:
            return str(resource.metadata["namespace"])
    raise LookupError(f"no Secret {component.WRITER_SECRET} in {rendering.stack}")


# --- the provider, as the engine calls it --------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    url: str
    server_name: str | None


def props(inputs: Mapping[str, Any], endpoint: Endpoint, **changes: Any) -> dict[str, Any]:
    """A resource's inputs as the provider receives them, pointed at the node instead of the ingress."""
    kept = {key: value for key, value in inputs.items() if key != "__provider"}
    return {**kept, "url": endpoint.url, "server_name": endpoint.server_name, **changes}


@dataclass(frozen=True)
class Applied:
    """One object after `create`: its inputs and the outputs the engine would store."""

    kind: str
    props: dict[str, Any]
    outs: dict[str, Any]

    @property
    def provider(self) -> api.OpenSearchObjectProvider:
        return api.OpenSearchObjectProvider(KINDS[self.kind])

    def second_pass(self) -> bool:
        """What the engine's next `preview` asks: any change, the live object's drift included?"""
        diff = self.provider.diff(self.props["object_name"], self.outs, self.props)
        return bool(diff.changes)

    def refreshed(self) -> Any:
        """The body `pulumi refresh` would record."""
        outs = self.provider.read(self.props["object_name"], self.outs).outs or {}
        return outs["body"]


def apply(kind: str, properties: dict[str, Any]) -> Applied:
    created = api.OpenSearchObjectProvider(KINDS[kind]).create(properties)
    assert created.id == properties["object_name"]
    return Applied(kind, properties, dict(created.outs or {}))


# --- the nodes ------------------------------------------------------------------------------------


@dataclass
class Node:
    """A running node: its process, where it lives, what it was given, how the tests reach it."""

    process: OpenSearchNode
    host: Host
    ours: Ours
    release: Release
    endpoint: Endpoint
    rest: Client
    """The REST API as the admin (node B: HTTPS verified against the platform CA for `TLS_NAME`)."""
    dropped: list[str]
    """The keys of our `opensearch.yml` this node runs without (no plugin to own them)."""
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    """What was true right after the start, before any test changed it."""
    setup: Callable[[Node], None] | None = None
    """Runs before the start, in the starting thread (node A: the plugin claim filled and mounted)."""
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    """Run after the node stopped (node A: its mounts)."""

    def client(self, username: str | None, password: str | None) -> Client:
        return Client(
            self.host.address, HTTP_PORT, self.rest.ca_pem, self.rest.tls_name, username, password, timeout=60
        )


def workdir_for(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(mode=0o755)
    return path


def node_a(ours: Ours, store: ObjectStore, host: Host, base: Path) -> Node:
    """3.6.0 without repository-s3 in its install: the plugin comes from the claim (`with_plugin_claim`)."""
    with_plugin = need_release(deployed_release())
    job_scheduler, repository_s3 = with_plugin.plugins
    assert repository_s3.name.startswith("repository-s3-"), with_plugin.plugins
    release = dataclasses.replace(with_plugin, plugins=(job_scheduler,))
    workdir = workdir_for(base, "a")
    yml, dropped = ours.generated.yml_without(lambda key: key.startswith("plugins.security."))
    credential = store.cluster_credentials(ours.stack, "opensearch")
    keystore = real_keystore(ours.generated.keystore, credential.access_key, credential.secret_key)
    truststore = build_truststore(ours.generated, workdir)
    process = OpenSearchNode(
        assemble(release),
        workdir / "node",
        {"opensearch.yml": yml},
        keystore=keystore,
        java_opts=node_java_opts(ours.generated, truststore),
        prefix=host.command([]),
        settings=chart_settings(ours.generated),
        environment=ours.generated.environment,
        address=host.address,
        http_port=HTTP_PORT,
    )
    rest = Client(host.address, HTTP_PORT, timeout=120)
    endpoint = Endpoint(f"http://{host.address}:{HTTP_PORT}", None)
    node = Node(process, host, ours, release, endpoint, rest, dropped)
    node.setup = lambda started: with_plugin_claim(started, workdir, repository_s3)
    return node


def node_b(ours: Ours, host: Host, base: Path) -> Node:
    release = need_release(security_release())
    workdir = workdir_for(base, "b")
    yml, dropped = ours.generated.yml_without(lambda key: key.startswith("s3.client."))
    truststore = build_truststore(ours.generated, workdir)
    process = OpenSearchNode(
        assemble(release),
        workdir / "node",
        security_files(ours.generated, yml),
        java_opts=node_java_opts(ours.generated, truststore),
        prefix=host.command([]),
        settings=chart_settings(ours.generated),
        environment=ours.generated.environment,
        address=host.address,
        http_port=HTTP_PORT,
    )
    password = ours.guard["password"]
    rest = Client(host.address, HTTP_PORT, ours.platform_ca, TLS_NAME, component.ADMIN_USER, password, timeout=120)
    endpoint = Endpoint(f"https://{host.address}:{HTTP_PORT}", TLS_NAME)
    return Node(process, host, ours, release, endpoint, rest, dropped)


# --- node A's plugin claim, filled by the installer Job's script ------------------------------------


def installer_script(ours: Ours, home: Path, claim: Path, scratch: Path) -> str:
    """The rendered script with the pod's paths moved here: the image's home (its plugins directory
    the Job's empty `emptyDir`), the claim, `/tmp`."""
    return (
        ours.plugin_script.replace(f"{component.HOME}/", f"{home}/")
        .replace(f"{component.PLUGIN_STORE}/", f"{claim}/")
        .replace("/tmp/config", f"{scratch}/config")
    )


def bind(source: Path, target: Path, read_only: bool = False) -> None:
    """A bind mount, as the kubelet mounts a volume (or a `subPath` of one) into a container."""
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True, timeout=30)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, timeout=30)


def run_installer(node: Node, image: Path, plugins: Path, script: str) -> subprocess.CompletedProcess[str]:
    """One run of the Job's container: in the node's host namespace (no route out), as the chart's user,
    the image read-only (`readOnlyRootFilesystem`) with a fresh empty plugins directory mounted on it
    (the Job's `emptyDir`)."""
    plugins.mkdir()
    os.chown(plugins, RUN_AS, RUN_AS)
    bind(plugins, image / "plugins")
    user = ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", "--"]
    environment = {**os.environ, "OPENSEARCH_JAVA_HOME": str(JAVA_HOME), "HOME": str(plugins.parent)}
    try:
        return node.host.run([*user, "sh", "-c", script], env=environment, check=False, timeout=300)
    finally:
        unmount(image / "plugins")


def with_plugin_claim(node: Node, workdir: Path, plugin_zip: Path) -> None:
    """The installer Job's script on an empty claim verbatim (it reaches for artifacts.opensearch.org and
    fails: there is no route out), then from the plugin zip (the same install, from a file URL), then
    verbatim again (the plugin is there: no download); then the release's mounts of the claim, read-only
    bind mounts into the node's home, as the kubelet makes them."""
    copy, image, scratch = workdir / "installer-home", workdir / "installer-image", workdir / "installer-tmp"
    claim, empty = workdir / "plugin-claim", workdir / "empty-plugin-claim"
    link_tree(node.process.install, copy)
    image.mkdir()
    zip_copy = workdir / plugin_zip.name
    shutil.copyfile(plugin_zip, zip_copy)
    zip_copy.chmod(0o644)
    for directory in (claim, empty, scratch):
        directory.mkdir()
        os.chown(directory, RUN_AS, RUN_AS)
    verbatim = installer_script(node.ours, image, claim, scratch)
    download = f"install --batch {component.PLUGINS[0]}\n"
    assert verbatim.count(download) == 1, verbatim
    scripts = {
        "unreachable": installer_script(node.ours, image, empty, scratch),
        "first": verbatim.replace(download, f"install --batch {zip_copy.as_uri()}\n"),
        "again": verbatim,
    }
    bind(copy, image, read_only=True)
    try:
        runs = {
            run: run_installer(node, image, workdir / f"empty-dir-{run}", script) for run, script in scripts.items()
        }
    finally:
        unmount(image)
    node.facts["installer"] = runs
    node.facts["claim"] = claim
    assert runs["first"].returncode == 0, runs["first"].stdout + runs["first"].stderr
    node.process.prepare()
    for mount in node.ours.plugin_mounts:
        target = node.process.home / Path(mount["mountPath"]).relative_to(component.HOME)
        target.mkdir(parents=True)
        bind(claim / mount["subPath"], target, read_only=bool(mount.get("readOnly")))
        node.cleanups.append(functools.partial(unmount, target))


def unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False, timeout=30)


def need_release(outcome: Release | Blocked) -> Release:
    if isinstance(outcome, Blocked):
        blocked(outcome.name, outcome.coordinates, outcome.why)
    assert isinstance(outcome, Release)
    return outcome


def real_keystore(rendered: Mapping[str, str], access_key: str, secret_key: str) -> dict[str, str]:
    """The rendered keystore Secret's entries (same keys) holding the object store's real credentials."""
    values = {"s3.client.default.access_key": access_key, "s3.client.default.secret_key": secret_key}
    assert set(rendered) == set(values), sorted(rendered)
    return values


def start(node: Node, ready: Callable[[], bool]) -> Node:
    if node.setup is not None:
        node.setup(node)
    started = time.monotonic()
    node.process.start(START_TIMEOUT, ready)
    node.seconds = time.monotonic() - started
    return node


def wanted(request: pytest.FixtureRequest, fixture: str) -> bool:
    """Whether a test of this module collected in this run uses `fixture`."""
    return any(
        getattr(item, "module", None) is request.module and fixture in getattr(item, "fixturenames", ())
        for item in request.session.items
    )


@pytest.fixture(scope="module")
def launches(
    request: pytest.FixtureRequest, platform: Platform, object_store: ObjectStore, hosts: dict[str, Host]
) -> Iterator[dict[str, concurrent.futures.Future[Node]]]:
    """Both nodes, started at the same time (each JVM start is mostly single-threaded waiting)."""
    base = Path(tempfile.mkdtemp(prefix="opensearch-it-", dir="/tmp"))
    base.chmod(0o755)  # OpenSearch runs as uid 1000
    nodes: list[Node] = []
    futures: dict[str, concurrent.futures.Future[Node]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        try:
            if wanted(request, "deployed"):
                a = node_a(ours_of(platform, NODE_A), object_store, hosts[NODE_A], base)
                nodes.append(a)
                futures["a"] = pool.submit(start, a, lambda: a.rest.answers("/_cluster/health"))
            if wanted(request, "secured"):
                b = node_b(ours_of(platform, NODE_B), hosts[NODE_B], base)
                nodes.append(b)
                futures["b"] = pool.submit(start, b, lambda: b.rest.answers(api.ACCOUNT_PATH))
            yield futures
        finally:
            for node in nodes:
                node.process.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            for node in nodes:  # one still preparing when the first stop came has started since
                node.process.stop()
            for node in nodes:
                for cleanup in reversed(node.cleanups):
                    cleanup()
    print(f"\nopensearch nodes' directories: {base} ({'kept' if KEEP else 'removed'})")
    if not KEEP:
        shutil.rmtree(base, ignore_errors=True)


def started(launches: dict[str, concurrent.futures.Future[Node]], name: str) -> Node:
    node = launches[name].result()
    assert node.process.running(), f"node {name} exited:\n{node.process.log_tail()}"
    return node


@pytest.fixture(scope="module")
def deployed(launches: dict[str, concurrent.futures.Future[Node]]) -> Node:
    """Node A: OpenSearch 3.6.0, repository-s3, edge-a's files."""
    return started(launches, "a")


@pytest.fixture(scope="module")
def secured(launches: dict[str, concurrent.futures.Future[Node]]) -> Node:
    """Node B: OpenSearch 3.4.0 with security, edge-b's files; what it held right after the start."""
    node = started(launches, "b")
    if not node.facts:
        node.facts["internal_users"] = node.rest.get("/_plugins/_security/api/internalusers").json()
    return node


# --- node A: settings, repository, snapshots ------------------------------------------------------


def today() -> str:
    return time.strftime("%Y.%m.%d", time.gmtime())


@pytest.fixture(scope="module")
def bulk_delete(deployed: Node, object_store: ObjectStore) -> Iterator[str]:
    """WORKAROUND for a moto gap, on the cluster's S3 user for the module: `s3:DeleteObject` on the bucket ARN.

    repository-s3 3.6.0 deletes every blob (verification's test blobs, a deleted snapshot's files) with
    multi-object `DeleteObjects`. MinIO and AWS authorise it per key, against our policy's
    `<bucket>/<cluster>/*`; moto checks it against the bucket ARN, which the policy does not name, and
    answers AccessDenied for each key (`test_object_store.py`, `..._multi_object_delete_per_object`;
    repository-s3 then only logs "Failed to delete N objects", leaves the blobs, and `_verify` still answers
    200). This extra statement
    lets moto allow what MinIO allows; it also lets a bulk delete reach other prefixes, which is not what
    these tests check. Removed after the module."""
    user = f"{deployed.ours.stack}-opensearch"
    bucket = deployed.ours.objects["SnapshotRepository", REPOSITORY]["body"]["settings"]["bucket"]
    statement = {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": [f"arn:aws:s3:::{bucket}"]}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    iam = object_store.client(object_store.admin, "iam")
    iam.put_user_policy(UserName=user, PolicyName=MOTO_BULK_DELETE, PolicyDocument=document)
    yield bucket
    iam.delete_user_policy(UserName=user, PolicyName=MOTO_BULK_DELETE)


@pytest.fixture(scope="module")
def repository(deployed: Node, bulk_delete: str) -> Applied:
    """`logs-s3` through the provider, exactly our body: create, then `_verify` (its `verify`)."""
    inputs = deployed.ours.objects["SnapshotRepository", REPOSITORY]
    return apply("SnapshotRepository", props(inputs, deployed.endpoint))


@pytest.fixture(scope="module")
def template_a(deployed: Node) -> Applied:
    inputs = deployed.ours.objects["IndexTemplate", policies.INDEX_TEMPLATE]
    return apply("IndexTemplate", props(inputs, deployed.endpoint))


@pytest.fixture(scope="module")
def logs_index(deployed: Node, template_a: Applied) -> str:
    """Today's `logs-*` index with a line in it, as Fluent-bit would write it (after the template)."""
    index = f"{policies.LOG_INDEX_PREFIX}-{today()}"
    document = log_line(deployed.ours.stack)
    answered = deployed.rest.request("POST", f"/{index}/_doc?refresh=true", document)
    assert answered.status == 201, answered.text()
    return index


def log_line(cluster: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "@timestamp": now,
        "time": now,
        "log": "integration test line",
        "log_processed": {"level": "info", "msg": "hello"},
        "stream": "stdout",
        "cluster": cluster,
        "kubernetes": {"namespace_name": "monitoring", "pod_name": "p-0", "labels": {"app": "x"}},
    }


def snapshot(node: Node, repository: str, name: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    answered = node.rest.request(
        "PUT", f"/_snapshot/{repository}/{name}?wait_for_completion=true", dict(body or {"indices": "logs-*"})
    )
    assert answered.status == 200, answered.text()
    info: dict[str, Any] = answered.json()["snapshot"]
    return info


def delete_snapshot(node: Node, repository: str, name: str) -> None:
    answered = node.rest.request("DELETE", f"/_snapshot/{repository}/{name}")
    assert answered.status == 200, answered.text()


def snapshots(node: Node, repository: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = node.rest.get(f"/_snapshot/{repository}/_all").json()["snapshots"]
    return found


def keys_under(store: ObjectStore, bucket: str, prefix: str = "") -> set[str]:
    pages = store.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def uploads_refused(node: Node, since: int) -> list[str]:
    """The keys repository-s3 logged it could not upload (after log line `since`)."""
    lines = node.process.log().splitlines()[since:]
    return sorted({m.group(1) for line in lines if (m := re.search(r"Unable to upload object \[([^\]]+)\]", line))})


def test_node_a_runs_our_opensearch_yml_keystore_and_truststore(deployed: Node, proves: Proves) -> None:
    root = deployed.rest.get("/").json()
    assert root["version"]["number"] == programs.OPENSEARCH_VERSION
    assert root["cluster_name"] == deployed.ours.generated.settings()["cluster.name"]
    assert cat_plugins(deployed.rest) == {"opensearch-job-scheduler", "repository-s3"}
    assert installed_plugins(deployed.process.home) == ["opensearch-job-scheduler", "repository-s3"]
    security = [key for key in deployed.ours.generated.settings() if key.startswith("plugins.security.")]
    assert deployed.dropped == security
    (node,) = deployed.rest.get("/_nodes/settings,jvm?flat_settings=true").json()["nodes"].values()
    # Every key of ours that this node runs with is in effect with our value (none silently ignored).
    kept = {key: value for key, value in deployed.ours.generated.settings().items() if key not in deployed.dropped}
    assert {key: node["settings"].get(key) for key in kept} == {key: setting_text(v) for key, v in kept.items()}
    # The truststore: our init container's script, run; the JVM started with it.
    truststore = deployed.process.workdir.parent / "s3-truststore" / "cacerts"
    assert f"-Djavax.net.ssl.trustStore={truststore}" in node["jvm"]["input_arguments"]
    assert "s3-ca" in keytool_aliases(truststore)
    # The keystore: exactly the Secret's entries, loaded (and reloadable, as `reload_secure_settings` does).
    assert keystore_entries(deployed) == sorted([*deployed.ours.generated.keystore, "keystore.seed"])
    reloaded = deployed.rest.request("POST", "/_nodes/reload_secure_settings").json()
    assert reloaded["_nodes"] == {"total": 1, "successful": 1, "failed": 0}, reloaded
    assert setting_lines(deployed.process) == []
    proves(
        "opensearch",
        programs.OPENSEARCH_VERSION,
        f"started in {deployed.seconds:.0f}s in {deployed.host.name}'s namespace from the rendered opensearch.yml "
        "(less plugins.security.*: security 3.6.0.0 not served), every other key in effect as rendered "
        "(network.host 0.0.0.0 included); keystore entries of opensearch-s3-keystore loaded and reloadable; JVM "
        "truststore built by our init container's script; no unknown or deprecated setting logged",
    )


def mount_options(path: Path) -> list[str] | None:
    """The options of the mount at `path` (this process's mount table), None when nothing is mounted there."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return fields[5].split(",")
    return None


def test_node_a_runs_repository_s3_from_the_plugin_claim_and_its_start_downloads_nothing(
    deployed: Node, proves: Proves
) -> None:
    """The chart no longer installs repository-s3 at every start: the installer Job put it on the claim,
    once, and the pod mounts it read-only. Node A starts in a namespace with no route out, with the
    plugin only there, and a rerun of the Job's script finds it and downloads nothing."""
    runs = deployed.facts["installer"]
    unreachable = runs["unreachable"].stdout + runs["unreachable"].stderr
    # The download the Job makes (its only one): artifacts.opensearch.org, which nothing here reaches.
    assert runs["unreachable"].returncode != 0 and "UnknownHostException: artifacts.opensearch.org" in unreachable
    assert "installed onto the volume" in runs["first"].stdout, runs["first"].stdout
    again = runs["again"].stdout + runs["again"].stderr
    assert runs["again"].returncode == 0, again
    assert "nothing to download" in again and "Installing" not in again and "Downloading" not in again
    version = programs.OPENSEARCH_VERSION
    (mount,) = deployed.ours.plugin_mounts
    assert (mount["subPath"], mount["readOnly"]) == (f"{version}/repository-s3", True)
    assert installed_plugins(deployed.process.install) == ["opensearch-job-scheduler"], "not in the install"
    assert sorted(path.name for path in (deployed.facts["claim"] / version).iterdir()) == ["repository-s3"]
    options = mount_options(deployed.process.home / "plugins" / "repository-s3")
    assert options is not None and "ro" in options, options
    loaded = {(entry["component"], entry["version"]) for entry in deployed.rest.get("/_cat/plugins?format=json").json()}
    assert ("repository-s3", version) in loaded
    (refusal,) = [line for line in unreachable.splitlines() if "UnknownHostException" in line]
    print(f"\ninstaller on an empty claim, no route out: {trim(refusal, 160)}")
    proves(
        "repository-s3",
        version,
        "installed by the installer Job's rendered script (as uid 1000, the install read-only but for an empty "
        "plugins directory, CLI config in a scratch directory) onto the claim under 3.6.0/repository-s3; run "
        "verbatim on an empty claim it reaches for artifacts.opensearch.org (UnknownHostException without a route "
        "out), rerun verbatim on the filled claim it downloads nothing; OpenSearch started with the plugin only on "
        "the claim, bind-mounted read-only where the chart mounts it, and loads it (every snapshot test runs on it)",
    )


def setting_text(value: Any) -> Any:
    """How `_nodes/settings?flat_settings` shows a value of `opensearch.yml`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return [setting_text(item) for item in value]
    return str(value)


def keytool_aliases(store: Path) -> list[str]:
    listed = subprocess.run(
        [str(JAVA_HOME / "bin" / "keytool"), "-list", "-keystore", str(store), "-storepass", "changeit"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [line.split(",")[0] for line in listed.stdout.splitlines() if ", trustedCertEntry," in line]


def keystore_entries(node: Node) -> list[str]:
    tool = node.process.home / "bin" / "opensearch-keystore"
    return sorted(run_tool([tool, "list"], node.process.config_dir).stdout.split())


def test_repository_as_rendered_is_verified_over_https_with_the_private_ca(
    deployed: Node, repository: Applied, object_store: ObjectStore, proves: Proves
) -> None:
    settings = repository.props["body"]["settings"]
    bucket = settings["bucket"]
    assert bucket in object_store.plan.buckets
    assert (settings["base_path"], settings["s3_async_client_type"]) == (deployed.ours.stack, "netty")
    assert deployed.rest.get(f"/_snapshot/{REPOSITORY}").json()[REPOSITORY] == {"type": "s3", "settings": settings}
    assert repository.second_pass() is False
    assert api.canonical(repository.refreshed()) == api.canonical(repository.props["body"])
    verified = deployed.rest.request("POST", f"/_snapshot/{REPOSITORY}/_verify")
    assert verified.status == 200, verified.text()
    assert list(verified.json()["nodes"].values()) == [{"name": chart_settings(deployed.ours.generated)["node.name"]}]
    left = [key for key in keys_under(object_store, bucket) if "/tests-" in key or key.startswith("tests-")]
    assert left == [], "verification could not delete its test blobs"
    proves(
        "repository-s3",
        programs.OPENSEARCH_VERSION,
        f"the provider registered {REPOSITORY} with our body (s3_async_client_type netty, base_path "
        f"{deployed.ours.stack}; a second pass reports no change) and its _verify passed against the S3 server over "
        "HTTPS trusting only the private CA (JVM truststore), as the cluster's scoped user, deleting its test blobs",
    )


def test_snapshot_as_rendered_stays_in_the_cluster_prefix_and_is_deleted(
    deployed: Node, repository: Applied, logs_index: str, object_store: ObjectStore, proves: Proves
) -> None:
    """OpenSearch 3.6's repositories default to `shard_path_type: hashed_prefix`: shard blobs go to
    `<hash>/<base_path>/indices/...`, outside `<cluster>/`, where the cluster's MinIO user may not write."""
    bucket, prefix = repository.props["body"]["settings"]["bucket"], f"{deployed.ours.stack}/"
    before, since = keys_under(object_store, bucket), len(deployed.process.log().splitlines())
    name = f"delete-proof-{secrets.token_hex(4)}"
    info = snapshot(deployed, REPOSITORY, name)
    try:
        refused = uploads_refused(deployed, since)
        assert (info["state"], refused) == ("SUCCESS", []), (
            f"snapshot {info['state']}: repository-s3 could not write {refused} (outside {prefix}, denied by the "
            f"cluster's S3 policy); the repository body needs `shard_path_type: fixed` (3.6's default is "
            f"hashed_prefix); failures: {info.get('failures')}"
        )
        written = keys_under(object_store, bucket) - before
        assert written and all(key.startswith(prefix) for key in written), sorted(written)
        assert info["indices"] == [logs_index]
    finally:
        delete_snapshot(deployed, REPOSITORY, name)
    assert name not in {entry["snapshot"] for entry in snapshots(deployed, REPOSITORY)}
    left = {key for key in keys_under(object_store, bucket) if info["uuid"] in key}
    assert left == set(), f"deleting the snapshot left {sorted(left)}"
    proves(
        "repository-s3",
        programs.OPENSEARCH_VERSION,
        f"a snapshot of logs-* in {REPOSITORY} (our body) succeeded with every blob under {prefix}, and was deleted "
        "through the netty async client, its blobs gone from the bucket",
    )


def test_shard_path_type_decides_whether_snapshots_stay_in_the_cluster_prefix(
    deployed: Node, bulk_delete: str, logs_index: str, object_store: ObjectStore, proves: Proves
) -> None:
    """The experiment behind the test above: our body with each `shard_path_type`, side by side."""
    ours = deployed.ours.objects["SnapshotRepository", REPOSITORY]
    outcome: dict[str, tuple[str, list[str]]] = {}
    for path_type in ("hashed_prefix", "fixed"):
        base_path = f"{deployed.ours.stack}/shard-path-{path_type}"
        body = {
            "type": "s3",
            "settings": {**ours["body"]["settings"], "base_path": base_path, "shard_path_type": path_type},
        }
        name = f"{REPOSITORY}-{path_type.replace('_', '-')}"
        applied = apply("SnapshotRepository", props(ours, deployed.endpoint, object_name=name, body=body))
        since = len(deployed.process.log().splitlines())
        try:
            info = snapshot(deployed, name, "shard-path-proof")
            outcome[path_type] = (info["state"], uploads_refused(deployed, since))
            delete_snapshot(deployed, name, "shard-path-proof")
            assert {key for key in keys_under(object_store, bulk_delete) if info["uuid"] in key} == set()
        finally:
            applied.provider.delete(name, applied.outs)
    hashed_state, hashed_refused = outcome["hashed_prefix"]
    assert hashed_state == "PARTIAL" and hashed_refused, outcome
    assert not any(key.startswith(f"{deployed.ours.stack}/") for key in hashed_refused), hashed_refused
    assert outcome["fixed"] == ("SUCCESS", []), outcome
    print(f"\nshard_path_type hashed_prefix: {hashed_state}, refused uploads {hashed_refused}; fixed: SUCCESS")
    proves(
        "repository-s3",
        programs.OPENSEARCH_VERSION,
        f"with shard_path_type hashed_prefix (3.6's default) a snapshot is PARTIAL: shard blobs go to "
        f"{trim(hashed_refused[0], 80)} outside the cluster prefix, denied by its S3 policy; with fixed it succeeds "
        "and is deleted through netty, blobs gone",
    )


def test_crt_async_client_fails_with_the_private_ca(
    deployed: Node, bulk_delete: str, object_store: ObjectStore, proves: Proves
) -> None:
    """OpenSearch 3's default async client (AWS CRT) trusts the OS bundle only: without the CA there,
    verification (which deletes its test blobs through the async client) must fail."""
    ours = deployed.ours.objects["SnapshotRepository", REPOSITORY]
    settings = {**ours["body"]["settings"], "s3_async_client_type": "crt", "base_path": CRT_BASE_PATH}
    # No retries, and time for repository-s3's own 30 s delete timeout within the PUT (it verifies).
    properties = props(
        ours, deployed.endpoint, object_name=CRT_REPOSITORY, body={"type": "s3", "settings": settings},
        retries=0, timeout_seconds=180,
    )  # fmt: skip
    since = len(deployed.process.log().splitlines())
    try:
        with pytest.raises(api.OpenSearchError) as refused:
            apply("SnapshotRepository", properties)
        # The CRT client's own errors reach the log when its attempts are used up, after the PUT's answer
        # (and before the repository, with its client, is removed).
        log = wait_for_log(deployed, since, "SDK Attempt Count", timeout=120)
    finally:
        deployed.rest.request("DELETE", f"/_snapshot/{CRT_REPOSITORY}")
    message = str(refused.value)
    assert not [line for line in log if "AWS CRT client is not available" in line], "CRT fell back to netty"
    causes = sorted({m.group(1) for line in log if (m := re.search(r"Request attempt \d+ failure: (.*)", line))})
    print(f"\ncrt repository refused: {message}\n  CRT's attempts: " + "; ".join(causes))
    # The same body with netty passes (test_repository_as_rendered_...): the client type is the difference.
    assert "cannot delete test data" in message, message
    assert causes, "no failed attempt of the CRT client in the log"
    proves(
        "repository-s3",
        programs.OPENSEARCH_VERSION,
        "the same repository with s3_async_client_type crt (OpenSearch 3's default) is refused over HTTPS with the "
        f"private CA in the JVM truststore only: {trim(message, 200)}; the CRT client's attempts: {'; '.join(causes)}",
    )


def wait_for_log(node: Node, since: int, text: str, timeout: float) -> list[str]:
    """The node's log lines after line `since`, once one of them holds `text` (or when `timeout` is up)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = node.process.log().splitlines()[since:]
        if any(text in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(1)


def trim(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


def test_snapshot_management_snapshot_config_is_what_core_takes(
    deployed: Node, repository: Applied, logs_index: str, proves: Proves
) -> None:
    """SM's CreatingState passes `snapshot_config` (plus `metadata.sm_policy`) to core's
    `CreateSnapshotRequest.source`, as the REST API does with a body: our config, taken by core 3.6.0."""
    policy = deployed.ours.objects["SnapshotPolicy", policies.SNAPSHOT_POLICY]["body"]
    config = policy["snapshot_config"]
    assert config["repository"] == REPOSITORY and "date_format_timezone" in config and "timezone" not in config
    assert config["date_format"] == "yyyy.MM.dd-HH.mm" and config["date_format_timezone"] == "UTC"
    # The name SM's generateSnapshotName makes: policy, the date in date_format_timezone, 8 of [a-z0-9].
    stamp = time.strftime("%Y.%m.%d-%H.%M", time.gmtime())
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    name = f"{policies.SNAPSHOT_POLICY}-{stamp}-{suffix}"
    body = {**config, "metadata": {"sm_policy": policies.SNAPSHOT_POLICY}}
    info = snapshot(deployed, REPOSITORY, name, body)
    try:
        # Its state is the repository's business (test_snapshot_as_rendered_...); here: what was taken.
        assert info["snapshot"] == name and info["indices"] == [logs_index]
        assert info["include_global_state"] is False
        assert info["metadata"] == {"sm_policy": policies.SNAPSHOT_POLICY}
    finally:
        deployed.rest.request("DELETE", f"/_snapshot/{REPOSITORY}/{name}")
    proves(
        "opensearch",
        programs.OPENSEARCH_VERSION,
        "the SM policy's snapshot_config (date_format_timezone, include_global_state false, ignore_unavailable, "
        "partial false) taken by core's create-snapshot as SM's CreatingState passes it, under an SM-style name",
    )


SCHEDULE_PARSER = """
import org.opensearch.common.xcontent.json.JsonXContent;
import org.opensearch.core.xcontent.DeprecationHandler;
import org.opensearch.core.xcontent.NamedXContentRegistry;
import org.opensearch.core.xcontent.XContentParser;
import org.opensearch.jobscheduler.spi.schedule.CronSchedule;
import org.opensearch.jobscheduler.spi.schedule.ScheduleParser;
import java.time.Instant;

public class ParseSchedules {
    public static void main(String[] args) throws Exception {
        Instant from = Instant.parse(args[0]);
        for (int i = 1; i < args.length; i++) {
            XContentParser parser = JsonXContent.jsonXContent.createParser(
                NamedXContentRegistry.EMPTY, DeprecationHandler.THROW_UNSUPPORTED_OPERATION, args[i]);
            parser.nextToken();
            CronSchedule cron = (CronSchedule) ScheduleParser.parse(parser);
            Instant next = cron.getNextExecutionTime(from);
            System.out.println(cron.getCronExpression() + "|" + cron.getTimeZone() + "|" + next);
        }
    }
}
"""
"""Job-scheduler's own parser run on a schedule (`java` runs a one-file program from source)."""


def test_snapshot_policy_schedules_parse_with_job_scheduler(platform: Platform, tmp_path: Path, proves: Proves) -> None:
    """SM hands `creation.schedule` and `deletion.schedule` to job-scheduler's `ScheduleParser`: run that
    parser (job-scheduler 3.6.0.0 as installed on node A) on the rendered policy's schedules."""
    install = assemble(need_release(deployed_release()))
    body = ours_of(platform, NODE_A).objects["SnapshotPolicy", policies.SNAPSHOT_POLICY]["body"]
    schedules = [body["creation"]["schedule"], body["deletion"]["schedule"]]
    source = tmp_path / "ParseSchedules.java"
    source.write_text(SCHEDULE_PARSER)
    classpath = f"{install / 'lib'}/*:{install / 'plugins' / 'opensearch-job-scheduler'}/*"
    ran = subprocess.run(
        [str(JAVA_HOME / "bin" / "java"), "-cp", classpath, str(source), "2026-12-03T12:00:00Z",
         *(json.dumps(schedule) for schedule in schedules)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    parsed = [line.split("|") for line in ran.stdout.splitlines()]
    assert [(expression, zone) for expression, zone, _ in parsed] == [
        (s["cron"]["expression"], s["cron"]["timezone"]) for s in schedules
    ]
    assert [next_run for *_, next_run in parsed] == ["2026-12-04T01:00:00Z", "2026-12-04T03:00:00Z"]
    proves(
        "opensearch-job-scheduler",
        programs.OPENSEARCH_PLUGINS_VERSION,
        "its ScheduleParser takes the SM policy's creation and deletion schedules as rendered (cron expression and "
        "timezone) and computes their next runs (01:00 and 03:00 UTC)",
    )


def test_index_template_through_the_provider_with_no_second_change(
    deployed: Node, template_a: Applied, logs_index: str, proves: Proves
) -> None:
    assert template_a.second_pass() is False
    assert api.canonical(template_a.refreshed()) == api.canonical(template_a.props["body"])
    settings = deployed.rest.get(f"/{logs_index}/_settings?flat_settings=true").json()[logs_index]["settings"]
    assert (settings["index.number_of_shards"], settings["index.number_of_replicas"]) == ("1", "0")
    mapping = deployed.rest.get(f"/{logs_index}/_mapping").json()[logs_index]["mappings"]["properties"]
    assert mapping["log_processed"]["type"] == "flat_object"
    assert mapping["kubernetes"]["properties"]["labels"]["type"] == "flat_object"
    proves(
        "opensearch",
        programs.OPENSEARCH_VERSION,
        "the provider created the logs index template (core API), a second pass and a refresh report no change, "
        "a new logs-* index got its settings and flat_object mappings",
    )


# --- the exporter ----------------------------------------------------------------------------------

Sample = tuple[str, dict[str, str], float]


def samples(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition."""
    found: list[Sample] = []
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            found.append((match.group(1), labels, float(match.group(3))))
    return found


def named(found: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in found if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


@contextmanager
def running_exporter(host: Host, args: list[str], env: Mapping[str, str], log: Path) -> Iterator[Callable[[], str]]:
    """elasticsearch-exporter inside `host`'s namespace; yields a scrape of its /metrics from this machine."""
    binary = need("elasticsearch_exporter")
    with log.open("wb") as output:
        process = host.popen([str(binary), *args], env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)

    def scrape() -> str:
        connection = http.client.HTTPConnection(host.address, exporter.PORT, timeout=60)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            assert response.status == 200, response.status
            return response.read().decode()
        finally:
            connection.close()

    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the exporter exited: {log.read_text()}"
            with suppress(OSError, http.client.HTTPException, AssertionError):
                scrape()
                break
            assert time.monotonic() < deadline, f"the exporter never answered: {log.read_text()}"
            time.sleep(0.3)
        yield scrape
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def exporter_env(node: Node) -> dict[str, str]:
    """The container's env: the Secret's username and password (it names both by secretKeyRef)."""
    login = node.ours.exporter_login
    refs = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in node.ours.exporter_container["env"]}
    assert {ref["name"] for ref in refs.values()} == {exporter.CREDENTIALS_SECRET}
    return {name: login[ref["key"]] for name, ref in refs.items()}


def test_exporter_reads_the_snapshot_metrics_the_alerts_use(
    deployed: Node, repository: Applied, logs_index: str, proves: Proves
) -> None:
    kept = f"exporter-proof-{secrets.token_hex(4)}"
    info = snapshot(deployed, REPOSITORY, kept)
    args = list(deployed.ours.exporter_container["args"])
    uri = f"--es.uri=https://localhost:{HTTP_PORT}"
    ca = f"--es.ca={exporter.CA_DIR}/{CA_KEY}"
    assert uri in args and ca in args
    # Node A speaks plain HTTP (no security plugin): the scheme is http and there is no CA to give.
    adapted = [f"--es.uri=http://localhost:{HTTP_PORT}" if arg == uri else arg for arg in args if arg != ca]
    log = deployed.process.workdir.parent / "exporter-a.log"
    try:
        with running_exporter(deployed.host, adapted, exporter_env(deployed), log) as scrape:
            found = samples(scrape())
            count = len(snapshots(deployed, REPOSITORY))
    finally:
        deployed.rest.request("DELETE", f"/_snapshot/{REPOSITORY}/{kept}")
    stats = "elasticsearch_snapshot_stats"
    assert [s[2] for s in named(found, "elasticsearch_scrape_success", collector="snapshots")] == [1.0]
    assert [s[2] for s in named(found, f"{stats}_number_of_snapshots", repository=REPOSITORY)] == [float(count)]
    latest = named(found, f"{stats}_latest_snapshot_timestamp_seconds", repository=REPOSITORY)
    assert [s[2] for s in latest] == [float(info["start_time_in_millis"] // 1000)]
    start = named(found, f"{stats}_snapshot_start_time_timestamp", repository=REPOSITORY)
    assert [s[1]["state"] for s in start] == [info["state"]]
    assert not [s for s in found if s[0] == f"{stats}_up"], "the old alert's metric exists after all"
    proves(
        ELASTICSEARCH_EXPORTER,
        programs.ELASTICSEARCH_EXPORTER,
        "the generated container's flags (scheme http and no --es.ca against node A's plain HTTP) against OpenSearch "
        f"{programs.OPENSEARCH_VERSION}: {stats}_number_of_snapshots, _latest_snapshot_timestamp_seconds and "
        f"_snapshot_start_time_timestamp{{state}} for {REPOSITORY}, "
        f"elasticsearch_scrape_success{{collector=snapshots}} 1; no {stats}_up",
    )


# --- node B: security ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def security_objects(secured: Node) -> dict[tuple[str, str], Applied]:
    """The admin guard, then roles, users, role mappings and the index template through the provider."""
    api.AdminCredentialsProvider().create(props(secured.ours.guard, secured.endpoint))
    return {key: apply(key[0], props(secured.ours.objects[key], secured.endpoint)) for key in SECURITY_OBJECTS}


def test_security_index_from_our_internal_users_over_our_certificate(
    secured: Node, proves: Proves, tmp_path: Path
) -> None:
    assert set(secured.facts["internal_users"]) == {component.ADMIN_USER}
    account = secured.rest.get(f"/{api.ACCOUNT_PATH}").json()
    assert account["user_name"] == component.ADMIN_USER and "all_access" in account["roles"], account
    assert (
        secured.client(component.ADMIN_USER, "wrong-" + secrets.token_hex(8)).get(f"/{api.ACCOUNT_PATH}").status == 401
    )
    served = x509.load_der_x509_certificate(secured.rest.peer_certificate())
    ours = x509.load_pem_x509_certificate(secured.ours.generated.tls[CERTIFICATE_KEY].encode())
    assert served.public_bytes(serialization.Encoding.DER) == ours.public_bytes(serialization.Encoding.DER)
    assert served.subject.rfc4514_string() == component.NODE_DN
    other = make_pki(tmp_path / "other", "another CA", secured.host.address)
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(secured.host.address, HTTP_PORT, other.ca.read_text(), TLS_NAME).get("/")
    assert not Client(secured.host.address, HTTP_PORT).answers("/", expect=(200, 401))
    config = secured.process.config_dir
    demo = sorted(p.name for p in config.rglob("*.pem")) + sorted(p.name for p in config.rglob("*kirk*"))
    assert demo == [], demo
    assert cat_plugins(secured.rest) == {"opensearch-job-scheduler", "opensearch-security"}
    assert setting_lines(secured.process) == []
    assert secured.dropped == [k for k in secured.ours.generated.settings() if k.startswith("s3.client.")]
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        f"on OpenSearch {programs.OPENSEARCH_SECURITY_NEAREST}, the nearest release whose security plugin is served "
        f"(3.6.0.0 is not): started in {secured.seconds:.0f}s from the rendered opensearch.yml (less s3.client.*, no "
        "repository-s3 there), node certificate and internal_users.yml; security index initialised from our file "
        "without the demo installer (admin only, no demo certificates); HTTPS serves our certificate, verified "
        "against the platform CA, refused under another CA, no plain HTTP; no unknown or deprecated setting logged",
    )


def test_provider_creates_the_security_objects_with_no_second_change(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    for key, applied in security_objects.items():
        assert applied.second_pass() is False, key
        assert api.canonical(applied.refreshed()) == api.canonical(applied.props["body"]), key
    roles = secured.rest.get("/_plugins/_security/api/roles").json()
    assert roles[policies.WRITER_ROLE]["index_permissions"][0]["index_patterns"] == [policies.LOG_INDEX_PATTERN]
    users = secured.rest.get("/_plugins/_security/api/internalusers").json()
    assert {policies.WRITER_USER, exporter.USER} <= set(users)
    mappings = secured.rest.get("/_plugins/_security/api/rolesmapping").json()
    assert mappings[policies.WRITER_ROLE]["users"] == [policies.WRITER_USER]
    assert mappings[exporter.ROLE]["users"] == [exporter.USER]
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "AdminCredentials accepted the generated admin password; the provider created the roles, internal users and "
        "role mappings of Fluent-bit's writer and the snapshot exporter, and the index template; a second pass and a "
        "refresh report no change",
    )


def test_provider_updates_what_drifted(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    role = security_objects["SecurityRole", policies.WRITER_ROLE]
    drifted = {**role.props["body"], "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["read"]}]}
    assert secured.rest.request("PUT", f"/_plugins/_security/api/roles/{policies.WRITER_ROLE}", drifted).status == 200
    template = security_objects["IndexTemplate", policies.INDEX_TEMPLATE]
    body = json.loads(json.dumps(template.props["body"]))
    body["template"]["settings"]["index"]["number_of_shards"] = 3
    assert secured.rest.request("PUT", f"/_index_template/{policies.INDEX_TEMPLATE}", body).status == 200
    for applied in (role, template):
        assert applied.second_pass() is True
        applied.provider.update(applied.props["object_name"], applied.outs, applied.props)
        assert applied.second_pass() is False
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "a role and the index template changed behind Pulumi's back show as changes and the provider's update "
        "restores them",
    )


def test_writer_may_create_and_write_logs_only(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    login = secured.ours.writer_login
    assert security_objects["InternalUser", policies.WRITER_USER].props["body"]["password"] == login["password"]
    writer = secured.client(login["username"], login["password"])
    index = f"{policies.LOG_INDEX_PREFIX}-{today()}"
    bulk = f'{{"create": {{"_index": "{index}"}}}}\n{json.dumps(log_line(secured.ours.stack))}\n'
    answered = raw(writer, "POST", "/_bulk?refresh=true", bulk, "application/x-ndjson")
    assert answered.status == 200 and answered.json()["errors"] is False, answered.text()
    other = "restricted-it"
    assert secured.rest.request("PUT", f"/{other}").status == 200
    assert writer.get(f"/{other}/_search").status == 403
    assert writer.request("POST", f"/{other}/_doc", {"x": 1}).status == 403
    assert writer.get(f"/{index}/_search").status == 403, "the writer reads what it writes"
    settings = secured.rest.get(f"/{index}/_settings?flat_settings=true").json()[index]["settings"]
    assert (settings["index.number_of_shards"], settings["index.number_of_replicas"]) == ("1", "0")
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "Fluent-bit's user (the Secret's password) creates and bulk-writes today's logs-* index, which gets the "
        "template; it may neither read that index nor read or write another",
    )


def raw(client: Client, method: str, path: str, body: str, content_type: str) -> Any:
    """A request with a non-JSON body (bulk), through the same verified connection."""
    token = base64.b64encode(f"{client.username}:{client.password}".encode()).decode()
    connection = client.connection()
    try:
        connection.request(
            method, path, body=body.encode(), headers={"Content-Type": content_type, "Authorization": f"Basic {token}"}
        )
        response = connection.getresponse()
        return Response(response.status, response.read())
    finally:
        connection.close()


def test_exporter_user_reads_health_and_snapshots_only(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    login = secured.ours.exporter_login
    reader = secured.client(login["username"], login["password"])
    assert reader.get("/_cluster/health").status == 200
    assert reader.get("/_snapshot").status == 200
    assert reader.get("/_snapshot/_all").status == 200
    index = f"{policies.LOG_INDEX_PREFIX}-{today()}"
    assert reader.request("POST", f"/{index}/_doc", {"x": 1}).status == 403
    assert reader.get(f"/{policies.LOG_INDEX_PATTERN}/_search").status == 403
    assert reader.request("PUT", "/exporter-made-it").status == 403
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "the snapshot exporter's user reads cluster health and snapshot repositories, and may neither write nor "
        "search an index",
    )


def test_exporter_against_the_secured_node_shows_the_repository_missing(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    args = list(secured.ours.exporter_container["args"])
    ca_arg = f"--es.ca={exporter.CA_DIR}/{CA_KEY}"
    assert ca_arg in args and f"--es.uri=https://localhost:{HTTP_PORT}" in args
    ca_file = secured.process.workdir.parent / "exporter-platform-ca.crt"
    ca_file.write_text(secured.ours.platform_ca)
    moved = [f"--es.ca={ca_file}" if arg == ca_arg else arg for arg in args]
    log = secured.process.workdir.parent / "exporter-b.log"
    with running_exporter(secured.host, moved, exporter_env(secured), log) as scrape:
        found = samples(scrape())
    assert [s[2] for s in named(found, "elasticsearch_scrape_success", collector="snapshots")] == [1.0], log.read_text()
    assert named(found, "elasticsearch_snapshot_stats_number_of_snapshots") == []
    assert not [s for s in found if s[0].startswith("elasticsearch_snapshot_stats_")]
    health = named(found, "elasticsearch_cluster_health_number_of_nodes")
    assert [s[2] for s in health] == [1.0], "the exporter's user did not read cluster health"
    proves(
        ELASTICSEARCH_EXPORTER,
        programs.ELASTICSEARCH_EXPORTER,
        f"the generated container's flags verbatim (--es.ca moved to the platform CA's file) as snapshot-exporter "
        f"over HTTPS against OpenSearch {programs.OPENSEARCH_SECURITY_NEAREST} with security: "
        "elasticsearch_scrape_success{collector=snapshots} 1 and no repository series (no repository-s3 there), "
        "the condition of OpenSearchSnapshotRepositoryMissing",
    )


def strong_password() -> str:
    """A password of the generated ones' shape (`components.opensearch.generated_password`)."""
    alphabet = string.ascii_letters + string.digits + component.PASSWORD_SPECIALS
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(32))
        classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, component.PASSWORD_SPECIALS)
        if all(sum(char in chars for char in password) >= 2 for chars in classes):
            return password


def rotate(node: Node, old: str, new: str) -> Any:
    """The README's rotation: `PUT _plugins/_security/api/account` as admin, with the current password."""
    admin = node.client(component.ADMIN_USER, old)
    return admin.request("PUT", f"/{api.ACCOUNT_PATH}", {"current_password": old, "password": new})


def test_admin_password_rotated_through_the_account_api(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves
) -> None:
    guard = props(secured.ours.guard, secured.endpoint)
    old, new = guard["password"], strong_password()
    weak = rotate(secured, old, WEAK_BY_ZXCVBN)
    assert weak.status == 400, weak.text()
    print(f"\naccount API on {WEAK_BY_ZXCVBN!r}: HTTP {weak.status} {weak.text()}")
    rotated = rotate(secured, old, new)
    assert rotated.status == 200, rotated.text()
    try:
        assert secured.client(component.ADMIN_USER, new).get(f"/{api.ACCOUNT_PATH}").json()["user_name"] == "admin"
        api.AdminCredentialsProvider().create({**guard, "password": new})
        with pytest.raises(api.AdminPasswordRejected) as rejected:
            api.verify_admin(api.Connection.of(guard))
        assert str(rejected.value) == str(api.rejection(guard["url"], changed=False))
        with pytest.raises(api.AdminPasswordRejected) as in_preview:
            api.AdminCredentialsProvider().diff(component.ADMIN_USER, {**guard, "password": new}, guard)
        assert str(in_preview.value) == str(api.rejection(guard["url"], changed=True))
    finally:
        back = rotate(secured, new, old)
        assert back.status == 200, f"could not rotate back: {back.text()}"
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "the admin password rotated through the account API as the README shows (the security plugin refuses "
        f"{WEAK_BY_ZXCVBN!r}, which has every character class, by its zxcvbn strength); AdminCredentials accepts the "
        "new password; the old one gets rejection()'s 401 message, in update and, as a changed password, in preview",
    )


# --- node B: the break-glass admin certificate ---------------------------------------------------------


class _CertificateConnection(http.client.HTTPSConnection):
    """HTTPS to an address with a client certificate, verifying the server for another name."""

    def __init__(self, address: str, tls_name: str, context: ssl.SSLContext) -> None:
        super().__init__(address, HTTP_PORT, timeout=120, context=context)
        self._tls_name, self._verifying = tls_name, context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._verifying.wrap_socket(raw, server_hostname=self._tls_name)


def with_certificate(
    node: Node, credential: Mapping[str, str], directory: Path, method: str, path: str, body: Any = None
) -> Response:
    """A request that presents `credential` (certificate and key) and no password."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = directory / "client.crt", directory / "client.key"
    certificate.write_text(credential["certificate"])
    key.write_text(credential["privateKey"])
    key.chmod(0o600)
    context = ssl.create_default_context(cadata=node.ours.platform_ca)
    context.load_cert_chain(certificate, key)
    connection = _CertificateConnection(node.host.address, TLS_NAME, context)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return Response(response.status, response.read())
    finally:
        connection.close()


def test_the_clusters_admin_certificate_is_admin_there_and_no_other_certificate_is(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves, tmp_path: Path
) -> None:
    admin = x509.load_pem_x509_certificate(secured.ours.admin["certificate"].encode())
    subject = admin.subject.rfc4514_string()
    assert secured.ours.generated.settings()["plugins.security.authcz.admin_dn"] == [subject]
    assert subject == component.admin_dn(NODE_B)
    users = with_certificate(secured, secured.ours.admin, tmp_path / "admin", "GET", f"/{USERS_PATH}")
    assert users.status == 200, users.text()
    assert {component.ADMIN_USER, policies.WRITER_USER, exporter.USER} <= set(users.json())
    node_certificate = {
        "certificate": secured.ours.generated.tls[CERTIFICATE_KEY],
        "privateKey": secured.ours.generated.tls[PRIVATE_KEY_KEY],
    }
    refused = {
        who: with_certificate(secured, credential, tmp_path / who, "GET", f"/{USERS_PATH}").status
        for who, credential in (("other-cluster-admin", secured.ours.other_admin), ("node", node_certificate))
    }
    print(f"\nsecurity API with another certificate of the platform CA: {refused}")
    assert refused == {"other-cluster-admin": 401, "node": 401}, refused
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        f"with admin_dn [{subject}] as rendered, edge-b's admin certificate (platform CA, RSA, client_auth) alone, "
        "without a password, reads the security API's internal users; another cluster's admin certificate and the "
        "node certificate, both from the same CA, get 401",
    )


USERS_PATH = "_plugins/_security/api/internalusers"
README = Path(__file__).resolve().parents[2] / "README.md"
BREAK_GLASS_SECTION = "### Break-glass: a lost OpenSearch admin password"
IN_THE_POD = "bash -s <<'EOF'\n"
POD_PATHS = {
    "WORK": "/tmp/break-glass",
    "T": f"{component.HOME}/plugins/opensearch-security/tools",
    "CA": f"{component.CONFIG_DIR}/{component.CERTS_DIR}/{CA_KEY}",
}
"""Where the README's reset works in the pod: its scratch directory, the security plugin's tools, the
CA the chart mounts with the node certificate."""


def break_glass_script() -> str:
    """The README's break-glass reset, the lines it runs in the pod, read from the README itself: back
    up the security index, put a new hash on `admin`, upload the internal users alone. Its one line of
    pod paths must name the image's and the chart's real paths; it is dropped, the test gives its own."""
    text = README.read_text()
    section = text[text.index(BREAK_GLASS_SECTION) :]
    body = section[section.index(IN_THE_POD) + len(IN_THE_POD) : section.index("\nEOF\n")]
    lines = body.splitlines()
    paths = "; ".join(f"{name}={path}" for name, path in POD_PATHS.items())
    assert paths in lines, f"the README's reset no longer sets the pod's paths as {paths!r}"
    return "\n".join(line for line in lines if line != paths) + "\n"


def test_securityadmin_resets_a_lost_admin_password_with_the_admin_certificate(
    secured: Node, security_objects: dict[tuple[str, str], Applied], proves: Proves, tmp_path: Path
) -> None:
    guard = props(secured.ours.guard, secured.endpoint)
    old, new = guard["password"], strong_password()
    work = tmp_path / "break-glass"
    work.mkdir()
    (work / "admin.crt").write_text(secured.ours.admin["certificate"])
    (work / "admin.key").write_text(secured.ours.admin["privateKey"])
    (work / "new-password").write_text(new)
    for secret in ("admin.key", "new-password"):
        (work / secret).chmod(0o600)
    tools = secured.process.home / "plugins" / "opensearch-security" / "tools"
    environment = {
        **os.environ,
        "WORK": str(work),
        "T": str(tools),
        "CA": str(secured.process.config_dir / "certs" / CA_KEY),
        "OPENSEARCH_JAVA_HOME": str(JAVA_HOME),
    }
    original = secured.rest.get(f"/{USERS_PATH}/{component.ADMIN_USER}").json()[component.ADMIN_USER]
    try:
        ran = secured.host.run(["bash", "-c", break_glass_script()], env=environment, check=False, timeout=300)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        backed_up = yaml.safe_load((work / "backup" / "internal_users.yml").read_text())
        assert {component.ADMIN_USER, policies.WRITER_USER, exporter.USER} <= set(backed_up)
        assert secured.client(component.ADMIN_USER, new).get(f"/{api.ACCOUNT_PATH}").status == 200
        assert secured.client(component.ADMIN_USER, old).get(f"/{api.ACCOUNT_PATH}").status == 401
        writer = secured.client(secured.ours.writer_login["username"], secured.ours.writer_login["password"])
        assert writer.get(f"/{api.ACCOUNT_PATH}").status == 200, "the other users are kept"
    finally:
        # Back to the stack's password, the README's other way: the REST API with the admin certificate.
        kept = ("backend_roles", "attributes", "description", "opendistro_security_roles")
        body = {"password": old, **{key: original[key] for key in kept if key in original}}
        put = with_certificate(
            secured, secured.ours.admin, tmp_path / "rest", "PUT", f"/{USERS_PATH}/{component.ADMIN_USER}", body
        )
        assert put.status == 200, put.text()
    assert secured.client(component.ADMIN_USER, old).get(f"/{api.ACCOUNT_PATH}").status == 200
    assert secured.client(component.ADMIN_USER, new).get(f"/{api.ACCOUNT_PATH}").status == 401
    api.AdminCredentialsProvider().create(guard)
    proves(
        "opensearch-security",
        SECURITY_VERSION,
        "with edge-b's admin certificate alone, the README's break-glass reset (read from the README) ran: "
        "securityadmin.sh backed up the security index, "
        "the README's sed put hash.sh's hash of a new password on admin, and `-f internal_users.yml -t internalusers` "
        "uploaded it: the new password logs in, the old one gets 401, Fluent-bit's user is kept; a PUT of "
        "internalusers/admin with the same certificate over HTTPS set the stack's password back",
    )


# --- what cannot run ---------------------------------------------------------------------------------


def test_ism_and_sm_policies_need_index_management() -> None:
    """ISM and Snapshot Management are index-management's APIs; without the plugin nothing can take them."""
    outcome = catalogue()["opensearch-index-management"].build()
    if isinstance(outcome, Blocked):
        blocked(outcome.name, outcome.coordinates, outcome.why)
    pytest.fail(f"index-management is served now ({outcome}): run the ISM and SM policies through the provider")
