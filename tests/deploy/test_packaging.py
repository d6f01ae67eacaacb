"""What ships is what runs: every import of the package is a declared dependency, the development
tools' own ones are in the devtools extra, and the image leaves those tools out."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from hoststate.cli import main
from hoststate.devcluster import REPO_ROOT

PACKAGE = REPO_ROOT / "operator" / "hoststate"
DEV_TOOLS = (PACKAGE / "devcluster", PACKAGE / "demo.py")
EXTRAS = {PACKAGE / "agent" / "libvirt_driver.py": "libvirt"}  # optional modules -> the extra they need
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def distribution_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[=<>\[;]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in requirements}


def third_party_imports(paths: list[Path]) -> set[str]:
    """The distributions the modules under `paths` import (not the standard library, not hoststate)."""
    modules: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"hoststate"}
    by_module = packages_distributions()
    return {name.lower().replace("_", "-") for module in modules for name in by_module[module]}


def is_dev_tool(path: Path) -> bool:
    return any(path == tool or tool in path.parents for tool in DEV_TOOLS)


def test_every_import_of_the_runtime_is_a_declared_dependency() -> None:
    runtime = [path for path in PACKAGE.rglob("*.py") if not is_dev_tool(path) and path not in EXTRAS]
    assert third_party_imports(runtime) <= distribution_names(PROJECT["dependencies"])


@pytest.mark.parametrize(("path", "extra"), EXTRAS.items(), ids=lambda value: getattr(value, "name", value))
def test_optional_modules_need_only_the_runtime_and_their_extra(path: Path, extra: str) -> None:
    declared = distribution_names(PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra])
    assert third_party_imports([path]) <= declared


def test_the_dev_tools_need_only_the_runtime_and_the_devtools_extra() -> None:
    tools = [path for tool in DEV_TOOLS for path in ([tool] if tool.is_file() else tool.rglob("*.py"))]
    declared = distribution_names(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["devtools"])
    assert third_party_imports(tools) <= declared


def test_the_image_leaves_the_dev_tools_out() -> None:
    build = (REPO_ROOT / "Dockerfile").read_text().split("\nFROM ")[1]
    removed = re.search(r"RUN rm -r ([^\\\n]+)", build).group(1).split()
    assert sorted(removed) == sorted(str(tool.relative_to(REPO_ROOT)) for tool in DEV_TOOLS)


@pytest.mark.parametrize("command", ["run", "demo"])
def test_dev_commands_say_what_they_need_without_the_dev_tools(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("hoststate.devcluster", "hoststate.devcluster.stack", "hoststate.demo"):
        monkeypatch.setitem(sys.modules, module, None)  # as in the image: not importable
    with pytest.raises(SystemExit, match=rf"`hoststate {command}` is a development tool.*devtools"):
        main([command])
