"""A stack for an existing cluster: what its config must say, what it is refused, and what changes
against a Minikube stack (the rest of the suite runs every test on its fixture stacks too)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import PROJECT, SettingsError, parse_settings
from tests.conftest import (
    CENTRAL_STACK,
    EDGE,
    EXISTING_CENTRAL,
    EXISTING_EDGE,
    raw_config,
    rendered,
    requires_charts,
    requires_reference,
    run_fixture,
    settings,
)
from tools.engine import Rendering
from tools.plan import plan
from tools.validators import capacity, host_ports, network_flows

KUBERNETES = {
    "kubernetesVersion": "v1.35.2",
    "nodes": [{"cpus": 8, "memoryGib": 32}] * 3,
    "nodeCidrs": ["10.30.0.0/24"],
    "apiServer": {"cidrs": ["10.30.0.5/32"]},
}
EXPOSED = {"serviceType": "LoadBalancer", "address": "10.30.0.100"}


def existing(stack: str = EDGE, **changes: Any) -> dict[str, Any]:
    """A Minikube fixture stack's config moved onto an existing cluster, then `changes` (None removes)."""
    moved = raw_config(stack, host=None, minikube=None, node=None, kubernetes=KUBERNETES, ingress=EXPOSED)
    for key, value in changes.items():
        if value is None:
            moved.pop(key, None)
        else:
            moved[key] = value
    return moved


def refused(raw: dict[str, Any], stack: str = EDGE) -> str:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, stack)
    return str(error.value)


def test_a_minikube_stack_moved_onto_a_cluster_is_valid() -> None:
    config = parse_settings(existing(), EDGE)
    assert not config.on_minikube and config.minikube is None and config.node is None
    assert config.node_count == 3 and config.kubernetes_version == "v1.35.2"
    assert config.capacity.cpus == 24 and config.capacity.reserved_cpus == 1.5
    assert config.cluster_identifier == f"existing/{EDGE}", "never the Minikube node's: a moved stack replaces"
    assert config.node_cidrs == ["10.30.0.0/24"]
    assert config.api_server.port == 6443 and config.api_server.service_address == "10.96.0.1"
    assert config.ip == "10.30.0.100" and config.longhorn_replicas == 3


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"host": "10.30.0.9"}, ["host", "has no host"]),
        ({"minikube": {"cni": "calico"}}, ["minikube", "has no host"]),
        ({"node": {"cpus": 4}}, ["node", "kubernetes.nodes or kubernetes.total"]),
        ({"ingress": {"serviceType": "LoadBalancer"}}, ["ingress.address is required"]),
        ({"kubernetes": {**KUBERNETES, "total": {"nodes": 3, "cpus": 24, "memoryGib": 96}}}, ["one of the two"]),
        ({"kubernetes": {key: v for key, v in KUBERNETES.items() if key != "nodeCidrs"}}, ["nodeCidrs", "required"]),
        ({"kubernetes": {**KUBERNETES, "nodeCidrs": ["0.0.0.0/0"]}}, ["nodeCidrs", "every address"]),
        ({"kubernetes": {**KUBERNETES, "kubernetesVersion": "v1.31.0"}}, ["v1.31.0", "end of life"]),
        ({"kubernetes": {**KUBERNETES, "nodes": [{"cpus": 0.5, "memoryGib": 32}]}}, ["reservedCpusPerNode"]),
        ({"ingress": {**EXPOSED, "serviceType": "ClusterIP"}}, ["ingress.serviceType"]),
        ({"centralAddress": "10.30.0.0/33"}, ["centralAddress", "address block"]),
    ],
)
def test_an_existing_cluster_says_what_the_platform_cannot_guess(changes: dict[str, Any], words: list[str]) -> None:
    message = refused(existing(**changes))
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    ("ingress", "words"),
    [
        ({"serviceType": "LoadBalancer"}, ["ingress", "existing clusters"]),
        ({"address": "10.20.0.99"}, ["ingress", "existing clusters"]),
        ({"annotations": {"a": "b"}}, ["annotations", "existing clusters"]),
    ],
)
def test_minikube_takes_the_hosts_ports_only(ingress: dict[str, Any], words: list[str]) -> None:
    message = refused(raw_config(EDGE, ingress=ingress))
    assert all(word in message for word in words), message


def test_a_minikube_stack_without_a_host_is_told_about_both_kinds() -> None:
    message = refused(raw_config(EDGE, host=None))
    assert "host" in message and "`kubernetes` section" in message


def test_the_kubeconfig_secret_belongs_to_existing_clusters_only() -> None:
    with pytest.raises(SettingsError, match=r"kubeconfig is set on a Minikube stack"):
        run_fixture(EDGE, {f"{PROJECT}:kubeconfig": "apiVersion: v1"})
    without = {f"{PROJECT}:kubeconfig": None}
    with pytest.raises(SettingsError, match=r"kubeconfig is required on a stack for an existing cluster"):
        run_fixture(EXISTING_EDGE, without)


def test_three_opensearch_nodes_need_three_kubernetes_nodes() -> None:
    three = {"replicas": 3, "image": "registry.lab.test/opensearch-s3:3.6.0"}
    assert parse_settings(existing(logging=three), EDGE).logging.replicas == 3
    two_nodes = {**KUBERNETES, "nodes": [{"cpus": 8, "memoryGib": 32}] * 2}
    assert "has 2 node(s)" in refused(existing(logging=three, kubernetes=two_nodes))


def test_central_and_edges_mix_both_kinds() -> None:
    """A Minikube central queries an edge behind a load balancer; its Query dials the address and port
    central's config names, over mutual TLS, and its policy lets exactly that out."""
    edges = [*raw_config(CENTRAL_STACK)["edges"], {"name": "cloud", "host": "10.40.9.9", "domain": "cloud.lab.test"}]
    edges[-1]["sidecarPort"] = 10901
    mixed = run_fixture(CENTRAL_STACK, {f"{PROJECT}:edges": json.dumps(edges)})
    endpoints = mixed.k8s("ConfigMap", "thanos-query-endpoints", "monitoring").inputs["data"]["endpoints.yaml"]
    assert "address: 10.40.9.9:10901" in endpoints
    query = mixed.k8s("NetworkPolicy", "thanos-query", "monitoring").inputs["spec"]
    to_edges = [rule for rule in query["egress"] if any("ipBlock" in peer for peer in rule["to"])]
    assert {"ipBlock": {"cidr": "10.40.9.9/32"}} in next(r for r in to_edges if r["ports"][0]["port"] == 10901)["to"]
    assert all({"ipBlock": {"cidr": "10.40.9.9/32"}} not in r["to"] for r in to_edges if r["ports"][0]["port"] != 10901)
    issued = mixed.outputs["tlsCertificates"].value["cloud"]["sidecar"]["hosts"]
    assert "10.40.9.9" in issued


def test_an_edge_behind_a_load_balancer_admits_central_at_the_load_balancer_too() -> None:
    stack = run_fixture(EXISTING_EDGE, {f"{PROJECT}:ingress": json.dumps({**EXPOSED, "address": "10.40.0.100"})})
    external = stack.release("kube-prometheus-stack").inputs["values"]["prometheus"]["thanosServiceExternal"]
    assert external == {
        "enabled": True,
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "loadBalancerSourceRanges": [settings(stack).central_address],
    }


def test_policies_name_the_clusters_nodes_and_api_server_not_a_host(existing_stack: Rendering) -> None:
    config = settings(existing_stack)
    text = json.dumps([r.inputs for r in existing_stack.kubernetes_objects() if r.kind == "NetworkPolicy"])
    assert config.kubernetes is not None
    for cidr in [*config.node_cidrs, *config.api_server.cidrs]:
        assert f'"cidr": "{cidr}"' in text
    assert f'"cidr": "{config.api_server.service_address}/32"' in text
    (to_api,) = existing_stack.k8s("NetworkPolicy", "kube-state-metrics", "monitoring").inputs["spec"]["egress"]
    assert {port["port"] for port in to_api["ports"]} == {config.api_server.port, 443}, "not minikube's 8443"


@requires_charts
def test_every_flow_is_open_and_every_forbidden_one_closed_on_the_clusters_pods(existing_stack: Rendering) -> None:
    assert network_flows.validate(existing_stack) == []


@requires_reference
def test_capacity_is_the_sum_of_the_nodes_and_daemonsets_run_on_each(existing_stack: Rendering) -> None:
    report = capacity.capacity(existing_stack)
    config = settings(existing_stack)
    assert (report.node.cpus, report.nodes) == (config.capacity.cpus, config.node_count)
    node_exporter = next(e for e in report.entries if "prometheus-node-exporter.resources" in e.source)
    assert node_exporter.count == config.node_count
    fluent_bit = next(e for e in report.entries if e.source.startswith("helm release fluent-bit"))
    assert fluent_bit.count == config.node_count


def test_host_ports_are_checked_against_any_node_of_an_existing_cluster() -> None:
    reserved = host_ports.node_ports(rendered(EXISTING_CENTRAL))
    assert reserved[10250] == "kubelet" and reserved[6443] == "kube-apiserver"
    assert 179 in reserved and 4240 in reserved, "whichever CNI the cluster runs"


@requires_charts
def test_a_pod_no_single_node_can_take_is_a_finding_though_the_sum_fits() -> None:
    small_nodes = {**json.loads(rendered(EXISTING_CENTRAL).config[f"{PROJECT}:kubernetes"])}
    small_nodes["nodes"] = [{"cpus": 2, "memoryGib": 2.5}] * 12  # 24 CPU, 30 GiB together
    stack = run_fixture(EXISTING_CENTRAL, {f"{PROJECT}:kubernetes": json.dumps(small_nodes)})
    unfit = [f for f in capacity.validate(stack) if "no node could run it" in f.message]
    assert any("opensearch" in f.resource for f in unfit), unfit  # 2Gi of memory in a 1.5 GiB node
    assert capacity.capacity(stack).total("memory_request") < capacity.capacity(stack).allocatable_memory * 0.8
    assert [f for f in capacity.validate(rendered(EXISTING_CENTRAL)) if "no node" in f.message] == []


def test_behind_node_ports_every_url_names_port_30443(existing_edge: Rendering) -> None:
    """Clients (and verify, and Pulumi calling OpenSearch) reach Traefik on the node port, not on 443."""
    assert settings(existing_edge).ingress.service_type == "NodePort"
    domain = settings(existing_edge).domain
    for output, service in (("grafanaUrl", "grafana"), ("longhornUrl", "longhorn")):
        assert existing_edge.outputs[output] == f"https://{service}.{domain}:30443/"
    assert existing_edge.outputs["opensearchUrl"] == f"https://opensearch.{domain}:30443"
    grafana = existing_edge.release("kube-prometheus-stack").inputs["values"]["grafana"]["grafana.ini"]["server"]
    assert grafana["root_url"] == f"https://grafana.{domain}:30443/"
    guard = existing_edge.one("pulumi-python:dynamic/opensearch:AdminCredentials")
    assert guard.inputs["url"] == f"https://{settings(existing_edge).ip}:30443"


def test_behind_a_load_balancer_or_host_ports_urls_need_no_port(existing_central: Rendering) -> None:
    assert existing_central.outputs["grafanaUrl"] == f"https://grafana.{settings(existing_central).domain}/"


def test_a_stack_moved_off_its_minikube_node_replaces_the_provider_and_protect_holds_the_node() -> None:
    """Pointing the provider at another cluster in place would diff every object against the wrong one."""
    before = rendered(EDGE)
    moved = run_fixture(
        EDGE,
        {
            f"{PROJECT}:host": None,
            f"{PROJECT}:node": None,
            f"{PROJECT}:minikube": None,
            f"{PROJECT}:kubernetes": json.dumps(KUBERNETES),
            f"{PROJECT}:ingress": json.dumps(EXPOSED),
            f"{PROJECT}:kubeconfig": "apiVersion: v1",
            f"{PROJECT}:sshPrivateKey": None,
        },
    )
    steps = plan(before, moved)
    assert steps.step("pulumi:providers:kubernetes", f"{EDGE}-kubernetes").op == "replace"
    assert any(f"{EDGE}-minikube" in refusal for refusal in steps.refusals()), "the protected node is not deleted"
