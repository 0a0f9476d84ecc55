"""The control plane is Kubernetes itself: the built versions, etcd behind the API server, the real
controller-manager making ReplicaSets, Pods and EndpointSlices, the real scheduler binding pods, and the node
agent keeping its Node Ready and its Lease renewed."""

import datetime
import json
import re
from pathlib import Path

import pytest
from cluster_harness import ECHO_IMAGE, ECHO_NAMESPACE, HTTP_PORT, kubectl, wait_until

from llmd_sandbox.cluster import NODE_NAME, binaries


def built_version(component: str = "kube-apiserver") -> str:
    return re.search(r"-(v\d+\.\d+\.\d+)$", Path(binaries()[component]).name).group(1)


@pytest.fixture(scope="module")
def echo(echo_sandbox):
    return echo_sandbox


@pytest.fixture(scope="module")
def first_lease(echo):
    """The node's Lease as first seen; the last test checks it was renewed since."""
    return get_json(echo, "lease", "-n", "kube-node-lease", NODE_NAME)


def get_json(echo, *args: str) -> dict:
    return json.loads(kubectl(echo.sandbox, "get", *args, "-o", "json").stdout)


def test_kubectl_version_reports_the_built_server_and_the_dispatcher_does_not_warn(echo, first_lease):
    result = kubectl(echo.sandbox, "version", "-o", "json")
    versions = json.loads(result.stdout)
    server = versions["serverVersion"]
    assert server["gitVersion"] == built_version()
    assert (server["major"], server["minor"]) == tuple(built_version().lstrip("v").split(".")[:2])
    assert server["gitTreeState"] == "clean" and server["platform"] == "linux/amd64"
    # The dispatcher ran its own kubectl of the server's minor, and nobody warned about skew.
    assert versions["clientVersion"]["minor"] == server["minor"]
    assert result.stderr == ""


def test_an_older_kubectl_warns_about_skew_as_it_does_on_any_cluster(echo):
    # The check above means something: kubectl 1.30 against a 1.33 server is outside the +/-1 skew.
    result = kubectl(echo.sandbox, "version", minor=30)
    assert f"Server Version: {built_version()}" in result.stdout
    assert "WARNING: version difference between client (1.30) and server (1.33) exceeds the supported minor " \
           "version skew of +/-1" in result.stderr


def test_livez_and_readyz_list_etcd(echo):
    livez = kubectl(echo.sandbox, "get", "--raw", "/livez?verbose").stdout
    assert "[+]etcd ok" in livez and livez.rstrip().endswith("livez check passed")
    readyz = kubectl(echo.sandbox, "get", "--raw", "/readyz?verbose").stdout
    assert "[+]etcd ok" in readyz and "[+]etcd-readiness ok" in readyz
    assert "[+]poststarthook/rbac/bootstrap-roles ok" in readyz


def test_the_deployment_gets_its_replicaset_and_pod_from_the_controller_manager(echo):
    deployment = get_json(echo, "deployment", "-n", ECHO_NAMESPACE, "echo")
    [replica_set] = get_json(echo, "replicasets", "-n", ECHO_NAMESPACE, "-l", "app=echo")["items"]
    owner = replica_set["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Deployment", "echo", deployment["metadata"]["uid"], True)
    assert replica_set["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    pod_hash = replica_set["metadata"]["labels"]["pod-template-hash"]
    assert replica_set["metadata"]["name"] == f"echo-{pod_hash}"
    [pod] = get_json(echo, "pods", "-n", ECHO_NAMESPACE, "-l", "app=echo")["items"]
    assert pod["metadata"]["generateName"] == f"echo-{pod_hash}-"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == replica_set["metadata"]["uid"]
    status = deployment["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (1, 1, 1)
    conditions = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}


def test_the_service_gets_its_endpointslices_from_the_controller_manager(echo):
    pod_name = echo.pod()
    [endpoint_slice] = get_json(echo, "endpointslices", "-n", ECHO_NAMESPACE,
                                "-l", "kubernetes.io/service-name=echo")["items"]
    labels = endpoint_slice["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert endpoint_slice["addressType"] == "IPv4"
    assert sorted((p["name"], p["port"]) for p in endpoint_slice["ports"]) == [("echo", 9000), ("http", HTTP_PORT)]
    [endpoint] = endpoint_slice["endpoints"]
    assert endpoint["addresses"] == [echo.pod_ip(pod_name)]
    assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoint["nodeName"] == NODE_NAME and endpoint["targetRef"]["name"] == pod_name
    # ... and the legacy Endpoints object from the endpoints controller, from the same pods
    endpoints = get_json(echo, "endpoints", "-n", ECHO_NAMESPACE, "echo")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == [echo.pod_ip(pod_name)]


def test_scaling_a_deployment_follows_through_to_pods_and_endpoints(echo):
    sandbox = echo.sandbox
    kubectl(sandbox, "create", "deployment", "-n", ECHO_NAMESPACE, "scaled", f"--image={ECHO_IMAGE}", "--replicas=1",
            "--port", str(HTTP_PORT), "--", "/echo", "--http-port", str(HTTP_PORT))
    try:
        kubectl(sandbox, "expose", "deployment", "-n", ECHO_NAMESPACE, "scaled", "--port=80",
                f"--target-port={HTTP_PORT}")
        kubectl(sandbox, "scale", "deployment", "-n", ECHO_NAMESPACE, "scaled", "--replicas=3")
        kubectl(sandbox, "rollout", "status", "-n", ECHO_NAMESPACE, "deployment/scaled", "--timeout=60s", timeout=90)

        def ready_addresses():
            slices = get_json(echo, "endpointslices", "-n", ECHO_NAMESPACE, "-l", "kubernetes.io/service-name=scaled")
            return sorted(a for s in slices["items"] for e in s.get("endpoints") or [] if e["conditions"]["ready"]
                          for a in e["addresses"])

        pods = get_json(echo, "pods", "-n", ECHO_NAMESPACE, "-l", "app=scaled")["items"]
        assert len(pods) == 3 and len({p["status"]["podIP"] for p in pods}) == 3
        wait_until(lambda: ready_addresses() == sorted(p["status"]["podIP"] for p in pods), what="3 endpoints")
        kubectl(sandbox, "scale", "deployment", "-n", ECHO_NAMESPACE, "scaled", "--replicas=1")
        wait_until(lambda: len(ready_addresses()) == 1, what="one endpoint after scaling down")
        wait_until(lambda: len(get_json(echo, "pods", "-n", ECHO_NAMESPACE, "-l", "app=scaled")["items"]) == 1,
                   what="the scaled-down pods deleted for good")
    finally:
        kubectl(sandbox, "delete", "-n", ECHO_NAMESPACE, "deployment/scaled", "service/scaled", "--wait=true",
                check=False)


def test_pods_are_bound_by_the_real_scheduler(echo):
    pod_name = echo.pod()
    pod = get_json(echo, "pod", "-n", ECHO_NAMESPACE, pod_name)
    assert pod["spec"]["nodeName"] == NODE_NAME and pod["spec"]["schedulerName"] == "default-scheduler"
    events = get_json(echo, "events", "-n", ECHO_NAMESPACE, "--field-selector",
                      f"reason=Scheduled,involvedObject.name={pod_name}")["items"]
    assert [e["message"] for e in events] == [f"Successfully assigned {ECHO_NAMESPACE}/{pod_name} to {NODE_NAME}"]
    assert events[0]["reportingComponent"] == "default-scheduler"


def test_a_pod_no_node_fits_stays_pending_with_the_schedulers_reason(echo):
    pod = get_json(echo, "pod", "-n", ECHO_NAMESPACE, "unscheduled")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    [scheduled] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"].startswith("0/1 nodes are available: 1 node(s) didn't match Pod's node "
                                           "affinity/selector.")


def test_a_pod_waits_for_its_config_map_and_the_kubelet_says_why(echo):
    # As the kubelet: the pod stays ContainerCreating with a FailedMount Warning event (what `kubectl describe
    # pod` shows) while its ConfigMap does not exist, and starts once it does.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "needs-config", "namespace": ECHO_NAMESPACE},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "echo", "image": ECHO_IMAGE, "args": ["--http-port", str(HTTP_PORT)],
                                    "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"}]}],
                    "volumes": [{"name": "settings", "configMap": {"name": "later"}}]}}
    kubectl(echo.sandbox, "apply", "-f", "-", input=json.dumps(pod))
    try:
        [event] = wait_until(lambda: get_json(echo, "events", "-n", ECHO_NAMESPACE, "--field-selector",
                                              "reason=FailedMount,involvedObject.name=needs-config")["items"],
                             what="the FailedMount event", interval=0.2)
        assert (event["type"], event["source"]["component"]) == ("Warning", "kubelet")
        assert event["message"] == 'MountVolume.SetUp failed for volume "settings" : configmap "later" not found'
        waiting = get_json(echo, "pod", "-n", ECHO_NAMESPACE, "needs-config")["status"]
        assert waiting["phase"] == "Pending"
        assert waiting["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        assert "FailedMount" in kubectl(echo.sandbox, "describe", "pod", "-n", ECHO_NAMESPACE, "needs-config").stdout
        kubectl(echo.sandbox, "create", "configmap", "-n", ECHO_NAMESPACE, "later", "--from-literal=greeting=hi")
        kubectl(echo.sandbox, "wait", "-n", ECHO_NAMESPACE, "--for=condition=Ready", "pod/needs-config",
                "--timeout=30s")
    finally:
        kubectl(echo.sandbox, "delete", "-n", ECHO_NAMESPACE, "pod/needs-config", "configmap/later",
                "--ignore-not-found", "--wait=false")


def test_the_node_is_ready_schedulable_and_its_lease_renews(echo, first_lease):
    node = get_json(echo, "node", NODE_NAME)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions == {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
    assert not node["spec"].get("taints"), "the node-lifecycle controller tainted the node"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": echo.state["node_ip"]}
    assert first_lease["spec"]["holderIdentity"] == NODE_NAME
    owner = first_lease["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Node", NODE_NAME)

    def renewed():
        lease = get_json(echo, "lease", "-n", "kube-node-lease", NODE_NAME)
        return lease if lease["spec"]["renewTime"] != first_lease["spec"]["renewTime"] else None

    lease = wait_until(renewed, timeout=25, what="the node's Lease renewed", interval=0.5)
    renewed_at, first_at = (datetime.datetime.fromisoformat(stamp["spec"]["renewTime"].replace("Z", "+00:00"))
                            for stamp in (lease, first_lease))
    assert renewed_at > first_at


def test_a_node_marked_unknown_posts_ready_again_and_loses_its_taint(echo):
    # What the node lifecycle controller does when it missed the Lease (the API server restarted): without the
    # kubelet's status loop the Node stayed Unknown, tainted unreachable, and no replacement pod was scheduled.
    unknown = {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                                          "message": "Kubelet stopped posting node status."}]}}
    kubectl(echo.sandbox, "patch", "node", NODE_NAME, "--subresource=status", "--type=strategic",
            "-p", json.dumps(unknown))

    def ready_and_untainted():
        node = get_json(echo, "node", NODE_NAME)
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        return node if ready == "True" and not node["spec"].get("taints") else None

    wait_until(ready_and_untainted, timeout=40, what="the node Ready again and untainted", interval=0.5)


def test_a_pod_marked_not_ready_by_the_controller_is_posted_ready_again(echo):
    # The node lifecycle controller's markPodsNotReady; the kubelet's status manager reconciles it.
    [pod] = get_json(echo, "pods", "-n", ECHO_NAMESPACE, "-l", "app=echo")["items"]
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    kubectl(echo.sandbox, "patch", "pod", "-n", ECHO_NAMESPACE, pod["metadata"]["name"], "--subresource=status",
            "--type=strategic", "-p", json.dumps(not_ready))

    def ready():
        current = get_json(echo, "pod", "-n", ECHO_NAMESPACE, pod["metadata"]["name"])
        return {c["type"]: c["status"] for c in current["status"]["conditions"]}["Ready"] == "True"

    wait_until(ready, timeout=15, what="the pod Ready again", interval=0.2)


def test_the_kubelet_reports_the_control_planes_version(echo):
    node = get_json(echo, "node", NODE_NAME)
    assert node["status"]["nodeInfo"]["kubeletVersion"] == built_version()


def test_after_each_api_server_restart_the_controllers_replace_a_deleted_pod(echo):
    # Last: it restarts the control plane. The soak's third restart in a row used to leave the controller-manager
    # blind (its informers backing off), so that a deleted pod got no replacement and the Node went Unknown.
    def pids():
        return {p["role"]: p["pid"] for p in echo.state["processes"] if "role" in p}

    name = echo.pod()
    for restart in range(1, 4):
        before = pids()
        assert echo.sandbox.restart_api_server() != before["kube-apiserver"]
        after = pids()
        for role in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert after[role] != before[role], (restart, role)
        replacement = echo.sandbox.restart_pod(name, ECHO_NAMESPACE)
        assert replacement != name, restart
        name = replacement
    node = get_json(echo, "node", NODE_NAME)
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
