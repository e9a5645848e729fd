"""The ``notebook`` extra and the words agree: what the docs' notebook needs is what it, the README and the docs install.

The extra holds what mrclient's own code imports in a notebook (pandas for
``to_frame()``, matplotlib for ``mrclient.plotting``) and no Jupyter: the
front end is the user's choice (JupyterLab, a Jupyter they already run, an
editor), so the words name it beside the extras. The docs' notebook also
starts a local crunch, which needs the ``testing`` extra.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "docs" / "notebooks" / "quickstart.ipynb"
#: What a notebook's code uses, and the extra that brings it.
EXTRA_OF = {
    r"^\s*(from|import) mrclient\.testing\b": "testing",
    r"^\s*(from|import) mrclient\.plotting\b": "notebook",
    r"\.to_frame\(": "notebook",
}
INSTALL = "pip install '.[notebook,testing]'"


def _cells(kind: str) -> list[str]:
    notebook = json.loads(NOTEBOOK.read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == kind]


def _extras_installed(text: str) -> set[str]:
    found = re.search(r"pip install '\.\[([a-z,]+)\]'", text)
    assert found, f"no pip install line in {text!r}"
    return set(found[1].split(","))


def test_the_notebook_says_first_how_to_install_every_extra_it_uses_and_a_front_end() -> None:
    code = "\n".join(_cells("code"))
    needed = {extra for pattern, extra in EXTRA_OF.items() if re.search(pattern, code, re.MULTILINE)}
    assert needed == {"testing", "notebook"}, needed  # what the notebook does today: a local crunch, frames, figures
    first = _cells("markdown")[0]
    assert _extras_installed(first) >= needed, first
    assert "jupyterlab" in first and "ipykernel" in first, "a front end, or a kernel for one the reader has"


def test_readme_and_docs_give_the_notebooks_install_line() -> None:
    for path in ("README.rst", "docs/jupyter.rst", "docs/quickstart.rst"):
        text = " ".join((REPO_ROOT / path).read_text().split())
        assert INSTALL in text and "jupyterlab" in text, path


def test_the_notebook_extra_holds_what_mrclient_imports_and_no_jupyter() -> None:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    names = {re.split(r"[<>=!~ ]", line.strip())[0] for line in config["options.extras_require"]["notebook"].splitlines()
             if line.strip()}
    assert names == {"pandas", "matplotlib"}, names
    for module in ("pandas", "matplotlib"):
        assert any(re.search(rf"^\s*(import|from) {module}\b", path.read_text(), re.MULTILINE)
                   for path in Path(REPO_ROOT / "mrclient").rglob("*.py")), f"mrclient imports {module}"
