"""The validators of `render --check`: each catches a deliberately broken input, and the real stacks pass.

Broken inputs are small hand-made Renderings (tests/synthetic.py) or a copy of a real rendering
with one thing changed; every test also shows the unbroken input passes, so a finding comes
from the breakage and not from the validator complaining about everything.
"""

from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from components import versions
from components.traefik import Exposure, traefik_values
from tests import synthetic
from tests.conftest import (
    EDGE,
    EVALUATOR_MISSING,
    STACKS,
    rendered,
    requires_charts,
    requires_evaluator,
    requires_reference,
)
from tools.engine import MOCK_PASSWORD, PROJECT, Rendering, Secret, secret_placeholder
from tools.validators import (
    Finding,
    capacity,
    crds,
    helm_values,
    host_ports,
    kubernetes_schema,
    pod_security,
    policy_pack,
    prometheus_rules,
    run_all,
    schemas,
    secret_leaks,
    thanos_flags,
    validators,
)


def messages(findings: list[Finding]) -> str:
    return "\n".join(str(finding) for finding in findings)


# --- Kubernetes schema --------------------------------------------------------------------


def test_a_valid_deployment_passes_the_strict_schema() -> None:
    assert kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(synthetic.deployment()))) == []


def test_an_unknown_field_in_a_deployment_is_a_finding() -> None:
    broken = synthetic.deployment(containers=[synthetic.container(imagePullPolice="Always")])
    findings = kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(broken)))
    assert len(findings) == 1
    assert findings[0].resource == "Deployment default/app"
    assert "spec.template.spec.containers[0]" in findings[0].message
    assert "imagePullPolice" in findings[0].message


def test_a_wrong_type_is_a_finding() -> None:
    broken = synthetic.deployment()
    broken["spec"]["replicas"] = "two"
    assert "spec.replicas" in messages(kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(broken))))


def test_secret_data_is_validated_without_revealing_it() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "stringData": Secret({"password": secret_placeholder("x")}),
    }
    assert kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(secret))) == []
    secret["stringDta"] = Secret({"password": secret_placeholder("x")})
    findings = messages(kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(secret))))
    assert "stringDta" in findings
    assert secret_placeholder("x") not in findings


def test_an_object_that_is_neither_a_kubernetes_kind_nor_a_known_crd_is_a_finding() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    findings = kubernetes_schema.validate(synthetic.rendering(synthetic.kubernetes(unknown)))
    minor = versions.KUBERNETES.removeprefix("v").rsplit(".", 1)[0]
    assert f"neither a Kubernetes {minor} kind nor a custom resource" in messages(findings)


def test_the_kubernetes_version_comes_from_the_stack_config() -> None:
    # FlowSchema flowcontrol.apiserver.k8s.io/v1 is served from 1.29 on; 1.28 only has v1beta3.
    flow_schema = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": "f"},
        "spec": {"priorityLevelConfiguration": {"name": "global-default"}},
    }
    resource = synthetic.kubernetes(flow_schema)
    older = {"thanos-multi-cluster:minikube": json.dumps({"kubernetesVersion": "v1.28.0"})}
    assert kubernetes_schema.validate(synthetic.rendering(resource, config=older)) != []
    assert kubernetes_schema.validate(synthetic.rendering(resource)) == []  # the pinned version serves it


# --- CRDs ---------------------------------------------------------------------------------


@requires_reference
def test_custom_resources_are_checked_against_the_crds_of_the_deployed_chart_versions() -> None:
    """The reference keeps the seed's Longhorn 1.5.3 and Prometheus Operator 0.70.0 CRDs beside the
    pinned ones; a directory that merely sorts last must not stand for what the program installs."""
    deployed = {
        ("longhorn.io/v1beta2", "RecurringJob"): f"longhorn-v{versions.LONGHORN.version}/",
        ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator-v0.93.1/",
        ("traefik.io/v1alpha1", "Middleware"): "traefik-v3.7.11/",
    }
    for (api_version, kind), directory in deployed.items():
        crd = schemas.find_crd(api_version, kind)
        assert crd is not None and crd.source.startswith(directory), (kind, crd and crd.source)


def test_a_valid_custom_resource_passes_its_crd() -> None:
    assert crds.validate(synthetic.rendering(synthetic.kubernetes(synthetic.recurring_job()))) == []


@requires_reference
def test_a_field_not_in_the_crd_is_a_finding() -> None:
    findings = crds.validate(synthetic.rendering(synthetic.kubernetes(synthetic.recurring_job(retian=3))))
    assert len(findings) == 1
    assert findings[0].resource == "RecurringJob longhorn-system/backup-daily"
    assert "'retian' was unexpected" in findings[0].message


@requires_reference
def test_a_crd_type_mismatch_is_a_finding() -> None:
    findings = crds.validate(synthetic.rendering(synthetic.kubernetes(synthetic.recurring_job(retain="14"))))
    assert "spec.retain" in messages(findings)


def test_preserve_unknown_fields_keeps_unknown_fields() -> None:
    """`x-kubernetes-preserve-unknown-fields` lets an object keep fields its schema does not declare
    (Longhorn 1.5's v1beta1 schemas did so for `spec`; the pinned 1.12 serves v1beta2 only, which
    declares every field); without it an undeclared field is an error."""
    spec_schema: dict[str, Any] = {"type": "object", "properties": {"known": {"type": "string"}}}
    declared = {"type": "object", "properties": {"spec": spec_schema}}
    preserving = {
        "type": "object",
        "properties": {"spec": {**spec_schema, "x-kubernetes-preserve-unknown-fields": True}},
    }
    spec = {"spec": {"known": "x", "anything": "goes"}}
    assert schemas.schema_errors(spec, schemas.to_json_schema(preserving, root=True)) == []
    assert schemas.schema_errors(spec, schemas.to_json_schema(declared, root=True)) == [
        ("spec", "Additional properties are not allowed ('anything' was unexpected)")
    ]


@requires_reference
def test_int_or_string_accepts_both() -> None:
    def monitor(port: Any) -> Rendering:
        return synthetic.rendering(
            synthetic.kubernetes(
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "ServiceMonitor",
                    "metadata": {"name": "m", "namespace": "monitoring"},
                    "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"targetPort": port}]},
                }
            )
        )

    assert crds.validate(monitor(8080)) == []
    assert crds.validate(monitor("http")) == []
    assert "targetPort" in messages(crds.validate(monitor(["http"])))


@requires_reference
def test_a_version_the_crd_does_not_serve_is_a_finding() -> None:
    job = synthetic.recurring_job()
    job["apiVersion"] = "longhorn.io/v1"
    assert "not served" in messages(crds.validate(synthetic.rendering(synthetic.kubernetes(job))))


@requires_reference
def test_custom_resource_metadata_is_checked_as_object_meta() -> None:
    job = synthetic.recurring_job()
    job["metadata"]["lables"] = {"a": "b"}
    assert "metadata" in messages(crds.validate(synthetic.rendering(synthetic.kubernetes(job))))


@requires_reference
def test_a_real_custom_resource_with_a_typo_is_a_finding() -> None:
    real = copy.deepcopy(rendered(EDGE))
    job = next(r for r in real.kubernetes_objects() if r.kind == "RecurringJob")
    before = set(crds.validate(real))
    job.inputs["spec"]["cronn"] = job.inputs["spec"].pop("cron")
    new = set(crds.validate(real)) - before
    assert "'cronn' was unexpected" in messages(sorted(new))


# --- Helm values --------------------------------------------------------------------------


def traefik(values: dict[str, Any]) -> Rendering:
    return synthetic.rendering(synthetic.release("traefik", "41.3.0", values))


def real_traefik_values() -> dict[str, Any]:
    return traefik_values(
        Exposure("hostPort", "10.20.0.10", {}, 1), {"release": "kube-prometheus-stack"}, "platform-ingress-tls"
    )


def kps(values: dict[str, Any]) -> Rendering:
    return synthetic.rendering(synthetic.release("kube-prometheus-stack", "55.5.0", values))


@requires_reference
def test_real_ingress_values_exist_in_the_chart() -> None:
    assert helm_values.validate(traefik(real_traefik_values())) == []


@requires_reference
def test_a_misspelt_values_key_is_a_finding() -> None:
    values = real_traefik_values()
    values["deployment"]["hostNetwrok"] = True
    findings = helm_values.validate(traefik(values))
    assert len(findings) == 1
    assert findings[0].resource == "helm release traefik"
    assert findings[0].message.startswith("deployment.hostNetwrok: not a value of chart traefik 41.3.0")


@requires_reference
def test_values_only_a_template_reads_are_read_by_a_template_of_the_pinned_chart(reference: Path) -> None:
    """An exception for an undocumented value stays only while the pinned chart's templates read it."""
    for chart, paths in helm_values.TEMPLATE_ONLY_VALUES.items():
        package = reference / "charts" / "packages" / f"{chart}-{versions.CHARTS[chart].version}.tgz"
        with tarfile.open(package) as archive:
            templates = "".join(
                archive.extractfile(member).read().decode()  # type: ignore[union-attr]
                for member in archive.getmembers()
                if "/templates/" in member.name and member.isfile()
            )
        for path in paths:
            parts = path.split(".")  # a subchart's templates read the path without the subchart's key
            suffixes = (".".join(parts[start:]) for start in range(len(parts) - 1))
            assert any(f".Values.{suffix} " in templates for suffix in suffixes), f"{chart}: no template reads {path}"


@requires_reference
def test_free_form_maps_accept_any_key() -> None:
    by_path = {"prometheus": {"prometheusSpec": {"externalLabels": {"any-label": "1"}}}}
    assert helm_values.validate(kps(by_path)) == []
    by_name = {"deployment": {"podAnnotations": {"example.com/x": "y"}, "podLabels": {"example.com/y": "z"}}}
    assert helm_values.validate(traefik(by_name)) == []


@requires_reference
def test_an_empty_chart_map_that_is_not_allow_listed_is_a_finding() -> None:
    findings = helm_values.validate(traefik({"experimental": {"plugins": {"demo": {"version": "v1.0.0"}}}}))
    assert "experimental.plugins: the chart default is an empty map" in messages(findings)


@requires_reference
def test_kubernetes_typed_values_are_checked_against_the_schema() -> None:
    sized = {"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}}
    assert helm_values.validate(traefik(sized)) == []
    typo = {"resources": {"requets": {"cpu": "1"}}}
    assert "resources: Additional properties" in messages(helm_values.validate(traefik(typo)))


@requires_reference
def test_subchart_keys_are_checked_against_the_subchart() -> None:
    assert helm_values.validate(kps({"grafana": {"replicas": 1, "persistence": {"enabled": True}}})) == []
    findings = helm_values.validate(kps({"grafana": {"replicaz": 1}}))
    assert "grafana.replicaz: not a value" in messages(findings)


@requires_reference
def test_keys_documented_as_commented_examples_exist() -> None:
    # grafana 7.0.22 documents `ingressClassName` and `persistence.storageClassName` only in comments.
    documented = {"grafana": {"ingress": {"ingressClassName": "traefik"}, "persistence": {"storageClassName": "x"}}}
    assert helm_values.validate(kps(documented)) == []
    assert "grafana.ingress.ingresClassName" in messages(
        helm_values.validate(kps({"grafana": {"ingress": {"ingresClassName": "traefik"}}}))
    )


@requires_reference
def test_maps_copied_into_a_custom_resource_are_checked_against_the_crd() -> None:
    storage = {"volumeClaimTemplate": {"spec": {"storageClassName": "longhorn"}}}
    thanos = {"objectStorageConfig": {"existingSecret": {"name": "s", "key": "objstore.yml"}}, "image": "x"}
    assert (
        helm_values.validate(kps({"prometheus": {"prometheusSpec": {"storageSpec": storage, "thanos": thanos}}})) == []
    )
    broken = {"prometheus": {"prometheusSpec": {"thanos": {**thanos, "imag": "x"}}}}
    assert "prometheus.prometheusSpec.thanos: Additional properties" in messages(helm_values.validate(kps(broken)))
    reshaped: dict[str, Any] = {
        "prometheus": {"prometheusSpec": {"thanos": {"objectStorageConfig": {"existingSecrett": {}}}}}
    }
    assert "objectStorageConfig" in messages(helm_values.validate(kps(reshaped)))


@requires_reference
def test_longhorn_default_settings_are_checked_like_other_keys() -> None:
    def longhorn(settings: dict[str, Any]) -> Rendering:
        return synthetic.rendering(synthetic.release("longhorn", "1.5.3", {"defaultSettings": settings}))

    assert helm_values.validate(longhorn({"guaranteedInstanceManagerCPU": 12, "defaultReplicaCount": 1})) == []
    assert "defaultSettings.defaultReplicaCnt" in messages(helm_values.validate(longhorn({"defaultReplicaCnt": 1})))


def test_a_chart_version_without_reference_defaults_is_a_finding() -> None:
    findings = helm_values.validate(synthetic.rendering(synthetic.release("traefik", "9.9.9", {})))
    assert "no reference defaults for chart traefik 9.9.9" in messages(findings)


@requires_reference
def test_a_real_release_with_a_misspelt_key_is_a_finding() -> None:
    real = copy.deepcopy(rendered(EDGE))
    before = set(helm_values.validate(real))
    real.release("longhorn").inputs["values"]["persistence"]["defaultClassReplicaCont"] = 1
    new = sorted(set(helm_values.validate(real)) - before)
    assert [f.resource for f in new] == ["helm release longhorn"]
    assert new[0].message.startswith("persistence.defaultClassReplicaCont: not a value of chart longhorn 1.12.1")


# --- Thanos flags -------------------------------------------------------------------------


def thanos(args: list[str], image: str = synthetic.THANOS_IMAGE) -> Rendering:
    workload = synthetic.deployment("thanos-query", [synthetic.container("query", image, args=args)])
    return synthetic.rendering(synthetic.kubernetes(workload))


@requires_reference
def test_known_thanos_flags_pass() -> None:
    args = ["query", "--http-address=0.0.0.0:10902", "--query.replica-label", "prometheus_replica"]
    assert thanos_flags.validate(thanos(args)) == []


@requires_reference
def test_a_non_existent_thanos_flag_is_a_finding() -> None:
    findings = thanos_flags.validate(thanos(["query", "--query.replica-labels=prometheus_replica"]))
    assert len(findings) == 1
    assert findings[0].resource == "Deployment default/thanos-query container query"
    assert findings[0].message == "query v0.32.5: unknown flag --query.replica-labels"


@requires_reference
def test_flags_are_checked_per_component() -> None:
    # --retention.resolution-raw is a compactor flag, not a query flag.
    assert thanos_flags.validate(thanos(["compact", "--retention.resolution-raw=30d"])) == []
    assert "unknown flag --retention.resolution-raw" in messages(
        thanos_flags.validate(thanos(["query", "--retention.resolution-raw=30d"]))
    )


def test_an_unknown_thanos_version_or_component_is_a_finding() -> None:
    assert "no flag list for thanos v0.99.0 query" in messages(
        thanos_flags.validate(thanos(["query"], "quay.io/thanos/thanos:v0.99.0"))
    )
    assert "no flag list for thanos v0.32.5 querier" in messages(thanos_flags.validate(thanos(["querier"])))


def test_other_images_are_not_thanos() -> None:
    assert thanos_flags.validate(thanos(["--whatever"], "nginx:1.25.3")) == []


@requires_reference
def test_sidecar_additional_args_are_checked() -> None:
    def sidecar(name: str) -> Rendering:
        spec = {"thanos": {"image": synthetic.THANOS_IMAGE, "additionalArgs": [{"name": name, "value": "x"}]}}
        return kps({"prometheus": {"prometheusSpec": spec}})

    assert thanos_flags.validate(sidecar("log.level")) == []
    assert "unknown sidecar flag --log.levl" in messages(thanos_flags.validate(sidecar("log.levl")))


# --- promtool -----------------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(prometheus_rules.promtool() is None, reason="promtool not installed (CI has it)")


@needs_promtool
def test_a_valid_rule_passes_promtool() -> None:
    rule = synthetic.prometheus_rule('sum(rate(http_requests_total{job="x"}[5m])) > 1')
    assert prometheus_rules.validate(synthetic.rendering(synthetic.kubernetes(rule))) == []


@needs_promtool
def test_a_broken_promql_expression_is_a_finding() -> None:
    rule = synthetic.prometheus_rule("sum(rate(http_requests_total[5m]) > 1")
    findings = prometheus_rules.validate(synthetic.rendering(synthetic.kubernetes(rule)))
    assert findings
    assert findings[0].resource == "PrometheusRule monitoring/rules"
    assert "parse" in messages(findings)


@needs_promtool
def test_rules_in_helm_values_are_checked() -> None:
    groups = {"groups": [{"name": "g", "rules": [{"record": "x:y", "expr": "sum(up"}]}]}
    findings = prometheus_rules.validate(kps({"additionalPrometheusRulesMap": {"extra": groups}}))
    assert "additionalPrometheusRulesMap.extra" in messages(findings)


def test_missing_promtool_is_a_finding_when_there_are_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_rules, "promtool", lambda: None)
    with_rules = synthetic.rendering(synthetic.kubernetes(synthetic.prometheus_rule("up == 0")))
    assert messages(prometheus_rules.validate(with_rules)).endswith(prometheus_rules.MISSING)
    assert prometheus_rules.validate(synthetic.rendering()) == []


# --- secret leaks -------------------------------------------------------------------------


def config_map(data: dict[str, Any]) -> Rendering:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data}
    return synthetic.rendering(synthetic.kubernetes(obj))


def test_a_secret_placeholder_in_plain_text_is_a_leak() -> None:
    findings = secret_leaks.validate(config_map({"url": f"https://user:{secret_placeholder('minioAdminPassword')}@x"}))
    assert len(findings) == 1
    assert findings[0].message.startswith("data.url holds a secret in plain text")
    assert secret_placeholder("minioAdminPassword") not in findings[0].message


def test_a_generated_password_in_plain_text_is_a_leak() -> None:
    leaked = synthetic.rendering(outputs={"grafana": {"password": MOCK_PASSWORD}})
    assert messages(secret_leaks.validate(leaked)) == (
        "secret-leaks: stack output grafana: password holds a secret in plain text (it must stay a Pulumi secret)"
    )


def test_a_wrapped_secret_is_not_a_leak() -> None:
    assert secret_leaks.validate(config_map({"url": Secret(f"x{MOCK_PASSWORD}")})) == []


def test_a_kubernetes_secret_with_plain_data_is_a_finding() -> None:
    def secret(string_data: Any) -> Rendering:
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": string_data}
        return synthetic.rendering(synthetic.kubernetes(obj))

    assert secret_leaks.validate(secret(Secret({"a": "b"}))) == []
    assert secret_leaks.validate(secret({"a": Secret("b")})) == []
    assert "stringData is not a Pulumi secret" in messages(secret_leaks.validate(secret({"a": "b"})))


def test_a_real_secret_made_plain_is_a_leak() -> None:
    real = copy.deepcopy(rendered(EDGE))
    before = set(secret_leaks.validate(real))
    backup = real.k8s("Secret", "longhorn-backup-credentials", "longhorn-system")
    backup.inputs["stringData"] = {key: str(value) for key, value in _reveal(backup.inputs["stringData"]).items()}
    findings = messages(sorted(set(secret_leaks.validate(real)) - before))
    assert (
        "Secret longhorn-system/longhorn-backup-credentials: stringData.AWS_SECRET_ACCESS_KEY holds a secret"
        in findings
    )
    assert "stringData is not a Pulumi secret" in findings


def _reveal(value: Any) -> Any:
    return _reveal(value.value) if isinstance(value, Secret) else value


# --- capacity -----------------------------------------------------------------------------


def test_an_unsized_container_is_a_finding() -> None:
    unsized = synthetic.container()
    del unsized["resources"]["limits"]
    workload = synthetic.deployment(containers=[synthetic.container("ok"), unsized])
    findings = capacity.validate(synthetic.rendering(synthetic.kubernetes(workload)))
    assert messages(findings) == "capacity: Deployment default/app container app: no memory limit"


def test_requests_over_80_percent_of_the_node_are_a_finding() -> None:
    big = synthetic.container()
    big["resources"]["requests"]["cpu"] = "1"
    within = synthetic.rendering(synthetic.kubernetes(synthetic.deployment(containers=[big], replicas=2)))
    assert capacity.validate(within) == []  # 2 CPU of 3 allocatable (4 less the system reserve): 67 %
    over = synthetic.rendering(synthetic.kubernetes(synthetic.deployment(containers=[big], replicas=3)))
    findings = capacity.validate(over)
    assert len(findings) == 1
    assert findings[0].resource == "stack test"
    assert findings[0].message.startswith("CPU requests 3000m exceed 80% of the allocatable 3000m")


def test_the_node_size_comes_from_the_stack_config() -> None:
    big = synthetic.container()
    big["resources"]["requests"]["cpu"] = "1"
    resource = synthetic.kubernetes(synthetic.deployment(containers=[big], replicas=3))
    larger = {"thanos-multi-cluster:node": json.dumps({"cpus": 8})}
    assert capacity.validate(synthetic.rendering(resource, config=larger)) == []


def test_a_daemonset_counts_once_and_replicas_multiply() -> None:
    report = capacity.capacity(
        synthetic.rendering(
            synthetic.kubernetes(synthetic.deployment("d", replicas=3)),
            synthetic.kubernetes(synthetic.deployment("ds", kind="DaemonSet")),
        )
    )
    assert report.total("cpu_request") == pytest.approx(0.4)
    assert report.total("memory_request") == pytest.approx(4 * 128 * 2**20)


@requires_reference
def test_a_chart_container_without_resources_is_a_finding() -> None:
    findings = capacity.validate(traefik({"deployment": {"kind": "DaemonSet"}}))
    assert [(f.resource, f.message) for f in findings] == [
        ("helm release traefik resources", "no CPU request, no memory request, no memory limit")
    ]
    assert capacity.validate(traefik(real_traefik_values())) == []


def test_chart_replicas_come_from_the_values() -> None:
    values = {"resources": synthetic.SIZED, "initResources": synthetic.SIZED, "replicas": 3}
    report = capacity.capacity(synthetic.rendering(synthetic.release("opensearch", "2.18.0", values)))
    assert report.findings == []
    assert report.total("cpu_request") == pytest.approx(0.3)


def test_longhorn_is_sized_by_its_manager_values_and_a_limit_range() -> None:
    """Longhorn 1.12 sizes only longhorn-manager through values; the LimitRange covers the rest."""
    unsized = synthetic.release("longhorn", "1.12.1", {}, namespace="longhorn-system")
    assert "helm release longhorn longhornManager.resources" in {
        f.resource for f in capacity.validate(synthetic.rendering(unsized))
    }
    longhorn = synthetic.release(
        "longhorn", "1.12.1", {"longhornManager": {"resources": synthetic.SIZED}}, namespace="longhorn-system"
    )
    assert "no LimitRange with default CPU and memory requests" in messages(
        capacity.validate(synthetic.rendering(longhorn))
    )
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "d", "namespace": "longhorn-system"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "20m", "memory": "64Mi"}}]},
    }
    assert capacity.validate(synthetic.rendering(longhorn, synthetic.kubernetes(limit_range))) == []


def test_a_chart_missing_from_the_capacity_table_is_a_finding() -> None:
    findings = capacity.validate(synthetic.rendering(synthetic.release("mystery", "1.0.0", {})))
    assert "chart mystery has no entry in the capacity table" in messages(findings)


@requires_charts  # the capacity and schema checks read the cluster as helm renders it
def test_the_capacity_report_names_every_sized_container() -> None:
    text = capacity.capacity(rendered(EDGE)).report()
    assert text.startswith(f"capacity of {EDGE}: node 6 CPU / 24 GiB, system reserve 1 CPU / 1 GiB")
    assert "helm release traefik resources" in text
    assert "sized elsewhere: helm release longhorn" in text


# --- the real stacks ----------------------------------------------------------------------


@requires_charts
@pytest.mark.parametrize("validator", sorted(validators()))
@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_validator(stack: str, validator: str) -> None:
    if validator == prometheus_rules.NAME and prometheus_rules.promtool() is None:
        pytest.skip("promtool not installed (CI has it)")
    if validator == pod_security.NAME and EVALUATOR_MISSING is not None:
        pytest.skip(f"the Pod Security evaluator cannot be had here: {EVALUATOR_MISSING}")
    assert messages(sorted(set(validators()[validator](rendered(stack))))) == ""


@requires_charts  # the capacity and schema checks read the cluster as helm renders it
def test_run_all_runs_every_validator() -> None:
    broken = synthetic.deployment(containers=[synthetic.container(imagePullPolice="x", resources={})])
    found = {finding.validator for finding in run_all(synthetic.rendering(synthetic.kubernetes(broken)))}
    assert found == {kubernetes_schema.NAME, capacity.NAME, policy_pack.NAME}


# --- the node: one host network -----------------------------------------------------------


def host_network_daemonset(name: str, port: int, host_network: bool = True) -> dict[str, Any]:
    declared: dict[str, Any] = {"containerPort": port, "name": "p"}
    if not host_network:
        declared["hostPort"] = port
    obj = synthetic.deployment(name, [synthetic.container(name, ports=[declared])], kind="DaemonSet")
    obj["spec"]["template"]["spec"]["hostNetwork"] = host_network
    return obj


def test_a_host_network_listener_on_the_api_servers_port_is_reported() -> None:
    found = host_ports.validate(synthetic.rendering(synthetic.kubernetes(host_network_daemonset("web", 8443))))
    assert messages(found) == (
        "host-ports: DaemonSet default/web (ours) container web (p): "
        "host port 8443 is the node's kube-apiserver (minikube's API server port)"
    )


def test_two_listeners_on_one_host_port_are_reported_and_pod_network_ports_are_not() -> None:
    rendering = synthetic.rendering(
        synthetic.kubernetes(host_network_daemonset("a", 9100)),
        synthetic.kubernetes(host_network_daemonset("b", 9100)),
        synthetic.kubernetes(synthetic.deployment("c", [synthetic.container("c", ports=[{"containerPort": 9100}])])),
    )
    assert messages(host_ports.validate(rendering)) == (
        "host-ports: DaemonSet default/b (ours) container b (p): host port 9100/TCP is already taken by "
        "DaemonSet default/a (ours) container a (p)"
    )


def test_a_host_port_in_the_node_port_range_and_the_cnis_ports_are_reported() -> None:
    rendering = synthetic.rendering(
        synthetic.kubernetes(host_network_daemonset("np", 30901, host_network=False)),
        synthetic.kubernetes(host_network_daemonset("bgp", 179)),
    )
    text = messages(host_ports.validate(rendering))
    assert "host port 30901 is in the NodePort range" in text
    assert "host port 179 is the node's calico-node (BGP)" in text


def ingress_daemonset(host_port: int) -> dict[str, Any]:
    """A pod-network ingress like Traefik: 8443 inside the pod, `host_port` of the node mapped to it."""
    ports = [
        {"containerPort": 8443, "hostPort": host_port, "name": "websecure"},
        {"containerPort": 9100, "name": "metrics"},
    ]
    return synthetic.deployment("ingress", [synthetic.container("ingress", ports=ports)], kind="DaemonSet")


def test_a_pod_networks_host_port_takes_the_nodes_port_and_its_container_ports_do_not() -> None:
    # 8443 and 9100 stay in the pod: no clash with the API server or a host-network node-exporter.
    clean = synthetic.rendering(
        synthetic.kubernetes(ingress_daemonset(443)), synthetic.kubernetes(host_network_daemonset("exporter", 9100))
    )
    assert host_ports.validate(clean) == []
    taken = synthetic.rendering(
        synthetic.kubernetes(ingress_daemonset(443)), synthetic.kubernetes(host_network_daemonset("other", 443))
    )
    assert messages(host_ports.validate(taken)) == (
        "host-ports: DaemonSet default/other (ours) container other (p): host port 443/TCP is already taken by "
        "DaemonSet default/ingress (ours) container ingress (websecure)"
    )
    on_the_api_server = synthetic.rendering(synthetic.kubernetes(ingress_daemonset(8443)))
    assert messages(host_ports.validate(on_the_api_server)) == (
        "host-ports: DaemonSet default/ingress (ours) container ingress (websecure): "
        "host port 8443 is the node's kube-apiserver (minikube's API server port)"
    )


def test_the_cnis_own_ports_follow_the_stack_config() -> None:
    cilium = {f"{PROJECT}:minikube": json.dumps({"cni": "cilium"})}
    rendering = synthetic.rendering(synthetic.kubernetes(host_network_daemonset("bgp", 179)), config=cilium)
    assert host_ports.validate(rendering) == []
    assert 4240 in host_ports.node_ports(rendering)


# --- Pod Security per namespace -----------------------------------------------------------


def namespace(name: str, level: str) -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "v1.28"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def locked_down(name: str, namespace_name: str) -> dict[str, Any]:
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    obj = synthetic.deployment(name, [synthetic.container(name, securityContext=security)])
    obj["metadata"]["namespace"] = namespace_name
    obj["spec"]["template"]["spec"]["securityContext"] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return obj


@requires_evaluator
def test_a_pod_above_its_namespaces_level_is_reported() -> None:
    agent = host_network_daemonset("agent", 9100)
    agent["metadata"]["namespace"] = "apps"
    rendering = synthetic.rendering(synthetic.kubernetes(namespace("apps", "restricted")), synthetic.kubernetes(agent))
    text = messages(pod_security.validate(rendering))
    assert "pod-security: DaemonSet apps/agent (ours): namespace apps enforces restricted: host namespaces" in text


@requires_evaluator
def test_a_namespace_looser_than_its_pods_need_is_reported() -> None:
    rendering = synthetic.rendering(
        synthetic.kubernetes(namespace("apps", "privileged")), synthetic.kubernetes(locked_down("app", "apps"))
    )
    assert messages(pod_security.validate(rendering)) == (
        "pod-security: Namespace apps: enforces privileged, but every pod in it passes restricted: enforce restricted"
    )
    strict = synthetic.rendering(
        synthetic.kubernetes(namespace("apps", "restricted")), synthetic.kubernetes(locked_down("app", "apps"))
    )
    assert pod_security.validate(strict) == []


# --- what render --check does to be quick keeps the findings --------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        synthetic.deployment(),
        {**synthetic.deployment(), "spec": {"replicas": "three", "bogus": 1}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}},
    ],
)
def test_the_cached_schema_validator_gives_kubernetes_validates_first_error(obj: dict[str, Any]) -> None:
    import kubernetes_validate

    from tools.validators import schemas

    validator = schemas.object_validator(obj["apiVersion"], obj["kind"], "1.36")
    assert validator is not None
    error = next(validator.iter_errors(obj), None)
    try:
        kubernetes_validate.validate(obj, "1.36", strict=True)
    except kubernetes_validate.ValidationError as expected:
        assert error is not None
        assert (list(error.path), error.message) == (list(expected.path), expected.message)
    else:
        assert error is None


def test_the_cached_schema_validator_knows_no_custom_resource() -> None:
    from tools.validators import schemas

    assert schemas.object_validator("monitoring.coreos.com/v1", "ServiceMonitor", "1.36") is None


def test_run_all_gathers_findings_in_module_order_whatever_finishes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import tools.validators as package

    def slow(rendering: Rendering) -> list[Finding]:
        time.sleep(0.2)
        return [Finding("slow", "r", "b"), Finding("slow", "r", "a")]

    def quick(rendering: Rendering) -> list[Finding]:
        return [Finding("quick", "r", "x")]

    monkeypatch.setattr(package, "runnable", lambda: {"slow": slow, "quick": quick})
    monkeypatch.setattr(package, "missing_prerequisite", lambda: "no reference material here")
    found = run_all(synthetic.rendering(synthetic.kubernetes(synthetic.deployment())))
    assert [str(finding) for finding in found] == ["slow: r: a", "slow: r: b", "quick: r: x"]
