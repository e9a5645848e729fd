"""Every Python example in README.rst, CONTRIBUTING.rst and docs/*.rst says whether it runs; those that say so run as written.

The convention, for every page:

* Python code is always in a ``.. code-block:: python`` directive, directly
  preceded by one of two RST comments (invisible on the page):
  ``.. runs-as-is`` for a complete program, which this file runs as written
  in a fresh process (it starts its own local crunch with ``mrclient.testing``,
  or needs nothing, and ends in seconds; a block that defines ``test_``
  functions is a test module and runs under pytest), or ``.. fragment`` for
  code that needs more around it (a ``runner`` from elsewhere, a production
  orchestrator), in which case the page's prose says so: the word "fragment"
  appears in the section the block is in, or in the page's introduction.
* ``::`` literal blocks and other languages' code blocks (``text``,
  ``console``) hold shell commands, output, JSON and protobuf, never Python:
  one that parses as Python statements (an import, an assignment, a call)
  fails here, so that no example escapes the check by its markup.
* ``literalinclude`` shows a file of the repository that is run elsewhere
  (``examples/coordinator``, by tests/test_example_coordinator.py); notebooks
  run in the docs build.

Each program runs once, here: what a page says its program prints is checked
on that run (``PRINTS``), not by running the program again elsewhere.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT

RUNS, FRAGMENT = ".. runs-as-is", ".. fragment"
PYTHON = {"python", "python3", "py"}
RUN_TIMEOUT = 120.0

_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. (?:code-block|code|sourcecode)::\s*(?P<language>\S*)\s*$")
_HEADING_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+]){3,}\s*$")


@dataclass(frozen=True)
class Block:
    """One code block of a page: where it is, its language ('' for a ``::`` literal), its marker and code."""

    page: str
    line: int  # 1-based line of the directive, or of the paragraph ending in ``::``
    language: str
    marker: str | None  # RUNS, FRAGMENT, or None
    code: str
    prose: str  # the section's text before the block, or the page's introduction, for the fragment rule

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [REPO_ROOT / "README.rst", REPO_ROOT / "CONTRIBUTING.rst", *sorted((REPO_ROOT / "docs").glob("*.rst"))]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _body(lines: list[str], start: int, indent: int) -> str:
    """The dedented lines from ``start`` on that are blank or indented past ``indent``."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return textwrap.dedent("\n".join(lines[start:end])).strip("\n") + "\n"


def _previous_text_line(lines: list[str], index: int) -> str | None:
    for line in reversed(lines[:index]):
        if line.strip():
            return line
    return None


def blocks_of(text: str, page: str) -> list[Block]:
    """Every ``code-block`` and ``::`` literal block of an RST page."""
    lines = text.splitlines()
    headings = [i - 1 for i, line in enumerate(lines) if i and _HEADING_UNDERLINE.match(line) and lines[i - 1].strip()
                and not _HEADING_UNDERLINE.match(lines[i - 1])]
    introduction = "\n".join(lines[: headings[1] if len(headings) > 1 else len(lines)])  # past the page's title
    blocks = []
    for index, line in enumerate(lines):
        directive = _DIRECTIVE.match(line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if not directive and not literal:
            continue
        indent = _indent(line)
        if literal and (bullet := re.match(r" *(?:[*+-]|\d+\.) ", line)):  # a list item's text starts past it
            indent = len(bullet.group(0))
        start = index + 1
        while directive and start < len(lines) and lines[start].strip().startswith(":"):  # the directive's options
            start += 1
        code = _body(lines, start, indent)
        if not code.strip():
            continue
        section_start = max((h for h in headings if h < index), default=0)
        prose = "\n".join(lines[section_start:index]) + "\n" + introduction
        marker = None
        previous = _previous_text_line(lines, index)
        if directive and previous is not None and _indent(previous) == indent and previous.strip() in (RUNS, FRAGMENT):
            marker = previous.strip()
        language = directive.group("language").lower() if directive else ""
        blocks.append(Block(page, index + 1, language, marker, code, prose))
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks_of(path.read_text(), path.name)]


def looks_like_python(code: str) -> bool:
    """Whether ``code`` parses as Python that does something: a statement, or a method call.

    Shell lines (``make demo``, ``pip install .``) do not parse; JSON parses as a
    bare dict, ``mrclient --version`` as a subtraction and a printed value
    (``ModelPredictResult(status=FAILED, ...)``) as a bare expression, which pass.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(not isinstance(statement, ast.Expr) for statement in tree.body) or any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) for node in ast.walk(tree)
    )


def runnable() -> list[Block]:
    return [block for block in all_blocks() if block.language in PYTHON and block.marker == RUNS]


# -- the rules -------------------------------------------------------------------------------


def test_every_python_block_says_whether_it_runs() -> None:
    unmarked = [block.name for block in all_blocks() if block.language in PYTHON and block.marker is None]
    assert unmarked == [], f"precede each with '{RUNS}' (a complete program) or '{FRAGMENT}' (and say so)"


def test_every_fragment_is_called_one_in_its_section() -> None:
    silent = [
        block.name for block in all_blocks()
        if block.marker == FRAGMENT and "fragment" not in block.prose.replace(FRAGMENT, "").lower()
    ]  # fmt: skip
    assert silent == [], "the prose of the section (or the page's introduction) must say these are fragments"


def test_no_python_hides_in_a_literal_or_another_languages_block() -> None:
    hidden = [block.name for block in all_blocks() if block.language not in PYTHON and looks_like_python(block.code)]
    assert hidden == [], "Python goes in a '.. code-block:: python' with its marker, so that it is checked"


def _every_line_a_success(stdout: str) -> None:
    lines = stdout.splitlines()
    assert lines and all("SUCCESS" in line for line in lines), stdout


def _six_successes(stdout: str) -> None:
    lines = stdout.splitlines()
    assert len(lines) == 6 and all("SUCCESS" in line for line in lines), stdout


def _one_test_passed(stdout: str) -> None:
    assert "1 passed" in stdout, stdout


def _three_ticks_and_closed(stdout: str) -> None:
    lines = stdout.splitlines()
    statuses = [line.split()[:2] for line in lines[:-1]]
    assert statuses == [["broken:", "FAILED"], ["ewma:", "SUCCESS"], ["slow:", "TIMEOUT"]] * 3, stdout
    assert lines[-1] == "closed: True", stdout


def _the_secure_model_answers(stdout: str) -> None:
    assert stdout.startswith("model-1 SUCCESS {'location': 19.2"), stdout


#: What the programs of a page print, as its prose says, checked on their one run (the page's every program).
PRINTS: dict[str, Callable[[str], None]] = {
    "README.rst": _every_line_a_success,  # both examples: a line per model and round
    "quickstart.rst": _six_successes,  # the first script: three rounds of two models
    "testing.rst": _one_test_passed,  # the fixture and its test, under pytest
    "asyncio.rst": _three_ticks_and_closed,  # the kernel: three ticks of three models, then closed
    "secure-mode.rst": _the_secure_model_answers,
}


def test_there_are_complete_programs_to_run() -> None:
    pages_with_programs = {block.page for block in runnable()}
    assert {"README.rst", "quickstart.rst", "testing.rst", "watching.rst", "secure-mode.rst"} <= pages_with_programs
    assert set(PRINTS) <= pages_with_programs, "each check of PRINTS has a program to check"


@pytest.mark.parametrize("block", runnable(), ids=lambda block: block.name)
@pytest.mark.subprocess
def test_a_complete_program_runs_as_written(block: Block, tmp_path: Path) -> None:
    is_test_module = re.search(r"^def test_", block.code, re.MULTILINE) is not None
    script = tmp_path / ("test_example.py" if is_test_module else "example.py")
    script.write_text(block.code)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name] if is_test_module else [
        sys.executable, script.name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    if is_test_module:
        assert re.search(r"\b\d+ passed\b", done.stdout) and "failed" not in done.stdout, done.stdout
    if block.page in PRINTS:
        PRINTS[block.page](done.stdout)


# -- the block finder itself -----------------------------------------------------------------

SAMPLE = """\
Title
=====

Intro: the code below is a fragment.

Section
-------

.. runs-as-is

.. code-block:: python

    print("complete")

* an item whose code is::

      x = compute()

  and more.

.. fragment

.. code-block:: python
   :caption: options are skipped

   runner.call("predict")

.. code-block:: python

    unmarked()

Shell::

    make demo
"""


def test_the_block_finder_reads_markers_literals_options_and_sections() -> None:
    blocks = blocks_of(SAMPLE, "sample.rst")
    assert [(b.line, b.language, b.marker, b.code) for b in blocks] == [
        (11, "python", RUNS, 'print("complete")\n'),
        (15, "", None, "x = compute()\n"),
        (23, "python", FRAGMENT, 'runner.call("predict")\n'),
        (28, "python", None, "unmarked()\n"),
        (32, "", None, "make demo\n"),
    ]
    assert "Intro: the code below is a fragment." in blocks[2].prose and "Section" in blocks[2].prose
    assert looks_like_python(blocks[1].code) and not looks_like_python(blocks[4].code)
    assert not looks_like_python('{"event": "report_failure", "data": []}') and not looks_like_python("mrclient --version")
    assert not looks_like_python("ModelPredictResult(status=FAILED, result=None)") and looks_like_python("runner.close()")
