"""Pods of the metrics data plane, run for real: Prometheus, its Thanos sidecar, Query, Store, Compactor.

Each container runs as one process inside a host's network namespace (`netns.Host`) and a mount
namespace of its own, where the files the program generates sit at the absolute paths the pod
mounts them at (`/etc/thanos/objstore/objstore.yml`, `/etc/thanos/grpc-tls/tls.crt`, `/prometheus`,
...), so the generated flags and configuration are used unchanged. The machine's own `/etc` is
never written: the process sees an overlay of `/` whose writes go to a tmpfs of that mount
namespace, with each volume bind-mounted (Secrets and ConfigMaps read-only) from a directory of the
test. Its `/etc/resolv.conf` names 127.0.0.1 of its own network namespace, so no lookup leaves it.

The Prometheus pod is built as prometheus-operator v0.93 builds it from the `Prometheus` custom
resource the chart renders (`pkg/prometheus/server/statefulset.go`, `promcfg.go`): the container
arguments of Prometheus and of the Thanos sidecar, the volumes each mounts, the generated
configuration (external labels, rule files, TSDB retention) and the rule files of the selected
PrometheusRules. What the operator would add from the Kubernetes API (scrape jobs of the
ServiceMonitors, Alertmanager discovery) is left out: there is no API server here.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.integration.netns import Host
from tools.engine import Rendering, unwrap

T = TypeVar("T")

# --- a pod's files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    source: Path
    """A directory of the test."""
    target: str
    """Where the container sees it (the pod's mountPath)."""
    read_only: bool = True


POD_SCRIPT = r"""
set -eu
work=$1 user=$2 groups=$3; shift 3
mount -t tmpfs -o mode=0755 pod-overlay "$work/overlay"
mkdir "$work/overlay/upper" "$work/overlay/work"
mount -t overlay pod-root -o "lowerdir=/,upperdir=$work/overlay/upper,workdir=$work/overlay/work" "$work/root"
for dir in /proc /sys /dev; do mount --rbind "$dir" "$work/root$dir"; done
rm -f "$work/root/etc/resolv.conf"
echo "nameserver 127.0.0.1" > "$work/root/etc/resolv.conf"
while [ "$1" != "--" ]; do
  source=$1 target=$2 mode=$3; shift 3
  if [ -d "$source" ]; then mkdir -p "$work/root$target"
  else mkdir -p "$(dirname "$work/root$target")"; : > "$work/root$target"; fi
  mount --bind "$source" "$work/root$target"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$work/root$target"; fi
done
shift
mount -o remount,bind,ro "$work/root"
exec chroot --userspec="$user" --groups="$groups" "$work/root" /usr/bin/env -i PATH=/bin:/usr/bin HOME=/ "$@"
"""
"""A container: `/` read-only (`readOnlyRootFilesystem`), the volumes in place, the pod's user and fsGroup."""


@dataclass(frozen=True)
class SecurityContext:
    """The pod's `runAsUser`, `runAsGroup` and `fsGroup` (a supplementary group of every container)."""

    user: int
    group: int
    fs_group: int

    @classmethod
    def of(cls, pod_spec: Mapping[str, Any]) -> SecurityContext:
        context = pod_spec.get("securityContext") or {}
        assert context.get("runAsNonRoot") is True, context
        return cls(int(context["runAsUser"]), int(context["runAsGroup"]), int(context["fsGroup"]))

    def owns(self, directory: Path) -> Path:
        """A volume the pod writes, as the kubelet hands it over with `fsGroup`."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, self.user, self.fs_group)
        directory.chmod(0o2775)
        return directory


def pod_command(
    host: Host, argv: Sequence[str], mounts: Sequence[Mount], work: Path, security: SecurityContext
) -> list[str]:
    """`argv` inside `host`'s network namespace, in a private mount namespace with `mounts` in
    place, as the pod's user, with the root file system read-only."""
    (work / "overlay").mkdir(parents=True, exist_ok=True)
    (work / "root").mkdir(exist_ok=True)
    spec = [part for m in mounts for part in (str(m.source), m.target, "ro" if m.read_only else "rw")]
    identity = [f"{security.user}:{security.group}", f"{security.group},{security.fs_group}"]
    script = ["sh", "-c", POD_SCRIPT, "pod", str(work), *identity, *spec, "--", *argv]
    return host.command(["unshare", "--mount", "--propagation", "private", *script])


def write_files(directory: Path, files: Mapping[str, str]) -> Path:
    """A volume's content (a Secret's or ConfigMap's keys as files)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def secret_files(rendering: Rendering, name: str, namespace: str) -> dict[str, str]:
    """A rendered Secret's keys and values (stringData, or base64 data)."""
    inputs = unwrap(rendering.k8s("Secret", name, namespace).inputs)
    files = {key: base64.b64decode(value).decode() for key, value in (inputs.get("data") or {}).items()}
    return files | dict(inputs.get("stringData") or {})


def config_map_files(rendering: Rendering, name: str, namespace: str) -> dict[str, str]:
    return dict(unwrap(rendering.k8s("ConfigMap", name, namespace).inputs)["data"])


def replace_flag(args: Sequence[str], flag: str, value: str) -> list[str]:
    """`args` with `--flag=...` set to `value` (it must be there once)."""
    matches = [arg for arg in args if arg.startswith(f"{flag}=")]
    assert len(matches) == 1, f"{flag} is in the arguments {len(matches)} times: {args}"
    return [f"{flag}={value}" if arg.startswith(f"{flag}=") else arg for arg in args]


# --- processes ------------------------------------------------------------------------------------


class ProcessFailed(AssertionError):
    """A server exited or never became ready; the message ends with its log."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def failure(self, why: str) -> ProcessFailed:
        return ProcessFailed(f"{self.name}: {why}; last lines of {self.log}:\n{self.tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        return self.popen.returncode


def start(name: str, command: Sequence[str], log: Path) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(command)}\n".encode())
        out.flush()
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Process(name, popen, log)


@contextmanager
def running(name: str, command: Sequence[str], log: Path) -> Iterator[Process]:
    process = start(name, command, log)
    try:
        yield process
    finally:
        process.stop()


def wait_for(
    condition: Callable[[], T | None], what: str, processes: Sequence[Process] = (), timeout: float = 90.0
) -> T:
    """Poll `condition` until it returns something other than None (or falsy); fail early if a process died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for process in processes:
            if not process.alive():
                raise process.failure(f"exited with {process.popen.returncode} while waiting for {what}")
        try:
            result = condition()
            if result:
                return result
        except (OSError, ValueError, KeyError, AssertionError) as error:
            last = error
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}:\n{p.tail(25)}" for p in processes)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})\n{logs}")


# --- HTTP (only to the namespaces' addresses) --------------------------------------------------------


def http_get(base: str, path: str, params: Mapping[str, str | Sequence[str]] | None = None) -> tuple[int, str]:
    query = urllib.parse.urlencode(params or {}, doseq=True)
    url = f"{base}{path}" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def api(base: str, path: str, params: Mapping[str, str | Sequence[str]] | None = None) -> Any:
    """The `data` of a Prometheus-style API answer; fails on anything but success."""
    status, body = http_get(base, path, params)
    answer = json.loads(body)
    if status != 200 or answer.get("status") != "success":
        raise ValueError(f"GET {base}{path} {params}: HTTP {status}: {body[:500]}")
    return answer["data"]


def metric(base: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The sum of a metric's samples on `/metrics` that carry `labels` (None when there is none)."""
    _, body = http_get(base, "/metrics")
    values = []
    for line in body.splitlines():
        if line.startswith(f"{name}{{") or line.startswith(f"{name} "):
            series, _, value = line.rpartition(" ")
            if all(f'{key}="{val}"' in series for key, val in (labels or {}).items()):
                values.append(float(value))
    return sum(values) if values else None


def ready(base: str, path: str = "/-/ready") -> bool:
    try:
        return http_get(base, path)[0] == 200
    except OSError:
        return False


# --- prometheus-operator's Prometheus pod ---------------------------------------------------------

STORAGE_DIR = "/prometheus"
CONFIG_OUT_DIR = "/etc/prometheus/config_out"
CONFIG_FILE = "prometheus.env.yaml"
RULES_DIR = "/etc/prometheus/rules"
WEB_CONFIG_DIR = "/etc/prometheus/web_config"
WEB_CONFIG_FILE = "web-config.yaml"
THANOS_CONFIG_DIR = "/etc/thanos/config"
HTTP_CLIENT_FILE = "prometheus.http-client-file.yaml"
SHIPPER_META_FILE = "thanos.shipper.json"
DEFAULT_INTERVAL = "30s"
"""The CRD's default `scrapeInterval` and `evaluationInterval`."""
DATA_VOLUME = "prometheus-db"


def _tls_version(value: str) -> str:
    """`operator.TLSVersionForThanos`: TLS13 -> 1.3."""
    return {"TLS10": "1.0", "TLS11": "1.1", "TLS12": "1.2", "TLS13": "1.3"}.get(value, "")


@dataclass
class PrometheusPod:
    """The Prometheus pod prometheus-operator v0.93 makes of one `Prometheus` resource (shard 0, replica 0)."""

    name: str
    """The pod name: `prometheus-<name>-0`, what the replica external label carries."""
    prometheus_args: list[str]
    sidecar_args: list[str]
    """With `$(OBJSTORE_CONFIG)` as the operator writes it: the kubelet puts the Secret's key there."""
    objstore_secret: tuple[str, str]
    """(Secret, key) of the sidecar's object-store config (`thanos.objectStorageConfig`)."""
    config: dict[str, Any]
    """`prometheus.env.yaml`, after the config reloader substituted `$(POD_NAME)`."""
    rule_files: dict[str, str]
    """File name -> content, as the operator writes them into `prometheus-<name>-rulefiles-0`."""
    prometheus_mounts: dict[str, str] = field(default_factory=dict)
    """mountPath -> volume name."""
    sidecar_mounts: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Volume name -> the spec's volume source (only the ones the resource brings)."""
    generated: dict[str, dict[str, str]] = field(default_factory=dict)
    """Volume name -> files, for the volumes the operator generates."""

    @property
    def rules_volume(self) -> str:
        return f"{self.name.removesuffix('-0')}-rulefiles-0"


def selected_rules(prometheus: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The PrometheusRules the resource's `ruleSelector` picks (any namespace: the chart's
    `ruleNamespaceSelector` is `{}`), as `<namespace>-<name>.yaml` files of their `spec`
    (the operator appends the object's UID, which only the API server knows)."""
    spec = prometheus["spec"]
    assert spec.get("ruleNamespaceSelector") == {}, spec.get("ruleNamespaceSelector")
    wanted = (spec.get("ruleSelector") or {}).get("matchLabels") or {}
    assert set(spec.get("ruleSelector") or {}) <= {"matchLabels"}, spec.get("ruleSelector")
    files = {}
    for rule in rules:
        labels = (rule.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            metadata = rule["metadata"]
            files[f"{metadata['namespace']}-{metadata['name']}.yaml"] = yaml.safe_dump(
                {"groups": rule["spec"]["groups"]}, sort_keys=False
            )
    return files


def prometheus_pod(prometheus: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]) -> PrometheusPod:
    """The pod of a `Prometheus` resource (as the chart renders it) and the PrometheusRules there are."""
    metadata, spec = prometheus["metadata"], prometheus["spec"]
    name, namespace = metadata["name"], metadata["namespace"]
    pod = f"prometheus-{name}-0"
    thanos = spec.get("thanos")
    assert thanos and thanos.get("objectStorageConfig"), "the sidecar uploads: objectStorageConfig is set"
    assert not spec.get("disableCompaction"), "delayed compaction (Prometheus >= 3.9, Thanos >= 0.41)"
    rule_files = selected_rules(prometheus, rules)
    rules_volume = f"prometheus-{name}-rulefiles-0"
    return PrometheusPod(
        name=pod,
        prometheus_args=_prometheus_args(spec),
        sidecar_args=_sidecar_args(spec, thanos),
        objstore_secret=(thanos["objectStorageConfig"]["name"], thanos["objectStorageConfig"]["key"]),
        config=_config(spec, f"{namespace}/{name}", pod, [rules_volume] if rule_files else []),
        rule_files=rule_files,
        prometheus_mounts={
            CONFIG_OUT_DIR: "config-out",
            STORAGE_DIR: DATA_VOLUME,
            f"{RULES_DIR}/{rules_volume}": rules_volume,
            WEB_CONFIG_DIR: "web-config",
        },
        sidecar_mounts={
            **{m["mountPath"]: m["name"] for m in thanos.get("volumeMounts") or []},
            STORAGE_DIR: DATA_VOLUME,
            THANOS_CONFIG_DIR: "thanos-prometheus-http-client-file",
        },
        volumes={v["name"]: v for v in spec.get("volumes") or []},
        generated={
            "web-config": {WEB_CONFIG_FILE: ""},  # no `web` TLS or HTTP settings: the operator writes it empty
            "thanos-prometheus-http-client-file": {HTTP_CLIENT_FILE: "tls_config:\n  insecure_skip_verify: true\n"},
            rules_volume: rule_files,
        },
    )


def _prometheus_args(spec: Mapping[str, Any]) -> list[str]:
    """`buildServerArgs` and what `makeStatefulSetSpec` appends, for Prometheus 3.14 (retention is
    in the configuration file from 3.11 on)."""
    assert spec.get("reloadStrategy", "HTTP") == "HTTP" and not spec.get("enableAdminAPI")
    assert not spec.get("enableOTLPReceiver") and not spec.get("enableFeatures") and not spec.get("listenLocal")
    args = [f"--config.file={CONFIG_OUT_DIR}/{CONFIG_FILE}", "--web.enable-lifecycle"]
    if spec.get("externalUrl"):
        args.append(f"--web.external-url={spec['externalUrl']}")
    args.append(f"--web.route-prefix={spec.get('routePrefix') or '/'}")
    if spec.get("logLevel", "info") != "info":
        args.append(f"--log.level={spec['logLevel']}")
    if spec.get("logFormat", "logfmt") != "logfmt":
        args.append(f"--log.format={spec['logFormat']}")
    args.append(f"--storage.tsdb.path={STORAGE_DIR}")
    if spec.get("walCompression") is not None:
        args.append("--storage.tsdb.wal-compression" if spec["walCompression"] else "--no-storage.tsdb.wal-compression")
    args.append(f"--web.config.file={WEB_CONFIG_DIR}/{WEB_CONFIG_FILE}")
    args.append(f"--storage.tsdb.delay-compact-file.path={STORAGE_DIR}/{SHIPPER_META_FILE}")
    if (spec.get("tsdb") or {}).get("outOfOrderTimeWindow") is not None:
        args.append("--no-storage.tsdb.allow-overlapping-compaction")
    return args + [
        f"--{a['name']}" + (f"={a['value']}" if a.get("value") else "") for a in spec.get("additionalArgs") or []
    ]


def _sidecar_args(spec: Mapping[str, Any], thanos: Mapping[str, Any]) -> list[str]:
    """`createThanosContainer` (Thanos >= 0.42, delayed compaction)."""
    route = spec.get("routePrefix") or "/"
    local = thanos.get("listenLocal")
    args = [
        f"--prometheus.url=http://localhost:9090{route}",
        f"--grpc-address={'127.0.0.1' if local or thanos.get('grpcListenLocal') else ''}:10901",
        f"--http-address={'127.0.0.1' if local or thanos.get('httpListenLocal') else ''}:10902",
    ]
    tls = thanos.get("grpcServerTlsConfig")
    if tls:
        args += [
            f"--grpc-server-tls-{flag_}={tls[key]}"
            for flag_, key in (("cert", "certFile"), ("key", "keyFile"), ("client-ca", "caFile"))
            if tls.get(key)
        ]
        if _tls_version(tls.get("minVersion", "")):
            args.append(f"--grpc-server-tls-min-version={_tls_version(tls['minVersion'])}")
    args += [
        "--objstore.config=$(OBJSTORE_CONFIG)",
        f"--tsdb.path={STORAGE_DIR}",
        f"--shipper.meta-file-name={SHIPPER_META_FILE}",
        "--shipper.ignore-unequal-block-size",
    ]
    if thanos.get("logLevel") or spec.get("logLevel"):
        args.append(f"--log.level={thanos.get('logLevel') or spec['logLevel']}")
    if thanos.get("logFormat") or spec.get("logFormat"):
        args.append(f"--log.format={thanos.get('logFormat') or spec['logFormat']}")
    for key, flag_ in (("minTime", "min-time"), ("readyTimeout", "prometheus.ready_timeout")):
        if thanos.get(key):
            args.append(f"--{flag_}={thanos[key]}")
    args.append(f"--prometheus.http-client-file={THANOS_CONFIG_DIR}/{HTTP_CLIENT_FILE}")
    assert not thanos.get("additionalArgs") and not thanos.get("tracingConfig"), thanos
    return ["sidecar", *args]


def _config(spec: Mapping[str, Any], resource: str, pod: str, rule_volumes: Sequence[str]) -> dict[str, Any]:
    """`GenerateServerConfiguration`'s global, rule_files and storage sections, `$(POD_NAME)` substituted."""
    external = {"prometheus": resource, "prometheus_replica": pod}
    external |= {k: v for k, v in (spec.get("externalLabels") or {}).items() if k not in external}
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": spec.get("scrapeInterval") or DEFAULT_INTERVAL,
            "external_labels": dict(sorted(external.items())),
            "evaluation_interval": spec.get("evaluationInterval") or DEFAULT_INTERVAL,
        },
    }
    if rule_volumes:
        config["rule_files"] = [f"{RULES_DIR}/{volume}/*.yaml" for volume in rule_volumes]
    config["scrape_configs"] = []  # ServiceMonitor jobs: they need the Kubernetes API
    tsdb: dict[str, Any] = {}
    if (spec.get("tsdb") or {}).get("outOfOrderTimeWindow") is not None:
        tsdb["out_of_order_time_window"] = spec["tsdb"]["outOfOrderTimeWindow"]
    retention = {"time": spec.get("retention") or "24h"}
    if spec.get("retentionSize"):
        retention["size"] = spec["retentionSize"]
    tsdb["retention"] = retention
    config["storage"] = {"tsdb": tsdb}
    return config
