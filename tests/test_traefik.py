"""Traefik: the ingress controller, a DaemonSet on the pod network holding ports 80/443 of the host
as hostPorts (on an existing cluster, a Deployment behind a LoadBalancer or NodePort Service),
non-root and without capabilities.

Values and wiring are checked on what the program registers; ports, the IngressClass, the
Middlewares, the OpenSearch backend and the ServiceMonitor also on what the pinned chart really
renders from those values (`tools.cluster`, the real `helm template`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import versions
from components.kube_prometheus_stack import RELEASE as KPS_RELEASE
from components.kube_prometheus_stack import SELECTOR_LABELS
from components.namespaces import ENFORCED_LEVEL, INGRESS
from components.traefik import (
    HTTP_PORT,
    HTTPS_PORT,
    INGRESS_CLASS,
    METRICS_PORT,
    NON_ROOT,
    PING_PORT,
    PREVIOUS_COMPONENT_TYPE,
    PREVIOUS_RELEASE,
    RELEASE,
    ROUTER_MIDDLEWARES,
    SERVERS_SCHEME,
    SERVERS_TRANSPORT,
    WEB_PORT,
    WEBSECURE_PORT,
)
from tests import synthetic
from tests.conftest import HOST_PORT_STACKS, rendered, requires_charts, settings
from tools.cluster import Cluster, KubeObject, Pod, cluster
from tools.engine import PROJECT, Rendering, Resource, Secret
from tools.plan import plan
from tools.validators import host_ports
from tools.validators.common import lookup

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(params=HOST_PORT_STACKS)
def host_port_stack(request: pytest.FixtureRequest) -> Rendering:
    return rendered(request.param)


def expected_hosts(stack: Rendering) -> set[str]:
    """The UIs and APIs behind Traefik on the stack's cluster."""
    config = settings(stack)
    return {
        "grafana",
        "opensearch",
        *(["longhorn"] if config.storage.longhorn else []),
        *(["thanos"] * config.is_central),
    }


def release(stack: Rendering) -> Resource:
    return stack.release(RELEASE)


def values(stack: Rendering) -> dict[str, Any]:
    return release(stack).inputs["values"]


def traefik_pod(model: Cluster) -> Pod:
    (pod,) = [p for p in model.pods() if p.namespace == INGRESS]
    return pod


def objects(model: Cluster, kind: str, namespace: str | None = None) -> list[KubeObject]:
    return [o for o in model.of_kind(kind) if namespace is None or o.namespace == namespace]


def only(model: Cluster, kind: str, name: str, namespace: str | None = None) -> KubeObject:
    (found,) = [o for o in objects(model, kind, namespace) if o.name == name]
    return found


def annotations_of(o: KubeObject) -> dict[str, str]:
    return lookup(o.obj, "metadata.annotations") or {}


def referenced(reference: str, ingress_namespace: str) -> str:
    """The name of the custom resource a `<namespace>-<name>@kubernetescrd` reference names."""
    prefix, _, provider = reference.partition("@")
    assert provider == "kubernetescrd", reference
    assert prefix.startswith(f"{ingress_namespace}-"), f"{reference}: not in the Ingress's namespace"
    return prefix.removeprefix(f"{ingress_namespace}-")


# --- values ---------------------------------------------------------------------------------


def test_traefik_runs_on_the_pod_network_as_a_daemonset(host_port_stack: Rendering) -> None:
    inputs = release(host_port_stack).inputs
    assert (inputs["chart"], inputs["version"]) == (versions.TRAEFIK.name, versions.TRAEFIK.version)
    assert inputs["repositoryOpts"]["repo"] == versions.TRAEFIK.repo
    assert inputs["namespace"] == INGRESS == "ingress"
    v = values(host_port_stack)
    assert v["deployment"] == {"kind": "DaemonSet"}  # no dnsPolicy: ClusterFirst, CoreDNS, like any pod
    assert v["hostNetwork"] is False
    # Two pods cannot hold the same host ports on one node: replace, never surge.
    assert v["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    # The host address is the entry point: no Service (the chart's default is a LoadBalancer).
    assert v["service"] == {"enabled": False}
    assert v["providers"]["kubernetesIngress"]["ingressEndpoint"] == {"ip": settings(host_port_stack).ip}
    assert v["resources"]["requests"]["cpu"] and v["resources"]["limits"]["memory"]


def test_behind_a_service_traefik_is_two_spread_pods_that_keep_the_clients_address(existing_stack: Rendering) -> None:
    v, exposure = values(existing_stack), settings(existing_stack).ingress
    assert v["deployment"] == {"kind": "Deployment", "replicas": 2}
    assert v["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    spread = v["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert v["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    service = v["service"]
    assert service["enabled"] is True and service["spec"]["type"] == exposure.service_type
    # A load balancer sends to nodes with a pod and keeps the client's address; every node answers a NodePort.
    local = exposure.service_type == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == ("Local" if local else "Cluster")
    ports = v["ports"]
    assert "hostPort" not in ports["web"] and "hostPort" not in ports["websecure"]
    if exposure.service_type == "NodePort":
        assert (ports["web"]["nodePort"], ports["websecure"]["nodePort"]) == (30080, 30443)
        assert ports["websecure"]["exposedPort"] == 30443  # the redirect names the port clients use
    else:
        assert ports["websecure"]["exposedPort"] == HTTPS_PORT
    assert v["providers"]["kubernetesIngress"]["ingressEndpoint"] == {"ip": exposure.address}


@requires_charts
def test_the_chart_makes_the_service_and_a_policy_v1_disruption_budget(existing_stack: Rendering) -> None:
    model = cluster(existing_stack)
    (service,) = [o for o in objects(model, "Service", INGRESS) if lookup(o.obj, "spec.type") != "ClusterIP"]
    assert lookup(service.obj, "spec.type") == settings(existing_stack).ingress.service_type
    (budget,) = objects(model, "PodDisruptionBudget", INGRESS)
    assert budget.obj["apiVersion"] == "policy/v1"


def test_every_entrypoint_listens_above_1024_and_only_the_web_ones_take_a_host_port(host_port_stack: Rendering) -> None:
    ports = values(host_port_stack)["ports"]
    assert ports == {
        "web": {"port": WEB_PORT, "hostPort": HTTP_PORT, "exposedPort": HTTP_PORT, "http": ports["web"]["http"]},
        "websecure": {"port": WEBSECURE_PORT, "hostPort": HTTPS_PORT, "exposedPort": HTTPS_PORT},
        "traefik": {"port": PING_PORT},
        "metrics": {"port": METRICS_PORT},
    }
    assert (HTTP_PORT, HTTPS_PORT) == (80, 443)
    # The chart's defaults: unprivileged, so binding them needs no capability.
    assert (WEB_PORT, WEBSECURE_PORT, METRICS_PORT, PING_PORT) == (8000, 8443, 9100, 8080)
    assert min(entrypoint["port"] for entrypoint in ports.values()) > 1024


def test_port_80_only_redirects_to_https(any_stack: Rendering) -> None:
    redirect = values(any_stack)["ports"]["web"]["http"]["redirections"]["entryPoint"]
    assert redirect == {"to": "websecure", "scheme": "https", "permanent": True}


def test_every_host_gets_the_platform_certificate_and_modern_tls(any_stack: Rendering) -> None:
    v = values(any_stack)
    assert v["tlsStore"] == {"default": {"defaultCertificate": {"secretName": "platform-ingress-tls"}}}
    assert v["tlsOptions"] == {"default": {"minVersion": "VersionTLS12", "sniStrict": True}}
    secret = any_stack.k8s("Secret", "platform-ingress-tls", INGRESS)
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert isinstance(secret.inputs["stringData"], Secret)
    assert set(secret.inputs["stringData"].value) == {"tls.crt", "tls.key"}
    assert any_stack.depends_on(release(any_stack), secret)


@requires_charts
def test_the_chart_turns_them_into_redirect_flags_and_tls_custom_resources(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    (workload,) = objects(model, "DaemonSet", INGRESS) + objects(model, "Deployment", INGRESS)
    flags = lookup(workload.obj, "spec.template.spec.containers")[0]["args"]
    assert "--entryPoints.web.http.redirections.entryPoint.scheme=https" in flags
    assert "--entryPoints.websecure.http.tls=true" in flags
    (store,) = objects(model, "TLSStore", INGRESS)
    assert lookup(store.obj, "metadata.name") == "default"  # the only store Traefik reads
    assert lookup(store.obj, "spec.defaultCertificate.secretName") == "platform-ingress-tls"


def test_it_runs_as_the_images_user_with_no_capability_and_nothing_can_escalate(any_stack: Rendering) -> None:
    v = values(any_stack)
    container, pod = v["securityContext"], v["podSecurityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},  # and none added: no NET_BIND_SERVICE, no port below 1024
    }
    assert pod == {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT,
        "runAsGroup": NON_ROOT,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert NON_ROOT == 65532  # the image's user


def test_the_ingress_namespace_is_privileged_because_of_the_host_ports() -> None:
    """Baseline refuses any hostPort (tests/test_pod_security.py shows it is Traefik's only violation)."""
    assert ENFORCED_LEVEL[INGRESS] == "privileged"


def test_traefik_reads_ingresses_and_its_crds_in_every_namespace(any_stack: Rendering) -> None:
    v = values(any_stack)
    assert v["rbac"] == {"enabled": True, "namespaced": False}
    assert v["providers"]["kubernetesIngress"]["enabled"] is True
    assert v["providers"]["kubernetesCRD"]["enabled"] is True
    assert v["ingressClass"] == {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS}


# --- what the chart renders -----------------------------------------------------------------


@requires_charts
def test_the_rendered_pod_is_on_the_pod_network_non_root_and_read_only(any_stack: Rendering) -> None:
    pod = traefik_pod(cluster(any_stack))
    assert not pod.host_network
    assert pod.spec["hostNetwork"] is False
    assert "dnsPolicy" not in pod.spec  # ClusterFirst: CoreDNS, through the namespace's allow-dns
    assert pod.spec["securityContext"] == {
        "runAsGroup": NON_ROOT,
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod.spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert not [c for c in pod.spec.get("initContainers") or []]
    # The writable paths are emptyDirs the chart mounts.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    assert {path: "emptyDir" in volumes[name] for path, name in mounts.items()} == {"/data": True, "/tmp": True}


@requires_charts
def test_the_hosts_80_and_443_are_host_ports_of_the_web_entrypoints(host_port_stack: Rendering) -> None:
    pod = traefik_pod(cluster(host_port_stack))
    (container,) = pod.spec["containers"]
    ports = {p["name"]: p for p in container["ports"]}
    assert ports == {
        "web": {"name": "web", "containerPort": WEB_PORT, "hostPort": HTTP_PORT, "protocol": "TCP"},
        "websecure": {"name": "websecure", "containerPort": WEBSECURE_PORT, "hostPort": HTTPS_PORT, "protocol": "TCP"},
        "traefik": {"name": "traefik", "containerPort": PING_PORT, "protocol": "TCP"},
        "metrics": {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    }
    # What the node gives up: 80 and 443, nothing else (the other ports stay in the pod).
    assert sorted(listener.port for listener in host_ports.listeners(pod)) == [HTTP_PORT, HTTPS_PORT]
    args = container["args"]
    for name, port in (("web", WEB_PORT), ("websecure", WEBSECURE_PORT), ("traefik", PING_PORT)):
        assert f"--entryPoints.{name}.address=:{port}/tcp" in args
    # The redirect sends clients to the host port, not to the container's 8443.
    assert f"--entryPoints.web.http.redirections.entryPoint.to=:{HTTPS_PORT}" in args
    # The kubelet probes the pod address (no NetworkPolicy admits anyone else to the ping port).
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": PING_PORT, "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": PING_PORT, "scheme": "HTTP"}


@requires_charts
def test_no_port_of_traefik_clashes_with_the_node(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    traefik = traefik_pod(model).source.describe()
    assert [str(f) for f in host_ports.validate(any_stack) if traefik in f.resource] == []
    reserved = host_ports.node_ports(any_stack)
    for listener in host_ports.listeners(traefik_pod(model)):
        assert listener.port not in reserved and listener.port not in host_ports.NODE_PORT_RANGE


@requires_charts
def test_a_host_port_on_the_api_servers_port_is_caught(host_port_stack: Rendering) -> None:
    """The container's 8443 is harmless; as a host port it would answer in the API server's place."""
    clash = copy.deepcopy(host_port_stack)
    clash.release(RELEASE).inputs["values"]["ports"]["websecure"]["hostPort"] = WEBSECURE_PORT
    text = "\n".join(str(f) for f in host_ports.validate(clash))
    assert "(websecure): host port 8443 is the node's kube-apiserver" in text


@requires_charts
def test_the_chart_ports_on_the_host_network_would_clash_with_the_node(host_port_stack: Rendering) -> None:
    """What the pod network spares us: on the host network, every entrypoint would be the node's port."""
    host = copy.deepcopy(host_port_stack)
    host_values = host.release(RELEASE).inputs["values"]
    host_values["hostNetwork"] = True
    for entrypoint in host_values["ports"].values():  # the chart requires hostPort == port on the host network
        entrypoint.pop("hostPort", None)
    text = "\n".join(str(f) for f in host_ports.validate(host))
    assert "host port 8443 is the node's kube-apiserver" in text
    assert "host port 9100/TCP is already taken" in text  # node-exporter's
    assert str(host_ports.validate(host_port_stack)) == "[]"


@requires_charts
def test_the_ingress_class_is_the_default_and_every_ingress_names_it(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    (ingress_class,) = objects(model, "IngressClass")
    assert ingress_class.name == INGRESS_CLASS
    assert annotations_of(ingress_class)["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert lookup(ingress_class.obj, "spec.controller") == "traefik.io/ingress-controller"
    ingresses = objects(model, "Ingress")
    assert {o.name: lookup(o.obj, "spec.ingressClassName") for o in ingresses} == {
        o.name: INGRESS_CLASS for o in ingresses
    }
    hosts = {rule["host"] for o in ingresses for rule in lookup(o.obj, "spec.rules")}
    domain = settings(any_stack).domain
    assert hosts == {f"{name}.{domain}" for name in expected_hosts(any_stack)}


@requires_charts
def test_uis_without_a_login_are_behind_a_basic_auth_middleware(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    protected: set[str] = set()
    for ingress in objects(model, "Ingress"):
        reference = annotations_of(ingress).get(ROUTER_MIDDLEWARES)
        if reference is None:
            continue
        namespace = ingress.namespace or ""
        middleware = only(model, "Middleware", referenced(reference, namespace), namespace)
        auth = lookup(middleware.obj, "spec.basicAuth")
        assert auth["removeHeader"] is True
        secret = any_stack.k8s("Secret", auth["secret"], namespace)
        assert isinstance(secret.inputs["stringData"], Secret)
        assert set(secret.inputs["stringData"].value) == {"users"}
        protected.add(lookup(ingress.obj, "spec.rules")[0]["host"].split(".")[0])
    # Grafana and OpenSearch have logins of their own.
    assert protected == expected_hosts(any_stack) - {"grafana", "opensearch"}


def test_middlewares_and_transports_wait_for_traefiks_crds(any_stack: Rendering) -> None:
    created = [r for r in any_stack.kubernetes_objects() if r.kind in ("Middleware", "ServersTransport")]
    central, longhorn = settings(any_stack).is_central, settings(any_stack).storage.longhorn
    assert sorted((r.kind, r.metadata["namespace"], r.metadata["name"]) for r in created) == sorted(
        [
            *([("Middleware", "longhorn-system", "longhorn-ui-basic-auth")] if longhorn else []),
            ("ServersTransport", "logging", "opensearch"),
            *([("Middleware", "monitoring", "thanos-ui-basic-auth")] if central else []),
        ]
    )
    for resource in created:
        assert resource.inputs["apiVersion"] == "traefik.io/v1alpha1"
        assert any_stack.depends_on(resource, release(any_stack)), resource.name


@requires_charts
def test_the_chart_installs_the_crds_the_middlewares_need(any_stack: Rendering) -> None:
    crds = {o.name for o in cluster(any_stack).of_kind("CustomResourceDefinition") if o.resource == release(any_stack)}
    assert {"middlewares.traefik.io", "serverstransports.traefik.io"} <= crds
    assert not release(any_stack).inputs.get("skipCrds")


@requires_charts
def test_opensearch_is_reached_over_https_through_its_own_transport(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    service = only(model, "Service", "opensearch-cluster-master", "logging")
    assert annotations_of(service)[SERVERS_SCHEME] == "https"
    transport = only(model, "ServersTransport", referenced(annotations_of(service)[SERVERS_TRANSPORT], "logging"))
    # Verified: against the platform CA (beside OpenSearch), for the name OpenSearch's certificate carries.
    spec = lookup(transport.obj, "spec")
    assert spec == {"serverName": "opensearch-cluster-master.logging.svc", "rootCAs": [{"configMap": "platform-ca"}]}
    assert spec["serverName"] in any_stack.outputs["certificates"]["opensearch"]["hosts"]
    ca = only(model, "ConfigMap", "platform-ca", "logging")
    assert lookup(ca.obj, "data")["ca.crt"] == any_stack.outputs["platformCaCertificate"]
    assert "insecureSkipVerify" not in str(values(any_stack))


@requires_charts
def test_prometheus_scrapes_the_metrics_entrypoint(any_stack: Rendering) -> None:
    model = cluster(any_stack)
    (monitor,) = objects(model, "ServiceMonitor", INGRESS)
    labels = lookup(monitor.obj, "metadata.labels")
    assert labels | SELECTOR_LABELS == labels  # what kube-prometheus-stack's Prometheus selects
    (endpoint,) = lookup(monitor.obj, "spec.endpoints")
    assert (endpoint["targetPort"], endpoint["path"]) == ("metrics", "/metrics")
    selector = lookup(monitor.obj, "spec.selector.matchLabels")
    (service,) = [
        s for s in objects(model, "Service", INGRESS) if selector.items() <= lookup(s.obj, "metadata.labels").items()
    ]
    assert lookup(service.obj, "spec.ports") == [
        {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": "metrics"}
    ]
    (container,) = traefik_pod(model).spec["containers"]
    assert {"containerPort": METRICS_PORT, "name": "metrics", "protocol": "TCP"} in container["ports"]


# --- order and migration --------------------------------------------------------------------


def test_the_release_waits_for_the_prometheus_operator_crds(any_stack: Rendering) -> None:
    assert any_stack.depends_on(release(any_stack), any_stack.release(KPS_RELEASE))
    assert values(any_stack)["metrics"]["prometheus"]["serviceMonitor"]["additionalLabels"] == SELECTOR_LABELS
    # Longhorn comes before kube-prometheus-stack (its volumes), so before Traefik: its Ingress and
    # the Middleware it names wait for nothing of Longhorn's.
    if settings(any_stack).storage.longhorn:
        assert not any_stack.depends_on(any_stack.release("longhorn"), release(any_stack))
    assert any_stack.depends_on(any_stack.release("opensearch"), release(any_stack))


def test_the_release_replaces_ingress_nginx_deleting_it_first(any_stack: Rendering) -> None:
    new = release(any_stack)
    component = any_stack.parent_of(new)
    assert component is not None and component.type == f"{PROJECT}:ingress:Traefik"
    assert PREVIOUS_COMPONENT_TYPE in component.aliases
    previous_urn = (
        f"urn:pulumi:{any_stack.stack}::{PROJECT}::{PREVIOUS_COMPONENT_TYPE}${RELEASE_TYPE}::{PREVIOUS_RELEASE}"
    )
    previous = synthetic.resource(RELEASE_TYPE, PREVIOUS_RELEASE)
    previous.urn = previous_urn
    previous.inputs = {**copy.deepcopy(new.inputs), "name": PREVIOUS_RELEASE, "namespace": PREVIOUS_RELEASE}
    step = plan(synthetic.rendering(previous), any_stack).step(RELEASE_TYPE, RELEASE)
    assert step.op == "replace" and set(step.replaced_by) == {"name", "namespace"}
    # Both need the host's 80/443: the old one must be gone before the new one can start.
    assert new.delete_before_replace is True


@pytest.mark.parametrize("port", [HTTP_PORT, HTTPS_PORT])
def test_traefiks_host_ports_are_clear_of_the_node_by_design(port: int) -> None:
    assert port not in host_ports.CONTROL_PLANE
    assert port not in host_ports.NODE_PORT_RANGE
    assert all(port not in ports for ports in host_ports.CNI_PORTS.values())
