"""Hosts of our own for the integration suite: network namespaces on one private bridge, no route out.

The fixture stacks place their clusters and object store on 10.20.0.0/24 (`tests/stacks/`). The
suite makes each of those addresses a network namespace of its own, joined by one bridge; the
machine running the tests (the operator's machine, in the platform's terms) takes `GATEWAY` on
that bridge, so it reaches exactly those hosts. No namespace has a default route: a server that
tried to reach anything else would get "network unreachable", never the internet.

    with Lan() as lan:
        central = lan.host("hub", "10.20.0.10")
        server = central.popen(["thanos", "query", ...])

Needs root (or CAP_NET_ADMIN) and `ip` from iproute2. `Lan.unavailable()` says why not, or None.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

PREFIX = "tmc"
SUBNET = ipaddress.ip_network("10.20.0.0/24")
GATEWAY = "10.20.0.1"
BRIDGE = f"{PREFIX}-lan"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass
class Host:
    """One namespace: a host of the fixture topology, with its address on the bridge."""

    name: str
    address: str
    netns: str
    link: str
    """Its end of the veth pair, on the bridge."""

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
        options.setdefault("capture_output", True)
        options.setdefault("text", True)
        options.setdefault("timeout", 120)
        return subprocess.run(self.command(argv), check=options.pop("check", True), **options)

    def popen(self, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.command(argv), **options)

    def add_address(self, address: str) -> None:
        """A second address on this host (a host with two services on different IPs)."""
        _ip("-n", self.netns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")


@dataclass
class Lan:
    """The bridge and the namespaces on it; everything is removed on exit (and stale leftovers on entry)."""

    hosts: dict[str, Host] = field(default_factory=dict)

    @staticmethod
    def unavailable() -> str | None:
        if shutil.which("ip") is None:
            return "the `ip` command (iproute2) is needed to create network namespaces"
        if os.geteuid() != 0:
            return "network namespaces need root (run the integration suite as root, as CI does)"
        for route in _ip("-4", "route", "show").stdout.splitlines():
            destination = route.split()[0]
            if destination != "default" and "/" in destination and f"dev {BRIDGE}" not in route:
                network = ipaddress.ip_network(destination, strict=False)
                if network.overlaps(SUBNET):
                    return f"this machine already routes {network}, which the fixture topology ({SUBNET}) needs"
        return None

    def __enter__(self) -> Lan:
        self.remove_leftovers()
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def host(self, name: str, address: str) -> Host:
        if ipaddress.ip_address(address) not in SUBNET or address == GATEWAY:
            raise ValueError(f"{address} is not a host address of {SUBNET}")
        if name in self.hosts:
            return self.hosts[name]
        netns = f"{PREFIX}-{name}"
        outside = f"{PREFIX}{len(self.hosts)}-{name}"[:15]
        _ip("netns", "add", netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("link", "set", outside, "master", BRIDGE, "up")
        _ip("-n", netns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        host = self.hosts[name] = Host(name, address, netns, outside)
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            _ip("link", "del", host.link, check=False)
            _ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
        _ip("link", "del", BRIDGE, check=False)

    @staticmethod
    def remove_leftovers() -> None:
        """Namespaces and the bridge of an earlier run that was killed before it could clean up."""
        for line in _ip("netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"{PREFIX}-"):
                _ip("netns", "del", name, check=False)
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            link = line.split(":")[1].strip().split("@")[0] if line.count(":") >= 2 else ""
            if link.startswith(PREFIX):
                _ip("link", "del", link, check=False)
