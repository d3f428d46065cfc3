"""tools.reference: where the reference material is looked for, and fetching it from upstream.

The real upstreams (chart repositories, raw.githubusercontent.com) are not reachable from CI, so fetching is
proven against local fakes served over HTTP: a chart repository made by `helm repo index` over real packages
of ../shared/reference, and docs pages in the format of thanos-io/thanos `docs/components/*.md`. What comes
out must be the reference itself.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import versions
from tests.conftest import REFERENCE_MISSING, requires_reference
from tools import helm, reference
from tools.reference import ChartSource, Fetcher, FetchError, Plan, Sources, Subchart
from tools.validators import common

REFERENCE = reference.reference_dir()
"""What fetching must reproduce: the material the checks use (captured before tests move it)."""

requires_shared = requires_reference


# --- local fakes of upstream -----------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test output."""


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on a free local port, from a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def table_entry(name: str, version: str) -> ChartSource:
    return next(c for s in reference.SETS.values() for c in s.charts if (c.name, c.version) == (name, version))


# Renders its CRDs from templates: the chart the quicker tests fetch.
LONGHORN = table_entry("longhorn", "1.5.3")


@pytest.fixture
def helm_path() -> Path:
    path = helm.helm_binary()
    if path is None:
        pytest.skip(helm.INSTALL_HINT)
    return path


@pytest.fixture
def chart_repo(tmp_path: Path, helm_path: Path) -> Iterator[str]:
    """A chart repository (a mirror of all upstream ones) with every package of the shared reference, as
    `helm repo index` describes it."""
    if REFERENCE_MISSING:
        pytest.skip(REFERENCE_MISSING)
    repo = tmp_path / "chart-repo"
    shutil.copytree(REFERENCE / "charts" / "packages", repo)
    subprocess.run(
        [str(helm_path), "repo", "index", str(repo)], check=True, capture_output=True, env=helm._isolated_env(tmp_path)
    )
    with serve(repo) as url:
        yield url


def help_block(component: str, flags: list[str]) -> str:
    """`thanos <component> --help` as kingpin prints it, listing exactly `flags` (a reference list): `--x` and
    `--no-x` become one `--[no-]x`, every flag gets a wrapped description."""
    known = set(flags)
    lines = [f"usage: thanos {component} [<flags>]", "", f"The {component} component.", "", "Flags:"]
    for flag in flags:
        name = flag.removeprefix("--")
        if name.startswith("no-") and f"--{name[3:]}" in known:
            continue  # printed as the `--[no-]` form of its positive flag
        spelled = f"--[no-]{name}" if f"--no-{name}" in known else f"--{name}=VALUE"
        lead = "  -h, " if name == "help" else "      "
        lines += [f"{lead}{spelled}", "                                 What it does, wrapped onto a", "  next line."]
    return "\n".join(lines)


def docs_page(component: str, block: str) -> str:
    """A docs/components page: prose, an example command (not the help), then the help block."""
    return (
        f"---\ntitle: {component}\n---\n\n# {component}\n\nRun it like this:\n\n"
        f"```bash\nthanos {component} \\\n    --log.level=debug\n```\n\n"
        f"## Flags\n\n```$\n{block}\n\n```\n\nMore prose with `--not-a-flag`.\n"
    )


@pytest.fixture
def github_raw(tmp_path: Path) -> Iterator[str]:
    """raw.githubusercontent.com for thanos-io/thanos: a docs page per reference flag list."""
    if REFERENCE_MISSING:
        pytest.skip(REFERENCE_MISSING)
    root = tmp_path / "raw"
    for path in sorted((REFERENCE / "thanos-flags").glob("thanos-*.flags")):
        version, component = path.stem.removeprefix("thanos-").split("-", 1)
        page = root / reference.THANOS_DOCS.format(version=version, component=component)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(docs_page(component, help_block(component, path.read_text().split())))
    root.mkdir(exist_ok=True)
    with serve(root) as url:
        yield url


def quiet_fetcher(dest: Path, sources: Sources, force: bool = False) -> Fetcher:
    return Fetcher(dest, sources, force, say=lambda line: None, complain=lambda line: None)


# --- fetching charts -------------------------------------------------------------------------------


def crd_names(directory: Path) -> set[str]:
    return {
        doc["metadata"]["name"]
        for path in directory.glob("**/*.yaml")
        for doc in yaml.load_all(path.read_bytes(), Loader=reference._loader())
        if isinstance(doc, dict) and doc.get("kind") == reference.CRD_KIND
    }


def crd_documents(directory: Path) -> list[Any]:
    return [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.load_all(path.read_bytes(), Loader=reference._loader())
        if doc is not None
    ]


def test_fetch_reproduces_the_shared_reference(
    tmp_path: Path, chart_repo: str, github_raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything byte for byte (packages, values, crds/ files, flags), except CRDs rendered from templates:
    those are re-serialized, so they are compared as YAML documents."""
    dest = tmp_path / "dest"
    monkeypatch.setenv(reference.CHART_MIRROR_ENV, chart_repo)
    assert reference.main(["fetch", "--dest", str(dest), "--github-raw", github_raw]) == 0
    assert {p.relative_to(dest) for p in shared_items(dest)} == {
        p.relative_to(REFERENCE) for p in shared_items(REFERENCE)
    }
    for expected in sorted(shared_items(REFERENCE)):
        fetched = dest / expected.relative_to(REFERENCE)
        if expected.is_file():
            assert fetched.read_bytes() == expected.read_bytes(), fetched
        else:
            assert sorted(p.name for p in fetched.iterdir()) == sorted(p.name for p in expected.iterdir())
            assert crd_names(fetched) == crd_names(expected), fetched
            assert crd_documents(fetched) == crd_documents(expected), fetched
    rendered = (dest / "crds" / "longhorn-v1.5.3" / "crds.yaml").read_text()
    assert rendered.startswith("---\n# Source: longhorn/templates/crds.yaml\napiVersion: apiextensions.k8s.io/v1\n")


def test_fetch_skips_what_is_there_unless_forced(tmp_path: Path, chart_repo: str) -> None:
    dest, chosen = tmp_path / "dest", Plan(((LONGHORN, "v1.28.0"),), ())
    first = quiet_fetcher(dest, Sources(chart_mirror=chart_repo))
    assert first.run(chosen)
    outputs = {p.relative_to(dest) for p in first.written}
    assert outputs == {Path("charts/packages/longhorn-1.5.3.tgz"), Path("charts/longhorn-1.5.3.values.yaml"),
                       Path("crds/longhorn-v1.5.3")}  # fmt: skip
    again = quiet_fetcher(dest, Sources(chart_mirror="http://127.0.0.1:9/unreachable"))
    assert again.run(chosen), again.failures
    assert (again.written, again.present) == ([], 3)
    forced = quiet_fetcher(dest, Sources(chart_mirror=chart_repo), force=True)
    assert forced.run(chosen)
    assert {p.relative_to(dest) for p in forced.written} == outputs
    assert not list(dest.glob("**/.*partial*"))


def test_a_failed_item_is_one_line_and_exit_1(
    tmp_path: Path,
    chart_repo: str,
    github_raw: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = LONGHORN
    missing = replace(good, version="9.9.9", crds=None)
    small = Plan(((good, "v1.28.0"), (missing, "v1.28.0")), ("v0.42.4",))
    monkeypatch.setattr(reference, "plan", lambda selection: small)
    dest = tmp_path / "dest"
    argv = ["fetch", "--dest", str(dest), "--chart-mirror", chart_repo, "--github-raw", github_raw]
    assert reference.main(argv) == 1
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: longhorn 9.9.9: helm pull longhorn 9.9.9 failed: ")
    assert "Traceback" not in out + err
    assert "fetched charts/packages/longhorn-1.5.3.tgz" in out
    assert "fetched thanos-flags/thanos-v0.42.4-sidecar.flags" in out
    assert out.splitlines()[-1] == f"reference material in {dest}: 9 fetched, 0 already there, 1 failed"


def test_without_failures_the_exit_status_is_0(
    tmp_path: Path, github_raw: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(reference, "plan", lambda selection: Plan((), ("v0.32.5",)))
    monkeypatch.setenv(reference.GITHUB_RAW_ENV, github_raw)
    assert reference.main(["fetch", "--dest", str(tmp_path)]) == 0
    assert reference.main(["fetch", "--dest", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[-1] == f"reference material in {tmp_path}: 0 fetched, 6 already there"


# --- Thanos flags ----------------------------------------------------------------------------------


@requires_shared
def test_fetched_flags_are_the_reference(tmp_path: Path, github_raw: str) -> None:
    fetcher = quiet_fetcher(tmp_path, Sources(github_raw=github_raw))
    assert fetcher.run(Plan((), ("v0.32.5", "v0.42.4"))), fetcher.failures
    expected = sorted((REFERENCE / "thanos-flags").glob("*.flags"))
    assert sorted(p.name for p in (tmp_path / "thanos-flags").iterdir()) == [p.name for p in expected]
    for path in expected:
        assert (tmp_path / "thanos-flags" / path.name).read_bytes() == path.read_bytes(), path.name


# Written in the format of the real pages (kingpin's help, wrapped at 80 columns): v0.32.5 spells a negatable
# flag's negation in its description, later releases print `--[no-]x`. A flag that starts a wrapped line counts
# (the reference lists `--help-long` and `--no-labels.partial-response`), one inside a line does not (it has no
# `--no-query-range.partial-response`). Names keep their underscores: the shared reference's
# `--prometheus.ready` and `--prometheus.get` are `--prometheus.ready_timeout` and
# `--prometheus.get_config_interval`/`_timeout` cut at the `_`.
REAL_FORMAT = """\
usage: thanos sidecar [<flags>]

Sidecar for Prometheus server.

Flags:
  -h, --help                     Show context-sensitive help (also try
                                 --help-long and --help-man).
      --[no-]version             Show application version.
      --log.level=info           Log filtering level.
      --labels.partial-response  Enable partial response for labels requests if
                                 no partial_response param is specified.
                                 --no-labels.partial-response for disabling.
      --query-range.partial-response
                                 Enable partial response for query range
                                 requests if no partial_response param is
                                 specified. --no-query-range.partial-response
                                 for disabling.
      --prometheus.ready_timeout=10m
                                 Maximum time to wait for the Prometheus
                                 instance to start up
      --reloader.rule-dir=RELOADER.RULE-DIR ...
                                 Rule directories for the reloader to refresh
                                 (repeated field).
      --[no-]tsdb.no-lockfile    Do not create lockfile in TSDB data directory.
"""


def test_flags_come_from_the_flags_section_of_the_help_block() -> None:
    assert reference.flags_from_docs(docs_page("sidecar", REAL_FORMAT), "sidecar") == [
        "--help",
        "--help-long",
        "--labels.partial-response",
        "--log.level",
        "--no-labels.partial-response",
        "--no-tsdb.no-lockfile",
        "--no-version",
        "--prometheus.ready_timeout",
        "--query-range.partial-response",
        "--reloader.rule-dir",
        "--tsdb.no-lockfile",
        "--version",
    ]


def test_a_page_without_the_components_help_is_an_error() -> None:
    with pytest.raises(FetchError, match="no `thanos query --help` block"):
        reference.flags_from_docs(docs_page("sidecar", REAL_FORMAT), "query")


def test_a_missing_docs_page_is_one_line(tmp_path: Path) -> None:
    lines: list[str] = []
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as github_raw:
        fetcher = Fetcher(tmp_path, Sources(github_raw=github_raw), say=lambda line: None, complain=lines.append)
        assert not fetcher.run(Plan((), ("v9.9.9",)))
    assert len(lines) == len(reference.THANOS_COMPONENTS)
    assert all(line.startswith("error: thanos v9.9.9 ") and ": HTTP Error 404: " in line for line in lines), lines
    assert lines[0].startswith(f"error: thanos v9.9.9 query: cannot download {github_raw}/thanos-io/thanos/v9.9.9/")
    assert not (tmp_path / "thanos-flags").exists()


# --- packages without the network ----------------------------------------------------------------


def tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_subchart_bundled_as_a_package_reads_like_a_directory(tmp_path: Path) -> None:
    sub = tgz({"sub/Chart.yaml": b"name: sub\nversion: 1.2.3\n", "sub/values.yaml": b"# sub defaults\nx: 1\n"})
    package = tmp_path / "parent-0.1.0.tgz"
    package.write_bytes(tgz({"parent/Chart.yaml": b"name: parent\nversion: 0.1.0\n", "parent/values.yaml": b"a: 1\n",
                             "parent/charts/sub-1.2.3.tgz": sub}))  # fmt: skip
    files = reference.package_files(package)
    assert reference.chart_values(files, "parent") == b"a: 1\n"
    assert reference.bundled_values(files, "parent", Subchart("sub", "1.2.3", "unused")) == b"# sub defaults\nx: 1\n"
    assert reference.bundled_values(files, "parent", Subchart("other", "1.0.0", "unused")) is None
    with pytest.raises(FetchError, match=r"parent bundles sub 1\.2\.3, not 1\.2\.4"):
        reference.bundled_values(files, "parent", Subchart("sub", "1.2.4", "unused"))


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{kind: K, plural: {plural}}}
"""


def test_crds_directories_of_every_chart_and_group_filter() -> None:
    files = {
        "top/Chart.yaml": b"",
        "top/crds/a.yaml": CRD.format(plural="as", group="keep.io").encode(),
        "top/crds/hub.yaml": CRD.format(plural="hubs", group="hub.keep.io").encode(),
        "top/crds/mixed.yaml": (CRD.format(plural="bs", group="keep.io") + "---\n"
                                + CRD.format(plural="cs", group="hub.keep.io")).encode(),
        "top/crds/README.md": b"not yaml",
        "top/charts/sub/Chart.yaml": b"",
        "top/charts/sub/crds/a.yaml": CRD.format(plural="ds", group="keep.io").encode(),
        "top/templates/crds/x.yaml": b"{{ not a crds directory }}",
    }  # fmt: skip
    everything = reference.crd_files(files, ())
    assert sorted(everything) == ["a.yaml", "hub.yaml", "mixed.yaml", "top_charts_sub_crds_a.yaml"]
    kept = reference.crd_files(files, ("keep.io",))
    assert sorted(kept) == ["a.yaml", "mixed.yaml", "top_charts_sub_crds_a.yaml"]
    assert kept["a.yaml"] == files["top/crds/a.yaml"]  # verbatim when the whole file is kept
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(kept["mixed.yaml"])] == ["bs.keep.io"]


# --- where the material is -------------------------------------------------------------------------


@pytest.fixture
def locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(shared, cache), neither existing yet, and no override."""
    shared, cache = tmp_path / "shared" / "reference", tmp_path / "repo" / "reference"
    monkeypatch.setattr(reference, "SHARED_DIR", shared)
    monkeypatch.setattr(reference, "CACHE_DIR", cache)
    monkeypatch.delenv(reference.REFERENCE_ENV, raising=False)
    return shared, cache


def test_reference_dir_resolution_order(
    tmp_path: Path, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, cache = locations
    assert reference.reference_dir() == cache  # nothing anywhere: where `fetch` will put it
    cache.mkdir(parents=True)
    assert reference.reference_dir() == cache
    shared.mkdir(parents=True)
    assert reference.reference_dir() == shared
    monkeypatch.setenv(reference.REFERENCE_ENV, str(tmp_path / "elsewhere"))
    assert reference.reference_dir() == tmp_path / "elsewhere"
    assert common.reference_dir() == tmp_path / "elsewhere"


def test_chart_package_is_looked_up_in_the_cache(locations: tuple[Path, Path]) -> None:
    _, cache = locations
    package = reference.package_path(cache, "tiny", "0.1.0")
    package.parent.mkdir(parents=True)
    package.write_bytes(b"")
    assert helm.chart_package("tiny", "0.1.0") == package
    assert helm.chart_package("tiny", "0.2.0") is None


def test_reference_missing_names_the_fetch_command(
    tmp_path: Path, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cache = locations
    assert reference.reference_missing() == (
        f"reference material missing: {cache} does not exist; run `venv/bin/python -m tools.reference fetch` "
        "(needs network access to the chart repositories and GitHub)"
    )
    monkeypatch.setenv(reference.REFERENCE_ENV, str(tmp_path))
    reason = reference.reference_missing()
    assert reason is not None
    assert reason.startswith(f"reference material incomplete: {tmp_path} lacks charts/packages/")
    assert f"run `venv/bin/python -m tools.reference fetch --dest {tmp_path}`" in reason
    assert "\n" not in reason


@requires_shared
def test_the_shared_reference_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(reference.REFERENCE_ENV, str(REFERENCE))
    assert reference.reference_missing() is None


# --- the table -----------------------------------------------------------------------------------


def shared_items(root: Path) -> set[Path]:
    """What a reference holds, as `expected_paths` names it: files, and CRD directories as a whole."""
    files = {p for p in root.glob("charts/**/*") if p.is_file()} | set(root.glob("thanos-flags/*"))
    return files | set(root.glob("crds/*"))


@requires_shared
def test_the_table_covers_exactly_the_shared_reference() -> None:
    assert set(reference.expected_paths(reference.plan("all"), REFERENCE)) == shared_items(REFERENCE)


def test_every_pinned_version_is_in_the_table() -> None:
    table = {(c.name, c.version): c for s in reference.SETS.values() for c in s.charts}
    for pinned in versions.CHARTS.values():
        assert (pinned.name, pinned.version) in table, f"add {pinned.name} {pinned.version} to tools.reference.SETS"
        assert table[pinned.name, pinned.version].repo == pinned.repo, pinned.name
    assert any(versions.THANOS in s.thanos for s in reference.SETS.values())


def test_sets_select_their_versions_plus_the_pinned_ones() -> None:
    pinned = {(c.name, c.version) for c in versions.CHARTS.values()}
    for name, chosen in reference.SETS.items():
        selected = reference.plan(name)
        table = {(c.name, c.version) for c in chosen.charts}
        assert {(c.name, c.version) for c, _ in selected.charts} == table | pinned
        assert set(selected.thanos) == set(chosen.thanos) | {versions.THANOS}
    everything = reference.plan("all")
    assert len(everything.charts) == len({(c.name, c.version) for s in reference.SETS.values() for c in s.charts})
    assert all(source.values for source, _ in everything.charts if (source.name, source.version) in pinned)


def test_the_override_variable_is_the_validators() -> None:
    assert reference.REFERENCE_ENV == common.REFERENCE_ENV
