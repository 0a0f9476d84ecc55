"""No address the sandbox uses is routed anywhere but loopback or its own bridge (`ip route get`), pod network
namespaces have no default route, and the addresses do what a cluster's do: pod IPs answer, the LoadBalancer
address and the NodePort reach the pods, a ClusterIP does not (no kube-proxy)."""

import concurrent.futures
import ipaddress
import json
import os
import socket
import subprocess

import pytest
import requests
from cluster_harness import ECHO_NAMESPACE, HTTP_PORT, kubectl

from llmd_sandbox.netns import PodNetwork


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


def route_get(address: str, netns: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *(["-n", netns] if netns else []), "-j", "route", "get", address],
                          capture_output=True, text=True, timeout=10, check=False)


def route(address: str) -> dict:
    result = route_get(address)
    assert result.returncode == 0, result.stderr
    [found] = json.loads(result.stdout)
    return found


def addresses(echo) -> dict[str, list[str]]:
    """Every kind of address the sandbox uses, with an address of each range nobody has taken too."""
    state = echo.state
    pods = ipaddress.ip_network(state["pod_cidr"])
    services = ipaddress.ip_network(state["service_cidr"])
    cluster_ip = json.loads(kubectl(echo.sandbox, "get", "service", "-n", ECHO_NAMESPACE, "echo", "-o", "json").stdout)[
        "spec"]["clusterIP"]
    return {
        "pod": [pod["ip"] for pod in state["pods"].values()] + [str(pods.broadcast_address - 1)],
        "service": [cluster_ip, str(next(services.hosts())), str(services.broadcast_address - 1)],
        "node": [state["node_ip"]],
        "external": sorted(set(state["external"].values()) - {state["node_ip"]}),
        "api": [state["api_server"].split("//")[1].rsplit(":", 1)[0]],
    }


def test_every_range_stays_on_loopback_or_the_bridge(echo):
    bridge = echo.state["bridge"]
    found = addresses(echo)
    assert found["external"] and all(ip.startswith("127.0.0.") for ip in found["external"])
    assert ipaddress.ip_address(found["service"][0]) in ipaddress.ip_network(echo.state["service_cidr"])
    for kind, ips in found.items():
        for ip in ips:
            answer = route(ip)
            assert "gateway" not in answer, f"{kind} address {ip} is routed via {answer['gateway']}"
            if kind in ("pod", "service"):
                assert answer["dev"] == bridge, f"{kind} address {ip}: {answer}"
            else:  # the node's address is on the bridge, so local: delivered on lo as 127.0.0.X are
                assert (answer.get("type"), answer["dev"]) == ("local", "lo"), f"{kind} address {ip}: {answer}"


def test_the_bridge_holds_the_node_address_and_the_pods_veths(echo):
    state = echo.state
    shown = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", state["bridge"]], capture_output=True,
                                      text=True, check=True).stdout)
    assert [(a["local"], a["prefixlen"]) for a in shown[0]["addr_info"] if a["family"] == "inet"] == [
        (state["node_ip"], 24)]
    members = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", state["bridge"]], capture_output=True,
                                        text=True, check=True).stdout)
    assert len(members) == len(state["pods"])


def test_a_pod_namespace_has_its_address_and_no_default_route(echo):
    pod = echo.pod()
    entry = echo.state["pods"][f"{ECHO_NAMESPACE}/{pod}"]
    netns = entry["netns"]
    shown = json.loads(subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "dev", "eth0"], capture_output=True,
                                      text=True, check=True).stdout)
    assert [a["local"] for a in shown[0]["addr_info"] if a["family"] == "inet"] == [entry["ip"]]
    default = subprocess.run(["ip", "-n", netns, "route", "show", "default"], capture_output=True, text=True,
                             check=True)
    assert default.stdout == ""
    a_cluster_ip = str(ipaddress.ip_network(echo.state["service_cidr"]).network_address + 5)
    for outside in ("1.1.1.1", "192.168.0.1", a_cluster_ip):
        result = route_get(outside, netns)
        assert result.returncode != 0 and "Network is unreachable" in result.stderr, outside
    # ... while the node (and so the API server relay on it) and the other pods are on its link
    assert route_get(echo.state["node_ip"], netns).returncode == 0


def test_pod_ips_answer_from_the_host_as_on_a_node(echo):
    pod = echo.pod()
    assert requests.get(f"http://{echo.pod_ip(pod)}:{HTTP_PORT}/hello", timeout=5).text == f"hello from {pod}\n"


def test_the_load_balancer_address_and_the_node_port_reach_the_pod(echo):
    pod = echo.pod()
    service = json.loads(kubectl(echo.sandbox, "get", "service", "-n", ECHO_NAMESPACE, "echo-lb", "-o", "json").stdout)
    [ingress] = service["status"]["loadBalancer"]["ingress"]
    assert ingress["ip"] == echo.state["external"][f"Service/{ECHO_NAMESPACE}/echo-lb"]
    assert requests.get(f"http://{ingress['ip']}/hello", timeout=5).text == f"hello from {pod}\n"
    node_port = service["spec"]["ports"][0]["nodePort"]  # allocated by the real API server
    assert 30000 <= node_port <= 32767
    assert requests.get(f"http://{echo.state['node_ip']}:{node_port}/hello", timeout=5).text == f"hello from {pod}\n"


def test_a_cluster_ip_does_not_answer_without_kube_proxy(echo):
    cluster_ip = addresses(echo)["service"][0]
    with socket.socket() as probe:
        probe.settimeout(1)
        with pytest.raises(OSError):  # no ARP answer on the bridge: a timeout, or no route to host
            probe.connect((cluster_ip, 80))


def test_pods_added_at_once_get_addresses_and_namespaces_of_their_own():
    # The node agent sets pods up in threads of their own (asyncio.to_thread): two that picked one address
    # would have had one of them fail `ip netns add`, and that pod would never start.
    network = PodNetwork()
    network.create()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            added = list(pool.map(network.add_pod, [f"uid-{n}" for n in range(16)]))
        assert len({name for name, _ip in added}) == len({ip for _name, ip in added}) == 16
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert all(name in namespaces for name, _ip in added)
        network.remove_pod("uid-3")
        assert network.add_pod("uid-16")[1] not in {ip for uid, ip in network.addresses.items() if uid != "uid-16"}
    finally:
        network.destroy()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"llmd-{network.id}-" not in namespaces
    assert not [link for link in os.listdir("/sys/class/net") if network.id in link]
