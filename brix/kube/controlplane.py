"""The upstream Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (TLS, RBAC, service
account tokens, the default admission plugins), kube-controller-manager and kube-scheduler, each a
child process on free ports, stopped by PID.

    plane = ControlPlane(ControlPlaneSettings(workdir=Path("/tmp/k")))
    plane.start()          # returns once /readyz answers and the scheduler is healthy
    plane.kubeconfig       # admin kubeconfig (system:masters)
    plane.stop()

kube-scheduler runs with a KubeSchedulerConfiguration (deploy/scheduler_ext/scheduler-config.yaml in
`brix up` and the tests) with only the extender URL and the client connection rewritten, so the
extender is called exactly as a cluster would call it.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from brix import procs
from brix.kube import binaries, bootstrap, pki
from brix.logs import kv

log = logging.getLogger(__name__)

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of SERVICE_CIDR


@dataclass(frozen=True)
class ControlPlaneSettings:
    workdir: Path
    """Folder for certificates, kubeconfigs, etcd data and logs (created; reused data is wiped)."""
    scheduler_config: Path | None = None
    """A KubeSchedulerConfiguration file; None runs kube-scheduler with its defaults."""
    extender_url: str | None = None
    """Replaces urlPrefix of the config's extenders (the local `brix scheduler-ext`)."""
    scheduler_qps: float = 50.0
    """kube-scheduler's client QPS (its own default is 50); the benchmark raises it."""
    controllers: str = "*"
    """kube-controller-manager --controllers (`*` = its defaults: Deployments, ReplicaSets,
    endpoint slices, garbage collection, service accounts, namespaces, node lifecycle, ...)."""
    start_timeout: float = 120.0
    """Seconds to wait for each component to become ready."""


def kubeconfig_yaml(server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
                    token: str | None = None, user: str = "brix", namespace: str | None = None) -> str:
    """A one-context kubeconfig with file paths (client certificate) or a bearer token."""
    auth: dict[str, Any] = {}
    if cert and key:
        auth = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        auth["token"] = token
    context: dict[str, Any] = {"cluster": "brix-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "brix-local",
        "clusters": [{"name": "brix-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "brix-local", "context": context}],
    }, sort_keys=False)


def scheduler_configuration(source: dict[str, Any] | None, kubeconfig: Path, extender_url: str | None,
                            qps: float) -> dict[str, Any]:
    """The KubeSchedulerConfiguration to run: the source's profiles and extenders, with the client
    connection pointed at the local API server, leader election off (one replica) and every
    extender's urlPrefix replaced by extender_url. Pure."""
    config = dict(source or {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"})
    config["clientConnection"] = {**config.get("clientConnection", {}), "kubeconfig": str(kubeconfig),
                                  "qps": qps, "burst": int(qps * 2)}
    config["leaderElection"] = {"leaderElect": False}
    if extender_url is not None:
        config["extenders"] = [{**e, "urlPrefix": extender_url} for e in config.get("extenders", [])]
    return config


@dataclass
class ControlPlane:
    settings: ControlPlaneSettings
    bins: binaries.KubeBinaries | None = None
    processes: dict[str, procs.ManagedProcess] = field(default_factory=dict)
    api_port: int = 0
    etcd_port: int = 0
    started_in: float = 0.0
    _pki: pki.Pki | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self.settings.workdir

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.workdir / "admin.kubeconfig"

    def kubeconfig_for(self, who: pki.Identity) -> Path:
        return self.workdir / f"{who.file_stem}.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        assert self._pki is not None
        return self._pki.ca_cert

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        self.bins = self.bins or binaries.find()
        for sub in ("etcd", "logs"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = pki.generate(self.workdir / "pki", service_ip=SERVICE_IP)
        self.etcd_port, peer_port, self.api_port = procs.free_port(), procs.free_port(), procs.free_port()
        for who in pki.IDENTITIES:
            path = self.kubeconfig if who is pki.ADMIN else self.kubeconfig_for(who)
            path.write_text(kubeconfig_yaml(self.server, self._pki.ca_cert, self._pki.client_cert(who),
                                            self._pki.client_key(who), user=who.user))
        try:
            self._start_etcd(peer_port)
            self._start_apiserver()
            bootstrap.apply(self.kubeconfig)
            self._start_controller_manager()
            self.start_scheduler()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        kv(log, "control plane ready", server=self.server, kubeconfig=self.kubeconfig,
           seconds=round(self.started_in, 1))

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver by PID and start it again on the same port (for watch-recovery tests)."""
        self.processes.pop("kube-apiserver").stop()
        self._start_apiserver()

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each control-plane process, from /proc."""
        out = {}
        for name, proc in self.processes.items():
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    # -- components --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> procs.ManagedProcess:
        proc = procs.start(name, argv, self.logs / f"{name}.log")
        self.processes[name] = proc
        kv(log, "started", component=name, pid=proc.pid, log=proc.log_path)
        return proc

    def _start_etcd(self, peer_port: int) -> None:
        assert self.bins is not None
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer_port}"
        proc = self._spawn("etcd", [
            str(self.bins.path("etcd")), "--name=brix-local", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=brix-local={peer}", "--log-level=warn",
            # a throwaway test cluster: no fsync (etcd's own flag for exactly this), small WAL segments
            "--unsafe-no-fsync", "--quota-backend-bytes=2147483648", "--snapshot-count=5000",
        ])
        self._wait(proc, f"{client}/health", tls=False)

    def _start_apiserver(self) -> None:
        assert self.bins is not None and self._pki is not None
        p = self._pki
        proc = self._spawn("kube-apiserver", [
            str(self.bins.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            # the endpoint reconciler refuses a loopback address; nothing here routes ClusterIPs anyway
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={p.serving_cert}", f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_cert}",
            "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}", f"--service-account-signing-key-file={p.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true", "--profiling=false", "--v=1",
            # the pods of this cluster are local processes: no kubelet serves logs/exec
            "--kubelet-preferred-address-types=InternalIP",
        ])
        self._wait(proc, f"{self.server}/readyz", tls=True)

    def _start_controller_manager(self) -> None:
        assert self.bins is not None and self._pki is not None
        port = procs.free_port()
        kubeconfig = self.kubeconfig_for(pki.CONTROLLER_MANAGER)
        proc = self._spawn("kube-controller-manager", [
            str(self.bins.path("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false",
            f"--controllers={self.settings.controllers}", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self._pki.sa_key}", f"--root-ca-file={self._pki.ca_cert}",
            f"--cluster-signing-cert-file={self._pki.ca_cert}", f"--cluster-signing-key-file={self._pki.ca_key}",
            "--profiling=false", "--v=1",
            # its default 20 QPS takes minutes to lift the not-ready taint of 1,000 new nodes
            "--kube-api-qps=200", "--kube-api-burst=400",
            # pods of the node agent are local processes; garbage-collect finished ones quickly
            "--terminated-pod-gc-threshold=100",
        ])
        self._wait(proc, f"https://127.0.0.1:{port}/healthz", tls=True, verify=False)

    def stop_scheduler(self) -> None:
        """Stop kube-scheduler by PID (benchmarks queue pods first, then start it again)."""
        self.processes.pop("kube-scheduler").stop()

    def start_scheduler(self, *, extenders: bool = True, feature_gates: dict[str, bool] | None = None) -> None:
        """Start kube-scheduler with the settings' configuration; extenders=False drops its
        extenders (the benchmark's baseline, on the same cluster); feature_gates go to
        --feature-gates."""
        assert self.bins is not None
        source = None
        if self.settings.scheduler_config is not None:
            source = yaml.safe_load(self.settings.scheduler_config.read_text())
            if not extenders:
                source.pop("extenders", None)
        config = scheduler_configuration(source, self.kubeconfig_for(pki.SCHEDULER), self.settings.extender_url,
                                         self.settings.scheduler_qps)
        path = self.workdir / "scheduler-config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = procs.free_port()
        kubeconfig = self.kubeconfig_for(pki.SCHEDULER)
        proc = self._spawn("kube-scheduler", [
            str(self.bins.path("kube-scheduler")), f"--config={path}", "--bind-address=127.0.0.1",
            f"--secure-port={port}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--v=2",
            *([f"--feature-gates={','.join(f'{k}={str(v).lower()}' for k, v in feature_gates.items())}"]
              if feature_gates else []),
        ])
        self._wait(proc, f"https://127.0.0.1:{port}/healthz", tls=True, verify=False)

    def _wait(self, proc: procs.ManagedProcess, url: str, *, tls: bool, verify: bool = True) -> None:
        context = None
        if tls:
            assert self._pki is not None
            context = ssl.create_default_context(cafile=str(self._pki.ca_cert)) if verify else \
                ssl._create_unverified_context()  # noqa: S323 - loopback health check of a component's own cert
            if verify:
                context.load_cert_chain(self._pki.client_cert(pki.ADMIN), self._pki.client_key(pki.ADMIN))
        deadline = time.monotonic() + self.settings.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if not proc.alive():
                raise procs.ProcessFailed(f"{proc.name} exited with code {proc.popen.returncode} while starting;"
                                          f" log {proc.log_path}:\n{proc.log_tail(30)}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[-300:].decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise procs.ProcessFailed(f"{proc.name} not ready at {url} after {self.settings.start_timeout:.0f}s"
                                  f" ({last}); log {proc.log_path}:\n{proc.log_tail(30)}")
