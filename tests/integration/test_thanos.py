"""The metrics data plane for real: Thanos v0.42.4 and Prometheus 3.14 on what the program generates.

What runs, each process in a network namespace of the fixture topology and a mount namespace of
its own where the rendered Secrets and ConfigMaps sit at the paths the pods mount them at
(`thanos_node.py`), as the pod's user with a read-only root file system:

- edge-a's Prometheus pod (Prometheus and its Thanos sidecar, as prometheus-operator builds them
  from the `Prometheus` resource the chart renders) on edge-a's host address, with one block made
  by promtool in its data directory, which the sidecar uploads to the object store (moto over TLS,
  `object_store`) with edge-a's own user;
- hub's Prometheus pod at a pod address of its own (10.20.0.110), the Store Gateway (.111) and the
  Compactor (.112), each with the flags and volumes of its rendered StatefulSet;
- hub's Thanos Query on hub's host address with the rendered endpoint file: the `dnssrv+` entries
  answered by a cluster DNS of ours from the rendered headless Services (`cluster_dns.py`), the
  edges' `<host>:30901` over mutual TLS with the certificates central issues (`platform.real`):
  Query's from the StoreAPI client CA, the sidecar's from the platform CA.

Two things differ from a cluster, each said where it is done: moto issues its own access keys, so
every `objstore.yml` carries the key moto gave the user the program names (`with_moto_credentials`);
and edge-a's sidecar listens on 30901 itself, where in the cluster the NodePort Service forwards the
host's 30901 to the pod's 10901.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.cluster_tls import CA_KEY, CERTIFICATE_KEY, PRIVATE_KEY_KEY
from tests import test_platform_alerts as unit_alerts
from tests.integration.cluster_dns import RunningPod, records
from tests.integration.conftest import Proves, need
from tests.integration.netns import Host, Lan
from tests.integration.platform import ObjectStore, Platform
from tests.integration.programs import PROMETHEUS, THANOS
from tests.integration.thanos_node import (
    Mount,
    Process,
    PrometheusPod,
    SecurityContext,
    api,
    config_map_files,
    metric,
    pod_command,
    prometheus_pod,
    ready,
    replace_flag,
    secret_files,
    start,
    wait_for,
    write_files,
)
from tools.cluster import Cluster, cluster
from tools.engine import unwrap

CENTRAL, EDGE, OTHER_EDGE = "hub", "edge-a", "edge-b"
MONITORING = "monitoring"
PROMETHEUS_RESOURCE = "kps-prometheus"
SIDECAR_NODE_PORT = 30901
POD_ADDRESSES = {
    "hub-prometheus": "10.20.0.110",
    "hub-thanos-store": "10.20.0.111",
    "hub-thanos-compactor": "10.20.0.112",
}
"""Pods of hub with a network namespace of their own (their ports would clash on the host address)."""
DNS_PORT = 53
PROBE = "platform_integration_probe"
"""The series of the block promtool makes for edge-a's Prometheus."""
EXPECTED_LABELS = {
    "cluster": EDGE,
    "prometheus": f"{MONITORING}/{PROMETHEUS_RESOURCE}",
    "prometheus_replica": f"prometheus-{PROMETHEUS_RESOURCE}-0",
}
"""The external labels prometheus-operator gives edge-a's Prometheus: ours plus its own two."""


# --- files at the pods' paths ---------------------------------------------------------------------


def with_moto_credentials(objstore: str, store: ObjectStore) -> str:
    """`objstore.yml` with moto's key for the user it names. MinIO's access key is the user name
    (the program writes it) and its secret the user's generated password; moto issues its own
    pair for that user. Nothing else in the file changes."""
    config = yaml.safe_load(objstore)
    user = config["config"]["access_key"]
    assert user in store.credentials, f"{user} is not a user central creates"
    credential = store.credentials[user]
    config["config"] |= {"access_key": credential.access_key, "secret_key": credential.secret_key}
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class Workspace:
    """Directories of the test that become the pods' volumes."""

    root: Path
    platform: Platform
    store: ObjectStore
    made: dict[str, Path] = field(default_factory=dict)

    def directory(self, label: str) -> Path:
        """A new directory (a volume is made afresh for every pod that mounts it, as the kubelet does)."""
        unique = label if label not in self.made else f"{label}-{len(self.made)}"
        self.made[unique] = self.root / unique
        return self.made[unique]

    def secret(self, stack: str, name: str, changes: Mapping[str, str] | None = None) -> Path:
        """A rendered Secret's keys as files, the certificates real, the object-store keys moto's."""
        files = self.platform.real(secret_files(self.platform.rendering(stack), name, MONITORING))
        if "objstore.yml" in files:
            files["objstore.yml"] = with_moto_credentials(files["objstore.yml"], self.store)
        label = f"{stack}-secret-{name}" + ("-changed" if changes else "")
        return write_files(self.directory(label), {**files, **(changes or {})})

    def config_map(self, stack: str, name: str) -> Path:
        files = self.platform.real(config_map_files(self.platform.rendering(stack), name, MONITORING))
        return write_files(self.directory(f"{stack}-configmap-{name}"), files)

    def volume(self, stack: str, owner: str, volume: Mapping[str, Any], security: SecurityContext) -> Path:
        """A pod volume: a Secret, a ConfigMap, or (any other source: the StatefulSet's claim) a data directory."""
        if "secret" in volume:
            return self.secret(stack, volume["secret"]["secretName"])
        if "configMap" in volume:
            return self.config_map(stack, volume["configMap"]["name"])
        return security.owns(self.directory(f"{stack}-{owner}-{volume['name']}"))


# --- a rendered Thanos workload -------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A Thanos Deployment or StatefulSet of the rendering: its one container, volumes and user."""

    name: str
    args: list[str]
    mounts: list[Mount]
    security: SecurityContext
    labels: dict[str, str]

    def command(self, host: Host, work: Path, args: Sequence[str] | None = None) -> list[str]:
        # The image's entrypoint is /bin/thanos; the container gives only `args`.
        return pod_command(host, ["/bin/thanos", *(args or self.args)], self.mounts, work, self.security)


def workload(ws: Workspace, stack: str, kind: str, name: str) -> Workload:
    obj = unwrap(ws.platform.rendering(stack).k8s(kind, name, MONITORING).inputs)
    template = obj["spec"]["template"]
    pod_spec = template["spec"]
    (container,) = pod_spec["containers"]
    assert "command" not in container and container["image"].endswith(f":{THANOS}")
    security = SecurityContext.of(pod_spec)
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    volumes |= {
        c["metadata"]["name"]: {"name": c["metadata"]["name"]} for c in obj["spec"].get("volumeClaimTemplates") or []
    }
    mounts = [Mount(need("thanos"), "/bin/thanos")]
    for mount in container.get("volumeMounts") or []:
        source = ws.volume(stack, name, volumes[mount["name"]], security)
        mounts.append(Mount(source, mount["mountPath"], read_only=bool(mount.get("readOnly"))))
    return Workload(name, list(container["args"]), mounts, security, dict(template["metadata"]["labels"]))


# --- the Prometheus pods --------------------------------------------------------------------------


@dataclass
class RunningPrometheus:
    stack: str
    host: Host
    pod: PrometheusPod
    prometheus: Process
    sidecar: Process
    data: Path
    objstore: str
    """The object-store config the sidecar was given (`$(OBJSTORE_CONFIG)`)."""

    @property
    def web(self) -> str:
        return f"http://{self.host.address}:9090"

    @property
    def sidecar_http(self) -> str:
        return f"http://{self.host.address}:10902"


def the_prometheus(kube: Cluster) -> dict[str, Any]:
    (resource,) = [o.obj for o in kube.of_kind("Prometheus") if o.name == PROMETHEUS_RESOURCE]
    return resource


def pod_of(kube: Cluster) -> PrometheusPod:
    return prometheus_pod(the_prometheus(kube), [o.obj for o in kube.of_kind("PrometheusRule")])


def backfill(data: Path, start: dt.datetime, security: SecurityContext) -> str:
    """One block of `PROBE` samples (1m apart, an hour long) made by promtool in `data`; its ULID."""
    series = "\n".join(
        f'{PROBE}{{source="promtool"}} {minute} {(start + dt.timedelta(minutes=minute)).timestamp():.0f}'
        for minute in range(61)
    )
    text = f"# HELP {PROBE} A series of the integration tests.\n# TYPE {PROBE} gauge\n{series}\n# EOF\n"
    source = data.parent / "probe.om"
    source.write_text(text)
    before = set(os.listdir(data))
    result = subprocess.run(
        [str(need("promtool")), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (block,) = set(os.listdir(data)) - before
    for path in [data / block, *(data / block).rglob("*")]:
        os.chown(path, security.user, security.fs_group)  # Prometheus (uid 1000) compacts and deletes it later
    return block


def start_prometheus_pod(
    ws: Workspace,
    stack: str,
    host: Host,
    kube: Cluster,
    sidecar_changes: Mapping[str, str] | None = None,
    block_start: dt.datetime | None = None,
) -> tuple[RunningPrometheus, str | None]:
    """Prometheus and its sidecar as the operator runs them; with a promtool block when `block_start` is given."""
    pod = pod_of(kube)
    spec = the_prometheus(kube)["spec"]
    security = SecurityContext.of(spec)
    data = security.owns(ws.directory(f"{stack}-prometheus-db"))
    block = backfill(data, block_start, security) if block_start else None
    sources: dict[str, Path] = {"prometheus-db": data}
    sources["config-out"] = write_files(
        ws.directory(f"{stack}-config-out"), {"prometheus.env.yaml": yaml.safe_dump(pod.config)}
    )
    for name, files in pod.generated.items():
        sources[name] = write_files(ws.directory(f"{stack}-{name}"), files)
    for name, volume in pod.volumes.items():
        sources[name] = ws.volume(stack, PROMETHEUS_RESOURCE, volume, security)

    def mounts(binary: str, paths: Mapping[str, str]) -> list[Mount]:
        return [Mount(need(binary), f"/bin/{binary}")] + [
            Mount(sources[volume], path, read_only=volume != "prometheus-db") for path, volume in paths.items()
        ]

    secret, key = pod.objstore_secret
    objstore = with_moto_credentials(secret_files(ws.platform.rendering(stack), secret, MONITORING)[key], ws.store)
    # The kubelet expands $(OBJSTORE_CONFIG) from the Secret's key (an env var of the container).
    sidecar_args = [arg.replace("$(OBJSTORE_CONFIG)", objstore) for arg in pod.sidecar_args]
    for name, value in (sidecar_changes or {}).items():
        sidecar_args = replace_flag(sidecar_args, name, value)

    def container(name: str, binary: str, args: Sequence[str], paths: Mapping[str, str]) -> Process:
        command = pod_command(
            host, [f"/bin/{binary}", *args], mounts(binary, paths), ws.root / f"{stack}-{name}", security
        )
        return start(f"{stack} {name}", command, ws.root / "logs" / f"{stack}-{name}.log")

    prometheus = container("prometheus", "prometheus", pod.prometheus_args, pod.prometheus_mounts)
    running_pod = RunningPrometheus(stack, host, pod, prometheus, prometheus, data, objstore)
    wait_for(lambda: ready(running_pod.web), f"{stack}'s Prometheus to be ready", [prometheus], timeout=60)
    running_pod.sidecar = container("thanos-sidecar", "thanos", sidecar_args, pod.sidecar_mounts)
    return running_pod, block


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube(platform: Platform) -> dict[str, Cluster]:
    """Hub and edge-a as after `pulumi up`: our objects and the charts' (helm template), the operator's pods."""
    clusters = {stack: cluster(platform.rendering(stack)) for stack in (CENTRAL, EDGE)}
    for stack, rendered in clusters.items():
        assert not rendered.gaps, f"{stack}: {rendered.gaps}"
    return clusters


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, platform: Platform, object_store: ObjectStore) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("thanos"), platform, object_store)


@pytest.fixture(scope="module")
def pod_hosts(lan: Lan) -> dict[str, Host]:
    return {name: lan.host(name, address) for name, address in POD_ADDRESSES.items()}


@dataclass
class Block:
    ulid: str
    start: dt.datetime
    meta: dict[str, Any]

    @property
    def middle(self) -> float:
        return (self.start + dt.timedelta(minutes=30)).timestamp()


def block_start() -> dt.datetime:
    """An hour inside one 2h block range that ended well before now (Prometheus's head is untouched)."""
    now = dt.datetime.now(dt.UTC)
    aligned = (int((now - dt.timedelta(hours=6)).timestamp()) // 7200) * 7200
    return dt.datetime.fromtimestamp(aligned, dt.UTC) + dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def edge(
    workspace: Workspace, hosts: dict[str, Host], kube: dict[str, Cluster], hub_prometheus: RunningPrometheus
) -> Iterator[tuple[RunningPrometheus, Block]]:
    """edge-a's Prometheus pod, and the block its sidecar uploaded. After hub's pod, whose slowest
    rule group (3m) is then evaluated by the time the rules are checked."""
    start_at = block_start()
    # In the cluster the NodePort Service takes 30901 on the host and forwards it to the pod's 10901;
    # here the pod is on the host address, so the sidecar listens on 30901 itself.
    pod, ulid = start_prometheus_pod(
        workspace, EDGE, hosts[EDGE], kube[EDGE], {"--grpc-address": f":{SIDECAR_NODE_PORT}"}, start_at
    )
    assert ulid is not None
    try:
        s3 = workspace.store.s3

        def uploaded() -> dict[str, Any] | None:
            keys = {o["Key"] for o in s3.list_objects_v2(Bucket="thanos", Prefix=f"{ulid}/").get("Contents", [])}
            if f"{ulid}/meta.json" not in keys:
                return None
            meta: dict[str, Any] = json.loads(s3.get_object(Bucket="thanos", Key=f"{ulid}/meta.json")["Body"].read())
            return meta

        meta = wait_for(uploaded, f"the sidecar to upload block {ulid}", [pod.prometheus, pod.sidecar], timeout=120)
        yield pod, Block(ulid, start_at, meta)
    finally:
        stop(pod.sidecar, pod.prometheus)


def stop(*processes: Process) -> None:
    for process in processes:
        process.stop()


@pytest.fixture(scope="module")
def hub_prometheus(
    workspace: Workspace, pod_hosts: dict[str, Host], kube: dict[str, Cluster]
) -> Iterator[RunningPrometheus]:
    pod, _ = start_prometheus_pod(workspace, CENTRAL, pod_hosts["hub-prometheus"], kube[CENTRAL])
    try:
        wait_for(lambda: ready(pod.sidecar_http), "hub's sidecar to be ready", [pod.prometheus, pod.sidecar])
        yield pod
    finally:
        stop(pod.sidecar, pod.prometheus)


@dataclass
class Central:
    """Hub's Thanos: Query on the host address, Store Gateway and Compactor in pods of their own."""

    processes: dict[str, Process]

    @property
    def query(self) -> Process:
        return self.processes["thanos-query"]

    @property
    def store(self) -> Process:
        return self.processes["thanos-store"]

    @property
    def compactor(self) -> Process:
        return self.processes["thanos-compactor"]

    @property
    def query_http(self) -> str:
        return "http://10.20.0.10:10902"


def cluster_dns(kube: Cluster, workloads: Mapping[str, Workload]) -> list[str]:
    """The cluster DNS for hub's headless Services and the pods that run here (Store Gateway, Prometheus)."""
    pods = [
        RunningPod(MONITORING, workloads["thanos-store"].labels, POD_ADDRESSES["hub-thanos-store"]),
        RunningPod(MONITORING, hub_prometheus_labels(kube), POD_ADDRESSES["hub-prometheus"]),
    ]
    table = records([o.obj for o in kube.of_kind("Service")], pods)
    return [sys.executable, "-m", "tests.integration.cluster_dns", "127.0.0.1", str(DNS_PORT), json.dumps(table)]


@pytest.fixture(scope="module")
def central(
    workspace: Workspace,
    hosts: dict[str, Host],
    pod_hosts: dict[str, Host],
    kube: dict[str, Cluster],
    edge: tuple[RunningPrometheus, Block],
    hub_prometheus: RunningPrometheus,
) -> Iterator[Central]:
    """Store Gateway and Compactor (after the upload: the Store syncs at start), the cluster DNS, then Query."""
    kinds = {"thanos-store": "StatefulSet", "thanos-compactor": "StatefulSet", "thanos-query": "Deployment"}
    workloads = {name: workload(workspace, CENTRAL, kind, name) for name, kind in kinds.items()}
    logs = workspace.root / "logs"
    started: dict[str, Process] = {}
    try:
        for name in ("thanos-store", "thanos-compactor"):
            command = workloads[name].command(pod_hosts[f"hub-{name}"], workspace.root / f"{name}-root")
            started[name] = start(name, command, logs / f"{name}.log")
        dns = started["cluster-dns"] = start(
            "cluster-dns", hosts[CENTRAL].command(cluster_dns(kube[CENTRAL], workloads)), logs / "dns.log"
        )
        wait_for(lambda: "listening" in dns.output(), "the cluster DNS", [dns], timeout=20)
        for name in ("thanos-store", "thanos-compactor"):
            base = f"http://{POD_ADDRESSES[f'hub-{name}']}:10902"
            wait_for(lambda base=base: ready(base), f"{name} to be ready", list(started.values()))  # type: ignore[misc]
        command = workloads["thanos-query"].command(hosts[CENTRAL], workspace.root / "query-root")
        started["thanos-query"] = start("thanos-query", command, logs / "thanos-query.log")
        yield Central(started)
    finally:
        stop(*reversed(started.values()))


def hub_prometheus_labels(kube: Cluster) -> dict[str, str]:
    """The labels of hub's Prometheus pod as the operator sets them (`tools.cluster`'s model)."""
    (statefulset,) = [o.obj for o in kube.objects if o.modelled and o.name == f"prometheus-{PROMETHEUS_RESOURCE}"]
    labels: dict[str, str] = statefulset["spec"]["template"]["metadata"]["labels"]
    return labels


def stores(central: Central) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = api(central.query_http, "/api/v1/stores")
    return data


def healthy_stores(central: Central) -> dict[str, dict[str, Any]]:
    """Every StoreAPI Query holds without an error, by address."""
    return {s["name"]: s for entries in stores(central).values() for s in entries if s.get("lastError") is None}


def query_at(central: Central, expr: str, at: float, store: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | list[str]] = {"query": expr, "time": f"{at:.3f}", "dedup": "true"}
    if store:
        params["storeMatch[]"] = [f'{{__address__="{store}"}}']
    data: dict[str, Any] = api(central.query_http, "/api/v1/query", params)
    result: list[dict[str, Any]] = data["result"]
    return result


# --- 1. thanos tools bucket with every generated objstore.yml -------------------------------------

OBJSTORE_CONFIGS = [
    (CENTRAL, "thanos-objstore-sidecar", "hub-prometheus"),
    (EDGE, "thanos-objstore-sidecar", EDGE),
    (OTHER_EDGE, "thanos-objstore-sidecar", OTHER_EDGE),
    (CENTRAL, "thanos-objstore-store", "hub-thanos-store"),
    (CENTRAL, "thanos-objstore-compactor", "hub-thanos-compactor"),
]
OBJSTORE_DIR = "/etc/thanos/objstore"
BUCKET_TOOL_USER = SecurityContext(65534, 65534, 65534)


def bucket_tool(
    ws: Workspace, host: Host, secret: Path, args: Sequence[str], label: str
) -> subprocess.CompletedProcess[str]:
    """`thanos tools bucket ...` with the Secret at the path its `objstore.yml` names for `ca.crt`."""
    mounts = [Mount(need("thanos"), "/bin/thanos"), Mount(secret, OBJSTORE_DIR)]
    argv = ["/bin/thanos", "tools", "bucket", *args, f"--objstore.config-file={OBJSTORE_DIR}/objstore.yml"]
    command = pod_command(host, argv, mounts, ws.root / f"tool-{label}", BUCKET_TOOL_USER)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def json_documents(text: str) -> Iterator[Any]:
    """The JSON documents of `ls --output=json` (one indented object per block)."""
    decoder, position = json.JSONDecoder(), 0
    while (start := text.find("{", position)) != -1:
        document, position = decoder.raw_decode(text, start)
        yield document


def all_hosts(hosts: dict[str, Host], pod_hosts: dict[str, Host]) -> dict[str, Host]:
    return {**hosts, **pod_hosts}


@pytest.mark.parametrize(
    ("stack", "secret", "where"), OBJSTORE_CONFIGS, ids=[f"{s}-{n}" for s, n, _ in OBJSTORE_CONFIGS]
)
def test_bucket_tools_list_and_inspect_the_uploaded_block_with_each_generated_objstore_config(
    workspace: Workspace, hosts: dict[str, Host], pod_hosts: dict[str, Host], edge: tuple[RunningPrometheus, Block],
    stack: str, secret: str, where: str, proves: Proves,
) -> None:  # fmt: skip
    _, block = edge
    directory = workspace.secret(stack, secret)
    config = yaml.safe_load((directory / "objstore.yml").read_text())["config"]
    assert config["http_config"]["tls_config"]["ca_file"] == f"{OBJSTORE_DIR}/ca.crt" and not config["insecure"]
    host = all_hosts(hosts, pod_hosts)[where]
    listing = bucket_tool(workspace, host, directory, ["ls", "--output=json"], f"ls-{stack}-{secret}")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    listed = {meta["ulid"]: meta for meta in json_documents(listing.stdout)}
    assert block.ulid in listed, listing.stdout + listing.stderr
    assert listed[block.ulid]["thanos"]["labels"] == EXPECTED_LABELS
    inspected = bucket_tool(workspace, host, directory, ["inspect", "--output=tsv"], f"inspect-{stack}-{secret}")
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    (row,) = [line for line in inspected.stdout.splitlines() if line.startswith(block.ulid)]
    assert f"cluster={EDGE}" in row, inspected.stdout
    proves(
        "thanos", THANOS,
        "tools bucket ls/inspect read the bucket with each generated objstore.yml (hub/edge-a/edge-b sidecar, "
        "store, compactor) over TLS trusting the Secret's ca.crt at /etc/thanos/objstore",
    )  # fmt: skip


def foreign_ca(directory: Path, client: bool = False) -> tuple[Path, Path | None, Path | None]:
    """Another CA's certificate (and, with `client`, a client certificate and key it signed)."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA (integration tests)")])
    ca = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256())
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    if not client:
        return directory / "ca.pem", None, None
    client_key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thanos-query")]))
        .issuer_name(name).public_key(client_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "client.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "client.key").write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory / "ca.pem", directory / "client.pem", directory / "client.key"


def test_bucket_tools_refuse_the_object_store_when_ca_crt_is_another_ca(
    workspace: Workspace, hosts: dict[str, Host], edge: tuple[RunningPrometheus, Block], proves: Proves
) -> None:
    other, _, _ = foreign_ca(workspace.directory("foreign-s3-ca"))
    directory = workspace.secret(EDGE, "thanos-objstore-sidecar", {"ca.crt": other.read_text()})
    listing = bucket_tool(workspace, hosts[EDGE], directory, ["ls"], "ls-foreign-ca")
    assert listing.returncode != 0
    assert "x509: certificate signed by unknown authority" in listing.stderr, listing.stderr
    proves(
        "thanos", THANOS, "the objstore client trusts only the configured ca.crt (another CA: x509 unknown authority)"
    )


# --- 2. Prometheus and the sidecar upload a block -------------------------------------------------


def test_prometheus_runs_with_the_operator_built_arguments_and_external_labels(
    edge: tuple[RunningPrometheus, Block], proves: Proves
) -> None:
    pod, _ = edge
    flags = api(pod.web, "/api/v1/status/flags")
    assert flags["storage.tsdb.delay-compact-file.path"] == "/prometheus/thanos.shipper.json"
    assert (
        flags["storage.tsdb.path"] == "/prometheus"
        and flags["web.external-url"] == "http://kps-prometheus.monitoring:9090"
    )
    config = yaml.safe_load(api(pod.web, "/api/v1/status/config")["yaml"])
    assert config["global"]["external_labels"] == EXPECTED_LABELS
    assert config["storage"]["tsdb"]["retention"] == {"time": "1d", "size": "17GiB"}
    assert api(pod.web, "/api/v1/status/buildinfo")["version"] == PROMETHEUS.removeprefix("v")
    proves(
        "prometheus", PROMETHEUS,
        "runs with the arguments and configuration prometheus-operator builds from the rendered Prometheus "
        f"(external labels cluster={EDGE} + prometheus_replica, retention 24h/17408MiB in the config file, "
        "delayed compaction via the sidecar's shipper file), read-only root, uid 1000",
    )  # fmt: skip


def test_the_sidecar_uploads_the_block_with_the_cluster_label_through_the_generated_config(
    edge: tuple[RunningPrometheus, Block], object_store: ObjectStore, proves: Proves
) -> None:
    pod, block = edge
    assert block.meta["thanos"]["labels"] == EXPECTED_LABELS
    assert block.meta["thanos"]["source"] == "sidecar"
    assert block.meta["minTime"] == int(block.start.timestamp() * 1000)
    keys = {o["Key"] for o in object_store.s3.list_objects_v2(Bucket="thanos", Prefix=f"{block.ulid}/")["Contents"]}
    assert {f"{block.ulid}/index", f"{block.ulid}/chunks/000001", f"{block.ulid}/meta.json"} <= keys
    shipped = json.loads((pod.data / "thanos.shipper.json").read_text())
    assert block.ulid in shipped["uploaded"]
    assert metric(pod.sidecar_http, "thanos_shipper_uploads_total") == 1
    assert metric(pod.sidecar_http, "thanos_shipper_upload_failures_total") == 0
    config = yaml.safe_load(pod.objstore)["config"]
    assert config["access_key"] == object_store.cluster_credentials(EDGE, "thanos-sidecar").access_key
    proves(
        "thanos", THANOS,
        f"edge-a's sidecar (args as prometheus-operator builds them) uploads a promtool-made block to the bucket "
        f"with edge-a's own user; meta.json carries cluster={EDGE}",
    )  # fmt: skip


# --- 3. Query over mutual TLS to the edge ---------------------------------------------------------


def test_query_reads_the_endpoint_file_and_reaches_the_edge_sidecar_over_mutual_tls(
    central: Central, edge: tuple[RunningPrometheus, Block], workspace: Workspace, proves: Proves
) -> None:
    _, block = edge
    endpoints = yaml.safe_load(
        config_map_files(workspace.platform.rendering(CENTRAL), "thanos-query-endpoints", MONITORING)["endpoints.yaml"]
    )
    edge_address = f"10.20.0.11:{SIDECAR_NODE_PORT}"
    assert edge_address in {e["address"] for e in endpoints["endpoints"]}
    sidecar = wait_for(
        lambda: healthy_stores(central).get(edge_address), "Query to see edge-a's sidecar", [central.query], timeout=90
    )
    assert EXPECTED_LABELS in sidecar["labelSets"]
    series = query_at(central, PROBE, block.middle, store=edge_address)
    assert [s["metric"] for s in series] == [
        {"__name__": PROBE, "cluster": EDGE, "prometheus": f"{MONITORING}/{PROMETHEUS_RESOURCE}", "source": "promtool"}
    ]
    assert series[0]["value"][1] == "30"  # the sample of minute 30
    proves(
        "thanos", THANOS,
        "Query reads the generated --endpoint.sd-config-file and reaches edge-a's sidecar at 10.20.0.11:30901 over "
        "mutual TLS (Query's client certificate, the sidecar's server certificate for its IP, TLS 1.3); "
        "/api/v1/stores shows it healthy with cluster=edge-a and a query returns edge-a's series, deduplicated on "
        "prometheus_replica",
    )  # fmt: skip


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def handshake(address: str, port: int, ca: Path, cert: Path | None = None, key: Path | None = None) -> str | None:
    """A TLS 1.3 connection to a gRPC server and its first HTTP/2 frame: None when the server
    answers, else the TLS error (in TLS 1.3 a refused client certificate arrives as an alert
    after the handshake, on the first read)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    try:
        with (
            socket.create_connection((address, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=address) as tls,
        ):
            tls.sendall(H2_PREFACE)
            frame = tls.recv(9)
            return None if len(frame) == 9 and frame[3] == 0x04 else f"no HTTP/2 SETTINGS frame: {frame!r}"
    except ssl.SSLError as error:
        return str(error.reason)


@dataclass(frozen=True)
class Client:
    label: str
    secret: tuple[str, str, str] | None
    """(stack, namespace, Secret) whose tls.crt/tls.key the client presents."""
    refusal: str | None
    """The TLS alert the sidecar answers with (None: it serves the client)."""


CLIENTS = [
    Client("query-client-certificate", (CENTRAL, MONITORING, "thanos-grpc-tls"), None),
    Client("no-client-certificate", None, "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
    Client("another-ca", None, "TLSV1_ALERT_UNKNOWN_CA"),
    # From the platform CA (and server-only): the sidecar trusts the StoreAPI client CA alone.
    Client("edge-b-sidecar-certificate", (OTHER_EDGE, MONITORING, "thanos-grpc-tls"), "TLSV1_ALERT_UNKNOWN_CA"),
]
OPENSEARCH_CLIENTS = [
    Client(f"{stack}-opensearch-certificate", (stack, "logging", "opensearch-tls"), "TLSV1_ALERT_UNKNOWN_CA")
    for stack in (EDGE, OTHER_EDGE, CENTRAL)
]
"""Every cluster's OpenSearch node certificate: from the platform CA, with `client_auth`, its key in that cluster."""


def client_handshake(pod: RunningPrometheus, workspace: Workspace, client: Client) -> str | None:
    """`client` connecting to edge-a's sidecar the way Query does (the platform CA, the host's IP as name)."""
    rendering = workspace.platform.rendering
    ca = workspace.root / "platform-ca.pem"
    if not ca.exists():
        ca.write_text(workspace.platform.real(secret_files(rendering(CENTRAL), "thanos-grpc-tls", MONITORING))[CA_KEY])
    cert = key = None
    if client.secret is not None:
        stack, namespace, name = client.secret
        files = workspace.platform.real(secret_files(rendering(stack), name, namespace))
        pair = {"tls.crt": files[CERTIFICATE_KEY], "tls.key": files[PRIVATE_KEY_KEY]}
        directory = write_files(workspace.directory(f"client-{client.label}"), pair)
        cert, key = directory / "tls.crt", directory / "tls.key"
    elif client.label == "another-ca":
        _, cert, key = foreign_ca(workspace.directory("foreign-client-ca"), client=True)
    return handshake(pod.host.address, SIDECAR_NODE_PORT, ca, cert, key)


@pytest.mark.parametrize("client", CLIENTS, ids=[c.label for c in CLIENTS])
def test_the_edge_sidecar_serves_querys_certificate_and_refuses_the_others(
    edge: tuple[RunningPrometheus, Block], workspace: Workspace, client: Client, proves: Proves
) -> None:
    pod, _ = edge
    assert client_handshake(pod, workspace, client) == client.refusal, pod.sidecar.tail()
    if client.refusal:
        proves(
            "thanos",
            THANOS,
            "edge-a's sidecar refuses a client without a certificate (certificate required), with another CA's "
            "(unknown CA) and with edge-b's sidecar certificate, from the platform CA (unknown CA)",
        )


@pytest.mark.parametrize("client", OPENSEARCH_CLIENTS, ids=[c.label for c in OPENSEARCH_CLIENTS])
def test_the_edge_sidecar_refuses_an_opensearch_node_certificate(
    edge: tuple[RunningPrometheus, Block], workspace: Workspace, client: Client, proves: Proves
) -> None:
    """Every cluster's OpenSearch node certificate (Secret `logging/opensearch-tls`, on the edges too)
    allows client authentication (OpenSearch's transport layer needs it), and Thanos checks nothing
    but the chain and the usage. It comes from the platform CA, and the sidecar's client CA is the
    StoreAPI client CA, which signs Query's certificate alone: no OpenSearch key opens the StoreAPI."""
    pod, _ = edge
    assert client_handshake(pod, workspace, client) == client.refusal, pod.sidecar.tail()
    proves(
        "thanos",
        THANOS,
        "edge-a's sidecar refuses every cluster's OpenSearch node certificate (platform CA, client_auth): "
        "unknown CA, its client CA being the StoreAPI client CA",
    )


# --- 4. Store Gateway and Compactor ---------------------------------------------------------------


def test_store_gateway_with_the_generated_flags_serves_the_uploaded_block_through_query(
    central: Central, edge: tuple[RunningPrometheus, Block], proves: Proves
) -> None:
    _, block = edge
    store_http = f"http://{POD_ADDRESSES['hub-thanos-store']}:10902"
    assert metric(store_http, "thanos_bucket_store_blocks_loaded") == 1
    address = f"{POD_ADDRESSES['hub-thanos-store']}:10901"
    gateway = wait_for(
        lambda: healthy_stores(central).get(address),
        "Query to find the Store Gateway by DNS SRV",
        [central.query, central.store],
    )
    assert EXPECTED_LABELS in gateway["labelSets"]
    assert gateway["minTime"] <= block.meta["minTime"] and gateway["maxTime"] >= block.meta["maxTime"]
    series = query_at(central, PROBE, block.middle, store=address)
    assert [s["metric"]["cluster"] for s in series] == [EDGE] and series[0]["value"][1] == "30"
    proves(
        "thanos", THANOS,
        "the Store Gateway with its rendered flags loads the uploaded block, and Query finds it through the "
        "endpoint file's dnssrv+_grpc._tcp.thanos-store entry and returns the block's series from it",
    )  # fmt: skip


def test_query_finds_the_local_sidecar_by_dns_srv_of_the_charts_discovery_service(
    central: Central, proves: Proves
) -> None:
    address = f"{POD_ADDRESSES['hub-prometheus']}:10901"
    sidecar = wait_for(lambda: healthy_stores(central).get(address), "Query to find hub's sidecar", [central.query])
    assert any(labels.get("cluster") == CENTRAL for labels in sidecar["labelSets"])
    proves(
        "thanos",
        THANOS,
        "Query finds hub's own sidecar through dnssrv+_grpc._tcp.kps-thanos-discovery (the chart's Service)",
    )


def test_compactor_with_the_generated_flags_syncs_the_block_without_halting(
    central: Central, edge: tuple[RunningPrometheus, Block], object_store: ObjectStore, proves: Proves
) -> None:
    _, block = edge
    compactor = f"http://{POD_ADDRESSES['hub-thanos-compactor']}:10902"
    wait_for(
        lambda: (metric(compactor, "thanos_compact_iterations_total") or 0) >= 1,
        "a compaction pass",
        [central.compactor],
    )
    assert metric(compactor, "thanos_compact_halted") == 0
    # It read the block's meta.json and holds the block back: Thanos 0.42 compacts a block only
    # `--consistency-delay` (30m, not set by the program) after the sidecar's upload time.
    assert (metric(compactor, "thanos_blocks_meta_synced", {"state": "too-fresh"}) or 0) >= 1
    assert metric(compactor, "thanos_blocks_meta_synced", {"state": "corrupted-meta-json"}) == 0
    listed = api(compactor, "/api/v1/blocks")
    assert [b["ulid"] for b in listed["blocks"]] == [block.ulid]
    assert central.compactor.alive()
    # It kept the block: nothing is marked for deletion.
    listing = object_store.s3.list_objects_v2(Bucket="thanos", Prefix=f"{block.ulid}/")["Contents"]
    assert f"{block.ulid}/deletion-mark.json" not in {o["Key"] for o in listing}
    proves(
        "thanos", THANOS,
        "the Compactor with its rendered flags (--wait, retention, delete-delay) completes a pass over the bucket, "
        "syncs the uploaded block and does not halt",
    )  # fmt: skip


# --- 5. the rules -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_pods(
    edge: tuple[RunningPrometheus, Block], hub_prometheus: RunningPrometheus
) -> dict[str, RunningPrometheus]:
    return {EDGE: edge[0], CENTRAL: hub_prometheus}


@pytest.mark.parametrize("stack", [CENTRAL, EDGE])
def test_every_rendered_rule_group_loads_into_prometheus_and_evaluates(
    prometheus_pods: dict[str, RunningPrometheus], stack: str, proves: Proves
) -> None:
    pod = prometheus_pods[stack]
    expected = {
        (name, group["name"]) for name, text in pod.pod.rule_files.items() for group in yaml.safe_load(text)["groups"]
    }
    assert f"{MONITORING}-platform-alerts.yaml" in {name for name, _ in expected}

    def evaluated() -> list[dict[str, Any]] | None:
        groups: list[dict[str, Any]] = api(pod.web, "/api/v1/rules")["groups"]
        done = all(rule.get("health") != "unknown" for group in groups for rule in group["rules"])
        return groups if done else None

    # Each group evaluates once per interval (30s) after the files load, at an offset of its own; the
    # hub has about forty groups, and on a loaded two-core machine the first round lags well past 90s.
    groups = wait_for(evaluated, f"{stack}'s rules to be evaluated once", [pod.prometheus], timeout=240)
    assert {(Path(g["file"]).name, g["name"]) for g in groups} == expected
    broken = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert broken == []
    assert metric(pod.web, "prometheus_config_last_reload_successful") == 1
    count = sum(len(g["rules"]) for g in groups)
    proves(
        "prometheus", PROMETHEUS,
        "loads every PrometheusRule the hub and edge-a renderings select (platform-alerts and the chart's) "
        f"from the operator's rule-file mount and evaluates every rule without error ({stack}: {count} rules)",
    )  # fmt: skip


@pytest.mark.parametrize("stack", [CENTRAL, EDGE])
def test_every_rendered_rule_file_passes_promtool_check(
    kube: dict[str, Cluster], tmp_path: Path, stack: str, proves: Proves
) -> None:
    files = pod_of(kube[stack]).rule_files
    write_files(tmp_path, files)
    result = promtool(["check", "rules", *files], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = dict(section.split("\n", 1) for section in result.stdout.split("Checking ")[1:])
    assert set(verdicts) == set(files)
    failed = {name for name, text in verdicts.items() if "SUCCESS" not in text}
    # The chart's kube-apiserver-availability.rules records one series twice (promtool's default
    # duplicate-rules lint, not fatal: on stderr); nothing else may fail.
    assert failed <= {f"{MONITORING}-kps-kube-apiserver-availability.rules.yaml"}, result.stderr
    assert result.stderr.count("FAILED:") == len(failed), result.stderr
    assert result.stderr.count("lint error 1 duplicate rule(s) found.") == len(failed), result.stderr
    ours = promtool(["check", "rules", "--lint=all", "--lint-fatal", f"{MONITORING}-platform-alerts.yaml"], tmp_path)
    assert ours.returncode == 0 and "SUCCESS" in ours.stdout, ours.stdout + ours.stderr
    proves(
        "promtool",
        PROMETHEUS,
        "check rules passes every rule file the operator would mount on hub and edge-a (ours and the chart's)",
    )


def promtool(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(need("promtool")), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def promtool_unit_cases() -> list[tuple[str, str]]:
    """The fixtures and stacks `tests/test_platform_alerts.py` runs `promtool test rules` with."""
    (mark,) = [m for m in unit_alerts.test_promtool_unit_tests_pass.pytestmark if m.name == "parametrize"]  # type: ignore[attr-defined]
    cases: list[tuple[str, str]] = list(mark.args[1])
    assert {fixture for fixture, _ in cases} == {p.name for p in unit_alerts.FIXTURES.glob("*.test.yaml")}
    return cases


@pytest.mark.parametrize(("fixture", "stack"), promtool_unit_cases())
def test_promtool_unit_tests_pass_with_promtool_of_the_deployed_prometheus(
    platform: Platform, tmp_path: Path, fixture: str, stack: str, proves: Proves
) -> None:
    unit_alerts.write_rules(platform.rendering(stack), tmp_path)
    shutil.copy(unit_alerts.FIXTURES / fixture, tmp_path / fixture)
    result = promtool(["test", "rules", fixture], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    proves(
        "promtool",
        PROMETHEUS,
        "test rules passes every unit test in tests/promtool/ against the rendered platform-alerts",
    )
