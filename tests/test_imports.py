"""Import direction, read from the package's source (no import runs): commands -> training and
models -> data, metrics and captions. A lower layer never imports a command module, and no two
modules import each other, directly or round a circle, whether at the top of a file or inside
a function (an import moved into a function still ties the two modules together)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "captioning"

# the modules behind the command line: each is a command or a command's own report
COMMANDS = {
    "cli",
    "commands.data",
    "commands.train_classifier",
    "commands.train_captioner",
    "commands.evaluate",
    "commands.caption",
    "commands.quickstart",
    "serving.app",
}
COMMAND_MODULES = {f"captioning.{name}" for name in COMMANDS}
# the layers below the commands: packages, and the search the decoders share
LOWER = ("training", "models", "data", "metrics", "captions", "decoding")


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


def is_lower(name: str) -> bool:
    return any(
        name == f"captioning.{layer}" or name.startswith(f"captioning.{layer}.") for layer in LOWER
    )


def test_the_command_list_names_real_modules():
    assert set(package_modules()) >= COMMAND_MODULES


def test_lower_layers_never_import_a_command():
    graph = import_graph()
    wrong = {
        name: sorted(targets & COMMAND_MODULES)
        for name, targets in graph.items()
        if is_lower(name) and targets & COMMAND_MODULES
    }
    assert not wrong, f"lower layers import commands: {wrong}"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checks_can_fail(tmp_path):
    """The graph and cycle finder catch a function-level import that closes a circle."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from captioning.commands.evaluate import evaluate_run\n")
    modules = package_modules()
    assert imported(source, modules) == {"captioning.commands.evaluate"}
    assert is_lower("captioning.training.loop") and not is_lower("captioning.trainer")
