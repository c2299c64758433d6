"""The pure parts of the local cluster, without binaries: pinned versions, certificates, the
scheduler configuration rewrite, the deploy/local rendering, and the node agent's pod rules."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from brix.kube import binaries, manifests, pki
from brix.kube.controlplane import SERVICE_IP, scheduler_configuration
from brix.node_agent import pods

ROOT = Path(__file__).resolve().parents[2]


def test_python_pins_match_the_go_modules() -> None:
    kube_mod = (ROOT / "hack/kube/go.mod").read_text()
    etcd_mod = (ROOT / "hack/kube/etcd/go.mod").read_text()
    assert re.search(rf"^\s*k8s\.io/kubernetes {binaries.KUBERNETES_VERSION}\b", kube_mod, re.M)
    assert re.search(rf"^\s*go\.etcd\.io/etcd/server/v3 {binaries.ETCD_VERSION}\b", etcd_mod, re.M)
    # every staging module is replaced with the same release's published version
    staging = binaries.KUBERNETES_VERSION.replace("v1.", "v0.")
    replaced = [line.split() for line in kube_mod.splitlines() if "=>" in line]
    assert len(replaced) > 20 and all(parts[-1] == staging for parts in replaced)


def test_missing_binaries_say_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIX_KUBE_CACHE", str(tmp_path))
    with pytest.raises(binaries.MissingBinaries, match="make kube"):
        binaries.find()


def test_certificates_chain_to_the_ca_with_the_identities_rbac_expects(tmp_path: Path) -> None:
    bundle = pki.generate(tmp_path, service_ip=SERVICE_IP)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(bundle.serving_cert.read_bytes())
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", SERVICE_IP}
    admin = x509.load_pem_x509_certificate(bundle.client_cert(pki.ADMIN).read_bytes())
    assert admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    scheduler = x509.load_pem_x509_certificate(bundle.client_cert(pki.SCHEDULER).read_bytes())
    assert scheduler.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    ssl.create_default_context(cafile=str(bundle.ca_cert)).load_cert_chain(
        bundle.client_cert(pki.ADMIN), bundle.client_key(pki.ADMIN))
    assert oct(bundle.ca_key.stat().st_mode & 0o777) == "0o600"


def test_scheduler_config_keeps_deploys_extender_but_points_it_at_the_local_one(tmp_path: Path) -> None:
    source = yaml.safe_load(manifests.SCHEDULER_CONFIG.read_text())
    config = scheduler_configuration(source, tmp_path / "s.kubeconfig", "http://127.0.0.1:1234", 50)
    assert config["clientConnection"]["kubeconfig"] == str(tmp_path / "s.kubeconfig")
    assert [e["urlPrefix"] for e in config["extenders"]] == ["http://127.0.0.1:1234"]
    for key in ("filterVerb", "prioritizeVerb", "bindVerb", "preemptVerb", "managedResources", "nodeCacheCapable"):
        assert config["extenders"][0][key] == source["extenders"][0][key]
    assert config["profiles"] == source["profiles"]


def test_local_overlay_renders_with_the_extender_on_the_host_network() -> None:
    objects = manifests.local_objects(extender_port=23456)
    extender = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "brix-scheduler-ext")
    spec = extender["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert "--port=23456" in spec["containers"][0]["args"]
    plugin = next(o for o in objects if o["kind"] == "DaemonSet")
    volumes = {v["name"]: v for v in plugin["spec"]["template"]["spec"]["volumes"]}
    assert volumes["mock-live"]["hostPath"]["path"] == "/var/run/brix-mock"
    assert "initContainers" not in plugin["spec"]["template"]["spec"]


@pytest.mark.parametrize(("container", "expected"), [
    ({"image": "brix:0.1.0", "args": ["engine-mock", "--port=8000"]}, ["engine-mock", "--port=8000"]),
    ({"image": "ghcr.io/acme/brix-node:1@sha256:ab", "args": ["device-plugin"]}, ["device-plugin"]),
    ({"image": "python:3.11", "command": ["/usr/local/bin/brix", "gateway"], "args": ["--port=1"]},
     ["gateway", "--port=1"]),
    ({"image": "brix:0.1.0", "command": ["sh", "-c", "sleep 1"]}, None),
    ({"image": "nginx:1.27"}, None),
])
def test_which_containers_run_brix(container: dict, expected: list[str] | None) -> None:
    assert pods.brix_args(container) == expected


def test_device_requests_sum_containers_and_take_the_largest_init_container() -> None:
    pod = {"spec": {
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "1"}}},
                       {"resources": {"requests": {"nvidia.com/gpu": "1"}}}],
        "initContainers": [{"resources": {"limits": {"nvidia.com/gpu": "4", "hugepages-2Mi": "1Gi"}}}]}}
    assert pods.device_requests(pod) == {"nvidia.com/gpu": 4}


def test_container_env_order_field_refs_and_expansion() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}}, "spec": {"nodeName": "n1"}}
    container = {"env": [
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "URL", "value": "http://$(IP):8000/$(UNSET)/$$(IP)"},
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "override"},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]}
    env, problems = pods.container_env(pod, container, pod_ip="127.1.0.9", host_ip="127.0.0.1",
                                       device_env={"NVIDIA_VISIBLE_DEVICES": "GPU-1"},
                                       config_maps={"cfg": {"k": "v"}})
    assert env["NS"] == "ns" and env["IP"] == "127.1.0.9" and env["APP"] == "x" and env["CM"] == "v"
    assert env["URL"] == "http://127.1.0.9:8000/$(UNSET)/$(IP)"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "override"  # env wins over the device plugin's, as in kubelet
    assert "SECRET" not in env and any("SECRET" in p for p in problems)


def test_readiness_probe_resolves_named_ports() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8000}],
                 "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2}}
    probe = pods.readiness_probe(container)
    assert (probe.kind, probe.port, probe.path, probe.period) == ("http", 8000, "/health", 2.0)
    with pytest.raises(ValueError, match="no port named 'metrics'"):
        pods.container_port(container, "metrics")


def test_ip_pool_hands_out_loopback_addresses_and_reuses_returned_ones() -> None:
    pool = pods.IpPool("127.1.0.0/30")
    first, second = pool.take(), pool.take()
    assert (first, second) == ("127.1.0.1", "127.1.0.2")
    pool.give_back(first)
    assert pool.take() == first
    with pytest.raises(ValueError, match="not inside 127.0.0.0/8"):
        pods.IpPool("10.0.0.0/24")


def test_pod_status_keeps_transition_times_that_did_not_change() -> None:
    running = pods.ContainerView("c", "brix:0.1.0", running=True, ready=False, restarts=0, started_at="t0", pid=42)
    first = pods.pod_status(phase="Running", pod_ip="127.1.0.2", host_ip="127.0.0.1", start_time="t0", now="t1",
                            containers=[running])
    ready = pods.ContainerView("c", "brix:0.1.0", running=True, ready=True, restarts=0, started_at="t0", pid=42)
    second = pods.pod_status(phase="Running", pod_ip="127.1.0.2", host_ip="127.0.0.1", start_time="t0", now="t2",
                             containers=[ready], previous=first)
    conditions = {c["type"]: c for c in second["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["lastTransitionTime"] == "t2"
    assert conditions["Initialized"]["lastTransitionTime"] == "t1"
    assert second["containerStatuses"][0]["containerID"] == "brix://42"


def test_volume_paths_are_remapped_once_with_the_deepest_mount_winning(tmp_path: Path) -> None:
    from brix.node_agent.agent import _remap

    mounts = {"plugins": tmp_path / "node/var/lib/kubelet/device-plugins", "tmp": tmp_path / "pod/tmp",
              "etc": tmp_path / "pod/etc"}
    container = {"volumeMounts": [{"name": "plugins", "mountPath": "/var/lib/kubelet/device-plugins"},
                                  {"name": "tmp", "mountPath": "/tmp"}, {"name": "etc", "mountPath": "/etc/brix/"}]}
    assert _remap("--kubelet-dir=/var/lib/kubelet/device-plugins", mounts, container) == \
        f"--kubelet-dir={mounts['plugins']}"
    assert _remap("/etc/brix/gateway.yaml", mounts, container) == f"{mounts['etc']}/gateway.yaml"
    assert _remap("/etc/brixx", mounts, container) == "/etc/brixx"
    assert _remap("--port=8000", mounts, container) == "--port=8000"


def test_two_local_clusters_never_share_a_pod_cidr(tmp_path: Path) -> None:
    from brix.kube.cluster import reserve_pod_cidr

    first, lock = reserve_pod_cidr(tmp_path)
    second, other = reserve_pod_cidr(tmp_path)
    assert first != second
    lock.close()  # released: the next cluster may take it again
    third, last = reserve_pod_cidr(tmp_path)
    assert third == first
    other.close()
    last.close()


def test_build_without_go_says_what_to_install(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run([str(ROOT / "hack/kube/build.sh")], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BRIX_KUBE_CACHE": str(tmp_path)})
    if (Path("/usr/bin/go")).exists():
        pytest.skip("a Go toolchain is on the bare PATH")
    assert result.returncode == 3
    assert "Install Go 1.26 or newer" in result.stderr and "Traceback" not in result.stderr


def test_build_prints_the_cache_folder_and_skips_what_is_built(tmp_path: Path) -> None:
    import subprocess

    folder = tmp_path / f"{binaries.KUBERNETES_VERSION}-etcd-{binaries.ETCD_VERSION}"
    folder.mkdir()
    for name in binaries.BINARIES:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    result = subprocess.run([str(ROOT / "hack/kube/build.sh")], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BRIX_KUBE_CACHE": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == str(folder)


def test_ready_delay_flags_become_settings_and_bad_ones_say_why(tmp_path: Path) -> None:
    import argparse

    from brix.commands import UsageError
    from brix.node_agent import cli, main

    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("{}")
    parser = argparse.ArgumentParser()
    cli._add_arguments(parser)
    got = main.settings_from_args(parser.parse_args([f"--kubeconfig={kubeconfig}", "--ready-delay=2:10",
                                                     "--ready-seed=7"]))
    assert (got.ready_delay, got.ready_seed) == ((2.0, 10.0), 7)
    assert main.settings_from_args(parser.parse_args([f"--kubeconfig={kubeconfig}"])).ready_delay is None
    for bad in ("10", "10:2", "a:b"):
        with pytest.raises(UsageError, match="--ready-delay"):
            main.settings_from_args(parser.parse_args([f"--kubeconfig={kubeconfig}", f"--ready-delay={bad}"]))
