"""OpenSearch: the cluster's log store, snapshotted daily to S3.

The chart runs OpenSearch with its security plugin configured by us, not by the image's demo
installer (whose certificates and CA key ship in every image): the HTTP and transport layers serve
a node certificate from the platform CA (`components/cluster_tls.py`, Secret `opensearch-tls`), so
Traefik and Fluent-bit verify OpenSearch, and the security index is initialised on first start from
our `internal_users.yml`, which holds only `admin` with the bcrypt hash of its password (generated
here, or the secret config `opensearchAdminPassword` after a rotation; exported as a secret). We add
the S3 client too: endpoint, protocol, path-style access and MD5 request checksums in `opensearch.yml`, the
keys in the keystore from the object-storage Secret (OpenSearch rejects keys in repository settings
as insecure). A self-signed MinIO is trusted through `s3.caCertificate`, imported into a JVM
truststore by an init container; repository-s3 has no switch to skip verification. Every container
runs as the chart's user without capabilities, which the `restricted` Pod Security level admits.

repository-s3 (OpenSearch 3 still does not bundle it) is installed once, not at every start: a Job
(`opensearch-plugins`, the OpenSearch image's own `opensearch-plugin install --batch`) downloads it
from artifacts.opensearch.org, where the installer checks its SHA-512 and its PGP signature against
OpenSearch's release key, onto a small volume of its own (`opensearch-plugins`, under the OpenSearch
version). The OpenSearch pods mount that plugin directory read-only and never download anything, so
a restart works without the internet and OpenSearch's NetworkPolicy allows none: only the Job's pod
may reach public addresses on 443, and it runs on the first deploy and after a version change.

Break-glass: the security plugin trusts one admin certificate per cluster (`plugins.security.authcz.
admin_dn`), issued by the platform CA and kept in central's state only (`tlsCertificates`, entry
`opensearchAdmin`); with it `securityadmin.sh` rewrites the security index when the admin password is
lost, which `internal_users.yml` (read while the index is new only) cannot do.

Pulumi then manages, through the ingress, the objects that make the retention work: the snapshot
repository, the 14-day ISM policy, the 180-day Snapshot Management policy, the index template, and
a `fluent-bit` user that may only write `logs-*` (its credentials go to Fluent-bit in a Secret).
Each of them waits for `AdminCredentials`, which proves OpenSearch accepts the admin password: it
only reads that password on its first start, so a changed one is refused before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, TypedDict, cast

import bcrypt
import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import opensearch_api as api
from components import opensearch_exporter as exporter
from components import opensearch_policies as policies
from components import versions
from components.cluster_tls import (
    CA_KEY,
    CERTIFICATE_KEY,
    OPENSEARCH_TLS_SECRET,
    PLATFORM_CA_CONFIGMAP,
    PRIVATE_KEY_KEY,
    TLS_CHECKSUM,
)
from components.kube import (
    MANAGED_BY,
    Component,
    from_secret_config,
    helm_release,
    resources,
    restricted_container_security,
    restricted_pod_security,
)
from components.namespaces import LOGGING
from components.object_storage import OPENSEARCH_KEYSTORE_SECRET
from components.settings import PROJECT, LoggingSettings, S3Settings, quantity_bytes
from components.traefik import INGRESS_CLASS, HttpsBackend, https_only, ingress_tls

RELEASE = "opensearch"
SERVICE = "opensearch-cluster-master"
"""The chart's Service: `<clusterName>-<nodeGroup>` with the chart's defaults."""
HTTP_PORT = 9200
TRANSPORT_PORT = 9300
METRICS_PORT = 9600
EXPORTER_PORT = exporter.PORT
"""The snapshot exporter beside each node (`components/opensearch_exporter.py`), scraped by Prometheus."""
POD_LABELS = {"app.kubernetes.io/name": "opensearch", "app.kubernetes.io/instance": RELEASE}
"""The chart's selector labels of the OpenSearch pods."""
ADMIN_USER = "admin"
INTERNAL_USERS_SECRET = "opensearch-internal-users"
"""`internal_users.yml` of the security plugin: `admin` and its password hash (read on first start only)."""
CONFIG_DIR = "/usr/share/opensearch/config"
CERTS_DIR = "certs"
"""Where `opensearch-tls` is mounted, relative to the config directory (the plugin reads PEM files there only)."""
NODE_NAME = "opensearch-node"
NODE_DN = f"CN={NODE_NAME},O={PROJECT}"
"""The node certificate's subject as the security plugin reads it (RFC 2253): the one DN trusted as a node."""
ADMIN_NAME = "opensearch-admin"
"""The admin certificates' common names: `opensearch-admin.<cluster>`, one per cluster (`admin_dn`)."""
WRITER_SECRET = "opensearch-fluent-bit-credentials"
"""Secret in `logging` with `username` and `password` of the user Fluent-bit writes as."""
S3_CA_CONFIGMAP = "opensearch-s3-ca"
TRUSTSTORE_DIR = "/usr/share/opensearch/s3-truststore"
PASSWORD_SPECIALS = "-_.+"
"""Special characters of generated passwords: safe in env vars, URLs and Fluent-bit's config."""
HOME = "/usr/share/opensearch"
"""The image's OpenSearch home (`bin/`, `plugins/`, `config/`)."""
PLUGINS = ("repository-s3",)
"""The plugins the image lacks, installed once onto `PLUGINS_CLAIM` by the `PLUGIN_INSTALLER` Job."""
PLUGINS_CLAIM = "opensearch-plugins"
"""The PersistentVolumeClaim the plugins live on, under `<OpenSearch version>/<plugin>`."""
PLUGINS_CLAIM_SIZE = "1Gi"
"""repository-s3 3.6.0 is about 30 MB: room for the versions of many upgrades."""
PLUGINS_VOLUME = "plugins"
PLUGIN_INSTALLER = "opensearch-plugins"
"""The Job that installs `PLUGINS` onto the claim (its pods' only internet access: artifacts.opensearch.org)."""
PLUGIN_INSTALLER_LABELS = {"app.kubernetes.io/name": "opensearch-plugin-installer"}
"""The installer's pod labels: its own NetworkPolicy selects them (not OpenSearch's)."""
PLUGIN_STORE = "/plugin-store"
"""Where the installer mounts the claim."""


class OpenSearchArgs(TypedDict):
    namespace: str
    """The `logging` namespace (`components.namespaces.LOGGING`)."""
    writer_namespace: str
    """Where the Fluent-bit credentials Secret goes: Fluent-bit's own namespace."""
    cluster_name: str
    """This cluster's name: the snapshot prefix (`base_path`) inside the bucket."""
    hostname: str
    """Ingress host of the REST API, e.g. opensearch.mkube-196.miribit.lab; Pulumi asks Traefik for it."""
    ingress_address: str
    """Where Traefik listens: Pulumi connects there (unless `logging.apiUrl` is set)."""
    ingress_port: int
    """Traefik's HTTPS port there: 443, or the NodePort 30443."""
    chart_version: str
    """Pinned opensearch chart version."""
    storage_class: str
    """StorageClass of the data volumes (Longhorn)."""
    logging: LoggingSettings
    """Sizing, retention and snapshot schedule."""
    s3: S3Settings
    """Endpoint, TLS, region and bucket of the object store."""
    admin_password: pulumi.Input[str] | None
    """The secret config `opensearchAdminPassword`: replaces the generated password (after a rotation)."""
    ca_certificate: pulumi.Input[str]
    """The platform CA: Pulumi verifies `https://<hostname>` (served by Traefik) against it."""
    tls_checksum: pulumi.Input[str]
    """Hash of OpenSearch's certificate (`ClusterTls.opensearch_checksum`): a renewal rolls the pod."""


def address_in_url(address: str) -> str:
    """An IP address as a URL's host: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def port_in_url(port: int) -> str:
    """`:<port>` unless it is HTTPS's own 443."""
    return "" if port == 443 else f":{port}"


def heap_mib(memory: str) -> int:
    """Half the memory limit: the other half is Lucene's page cache and the JVM's off-heap memory."""
    return quantity_bytes(memory) // 2 // 2**20


def service_names() -> list[str]:
    """Every name OpenSearch is reached by in its cluster: the node certificate's DNS names."""
    headless = f"{SERVICE}-headless"
    return [
        SERVICE,
        f"{SERVICE}.{LOGGING}",
        f"{SERVICE}.{LOGGING}.svc",
        f"{SERVICE}.{LOGGING}.svc.cluster.local",
        f"*.{headless}.{LOGGING}.svc",
        f"*.{headless}.{LOGGING}.svc.cluster.local",
        "localhost",
    ]


def opensearch_version() -> str:
    """The OpenSearch release the pinned image runs (its tag; a digest is ignored): a plugin is
    installed for exactly this version, and OpenSearch refuses one built for another."""
    return versions.tag_of(versions.OPENSEARCH_IMAGE)


def admin_common_name(cluster: str) -> str:
    """The common name of `cluster`'s admin certificate: its own, so no other cluster's is admin there."""
    return f"{ADMIN_NAME}.{cluster}"


def admin_dn(cluster: str) -> str:
    """`cluster`'s admin certificate's subject as the security plugin reads it (RFC 2253): its one admin DN."""
    return f"CN={admin_common_name(cluster)},O={PROJECT}"


def security_settings(cluster: str) -> dict[str, Any]:
    """The security plugin's settings: our node certificate on both layers, no demo configuration,
    `cluster`'s admin certificate as the one admin."""
    pem = {
        "pemcert_filepath": f"{CERTS_DIR}/{CERTIFICATE_KEY}",
        "pemkey_filepath": f"{CERTS_DIR}/{PRIVATE_KEY_KEY}",
        "pemtrustedcas_filepath": f"{CERTS_DIR}/{CA_KEY}",
    }
    settings: dict[str, Any] = {
        f"plugins.security.ssl.{layer}.{key}": path for layer in ("transport", "http") for key, path in pem.items()
    }
    settings |= {
        "plugins.security.ssl.http.enabled": True,
        # Nodes dial each other by pod IP, which no certificate names; they are told apart by `nodes_dn`.
        # Core's setting: the security plugin's own (`plugins.security.ssl.transport.enforce_hostname_
        # verification`) is deprecated since 3.x, and the plugin registers it only when this one is absent.
        "transport.ssl.enforce_hostname_verification": False,
        "plugins.security.nodes_dn": [NODE_DN],
        # Break-glass: this cluster's admin certificate (platform CA, kept in central's state) may rewrite
        # the security index (securityadmin.sh, or the REST API) whatever the passwords; no other may.
        "plugins.security.authcz.admin_dn": [admin_dn(cluster)],
        # HTTPS asks for a client certificate without requiring one (Traefik, Fluent-bit and the exporter
        # log in with passwords): the plugin's default, stated because the admin certificate needs it.
        "plugins.security.ssl.http.clientauth_mode": "OPTIONAL",
        # Initialise the security index from the mounted files on first start (what the demo installer did).
        "plugins.security.allow_default_init_securityindex": True,
        # `admin` (all_access) manages the Fluent-bit user and role through the REST API.
        "plugins.security.restapi.roles_enabled": ["all_access", "security_rest_api_access"],
        "plugins.security.enable_snapshot_restore_privilege": True,
        "plugins.security.check_snapshot_restore_write_privileges": True,
        "plugins.security.audit.type": "internal_opensearch",
    }
    return settings


def password_hash(password: str) -> str:
    """bcrypt hash for `internal_users.yml`, as the plugin's `hash.sh` writes it (`$2y$`, cost 12).

    The salt is derived from the password, so an unchanged password gives an unchanged Secret
    (no diff on every `pulumi up`); a password is never reused across users here, so nothing is lost.
    """
    digest = hashlib.sha256(f"{PROJECT}:{ADMIN_USER}:{password}".encode()).digest()[:16]
    salt_text = base64.b64encode(digest).decode()[:22].translate(_BCRYPT_ALPHABET)
    hashed = bcrypt.hashpw(password.encode(), f"$2b$12${salt_text}".encode()).decode()
    return "$2y$" + hashed.removeprefix("$2b$")


_BCRYPT_ALPHABET = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
)


def internal_users(password: str) -> str:
    """The security plugin's user database: `admin` only (the image's demo users are gone)."""
    users = {
        "_meta": {"type": "internalusers", "config_version": 2},
        ADMIN_USER: {
            "hash": password_hash(password),
            # Not `reserved`: so the admin can change its own password through the account API
            # (a rotation needs no admin certificate); only all_access users may edit users at all.
            "reserved": False,
            "backend_roles": ["admin"],
            "description": f"{PROJECT} administrator (Pulumi manages policies and users as this user)",
        },
    }
    return yaml.safe_dump(users, sort_keys=False)


def opensearch_yml(s3: S3Settings, cluster: str) -> str:
    """`opensearch.yml`: the security plugin with our certificates and `cluster`'s admin, and the S3 client."""
    settings = {
        "cluster.name": "opensearch-cluster",
        "network.host": "0.0.0.0",
        # Client settings here, credentials in the keystore, `{bucket, base_path, client}` in the repository:
        # OpenSearch rejects keys in repository settings as insecure.
        "s3.client.default.endpoint": s3.endpoint,
        "s3.client.default.protocol": "https" if s3.use_tls else "http",
        "s3.client.default.path_style_access": True,
        "s3.client.default.region": s3.region,
        # OpenSearch 3's repository-s3 (AWS SDK v2) sends a CRC checksum on the requests that need
        # one, such as the bulk delete that removes old snapshots; S3-compatible stores older than
        # that SDK change (MinIO releases before 2025-01-20, for one) reject it. The legacy MD5
        # header is what every S3-compatible store accepts.
        "s3.client.default.legacy_md5_checksum_calculation": True,
        **security_settings(cluster),
    }
    return yaml.safe_dump(settings, sort_keys=False)


def container_security() -> dict[str, Any]:
    """The chart's user and no capabilities: what the `restricted` profile asks of every container
    (the pod sets the seccomp profile). Not read-only: OpenSearch writes its logs and temporary
    files into the image's directories."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
    }


def java_opts(logging: LoggingSettings, s3: S3Settings) -> str:
    heap = heap_mib(logging.memory)
    opts = f"-Xms{heap}m -Xmx{heap}m"
    if s3.ca_certificate:
        opts += f" -Djavax.net.ssl.trustStore={TRUSTSTORE_DIR}/cacerts -Djavax.net.ssl.trustStorePassword=changeit"
    return opts


def image(logging: LoggingSettings) -> str:
    """The operator's image with repository-s3 built in, or the pinned upstream one (the plugin then
    comes from the installer Job)."""
    return logging.image or versions.pinned(versions.OPENSEARCH_IMAGE)


def image_values(logging: LoggingSettings) -> dict[str, Any]:
    """The chart's image, the pinned one or the operator's, as `tag@digest` where there is a digest
    (the chart joins `repository:tag`). The chart reads OpenSearch's major version from the tag with
    `semver`, which a digest breaks: it is given explicitly."""
    name, _, digest = image(logging).partition("@")
    repository, _, tag = name.rpartition(":")
    return {
        "image": {"repository": repository, "tag": f"{tag}@{digest}" if digest else tag},
        "majorVersion": opensearch_version().partition(".")[0],
    }


def truststore_values(logging: LoggingSettings) -> dict[str, Any]:
    """An init container that adds MinIO's CA to a copy of the JDK's truststore."""
    script = (
        "set -eu; cp /usr/share/opensearch/jdk/lib/security/cacerts /truststore/cacerts; "
        "chmod u+w /truststore/cacerts; "
        "/usr/share/opensearch/jdk/bin/keytool -importcert -noprompt -alias s3-ca "
        "-file /s3-ca/ca.crt -keystore /truststore/cacerts -storepass changeit"
    )
    return {
        "extraVolumes": [
            {"name": "s3-ca", "configMap": {"name": S3_CA_CONFIGMAP}},
            {"name": "s3-truststore", "emptyDir": {}},
        ],
        "extraVolumeMounts": [{"name": "s3-truststore", "mountPath": TRUSTSTORE_DIR, "readOnly": True}],
        "extraInitContainers": [
            {
                "name": "s3-truststore",
                "image": image(logging),
                "command": ["sh", "-c", script],
                "resources": resources(cpu="25m", memory="128Mi", memory_limit="512Mi"),
                # The chart copies extra init containers as they are: without this the pod would
                # fail the `restricted` level the chart's own containers pass.
                "securityContext": container_security(),
                "volumeMounts": [
                    {"name": "s3-ca", "mountPath": "/s3-ca", "readOnly": True},
                    {"name": "s3-truststore", "mountPath": "/truststore"},
                ],
            }
        ],
    }


def plugin_subpath(plugin: str) -> str:
    """Where `plugin` lives on the claim: under the OpenSearch version it was installed for, so an
    upgrade installs its own beside it and pods not yet rolled keep theirs."""
    return f"{opensearch_version()}/{plugin}"


def plugin_install_script() -> str:
    """The installer Job's script: each plugin not yet on the claim for this version is installed by
    the image's `opensearch-plugin` (from artifacts.opensearch.org, checksum and signature verified)
    into the container's empty plugins directory, then moved onto the claim in one rename; a plugin
    already there is left alone, without a download (the Job replaced for another change, or recreated
    by `pulumi up --refresh` after it was deleted)."""
    version = opensearch_version()
    lines = [
        "set -eu",
        # The CLI reads a config directory and writes plugins' config files into it (repository-s3's only
        # sets log levels of the AWS SDK v1, which OpenSearch 3 no longer uses): a scratch one, the
        # image's is read-only here.
        "export OPENSEARCH_PATH_CONF=/tmp/config",
        'mkdir -p "$OPENSEARCH_PATH_CONF"',
    ]
    for plugin in PLUGINS:
        target, partial = f"{PLUGIN_STORE}/{plugin_subpath(plugin)}", f"{PLUGIN_STORE}/{version}/.{plugin}.partial"
        lines += [
            f"if [ -f {target}/plugin-descriptor.properties ]; then",
            f'  echo "{plugin} {version} is on the volume already: nothing to download"',
            "else",
            f"  {HOME}/bin/opensearch-plugin install --batch {plugin}",
            f"  rm -rf {partial}",
            f"  mkdir -p {PLUGIN_STORE}/{version}",
            f"  cp -R {HOME}/plugins/{plugin} {partial}",
            f"  mv {partial} {target}",
            f'  echo "{plugin} {version} installed onto the volume"',
            "fi",
        ]
    return "\n".join(lines)


def plugin_values() -> dict[str, Any]:
    """Each plugin mounted read-only from the claim where the image looks for plugins; the chart's
    own install at every start (`plugins.installList`) stays off."""
    return {
        "plugins": {"enabled": False},
        "extraVolumes": [{"name": PLUGINS_VOLUME, "persistentVolumeClaim": {"claimName": PLUGINS_CLAIM}}],
        "extraVolumeMounts": [
            {
                "name": PLUGINS_VOLUME,
                "mountPath": f"{HOME}/plugins/{plugin}",
                "subPath": plugin_subpath(plugin),
                "readOnly": True,
            }
            for plugin in PLUGINS
        ],
    }


def plugin_installer_pod(storage_claim: str) -> dict[str, Any]:
    """The installer's pod: the OpenSearch image as the chart's user, read-only, no token, no capabilities."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod_security(uid=1000),
        "containers": [
            {
                "name": "install",
                "image": versions.pinned(versions.OPENSEARCH_IMAGE),
                "command": ["sh", "-c", plugin_install_script()],
                # The plugin CLI is a JVM with a 64 MiB heap.
                "resources": resources(cpu="50m", memory="256Mi", memory_limit="512Mi"),
                "securityContext": restricted_container_security(),
                "volumeMounts": [
                    {"name": PLUGINS_VOLUME, "mountPath": PLUGIN_STORE},
                    {"name": "image-plugins", "mountPath": f"{HOME}/plugins"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": PLUGINS_VOLUME, "persistentVolumeClaim": {"claimName": storage_claim}},
            # Empty: the CLI installs into it with none of the image's bundled plugins beside.
            {"name": "image-plugins", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }


def ingress_backend(namespace: str) -> HttpsBackend:
    """How Traefik reaches the REST API: HTTPS verified against the platform CA (ConfigMap
    `platform-ca` beside OpenSearch) for the Service's name, through a ServersTransport Traefik's
    component creates (its CRD comes with Traefik)."""
    server_name = f"{SERVICE}.{namespace}.svc"
    return HttpsBackend(namespace, RELEASE, server_name=server_name, ca_config_map=PLATFORM_CA_CONFIGMAP)


def opensearch_values(args: OpenSearchArgs) -> dict[str, Any]:
    logging, s3 = args["logging"], args["s3"]
    values: dict[str, Any] = {
        # One node: single-node discovery, no election. Three: the chart lists the three pods as
        # `cluster.initial_master_nodes` for the first election (OpenSearch 3 has no
        # `minimum_master_nodes`: the voting configuration keeps a majority of them as quorum),
        # finds them through its headless Service, and `hard` anti-affinity puts each on a node of its own.
        "singleNode": logging.replicas == 1,
        "replicas": logging.replicas,
        "antiAffinity": "hard" if logging.replicas > 1 else "soft",
        "opensearchJavaOpts": java_opts(logging, s3),
        "resources": resources(cpu=logging.cpu, memory=logging.memory),
        # The keystore and config-copy init containers (the keystore tool is a JVM).
        "initResources": resources(cpu="25m", memory="128Mi", memory_limit="512Mi"),
        "config": {"opensearch.yml": opensearch_yml(s3, args["cluster_name"])},
        # Restarts a node whose HTTP listener is gone. Only after the chart's startup probe passed, and
        # TCP, not an HTTP call: a node busy in a long GC pause or recovering shards still accepts the
        # connection and is not killed for being slow (the readiness probe takes it out of the Service).
        "livenessProbe": {
            "tcpSocket": {"port": HTTP_PORT},
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "extraEnvs": [
            # The security plugin is configured in opensearch.yml; the demo installer would skip
            # anyway (it sees `plugins.security` keys), this says so.
            {"name": "DISABLE_INSTALL_DEMO_CONFIG", "value": "true"},
            # Credentials and region are configured: the AWS SDK has nothing to ask the EC2 metadata
            # service, which does not exist here (and the NetworkPolicies would hold its calls until
            # they time out).
            {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
        ],
        # Each key of the Secret becomes a keystore entry, s3.client.default.access_key/secret_key: the one
        # place OpenSearch accepts S3 credentials.
        "keystore": [{"secretName": OPENSEARCH_KEYSTORE_SECRET}],
        "securityConfig": {"enabled": True, "internalUsersSecret": INTERNAL_USERS_SECRET},
        # Group-readable for fsGroup 1000, the user OpenSearch runs as.
        "secretMounts": [
            {
                "name": OPENSEARCH_TLS_SECRET,
                "secretName": OPENSEARCH_TLS_SECRET,
                "path": f"{CONFIG_DIR}/{CERTS_DIR}",
                "defaultMode": 0o440,
            }
        ],
        # OpenSearch reads its certificates at start only: a renewed one rolls the pod.
        "podAnnotations": {TLS_CHECKSUM: args["tls_checksum"]},
        "persistence": {
            "enabled": True,
            # Explicit: Minikube's `standard` StorageClass is a default class too.
            "storageClass": args["storage_class"],
            "size": logging.storage_size,
            # fsGroup 1000 already owns the volume; the chown init container would run as root.
            "enableInitChown": False,
        },
        # The chart's user (1000) and capabilities, plus what the `restricted` profile asks for. Since
        # chart 3.2.1 the config-copy and keystore init containers get `securityContext` too.
        "podSecurityContext": {
            "fsGroup": 1000,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": container_security(),
        # The REST API speaks HTTPS only: Traefik reads the backend's scheme and transport from the Service.
        "service": {"annotations": ingress_backend(args["namespace"]).service_annotations()},
        "ingress": {
            "enabled": True,
            "ingressClassName": INGRESS_CLASS,
            "annotations": https_only(),
            "hosts": [args["hostname"]],
            "path": "/",
            "tls": ingress_tls(args["hostname"]),
        },
    }
    return merge_lists(
        values,
        image_values(logging),
        {} if logging.image else plugin_values(),
        exporter.values(),
        truststore_values(logging) if s3.ca_certificate else {},
    )


def merge_lists(*parts: dict[str, Any]) -> dict[str, Any]:
    """Values from several concerns: list values (extra volumes, containers) are concatenated."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = [*merged[key], *value] if isinstance(value, list) and key in merged else value
    return merged


def index_replicas(nodes: int) -> int:
    """Replica shards per index: none on a single node (they could never be assigned)."""
    return 0 if nodes == 1 else 1


def generated_password(name: str, parent: Component) -> random.RandomPassword:
    """32 characters of four classes: well past the security plugin's rule (8 or more, `strong` by zxcvbn)."""
    return random.RandomPassword(
        name,
        length=32,
        special=True,
        override_special=PASSWORD_SPECIALS,
        min_upper=2,
        min_lower=2,
        min_numeric=2,
        min_special=2,
        opts=parent.child(),
    )


class OpenSearch(Component):
    """The OpenSearch release, its credentials, and the policies Pulumi manages through its API.

    Its options wait for Longhorn (volumes), the object-store Secrets (keystore) and the ingress
    controller (Pulumi calls the API through it); `protect` protects the release, which owns the
    data volumes.
    """

    release: k8s.helm.v3.Release
    url: str
    admin_password: pulumi.Output[str]
    writer_secret: k8s.core.v1.Secret
    """`WRITER_SECRET`: username and password Fluent-bit writes with."""
    admin: api.AdminCredentials
    """The guard every API object waits for: OpenSearch accepts `admin_password`."""
    ready_for_logs: list[pulumi.Resource]
    """What Fluent-bit waits for: its credentials, user, role and role mapping, and the index template
    and ISM policy, which OpenSearch applies only to indices created after them."""
    service_host: str
    """In-cluster address of the REST API."""

    def __init__(self, name: str, args: OpenSearchArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("opensearch:OpenSearch", name, opts)
        ns = args["namespace"]
        self.url = f"https://{args['hostname']}{port_in_url(args['ingress_port'])}"
        self.service_host = f"{SERVICE}.{LOGGING}.svc"

        # Kept when the config overrides it: dropping the config returns to the same generated value.
        generated = generated_password(f"{name}-admin-password", self)
        chosen = args["admin_password"]
        self.admin_password = pulumi.Output.secret(generated.result if chosen is None else chosen)
        users = k8s.core.v1.Secret(
            INTERNAL_USERS_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=INTERNAL_USERS_SECRET,
                namespace=ns,
                labels=MANAGED_BY,
                annotations=from_secret_config(*([] if chosen is None else [api.PASSWORD_CONFIG_KEY])),
            ),
            type="Opaque",
            string_data=pulumi.Output.secret({"internal_users.yml": self.admin_password.apply(internal_users)}),
            opts=self.child(),
        )
        # The snapshot exporter's login, read by its container: it must exist before the pod starts.
        exporter_password: pulumi.Output[str] = pulumi.Output.secret(
            generated_password(f"{name}-exporter-password", self).result
        )
        exporter_secret = self._credentials(exporter.CREDENTIALS_SECRET, exporter.USER, exporter_password, ns)
        before_release: list[pulumi.Resource] = [users, exporter_secret]
        if args["s3"].ca_certificate:
            before_release.append(
                k8s.core.v1.ConfigMap(
                    S3_CA_CONFIGMAP,
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=S3_CA_CONFIGMAP, namespace=ns, labels=MANAGED_BY),
                    data={"ca.crt": args["s3"].ca_certificate},
                    opts=self.child(),
                )
            )
        if args["logging"].image is None:  # the operator's image brings the plugin
            before_release += self._plugins(args)
        self.release = helm_release(
            RELEASE,
            versions.OPENSEARCH,
            args["chart_version"],
            namespace=ns,
            values=opensearch_values(args),
            opts=self.child(*before_release, stateful=True),
            # The first start (security index) takes a while.
            timeout_seconds=900,
        )
        self.admin = api.AdminCredentials(f"{name}-admin-credentials", self._connection(args), self._after_release())
        index_setup = self._policies(name, args)
        writer = generated_password(f"{name}-fluent-bit-password", self)
        writer_password: pulumi.Output[str] = pulumi.Output.secret(writer.result)
        self.writer_secret = self._credentials(
            WRITER_SECRET, policies.WRITER_USER, writer_password, args["writer_namespace"]
        )
        self.ready_for_logs = [*self._writer(name, writer_password), *index_setup]
        self._exporter(name, exporter_password, ns)
        self.register_outputs({"release": self.release.name, "url": self.url, "adminPassword": self.admin_password})

    def _plugins(self, args: OpenSearchArgs) -> list[pulumi.Resource]:
        """The plugins' claim and the Job that fills it; the release waits for the Job to complete (a
        changed script or version replaces the Job, which runs again before the release changes)."""
        ns = args["namespace"]
        claim = k8s.core.v1.PersistentVolumeClaim(
            PLUGINS_CLAIM,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=PLUGINS_CLAIM, namespace=ns, labels=MANAGED_BY),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=args["storage_class"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": PLUGINS_CLAIM_SIZE}),
            ),
            opts=self.child(),
        )
        job = k8s.batch.v1.Job(
            PLUGIN_INSTALLER,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=PLUGIN_INSTALLER,
                namespace=ns,
                labels=MANAGED_BY | PLUGIN_INSTALLER_LABELS,
                # A Job that failed (say, the artifact site was down) is replaced by the next `pulumi up`,
                # not waited for again.
                annotations={"pulumi.com/replaceUnready": "true"},
            ),
            spec=cast(
                k8s.batch.v1.JobSpecArgsDict,
                {
                    # A download that fails is retried twice, then fails `pulumi up` before OpenSearch changes.
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": PLUGIN_INSTALLER_LABELS},
                        "spec": plugin_installer_pod(PLUGINS_CLAIM),
                    },
                },
            ),
            opts=self.child(claim, custom_timeouts=pulumi.CustomTimeouts(create="15m", update="15m")),
        )
        return [claim, job]

    def _credentials(self, secret: str, user: str, password: pulumi.Output[str], ns: str) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            secret,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=secret, namespace=ns, labels=MANAGED_BY),
            type="Opaque",
            string_data=pulumi.Output.secret({"username": user, "password": password}),
            opts=self.child(),
        )

    def _connection(self, args: OpenSearchArgs) -> api.ApiConnection:
        logging = args["logging"]
        direct = logging.api_url is None
        return {
            "url": f"https://{address_in_url(args['ingress_address'])}{port_in_url(args['ingress_port'])}"
            if direct
            else str(logging.api_url),
            "server_name": args["hostname"] if direct else None,
            "username": ADMIN_USER,
            "password": self.admin_password,
            "ca_certificate": args["ca_certificate"],
            "timeout_seconds": logging.api_timeout_seconds,
            "retries": logging.api_retries,
        }

    def _after_release(self, *others: pulumi.Resource) -> pulumi.ResourceOptions:
        return self.child(self.release, *others)

    def _object(
        self, name: str, kind: api.Kind, object_name: str, body: pulumi.Input[dict[str, Any]], *after: pulumi.Resource
    ) -> api.OpenSearchObject:
        return api.OpenSearchObject(
            name,
            {"kind": kind, "admin": self.admin, "object_name": object_name, "body": body},
            self._after_release(*after),
        )

    def _policies(self, name: str, args: OpenSearchArgs) -> list[pulumi.Resource]:
        """The repository and both policies; returns what a new `logs-*` index needs at creation."""
        logging = args["logging"]
        template = self._object(
            f"{name}-index-template",
            api.IndexTemplateKind(),
            policies.INDEX_TEMPLATE,
            policies.index_template(index_replicas(logging.replicas)),
        )
        ism = self._object(f"{name}-ism-policy", api.IsmPolicyKind(), policies.ISM_POLICY, policies.ism_policy(logging))
        self._object(
            f"{name}-audit-ism-policy",
            api.IsmPolicyKind(),
            policies.AUDIT_ISM_POLICY,
            policies.audit_ism_policy(logging),
        )
        repository = self._object(
            f"{name}-snapshot-repository",
            api.SnapshotRepositoryKind(),
            logging.repository_name,
            policies.snapshot_repository(args["s3"].buckets.opensearch, args["cluster_name"]),
        )
        self._object(
            f"{name}-snapshot-policy",
            api.SnapshotPolicyKind(),
            policies.SNAPSHOT_POLICY,
            policies.snapshot_policy(logging),
            repository,
        )
        return [template, ism]

    def _exporter(self, name: str, password: pulumi.Output[str], ns: str) -> None:
        """The snapshot exporter's read-only user and role, and the Service Prometheus scrapes it through."""
        role = self._object(f"{name}-exporter-role", api.RoleKind(), exporter.ROLE, exporter.role())
        user = self._object(
            f"{name}-exporter-user",
            api.InternalUserKind(),
            exporter.USER,
            pulumi.Output.secret({"password": password, "backend_roles": []}),
        )
        self._object(
            f"{name}-exporter-role-mapping",
            api.RoleMappingKind(),
            exporter.ROLE,
            policies.role_mapping(exporter.USER),
            role,
            user,
        )
        k8s.core.v1.Service(
            exporter.SERVICE,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=exporter.SERVICE, namespace=ns, labels=MANAGED_BY | exporter.SERVICE_LABELS
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=POD_LABELS,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=exporter.PORT_NAME, port=exporter.PORT, target_port=exporter.PORT_NAME
                    )
                ],
            ),
            opts=self.child(),
        )

    def _writer(self, name: str, password: pulumi.Output[str]) -> list[pulumi.Resource]:
        """The Fluent-bit user with its role; returns what Fluent-bit needs before it can write."""
        role = self._object(f"{name}-writer-role", api.RoleKind(), policies.WRITER_ROLE, policies.writer_role())
        user = self._object(
            f"{name}-writer-user",
            api.InternalUserKind(),
            policies.WRITER_USER,
            pulumi.Output.secret({"password": password, "backend_roles": []}),
        )
        mapping = self._object(
            f"{name}-writer-role-mapping",
            api.RoleMappingKind(),
            policies.WRITER_ROLE,
            policies.role_mapping(policies.WRITER_USER),
            role,
            user,
        )
        return [self.writer_secret, role, user, mapping]
