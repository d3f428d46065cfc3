"""Fluent-bit: CRI logs of every container, enriched, to daily `logs-*` indices, without loss."""

from __future__ import annotations

from typing import Any

from components import versions
from components.fluent_bit import METRICS_PORT
from components.namespaces import FLUENT_BIT as FLUENT_BIT_NAMESPACE
from components.opensearch import HTTP_PORT, SERVICE, WRITER_SECRET
from tests.conftest import requires_charts, requires_reference, with_section
from tests.test_opensearch import dynamic
from tools.cluster import KubeObject, cluster
from tools.engine import MOCK_PASSWORD, Rendering
from tools.validators import helm_values

OPENSEARCH_OUTPUT_KEYS = frozenset(
    {
        # Every output's own properties.
        "name",
        "match",
        "host",
        "port",
        "tls",
        "tls.verify",
        "tls.verify_hostname",
        "tls.ca_file",
        "retry_limit",
        "storage.total_limit_size",
        # The opensearch output's configuration map in Fluent Bit 5.1 (plugins/out_opensearch/opensearch.c).
        "http_user",
        "http_passwd",
        "logstash_format",
        "logstash_prefix",
        "logstash_dateformat",
        "suppress_type_name",
        "replace_dots",
        "generate_id",
        "trace_error",
        "buffer_size",
    }
)
"""The keys the output may use: an unknown key stops Fluent Bit at start."""


def values(stack: Rendering) -> dict[str, Any]:
    return stack.release("fluent-bit").inputs["values"]


def sections(config: str) -> list[tuple[str, dict[str, list[str]]]]:
    """A classic-mode Fluent-bit config as [(SECTION, {key: [values]})]; keys lower-cased."""
    parsed: list[tuple[str, dict[str, list[str]]]] = []
    for line in config.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            parsed.append((line.strip("[]"), {}))
            continue
        key, _, value = line.partition(" ")
        parsed[-1][1].setdefault(key.lower(), []).append(value.strip())
    return parsed


def section(stack: Rendering, part: str, name: str) -> dict[str, list[str]]:
    """The one section of `config.<part>` whose `Name` is `name`."""
    (found,) = [entries for _, entries in sections(values(stack)["config"][part]) if entries["name"] == [name]]
    return found


def rendered_objects(stack: Rendering) -> list[KubeObject]:
    """What the real `helm template` of the pinned chart renders with our values."""
    return [o for o in cluster(stack).objects if o.origin == "helm release fluent-bit"]


def test_release_is_pinned_in_its_own_namespace_and_waits_for_its_opensearch_user(any_stack: Rendering) -> None:
    """Its own namespace: reading the node's log files (hostPath) needs the `privileged` level,
    which `logging` (OpenSearch) does not."""
    release = any_stack.release("fluent-bit")
    assert release.inputs["version"] == "0.58.1" == versions.FLUENT_BIT.version
    assert release.inputs["namespace"] == FLUENT_BIT_NAMESPACE
    assert any_stack.depends_on(release, dynamic(any_stack, "RoleMapping"))
    assert any_stack.depends_on(release, any_stack.k8s("Secret", WRITER_SECRET, FLUENT_BIT_NAMESPACE))
    assert values(any_stack)["kind"] == "DaemonSet"


@requires_reference
def test_every_values_key_exists_in_the_pinned_chart(any_stack: Rendering) -> None:
    assert helm_values.release_problems(any_stack.release("fluent-bit"), "1.28") == []


def test_container_logs_are_tailed_with_the_cri_parser(any_stack: Rendering) -> None:
    tail = section(any_stack, "inputs", "tail")
    assert tail["path"] == ["/var/log/containers/*.log"]
    assert tail["multiline.parser"] == ["cri"]
    assert tail["tag"] == ["kube.*"]
    assert "systemd" not in values(any_stack)["config"]["inputs"]


def test_records_get_kubernetes_metadata_and_the_cluster_name(any_stack: Rendering) -> None:
    kubernetes = section(any_stack, "filters", "kubernetes")
    assert kubernetes["match"] == ["kube.*"]
    assert kubernetes["merge_log"] == ["On"]
    assert kubernetes["merge_log_key"] == ["log_processed"]  # mapped as flat_object by the index template
    modifier = section(any_stack, "filters", "record_modifier")
    assert modifier["record"] == [f"cluster {any_stack.stack}"]


def test_output_is_the_local_opensearch_over_tls_into_daily_indices(any_stack: Rendering) -> None:
    output = section(any_stack, "outputs", "opensearch")
    assert output["host"] == [f"{SERVICE}.logging.svc"]
    assert output["port"] == [str(HTTP_PORT)]
    assert output["tls"] == ["On"]
    assert output["logstash_format"] == ["On"]
    assert output["logstash_prefix"] == ["logs"]
    assert output["logstash_dateformat"] == ["%Y.%m.%d"]
    assert output["suppress_type_name"] == ["On"], "OpenSearch 2 and 3 reject mapping types"
    assert output["generate_id"] == ["On"]


def test_output_uses_only_options_fluent_bit_5_knows(any_stack: Rendering) -> None:
    """None of the options was renamed or removed up to Fluent Bit 5.1; an unknown one would stop it."""
    output = section(any_stack, "outputs", "opensearch")
    assert set(output) <= OPENSEARCH_OUTPUT_KEYS, set(output) - OPENSEARCH_OUTPUT_KEYS
    assert all(len(entries) == 1 for entries in output.values()), "each option once"


@requires_charts
def test_fluent_bit_verifies_opensearch_against_the_platform_ca(edge: Rendering) -> None:
    output = section(edge, "outputs", "opensearch")
    assert output["tls"] == ["On"] and output["tls.verify"] == ["On"] and output["tls.verify_hostname"] == ["On"]
    (ca_file,) = output["tls.ca_file"]
    mounts = {m["mountPath"]: m for m in values(edge)["daemonSetVolumeMounts"]}
    volume = {v["name"]: v for v in values(edge)["daemonSetVolumes"]}[mounts[ca_file.rsplit("/", 1)[0]]["name"]]
    assert volume["configMap"]["name"] == "platform-ca" and ca_file.endswith("/ca.crt")
    ca = edge.k8s("ConfigMap", "platform-ca", "fluent-bit").inputs["data"]["ca.crt"]
    assert ca == edge.outputs["platformCaCertificate"]
    # The host it dials is a name OpenSearch's certificate carries.
    (host,) = output["host"]
    assert host in edge.outputs["certificates"]["opensearch"]["hosts"]


@requires_charts
def test_the_chart_runs_our_classic_config(edge: Rendering) -> None:
    """Fluent Bit 4+ images default to a YAML config; the 0.58 chart still renders the classic
    sections into fluent-bit.conf and points `--config` at it."""
    (configmap,) = [o for o in rendered_objects(edge) if o.kind == "ConfigMap" and o.name == "fluent-bit"]
    conf = configmap.obj["data"]["fluent-bit.conf"]
    for part in ("service", "inputs", "filters", "outputs"):
        assert values(edge)["config"][part] in conf, part
    (daemonset,) = [o for o in rendered_objects(edge) if o.kind == "DaemonSet"]
    (container,) = daemonset.obj["spec"]["template"]["spec"]["containers"]
    assert "--config=/fluent-bit/etc/conf/fluent-bit.conf" in container["args"]


@requires_charts
def test_health_and_metrics_endpoints_are_the_v2_api_the_http_server_serves(edge: Rendering) -> None:
    ((_, service),) = sections(values(edge)["config"]["service"])
    assert service["http_server"] == ["On"] and service["health_check"] == ["On"]
    assert service["http_port"] == [str(METRICS_PORT)]
    (daemonset,) = [o for o in rendered_objects(edge) if o.kind == "DaemonSet"]
    (container,) = daemonset.obj["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v2/health"
    (monitor,) = [o for o in rendered_objects(edge) if o.kind == "ServiceMonitor"]
    assert monitor.obj["spec"]["endpoints"][0]["path"] == "/api/v2/metrics/prometheus"


def test_credentials_come_from_the_secret_through_env_never_inline(any_stack: Rendering) -> None:
    output = section(any_stack, "outputs", "opensearch")
    assert output["http_user"] == ["${OPENSEARCH_USER}"]
    assert output["http_passwd"] == ["${OPENSEARCH_PASSWORD}"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in values(any_stack)["env"]}
    assert env == {
        "OPENSEARCH_USER": {"name": WRITER_SECRET, "key": "username"},
        "OPENSEARCH_PASSWORD": {"name": WRITER_SECRET, "key": "password"},
    }
    assert MOCK_PASSWORD not in str(values(any_stack))


def test_chunks_are_buffered_on_the_nodes_disk_and_retried(any_stack: Rendering) -> None:
    ((header, service),) = sections(values(any_stack)["config"]["service"])
    assert header == "SERVICE"
    state_dir = service["storage.path"][0].rsplit("/flb-storage", 1)[0]
    tail = section(any_stack, "inputs", "tail")
    output = section(any_stack, "outputs", "opensearch")
    assert tail["storage.type"] == ["filesystem"]
    assert tail["db"] == [f"{state_dir}/tail.db"], "offsets survive a restart"
    assert output["storage.total_limit_size"] == ["2G"]
    assert output["retry_limit"] == ["no_limits"]
    # The buffer and the offsets are on the host, so they outlive the pod.
    (mount,) = [m for m in values(any_stack)["daemonSetVolumeMounts"] if m["mountPath"] == state_dir]
    (volume,) = [v for v in values(any_stack)["daemonSetVolumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"]["type"] == "DirectoryOrCreate"


def test_buffer_and_retries_are_settings(edge: Rendering) -> None:
    stack = with_section(edge.stack, "logging", fluentBitBufferLimit="512M", fluentBitRetryLimit=20)
    output = section(stack, "outputs", "opensearch")
    assert output["storage.total_limit_size"] == ["512M"]
    assert output["retry_limit"] == ["20"]


def test_fluent_bit_reads_the_logs_read_only_and_is_sized(any_stack: Rendering) -> None:
    v = values(any_stack)
    (varlog,) = [m for m in v["daemonSetVolumeMounts"] if m["mountPath"] == "/var/log"]
    assert varlog["readOnly"] is True
    assert v["resources"]["requests"]["cpu"] and v["resources"]["requests"]["memory"]
    assert v["resources"]["limits"]["memory"]
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    assert v["testFramework"]["enabled"] is False


def test_fluent_bit_is_scraped_by_the_clusters_prometheus(any_stack: Rendering) -> None:
    values = any_stack.release("fluent-bit").inputs["values"]
    assert values["serviceMonitor"] == {"enabled": True, "selector": {"release": "kube-prometheus-stack"}}
    kps = any_stack.release("kube-prometheus-stack")
    assert any_stack.depends_on(any_stack.release("fluent-bit"), kps), "the ServiceMonitor CRD comes with kps"
