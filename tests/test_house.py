"""The house stays standing, read from the package's source (no import runs):

- imports point one way: commands -> training, inference, evaluation, export, serving ->
  models, metrics, decoding -> data, captions -> utils, errors, config; no module imports a
  higher layer, no two packages import each other (directly or round a circle), and no two
  modules either, whether the import sits at the top of a file or inside a function;
- the package root holds at most 12 modules; no module in the package reaches 300 lines and no
  function is over 60 lines;
- only the search's own package (captioning/decoding/) touches ``CaptionSearch``'s private
  members.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "captioning"
ROOT_MODULES_MAX = 12
FUNCTION_LINES_MAX = 60
MODULE_LINES_MAX = 299  # short modules: < 300 lines

# layer of each top-level unit of the package (a subpackage or a root module); a module may
# import its own layer or a lower one. Same-layer imports are allowed, cycles are not.
LAYERS = {
    0: {"utils", "errors", "config", "_moved"},
    1: {"captions", "data"},
    2: {"models", "metrics", "decoding", "phrasing"},
    3: {"training", "inference", "evaluation", "export", "serving", "scope", "confidence"}
    | {"calibrate", "bundled", "entries"},
    4: {"commands", "cli"},
}


def module_name(path: Path) -> str:
    if not path.is_relative_to(PACKAGE.parent):
        return path.stem  # a file outside the package (the tests' own examples)
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports anywhere in the file: ``from a import b`` counts
    as importing ``a.b`` when that is a module, else ``a``."""
    name = module_name(path)
    here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, one level up per extra dot
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a module a.b
                target = target.rpartition(".")[0]
            if target and target.startswith("captioning") and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported(path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def unit(name: str) -> str:
    """The top-level unit of a module: ``captioning.data.images`` -> ``data``; the package's
    own ``__init__`` is ``captioning``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer(name: str) -> int:
    found = [level for level, units in LAYERS.items() if unit(name) in units]
    assert found, f"{name}: its unit {unit(name)!r} has no layer in tests/test_house.py"
    return found[0]


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if name == "captioning":
            continue  # the package's __init__ (quiet start-up, old paths) sits above all
        units.setdefault(unit(name), set()).update(
            unit(t) for t in targets if unit(t) != unit(name) and t != "captioning"
        )
    return units


def upward_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    return {
        name: sorted(t for t in targets if t != "captioning" and layer(t) > layer(name))
        for name, targets in graph.items()
        if name != "captioning"
        and any(t != "captioning" and layer(t) > layer(name) for t in targets)
    }


def long_functions(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES_MAX:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} {lines}")
    return out


def long_modules(root: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MODULE_LINES_MAX:
            out.append(f"{path.relative_to(root.parent)} {lines}")
    return out


def search_privates() -> set[str]:
    """Names of ``CaptionSearch``'s private members (methods and attributes it sets)."""
    tree = ast.parse((PACKAGE / "decoding" / "search.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CaptionSearch")
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(names: set[str], root: Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "decoding"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            # ``self._x`` is a class's own member, not the search's
            on_self = isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "self"
            if isinstance(node, ast.Attribute) and node.attr in names and not on_self:
                out.append(f"{path.relative_to(root.parent)}:{node.lineno} .{node.attr}")
    return out


def test_every_unit_has_a_layer():
    for name in package_modules():
        if name != "captioning":
            layer(name)


def test_imports_point_one_way():
    assert upward_imports(import_graph()) == {}


def test_no_package_level_cycle():
    assert cycles(unit_graph(import_graph())) == []


def test_no_module_level_cycle():
    assert cycles(import_graph()) == []


def test_the_root_keeps_few_modules():
    root = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= ROOT_MODULES_MAX, root


def test_no_function_over_60_lines():
    assert long_functions() == []


def test_no_module_of_300_lines_or_more():
    assert long_modules() == []


def test_only_decoding_touches_caption_search_privates():
    names = search_privates()
    assert names, "CaptionSearch not found in captioning/decoding/search.py"
    assert private_uses(names) == []


def test_the_checks_can_fail(tmp_path):
    """Each rule fails on a planted example: a cycle, an upward import (also inside a
    function), a long function, a long module and a private use of the search."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from captioning.commands.evaluate import run\n")
    assert imported(source, package_modules()) == {"captioning.commands.evaluate"}
    graph = {"captioning.data.images": {"captioning.training.loop"}}
    assert upward_imports(graph) == {"captioning.data.images": ["captioning.training.loop"]}
    planted = {"captioning.data.x": {"captioning.captions.y"}}
    planted["captioning.captions.y"] = {"captioning.data.z"}
    assert cycles(unit_graph(planted)) == [["captions", "data"]]
    package = tmp_path / "captioning"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES_MAX))
    (package / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    pass\n")
    assert [line.split()[-2] for line in long_functions(package)] == ["long"]
    assert long_modules(package) == []
    (package / "big.py").write_text("x = 0\n" * (MODULE_LINES_MAX + 1))
    assert long_modules(package) == [f"captioning/big.py {MODULE_LINES_MAX + 1}"]
    (package / "use.py").write_text("def f(search):\n    return search._beam_fn(3)\n")
    assert private_uses({"_beam_fn"}, package) == ["captioning/use.py:2 ._beam_fn"]
