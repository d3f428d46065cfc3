"""The NCA-backed evaluator used by the NetworkPolicy tests, checked on its own."""

from __future__ import annotations

from tools.reachability import PodModel, evaluate, parse_connectivity

SAMPLE = """global: cluster has 2 unique endpoints, 1 namespaces
0.0.0.0-255.255.255.255 => a/p2 : All connections
a/p1 => 172.20.40.21 : {protocols:TCP,dst_ports:30001}
a/p2 => a/p1 : {protocols:TCP,dst_ports:80,9500-9502}
a/p2 => a/p1 : {protocols:UDP,dst_ports:53}
a/p1 => b/dns : {protocols:TCP, UDP,dst_ports:53}
Total run time:   0.02 seconds
"""


def test_parser_reads_ranges_lists_protocols_and_ip_blocks() -> None:
    rules = parse_connectivity(SAMPLE)
    assert len(rules) == 5
    dns = next(r for r in rules if r.destination == "b/dns")
    assert dns.protocols == frozenset({"TCP", "UDP"}) and dns.ports == frozenset({53})
    tcp = next(r for r in rules if r.protocols == frozenset({"TCP"}) and r.destination == "a/p1")
    assert tcp.ports == frozenset({80, 9500, 9501, 9502})


def p(name: str, namespace: str = "a") -> PodModel:
    return PodModel(namespace, name, {"app": name})


def deny_all(namespace: str) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def allow(namespace: str, to: str, source: dict, port: int, direction: str = "ingress") -> dict:
    peer_key = "from" if direction == "ingress" else "to"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"allow-{to}-{port}-{direction}", "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {"app": to}},
            "policyTypes": [direction.capitalize()],
            direction: [{peer_key: [source], "ports": [{"port": port, "protocol": "TCP"}]}],
        },
    }


def test_default_deny_blocks_and_a_matching_pair_of_rules_opens_one_port() -> None:
    pods = [p("client"), p("server")]
    policies = [
        deny_all("a"),
        allow("a", "server", {"podSelector": {"matchLabels": {"app": "client"}}}, 8080),
        allow("a", "client", {"podSelector": {"matchLabels": {"app": "server"}}}, 8080, "egress"),
    ]
    reach = evaluate(["a"], pods, policies)
    assert reach.allows("a/client-", "a/server", 8080) is False  # unknown endpoint
    assert reach.allows("a/client", "a/server", 8080)
    assert not reach.allows("a/client", "a/server", 8081)
    assert not reach.allows("a/server", "a/client", 8080)


def test_egress_alone_is_not_enough_when_the_destination_denies_ingress() -> None:
    pods = [p("client"), p("server")]
    policies = [
        deny_all("a"),
        allow("a", "client", {"podSelector": {"matchLabels": {"app": "server"}}}, 8080, "egress"),
    ]
    assert not evaluate(["a"], pods, policies).allows("a/client", "a/server", 8080)


def test_ip_blocks_are_matched_by_address() -> None:
    pods = [p("server")]
    policies = [deny_all("a"), allow("a", "server", {"ipBlock": {"cidr": "192.168.101.196/32"}}, 10901)]
    reach = evaluate(["a"], pods, policies)
    assert reach.allows("192.168.101.196", "a/server", 10901)
    assert not reach.allows("192.168.101.197", "a/server", 10901)


def test_namespace_selectors_use_the_metadata_name_label() -> None:
    pods = [p("client", "b"), p("server")]
    selector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}
    reach = evaluate(["a", "b"], pods, [deny_all("a"), allow("a", "server", selector, 80)])
    assert reach.allows("b/client", "a/server", 80)
    wrong = {"namespaceSelector": {"matchLabels": {"name": "b"}}}  # C13: this label does not exist
    assert not evaluate(["a", "b"], pods, [deny_all("a"), allow("a", "server", wrong, 80)]).allows(
        "b/client", "a/server", 80
    )
