"""Check the numbers stated in the documents against the JSON artifacts they come from.

``experiments/claims_table/claims.toml`` (a folder of its own: ``experiments/*.toml`` are
experiment configs) lists every claim: a document, the exact text around the number (as it reads
there, line breaks counting as one space), the number as written, and where it comes
from: one JSON value (``source = "FILE.json#/json/pointer"``) or an arithmetic expression over
several (``sources`` names them, ``expr`` combines them). A stated number holds when the
artifact's value, rounded to the digits written, gives it: the value lies within half a unit of
the last written digit ("99.72%" holds for 0.99715 <= v * 100 <= 0.99725). ``~`` before the number
does not widen that; a claim may set ``tolerance`` (relative) where the text says "about".

The same file lists non-claims (``[[allow]]``: versions, input sizes, option defaults, each
with its reason). ``scan`` finds the measured-looking numbers of a document (percentages,
ratios, seconds, memory, decimals, counts with thousands separators) that neither covers, so a
new number cannot enter a scanned document (``SCANNED``: the README, the model card, docs/ and
experiments/ pages of results) without its artifact. A table rendered from its artifacts by
experiments/tables.py (between ``<!-- table:NAME -->`` markers) is left to tests/test_tables.py.

``python experiments/claims.py`` prints every failure (exit 1) or ``N claims hold``.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "experiments" / "claims_table" / "claims.toml"
SCANNED = (
    "README.md",
    "captioning/pretrained/MODEL_CARD.md",
    "docs/datasets.md",
    "docs/metrics.md",
    "experiments/README.md",
    "experiments/acquisition.md",
    "experiments/findings_accuracy.md",
    "experiments/findings_v2.md",
    "experiments/medpix.md",
    "experiments/r2gen_check.md",
    "experiments/speed.md",
)
NUMBER = re.compile(r"(?<![\w.,/-])[-+]?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?(?![\d])")
# a measured-looking number: a unit after it, a decimal point or a thousands separator
MEASURE = re.compile(
    r"(?<![\w.,/#-])[+]?(\d{1,3}(?:,\d{3})+|\d+\.\d+(?:e-?\d+)?|\d+)(?![.]\d)"
    r"(\s?(?:%|x|ms|s|MiB|GiB|MB|GB|KB|kB|requests/s|images/s)(?![\w/])|(?=\W|$))"
)
RENDERED = re.compile(r"<!-- table:([\w-]+) -->.*?<!-- /table:\1 -->", re.S)
CODE = re.compile(r"```.*?```|`[^`]*`|\]\([^)]*\)|https?://\S+", re.S)


@dataclass
class Claim:
    """One number in one document and the artifact value(s) it states."""

    file: str
    text: str
    value: str
    sources: dict[str, str]
    expr: str
    tolerance: float = 0.0


def flat(text: str) -> str:
    """The text with every run of whitespace as one space: a claim may span a line break."""
    return re.sub(r"\s+", " ", text)


def parse_number(written: str) -> tuple[float, float]:
    """``"1,982"`` -> (1982, 1); ``"99.72"`` -> (99.72, 0.01); ``"5.2e-7"`` -> (5.2e-7, 1e-8)."""
    mantissa, _, exponent = written.replace(",", "").lstrip("+~").partition("e")
    digits = len(mantissa.partition(".")[2])
    scale = 10.0 ** int(exponent or 0)
    return float(mantissa) * scale, 10.0**-digits * scale


def load_claims(table: Path = TABLE) -> tuple[list[Claim], list[dict]]:
    """The claims and the allowed non-claims of the claims table."""
    data = tomllib.loads(table.read_text())
    claims = []
    for entry in data.get("claim", []):
        sources = dict(entry.get("sources", {}))
        if "source" in entry:
            sources["v"] = entry["source"]
        value = entry.get("value") or only_number(entry["text"])
        claims.append(
            Claim(
                entry["file"],
                entry["text"],
                value,
                sources,
                entry.get("expr", "v"),
                entry.get("tolerance", 0.0),
            )
        )
    return claims, data.get("allow", [])


def only_number(text: str) -> str:
    """The one number in ``text`` (a claim without ``value`` must hold exactly one)."""
    found = NUMBER.findall(text)
    if len(found) != 1:
        raise ValueError(f"{text!r}: {len(found)} numbers; name the claimed one as value")
    return found[0]


def resolve(root: Path, source: str):
    """The value at ``FILE.json#/pointer`` (RFC 6901); ``git:COMMIT:FILE.json#/pointer`` reads
    the file as that commit holds it (an earlier run of a benchmark whose file was replaced);
    ``bytes:PATH`` is the size of a file, or of a folder's files."""
    if source.startswith("bytes:"):
        path = root / source[6:]
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files)
    name, _, pointer = source.partition("#")
    node = json.loads(read_source(root, name))
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class CommitMissing(LookupError):
    """A ``git:`` source whose commit this checkout lacks (a shallow clone, an exported tree)."""


def read_source(root: Path, name: str) -> str:
    """The text of an artifact: a file of the tree, or ``git:COMMIT:PATH`` from the history."""
    if not name.startswith("git:"):
        return (root / name).read_text()
    _, commit, path = name.split(":", 2)
    done = subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise CommitMissing(f"{commit}:{path} is not in this checkout's history")
    return done.stdout


OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}
FUNCTIONS = {"max": max, "min": min, "abs": abs}


def evaluate(expr: str, names: dict):
    """``expr`` (numbers, names, + - * /, max/min/abs) over ``names``; nothing else runs."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in FUNCTIONS:
            return FUNCTIONS[node.func.id](*(walk(a) for a in node.args))
        raise ValueError(f"not allowed in a claim's expr: {ast.dump(node)}")

    return walk(ast.parse(expr, mode="eval"))


def check_claim(root: Path, claim: Claim) -> str | None:
    """Why ``claim`` fails (its text gone, its number not in its text, its artifact missing or
    not rounding to the number), or None when it holds."""
    where = f"{claim.file}: {claim.text!r}"
    document = root / claim.file
    if not document.is_file() or flat(claim.text) not in flat(document.read_text()):
        return f"{where}: text not found"
    if claim.value not in NUMBER.findall(claim.text) and claim.value not in claim.text:
        return f"{where}: value {claim.value!r} is not in its text"
    try:
        names = {name: resolve(root, source) for name, source in claim.sources.items()}
        actual = evaluate(claim.expr, names)
    except CommitMissing:
        raise
    except (OSError, KeyError, IndexError, ValueError, ZeroDivisionError, TypeError) as error:
        return f"{where}: artifact unreadable ({type(error).__name__}: {error})"
    stated, unit = parse_number(claim.value)
    allowed = max(unit / 2, abs(stated) * claim.tolerance) * (1 + 1e-9)
    if not isinstance(actual, int | float) or not math.isclose(
        actual, stated, rel_tol=0, abs_tol=allowed
    ):
        return f"{where}: states {claim.value}, the artifact gives {actual!r} ({claim.expr})"
    return None


def spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Where each piece occurs in ``text`` (every occurrence)."""
    found = []
    for piece in pieces:
        start = text.find(piece)
        while start >= 0:
            found.append((start, start + len(piece)))
            start = text.find(piece, start + 1)
    return found


def blank(match: re.Match) -> str:
    """The match as spaces: kept out of the scan, positions unchanged."""
    return " " * len(match.group(0))


def scan(root: Path, name: str, claims: list[Claim], allowed: list[dict]) -> list[str]:
    """The measured-looking numbers of document ``name`` that no claim or allowance covers.

    Rendered tables (checked by tests/test_tables.py), code, link targets and URLs are left
    out. A number is covered when it lies inside the text of a claim of this document whose
    value it is, or inside an allowed text."""
    whole = flat((root / name).read_text())
    text = CODE.sub(blank, RENDERED.sub(blank, whole))
    covered = spans(whole, [flat(a["text"]) for a in allowed if a["file"] == name])
    own = [c for c in claims if c.file == name]
    loose = []
    for match in MEASURE.finditer(text):
        number, at = match.group(1), match.start(1)
        if any(s <= at < e for s, e in covered):
            continue
        if any(
            s <= at < e and number == c.value.lstrip("+~")
            for c in own
            for s, e in spans(whole, [flat(c.text)])
        ):
            continue
        if match.group(2).strip() or "." in number or "," in number:
            loose.append(f"{name}: {text[max(0, at - 40) : at + 30]!r}")
    return loose


def main(root: Path = ROOT) -> int:
    """Check every claim and scan the scanned documents; print what fails."""
    claims, allowed = load_claims(root / "experiments" / "claims_table" / "claims.toml")
    failures = []
    for claim in claims:
        try:
            failures.append(check_claim(root, claim))
        except CommitMissing as missing:
            print(f"not checked: {claim.file}: {claim.text!r}: {missing}")
    failures = [f for f in failures if f]
    for name in SCANNED:
        failures += [f"no claim: {f}" for f in scan(root, name, claims, allowed)]
    for failure in failures:
        print(failure)
    if not failures:
        print(f"{len(claims)} claims hold")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
