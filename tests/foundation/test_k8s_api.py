"""The `k8s_api` fixture, through the official kubernetes client (and kopf), as its users will use it."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import kopf
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.k8s_api import K8sApi

DATA = Path(__file__).parent / "data"
TEST_CRDS = DATA / "test_crds.yaml"
GROUP = "test.brix.dev"


@pytest.fixture
def api(k8s_api: K8sApi) -> K8sApi:
    k8s_api.add_crds(TEST_CRDS)
    return k8s_api


def pod(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "engine"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod(name)["spec"]}}}


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(exc.value.body)


def collect(api: K8sApi, list_fn, *args, writes=None, until: int, timeout: float = 5, **kwargs) -> list[tuple]:
    """Watch list_fn until `until` events arrived; `writes` runs on a thread once the watch is open."""
    events: list[tuple] = []
    w = watch.Watch()
    if writes is not None:
        threading.Timer(0.2, writes).start()
    deadline = time.monotonic() + timeout
    for ev in w.stream(list_fn, *args, timeout_seconds=int(timeout), **kwargs):
        obj = ev["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        events.append((ev["type"], name))
        if len(events) >= until or time.monotonic() > deadline:
            w.stop()
    return events


# ---------------------------------------------------------------- create, read, versions

def test_create_answers_201_and_stamps_metadata(api: K8sApi) -> None:
    created, code, _ = api.core_v1().create_namespaced_pod_with_http_info("default", pod("p1"))
    assert code == 201
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp is not None and meta.generation == 1
    assert int(meta.resource_version) > 0
    assert created.status.phase == "Pending"
    read = api.core_v1().read_namespaced_pod("p1", "default")
    assert read.metadata.uid == meta.uid and read.metadata.resource_version == meta.resource_version


def test_duplicate_is_409_already_exists_and_missing_is_404_status(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_pod("default", pod("p1"))
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_pod("default", pod("p1"))
    assert dup.value.status == 409
    assert status_of(dup) | {"details": None} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 409,
        "reason": "AlreadyExists", "message": 'pods "p1" already exists', "details": None}
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert status_of(missing)["reason"] == "NotFound" and status_of(missing)["kind"] == "Status"
    core.create_namespaced_pod("other", pod("p1"))  # same name, other namespace: fine


def test_every_write_bumps_resource_version_and_spec_changes_bump_generation(api: K8sApi) -> None:
    apps = api.apps_v1()
    d0 = apps.create_namespaced_deployment("default", deployment("web"))
    d1 = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"tier": "x"}}})
    d2 = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    d3 = apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 3}})
    rvs = [int(d.metadata.resource_version) for d in (d0, d1, d2, d3)]
    assert rvs == sorted(set(rvs))
    assert [d.metadata.generation for d in (d0, d1, d2, d3)] == [1, 1, 2, 2]
    other = api.core_v1().create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert int(other.metadata.resource_version) > rvs[-1]  # one counter for the whole server


def test_replace_with_a_stale_resource_version_is_409_conflict(api: K8sApi) -> None:
    core = api.core_v1()
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cm", "default", cm)
    assert conflict.value.status == 409 and status_of(conflict)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", "default").data == {"a": "2"}


# ---------------------------------------------------------------- patches

def test_merge_strategic_and_json_patches(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm", "labels": {"a": "1", "b": "2"}},
                                                  "data": {"x": "1", "y": "2"}})
    # the client sends strategic merge patch for built-ins: merged, null deletes
    cm = core.patch_namespaced_config_map("cm", "default", {"metadata": {"labels": {"a": None, "c": "3"}},
                                                           "data": {"y": "20"}})
    assert cm.metadata.labels == {"b": "2", "c": "3"} and cm.data == {"x": "1", "y": "20"}
    # a list body is sent as a JSON patch
    cm = core.patch_namespaced_config_map("cm", "default", [{"op": "remove", "path": "/data/x"},
                                                           {"op": "add", "path": "/data/z", "value": "9"}])
    assert cm.data == {"y": "20", "z": "9"}
    with pytest.raises(ApiException) as failed:
        core.patch_namespaced_config_map("cm", "default", [{"op": "test", "path": "/data/y", "value": "0"}])
    assert failed.value.status == 422
    # custom objects get a JSON merge patch
    custom = api.custom()
    custom.create_cluster_custom_object(GROUP, "v1alpha1", "gadgets", {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"a": [1, 2], "b": 1}})
    g = custom.patch_cluster_custom_object(GROUP, "v1alpha1", "gadgets", "g", {"spec": {"a": [3], "b": None}})
    assert g["spec"] == {"a": [3]}


# ---------------------------------------------------------------- selectors

def test_label_and_field_selectors_on_list(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_pod("default", pod("a", {"model": "llama", "tier": "gpu"}, node="n1"))
    core.create_namespaced_pod("default", pod("b", {"model": "qwen", "tier": "gpu"}))
    core.create_namespaced_pod("default", pod("c", {"model": "qwen"}))
    core.create_namespaced_pod("other", pod("d", {"model": "llama"}, node="n2"))
    core.patch_namespaced_pod_status("c", "default", {"status": {"phase": "Running"}})

    def names(**kw) -> list[str]:
        return sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items)

    assert names(label_selector="model=llama") == ["a", "d"]
    assert names(label_selector="model!=llama") == ["b", "c"]
    assert names(label_selector="model in (qwen,mistral),tier") == ["b"]
    assert names(label_selector="model notin (qwen),!tier") == ["d"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace=other") == ["d"]
    assert names(field_selector="spec.nodeName=") == ["b", "c"]
    assert names(field_selector="spec.nodeName=n1") == ["a"]
    assert names(field_selector="status.phase!=Running,spec.nodeName!=") == ["a", "d"]
    assert names(field_selector="status.phase=Running", label_selector="model=qwen") == ["c"]
    assert sorted(p.metadata.name for p in core.list_namespaced_pod("other").items) == ["d"]


def test_list_pages_with_limit_and_continue(api: K8sApi) -> None:
    core = api.core_v1()
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in first.items + rest.items] == [f"cm{i}" for i in range(5)]
    assert rest.metadata._continue is None


# ---------------------------------------------------------------- watches

def test_watch_with_a_label_selector_sees_only_matching_events(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_pod("default", pod("old-match", {"app": "llm"}))
    core.create_namespaced_pod("default", pod("old-other", {"app": "web"}))

    def writes() -> None:
        core.create_namespaced_pod("default", pod("new-other", {"app": "web"}))
        core.create_namespaced_pod("default", pod("new-match", {"app": "llm"}))
        core.patch_namespaced_pod("new-other", "default", {"metadata": {"labels": {"x": "1"}}})
        core.patch_namespaced_pod("new-match", "default", {"metadata": {"labels": {"x": "1"}}})
        core.patch_namespaced_pod("old-other", "default", {"metadata": {"labels": {"app": "llm"}}})  # starts matching
        core.patch_namespaced_pod("old-match", "default", {"metadata": {"labels": {"app": "web"}}})  # stops matching
        core.delete_namespaced_pod("new-other", "default")
        core.delete_namespaced_pod("new-match", "default")

    events = collect(api, core.list_namespaced_pod, "default", label_selector="app=llm", writes=writes, until=6)
    assert events == [("ADDED", "old-match"), ("ADDED", "new-match"), ("MODIFIED", "new-match"),
                      ("ADDED", "old-other"), ("DELETED", "old-match"), ("DELETED", "new-match")]


def test_watch_resumes_from_a_resource_version_and_expired_versions_get_410(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    core.patch_namespaced_config_map("before", "default", {"data": {"a": "1"}})
    events = collect(api, core.list_namespaced_config_map, "default", resource_version=rv, until=2)
    assert events == [("ADDED", "after"), ("MODIFIED", "before")]

    with K8sApi(crd_dir=None, history=2) as small:
        small_core = small.core_v1()
        for i in range(4):
            small_core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
        with pytest.raises(ApiException) as gone:
            collect(small, small_core.list_namespaced_config_map, "default", resource_version="2", until=1)
        assert gone.value.status == 410


def test_expired_watches_end_with_410_and_a_fresh_list_watches_on(api: K8sApi) -> None:
    """As after an etcd compaction: open watches get ERROR 410, old versions too; a re-list works."""
    core = api.core_v1()
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "during"}})
    with pytest.raises(ApiException) as gone:
        collect(api, core.list_namespaced_config_map, "default", resource_version=old_rv, until=5,
                writes=lambda: api.expire_watches("", "configmaps"))
    assert gone.value.status == 410 and "Expired" in str(gone.value.reason)
    with pytest.raises(ApiException) as again:   # the old version cannot be resumed from any more
        collect(api, core.list_namespaced_config_map, "default", resource_version=old_rv, until=1)
    assert again.value.status == 410
    listed = core.list_namespaced_config_map("default")
    assert sorted(c.metadata.name for c in listed.items) == ["before", "during"]
    events = collect(api, core.list_namespaced_config_map, "default", resource_version=listed.metadata.resource_version,
                     until=1, writes=lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "after"}}))
    assert events == [("ADDED", "after")]
    pods = collect(api, core.list_namespaced_pod, "default", resource_version=old_rv, until=1,   # other kinds keep theirs
                   writes=lambda: core.create_namespaced_pod("default", pod("p")))
    assert pods == [("ADDED", "p")]


def test_binding_sets_node_once_and_leaves_the_unscheduled_watch(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_pod("default", pod("p1"))
    binding = {"metadata": {"name": "p1"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "gpu-node-1"}}

    def bind() -> None:
        core.create_namespaced_pod_binding("p1", "default", binding, _preload_content=False)

    events = collect(api, core.list_namespaced_pod, "default", field_selector="spec.nodeName=", writes=bind, until=2)
    assert events == [("ADDED", "p1"), ("DELETED", "p1")]  # as an informer of unscheduled pods sees it
    bound = core.read_namespaced_pod("p1", "default")
    assert bound.spec.node_name == "gpu-node-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(ApiException) as again:
        bind()
    assert again.value.status == 409
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_pod_binding("ghost", "default", {**binding, "metadata": {"name": "ghost"}},
                                           _preload_content=False)
    assert missing.value.status == 404


# ---------------------------------------------------------------- subresources

def test_status_subresource_touches_only_status_and_main_ignores_status(api: K8sApi) -> None:
    apps = api.apps_v1()
    apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    body = deployment("web", replicas=9) | {"status": {"replicas": 2, "readyReplicas": 1}}
    d = apps.replace_namespaced_deployment_status("web", "default", body)
    assert d.spec.replicas == 2 and d.status.ready_replicas == 1
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}, "status": {"readyReplicas": 7}})
    assert d.spec.replicas == 4 and d.status.ready_replicas == 1
    core = api.core_v1()  # cluster-scoped objects too, e.g. a node's capacity
    core.create_node({"metadata": {"name": "n1"}, "spec": {"unschedulable": False}})
    node = core.patch_node_status("n1", {"status": {"capacity": {"nvidia.com/gpu": "8"}}, "spec": {"unschedulable": True}})
    assert node.status.capacity == {"nvidia.com/gpu": "8"} and node.spec.unschedulable is False
    assert core.list_node(field_selector="spec.unschedulable=false").items[0].metadata.name == "n1"


def test_scale_subresource_on_a_deployment(api: K8sApi) -> None:
    apps = api.apps_v1()
    apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 2}})
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web")
    scale = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5
    scale.spec.replicas = 1
    apps.replace_namespaced_deployment_scale("web", "default", scale)
    d = apps.read_namespaced_deployment("web", "default")
    assert d.spec.replicas == 1 and d.metadata.generation == 3
    assert d.spec.template.metadata.labels == {"app": "web"}  # the rest of spec is untouched


def test_scale_subresource_on_a_custom_resource(api: K8sApi) -> None:
    custom = api.custom()
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 1, "m": "x"}})
    custom.patch_namespaced_custom_object_status(GROUP, "v1", "default", "widgets", "w",
                                                 {"status": {"replicas": 1, "selector": "app=w"}})
    scale = custom.get_namespaced_custom_object_scale(GROUP, "v1", "default", "widgets", "w")
    assert scale["spec"] == {"replicas": 1} and scale["status"] == {"replicas": 1, "selector": "app=w"}
    custom.patch_namespaced_custom_object_scale(GROUP, "v1", "default", "widgets", "w", {"spec": {"replicas": 3}})
    w = custom.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "w")
    assert w["spec"] == {"replicas": 3, "m": "x"} and w["status"]["replicas"] == 1


# ---------------------------------------------------------------- CRDs and discovery

def test_crds_are_discoverable_and_their_resources_served(api: K8sApi) -> None:
    groups = {g.name: g for g in client.ApisApi(api.api_client).get_api_versions().groups}
    assert groups[GROUP].preferred_version.version in ("v1", "v1alpha1")
    resources = client.CustomObjectsApi(api.api_client).get_api_resources(GROUP, "v1").resources
    assert {(r.name, r.kind, r.namespaced) for r in resources} >= {
        ("widgets", "Widget", True), ("widgets/status", "Widget", True), ("widgets/scale", "Scale", True)}
    custom = api.custom()
    for ns in ("a", "b"):
        custom.create_namespaced_custom_object(GROUP, "v1", ns, "widgets", {
            "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"ns": ns}}})
    assert [w["metadata"]["namespace"] for w in custom.list_cluster_custom_object(GROUP, "v1", "widgets",
                                                                                  label_selector="ns=b")["items"]] == ["b"]
    custom.create_cluster_custom_object(GROUP, "v1alpha1", "gadgets", {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "Gadget", "metadata": {"name": "g"}})
    assert custom.get_cluster_custom_object(GROUP, "v1alpha1", "gadgets", "g")["metadata"]["uid"]
    custom.delete_namespaced_custom_object(GROUP, "v1", "a", "widgets", "w")
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, "v1", "a", "widgets", "w")
    assert gone.value.status == 404
    events = collect(api, custom.list_cluster_custom_object, GROUP, "v1", "widgets", until=1)
    assert events == [("ADDED", "w")]


def test_a_crd_created_through_the_api_is_served_until_deleted(k8s_api: K8sApi) -> None:
    ext = k8s_api.apiextensions_v1()
    with pytest.raises(ApiException):
        k8s_api.custom().list_cluster_custom_object(GROUP, "v1alpha1", "gadgets")
    import yaml
    gadget_crd = list(yaml.safe_load_all(TEST_CRDS.read_text()))[1]
    crd = ext.create_custom_resource_definition(gadget_crd)
    assert {c.type for c in crd.status.conditions} >= {"Established"}
    assert k8s_api.custom().list_cluster_custom_object(GROUP, "v1alpha1", "gadgets")["items"] == []
    ext.delete_custom_resource_definition("gadgets.test.brix.dev")
    with pytest.raises(ApiException) as gone:
        k8s_api.custom().list_cluster_custom_object(GROUP, "v1alpha1", "gadgets")
    assert gone.value.status == 404


def test_crds_from_a_folder_are_registered_at_start_and_bad_ones_named(tmp_path: Path) -> None:
    shutil.copy(TEST_CRDS, tmp_path / "test.yaml")
    with K8sApi(crd_dir=tmp_path) as api:
        assert api.custom().list_namespaced_custom_object(GROUP, "v1", "default", "widgets")["items"] == []
    (tmp_path / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
    (tmp_path / "zz-broken.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: x.y}\nspec: {}\n")
    with pytest.raises(ValueError, match=r"zz-broken.yaml: cannot register the CRD: CRD 'x.y': missing 'names'"):
        K8sApi(crd_dir=tmp_path).__enter__()
    with pytest.raises(ValueError, match=r"expected only CustomResourceDefinition documents, found 'Kustomization'"):
        with K8sApi(crd_dir=None) as api:
            api.add_crds(tmp_path / "kustomization.yaml")


# ---------------------------------------------------------------- deletion and kmock's DSL

def test_finalizers_hold_deletion_until_removed(api: K8sApi) -> None:
    core = api.core_v1()
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm", "finalizers": ["brix.dev/x"]}})
    core.delete_namespaced_config_map("cm", "default")
    held = core.read_namespaced_config_map("cm", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("cm", "default")
    assert gone.value.status == 404


def test_kmock_reactions_still_inject_failures(api: K8sApi) -> None:
    api.kmock["post /api/v1/namespaces/default/pods"] << 503  # noqa: B015  (kmock's DSL registers on <<)
    with pytest.raises(ApiException) as failed:
        api.core_v1().create_namespaced_pod("default", pod("p1"))
    assert failed.value.status == 503
    assert api.core_v1().list_namespaced_pod("default").items == []  # an intercepted request changes nothing


# ---------------------------------------------------------------- kopf

async def test_kopf_operator_reacts_to_a_create_by_patching_status(api: K8sApi) -> None:
    registry = kopf.OperatorRegistry()
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 5
    settings.networking.request_timeout = 10

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=api.url, insecure=True)

    @kopf.on.create(GROUP, "v1", "widgets", id="created", registry=registry)
    def created(spec: dict, **_: object) -> dict:
        return {"size": spec["size"] * 2}  # kopf stores a handler's result in status.<handler id>

    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(kopf.operator(registry=registry, settings=settings, standalone=True,
                                             namespaces=["default"], stop_flag=stop, ready_flag=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        custom = api.custom()
        await asyncio.to_thread(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets", {
            "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 21}})
        status: dict = {}
        for _ in range(100):
            obj = await asyncio.to_thread(custom.get_namespaced_custom_object, GROUP, "v1", "default", "widgets", "w")
            status = obj.get("status") or {}
            if "created" in status:
                break
            await asyncio.sleep(0.05)
        assert status.get("created") == {"size": 42}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
