"""The folder listing is the architecture: layers as packages, imports only downward, no loop.

Every import of every module under ``mrclient/`` is read from its source (type-only
imports and imports inside functions included) and checked against ``LAYERS``:
a module may import its own package and the layers strictly below its own, never
one beside or above. The layers' ``__init__`` docstrings say the same in words,
and this test holds them to their number.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mrclient"

#: Rank of each layer: a package of ``mrclient`` (or a module at its top level).
LAYERS: dict[str, int] = {
    "errors": 0,
    "_support": 1,
    "wire": 2,
    "security": 2,
    "stats": 3,
    "runners": 4,
    "orchestrator": 4,
    "testing": 4,
    "cluster": 5,
    "concurrent": 6,
    "view": 7,
    "watch": 7,
    # the public faces at the top: the package itself and the facades, then the command line
    "__init__": 8,
    "aio": 8,
    "metrics": 8,
    "notebook": 8,
    "plotting": 8,
    "results": 8,
    "cli": 9,
    "__main__": 10,
}
#: Generated code, checked by tests/test_protos.py instead.
GENERATED = "wire.proto"
#: The most modules a layer's folder holds, ``__init__`` aside.
MODULES_PER_FOLDER = 12


def _modules() -> Iterator[tuple[str, Path]]:
    """(dotted name below ``mrclient``, path) of every module, generated code aside."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts)
        if name.startswith(GENERATED):
            continue
        yield name, path


def _layer(name: str) -> str:
    return name.split(".")[0]


def _package_of(name: str, path: Path) -> list[str]:
    parts = name.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name below ``mrclient``) of each mrclient module or package ``name`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mrclient."):
                    yield node.lineno, alias.name.removeprefix("mrclient.")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module is None or not (node.module == "mrclient" or node.module.startswith("mrclient.")):
                    continue
                base = node.module.split(".")[1:]
            else:
                package = _package_of(name, path)
                base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            if base:
                yield node.lineno, ".".join(base)
            else:  # ``from . import x`` at the top: each name is a module of its own (or __version__)
                for alias in node.names:
                    yield node.lineno, alias.name if (PACKAGE / f"{alias.name}.py").exists() else "__init__"


def _graph() -> dict[str, set[str]]:
    names = {name for name, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in _modules():
        targets = set()
        for _, target in _imports(name, path):
            while target not in names and f"{target}.__init__" not in names and "." in target:
                target = target.rpartition(".")[0]  # ``from .x import y`` where y is a name
            targets.add(f"{target}.__init__" if f"{target}.__init__" in names else target)
        graph[name] = targets - {name}
    return graph


def test_every_module_belongs_to_a_layer() -> None:
    unknown = sorted({_layer(name) for name, _ in _modules()} - set(LAYERS))
    assert not unknown, f"add these to LAYERS (and DESIGN.md's layout): {unknown}"


def test_imports_go_only_down_the_layers() -> None:
    wrong = []
    for name, path in _modules():
        here = _layer(name)
        for line, target in _imports(name, path):
            there = _layer(target)
            if there == here and here not in {"__init__"} and "." in name:
                continue  # within its own package
            if LAYERS[there] >= LAYERS[here] and there != here:
                wrong.append(f"mrclient/{path.relative_to(PACKAGE)}:{line} ({here}, layer {LAYERS[here]}) "
                             f"imports mrclient.{target} ({there}, layer {LAYERS[there]})")
            elif there == here and "." not in name and name != "__init__":
                wrong.append(f"mrclient/{path.relative_to(PACKAGE)}:{line} imports mrclient.{target}")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_there_is_no_import_loop() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not loops, f"import loops: {loops}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The test itself can fail: an import from the cluster up into concurrent is caught."""
    module = tmp_path / "cluster" / "bad.py"
    module.parent.mkdir()
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..concurrent.base import X\n")
    imported = [target for _, target in _imports("cluster.bad", module)]
    assert imported == ["concurrent.base"]
    assert LAYERS[_layer(imported[0])] > LAYERS["cluster"]


@pytest.mark.parametrize("layer", sorted(name for name in LAYERS if (PACKAGE / name).is_dir()))
def test_each_layer_says_what_it_is_and_what_it_may_import(layer: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
    said = re.search(r"Layer (\d+)", docstring)
    assert said is not None and int(said.group(1)) == LAYERS[layer], f"mrclient/{layer}/__init__.py: say 'Layer {LAYERS[layer]}'"
    allowed = re.search(r"may\s+import(.*?)(?:\.\s|\.$)", docstring, re.DOTALL)
    assert allowed is not None, f"mrclient/{layer}/__init__.py: say what the layer may import"
    named = set(re.findall(r"``(?:mrclient\.)?(\w+)``", allowed.group(1))) & set(LAYERS)
    above = sorted(name for name in named if LAYERS[name] >= LAYERS[layer])
    assert not above, f"mrclient/{layer}/__init__.py says it may import {above}, which are not below it"


@pytest.mark.parametrize("layer", sorted(name for name in LAYERS if (PACKAGE / name).is_dir()))
def test_each_folder_holds_at_most_a_dozen_modules(layer: str) -> None:
    modules = [path for path in (PACKAGE / layer).glob("*.py") if path.name != "__init__.py"]
    assert len(modules) <= MODULES_PER_FOLDER, f"mrclient/{layer}/ holds {len(modules)} modules"
