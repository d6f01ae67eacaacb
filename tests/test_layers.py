"""The package's layers import one way only: each module may import from lower layers, never
from its own layer's siblings or from above. A new module must be placed in LAYERS."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "operator" / "hoststate"

# Lowest first. Modules in one tuple are siblings: none may import another.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "kubetime", "options", "ttl_cache", "prometheus", "heap"),  # shared helpers, no project imports
    ("domain",),  # the rules, pure
    ("resources",),  # the custom resources' models (generate the CRDs)
    ("kube",),  # the Kubernetes client layer
    ("notifications",),  # tenant webhooks, fed by the operator's decisions
    ("operator", "facade", "agent"),  # the three processes
    ("devcluster",),  # development tools: the local control plane, receivers, scrapers
    ("demo",),
    ("cli",),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_level(module: str) -> str:
    """`hoststate.facade.cache` -> `facade`; the package itself -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    """The hoststate modules a file imports, resolved to absolute names (relative imports too)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts if path.name == "__init__.py" else relative.parts[:-1])
    if path.name == "__init__.py":
        package = package[:-1] if package[-1] == "__init__" else package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "hoststate" or name.startswith("hoststate.")}


def edges() -> list[tuple[str, str, str]]:
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for imported in imports_of(path):
            source, target = top_level(module), top_level(imported)
            if source != target:
                result.append((module, source, target))
    return result


def test_every_module_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    names.discard("__pycache__")
    assert names - set(RANK) == set(), "place new top-level modules in LAYERS"


@pytest.mark.parametrize(("module", "source", "target"), edges())
def test_imports_point_down(module: str, source: str, target: str) -> None:
    assert RANK[target] < RANK[source], f"{module} ({source}) imports {target}: not a lower layer"


def test_the_checker_sees_relative_imports() -> None:
    """The edges above are real: the facade reaches the kube layer through relative imports."""
    assert ("hoststate.facade.app", "facade", "kube") in edges()
