"""A real local Kubernetes control plane (etcd + kube-apiserver) for development and tests.

Started like controller-runtime's envtest: etcd on 127.0.0.1 with its data on tmpfs and
no fsync, kube-apiserver on 127.0.0.1 with RBAC, a static admin token and service-account
keys. There is no controller-manager, so namespaces never finish deleting. For chaos tests
either process can be killed (SIGKILL) and restarted as it was: etcd on the same data and
ports, kube-apiserver with the same flags and port.
"""

from __future__ import annotations

import base64
import ctypes
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .certs import write_pki

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-control-plane.sh"
ADMIN_USER = "hoststate-admin"


class DevClusterError(RuntimeError):
    pass


def control_plane_bin_dir(build: bool = True) -> Path:
    """The cached binaries' directory (built by scripts/build-control-plane.sh when missing)."""
    override = os.environ.get("HOSTSTATE_CONTROL_PLANE_BIN")
    if override:
        return Path(override)
    if not build:
        raise DevClusterError("HOSTSTATE_CONTROL_PLANE_BIN is not set")
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the launcher dies, so nothing is orphaned."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tmpfs_root() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@dataclass
class DevCluster:
    """etcd and kube-apiserver on free loopback ports. Use as a context manager."""

    bin_dir: Path
    workdir: Path | None = None
    extra_apiserver_args: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0

    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    server: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._own_workdir = self.workdir is None
        self._data_dir: Path | None = None
        self._commands: dict[str, list[str]] = {}  # name -> its command line, to restart it as it was

    # -- paths ---------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "pki" / "ca.crt"

    def log_file(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{name}.log"

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> DevCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="hoststate-devcluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # etcd's data on tmpfs: the suite writes a lot and never needs it durable.
        self._data_dir = Path(tempfile.mkdtemp(prefix="hoststate-etcd-", dir=_tmpfs_root()))
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(exist_ok=True)
        pki = write_pki(pki_dir)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url, pki, tokens)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._write_kubeconfig()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_file(name), "ab")  # noqa: SIM115 - closed when the process is reaped
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = proc
        self._commands[name] = args
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL `name` ("etcd" or "kube-apiserver") and reap it: a crash, nothing shut down cleanly."""
        proc = self.processes[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        """Start `name` again with its command line (etcd on its data), once it has exited (killed, or died on
        its own); return when the API server's /readyz answers 200 again."""
        if self.processes[name].poll() is None:
            raise DevClusterError(f"{name} is still running")
        self._spawn(name, self._commands[name])
        self._wait_ready()

    def revive(self) -> None:
        """Restart whichever process has exited, etcd first, and wait for /readyz: a chaos test's cleanup, run
        whether or not the test got as far as restarting what it killed."""
        for name in ("etcd", "kube-apiserver"):
            if self.processes[name].poll() is not None:
                self._spawn(name, self._commands[name])
        self._wait_ready()

    @property
    def healthy(self) -> bool:
        """Both processes run and the API server's /readyz answers 200."""
        if any(proc.poll() is not None for proc in self.processes.values()):
            return False
        try:
            with urllib.request.urlopen(self._readyz_request(), context=self._ssl_context(), timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                f"--data-dir={self._data_dir}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=8589934592",
            ],
        )
        return url

    def _start_apiserver(self, etcd_url: str, pki: dict[str, Path], tokens: Path) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki['apiserver.crt']}",
                f"--tls-private-key-file={pki['apiserver.key']}",
                f"--client-ca-file={pki['ca.crt']}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki['sa.pub']}",
                f"--service-account-signing-key-file={pki['sa.key']}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _readyz_request(self) -> urllib.request.Request:
        return urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"})

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        request = self._readyz_request()
        context = self._ssl_context()
        last_error = ""
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise DevClusterError(f"{name} exited with {proc.returncode}:\n{self._tail(name)}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)
        raise DevClusterError(
            f"kube-apiserver not ready after {self.startup_timeout}s ({last_error}):\n{self._tail('kube-apiserver')}"
        )

    def _tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "hoststate", "cluster": {"server": self.server, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.admin_token}}],
            "contexts": [{"name": "hoststate", "context": {"cluster": "hoststate", "user": ADMIN_USER}}],
            "current-context": "hoststate",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        """Stop the API server, then etcd; remove etcd's data (and the workdir if we made it)."""
        for name in ("kube-apiserver", "etcd"):
            proc = self.processes.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
