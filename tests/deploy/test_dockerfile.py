"""The Dockerfile (it cannot be built here: no Docker engine) passes hadolint and keeps its shape."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hoststate.devcluster import REPO_ROOT

from .conftest import run

DOCKERFILE = REPO_ROOT / "Dockerfile"
CONFIG = REPO_ROOT / ".hadolint.yaml"


def lint(hadolint: str, dockerfile: Path) -> str:
    result = run([hadolint, "--no-color", "--config", str(CONFIG), str(dockerfile)])
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_dockerfile_passes_hadolint(hadolint: str) -> None:
    assert lint(hadolint, DOCKERFILE) == ""


def test_hadolint_does_find_problems(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD hoststate\n")
    findings = lint(hadolint, bad)
    for rule in ("DL3007", "DL3008", "DL3015", "DL3025"):  # latest tag, unpinned, recommends, JSON CMD
        assert rule in findings


def stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_image_is_multi_stage_slim_non_root_with_the_hoststate_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    build, runtime = stages(text)
    assert " AS build" in build.splitlines()[0]
    assert "COPY --from=build" in runtime and "pip install" not in runtime  # built once, copied
    user = re.search(r"^USER (\d+)(?::(\d+))?$", runtime, re.M)
    assert user and int(user.group(1)) != 0, "the image must run as a numeric non-root user"
    assert re.search(r'^ENTRYPOINT \["hoststate"\]$', runtime, re.M)
    # The same UID the manifests' pods run as.
    manifests = (REPO_ROOT / "deploy" / "manifests" / "deployment.yaml").read_text()
    assert f"runAsUser: {user.group(1)}" in manifests


def test_image_installs_only_the_runtime_dependencies() -> None:
    build = stages(DOCKERFILE.read_text())[0]
    install = re.search(r"pip install [^\n]*", build).group()
    assert install.rstrip(" \\").endswith(" ."), f"no extras ([test], [dev]) in the image: {install}"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hoststate"] == "hoststate.cli:main"
