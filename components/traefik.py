"""Traefik: the ingress controller, a pod on the pod network that owns the host's ports 80 and 443.

A DaemonSet takes ports 80 and 443 of the host address, where the wildcard DNS `*.<domain>` points,
as `hostPort`s of its web and websecure entrypoints, which listen on unprivileged ports (8000 and
8443, the chart's defaults) inside the pod. hostPort works on Minikube's `none` driver because
Calico's CNI configuration chains the `portmap` plugin: it DNATs the host's 80/443 to the pod
without masquerading, so Traefik sees each client's own address. No Service carries that traffic
(Minikube has no LoadBalancer, and the host address is the entry point); the chart's metrics
Service exists for the ServiceMonitor.

So Traefik is an ordinary pod: non-root, no capability, and NetworkPolicies apply to it (Calico
does not police host-network pods): the world reaches only its web ports, Prometheus its metrics,
and it reaches only its backends, the API server and DNS (`components/network_policies.py`). The
host ports still belong to the node (`tools/validators/host_ports.py` keeps them clear of the
API server's and the CNI's).

On an existing cluster (`ingress.serviceType`) the same can hold on every node (`hostPort`, the
DaemonSet then runs on each), or Traefik runs as a Deployment of two pods behind a Service of type
`LoadBalancer` (external traffic policy Local: the load balancer sends only to nodes that run a pod,
and the client's address is kept) or `NodePort` 30080/30443 (policy Cluster: every node answers,
and Traefik sees a node's address instead of the client's).

Components that need something of Traefik in front of them say so with a value of this module:
`LoginMiddleware` (basic auth for a UI without a login of its own) and `HttpsBackend` (a backend
that serves HTTPS only). Traefik's CRDs come with its chart, so this component creates those
custom resources after its release, for components installed earlier (Longhorn) and later alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.kube import MANAGED_BY, Component, helm_release, resources
from components.settings import PROJECT

RELEASE = "traefik"
INGRESS_CLASS = "traefik"
"""The IngressClass every Ingress of the platform names; the chart creates it, marked default."""
HTTP_PORT = 80
"""Host port of the `web` entrypoint (it only redirects to HTTPS)."""
HTTPS_PORT = 443
"""Host port of the `websecure` entrypoint."""
WEB_PORT = 8000
"""Container port of the `web` entrypoint: unprivileged, so no capability is needed to bind it."""
WEBSECURE_PORT = 8443
"""Container port of the `websecure` entrypoint. Only inside the pod: the node's 8443 is minikube's
API server, which is why it is never a host port."""
PING_PORT = 8080
"""The `traefik` entrypoint: health checks (`/ping`) for the kubelet, on the pod address. No
NetworkPolicy admits anyone to it (the kubelet's probes come from the node)."""
METRICS_PORT = 9100
"""Prometheus metrics, on the pod address (Prometheus scrapes the pod through the metrics
Service). Not a host port, so no clash with node-exporter's 9100 on the host."""
NODE_PORTS = {"web": 30080, "websecure": 30443}
"""The node ports of `ingress.serviceType: NodePort`, where clients then connect (and are redirected to)."""
NON_ROOT = 65532
"""The image's (and the chart's default) user and group."""
POD_LABELS = {"app.kubernetes.io/name": "traefik"}
"""What the chart labels Traefik's pods with (its selector's name label), for NetworkPolicies."""

ROUTER_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
ROUTER_ENTRYPOINTS = "traefik.ingress.kubernetes.io/router.entrypoints"
ROUTER_TLS = "traefik.ingress.kubernetes.io/router.tls"
WEBSECURE = "websecure"
SERVERS_SCHEME = "traefik.ingress.kubernetes.io/service.serversscheme"
SERVERS_TRANSPORT = "traefik.ingress.kubernetes.io/service.serverstransport"
TRAEFIK_API = "traefik.io/v1alpha1"

# The controller this component replaces: its release is carried over (see `ingress_nginx_release`).
PREVIOUS_COMPONENT_TYPE = f"{PROJECT}:ingress:IngressNginx"
PREVIOUS_RELEASE = "ingress-nginx"


def https_only() -> dict[str, str]:
    """Annotations of every Ingress: its router serves HTTPS on 443 only (port 80 just redirects)."""
    return {ROUTER_ENTRYPOINTS: WEBSECURE, ROUTER_TLS: "true"}


def ingress_tls(host: str) -> list[dict[str, Any]]:
    """The `tls` of an Ingress for `host`: no Secret of its own, Traefik serves the default certificate
    (`*.<domain>`, from the TLSStore), so the key stays in Traefik's namespace."""
    return [{"hosts": [host]}]


def https_ingress(
    name: str,
    namespace: str,
    host: str,
    service: str,
    port: int | str,
    labels: dict[str, str],
    annotations: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.Ingress:
    """An Ingress of ours: `host` over HTTPS to one Service port, through Traefik."""
    backend_port = (
        k8s.networking.v1.ServiceBackendPortArgs(number=port)
        if isinstance(port, int)
        else k8s.networking.v1.ServiceBackendPortArgs(name=port)
    )
    return k8s.networking.v1.Ingress(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=namespace, labels=labels, annotations=https_only() | annotations
        ),
        spec=k8s.networking.v1.IngressSpecArgs(
            ingress_class_name=INGRESS_CLASS,
            tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host])],
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[
                            k8s.networking.v1.HTTPIngressPathArgs(
                                path="/",
                                path_type="Prefix",
                                backend=k8s.networking.v1.IngressBackendArgs(
                                    service=k8s.networking.v1.IngressServiceBackendArgs(name=service, port=backend_port)
                                ),
                            )
                        ]
                    ),
                )
            ],
        ),
        opts=opts,
    )


def crd_reference(namespace: str, name: str) -> str:
    """How an Ingress or Service annotation names a Traefik custom resource (provider `kubernetescrd`)."""
    return f"{namespace}-{name}@kubernetescrd"


@dataclass(frozen=True)
class LoginMiddleware:
    """Basic auth in front of a UI: a Traefik `Middleware` reading `kube.basic_auth()`'s Secret.

    The Middleware is named after the Secret and lives beside it (Traefik reads the Secret from the
    Middleware's namespace). Until both exist, Traefik drops the router that names the Middleware:
    the UI answers 404, never unauthenticated.
    """

    namespace: str
    secret: str
    """The Secret whose `users` key holds the htpasswd lines."""
    realm: str

    @property
    def name(self) -> str:
        return self.secret

    def ingress_annotations(self) -> dict[str, str]:
        """What the UI's Ingress carries to be served through the login."""
        return {ROUTER_MIDDLEWARES: crd_reference(self.namespace, self.name)}

    def spec(self) -> dict[str, Any]:
        # removeHeader: the backend has no use for the operator's credentials.
        return {"basicAuth": {"secret": self.secret, "realm": self.realm, "removeHeader": True}}


@dataclass(frozen=True)
class HttpsBackend:
    """A Service Traefik talks HTTPS to, through a `ServersTransport` of its own that verifies the
    backend's certificate against the platform CA (a ConfigMap beside the backend) for `server_name`."""

    namespace: str
    name: str
    """Name of the ServersTransport."""
    server_name: str
    """The name the backend's certificate must carry (its Service's DNS name)."""
    ca_config_map: str
    """ConfigMap in `namespace` with the CA (`ca.crt`) the backend's certificate chains to."""

    def service_annotations(self) -> dict[str, str]:
        """What the backend's Service carries (Traefik reads these two on the Service, not the Ingress)."""
        return {SERVERS_SCHEME: "https", SERVERS_TRANSPORT: crd_reference(self.namespace, self.name)}

    def spec(self) -> dict[str, Any]:
        return {"serverName": self.server_name, "rootCAs": [{"configMap": self.ca_config_map}]}


@dataclass(frozen=True)
class Exposure:
    """How Traefik is reached: `hostPort` (the node's 80/443), `LoadBalancer` or `NodePort`."""

    service_type: str
    address: str
    """What Ingress objects report as their address (where the wildcard DNS points)."""
    annotations: dict[str, str]
    """Of the Service (LoadBalancer or NodePort)."""
    nodes: int
    """The cluster's nodes: a Deployment runs two pods when there are two nodes to spread them on."""

    @property
    def host_ports(self) -> bool:
        return self.service_type == "hostPort"

    def client_port(self, entrypoint: str, standard: int) -> int:
        """The port clients use for an entrypoint (the redirect to HTTPS names it)."""
        return NODE_PORTS[entrypoint] if self.service_type == "NodePort" else standard

    @property
    def https_port(self) -> int:
        return self.client_port("websecure", HTTPS_PORT)

    def url(self, host: str) -> str:
        """`https://<host>/`, with the port when clients do not use 443 (NodePort 30443)."""
        port = "" if self.https_port == HTTPS_PORT else f":{self.https_port}"
        return f"https://{host}{port}/"


class TraefikArgs(TypedDict):
    namespace: str
    """Namespace the controller runs in."""
    chart_version: str
    """Pinned traefik chart version."""
    exposure: Exposure
    """How clients reach the entrypoints."""
    service_monitor_labels: dict[str, str]
    """Labels Prometheus selects ServiceMonitors by; the release must wait for the Prometheus Operator CRDs."""
    logins: Sequence[LoginMiddleware]
    """The basic-auth Middlewares the UIs' Ingresses name."""
    https_backends: Sequence[HttpsBackend]
    """The ServersTransports the HTTPS backends' Services name."""
    default_certificate_secret: str
    """`kubernetes.io/tls` Secret in `namespace`: the certificate for `*.<domain>` served to every host."""


def security_context() -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts: the image's unprivileged user, and nothing more.

    Every entrypoint listens on a port above 1024 inside the pod, and the host's 80/443 reach it
    through hostPorts (the CNI's portmap, not the process, binds them), so no capability is
    needed: all dropped, none added, no privilege escalation, a read-only root filesystem (the
    chart mounts emptyDirs on /tmp and /data) and the runtime's seccomp profile. This is what the
    `restricted` Pod Security level asks; only the hostPorts keep the namespace from enforcing it.
    """
    pod = {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT,
        "runAsGroup": NON_ROOT,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def entrypoints(exposure: Exposure) -> dict[str, Any]:
    """Every port Traefik listens on: unprivileged ports in the pod, reached on 80/443 (hostPorts or the
    Service's ports), or on the node ports.

    `exposedPort` is where the chart points the HTTP-to-HTTPS redirect (`to=:<exposedPort>`): the
    port clients use, not the container port. Port 80 only redirects to HTTPS (permanently),
    so no password or token ever crosses it in clear."""
    redirect = {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}
    web: dict[str, Any] = {"port": WEB_PORT, "exposedPort": exposure.client_port("web", HTTP_PORT)}
    websecure: dict[str, Any] = {"port": WEBSECURE_PORT, "exposedPort": exposure.client_port("websecure", HTTPS_PORT)}
    if exposure.host_ports:
        web["hostPort"], websecure["hostPort"] = HTTP_PORT, HTTPS_PORT
    if exposure.service_type == "NodePort":
        web["nodePort"], websecure["nodePort"] = NODE_PORTS["web"], NODE_PORTS["websecure"]
    return {
        "web": {**web, "http": {"redirections": redirect}},
        "websecure": websecure,
        # Only the kubelet needs it; no NetworkPolicy admits anyone else.
        "traefik": {"port": PING_PORT},
        "metrics": {"port": METRICS_PORT},
    }


def workload_values(exposure: Exposure) -> dict[str, Any]:
    """A DaemonSet holding host ports, or a Deployment behind the Service."""
    if exposure.host_ports:
        return {
            "deployment": {"kind": "DaemonSet"},
            # A second pod cannot hold the same host ports on one node: replace the pod, never surge
            # (the chart's default, maxSurge 1, would leave the new pod Pending; its template only
            # guards this with hostNetwork).
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            # The host address is the entry point; the chart's default Service is a LoadBalancer.
            "service": {"enabled": False},
        }
    local = exposure.service_type == "LoadBalancer"
    return {
        "deployment": {"kind": "Deployment", "replicas": min(2, exposure.nodes)},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        # Two pods on two nodes, so that a node's drain or loss leaves one serving.
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": POD_LABELS},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "podDisruptionBudget": {"enabled": exposure.nodes > 1, "minAvailable": 1},
        "service": {
            "enabled": True,
            "annotations": exposure.annotations,
            "spec": {"type": exposure.service_type, "externalTrafficPolicy": "Local" if local else "Cluster"},
        },
    }


def tls_values(default_certificate_secret: str) -> dict[str, Any]:
    """The certificate served for every host without one of its own, and the TLS versions accepted.

    `sniStrict`: a client that names no host (or one we hold no certificate for) is refused instead
    of being handed the default certificate; TLS 1.2 is the oldest version browsers still speak."""
    return {
        "tlsStore": {"default": {"defaultCertificate": {"secretName": default_certificate_secret}}},
        "tlsOptions": {"default": {"minVersion": "VersionTLS12", "sniStrict": True}},
    }


def traefik_values(
    exposure: Exposure, service_monitor_labels: dict[str, str], default_certificate_secret: str
) -> dict[str, Any]:
    pod_security, container_security = security_context()
    return {
        # With a digest the chart renders `repository@digest`; its version logic still reads the tag.
        "image": versions.chart_image(versions.TRAEFIK_IMAGE, "digest", prefixed=True),
        **workload_values(exposure),
        # On the pod network, so that NetworkPolicies apply.
        "hostNetwork": False,
        "ports": entrypoints(exposure),
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS},
        "providers": {
            # Ingress objects and Traefik's CRDs of every namespace (the chart's ClusterRole).
            "kubernetesIngress": {
                "enabled": True,
                # Ingress objects report the configured address (a LoadBalancer's may not be known
                # to the cluster the way the operator's DNS knows it).
                "publishedService": {"enabled": False},
                "ingressEndpoint": {"ip": exposure.address},
            },
            # A Middleware or ServersTransport is named only from its own namespace.
            "kubernetesCRD": {"enabled": True, "allowCrossNamespace": False},
        },
        "rbac": {"enabled": True, "namespaced": False},
        # Nothing routes to the dashboard; the API serves nothing without a router.
        "api": {"dashboard": False},
        # No calls home (its NetworkPolicy would drop them anyway).
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "metrics": {
            "prometheus": {
                "service": {"enabled": True},
                "serviceMonitor": {"enabled": True, "additionalLabels": service_monitor_labels, "interval": "30s"},
            }
        },
        # A few UIs and the API calls of `pulumi up` for three clusters: far below what one core of
        # Traefik proxies. A request, not a cap: a burst takes the node's idle CPU.
        "resources": resources(cpu="50m", memory="128Mi", memory_limit="384Mi"),
        "podSecurityContext": pod_security,
        "securityContext": container_security,
        **tls_values(default_certificate_secret),
    }


def ingress_nginx_release(component_name: str) -> pulumi.Output[str]:
    """The URN ingress-nginx's release had, under this component's former type and same name.

    Both controllers need the host's ports 80/443, so they cannot run side by side: created first
    (Pulumi's default for a new resource, the old one deleted last), Traefik would never become
    ready and its atomic install would roll back, on every `pulumi up`. Aliased to the old release,
    whose name and namespace changed, the Traefik release is a replacement of it, and
    `delete_before_replace` uninstalls ingress-nginx first (the UIs are unreachable until Traefik
    is ready). Any later replacement of this release needs the same order, so the option stays.
    """
    previous_parent = pulumi.create_urn(component_name, PREVIOUS_COMPONENT_TYPE)
    return pulumi.create_urn(PREVIOUS_RELEASE, "kubernetes:helm.sh/v3:Release", parent=previous_parent)


class Traefik(Component):
    """The Traefik release, and the Middlewares and ServersTransports components asked for."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: TraefikArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=PREVIOUS_COMPONENT_TYPE)])
        super().__init__("ingress:Traefik", name, pulumi.ResourceOptions.merge(opts, renamed))
        self.release = helm_release(
            RELEASE,
            versions.TRAEFIK,
            args["chart_version"],
            namespace=args["namespace"],
            values=traefik_values(args["exposure"], args["service_monitor_labels"], args["default_certificate_secret"]),
            opts=self.child(delete_before_replace=True, aliases=[ingress_nginx_release(name)]),
        )
        # The CRDs come with the release: Helm installs the chart's crds/ before its templates (the
        # Release does not skip them). Helm installs them only on the first install and never
        # upgrades them, so a chart upgrade whose CRDs changed applies them first
        # (`kubectl apply --server-side -f crds/` of the new chart).
        for login in args["logins"]:
            self._custom_resource("Middleware", login.namespace, login.name, login.spec())
        for backend in args["https_backends"]:
            self._custom_resource("ServersTransport", backend.namespace, backend.name, backend.spec())
        self.register_outputs({"release": self.release.name})

    def _custom_resource(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> None:
        k8s.apiextensions.CustomResource(
            f"{namespace}-{name}",
            api_version=TRAEFIK_API,
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=MANAGED_BY),
            spec=spec,
            opts=self.child(self.release),
        )
