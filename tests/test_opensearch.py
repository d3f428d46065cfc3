"""OpenSearch: S3 client settings and keystore (C8), 14-day ISM (C9), 180-day Snapshot Management (C10)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pulumi.dynamic
import pytest
import yaml

from components import opensearch_api as api
from components import opensearch_exporter as exporter
from components import opensearch_policies as policies
from components import versions
from components.object_storage import OPENSEARCH_KEYSTORE_SECRET
from components.opensearch import (
    HTTP_PORT,
    INTERNAL_USERS_SECRET,
    NODE_DN,
    PLUGIN_INSTALLER,
    PLUGINS_CLAIM,
    SERVICE,
    WRITER_SECRET,
    password_hash,
    plugin_install_script,
)
from components.settings import PROJECT, SECRET_KEYS, SettingsError, quantity_bytes
from tests.certificates import throwaway_ca
from tests.conftest import (
    EDGE,
    EXISTING_CENTRAL,
    STACKS,
    rendered,
    requires_charts,
    requires_evaluator,
    requires_reference,
    run_fixture,
    settings,
    storage_class,
    ui_url,
    with_section,
)
from tools.cluster import KubeObject, Pod, cluster
from tools.engine import (
    MOCK_PASSWORD,
    ROOT,
    Rendering,
    Resource,
    Secret,
    unwrap,
)
from tools.plan import plan
from tools.validators import helm_values, pod_security
from tools.validators.common import lookup

OBJECT = "pulumi-python:dynamic/opensearch:Object"
GUARD = "pulumi-python:dynamic/opensearch:AdminCredentials"
KINDS = (
    "SnapshotRepository",
    "IsmPolicy",
    "SnapshotPolicy",
    "IndexTemplate",
    "SecurityRole",
    "InternalUser",
    "RoleMapping",
)
"""Every kind of API object; until all became `Object`, each was a resource class of that name."""
ADMIN_PASSWORD_KEY = f"{PROJECT}:opensearchAdminPassword"
ROTATED_PASSWORD = "Rotated-adm1n.pass"
FAKE_CA, _ = throwaway_ca()


def values(stack: Rendering) -> dict[str, Any]:
    return stack.release("opensearch").inputs["values"]


def dynamic(stack: Rendering, kind: str, of_exporter: bool = False, name: str | None = None) -> Resource:
    """The one API object of `kind` (e.g. `IsmPolicy`, the logs' one unless `name` says which); security
    objects of Fluent-bit's writer, or with `of_exporter` those of the snapshot exporter."""
    others = {exporter.USER, exporter.ROLE, policies.AUDIT_ISM_POLICY}
    (resource,) = [
        r
        for r in stack.of_type(OBJECT)
        if r.inputs["kind"] == kind
        and (r.inputs["object_name"] == name if name else (r.inputs["object_name"] in others) == of_exporter)
    ]
    return resource


def guard(stack: Rendering) -> Resource:
    return stack.one(GUARD)


def body(stack: Rendering, kind: str, name: str | None = None) -> dict[str, Any]:
    return unwrap(dynamic(stack, kind, name=name).inputs["body"])


def rendered_objects(stack: Rendering) -> list[KubeObject]:
    """What the real `helm template` of the pinned chart renders with our values."""
    return [o for o in cluster(stack).objects if o.origin == "helm release opensearch"]


def rendered_pod(stack: Rendering) -> Pod:
    (pod,) = [pod for pod in cluster(stack).pods() if pod.source.origin == "helm release opensearch"]
    return pod


def rendered_container(stack: Rendering, name: str) -> dict[str, Any]:
    spec = rendered_pod(stack).spec
    (container,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    return container


# --- the release -------------------------------------------------------------------------


def test_release_is_pinned_protected_and_waits_for_volumes_and_keys(any_stack: Rendering) -> None:
    release = any_stack.release("opensearch")
    assert release.inputs["chart"] == "opensearch"
    assert release.inputs["version"] == "3.6.0" == versions.OPENSEARCH.version
    assert release.inputs["namespace"] == "logging"
    assert release.protect
    if settings(any_stack).storage.longhorn:
        assert any_stack.depends_on(release, any_stack.release("longhorn"))
    assert any_stack.depends_on(release, any_stack.k8s("Secret", OPENSEARCH_KEYSTORE_SECRET, "logging"))
    assert any_stack.depends_on(release, any_stack.k8s("Secret", INTERNAL_USERS_SECRET, "logging"))
    assert any_stack.depends_on(release, any_stack.k8s("Secret", "opensearch-tls", "logging"))
    assert any_stack.depends_on(release, any_stack.release("traefik"))


@requires_reference
def test_every_values_key_exists_in_the_pinned_chart(any_stack: Rendering) -> None:
    assert helm_values.release_problems(any_stack.release("opensearch"), "1.28") == []


def test_one_or_three_nodes_with_heap_at_most_half_the_memory_limit(any_stack: Rendering) -> None:
    v = values(any_stack)
    replicas = settings(any_stack).logging.replicas
    assert v["singleNode"] is (replicas == 1) and v["replicas"] == replicas
    limit = quantity_bytes(v["resources"]["limits"]["memory"])
    assert v["resources"]["requests"]["memory"] == v["resources"]["limits"]["memory"]
    xms, xmx = (int(m) * 2**20 for m in re.findall(r"-Xm[sx](\d+)m", v["opensearchJavaOpts"]))
    assert xms == xmx <= limit // 2
    assert v["resources"]["requests"]["cpu"]


def test_three_nodes_form_a_cluster_on_three_kubernetes_nodes_and_replicate_indices() -> None:
    three = rendered(EXISTING_CENTRAL)
    v = values(three)
    assert settings(three).logging.replicas == 3
    assert v["singleNode"] is False and v["replicas"] == 3
    assert v["antiAffinity"] == "hard", "two OpenSearch nodes on one Kubernetes node would fail together"
    assert body(three, "IndexTemplate")["template"]["settings"]["index"]["number_of_replicas"] == 1
    assert body(rendered(EDGE), "IndexTemplate")["template"]["settings"]["index"]["number_of_replicas"] == 0


@requires_charts
def test_the_chart_bootstraps_the_three_nodes_as_cluster_managers() -> None:
    (statefulset,) = [o for o in cluster(rendered(EXISTING_CENTRAL)).of_kind("StatefulSet") if o.namespace == "logging"]
    container = next(c for c in lookup(statefulset.obj, "spec.template.spec.containers") if c["name"] == "opensearch")
    env = {e["name"]: e.get("value") for e in container["env"]}
    names = [f"opensearch-cluster-master-{ordinal}" for ordinal in range(3)]
    # The chart's list ends in a comma, which OpenSearch's list setting ignores.
    assert env["cluster.initial_master_nodes"].rstrip(",").split(",") == names
    assert env["discovery.seed_hosts"] == "opensearch-cluster-master-headless"
    assert "discovery.type" not in env
    affinity = lookup(statefulset.obj, "spec.template.spec.affinity.podAntiAffinity")
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"


@pytest.mark.parametrize(
    ("logging", "refusal"),
    [
        ({"replicas": 2}, "logging.replicas: Input should be 1 or 3"),
        ({"replicas": 3}, "logging.image is required with logging.replicas 3"),
        ({"replicas": 3, "image": "registry.lab.test/opensearch-s3:3.6.0"}, "has 1 node"),
        ({"image": "registry.lab.test/opensearch-s3:2.19.0"}, "a tag that starts with OpenSearch 3.6.0"),
    ],
)
def test_a_cluster_that_could_not_keep_a_quorum_or_lacks_the_plugin_is_refused(
    logging: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(refusal)):
        with_section(EDGE, "logging", **logging)


def test_an_image_with_the_plugin_replaces_the_installer_and_its_volume() -> None:
    image = "registry.lab.test/opensearch-s3:3.6.0"
    stack = with_section(EDGE, "logging", image=image)
    v = values(stack)
    assert v["image"] == {"repository": "registry.lab.test/opensearch-s3", "tag": "3.6.0"}
    assert [r.name for r in stack.kubernetes_objects() if r.name in (PLUGIN_INSTALLER, PLUGINS_CLAIM)] == []
    assert "plugins" not in {m["name"] for m in v.get("extraVolumeMounts") or []}
    init = {c["name"]: c["image"] for c in v.get("extraInitContainers") or []}
    assert set(init.values()) <= {image}, "the truststore is made with the same JDK"


def test_data_lives_on_the_clusters_storage_class(any_stack: Rendering) -> None:
    persistence = values(any_stack)["persistence"]
    assert persistence["enabled"] is True
    assert persistence["storageClass"] == storage_class(any_stack)
    assert persistence["size"] == "30Gi"
    assert persistence["enableInitChown"] is False


def admin_hash(stack: Rendering) -> Any:
    """The admin user's password hash in the security plugin's `internal_users.yml`, as registered."""
    assert values(stack)["securityConfig"] == {"enabled": True, "internalUsersSecret": INTERNAL_USERS_SECRET}
    secret = stack.k8s("Secret", INTERNAL_USERS_SECRET, "logging").inputs["stringData"]
    assert isinstance(secret, Secret), "the hash is a secret too"
    users = yaml.safe_load(secret.value["internal_users.yml"])
    assert set(users) == {"_meta", "admin"}, "only admin: none of the image's demo users"
    assert users["_meta"] == {"type": "internalusers", "config_version": 2}
    return users["admin"]["hash"]


def admin_passwords(stack: Rendering) -> dict[str, Any]:
    """Every place the admin password goes, as the program registered it (secret or not)."""
    places = {
        "guard": guard(stack).inputs["password"],
        "output": stack.outputs["opensearchAdminPassword"],
    }
    places.update({kind: dynamic(stack, kind).inputs["password"] for kind in KINDS})
    return places


def test_admin_password_is_generated_secret_and_reaches_opensearch_only_as_a_bcrypt_hash(edge: Rendering) -> None:
    stack = run_fixture(edge.stack, {ADMIN_PASSWORD_KEY: None})
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" not in json.dumps(values(stack))
    assert bcrypt.checkpw(MOCK_PASSWORD.encode(), admin_hash(stack).encode())
    password = stack.one("random:index/randomPassword:RandomPassword", f"{stack.stack}-opensearch-admin-password")
    assert password.inputs["length"] >= 16
    assert min(password.inputs[k] for k in ("minUpper", "minLower", "minNumeric", "minSpecial")) >= 1
    for place, value in admin_passwords(stack).items():
        assert value == Secret(MOCK_PASSWORD), place
    assert stack.outputs["opensearchUrl"] == ui_url(stack, f"opensearch.{settings(stack).domain}").rstrip("/")


def test_the_secret_config_replaces_the_generated_admin_password_everywhere(any_stack: Rendering) -> None:
    # A secret key: set with `pulumi config set --secret`, never in a committed stack file.
    assert "opensearchAdminPassword" in {secret.key for secret in SECRET_KEYS}
    stack = run_fixture(any_stack.stack, {ADMIN_PASSWORD_KEY: ROTATED_PASSWORD})
    for place, value in admin_passwords(stack).items():
        assert value == Secret(ROTATED_PASSWORD), place
    assert bcrypt.checkpw(ROTATED_PASSWORD.encode(), admin_hash(stack).encode())
    # Kept: removing the config again returns to the same generated password, not a new one.
    assert stack.one("random:index/randomPassword:RandomPassword", f"{stack.stack}-opensearch-admin-password")


# --- S3 (C8) -----------------------------------------------------------------------------


OPENSEARCH_VERSION = versions.tag_of(versions.OPENSEARCH_IMAGE)
PLUGIN_MOUNT = {
    "name": "plugins",
    "mountPath": "/usr/share/opensearch/plugins/repository-s3",
    "subPath": f"{OPENSEARCH_VERSION}/repository-s3",
    "readOnly": True,
}
"""The plugin, read-only from the claim, under the version the image runs."""


@pytest.fixture(params=[stack for stack in STACKS if settings(rendered(stack)).logging.image is None])
def installer_stack(request: pytest.FixtureRequest) -> Rendering:
    """A stack on the upstream image, whose repository-s3 the installer Job puts on a volume."""
    return rendered(request.param)


def installer(stack: Rendering) -> Resource:
    return stack.k8s("Job", PLUGIN_INSTALLER, "logging")


def installer_pod(stack: Rendering) -> dict[str, Any]:
    spec: dict[str, Any] = unwrap(installer(stack).inputs["spec"])["template"]["spec"]
    return spec


def test_repository_s3_comes_from_the_plugin_volume_not_a_download_at_every_start(installer_stack: Rendering) -> None:
    v = values(installer_stack)
    # The chart's `installList` makes every start download the plugin (a mirror outage: CrashLoopBackOff).
    assert v["plugins"] == {"enabled": False}
    assert "installList" not in json.dumps(v)
    assert OPENSEARCH_VERSION == "3.6.0" == versions.OPENSEARCH.version
    assert [m for m in v["extraVolumeMounts"] if m["name"] == "plugins"] == [PLUGIN_MOUNT]
    assert {"name": "plugins", "persistentVolumeClaim": {"claimName": PLUGINS_CLAIM}} in v["extraVolumes"]
    claim = installer_stack.k8s("PersistentVolumeClaim", PLUGINS_CLAIM, "logging")
    assert claim.inputs["spec"]["storageClassName"] == storage_class(installer_stack)
    assert claim.inputs["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Installed before the release: its pods find the plugin on the volume from their first start.
    release, job = installer_stack.release("opensearch"), installer(installer_stack)
    assert installer_stack.depends_on(release, job) and installer_stack.depends_on(job, claim)
    if settings(installer_stack).storage.longhorn:
        assert installer_stack.depends_on(job, installer_stack.release("longhorn"))
    assert release.protect and not job.protect and not claim.protect, "a lost plugin volume is filled again"


def test_the_installer_job_downloads_repository_s3_for_the_images_version_onto_the_claim(
    installer_stack: Rendering,
) -> None:
    job = installer(installer_stack)
    spec = unwrap(job.inputs["spec"])
    pod = installer_pod(installer_stack)
    (container,) = pod["containers"]
    assert container["image"] == versions.pinned(versions.OPENSEARCH_IMAGE), (
        "the installer is the OpenSearch it installs for"
    )
    script = container["command"][-1]
    assert "/usr/share/opensearch/bin/opensearch-plugin install --batch repository-s3\n" in script
    assert f"/plugin-store/{OPENSEARCH_VERSION}/repository-s3/plugin-descriptor.properties" in script
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/plugin-store": "plugins", "/usr/share/opensearch/plugins": "image-plugins", "/tmp": "tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["plugins"]["persistentVolumeClaim"] == {"claimName": PLUGINS_CLAIM}
    assert volumes["image-plugins"] == {"name": "image-plugins", "emptyDir": {}}
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] <= 900
    # A failed Job (the artifact site was down) is replaced by the next `pulumi up`, not awaited again.
    assert job.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}
    assert pod["securityContext"]["fsGroup"] == 1000, "the chart's user owns what it installs"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


FAKE_PLUGIN_CLI = """#!/bin/sh
# What `opensearch-plugin install --batch <name>` leaves behind, and a record of the call.
echo "$@" >> "$(dirname "$0")/../calls"
mkdir -p "$(dirname "$0")/../plugins/$3"
echo "name=$3" > "$(dirname "$0")/../plugins/$3/plugin-descriptor.properties"
"""


def test_the_installer_script_installs_once_and_a_rerun_downloads_nothing(tmp_path: Path) -> None:
    """The Job's script run twice over one volume, `opensearch-plugin` replaced by a recorder: the
    second run finds the plugin for this version and calls nothing (so needs no network)."""
    home, store, scratch = tmp_path / "home", tmp_path / "store", tmp_path / "tmp"
    (home / "bin").mkdir(parents=True)
    (home / "plugins").mkdir()
    store.mkdir()
    cli = home / "bin" / "opensearch-plugin"
    cli.write_text(FAKE_PLUGIN_CLI)
    cli.chmod(0o755)
    script = (
        plugin_install_script()
        .replace("/usr/share/opensearch/", f"{home}/")
        .replace("/plugin-store/", f"{store}/")
        .replace("/tmp/config", f"{scratch}/config")
    )
    outputs = []
    for _ in range(2):
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert (home / "calls").read_text() == "install --batch repository-s3\n", "one download, on the first run"
    installed = store / OPENSEARCH_VERSION / "repository-s3" / "plugin-descriptor.properties"
    assert installed.read_text() == "name=repository-s3\n"
    assert sorted(p.name for p in (store / OPENSEARCH_VERSION).iterdir()) == ["repository-s3"], "no partial left"
    assert "installed onto the volume" in outputs[0] and "nothing to download" in outputs[1]
    assert (scratch / "config").is_dir(), "the CLI gets a writable config directory of its own"


def test_s3_keys_go_to_the_keystore_from_the_object_storage_secret(any_stack: Rendering) -> None:
    assert values(any_stack)["keystore"] == [{"secretName": OPENSEARCH_KEYSTORE_SECRET}]
    secret = any_stack.k8s("Secret", OPENSEARCH_KEYSTORE_SECRET, "logging")
    assert isinstance(secret.inputs["stringData"], Secret)
    # The chart adds every key of the Secret to the keystore under the key's name.
    assert set(secret.inputs["stringData"].value) == {"s3.client.default.access_key", "s3.client.default.secret_key"}


def test_s3_client_settings_are_in_opensearch_yml(any_stack: Rendering) -> None:
    config = yaml.safe_load(values(any_stack)["config"]["opensearch.yml"])
    s3 = settings(any_stack).s3
    assert config["s3.client.default.endpoint"] == s3.endpoint
    assert config["s3.client.default.protocol"] == "https"
    assert config["s3.client.default.path_style_access"] is True
    assert config["s3.client.default.region"] == s3.region
    assert not [key for key in config if "access_key" in key or "secret_key" in key]


def test_the_password_hash_is_stable_and_in_the_format_of_the_plugins_hash_tool() -> None:
    first, again = password_hash("Correct-Horse-42"), password_hash("Correct-Horse-42")
    assert first == again, "the same password gives the same Secret: no diff on every pulumi up"
    assert first.startswith("$2y$12$") and len(first) == 60
    assert bcrypt.checkpw(b"Correct-Horse-42", first.encode())
    assert not bcrypt.checkpw(b"correct-horse-42", first.encode())
    assert password_hash("another") != first


def test_the_security_plugin_serves_our_certificate_on_both_layers_not_the_demo_one(any_stack: Rendering) -> None:
    config = yaml.safe_load(values(any_stack)["config"]["opensearch.yml"])
    for layer in ("http", "transport"):
        assert config[f"plugins.security.ssl.{layer}.pemcert_filepath"] == "certs/tls.crt"
        assert config[f"plugins.security.ssl.{layer}.pemkey_filepath"] == "certs/tls.key"
        assert config[f"plugins.security.ssl.{layer}.pemtrustedcas_filepath"] == "certs/ca.crt"
    assert config["plugins.security.ssl.http.enabled"] is True
    assert config["plugins.security.nodes_dn"] == [NODE_DN]
    assert config["plugins.security.allow_default_init_securityindex"] is True
    # Pod IPs are in no certificate: hostname verification is off, with core's setting (the plugin's own
    # is deprecated in 3.6, and setting both would leave the plugin's unregistered, refusing the start).
    assert config["transport.ssl.enforce_hostname_verification"] is False
    assert not [key for key in config if key.startswith("plugins.security.ssl.") and "hostname" in key]
    assert "security_rest_api_access" in config["plugins.security.restapi.roles_enabled"]
    assert not [key for key in config if "demo" in key or "allow_unsafe_democertificates" in key]
    envs = {e["name"]: e for e in values(any_stack)["extraEnvs"]}
    assert envs["DISABLE_INSTALL_DEMO_CONFIG"]["value"] == "true"
    (mount,) = values(any_stack)["secretMounts"]
    assert mount["secretName"] == "opensearch-tls"
    assert mount["path"] == "/usr/share/opensearch/config/certs"
    secret = any_stack.k8s("Secret", "opensearch-tls", "logging")
    assert set(secret.inputs["stringData"].value) == {"tls.crt", "tls.key", "ca.crt"}


def test_the_s3_client_sends_md5_checksums_that_s3_compatible_stores_accept(any_stack: Rendering) -> None:
    """OpenSearch 3's AWS SDK v2 sends CRC checksums where S3 asks for one (the bulk delete of old
    snapshots); the client setting (opensearch.yml, not the repository) switches back to Content-MD5."""
    config = yaml.safe_load(values(any_stack)["config"]["opensearch.yml"])
    assert config["s3.client.default.legacy_md5_checksum_calculation"] is True
    assert "legacy_md5_checksum_calculation" not in json.dumps(body(any_stack, "SnapshotRepository"))


def test_the_aws_sdk_does_not_look_for_the_ec2_metadata_service(any_stack: Rendering) -> None:
    envs = {e["name"]: e for e in values(any_stack)["extraEnvs"]}
    assert envs["AWS_EC2_METADATA_DISABLED"] == {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"}


@requires_charts
def test_the_chart_mounts_our_opensearch_yml_with_the_s3_client_settings(edge: Rendering) -> None:
    (configmap,) = [o for o in rendered_objects(edge) if o.kind == "ConfigMap" and o.name.endswith("-config")]
    rendered = yaml.safe_load(configmap.obj["data"]["opensearch.yml"])
    assert rendered["s3.client.default.legacy_md5_checksum_calculation"] is True
    assert rendered["s3.client.default.endpoint"] == settings(edge).s3.endpoint
    assert rendered["plugins.security.ssl.http.enabled"] is True
    mounts = {m["mountPath"]: m for m in rendered_container(edge, "opensearch")["volumeMounts"]}
    assert mounts["/usr/share/opensearch/config/opensearch.yml"]["subPath"] == "opensearch.yml"
    assert mounts["/usr/share/opensearch/config/certs"]["name"] == "opensearch-tls"
    users = mounts["/usr/share/opensearch/config/opensearch-security/internal_users.yml"]
    assert users["subPath"] == "internal_users.yml"


@requires_charts
def test_the_3x_image_runs_its_entrypoint_with_the_plugin_from_the_volume_and_skips_the_demo_installer(
    edge: Rendering,
) -> None:
    """With `plugins.enabled` off the 3.6 chart leaves the image's entrypoint alone (no install before
    it), mounts the plugin read-only from the claim, and passes the heap through OPENSEARCH_JAVA_OPTS;
    the entrypoint's demo security installer is switched off."""
    container = rendered_container(edge, "opensearch")
    assert "command" not in container and "args" not in container, "the image's own entrypoint starts OpenSearch"
    assert "bin/opensearch-plugin" not in json.dumps(rendered_pod(edge).spec), "nothing in the pod installs a plugin"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "plugins"]
    assert mount == PLUGIN_MOUNT
    (volume,) = [v for v in rendered_pod(edge).spec["volumes"] if v["name"] == "plugins"]
    assert volume["persistentVolumeClaim"] == {"claimName": PLUGINS_CLAIM}
    env = {e["name"]: e for e in container["env"]}
    assert env["DISABLE_INSTALL_DEMO_CONFIG"]["value"] == "true"
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" not in env
    assert env["OPENSEARCH_JAVA_OPTS"]["value"] == values(edge)["opensearchJavaOpts"]
    assert container["image"] == versions.pinned(versions.OPENSEARCH_IMAGE)


def test_repository_settings_hold_bucket_prefix_client_and_the_async_client_only(any_stack: Rendering) -> None:
    repository = dynamic(any_stack, "SnapshotRepository")
    assert repository.inputs["object_name"] == "logs-s3"
    assert body(any_stack, "SnapshotRepository") == {
        "type": "s3",
        "settings": {
            "bucket": "opensearch-logs",
            "base_path": any_stack.stack,
            "client": "default",
            # AWS CRT, the default, ignores the JVM truststore that holds a private MinIO CA.
            "s3_async_client_type": "netty",
            # 3.6's default, hashed_prefix, writes shard files outside base_path, where the user may not.
            "shard_path_type": "fixed",
        },
    }


def test_a_self_signed_minio_is_trusted_through_a_truststore(edge: Rendering) -> None:
    public = run_fixture(
        edge.stack, {f"{PROJECT}:s3": json.dumps({"endpoint": "minio.example.org:443", "publicCa": True})}
    )
    assert "extraInitContainers" not in values(public)
    stack = with_section(edge.stack, "s3", caCertificate=FAKE_CA)
    v = values(stack)
    assert "-Djavax.net.ssl.trustStore=" in v["opensearchJavaOpts"]
    (init,) = v["extraInitContainers"]
    assert "keytool -importcert" in init["command"][-1]
    assert init["resources"]["limits"]["memory"]
    ca = stack.k8s("ConfigMap", "opensearch-s3-ca", "logging")
    assert ca.inputs["data"]["ca.crt"] == FAKE_CA
    assert stack.depends_on(stack.release("opensearch"), ca)
    assert init["image"] == versions.pinned(versions.OPENSEARCH_IMAGE)
    assert init["securityContext"] == v["securityContext"], "the chart copies extra init containers as they are"


@requires_charts
@requires_evaluator
def test_every_opensearch_container_passes_the_restricted_pod_security_level(edge: Rendering) -> None:
    """Since chart 3.2.1 the config-copy and keystore init containers run with `securityContext`, so
    with our values the pod needs no more than `restricted`, also with the truststore init container."""
    with_ca = with_section(edge.stack, "s3", caCertificate=FAKE_CA)
    for stack in (edge, with_ca):
        pod = rendered_pod(stack)
        names = [c["name"] for c in pod.spec.get("initContainers", []) + pod.spec["containers"]]
        assert {"configfile", "keystore", "opensearch"} <= set(names)
        assert pod_security.violations(pod.template(), "restricted", "1.36") == [], stack.stack
    assert "s3-truststore" in [c["name"] for c in rendered_pod(with_ca).spec["initContainers"]]


@requires_charts
@requires_evaluator
def test_the_plugin_installer_passes_the_restricted_level_of_its_namespace(edge: Rendering) -> None:
    (pod,) = [pod for pod in cluster(edge).pods() if pod.namespace == "logging" and pod.source.name == PLUGIN_INSTALLER]
    assert pod.source.origin == "ours" and pod.source.kind == "Job"
    assert pod_security.violations(pod.template(), "restricted", "1.36") == []


# --- break-glass admin -------------------------------------------------------------------


def test_the_security_plugin_trusts_this_clusters_admin_certificate_and_no_other(any_stack: Rendering) -> None:
    """`internal_users.yml` is read only while the security index is new: the admin certificate
    (from the platform CA, kept by central) is what rewrites the index when the password is lost."""
    config = yaml.safe_load(values(any_stack)["config"]["opensearch.yml"])
    assert config["plugins.security.authcz.admin_dn"] == [f"CN=opensearch-admin.{any_stack.stack},O={PROJECT}"]
    assert NODE_DN not in config["plugins.security.authcz.admin_dn"], "a node certificate is never admin"
    # securityadmin.sh and the REST API present the certificate on HTTPS: asked for, not required.
    assert config["plugins.security.ssl.http.clientauth_mode"] == "OPTIONAL"


# --- ingress -----------------------------------------------------------------------------


def test_rest_api_is_behind_the_ingress_with_an_https_backend(any_stack: Rendering) -> None:
    ingress = values(any_stack)["ingress"]
    host = f"opensearch.{settings(any_stack).domain}"
    assert ingress["enabled"] is True
    assert ingress["ingressClassName"] == "traefik"
    assert ingress["hosts"] == [host]
    assert ingress["tls"] == [{"hosts": [host]}]
    # Traefik reads the backend's scheme and transport from the Service, not the Ingress.
    service = values(any_stack)["service"]["annotations"]
    assert service["traefik.ingress.kubernetes.io/service.serversscheme"] == "https"
    assert service["traefik.ingress.kubernetes.io/service.serverstransport"] == "logging-opensearch@kubernetescrd"
    assert any_stack.k8s("ServersTransport", "opensearch", "logging")


# --- policies through the API (C9, C10) --------------------------------------------------


def test_ism_deletes_log_indices_after_14_days_through_ism_template(any_stack: Rendering) -> None:
    policy = body(any_stack, "IsmPolicy")
    assert dynamic(any_stack, "IsmPolicy").inputs["object_name"] == policies.ISM_POLICY
    hot, delete = policy["states"]
    assert policy["default_state"] == hot["name"]
    assert hot["transitions"] == [{"state_name": delete["name"], "conditions": {"min_index_age": "14d"}}]
    assert delete["actions"] == [{"delete": {}}]
    assert policy["ism_template"][0]["index_patterns"] == ["logs-*"]
    # C9: attached by ism_template, not by the deprecated index setting.
    assert "policy_id" not in json.dumps(body(any_stack, "IndexTemplate"))


def test_the_security_audit_indices_are_deleted_after_their_own_retention(any_stack: Rendering) -> None:
    audit = body(any_stack, "IsmPolicy", name=policies.AUDIT_ISM_POLICY)
    assert audit["ism_template"][0]["index_patterns"] == ["security-auditlog-*"]
    days = settings(any_stack).logging.audit_retention_days
    assert audit["states"][0]["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": f"{days}d"}}]
    longer = with_section(any_stack.stack, "logging", auditRetentionDays=90)
    assert body(longer, "IsmPolicy", name=policies.AUDIT_ISM_POLICY)["states"][0]["transitions"][0]["conditions"] == {
        "min_index_age": "90d"
    }


def test_snapshot_management_snapshots_daily_and_deletes_after_180_days(any_stack: Rendering) -> None:
    policy = body(any_stack, "SnapshotPolicy")
    assert policy["snapshot_config"]["indices"] == "logs-*"
    assert policy["snapshot_config"]["repository"] == dynamic(any_stack, "SnapshotRepository").inputs["object_name"]
    assert policy["creation"]["schedule"]["cron"]["expression"] == "0 1 * * *"
    # The API's field is `deletion.condition` (DESIGN C10 writes `delete_condition`, which the API ignores).
    assert policy["deletion"]["condition"] == {"max_age": "180d", "min_count": 7}
    assert policy["snapshot_config"]["include_global_state"] is False
    # Snapshot names are dated in the configured zone: SM reads `date_format_timezone` (not `timezone`).
    timezone = settings(any_stack).logging.snapshot_timezone
    assert policy["snapshot_config"]["date_format_timezone"] == timezone
    assert "timezone" not in policy["snapshot_config"]
    assert policy["creation"]["schedule"]["cron"]["timezone"] == timezone
    sm = dynamic(any_stack, "SnapshotPolicy")
    assert any_stack.depends_on(sm, dynamic(any_stack, "SnapshotRepository"))


def test_retention_settings_reach_the_policies(edge: Rendering) -> None:
    stack = with_section(edge.stack, "logging", retentionDays=7, snapshotRetention="90d", snapshotMinCount=3)
    assert body(stack, "IsmPolicy")["states"][0]["transitions"][0]["conditions"] == {"min_index_age": "7d"}
    assert body(stack, "SnapshotPolicy")["deletion"]["condition"] == {"max_age": "90d", "min_count": 3}


def test_index_template_maps_the_fields_fluent_bit_sends(any_stack: Rendering) -> None:
    template = body(any_stack, "IndexTemplate")
    assert template["index_patterns"] == ["logs-*"]
    properties = template["template"]["mappings"]["properties"]
    assert properties["@timestamp"] == {"type": "date"}
    assert properties["cluster"] == {"type": "keyword"}
    assert properties["kubernetes"]["properties"]["namespace_name"] == {"type": "keyword"}
    assert properties["log_processed"] == {"type": "flat_object"}


def test_api_objects_are_managed_through_the_ingress_after_the_release(any_stack: Rendering) -> None:
    objects = [r for r in any_stack.resources if r.type.startswith("pulumi-python:dynamic/")]
    security = ("SecurityRole", "InternalUser", "RoleMapping")  # Fluent-bit's writer and the snapshot exporter
    audit = ("IsmPolicy",)
    assert sorted(r.inputs.get("kind", r.type) for r in objects) == sorted([*KINDS, *security, *audit, GUARD])
    for resource in objects:
        assert any_stack.depends_on(resource, any_stack.release("opensearch")), resource.name
        # The ingress address on Traefik's HTTPS port (443, or the node port), asking Traefik for the
        # ingress name: no DNS needed where Pulumi runs.
        port = "" if settings(any_stack).ingress.service_type != "NodePort" else ":30443"
        assert resource.inputs["url"] == f"https://{settings(any_stack).ip}{port}"
        assert f"https://{resource.inputs['server_name']}{port}" == any_stack.outputs["opensearchUrl"]
        assert resource.inputs["username"] == "admin"
        assert resource.inputs["ca_certificate"] == any_stack.outputs["platformCaCertificate"]
        assert isinstance(resource.inputs["password"], Secret), resource.name
        assert "password" in resource.additional_secret_outputs
        parent = any_stack.parent_of(resource)
        assert parent is not None and parent.type == "thanos-multi-cluster:opensearch:OpenSearch"


def test_an_operator_with_dns_or_a_proxy_names_the_api_url_instead(edge: Rendering) -> None:
    through = with_section(edge.stack, "logging", apiUrl="https://os.proxy.example:8443")
    assert (guard(through).inputs["url"], guard(through).inputs.get("server_name")) == (
        "https://os.proxy.example:8443",
        None,
    )
    with pytest.raises(SettingsError, match=r"logging\.apiUrl"):
        with_section(edge.stack, "logging", apiUrl="http://os.example/path")


def test_every_api_object_waits_for_the_admin_password_check(any_stack: Rendering) -> None:
    check = guard(any_stack)
    assert any_stack.depends_on(check, any_stack.release("opensearch"))
    for kind in KINDS:
        resource = dynamic(any_stack, kind)
        assert check.urn in resource.depends_on, kind
    connection = api.CONNECTION_INPUTS
    for kind in KINDS:
        assert {key: dynamic(any_stack, kind).inputs[key] for key in connection} == {
            key: check.inputs[key] for key in connection
        }, f"{kind} must use the credentials the guard checked"


def test_one_resource_type_keeps_each_kinds_old_type_as_an_alias(any_stack: Rendering) -> None:
    for kind in KINDS:
        resource = dynamic(any_stack, kind)
        assert resource.type == OBJECT

        class Former(pulumi.dynamic.Resource, module="opensearch", name=kind):
            """How the kind was declared when it had its own class."""

        # A type-only alias: same name and parent, so the old URN maps onto the new one (no replacement).
        assert resource.aliases == [f"pulumi-python:{Former._resource_type_name}"], kind
        assert resource.aliases == [f"pulumi-python:dynamic/opensearch:{kind}"], kind


def former_state(stack: Rendering) -> Rendering:
    """`stack` as the former per-kind classes left it in the state: a type per kind, no `kind` input, no guard."""
    former = copy.deepcopy(stack)
    former.resources = [r for r in former.resources if r.type != GUARD]
    for resource in former.resources:
        if resource.type == OBJECT:
            old_type = f"pulumi-python:dynamic/opensearch:{resource.inputs.pop('kind')}"
            resource.urn = resource.urn.replace(f"${OBJECT}::", f"${old_type}::")
            resource.type, resource.aliases = old_type, []
    return former


def test_objects_of_the_former_per_kind_classes_carry_over_without_replacement(edge: Rendering) -> None:
    steps = plan(former_state(edge), edge)
    assert steps.refusals() == []
    for kind in KINDS:
        step = steps.step(OBJECT, dynamic(edge, kind).name)
        # `update` only for the new `kind` input, which the provider's diff ignores.
        assert step.op in ("same", "update") and not step.replaced_by, (kind, step)
    assert not [step for step in steps.of("delete", "replace") if step.type.startswith("pulumi-python:")]
    assert steps.step(GUARD, guard(edge).name).op == "create"


def test_secret_outputs_stay_per_kind(any_stack: Rendering) -> None:
    for kind in KINDS:
        expected = ["password", "body"] if kind == "InternalUser" else ["password"]
        assert dynamic(any_stack, kind).additional_secret_outputs == expected, kind
    assert guard(any_stack).additional_secret_outputs == ["password"]


def test_verification_of_the_api_cannot_be_switched_off(edge: Rendering) -> None:
    with pytest.raises(SettingsError, match=r"logging\.apiVerifyTls is not a known setting"):
        with_section(edge.stack, "logging", apiVerifyTls=False)


def test_fluent_bit_gets_its_own_user_that_may_only_write_logs(any_stack: Rendering) -> None:
    role = body(any_stack, "SecurityRole")
    assert role["index_permissions"] == [{"index_patterns": ["logs-*"], "allowed_actions": ["create_index", "write"]}]
    assert "cluster_all" not in role["cluster_permissions"]
    user = dynamic(any_stack, "InternalUser")
    assert user.inputs["object_name"] == "fluent-bit"
    assert isinstance(user.inputs["body"], Secret)
    assert "body" in user.additional_secret_outputs
    mapping = dynamic(any_stack, "RoleMapping")
    assert mapping.inputs["object_name"] == dynamic(any_stack, "SecurityRole").inputs["object_name"]
    assert unwrap(mapping.inputs["body"])["users"] == ["fluent-bit"]
    assert any_stack.depends_on(mapping, user) and any_stack.depends_on(mapping, dynamic(any_stack, "SecurityRole"))
    secret = any_stack.k8s("Secret", WRITER_SECRET, "fluent-bit")
    assert isinstance(secret.inputs["stringData"], Secret)
    assert secret.inputs["stringData"].value["username"] == "fluent-bit"


def test_fluent_bit_waits_until_a_new_log_index_gets_its_template_and_ism_policy(any_stack: Rendering) -> None:
    """OpenSearch applies a template and an ISM policy only to indices created after them: a first
    `logs-*` index written earlier would keep a replica on one node (yellow) and never be deleted."""
    fluent_bit = any_stack.release("fluent-bit")
    assert any_stack.depends_on(fluent_bit, dynamic(any_stack, "IndexTemplate"))
    assert any_stack.depends_on(fluent_bit, dynamic(any_stack, "IsmPolicy"))
    # ... and, to write at all, for its user with its role.
    for kind in ("SecurityRole", "InternalUser", "RoleMapping"):
        assert any_stack.depends_on(fluent_bit, dynamic(any_stack, kind)), kind
    assert any_stack.depends_on(fluent_bit, any_stack.k8s("Secret", WRITER_SECRET, "fluent-bit"))
    # Not for the snapshot repository and policy: an unreachable S3 must not hold back the logs.
    assert not any_stack.depends_on(fluent_bit, dynamic(any_stack, "SnapshotRepository"))
    assert not any_stack.depends_on(fluent_bit, dynamic(any_stack, "SnapshotPolicy"))


def loaded_provider(resource: Resource) -> list[str]:
    """Module, class (and kind) of the resource's `__provider`, unpickled in a fresh process in the project."""
    serialized = unwrap(resource.inputs["__provider"])
    script = (
        "import base64, sys, dill; p = dill.loads(base64.b64decode(sys.stdin.read())); "
        "print(type(p).__module__, type(p).__name__, type(getattr(p, 'kind', None)).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=serialized, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_serialized_providers_load_in_a_fresh_process_from_the_project(edge: Rendering) -> None:
    """The dynamic-provider host unpickles `__provider` in its own process, started in the project."""
    assert loaded_provider(dynamic(edge, "SnapshotPolicy")) == [
        "components.opensearch_api",
        "OpenSearchObjectProvider",
        "SnapshotPolicyKind",
    ]
    assert loaded_provider(guard(edge)) == ["components.opensearch_api", "AdminCredentialsProvider", "NoneType"]


# --- budget ------------------------------------------------------------------------------


def cpu_millis(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def test_logging_fits_its_node_budget(any_stack: Rendering) -> None:
    """OpenSearch and Fluent-bit together: at most 0.6 CPU and 3 GiB of requests per cluster."""
    rendering = any_stack
    opensearch = values(rendering)
    fluent_bit = rendering.release("fluent-bit").inputs["values"]
    blocks = [opensearch["resources"], opensearch["initResources"], fluent_bit["resources"]]
    for block in blocks:
        assert block["limits"]["memory"], block
    assert sum(cpu_millis(b["requests"]["cpu"]) for b in blocks) <= 600
    assert sum(quantity_bytes(b["requests"]["memory"]) for b in blocks) <= 3 * 2**30


def test_service_name_matches_the_chart(any_stack: Rendering) -> None:
    v = values(any_stack)
    # The chart names the Service `<clusterName>-<nodeGroup>`; Fluent-bit addresses it by that name.
    assert "clusterName" not in v and "nodeGroup" not in v and "fullnameOverride" not in v
    assert SERVICE == "opensearch-cluster-master"


@requires_charts
def test_a_node_and_its_snapshot_exporter_are_restarted_when_they_stop_answering(any_stack: Rendering) -> None:
    """The chart has startup and readiness probes but no liveness probe: a hung OpenSearch would stay
    unready forever. TCP on the HTTP port (no credentials; a slow node still accepts) for OpenSearch,
    the exporter's health endpoint for the exporter, as the chart really renders them."""
    search = rendered_container(any_stack, "opensearch")
    assert search["livenessProbe"]["tcpSocket"] == {"port": HTTP_PORT}
    assert search["startupProbe"]["tcpSocket"] == {"port": HTTP_PORT}, "liveness starts after the startup probe"
    window = search["livenessProbe"]["periodSeconds"] * search["livenessProbe"]["failureThreshold"]
    assert window >= 120, "a GC pause or a shard recovery is not a reason to restart"
    exporter_probe = rendered_container(any_stack, "snapshot-exporter")["livenessProbe"]
    assert exporter_probe["httpGet"]["path"] == "/healthz"
