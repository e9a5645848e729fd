"""The pre-commit hooks run what ``make lint`` and ``make typecheck`` run, with the same tools.

Both files are read as text: the Makefile's variables are expanded by hand,
and the YAML is read by PyYAML, which the docs extra brings (myst-nb needs
it), so no dependency is added for this test.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from conftest import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"
CONFIG = REPO_ROOT / ".pre-commit-config.yaml"
#: Which Makefile target each hook stands for.
HOOKS = {"ruff": "lint", "mypy": "typecheck"}


def make_variables(text: str) -> dict[str, str]:
    """``NAME := value`` (also ``=``, ``?=``) lines of a Makefile, unexpanded."""
    return {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?::=|\?=|=)\s*(.*)$", text, re.MULTILINE)
    }


def expand(command: str, variables: dict[str, str]) -> str:
    """``command`` with every ``$(NAME)`` replaced, as make does (recursively)."""
    for _ in range(20):
        expanded = re.sub(r"\$\((\w+)\)", lambda match: variables[match.group(1)], command)
        if expanded == command:
            return expanded
        command = expanded
    raise AssertionError(f"a variable refers to itself: {command}")


def recipe(text: str, target: str) -> list[str]:
    """The commands of ``target``'s recipe, expanded."""
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
    assert match is not None, f"the Makefile has no recipe for {target}"
    variables = make_variables(text)
    return [expand(line.strip(), variables) for line in match.group(1).splitlines()]


def hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(CONFIG.read_text())
    [repo] = config["repos"]
    assert repo["repo"] == "local", "local hooks only: nothing is downloaded"
    return {hook["id"]: hook for hook in repo["hooks"]}


def test_each_hook_runs_its_make_targets_command_with_the_venvs_tool() -> None:
    text = MAKEFILE.read_text()
    found = hooks()
    assert set(found) == set(HOOKS)
    for hook_id, target in HOOKS.items():
        hook = found[hook_id]
        assert [hook["entry"]] == recipe(text, target), f"hook {hook_id} differs from `make {target}`"
        assert hook["entry"].startswith(".venv/bin/"), "the tools of .venv, the versions make test uses"
        assert hook["language"] == "system" and "additional_dependencies" not in hook
        assert hook["pass_filenames"] is False, "the whole tree, as make does, not the files of the commit"


def test_the_makefile_reader_expands_as_make_does() -> None:
    """The check above can fail: a recipe is read through its variables, and a different one is seen."""
    text = "VENV := .venv\nPY := $(VENV)/bin/python\n\ntypecheck: $(VENV)/.dev\n\t$(PY) -m mypy mrclient\n\nlint:\n\truff check .\n"
    assert recipe(text, "typecheck") == [".venv/bin/python -m mypy mrclient"]
    assert recipe(text, "lint") == ["ruff check ."] != [hooks()["ruff"]["entry"]]
