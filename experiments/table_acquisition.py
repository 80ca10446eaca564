"""The tables of experiments/acquisition.md (``experiments/results/acquisition/*.json``, written
by experiments/acquisition.sh): each recipe's findings over its seeds, then end to end against
frozen seed by seed. A recipe is an artifact's name without its ``-seedN``
(``acquisition-e2e-map-1000pc``: end to end, the state read from the whole map, 1,000 training
images per class; ``-heads-``: with field heads); rows are ordered and described by the parts
of that name."""

from __future__ import annotations

import re

from table_common import DASH, row, sources, spread

FIELDS = ("all", "orientation", "position", "extent", "density", "brightness")
SEED = re.compile(r"-seed(\d+)$")


def recipes(results: list[dict]) -> dict[str, dict[int, dict]]:
    """recipe -> {seed: artifact}, for the captioner artifacts named ``...-seedN``; without the
    map before with it, without field heads before with them, frozen before end to end."""
    out: dict[str, dict[int, dict]] = {}
    for art in sorted(results, key=lambda a: a["_path"]):
        match = SEED.search(art.get("name") or "")
        if match and art.get("kind") == "captioner":
            out.setdefault(art["name"][: match.start()], {})[int(match.group(1))] = art
    order = sorted(
        out, key=lambda name: ("-map-" in name, "-heads-" in name, "-e2e-" in name, name)
    )
    return {name: dict(sorted(out[name].items())) for name in order}


def describe(recipe: str) -> str:
    """``acquisition-e2e-map-heads-1000pc`` -> "end to end (...), state from the whole map,
    field heads"."""
    text = "end to end (stage chosen on validation)" if "-e2e-" in recipe else "frozen encoder"
    text += ", state from the whole map" if "-map-" in recipe else ""
    return text + (", field heads" if "-heads-" in recipe else "")


def findings_table(groups: dict[str, dict[int, dict]]) -> list[str]:
    """One row per recipe: its seeds, each field right (mean ± sd) and the ECE of the two
    acquisition fields."""
    lines = [
        row(["recipe", "seeds", "every finding right", *FIELDS[1:],
             "ECE orientation", "ECE position"]),
        "|---|---|" + "---:|" * (len(FIELDS) + 2),
    ]  # fmt: skip
    for name, arts in groups.items():
        metrics = [a["metrics"] for a in arts.values()]
        right = [spread([m["findings_accuracy"].get(f) for m in metrics], True) for f in FIELDS]
        ece = [spread([(m.get("ece") or {}).get(f) for m in metrics], True) for f in FIELDS[1:3]]
        lines.append(row([describe(name), ", ".join(map(str, arts)), *right, *ece]))
    return lines


def paired_table(groups: dict[str, dict[int, dict]]) -> list[str]:
    """End to end minus frozen, in points of every finding right, for each recipe pair
    (``-e2e-`` against ``-frozen-`` of the same rest of the name) and each seed both ran."""
    lines = [row(["recipe", "seed", "frozen", "end to end", "end to end - frozen"])]
    lines.append("|---|---:|---:|---:|---:|")
    for name, e2e in groups.items():
        frozen = groups.get(name.replace("-e2e-", "-frozen-"))
        if "-e2e-" not in name or not frozen:
            continue
        for seed in sorted(set(e2e) & set(frozen)):
            a, b = (g[seed]["metrics"]["findings_accuracy"]["all"] for g in (frozen, e2e))
            points = f"{100 * (b - a):+.1f}"
            lines.append(row([name, seed, f"{100 * a:.1f}%", f"{100 * b:.1f}%", points]))
    return lines if len(lines) > 2 else [DASH]


def acquisition(artifacts: dict) -> str:
    """Both tables, and the data, machine and code of their artifacts."""
    results = artifacts["results"].get("acquisition", [])
    groups = recipes(results)
    if not groups:
        return "No acquisition result is recorded yet (run experiments/acquisition.sh).\n"
    arts = [a for g in groups.values() for a in g.values()]
    head = "Mean ± sd over the seeds listed (± 0.0 with one seed); the whole test split."
    lines = [head, "", *findings_table(groups), "", *paired_table(groups), "", sources(arts)]
    return "\n".join(lines) + "\n"
