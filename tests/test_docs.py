"""What the docs show is true (the build itself is ``make docs``, warnings as errors).

The docs' complete programs run in tests/test_doc_examples.py, each once, with what they print checked there.
"""

from __future__ import annotations

import configparser
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from bs4 import BeautifulSoup, Tag
from sphinx.pycode import ModuleAnalyzer
from traitlets.config import Config

import mrclient
from _html_tables import tables, text_outside_tables
from conftest import REPO_ROOT
from mrclient.cluster.penalties import PenaltyPolicy, TimeoutVerdict

DOCS = REPO_ROOT / "docs"
RUN_TIMEOUT = 120.0


def python_blocks(page: str) -> list[str]:
    """Every ``.. code-block:: python`` of a docs page, dedented."""
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", (DOCS / page).read_text(), re.MULTILINE)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE) for block in blocks]


@pytest.mark.subprocess
def test_the_contributing_guides_example_test_passes_with_the_suites_fixtures(tmp_path: Path) -> None:
    """The guide's test is a fragment (it needs tests/ around it): run with tests/conftest.py loaded as a plugin."""
    [example] = [block for block in python_blocks("../CONTRIBUTING.rst") if "def test_" in block]
    (tmp_path / "test_contributing_example.py").write_text(example)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "test_contributing_example.py"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def _calls_until_reported(max_consecutive_timeouts: int) -> tuple[list[int], int]:
    """(calls that really time out, call on which the model is reported) for a model that never answers."""

    class Runner:
        consecutive_failures = consecutive_timeouts = cooldown_calls_remaining = 0

    policy, runner, timed_out = PenaltyPolicy(max_consecutive_timeouts=max_consecutive_timeouts), Runner(), []
    for call in range(1, 100):
        if policy.resting(runner):  # type: ignore[arg-type]
            policy.record_rest(runner)  # type: ignore[arg-type]
            continue
        timed_out.append(call)
        if policy.record_timeout(runner) is TimeoutVerdict.REPORT:  # type: ignore[arg-type]
            return timed_out, call
    raise AssertionError("never reported")


def test_the_migration_pages_report_timing_is_the_policys() -> None:
    text = (DOCS / "migrating.rst").read_text()
    assert _calls_until_reported(3) == ([1, 3, 5, 8], 8)
    assert "times out on\ncalls 1, 3, 5 and 8 and is reported on call 8" in text
    assert _calls_until_reported(1)[1] == 3
    assert "(with ``1``, the report comes on call 3)" in text
    assert "and\n8 (resting in between) and is reported on call 8" in (DOCS / "concepts.rst").read_text()


@pytest.mark.parametrize(
    "title",
    [
        "A per-model arguments function that raises",
        "``model_runs=[]`` means none",
        "call()'s positional arguments",
        "sync() is not the reconnect loop",
        "When a model that always times out is reported",
    ],
)
def test_the_migration_page_shows_each_difference_with_the_mrclient_way(title: str) -> None:
    text = (DOCS / "migrating.rst").read_text()
    section = text[text.index(f"\n{title}\n") :]
    section = section[: section.find("\n---", len(title) + 4 + 10)]
    assert "*Reference*" in section and "*mrclient*" in section
    assert ".. code-block:: python" in section


#: Run in the notebook's kernel right after the cell of that tag: the facts its output is checked against.
PROBES = {
    "runner-table": "json.dumps({'models': sorted(m.model_id for m in runner.models), 'line': repr(runner)})",
    "round-results": "json.dumps({m.model_id: r.status.value for m, r in results.items()})",
    "stats-table": (
        "json.dumps({s.model_id: [s.calls, s.successes, s.failures, s.timeouts, s.last_status,"
        " {k: str(v) for k, v in s.by_method.items()}] for s in runner.stats().values()})"
    ),
    "close": (
        "json.dumps({'stats': {s.model_name: [s.state, s.left_reason, s.calls] for s in runner.stats().values()},"
        " 'calls': sum(runner.totals().calls.values())})"
    ),
}


def _html_of(cell: Any) -> str:
    [page] = [output["data"]["text/html"] for output in cell.outputs if "text/html" in output.get("data", {})]
    return str(page)


@pytest.mark.subprocess
def test_the_notebook_runs_headless_and_its_tables_say_what_the_round_did(tmp_path: Path) -> None:
    path = DOCS / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code), "committed without outputs"
    tagged = {tag: cell for cell in code for tag in cell.metadata.get("tags", [])}
    # The kernel's sockets are files (ipc), not TCP ports picked free then bound a second later, which a
    # test running beside this one may take meanwhile ("Address already in use": the kernel dies).
    config = Config()
    config.KernelManager.transport, config.KernelManager.ip = "ipc", str(tmp_path / "kernel")
    client = nbclient.NotebookClient(notebook, timeout=RUN_TIMEOUT, kernel_name="python3", config=config)
    facts: dict[str, Any] = {}
    with client.setup_kernel():
        for index, cell in enumerate(list(notebook.cells)):
            client.execute_cell(cell, index)  # raises on a cell error
            for tag in cell.metadata.get("tags", []):
                if tag in PROBES:
                    probe = nbformat.v4.new_code_cell(f"import json\nprint({PROBES[tag]})")
                    notebook.cells.append(probe)  # nbclient writes the cell back at its index
                    client.execute_cell(probe, len(notebook.cells) - 1, store_history=False)
                    notebook.cells.pop()
                    facts[tag] = json.loads("".join(o["text"] for o in probe.outputs if o.get("name") == "stdout"))

    # the runner: its line and one row per model
    page = _html_of(tagged["runner-table"])
    assert facts["runner-table"]["line"] in text_outside_tables(page)
    [table] = tables(page)
    assert sorted(table.column("model")) == facts["runner-table"]["models"] and len(table.rows) == 3

    # a round's results: a SUCCESS, a FAILED and a TIMEOUT model, each in its row, and the counts
    statuses = facts["round-results"]
    assert sorted(statuses.values()) == ["FAILED", "SUCCESS", "TIMEOUT"]
    [table] = tables(_html_of(tagged["round-results"]))
    assert {row["model"]: row["status"] for row in table.rows} == statuses
    assert "3 models, 1 SUCCESS, 1 FAILED, 1 TIMEOUT" in table.caption
    assert table.by("name")["broken"]["detail"].startswith("MODEL_FAILED")

    # stats(): the counts of each model, per method too
    [table] = tables(_html_of(tagged["stats-table"]))
    rows = table.by("model")
    assert set(rows) == set(facts["stats-table"])
    for model_id, (calls, ok, failed, late, last, by_method) in facts["stats-table"].items():
        row = rows[model_id]
        assert (row["calls"], row["ok"], row["failed"], row["timeout"]) == tuple(map(str, (calls, ok, failed, late)))
        assert row["last"] == last and row["by method"] == "; ".join(f"{k}: {v}" for k, v in by_method.items())
    assert rows[next(m for m, s in statuses.items() if s == "FAILED")]["by method"] == "tick: 3 ok; predict: 3 failed"

    # the pictures, and the live view's last state: updated in place until the runner closed
    for tag in ("latency-figure", "status-figure"):
        assert any("image/png" in output.get("data", {}) for output in tagged[tag].outputs), tag
    live = _html_of(tagged["live-view"])
    assert "the runner is closed; this view stopped" in text_outside_tables(live)
    assert "closed, 0 ready, 7 rounds" in live and "4 called" in live, "the last round it saw: the newcomer's"
    assert "stopped" in tagged["close"].outputs[-1]["data"]["text/plain"]
    # its last frame: the table as the close left it, every model (the newcomer included) marked closed, counted
    [table] = tables(live)
    assert table.caption == "4 models ready when the runner closed", table.caption
    states = {row["name"]: row["state"] for row in table.rows}
    assert sorted(states) == ["broken", "ewma", "newbie", "slow"], states
    assert all(re.fullmatch(r"left: closed at \d\d:\d\d:\d\d", state) for state in states.values()), states
    # and the statistics stay after the close: every model, marked closed; the totals keep every call
    closed = facts["close"]
    assert {name: state[:2] for name, state in closed["stats"].items()} == dict.fromkeys(states, ["left", "closed"])
    assert sum(calls for _, _, calls in closed["stats"].values()) == closed["calls"] > 0


# -- the API reference as built ---------------------------------------------------------------

#: Properties a colon in their docstring's first line once garbled (napoleon read "X: Y" as type X).
ONCE_GARBLED = [
    "mrclient.ModelConcurrentRunner.closed", "mrclient.ModelConcurrentRunner.max_consecutive_failures",
    "mrclient.ModelConcurrentRunner.max_consecutive_timeouts", "mrclient.ModelConcurrentRunner.connection_state",
    "mrclient.ModelCluster.models", "mrclient.ModelCluster.models_run", "mrclient.ModelCluster.connection_state",
    "mrclient.ModelRunner.stats", "mrclient.ModelRunner.closed", "mrclient.ModelRunner.credentials",
    "mrclient.testing.LocalOrchestrator.running_models", "mrclient.testing.LocalOrchestrator.client_close_codes",
]


@pytest.fixture(scope="module")
def api_reference(tmp_path_factory: pytest.TempPathFactory) -> BeautifulSoup:
    """docs/api.rst as Sphinx builds it (into a temporary directory; the notebook is not run: a few seconds)."""
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-q", "-b", "html", "-D", "nb_execution_mode=off",
         str(DOCS), str(out), str(DOCS / "api.rst")],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return BeautifulSoup((out / "api.html").read_text(), "html.parser")


def _documented(dotted: str) -> str:
    """The docstring of a property, or the ``#:`` comment or string of an attribute, by its dotted name."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        break
    attribute = parts[-1]
    for klass in inspect.getmro(owner):
        value = vars(klass).get(attribute)
        if isinstance(value, property):
            return inspect.getdoc(value) or ""
        if klass.__module__.partition(".")[0] == "mrclient":
            comment = ModuleAnalyzer.for_module(klass.__module__).find_attr_docs().get((klass.__qualname__, attribute))
            if comment:
                return "\n".join(comment)
    return ""


def _first_sentence_as_shown(docstring: str) -> str:
    """The first sentence of a docstring, as the page shows it: roles and literals reduced to their text."""
    text = " ".join(docstring.split("\n\n")[0].split())
    text = re.sub(r":[a-z:]+:`~?([^`<]*?)`", lambda match: match.group(1).rpartition(".")[2], text)
    text = text.replace("``", "")
    return re.split(r"(?<=[.;])\s", text, maxsplit=1)[0]


def _plain(tag: Tag) -> str:
    """A tag's text with Sphinx's typographic quotes undone and spaces collapsed."""
    return " ".join(tag.get_text().replace("\u2019", "'").replace("\u2018", "'").split())


@pytest.mark.subprocess
def test_every_property_and_attribute_shows_its_whole_first_sentence(api_reference: BeautifulSoup) -> None:
    checked, garbled = [], []
    for entry in api_reference.select("dl.py.property, dl.py.attribute"):
        signature, description = entry.find("dt"), entry.find("dd", recursive=False)
        assert isinstance(signature, Tag) and isinstance(description, Tag)
        dotted = str(signature.get("id"))
        fields = description.find("dl", class_="field-list", recursive=False)
        sentence = _first_sentence_as_shown(_documented(dotted))
        shown = _plain(description)
        checked.append(dotted)
        if fields is not None or not " ".join(shown.split()).startswith(" ".join(sentence.split())):
            garbled.append(f"{dotted}: shows {shown[:90]!r}, not {sentence!r}")
    assert garbled == [], "\n".join(garbled)
    assert set(ONCE_GARBLED) <= set(checked), set(ONCE_GARBLED) - set(checked)
    assert len(checked) > 60, "the walk found the reference's properties and attributes"


# -- installation, as it works today --------------------------------------------------------



def _extras() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    return list(config["options.extras_require"])


@pytest.mark.parametrize("page", ["README.rst", "docs/quickstart.rst"])
def test_the_installation_section_names_every_extra_and_the_wheel_of_this_version(page: str) -> None:
    text = (REPO_ROOT / page).read_text()
    section = re.split(r"\n(?:Installation|Install)\n=+\n", text)[1].split("\n=====")[0]
    assert [extra for extra in _extras() if f"``{extra}``" not in section] == []
    assert "pip install ." in section and "python -m build --wheel" in section
    wheels = re.findall(r"mrclient-([^-\s]+)-py3-none-any\.whl", section)
    assert wheels and set(wheels) == {mrclient.__version__}


def test_nothing_tells_to_install_mrclient_from_pypi() -> None:
    """mrclient is not on PyPI: every install hint says how to install from a clone or a wheel."""
    files = [REPO_ROOT / "README.rst", REPO_ROOT / "CONTRIBUTING.rst", *DOCS.glob("*.rst"), *DOCS.glob("notebooks/*.ipynb"),
             *(REPO_ROOT / "mrclient").rglob("*.py"), *(REPO_ROOT / "examples").rglob("*.rst")]
    pypi = re.compile(r"pip install ['\"]?mrclient\b|install ``mrclient\[|mrclient\[(?:" + "|".join(_extras()) + r")\]")
    found = []
    for path in files:
        relative = str(path.relative_to(REPO_ROOT))
        text = path.read_text()
        found += [f"{relative}: {match.group(0)}" for match in pypi.finditer(text)]
    assert found == []


def test_the_migration_pages_word_on_a_zero_timeout_is_true() -> None:
    assert "mrclient refuses it with an\n:class:`~mrclient.InvalidCoordinatorUsageError`" in (DOCS / "migrating.rst").read_text()
    runner = mrclient.DynamicSubclassModelConcurrentRunner(
        timeout=1, crunch_id="c", host="127.0.0.1", port=1, base_classname="a.B"
    )
    with pytest.raises(mrclient.InvalidCoordinatorUsageError, match="got 0"):
        runner.call("predict", timeout=0)
