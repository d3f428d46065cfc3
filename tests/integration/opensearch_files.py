"""What the program generates for OpenSearch, laid out for a real node, and the two installs it runs on.

`Generated` holds one stack's files as the rendering has them (`opensearch.yml`, `internal_users.yml`,
the node certificate, the keystore entries, the JVM options, the truststore init container's
script). The helpers here turn them into what `OpenSearchNode` takes, moving only paths a pod would
have to itself (the JDK, the truststore's volume) and the heap, which the tests shrink:

- `deployed_release`: OpenSearch 3.6.0, the deployed release, with job-scheduler and repository-s3;
- `security_release`: the nearest release whose security plugin Maven Central serves (3.4.0), with
  the two packaging fixes `opensearch_node.patched_plugin` explains.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.cluster_tls import CA_KEY, CERTIFICATE_KEY, PRIVATE_KEY_KEY
from components.opensearch import CERTS_DIR, SERVICE
from tests.integration import programs
from tests.integration.binaries import Blocked, MavenArtifact, catalogue
from tests.integration.opensearch_node import (
    JAVA_HOME,
    Client,
    OpenSearchNode,
    Release,
    distribution_modules,
    patched_plugin,
    repository_s3_plugin,
)

TEST_HEAP = "512m"
"""Two nodes and the other servers share two cores and the tests' memory: a quarter of the pods' heap."""
POD_NAME = f"{SERVICE}-0"
"""The StatefulSet's first pod: the chart passes it as `node.name`."""
RULE_FRAMEWORK = "rule-framework"
"""The module security extends; 3.4.0's integ-test zip lacks it (3.6.0's has it)."""


@dataclass(frozen=True)
class Generated:
    """One stack's OpenSearch files, as rendered (certificates real)."""

    opensearch_yml: str
    internal_users_yml: str
    tls: dict[str, str]
    """The `opensearch-tls` Secret: `tls.crt`, `tls.key`, `ca.crt`."""
    keystore: dict[str, str]
    """The `opensearch-s3-keystore` Secret: keystore entry -> value."""
    java_opts: str
    truststore_script: str
    """The `s3-truststore` init container's `sh -c` script."""
    s3_ca: str
    """The `opensearch-s3-ca` ConfigMap's `ca.crt`."""
    environment: dict[str, str]
    """The chart's `extraEnvs`."""
    single_node: bool

    def settings(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.opensearch_yml)
        return loaded

    def yml_without(self, drop: Callable[[str], bool]) -> tuple[str, list[str]]:
        """`opensearch.yml` without the keys `drop` names (no plugin on that node owns them), and those keys."""
        settings = self.settings()
        dropped = [key for key in settings if drop(key)]
        kept = {key: value for key, value in settings.items() if key not in dropped}
        return yaml.safe_dump(kept, sort_keys=False), dropped


def chart_settings(generated: Generated) -> dict[str, str]:
    """What the chart passes through the environment besides `opensearch.yml` (`-E` here)."""
    settings = {"node.name": POD_NAME}
    if generated.single_node:
        settings["discovery.type"] = "single-node"
    return settings


def security_files(generated: Generated, yml: str) -> dict[str, str]:
    """The config files of a node with the security plugin, where the chart mounts them."""
    return {
        "opensearch.yml": yml,
        "opensearch-security/internal_users.yml": generated.internal_users_yml,
        **{f"{CERTS_DIR}/{key}": generated.tls[key] for key in (CERTIFICATE_KEY, PRIVATE_KEY_KEY, CA_KEY)},
    }


def build_truststore(generated: Generated, workdir: Path) -> Path:
    """Our init container's script, run with its volumes at `workdir/s3-ca` and `workdir/s3-truststore`
    and the machine's JDK in place of the image's: the JVM truststore the node starts with."""
    ca_dir, store_dir = workdir / "s3-ca", workdir / "s3-truststore"
    for directory in (ca_dir, store_dir):
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    (ca_dir / "ca.crt").write_text(generated.s3_ca)
    script = (
        generated.truststore_script.replace("/usr/share/opensearch/jdk", str(JAVA_HOME))
        .replace("/truststore/", f"{store_dir}/")
        .replace("/s3-ca/", f"{ca_dir}/")
    )
    subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True, timeout=120)
    truststore = store_dir / "cacerts"
    truststore.chmod(0o644)
    return truststore


def node_java_opts(generated: Generated, truststore: Path) -> str:
    """Our JVM options with the tests' heap and the truststore where `build_truststore` made it."""
    opts = re.sub(r"-Xm([sx])\d+[mg]", rf"-Xm\g<1>{TEST_HEAP}", generated.java_opts)
    return re.sub(r"-Djavax\.net\.ssl\.trustStore=\S+", f"-Djavax.net.ssl.trustStore={truststore}", opts)


def _artifact(name: str) -> Path | Blocked:
    return catalogue()[name].build()


def deployed_release() -> Release | Blocked:
    """OpenSearch 3.6.0 with job-scheduler and repository-s3 (its zip laid out from the jar)."""
    distribution = _artifact("opensearch")
    if isinstance(distribution, Blocked):
        return distribution
    job_scheduler = _artifact("opensearch-job-scheduler")
    if isinstance(job_scheduler, Blocked):
        return job_scheduler
    jar = catalogue()["repository-s3"]
    assert isinstance(jar, MavenArtifact), "repository-s3 comes from Maven Central as its jar"
    repository_s3 = repository_s3_plugin(jar, distribution, programs.OPENSEARCH_VERSION)
    if isinstance(repository_s3, Blocked):
        return repository_s3
    return Release(programs.OPENSEARCH_VERSION, distribution, (job_scheduler, repository_s3))


def security_release() -> Release | Blocked:
    """The nearest release with a served security plugin, with job-scheduler; security's descriptor
    marks the missing rule-framework module optional and gets the jar that module would lend it."""
    parts = {
        name: _artifact(name)
        for name in (
            "opensearch-nearest",
            "opensearch-security-nearest",
            "opensearch-job-scheduler-nearest",
            "commons-collections4-nearest",
        )
    }
    for outcome in parts.values():
        if isinstance(outcome, Blocked):
            return outcome
    paths = {name: outcome for name, outcome in parts.items() if isinstance(outcome, Path)}
    distribution = paths["opensearch-nearest"]
    missing = [] if RULE_FRAMEWORK in distribution_modules(distribution) else [RULE_FRAMEWORK]
    security = paths["opensearch-security-nearest"]
    if missing:
        security = patched_plugin(security, missing, [paths["commons-collections4-nearest"]])
    plugins = (paths["opensearch-job-scheduler-nearest"], security)
    return Release(programs.OPENSEARCH_SECURITY_NEAREST, distribution, plugins)


def cat_plugins(client: Client) -> set[str]:
    """The plugins the node reports (`_cat/plugins`)."""
    return {entry["component"] for entry in client.get("/_cat/plugins?format=json").json()}


def setting_lines(process: OpenSearchNode) -> list[str]:
    """What the node said about a setting: deprecated (the deprecation log) or unknown (the console)."""
    said = [*process.deprecations(), *process.log_lines(r"unknown setting", r"illegal_argument_exception.*setting")]
    return [line for line in said if "setting" in line.lower()]
