"""Fixtures for the deployment tests: the rendered kustomize base, promtool, hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from hoststate.devcluster import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "manifests"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
HERE = Path(__file__).parent
INSTALL_NAMESPACE = "hoststate-system"  # the base's namespace, also the heartbeat Leases' one
INSTALL_HINT = "run scripts/install-test-tools.sh (make test does)"


@pytest.fixture(scope="session")
def rendered_text(bin_dir: Path) -> str:
    result = subprocess.run(
        [str(bin_dir / "kubectl"), "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize deploy/manifests failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def rendered(rendered_text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in the rendered base, found {len(matches)}"
    return matches[0]


def tool(name: str) -> str:
    """A test tool from the PATH or the venv's bin; a clear failure (not a skip) when missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: {INSTALL_HINT}"
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return tool("hadolint")


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture(scope="session")
def install_namespace(api_client: k8s.ApiClient) -> str:
    """The base's namespace, created for real (objects in it cannot be dry-run without it)."""
    try:
        k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=INSTALL_NAMESPACE)))
    except k8s.ApiException as error:
        if error.status != 409:
            raise
    return INSTALL_NAMESPACE
