"""NGINX ingress: a host-network DaemonSet on ports 80/443 of the host, no LoadBalancer."""

from __future__ import annotations

from tools.engine import Rendering


def test_controller_runs_on_the_host_network_as_a_daemonset(any_stack: Rendering) -> None:
    release = any_stack.release("ingress-nginx")
    controller = release.inputs["values"]["controller"]
    assert release.inputs["chart"] == "ingress-nginx"
    assert release.inputs["version"] == "4.9.0"
    assert release.inputs["namespace"] == "ingress-nginx"
    assert controller["kind"] == "DaemonSet"
    assert controller["hostNetwork"] is True
    assert controller["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert controller["service"]["type"] == "ClusterIP"
    assert controller["ingressClassResource"]["name"] == "nginx"


def test_metrics_are_on_and_the_controller_is_sized(any_stack: Rendering) -> None:
    controller = any_stack.release("ingress-nginx").inputs["values"]["controller"]
    assert controller["metrics"]["enabled"] is True
    assert controller["resources"]["requests"] and controller["resources"]["limits"]["memory"]
