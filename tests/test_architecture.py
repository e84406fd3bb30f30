"""The layout rules of docs/architecture.md, read from the source with `ast`: no import circle
among r3d's modules (imports inside functions count), data flowing one way between the
packages, no private name used across modules, no module over 600 lines."""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storeformat", "preprocess", "annotations", "training", "videoapps", "demo")
MAX_LINES = 600


def product_sources() -> dict:
    """{module name: source} of every module of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path.read_text(encoding="utf-8")
    return out


def _is_package(name, sources) -> bool:
    return any(other.startswith(name + ".") for other in sources)


def imports_of(name, source, sources) -> set:
    """The modules of `sources` that module `name` imports, anywhere in its body (but in an
    ``if __name__ == "__main__"`` block, which runs only as a program): `from p import m`
    counts as importing p.m when that is a module, else p."""
    package = name if _is_package(name, sources) else name.rpartition(".")[0]
    tree = ast.parse(source)
    as_program = {id(n) for block in tree.body if isinstance(block, ast.If)
                  and "__main__" in ast.unparse(block.test) for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in as_program:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in sources else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in sources:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(sources) -> dict:
    return {name: imports_of(name, src, sources) for name, src in sources.items()}


def cycles(graph) -> list:
    """The import circles of `graph` (strongly connected groups of more than one module)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def private_uses(source, module_names) -> list:
    """`from m import _x` and `m._x` where m is one of `module_names` (r3d's modules)."""
    tree = ast.parse(source)
    bound, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PACKAGES:
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append((node.lineno, f"from {node.module} import {a.name}"))
                if f"{node.module}.{a.name}" in module_names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    bound[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            value = node.value
            while isinstance(value, ast.Attribute):
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                found.append((node.lineno, ast.unparse(node)))
    return [f"line {n}: {text}" for n, text in sorted(found)]


def outside(graph, sources, prefix, allowed) -> list:
    """Imports by the modules under `prefix` of r3d modules outside `allowed` prefixes."""
    return sorted(f"{name} imports {target}" for name, targets in graph.items()
                  if name == prefix or name.startswith(prefix + ".") for target in targets
                  if not any(target == a or target.startswith(a + ".") for a in allowed))


@pytest.fixture(scope="module")
def sources():
    return product_sources()


@pytest.fixture(scope="module")
def graph(sources):
    return import_graph(sources)


def test_no_import_circle(graph):
    assert cycles(graph) == []


def test_the_circle_check_sees_imports_inside_functions():
    """The old circle (training.catalog imported stores at the top, stores imported catalog
    inside a function) is found, and so is a three-module ring."""
    sources = {"t": "", "t.catalog": "from .stores import FrameStore\n",
               "t.stores": "def f():\n    from .catalog import StoreCatalog\n",
               "a": "import b\n", "b": "from c import x\n", "c": "from a import y\n",
               "p": "if __name__ == '__main__':\n    from q import main\n", "q": "import p\n"}
    assert cycles(import_graph(sources)) == [["a", "b", "c"], ["t.catalog", "t.stores"]]


def test_the_data_path_knows_nothing_of_the_run(graph, sources):
    assert outside(graph, sources, "training.data", ("training.data", "storeformat")) == []
    must_live_there = {"FrameStore": "stores", "StoreCatalog": "catalog",
                       "ClipDataset": "datasets", "TrainingClips": "datasets",
                       "TemporalRandomCrop": "sampling", "train_transform": "transforms"}
    for name, module in must_live_there.items():
        tree = ast.parse(sources[f"training.data.{module}"])
        assert any(getattr(n, "name", None) == name for n in tree.body), name


def test_data_flows_one_way(graph, sources):
    assert outside(graph, sources, "storeformat", ("storeformat",)) == []
    assert outside(graph, sources, "preprocess", ("preprocess", "storeformat")) == []
    assert outside(graph, sources, "annotations", ("annotations", "storeformat")) == []
    assert outside(graph, sources, "training", ("training", "storeformat")) == []
    # the models and the run machinery build on the data path, never the other way round
    assert outside(graph, sources, "training.models", ("training.models", "training.choices",
                                                       "storeformat")) == []


def test_the_direction_checks_can_fail():
    sources = {"training": "", "training.data": "", "training.job": "",
               "training.data.x": "def f():\n    from ..job import y\n", "training.job.y": "",
               "preprocess": "", "preprocess.z": "from annotations import w\n",
               "annotations": "", "annotations.w": ""}
    graph = import_graph(sources)
    assert outside(graph, sources, "training.data", ("training.data",)) == [
        "training.data.x imports training.job.y"]
    assert outside(graph, sources, "preprocess", ("preprocess",)) == [
        "preprocess.z imports annotations.w"]


def test_no_private_name_is_used_across_modules(sources):
    files = {**sources, **helper_sources()}
    found = {name: uses for name, src in files.items() if (uses := private_uses(src, sources))}
    assert found == {}


def test_the_private_check_can_fail(sources):
    source = ("from training.data.catalog import _load_array\n"
              "import training.data.derive as derive\n"
              "from training.data import samples\n"
              "derive._scan_shard(None)\nsamples._gather\nself._fine\n")
    assert private_uses(source, sources) == [
        "line 1: from training.data.catalog import _load_array",
        "line 4: derive._scan_shard", "line 5: samples._gather"]


def helper_sources() -> dict:
    """{"tests/x.py": source} of the tests and the tools."""
    return {f"{folder}/{path.name}": path.read_text(encoding="utf-8")
            for folder in ("tests", "tools") for path in sorted((ROOT / folder).glob("*.py"))}


def test_no_module_is_over_600_lines(sources):
    tools = {name: src for name, src in helper_sources().items() if name.startswith("tools/")}
    long = {name: n for name, src in {**sources, **tools}.items()
            if (n := src.count("\n")) > MAX_LINES}
    assert long == {}


def missing_names(name, source, sources) -> list:
    """`from m import x` of r3d modules where m has no x (a name moved away and one importer
    left behind: the tools and tests run no import at collection time to show it)."""
    package = name if _is_package(name, sources) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")
            module = ".".join(base[:len(base) - (node.level - 1)]
                              + ([node.module] if node.module else []))
        else:
            module = node.module
        if module.split(".")[0] not in PACKAGES:
            continue
        imported = importlib.import_module(module)
        for a in node.names:
            if not hasattr(imported, a.name) and f"{module}.{a.name}" not in sources:
                found.append(f"line {node.lineno}: from {module} import {a.name}")
    return found


def test_every_imported_name_exists(sources):
    files = {**sources, **helper_sources()}
    found = {name: bad for name, src in files.items()
             if (bad := missing_names(name.replace("/", "."), src, sources))}
    assert found == {}


def test_the_missing_name_check_can_fail(sources):
    assert missing_names("tools.x", "from videoapps.features import main\n", sources) == [
        "line 1: from videoapps.features import main"]
    assert missing_names("training.data.x", "from .order import item_rng\n", sources) == []


def test_one_rule_confines_paths(sources):
    """Only storeformat.paths defines a check that a path stays inside its root."""
    defined = sorted({name for name, src in sources.items() for node in ast.walk(ast.parse(src))
                     if isinstance(node, ast.FunctionDef)
                     and node.name.lstrip("_") in ("inside", "is_inside", "within")})
    assert defined == ["storeformat.paths"]


def test_h5py_loads_only_when_a_store_needs_it():
    """The trainer's modules import no h5py (26 ms and 10 MiB in every process): it loads when
    a catalog is derived or an HDF5 file is opened."""
    code = ("import sys, training, training.job.loaders, training.job.options, training.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'h5py'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
