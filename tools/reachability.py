"""Evaluate NetworkPolicies with np-guard's network-config-analyzer (NCA), a maintained evaluator.

We hand NCA the namespaces, one Pod per workload (with the labels the pod really gets) and the
rendered NetworkPolicies; it answers with the connectivity map, one allowed connection a line:

    monitoring/grafana-0 => monitoring/prometheus-0 : {protocols:TCP,dst_ports:9090}
    192.168.101.196 => monitoring/prometheus-0 : {protocols:TCP,dst_ports:10901}

`Connectivity.allows(source, destination, port)` answers from that map. A source or destination
is `namespace/pod` or an IP address (host-network traffic, external hosts).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")
_CONNECTION = re.compile(r"\{protocols:(?P<protocols>[A-Z, ]+?)(?:,dst_ports:(?P<ports>[\d,\-]+))?\}")


@dataclass(frozen=True)
class PodModel:
    """A pod as NetworkPolicies see it: where it runs and which labels it carries."""

    namespace: str
    name: str
    labels: dict[str, str]

    @property
    def endpoint(self) -> str:
        return f"{self.namespace}/{self.name}"

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {"containers": [{"name": "main", "image": "example"}]},
        }


@dataclass(frozen=True)
class Rule:
    """One line of NCA's map: source and destination endpoints, protocols and ports (None: all)."""

    source: str
    destination: str
    protocols: frozenset[str] | None
    ports: frozenset[int] | None

    def covers(self, endpoint: str, pattern: str) -> bool:
        if "/" in pattern and not _is_ip_pattern(pattern):
            return endpoint == pattern
        return _ip_in(endpoint, pattern)


def _is_ip_pattern(pattern: str) -> bool:
    first = pattern.split("-")[0].split("/")[0]
    try:
        ipaddress.ip_address(first)
        return True
    except ValueError:
        return False


def _ip_in(endpoint: str, pattern: str) -> bool:
    try:
        address = ipaddress.ip_address(endpoint)
    except ValueError:
        return False
    if "/" in pattern:
        return address in ipaddress.ip_network(pattern, strict=False)
    low_text, _, high_text = pattern.partition("-")
    low, high = ipaddress.ip_address(low_text), ipaddress.ip_address(high_text or low_text)
    if not low.version == high.version == address.version:
        return False
    return int(low) <= int(address) <= int(high)


def _ports(text: str | None) -> frozenset[int] | None:
    if text is None:
        return None
    ports: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return frozenset(ports)


def parse_connectivity(text: str) -> list[Rule]:
    """Rules from NCA's `txt_no_fw_rules` output (lines that are not connections are skipped)."""
    rules = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        conn = match["conn"].strip()
        if conn == "All connections":
            rules.append(Rule(match["src"], match["dst"], None, None))
            continue
        for part in _CONNECTION.finditer(conn):
            protocols = frozenset(protocol.strip() for protocol in part["protocols"].split(","))
            rules.append(Rule(match["src"], match["dst"], protocols, _ports(part["ports"])))
    return rules


@dataclass
class Connectivity:
    rules: list[Rule]

    def allows(self, source: str, destination: str, port: int, protocol: str = "TCP") -> bool:
        for rule in self.rules:
            if not (rule.covers(source, rule.source) and rule.covers(destination, rule.destination)):
                continue
            if rule.protocols is not None and protocol not in rule.protocols:
                continue
            if rule.ports is None or port in rule.ports:
                return True
        return False


def namespace_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
    }


def evaluate(namespaces: list[str], pods: list[PodModel], policies: list[dict[str, Any]]) -> Connectivity:
    """Run NCA over the given objects and return the connectivity it computes."""
    documents = [namespace_manifest(name) for name in namespaces] + [pod.manifest() for pod in pods] + policies
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from nca.nca_cli import nca_main; sys.exit(nca_main(sys.argv[1:]))",
                "--connectivity",
                str(path),
                "--resource_list",
                str(path),
                "--output_format",
                "txt_no_fw_rules",
                "--output_endpoints",
                "pods",
                "--return_0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise RuntimeError(f"network-config-analyzer failed: {result.stderr or result.stdout}")
    return Connectivity(parse_connectivity(result.stdout))
