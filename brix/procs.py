"""Start a `brix` subcommand (or any program) as a child process, wait until it is ready,
stop it by PID. Shared by `brix up` and the test fixtures, so both start things one way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A child exited early or never became ready; the message carries the tail of its log."""


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    ready_url: str | None = None
    ready_socket: str | None = None
    ready_port: int | None = None  # a TCP port on 127.0.0.1 that accepts connections once ready
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessFailed(
                    f"{self.name} (pid {self.pid}) exited with code {self.popen.returncode} before it was ready;"
                    f" last log lines:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            time.sleep(0.05)
        raise ProcessFailed(
            f"{self.name} (pid {self.pid}) not ready after {timeout:.0f}s"
            f" (waited for {self.ready_url or self.ready_socket or f'127.0.0.1:{self.ready_port}'}); last log lines:\n{self.log_tail()}"
        )

    def _is_ready(self) -> bool:
        if self.ready_url:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        if self.ready_socket:
            path = self.ready_socket
            if not os.path.exists(path):
                return False
            with socket.socket(socket.AF_UNIX) as sock:
                try:
                    sock.connect(path)
                    return True
                except OSError:
                    return False
        if self.ready_port:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.ready_port)) == 0
        return True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID, then SIGKILL after timeout. Returns the exit code."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode


def brix_argv(*args: str) -> list[str]:
    """argv that runs `brix <args>` with the current interpreter (works before `pip install`)."""
    return [sys.executable, "-m", "brix", *args]


def start(
    name: str,
    argv: list[str],
    log_path: Path,
    *,
    ready_url: str | None = None,
    ready_socket: str | None = None,
    ready_port: int | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    inherit_env: bool = True,
) -> ManagedProcess:
    """inherit_env=False starts the child with only PATH, HOME, LANG and `env` (a pod's process
    must not see the node agent's own credentials)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    if inherit_env:
        full_env = dict(os.environ)
    else:
        full_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        full_env.update(env)
    popen = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
        start_new_session=True,
    )
    log_file.close()
    return ManagedProcess(name, argv, log_path, popen, ready_url=ready_url, ready_socket=ready_socket,
                          ready_port=ready_port)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
