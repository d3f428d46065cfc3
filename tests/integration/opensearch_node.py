"""A real OpenSearch node for the integration suite: assembled from Maven Central, started from our files.

An install is the distribution without plugins (`org.opensearch.distribution.integ-test-zip`) with
plugin zips installed by OpenSearch's own `bin/opensearch-plugin install --batch`, in the order
given (index-management extends job-scheduler: job-scheduler first). It is assembled once and
cached under `~/.cache/thanos-multi-cluster-integration/opensearch/`, keyed by the archives' digests.

Maven Central carries repository-s3 as its jar and pom only, not as the plugin zip the image's
`opensearch-plugin install repository-s3` downloads: `repository_s3_plugin` lays that zip out from
the jar, the jars its pom lists (each pinned, transitive ones excluded: the bundle exactly), and the
two files the zip adds, the descriptor and the policy.

A node gets a directory of its own: the install linked in (`home/`), a copy of its config directory
(`OPENSEARCH_PATH_CONF`) with the caller's files written into it (`opensearch.yml`,
`opensearch-security/internal_users.yml`, `certs/tls.crt`, ...), the keystore entries added the way the
chart's keystore init container adds them (`opensearch-keystore add-file`), and data, logs and tmp.
OpenSearch refuses to run as root, so it runs as the chart's user (uid 1000), after a prefix the
caller chooses (`Host.command`'s `ip netns exec <ns>`):

    install = assemble(Release("3.6.0", distribution, (job_scheduler, repository_s3)))
    with OpenSearchNode(install, workdir, {"opensearch.yml": yml}, prefix=host.command([])) as node:
        node.start(timeout=300)
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.integration.binaries import (
    Blocked,
    MavenArtifact,
    build_seconds_left,
    cache_root,
    maven_error,
    out_of_time,
    tail,
)

JAVA_HOME = Path(os.environ.get("OPENSEARCH_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
"""OpenSearch 3 needs Java 21 or newer; the integ-test zip bundles none."""
RUN_AS = 1000
"""The chart's user and group (`components/opensearch.py` `container_security`); OpenSearch refuses root."""
DEFAULT_JAVA_OPTS = "-Xms512m -Xmx512m"
TOOL_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 60


def java_environment(config_dir: Path) -> dict[str, str]:
    """What OpenSearch's scripts (`bin/opensearch`, `-plugin`, `-keystore`) read to find Java and the config."""
    return {
        **os.environ,
        "OPENSEARCH_JAVA_HOME": str(JAVA_HOME),
        "JAVA_HOME": str(JAVA_HOME),
        "OPENSEARCH_PATH_CONF": str(config_dir),
    }


def run_tool(
    argv: Sequence[str | Path], config_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One of OpenSearch's command-line tools; raises with its output when it fails."""
    result = subprocess.run(
        [str(part) for part in argv],
        input=stdin,
        env=java_environment(config_dir),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {argv[1]} failed: {tail(result.stdout + result.stderr)}")
    return result


# --- repository-s3's plugin zip, from its jar and pom --------------------------------------------

REPOSITORY_S3_CLASS = "org.opensearch.repositories.s3.S3RepositoryPlugin"
REPOSITORY_S3_DESCRIPTION = "The S3 repository plugin adds S3 repositories"
# The grants the upstream plugin's `plugin-security.policy` gives it (the zip that carries that file is
# not published): reflection the AWS SDK needs, outbound connections to the S3 endpoint, the proxy
# authenticator, the AWS SDK's property lookups, and reading the config directory.
REPOSITORY_S3_POLICY = """grant {
  permission java.lang.RuntimePermission "accessDeclaredMembers";
  permission java.lang.RuntimePermission "getClassLoader";
  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";
  permission java.net.SocketPermission "*", "connect";
  permission java.net.NetPermission "setDefaultAuthenticator";
  permission java.util.PropertyPermission "opensearch.allow_insecure_settings", "read,write";
  permission java.util.PropertyPermission "aws.sharedCredentialsFile", "read,write";
  permission java.util.PropertyPermission "aws.configFile", "read,write";
  permission java.util.PropertyPermission "opensearch.path.conf", "read,write";
  permission java.io.FilePermission "config", "read";
};
"""


def plugin_descriptor(name: str, description: str, version: str, classname: str, opensearch_version: str) -> str:
    """`plugin-descriptor.properties`, the fields `opensearch-plugin install` and the node read."""
    fields = {
        "description": description,
        "version": version,
        "name": name,
        "classname": classname,
        "java.version": "21",
        "opensearch.version": opensearch_version,
        "custom.foldername": "",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def bundle_pom(jar: MavenArtifact) -> str:
    """A pom that depends on the plugin's jar alone: `copy-dependencies` then yields the bundle's jars."""
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>local.integration</groupId><artifactId>{jar.artifact}-bundle</artifactId>"
        "<version>1</version><packaging>pom</packaging><dependencies><dependency>"
        f"<groupId>{jar.group}</groupId><artifactId>{jar.artifact}</artifactId><version>{jar.version}</version>"
        "</dependency></dependencies></project>"
    )


def bundle_jars(jar: MavenArtifact, scratch: Path) -> list[Path] | Blocked:
    """The plugin's jar and the runtime dependencies its pom lists, from Maven Central."""
    (scratch / "pom.xml").write_text(bundle_pom(jar))
    command = [
        "mvn", "-B", "-q", "-Dstyle.color=never", "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={scratch / 'lib'}",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, cwd=scratch, capture_output=True, text=True, timeout=max(build_seconds_left(), 1), check=False
        )
    except subprocess.TimeoutExpired:
        return Blocked(jar.name, jar.coordinates, out_of_time("mvn"))
    if result.returncode != 0:
        why = maven_error(result.stdout + result.stderr)
        return Blocked(jar.name, jar.coordinates, f"mvn dependency:copy-dependencies failed: {why}")
    return sorted((scratch / "lib").glob("*.jar"))


def artifact_name(jar: str) -> str:
    """`jackson-core-2.21.2.jar` -> `jackson-core`."""
    match = re.match(r"(.+?)-\d[^/]*\.jar$", Path(jar).name)
    return match.group(1) if match else Path(jar).stem


def distribution_jars(distribution: Path) -> set[str]:
    """The artifacts on the server's own classpath (`lib/`), by name."""
    with zipfile.ZipFile(distribution) as archive:
        names = archive.namelist()
    return {artifact_name(name) for name in names if re.fullmatch(r"[^/]+/lib/[^/]+\.jar", name)}


def repository_s3_plugin(jar: MavenArtifact, distribution: Path, opensearch_version: str) -> Path | Blocked:
    """repository-s3's plugin zip, laid out as upstream's build does: jars at the top, descriptor, policy.

    Like upstream's bundle, it leaves out what the server already has on its classpath (jackson-core,
    joda-time, ...: the pom lists them, the server provides them; both copies would be "jar hell")."""
    target = cache_root() / "opensearch" / "plugins" / f"{jar.artifact}-{jar.version}.zip"
    if target.exists():
        return target
    if shutil.which("mvn") is None:
        return Blocked(jar.name, jar.coordinates, "no `mvn` command on this machine")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        jars = bundle_jars(jar, Path(scratch))
        if isinstance(jars, Blocked):
            return jars
        own = Path(scratch) / "lib" / f"{jar.artifact}-{jar.version}.jar"
        class_file = REPOSITORY_S3_CLASS.replace(".", "/") + ".class"
        if own not in jars or class_file not in zipfile.ZipFile(own).namelist():
            return Blocked(jar.name, jar.coordinates, f"the jar lacks {REPOSITORY_S3_CLASS}")
        partial = Path(scratch) / target.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            descriptor = plugin_descriptor(
                jar.artifact, REPOSITORY_S3_DESCRIPTION, jar.version, REPOSITORY_S3_CLASS, opensearch_version
            )
            archive.writestr("plugin-descriptor.properties", descriptor)
            archive.writestr("plugin-security.policy", REPOSITORY_S3_POLICY)
            provided = distribution_jars(distribution)
            for path in jars:
                if artifact_name(path.name) not in provided:
                    archive.write(path, path.name)
        partial.replace(target)
    return target


def distribution_modules(distribution: Path) -> set[str]:
    """The modules a distribution zip carries (the integ-test zip's set differs between releases:
    3.4.0's has transport-grpc and transport-netty4 only, 3.6.0's has 22)."""
    with zipfile.ZipFile(distribution) as archive:
        names = archive.namelist()
    return {match.group(1) for name in names if (match := re.fullmatch(r"[^/]+/modules/([^/]+)/", name))}


def patched_plugin(plugin: Path, optional: Iterable[str], jars: Iterable[Path] = ()) -> Path:
    """A copy of a plugin zip whose descriptor marks the extended plugins `optional` optional, with
    `jars` added beside its own: for a module the distribution lacks.

    `opensearch-plugin install` refuses a plugin whose required extended plugin is missing, and the
    plugin then also misses the jars that module would have lent it (its parent class loader). The
    plugin's own code is unchanged; its service files for the missing module's SPI are never read."""
    relaxed, extra = sorted(set(optional)), sorted(set(jars))
    suffix = "-".join([*relaxed, *(jar.stem for jar in extra)])
    target = cache_root() / "opensearch" / "plugins" / f"{plugin.stem}-patched-{suffix}.zip"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(plugin) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "plugin-descriptor.properties":
                content = relax_descriptor(content.decode(), relaxed).encode()
            copy.writestr(info, content)
        for jar in extra:
            copy.write(jar, jar.name)
    partial.replace(target)
    return target


def relax_descriptor(descriptor: str, names: Sequence[str]) -> str:
    def relax(line: str) -> str:
        key, _, value = line.partition("=")
        if key.strip() != "extended.plugins":
            return line
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        marked = [f"{entry};optional=true" if entry in names else entry for entry in entries]
        return f"{key}={','.join(marked)}"

    return "\n".join(relax(line) for line in descriptor.split("\n"))


# --- assembled installs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """What one install is made of: the distribution and the plugin zips, in install order."""

    version: str
    distribution: Path
    plugins: tuple[Path, ...] = ()

    def digest(self) -> str:
        hasher = hashlib.sha256(str(JAVA_HOME).encode())
        for path in (self.distribution, *self.plugins):
            hasher.update(path.name.encode())
            with path.open("rb") as archive:
                hasher.update(hashlib.file_digest(archive, "sha256").digest())
        return hasher.hexdigest()[:12]

    def path(self) -> Path:
        return cache_root() / "opensearch" / "installs" / f"opensearch-{self.version}-{self.digest()}"


def unzip(archive: Path, into: Path) -> None:
    """Extract keeping the files' modes (`zipfile` alone drops the scripts' execute bits)."""
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            extracted = Path(opened.extract(info, into))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                extracted.chmod(mode)


def install_plugin(home: Path, plugin: Path) -> None:
    run_tool([home / "bin" / "opensearch-plugin", "install", "--batch", plugin.resolve().as_uri()], home / "config")


def assemble(release: Release) -> Path:
    """The install of `release`, assembled once (a partial one is never left where it is looked for)."""
    target = release.path()
    if (target / "bin" / "opensearch").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        unzip(release.distribution, Path(scratch))
        (home,) = (path for path in Path(scratch).iterdir() if path.is_dir())
        for plugin in release.plugins:
            install_plugin(home, plugin)
        try:
            home.rename(target)
        except OSError:
            if not (target / "bin" / "opensearch").exists():
                raise
    return target


def installed_plugins(install: Path) -> list[str]:
    return sorted(path.name for path in (install / "plugins").iterdir() if path.is_dir())


# --- a node ----------------------------------------------------------------------------------


def link_tree(source: Path, destination: Path) -> None:
    """The install, hard-linked (read-only use; the cache under /root is not readable by uid 1000)."""

    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, destination, symlinks=True, copy_function=link)


def jvm_options_for(text: str, logs: Path, data: Path) -> str:
    """The install's `jvm.options` with its paths relative to the install (GC log, error file, heap
    dumps) moved into the node's own directories, so nodes never write into the shared install."""
    text = re.sub(r"(?<=[=:])logs/", f"{logs}/", text)
    return re.sub(r"HeapDumpPath=data\b", f"HeapDumpPath={data}", text)


def chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(Path(root) / name, uid, uid, follow_symlinks=False)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class OpenSearchNode:
    """One OpenSearch process: its own config, keystore, data and logs under `workdir`."""

    install: Path
    workdir: Path
    files: Mapping[str, str]
    """Config-relative path -> content: `opensearch.yml`, `opensearch-security/internal_users.yml`, `certs/...`."""
    keystore: Mapping[str, str] = field(default_factory=dict)
    java_opts: str = DEFAULT_JAVA_OPTS
    prefix: Sequence[str] = ()
    """Runs before the command, e.g. `["ip", "netns", "exec", name]`."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """`-E` settings: what the chart passes through the environment (`node.name`, `discovery.type`)
    and a test's own overrides; these take precedence over `opensearch.yml`."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment (the chart's `extraEnvs`)."""
    address: str = "127.0.0.1"
    """Where the default readiness check connects: the node's HTTP address, as the caller reaches it."""
    http_port: int = 9200
    file_mode: int = 0o440
    """Of the written files: the chart mounts Secrets with `defaultMode: 0440`."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def config_dir(self) -> Path:
        return self.workdir / "config"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def output_path(self) -> Path:
        """stdout and stderr: the console log (every log line, and what the JVM prints before log4j)."""
        return self.workdir / "opensearch.out"

    def prepare(self) -> None:
        """The node's directories, config files and keystore (done once; `start` calls it)."""
        if self.config_dir.exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        closed = [path for path in self.workdir.resolve().parents if not path.stat().st_mode & 0o001]
        if os.geteuid() == 0 and closed:
            raise PermissionError(f"uid {RUN_AS} cannot enter {closed[0]} (mode 0o755 or put the node elsewhere)")
        link_tree(self.install, self.home)
        shutil.copytree(self.install / "config", self.config_dir)
        for directory in (self.data_dir, self.logs_dir, self.workdir / "tmp"):
            directory.mkdir()
        jvm_options = self.config_dir / "jvm.options"
        jvm_options.write_text(jvm_options_for(jvm_options.read_text(), self.logs_dir, self.data_dir))
        for relative, content in self.files.items():
            path = self.config_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.write_text(content)
            path.chmod(self.file_mode)
        self._keystore()
        if os.geteuid() == 0:
            for directory in (self.config_dir, self.data_dir, self.logs_dir, self.workdir / "tmp"):
                chown_tree(directory, RUN_AS)

    def _keystore(self) -> None:
        """As the chart's keystore init container: `create`, then `add-file <key> <file>` per Secret key."""
        if not self.keystore:
            return
        tool = self.home / "bin" / "opensearch-keystore"
        run_tool([tool, "create"], self.config_dir)
        with tempfile.TemporaryDirectory(dir=self.workdir) as secrets:
            for key, value in self.keystore.items():
                source = Path(secrets) / key
                source.write_text(value)
                run_tool([tool, "add-file", "--force", key, source], self.config_dir)

    def command(self) -> list[str]:
        user = (
            ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", "--"] if os.geteuid() == 0 else []
        )
        paths = {"path.data": str(self.data_dir), "path.logs": str(self.logs_dir)}
        flags = [f"-E{key}={value}" for key, value in {**paths, **self.settings}.items()]
        return [*self.prefix, *user, str(self.home / "bin" / "opensearch"), *flags]

    def start(self, timeout: float = 300, ready: Callable[[], bool] | None = None) -> None:
        """Starts the node and waits until `ready` (by default: its HTTP port accepts connections)."""
        self.prepare()
        environment = {
            **java_environment(self.config_dir),
            "OPENSEARCH_JAVA_OPTS": self.java_opts,
            "OPENSEARCH_TMPDIR": str(self.workdir / "tmp"),
            "HOME": str(self.workdir),
            **self.environment,
        }
        with self.output_path.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(), env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        check = ready or (lambda: port_open(self.address, self.http_port))
        try:
            wait_for(lambda: self._alive_or_raise() and check(), timeout, "OpenSearch did not become ready")
        except BaseException:
            self.stop()
            raise

    def _alive_or_raise(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"OpenSearch exited with {self.process.returncode}:\n{self.log_tail()}")
        return True

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM (OpenSearch closes its indices and exits), SIGKILL to the group after `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        return self.process.returncode

    def log(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def log_lines(self, *patterns: str) -> list[str]:
        """The log lines matching any of the regular expressions (case-insensitive)."""
        pattern = re.compile("|".join(patterns), re.IGNORECASE)
        return [line for line in self.log().splitlines() if pattern.search(line)]

    def deprecations(self) -> list[str]:
        """The deprecation log (`<cluster.name>_deprecation.log`): OpenSearch writes deprecation
        warnings there only, not to the console."""
        lines: list[str] = []
        for path in sorted(self.logs_dir.glob("*_deprecation.log")):
            lines += path.read_text(errors="replace").splitlines()
        return lines

    def __enter__(self) -> OpenSearchNode:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# --- a client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode(errors="replace")


class _VerifiedConnection(http.client.HTTPSConnection):
    """HTTPS to an address, verifying the certificate for another name (the node's `localhost`)."""

    def __init__(self, address: str, port: int, tls_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self._tls_name = tls_name
        self._verifying = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._verifying.wrap_socket(raw, server_hostname=self._tls_name)


@dataclass(frozen=True)
class Client:
    """The REST API of one node: HTTPS verified against `ca_pem` for `tls_name`, or plain HTTP."""

    address: str
    port: int = 9200
    ca_pem: str | None = None
    tls_name: str | None = None
    username: str | None = None
    password: str | None = None
    timeout: float = 30

    def connection(self) -> http.client.HTTPConnection:
        if self.ca_pem is None:
            return http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        context = ssl.create_default_context(cadata=self.ca_pem)
        return _VerifiedConnection(self.address, self.port, self.tls_name or self.address, context, self.timeout)

    def request(self, method: str, path: str, body: Any = None) -> Response:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        payload = None if body is None else json.dumps(body).encode()
        connection = self.connection()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return Response(response.status, response.read())
        finally:
            connection.close()

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def peer_certificate(self) -> bytes:
        """The DER certificate the node serves (after verification)."""
        connection = self.connection()
        try:
            connection.connect()
            assert isinstance(connection.sock, ssl.SSLSocket)
            return connection.sock.getpeercert(binary_form=True) or b""
        finally:
            connection.close()

    def answers(self, path: str = "/", expect: Iterable[int] = (200,)) -> bool:
        try:
            return self.get(path).status in set(expect)
        except (OSError, http.client.HTTPException):
            return False
