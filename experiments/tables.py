"""Render the results tables of README.md, experiments/README.md and experiments/medpix.md from
their JSON artifacts:

    python experiments/tables.py            # rewrite the tables in place
    python experiments/tables.py --check    # exit 1, naming each table that differs

A table lives between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; everything between
the markers is generated. Sources: ``experiments/results/<group>/*.json`` (written by
``experiments/record.py``) and ``experiments/benchmarks/*.json`` (written by ``benchmarks/``).
Each table ends with the data and machine its numbers came from, read from the artifacts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling module when run as a script
from table_render import RENDERERS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (
    "README.md",
    "experiments/README.md",
    "experiments/medpix.md",
    "experiments/speed.md",
    "experiments/acquisition.md",
)
BLOCK = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table:\2 -->)", re.S)


class TableError(Exception):
    """A document or artifact the tables cannot be rendered from; printed as one line."""


def load_artifacts(root: Path) -> dict:
    """``{"results": {group: [artifact, ...]}, "benchmarks": {name: artifact}}``; every
    artifact carries ``_path`` (relative to ``root``) so a table can name its source."""

    def read(path: Path) -> dict:
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TableError(f"{path}: unreadable artifact ({err})") from None
        if not isinstance(value, dict):
            raise TableError(f"{path}: expected a JSON object")
        value["_path"] = path.relative_to(root).as_posix()
        return value

    results: dict[str, list[dict]] = {}
    for path in sorted((root / "experiments" / "results").glob("*/*.json")):
        results.setdefault(path.parent.name, []).append(read(path))
    benchmarks = {
        path.stem: read(path) for path in sorted((root / "experiments/benchmarks").glob("*.json"))
    }
    return {"results": results, "benchmarks": benchmarks}


def render_document(text: str, artifacts: dict, where: str = "document") -> str:
    """``text`` with every marked table replaced by its rendering."""

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise TableError(f"{where}: unknown table '{name}' (known: {', '.join(RENDERERS)})")
        return match.group(1) + RENDERERS[name](artifacts).rstrip("\n") + "\n" + match.group(4)

    return BLOCK.sub(replace, text)


def differing_tables(old: str, new: str) -> list[str]:
    """Names of the tables whose text differs between two renderings of a document."""
    before = {m.group(2): m.group(3) for m in BLOCK.finditer(old)}
    after = {m.group(2): m.group(3) for m in BLOCK.finditer(new)}
    return [name for name in after if before.get(name) != after[name]]


def run(root: Path, check: bool) -> int:
    """Render (or, with ``check``, compare) the tables of every document under ``root``."""
    artifacts = load_artifacts(root)
    stale = []
    for name in DOCUMENTS:
        path = root / name
        old = path.read_text()
        new = render_document(old, artifacts, name)
        if check:
            stale += [f"{name}: table '{t}'" for t in differing_tables(old, new)]
        elif new != old:
            path.write_text(new)
            print(f"updated {name}")
    for line in stale:
        print(f"{line} differs from its artifacts; run python experiments/tables.py")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return run(args.root, args.check)
    except TableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
