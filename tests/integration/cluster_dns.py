"""A cluster's DNS for the integration suite: the SRV and A records kube-dns serves for Services.

Thanos Query's endpoint file names the local sidecar and the Store Gateway by DNS SRV of their
headless Services (`dnssrv+_grpc._tcp.<service>.<namespace>.svc.cluster.local`). This answers
those names the way kube-dns (CoreDNS) does for a headless Service: one SRV record per named port
(`_<port>._<protocol>.<service>...`) pointing at each ready pod (`<a-b-c-d>.<service>...`), and A
records for those targets and for the Service name. Everything else gets NXDOMAIN, so no query
ever goes anywhere else.

It runs as its own process inside a host's network namespace, on loopback only:

    python -m tests.integration.cluster_dns 127.0.0.1 53 '{"_grpc._tcp.thanos-store...": ...}'

`records(services, pods)` builds the answer table from rendered Service objects and the pods the
suite runs (their labels and addresses), so a port name or selector that does not match the pods
resolves to nothing, as it would in the cluster.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
TYPE_A, TYPE_SRV = 1, 33
TTL = 5


@dataclass(frozen=True)
class RunningPod:
    """A pod the suite runs: its labels (from the rendered template) and its address (a namespace's)."""

    namespace: str
    labels: Mapping[str, str]
    address: str


def records(services: Iterable[Mapping[str, Any]], pods: Iterable[RunningPod]) -> dict[str, Any]:
    """{name: {"A": [ip...]} | {"SRV": [[port, target]...]}} for the headless Services among `services`."""
    table: dict[str, Any] = {}
    pods = list(pods)
    for service in services:
        spec, metadata = service.get("spec") or {}, service.get("metadata") or {}
        if spec.get("clusterIP") != "None" or not spec.get("selector"):
            continue
        namespace = metadata.get("namespace") or "default"
        fqdn = f"{metadata['name']}.{namespace}.svc.{CLUSTER_DOMAIN}"
        selected = [
            pod
            for pod in pods
            if pod.namespace == namespace and all(pod.labels.get(k) == v for k, v in spec["selector"].items())
        ]
        if not selected:
            continue
        targets = {f"{pod.address.replace('.', '-')}.{fqdn}": pod.address for pod in selected}
        table[fqdn] = {"A": sorted(targets.values())}
        for target, address in targets.items():
            table[target] = {"A": [address]}
        for port in spec.get("ports") or []:
            if port.get("name"):
                name = f"_{port['name']}._{str(port.get('protocol') or 'TCP').lower()}.{fqdn}"
                table[name] = {"SRV": sorted([int(port["port"]), target] for target in targets)}
    return table


# --- the wire format (RFC 1035, RFC 2782) -------------------------------------------------------


def _name(wire: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        length = wire[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        if length & 0xC0:
            raise ValueError("compressed names are not expected in a question")
        labels.append(wire[offset + 1 : offset + 1 + length].decode("ascii").lower())
        offset += 1 + length


def _encode(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split(".")) + b"\0"


def _record(name: str, rtype: int, rdata: bytes) -> bytes:
    return _encode(name) + struct.pack("!HHIH", rtype, 1, TTL, len(rdata)) + rdata


def answer(query: bytes, table: Mapping[str, Any]) -> bytes:
    """The response to one query: the records of `table`, NOERROR with none for another type of a
    known name, NXDOMAIN for an unknown name."""
    ident, flags = struct.unpack("!HH", query[:4])
    name, end = _name(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[end : end + 4])
    question = query[12 : end + 4]
    entry = table.get(name.rstrip("."))
    answers: list[bytes] = []
    if entry and qtype == TYPE_A:
        answers = [_record(name, TYPE_A, ipaddress.IPv4Address(ip).packed) for ip in entry.get("A", [])]
    elif entry and qtype == TYPE_SRV:
        answers = [
            _record(name, TYPE_SRV, struct.pack("!HHH", 0, 100, port) + _encode(target))
            for port, target in entry.get("SRV", [])
        ]
    rcode = 0 if entry else 3
    response_flags = 0x8000 | (flags & 0x0100) | 0x0400 | rcode  # response, RD copied, authoritative
    header = struct.pack("!HHHHHH", ident, response_flags, 1, len(answers), 0, 0)
    return header + question + b"".join(answers)


def serve(address: str, port: int, table: Mapping[str, Any]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, port))
        print(f"cluster-dns listening on {address}:{port} with {len(table)} names", flush=True)
        while True:
            query, client = sock.recvfrom(4096)
            try:
                sock.sendto(answer(query, table), client)
            except (ValueError, struct.error, UnicodeDecodeError) as error:
                print(f"cluster-dns: unreadable query from {client}: {error}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
