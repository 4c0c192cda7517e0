"""Drives `serin sim` with the official Kubernetes Python client, as users' scripts do.

Run by tests/sim_python_client.rs with KUBECONFIG pointing at a fresh simulated cluster. Each check
prints `ok NAME` or raises; the Rust test reads the lines and the exit code.
"""

import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException

config.load_kube_config()
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
batch = client.BatchV1Api(api)
NS = "default"


def ok(name):
    print(f"ok {name}", flush=True)


def wait_for(what, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pod_manifest(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                                     "env": [{"name": "SERIN_SIM_READY_SECONDS", "value": "0.2"}]}]}}


def typed_pods():
    # The typed client refuses a Pod that lacks a field kubelet always sets (imageID and the like).
    name = f"typed-{uuid.uuid4().hex[:6]}"
    created = core.create_namespaced_pod(NS, pod_manifest(name))
    assert created.status.phase == "Pending", created.status
    running = wait_for("a running pod", lambda: (lambda p: p if p.status.phase == "Running" else None)(
        core.read_namespaced_pod(name, NS)))
    cs = running.status.container_statuses[0]
    assert cs.image_id and cs.container_id and cs.ready and cs.restart_count == 0, cs
    assert running.spec.node_name, running.spec
    assert running.status.pod_ip and running.status.host_ip, running.status
    assert running.spec.containers[0].termination_message_path == "/dev/termination-log"
    assert len(core.list_pod_for_all_namespaces().items) >= 1
    core.delete_namespaced_pod(name, NS)
    ok("typed_pods")


def boolean_watch():
    # `watch=True`, as some clients spell it, streams like `watch=true`.
    name = f"w-{uuid.uuid4().hex[:6]}"
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"w": name}}})
    conf = api.configuration
    query = urllib.parse.urlencode({"watch": "True", "resourceVersion": rv, "labelSelector": f"w={name}", "timeoutSeconds": "2"})
    request = urllib.request.Request(f"{conf.host}/api/v1/namespaces/{NS}/configmaps?{query}",
                                     headers={k: v for k, v in [("Authorization", conf.get_api_key_with_prefix("authorization") or conf.get_api_key_with_prefix("BearerToken"))] if v})
    body = urllib.request.urlopen(request, timeout=10).read().decode()
    lines = [json.loads(l) for l in body.splitlines() if l.strip()]
    assert lines and lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == name, body[:500]
    # The client's own Watch, bounded by timeoutSeconds, sees the same.
    events = [e["type"] for e in watch.Watch().stream(core.list_namespaced_config_map, NS, label_selector=f"w={name}",
                                                      resource_version=rv, timeout_seconds=2)]
    assert events == ["ADDED"], events
    ok("boolean_watch")


def services():
    name = f"svc-{uuid.uuid4().hex[:6]}"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"name": "port", "port": 80, "protocol": "TCP", "targetPort": 80}]}}
    created = core.create_namespaced_service(NS, svc)
    assert created.status is not None and created.status.load_balancer is not None, created.status
    assert created.spec.cluster_ip and created.spec.ip_families == ["IPv4"], created.spec
    svc["spec"]["ports"] = [{"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}]
    patched = core.patch_namespaced_service(name, NS, svc)
    assert len(patched.spec.ports) == 2, patched.spec.ports
    try:
        core.create_namespaced_service(NS, svc)
        raise AssertionError("a second create succeeded")
    except ApiException as e:
        assert e.status == 409 and e.reason == "Conflict", (e.status, e.reason)
        expected = ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \\"%s\\" already exists",'
                    '"reason":"AlreadyExists","details":{"name":"%s","kind":"services"},"code":409}\n') % (name, name)
        body = e.body.decode() if isinstance(e.body, bytes) else e.body
        assert body == expected, body
    core.delete_namespaced_service(name, NS)
    ok("services")


def conflicts():
    name = f"cm-{uuid.uuid4().hex[:6]}"
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    core.patch_namespaced_config_map(name, NS, {"data": {"a": "2"}})
    body = {"metadata": {"name": name, "resourceVersion": stale}, "data": {"a": "3"}}
    try:
        core.replace_namespaced_config_map(name, NS, body)
        raise AssertionError("a stale replace succeeded")
    except ApiException as e:
        status = json.loads(e.body)
        assert e.status == 409 and status["reason"] == "Conflict", e.body
        assert status["message"] == (f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified; '
                                     'please apply your changes to the latest version and try again'), status["message"]
        assert status["details"] == {"name": name, "kind": "configmaps"}, status
    core.delete_namespaced_config_map(name, NS)
    ok("conflicts")


def nodes():
    listed = core.list_node().items
    assert len(listed) >= 1, listed
    for n in listed:
        node = core.read_node(n.metadata.name)
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.status.conditions
        assert node.status.node_info.kubelet_version and node.status.allocatable["pods"], node.status
    ok("nodes")


def workloads():
    name = f"rc-{uuid.uuid4().hex[:6]}"
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
          "spec": {"replicas": 2, "selector": {"app": name},
                   "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "main", "image": "nginx:1.27",
                                                         "env": [{"name": "SERIN_SIM_READY_SECONDS", "value": "0.2"}]}]}}}}
    created = core.create_namespaced_replication_controller(NS, rc)
    assert created.spec.replicas == 2
    wait_for("the RC's pods ready", lambda: (core.read_namespaced_replication_controller(name, NS).status.ready_replicas or 0) == 2)
    core.delete_namespaced_replication_controller(name, NS, propagation_policy="Background")
    wait_for("the RC's pods gone", lambda: not core.list_namespaced_pod(NS, label_selector=f"app={name}").items)

    name = f"ds-{uuid.uuid4().hex[:6]}"
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
          "spec": {"selector": {"matchLabels": {"app": name}},
                   "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "agent", "image": "nginx:1.27",
                                                         "env": [{"name": "SERIN_SIM_READY_SECONDS", "value": "0.2"}]}]}}}}
    apps.create_namespaced_daemon_set(NS, ds)
    nodes = len(core.list_node().items)
    status = wait_for("a pod on every node", lambda: (lambda s: s if s.number_ready == nodes else None)(
        apps.read_namespaced_daemon_set(name, NS).status))
    assert status.desired_number_scheduled == nodes, status
    placed = {p.spec.node_name for p in core.list_namespaced_pod(NS, label_selector=f"app={name}").items}
    assert len(placed) == nodes, placed
    apps.delete_namespaced_daemon_set(name, NS)

    name = f"job-{uuid.uuid4().hex[:6]}"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": name, "image": "busybox", "command": ["sh", "-c", "sleep 5"]}]}}}}
    batch.create_namespaced_job(NS, job)
    deleted = batch.delete_namespaced_job(name, NS, body={"propagationPolicy": "Background"})
    as_dict = deleted if isinstance(deleted, dict) else api.sanitize_for_serialization(deleted)
    assert as_dict["kind"] in ("Job", "Status"), as_dict
    if as_dict["kind"] == "Status":
        assert as_dict["status"] == "Success" and as_dict["details"]["name"] == name, as_dict
    ok("workloads")


def api_services():
    body = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {"group": "wardle.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "service": {"name": "api", "namespace": "wardle"},
                     "insecureSkipTLSVerify": True}}
    reg = client.ApiregistrationV1Api(api)
    created = reg.create_api_service(body)
    assert created.spec.group == "wardle.example.com"
    try:
        utils.create_from_dict(api, body)
        raise AssertionError("a second create succeeded")
    except utils.FailToCreateError as e:
        text = str(e)
        assert '"message":"apiservices.apiregistration.k8s.io \\"v1alpha1.wardle.example.com\\" already exists"' in text, text
        assert '"details":{"name":"v1alpha1.wardle.example.com","group":"apiregistration.k8s.io","kind":"apiservices"}' in text, text
    local = reg.read_api_service("v1.apps")
    assert local.status.conditions[0].type == "Available" and local.status.conditions[0].status == "True", local.status
    reg.delete_api_service("v1alpha1.wardle.example.com")
    ok("api_services")


def metadata_only():
    # Clients that need only names and labels ask for PartialObjectMetadata(List) in Accept.
    from kubernetes import dynamic
    nodes = dynamic.DynamicClient(api).resources.get(api_version="v1", kind="Node")
    for accept in ["Accept", "aCcePt"]:
        resp = nodes.get(header_params={accept: "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
        assert resp.kind == "PartialObjectMetadataList" and resp.apiVersion == "meta.k8s.io/v1", resp.kind
        assert resp.items and resp.items[0].metadata.name and not resp.items[0].get("spec"), resp.items[0]
    ok("metadata_only")


CHECKS = [typed_pods, boolean_watch, services, conflicts, nodes, workloads, api_services, metadata_only]
wanted = set(sys.argv[1:])
for check in CHECKS:
    if not wanted or check.__name__ in wanted:
        check()
