"""docs/architecture.rst says what the code does: its modules, layers, threads, locks, deadlines and rules.

Each claim of the page a program can check is checked here against the code,
mostly by reading the source (``ast``), once by running a small crunch:

* every path the page names exists, and its module map lists every module of
  the package at its layer;
* its table of layers is ``LAYERS`` of tests/test_layers.py, read from that file;
* the thread names in its table are exactly those the code gives its threads
  (followed through the classes that name threads for their callers: the
  setup pool, the listener dispatcher, the close thread), and the threads of a
  live crunch carry those names;
* its table of locks is exactly the locks the client's code makes;
* each function or class its tables name is defined in the module it names;
* the defaults its deadlines give are the code's.
"""

from __future__ import annotations

import ast
import inspect
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _orchestrator_fixtures import CRUNCH, WAIT, orchestrator
from conftest import REPO_ROOT
from mrclient import DynamicSubclassModelConcurrentRunner, ModelCluster, ModelRunner
from mrclient.concurrent.base import DEFAULT_INIT_TIMEOUT, HEALTH_CHECK_TIMEOUT, ModelConcurrentRunner
from mrclient.concurrent.rounds import ROUND_MARGIN
from mrclient.orchestrator.connection import OrchestratorSettings, reconnect_backoff
from mrclient.testing import LocalModelNode, LocalOrchestrator

__all__ = ["orchestrator"]  # a fixture used here

PAGE = REPO_ROOT / "docs" / "architecture.rst"
PACKAGE = REPO_ROOT / "mrclient"
GENERATED = PACKAGE / "wire" / "proto"
TESTING = PACKAGE / "testing"

# -- reading the page ---------------------------------------------------------------------------------


def page() -> str:
    return PAGE.read_text()


def section(title: str, text: str | None = None) -> str:
    """The body of the ``=``-underlined section ``title``, up to the next one."""
    text = page() if text is None else text
    match = re.search(rf"^{re.escape(title)}\n=+\n(.*?)(?=^[^\n]+\n=+\n|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/architecture.rst has no section {title!r}"
    return match.group(1)


def list_table(text: str) -> list[list[str]]:
    """The rows of the first ``list-table`` in ``text``, header row included, each a list of cell texts."""
    rows: list[list[str]] = []
    lines = text[text.index(".. list-table::") :].splitlines()[1:]
    for line in lines:
        if row := re.match(r"^ +\* - (.*)$", line):
            rows.append([row.group(1)])
        elif cell := re.match(r"^ {5,}- (.*)$", line):
            rows[-1].append(cell.group(1))
        elif rows and line.startswith("       "):
            rows[-1][-1] += " " + line.strip()
        elif rows and line.strip():
            break  # the prose after the table
    return rows


def literals(text: str) -> list[str]:
    return re.findall(r"``([^`]+)``", text)


def places(cell: str) -> list[tuple[str, list[str]]]:
    """``mrclient/x.py`` (``name``, ``Class.name``) pairs of a table cell: a module and what it holds."""
    found = []
    for path, names in re.findall(r"``(mrclient/[\w/]+\.py)``\s*\(([^)]*)\)", cell):
        found.append((path, literals(names)))
    return found


def assert_same(in_code: set[Any], on_page: set[Any], what: str) -> None:
    """The page's table lists exactly what the code has."""
    assert sorted(in_code - on_page) == [], f"{what} of the code that the page's table lacks"
    assert sorted(on_page - in_code) == [], f"{what} on the page that the code does not have"


def flat(text: str) -> str:
    return " ".join(text.split())


# -- reading the code ---------------------------------------------------------------------------------


def modules(root: Path = PACKAGE) -> Iterator[Path]:
    """Every module below ``root``, generated code aside."""
    for path in sorted(root.rglob("*.py")):
        if GENERATED not in path.parents:
            yield path


def layers_of_test_layers() -> dict[str, int]:
    """``LAYERS`` as tests/test_layers.py writes it, read without importing that test module."""
    tree = ast.parse((REPO_ROOT / "tests" / "test_layers.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "LAYERS":
            assert node.value is not None
            layers: dict[str, int] = ast.literal_eval(node.value)
            return layers
    raise AssertionError("tests/test_layers.py defines no LAYERS")


def defines(path: Path, dotted: str) -> bool:
    """Whether the module at ``path`` itself defines ``dotted`` (``name`` or ``Class.name``), not imports it."""
    scope: list[ast.stmt] = ast.parse(path.read_text()).body
    *outer, last = dotted.split(".")
    for name in outer:
        classes = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == name]
        if not classes:
            return False
        scope = classes[0].body
    return last in _names_defined(scope)


def _names_defined(body: list[ast.stmt]) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


class _Tree:
    """A parsed module whose nodes know their enclosing function and class."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(), str(path))
        self.function: dict[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None] = {}
        self.klass: dict[ast.AST, ast.ClassDef | None] = {}
        self._visit(self.tree, None, None)

    def _visit(self, node: ast.AST, function: Any, klass: ast.ClassDef | None) -> None:
        self.function[node], self.klass[node] = function, klass
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self._visit(child, None, child)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._visit(child, child, klass)
            else:
                self._visit(child, function, klass)


def _callee(call: ast.Call) -> str | None:
    """The name a call is made by: ``Thread`` for ``threading.Thread(...)``, ``X`` for ``X[T](...)``."""
    func = call.func.value if isinstance(call.func, ast.Subscript) else call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _argument(call: ast.Call, keyword: str, position: int) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if len(call.args) > position else None


def _template(expr: ast.expr | None, tree: _Tree) -> tuple[str, str | None] | None:
    """(name template, attribute) of a thread name: ``"mrclient-aio-<>"``, or ``("{}_<>", "prefix")``.

    A name made from ``self.<attribute>`` (at its start) is the caller's: the
    template has ``{}`` where the caller's value goes. None: not a string.
    """
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value, None
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
        return "{}", expr.attr
    if isinstance(expr, ast.JoinedStr):
        text, attribute = "", None
        for index, part in enumerate(expr.values):
            if isinstance(part, ast.Constant):
                text += str(part.value)
            elif index == 0 and isinstance(part, ast.FormattedValue) and (inner := _template(part.value, tree)) and inner[1]:
                text, attribute = "{}", inner[1]
            else:
                text += "<>"
        return text, attribute
    if isinstance(expr, ast.Name):  # a local variable: its assignment in the same function
        function = tree.function.get(expr)
        for node in ast.walk(function) if function is not None else ():
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                return _template(node.value, tree)
    return None


#: The standard library's thread makers: (keyword that names the threads, its position, what the names add).
STDLIB_THREAD_MAKERS = {"Thread": ("name", 2, ""), "ThreadPoolExecutor": ("thread_name_prefix", 1, "_<>")}


def thread_names(trees: list[_Tree]) -> tuple[set[str], list[str]]:
    """The name templates of every thread the code starts, and the threads whose name could not be read.

    A class that names its threads after a constructor argument (``self.name``)
    is a thread maker itself: its callers' arguments are the names.
    """
    makers: dict[str, tuple[str, int, str]] = dict(STDLIB_THREAD_MAKERS)
    names: set[str] = set()
    unnamed: list[str] = []
    done: set[str] = set()
    while pending := [maker for maker in makers if maker not in done]:
        for maker in pending:
            done.add(maker)
            keyword, position, suffix = makers[maker]
            for tree in trees:
                for call in (node for node in ast.walk(tree.tree) if isinstance(node, ast.Call)):
                    if _callee(call) != maker:
                        continue
                    where = f"{_shown(tree.path)}:{call.lineno} ({maker})"
                    template = _template(_argument(call, keyword, position), tree)
                    if template is None:
                        unnamed.append(where)
                        continue
                    text, attribute = template
                    if attribute is None:
                        names.add(text + suffix)
                        continue
                    klass = tree.klass.get(call)
                    wrapper = _constructor_parameter(klass, attribute)
                    if klass is None or wrapper is None:
                        unnamed.append(f"{where}: self.{attribute} is no constructor argument")
                        continue
                    makers[klass.name] = (attribute, wrapper, text.replace("{}", "", 1) + suffix)
    return names, unnamed


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if REPO_ROOT in path.parents else path.name


def _constructor_parameter(klass: ast.ClassDef | None, name: str) -> int | None:
    """The position of ``name`` among the arguments of ``klass(...)``, or None."""
    if klass is None:
        return None
    for node in klass.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            parameters = [argument.arg for argument in node.args.posonlyargs + node.args.args][1:]
            keyword_only = [argument.arg for argument in node.args.kwonlyargs]
            if name in parameters:
                return parameters.index(name)
            return 10**6 if name in keyword_only else None
    return None


def page_thread_names() -> dict[str, str]:
    """Each thread name of the page's table, with its placeholders (``<crunch_id>``) written ``<>``."""
    rows = list_table(section("Threads"))[1:]
    named = {}
    for row in rows:
        [name] = literals(row[0])
        named[re.sub(r"<[^>]*>", "<>", name)] = name
    return named


_LOCK_MAKERS = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore"}


def _is_lock(expr: ast.expr | None) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    if _callee(expr) in _LOCK_MAKERS:
        return isinstance(expr.func, ast.Attribute) and isinstance(expr.func.value, ast.Name) and expr.func.value.id == "threading"
    if _callee(expr) == "field":  # a dataclass field(default_factory=threading.Lock)
        factory = _argument(expr, "default_factory", 99)
        return isinstance(factory, ast.Attribute) and factory.attr in _LOCK_MAKERS
    return False


def locks(tree: _Tree) -> set[str]:
    """``Class._attribute`` or ``_NAME`` of every lock (and condition) the module makes."""
    found = set()
    for node in ast.walk(tree.tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if not _is_lock(value):
            continue
        klass = tree.klass.get(node)
        for target in targets:
            if isinstance(target, ast.Attribute) and klass is not None:
                found.add(f"{klass.name}.{target.attr}")
            elif isinstance(target, ast.Name):
                found.add(f"{klass.name}.{target.id}" if klass is not None else target.id)
    return found


# -- the page's modules and layers --------------------------------------------------------------------


def test_every_path_the_page_names_exists() -> None:
    named = [text for text in literals(page()) if re.fullmatch(r"(?:mrclient|tests|docs|benchmarks|protos|examples)/[\w./]*", text)]
    assert len(named) > 20, "the page's paths were found"
    missing = sorted({path for path in named if not (REPO_ROOT / path).exists()})
    assert missing == [], f"docs/architecture.rst names paths that do not exist: {missing}"


def _module_map() -> list[tuple[int, str]]:
    """(layer rank, path below mrclient/) of each line of the page's module map."""
    block = section("Data flow")
    block = block[block.index("::\n") : block.index("\nAn event, from the socket")]
    rows, rank = [], -1
    for line in block.splitlines()[1:]:
        if match := re.match(r"^ +(\d+)? +([\w/]+(?:\.py|/)) ", line):
            rank = int(match.group(1)) if match.group(1) else rank
            rows.append((rank, match.group(2)))
    return rows


def test_the_module_map_lists_every_module_once_at_its_layer() -> None:
    rows = _module_map()
    layers = layers_of_test_layers()
    listed = [path for _, path in rows]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    generated = f"{GENERATED.relative_to(PACKAGE)}/"
    actual = {str(path.relative_to(PACKAGE)) for path in modules() if path.name != "__init__.py" or path.parent == PACKAGE}
    assert set(listed) == actual | {generated}, (
        f"missing from the page: {sorted(actual - set(listed))}; not in the code: {sorted(set(listed) - actual - {generated})}"
    )
    wrong = [(path, rank) for rank, path in rows if layers[Path(path).parts[0].removesuffix(".py")] != rank]
    assert wrong == [], f"listed at the wrong layer: {wrong}"


def test_the_layers_table_is_the_one_tests_enforce() -> None:
    rows = list_table(section("Layers"))
    assert rows[0][:2] == ["Rank", "Layer"]
    on_page = {layer: int(row[0]) for row in rows[1:] for layer in literals(row[1])}
    assert on_page == layers_of_test_layers()


def test_the_layers_table_reader_sees_a_wrong_rank() -> None:
    """The check above can fail: a page that moves ``cluster`` to layer 4 disagrees with tests/test_layers.py."""
    wrong = page().replace("   * - 5\n     - ``cluster``", "   * - 4\n     - ``cluster``")
    rows = list_table(section("Layers", wrong))
    on_page = {layer: int(row[0]) for row in rows[1:] for layer in literals(row[1])}
    assert on_page["cluster"] == 4 != layers_of_test_layers()["cluster"]


# -- threads ------------------------------------------------------------------------------------------


def test_every_thread_the_code_starts_is_on_the_page_and_every_one_on_the_page_is_started() -> None:
    names, unnamed = thread_names([_Tree(path) for path in modules()])
    assert unnamed == [], f"threads whose name could not be read (name every thread, with a literal): {unnamed}"
    assert {"mrclient-close", "mrclient-setup_<>", "mrclient-listeners", "local-model-node_<>"} <= names, names
    assert_same(names, set(page_thread_names()), "threads")


def test_the_thread_reader_follows_names_through_a_wrapper_and_sees_an_unnamed_thread(tmp_path: Path) -> None:
    """The check above can fail: an unnamed thread, and a new name given through a wrapper class, are seen."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import threading\n"
        "class Loop:\n"
        "    def __init__(self, work, label):\n"
        "        self.label = label\n"
        "        self._thread = threading.Thread(target=work, name=self.label)\n"
        "def start():\n"
        "    Loop(print, label='mrclient-new')\n"
        "    name = f'mrclient-{start.__name__}-x'\n"
        "    threading.Thread(target=print, name=name)\n"
        "    threading.Thread(target=print)\n"
    )
    names, unnamed = thread_names([_Tree(module)])
    assert names == {"mrclient-new", "mrclient-<>-x"}
    assert len(unnamed) == 1 and ":10 (Thread)" in unnamed[0]


def _pattern(name: str) -> re.Pattern[str]:
    """A page's thread name as a pattern: ``mrclient-setup_<n>`` matches ``mrclient-setup_0``."""
    parts = re.split(r"(<[^>]*>)", name)
    return re.compile("".join(".+" if index % 2 else re.escape(part) for index, part in enumerate(parts)))


class ThreadSpy:
    """The threads alive at moments the crunch below chooses."""

    seen: set[threading.Thread] = set()
    lock = threading.Lock()

    @classmethod
    def look(cls) -> None:
        with cls.lock:
            cls.seen.update(threading.enumerate())


class SpyBase:
    """The base class the crunch's runner sets up; the node instantiates its subclass."""

    def predict(self) -> int:
        raise NotImplementedError


class Spy(SpyBase):
    """Looks at the threads while the client sets it up (a setup thread waits) and calls it (call threads wait)."""

    def __init__(self) -> None:
        ThreadSpy.look()

    def predict(self) -> int:
        ThreadSpy.look()
        return 1


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    """The threads alive before the test's servers start (requested first, other tests' servers may linger)."""
    return set(threading.enumerate())


def test_a_crunchs_threads_carry_the_names_on_the_page(
    threads_before: set[threading.Thread], orchestrator: LocalOrchestrator, local_node: Callable[..., LocalModelNode]
) -> None:
    """A crunch on loopback, looked at from the model (setup, calls), the listeners and close(): every name is on the page."""
    started = [thread for thread in threading.enumerate() if thread not in threads_before]
    assert started, "the orchestrator fixture starts its server thread after threads_before"
    ThreadSpy.seen = set(started)
    for _ in range(2):
        node = local_node(classes=[SpyBase, Spy])
        orchestrator.add_model(host="127.0.0.1", port=node.port)
    left = threading.Event()
    with DynamicSubclassModelConcurrentRunner(
        timeout=WAIT, crunch_id=CRUNCH, host="127.0.0.1", port=orchestrator.port,
        base_classname=f"{__name__}.SpyBase", report_failure=False,
    ) as runner:
        runner.on_model_joined(lambda _: ThreadSpy.look())
        runner.on_round(lambda _: ThreadSpy.look())
        runner.on_model_left(lambda _: (ThreadSpy.look(), left.set()))  # during close(): the close thread waits
        assert runner.wait_for_models(2, WAIT)
        assert [result.result for result in runner.call("predict").values()] == [1, 1]
    assert left.wait(WAIT)
    patterns = [_pattern(name) for name in page_thread_names().values()]
    ours = {thread.name for thread in ThreadSpy.seen - threads_before if thread.name.startswith(("mrclient", "local-"))}
    assert sorted(name for name in ours if not any(p.fullmatch(name) for p in patterns)) == []
    kinds = {re.sub(r"[_-]\d+$", "", name) for name in ours}
    expected = {f"mrclient-orchestrator-{CRUNCH}", "mrclient-setup", "mrclient-listeners", "mrclient-call", "mrclient-rounds",
                "mrclient-close", "local-orchestrator", "local-model-node"}
    assert expected <= kinds, f"the crunch was not seen on every thread: {sorted(expected - kinds)}"


# -- locks --------------------------------------------------------------------------------------------


def test_every_lock_of_the_client_is_on_the_page_and_every_one_on_the_page_exists() -> None:
    in_code = {
        (str(path.relative_to(REPO_ROOT)), name)
        for path in modules() if TESTING not in path.parents
        for name in locks(_Tree(path))
    }  # fmt: skip
    assert len(in_code) > 15 and ("mrclient/cluster/table.py", "ModelCluster._lock") in in_code
    on_page = {(path, name) for row in list_table(section("Locks"))[1:] for path, names in places(row[0]) for name in names}
    assert_same(in_code, on_page, "locks")


def test_the_lock_reader_sees_locks_of_every_shape(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "import threading\nfrom dataclasses import dataclass, field\n"
        "_LOCK = threading.Lock()\n"
        "class A:\n    def __init__(self):\n        self._lock = threading.Lock()\n"
        "        self._changed = threading.Condition(self._lock)\n        self.event = threading.Event()\n"
        "@dataclass\nclass B:\n    _lock: threading.Lock = field(default_factory=threading.Lock)\n"
    )
    assert locks(_Tree(module)) == {"_LOCK", "A._lock", "A._changed", "B._lock"}


# -- where the rules live -----------------------------------------------------------------------------


def test_every_place_the_rules_table_names_holds_what_it_names() -> None:
    rows = list_table(section("Where each rule of the wire contract lives"))[1:]
    assert len(rows) > 30
    named = [(path, name) for row in rows for path, names in places(row[1]) for name in names]
    empty = [row[0] for row in rows if not places(row[1])]
    assert empty == [], "each rule names a module and what in it holds the rule"
    missing = [f"{path}: {name}" for path, name in named if not (REPO_ROOT / path).exists() or not defines(REPO_ROOT / path, name)]
    assert missing == []


def test_the_place_reader_sees_a_name_the_module_lacks_or_imports() -> None:
    table = REPO_ROOT / "mrclient" / "cluster" / "table.py"
    assert defines(table, "ModelCluster._settle") and defines(table, "SETUP_FAILURE_CODES")
    assert not defines(table, "ModelCluster.settle") and not defines(table, "plan_event")  # plan_event is imported there
    assert places("``mrclient/a.py`` (``f``, ``C.g``), ``mrclient/b/c.py`` (``X``)") == [
        ("mrclient/a.py", ["f", "C.g"]), ("mrclient/b/c.py", ["X"])]


# -- deadlines ----------------------------------------------------------------------------------------


def _default(function: Callable[..., Any], parameter: str) -> Any:
    return inspect.signature(function).parameters[parameter].default


def test_the_deadlines_are_the_codes_defaults() -> None:
    settings = OrchestratorSettings()
    backoff = inspect.signature(reconnect_backoff).parameters
    assert _default(ModelConcurrentRunner.__init__, "init_timeout") == DEFAULT_INIT_TIMEOUT
    said = [
        f"``ROUND_MARGIN`` ({ROUND_MARGIN:g} s)",
        f"``init_timeout`` ({DEFAULT_INIT_TIMEOUT:g} s by default)",
        f"``setup_timeout`` ({_default(ModelRunner.__init__, 'setup_timeout'):g} s); "
        f"{_default(ModelRunner.__init__, 'connect_attempts')} attempts",
        f"``retry_backoff_factor`` ({_default(ModelConcurrentRunner.__init__, 'retry_backoff_factor'):g} s)",
        f"``HEALTH_CHECK_TIMEOUT`` ({HEALTH_CHECK_TIMEOUT:g} s)",
        f"``ping_interval`` ({settings.ping_interval:g} s)",
        f"``ping_timeout`` ({settings.ping_timeout:g} s)",
        f"``open_timeout`` ({settings.open_timeout:g} s)",
        f"``close_timeout`` ({settings.close_timeout:g} s)",
        f"reconnects wait {backoff['initial'].default:g} s doubled up to {backoff['maximum'].default:g} s, "
        f"plus up to {backoff['jitter'].default:g} s of jitter",
        f"waiting at most {_default(ModelCluster.__init__, 'listener_join_timeout'):g} seconds",
        f"``Setup`` within {_default(ModelRunner.__init__, 'setup_timeout'):g} s, "
        f"{_default(ModelRunner.__init__, 'connect_attempts')} attempts",
    ]
    text = flat(page())
    assert [phrase for phrase in said if phrase not in text] == []

