"""hoststate processes (operator, agent, facade) run in the background: for `make run`, the
tests and the benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import _die_with_parent

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 30, interval: float = 0.05, what: str = "") -> T:
    """Poll `probe` until it returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last {last!r}")
        time.sleep(interval)
        last = probe()
    return last


def answers_ok(url: str, timeout: float = 2) -> bool:
    """A probe: True when `url` answers 200 (/readyz, /healthz), False when it refuses, errs or is away."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def candidate_identity(output: str) -> str:
    """An operator's leader-election candidate name (the Lease's holder, its writes' fieldManager), from its log."""
    found = re.search(r"hoststate operator started: .*, candidate (\S+)", output)
    assert found, "the operator has not started"
    return found.group(1)


class HoststateProcess:
    """`hoststate <args>` in the background, its output in a log file."""

    def __init__(self, args: list[str], kubeconfig: Path, name: str, log: Path | None = None) -> None:
        self.args = args
        self.kubeconfig = kubeconfig
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.log = log or Path(tempfile.mkstemp(prefix=f"hoststate-{name}-", suffix=".log")[1])

    def start(self) -> HoststateProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            # Dies with its parent (PR_SET_PDEATHSIG): nothing is orphaned if the parent is killed.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hoststate.cli", *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return text in self.output()

        wait_for(seen, timeout=timeout, what=f"{self.name} to print {text!r}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
