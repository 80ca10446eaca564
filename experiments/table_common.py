"""What every results table shares: cell formats, and the closing lines naming the data,
machine and code the numbers came from (``null`` fields are said to be unrecorded)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, from a checkout
from captioning.metrics.registry import DASH

FLAGS = (("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"))


def pct(value, digits: int = 3) -> str:
    """``0.99962`` -> ``99.962%``; a missing value -> the dash."""
    return DASH if value is None else f"{100 * value:.{digits}f}%"


def spread(values: list, percent: bool = False, digits: int = 3) -> str:
    """``0.042 ± 0.003`` (``percent``: ``88.7 ± 0.5%``): mean ± sd over seeds; the dash when
    none is recorded."""
    values = [100 * v if percent else v for v in values if v is not None]
    if not values:
        return DASH
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = 1 if percent else digits
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}" + ("%" if percent else "")


def row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def data_text(data: dict | None) -> str:
    """Which MedNIST copy, how many images and the manifest checksum, as recorded."""
    data = data or {}
    sha = data.get("manifest_sha256")
    checksum = f"manifest sha256 `{sha[:12]}`" if sha else "manifest not recorded"
    if data.get("copy") is None and data.get("source"):
        return str(data["source"])
    if data.get("copy") is None:
        return f"data copy not recorded ({checksum})" if sha else "data not recorded"
    if data["copy"] == "other":  # a caption file, or a folder that is no MedNIST archive
        return f"a dataset other than MedNIST ({data['images']:,} images, {checksum})"
    return f"{data['copy']} copy of MedNIST ({data['images']:,} images, {checksum})"


def machine_text(machine: dict | None) -> str:
    """CPU model, cores and the flags that matter, as recorded."""
    machine = machine or {}
    if not machine.get("cpu"):
        return "machine not recorded"
    text = f"{machine['cpu']}, {machine['cores']} cores"
    flags = machine.get("flags")
    if flags is None:
        return text + " (CPU flags not recorded)"
    said = ", ".join(f"{name} {'yes' if flags.get(key) else 'no'}" for key, name in FLAGS)
    return f"{text} ({said})"


def code_text(code: dict | None) -> str:
    code = code or {}
    if not code.get("commit"):
        return "commit not recorded"
    state = {True: ", uncommitted changes", False: "", None: ", dirty flag not recorded"}
    return f"code `{code['commit'][:7]}`{state[code.get('dirty')]}"


def code_of(artifact: dict) -> dict:
    """The code block; older benchmarks kept only the commit among their versions."""
    if artifact.get("code"):
        return artifact["code"]
    return {"commit": artifact.get("versions", {}).get("captioning_git_commit"), "dirty": None}


def merge(codes: list[str]) -> str:
    """``code `a`; code `b``` -> ``code `a`, `b```."""
    return "code " + ", ".join(c.removeprefix("code ") for c in codes)


def sources(artifacts: list[dict]) -> str:
    """One line per distinct data and machine: which artifacts, and the code they record."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for art in artifacts:
        what = f"{data_text(art.get('data'))}; {machine_text(art.get('machine'))}"
        paths, codes = groups.setdefault(what, ([], []))
        paths.append(f"`{art['_path']}`")
        if code_text(code_of(art)) not in codes:
            codes.append(code_text(code_of(art)))
    lines = [f"- {', '.join(p)}: {what}; {merge(c)}." for what, (p, c) in groups.items()]
    return "Sources:\n\n" + "\n".join(lines) + "\n" if lines else ""
