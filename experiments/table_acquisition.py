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
ENCODER = re.compile(r"-enc-([a-z0-9]+)-")  # acquisition.sh's ACQUISITION_ENCODER_NAME


def recipes(results: list[dict]) -> dict[str, dict[int, dict]]:
    """recipe -> {seed: artifact}, for the captioner artifacts named ``...-seedN``; attention
    before Show-Tell, without the map before with it, without field heads before with them,
    frozen before end to end; the bundled encoder before another (``-enc-TAG-``)."""
    out: dict[str, dict[int, dict]] = {}
    for art in sorted(results, key=lambda a: a["_path"]):
        match = SEED.search(art.get("name") or "")
        if match and art.get("kind") == "captioner":
            out.setdefault(art["name"][: match.start()], {})[int(match.group(1))] = art
    parts = ("-enc-", "-showtell-", "-map-", "-heads-", "-e2e-")
    order = sorted(out, key=lambda name: (*(part in name for part in parts), name))
    return {name: dict(sorted(out[name].items())) for name in order}


def describe(recipe: str) -> str:
    """``acquisition-e2e-map-heads-1000pc`` -> "end to end (...), state from the whole map,
    field heads"; ``-showtell-``: the Show-Tell decoder (else attention); ``-enc-TAG-``: the
    encoder of the classifier run acquisition.sh was given as TAG (else the bundled one)."""
    text = "end to end (stage chosen on validation)" if "-e2e-" in recipe else "frozen encoder"
    text += ", state from the whole map" if "-map-" in recipe else ""
    text += ", field heads" if "-heads-" in recipe else ""
    text += ", Show-Tell (no attention)" if "-showtell-" in recipe else ""
    encoder = ENCODER.search(recipe)
    return text + (f", encoder `{encoder.group(1)}`" if encoder else "")


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


RATE = re.compile(r"^(frozen|e2e)-(?:966steps|stage2)-lr([0-9.e-]+)-seed(\d+)$")
STAGE_NAMES = {"frozen": "frozen (966 steps)", "e2e": "end to end (644 + 322 steps)"}
DEFAULT_E2E = re.compile(r"^acquisition-e2e-map-heads-1000pc-seed(\d+)$")  # stage 2 at 5e-4


def rate_runs(artifacts: dict) -> dict[tuple[str, str], dict[int, dict]]:
    """(kind, rate) -> {seed: artifact}: the frozen runs given end to end's 966 steps and the
    end-to-end runs at each stage-2 rate (the recipe's own runs are the rate 5e-4)."""
    out: dict[tuple[str, str], dict[int, dict]] = {}
    for art in artifacts["results"].get("acquisition_lr", []):
        if match := RATE.match(art.get("name") or ""):
            out.setdefault((match[1], match[2]), {})[int(match[3])] = art
    for art in artifacts["results"].get("acquisition", []):
        if match := DEFAULT_E2E.match(art.get("name") or ""):
            out.setdefault(("e2e", "5e-4"), {})[int(match[1])] = art
    return out


def chosen_rates(runs: dict) -> dict[str, str]:
    """kind -> the rate whose seed-0 run scored best on validation (``findings``, the
    monitor)."""
    best: dict[str, tuple[float, str]] = {}
    for (kind, rate), seeds in runs.items():
        if 0 in seeds:
            score = seeds[0]["training"]["best_val"]["findings"]
            best[kind] = max(best.get(kind, (-1.0, "")), (score, rate))
    return {kind: rate for kind, (_, rate) in best.items()}


def acquisition_rates(artifacts: dict) -> str:
    """Seed 0 at every rate (validation chooses), then every finding right per seed for each
    rate run on more seeds: frozen against end to end with the same optimiser steps."""
    runs = rate_runs(artifacts)
    if not runs:
        return "No rate comparison is recorded yet.\n"
    chosen = chosen_rates(runs)
    lines = [
        row(["stage trained", "rate", "validation: findings (monitor)", "validation: every "
             "finding right", "test: every finding right", "orientation", "position"]),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    order = sorted(runs, key=lambda key: (key[0] == "e2e", float(key[1])))
    for kind, rate in (key for key in order if 0 in runs[key]):
        art = runs[kind, rate][0]
        val, test = art["training"]["best_val"], art["metrics"]["findings_accuracy"]
        mark = " (chosen)" if chosen.get(kind) == rate else ""
        cells = [f"{100 * v:.2f}%" for v in (val["findings"], val["all_right"])]
        cells.append(f"{100 * test['all']:.1f}%")
        cells += [f"{100 * test[f]:.1f}%" for f in ("orientation", "position")]
        lines.append(row([STAGE_NAMES[kind], rate + mark, *cells]))
    seeds = sorted({seed for runs_of in runs.values() for seed in runs_of})
    lines += ["", row(["stage trained", "rate", *[f"seed {s}" for s in seeds], "mean"])]
    lines.append("|---|---:|" + "---:|" * (len(seeds) + 1))
    several = [key for key in order if len(runs[key]) > 1]  # the rates run beyond seed 0
    for kind, rate in several:
        right = {s: a["metrics"]["findings_accuracy"]["all"] for s, a in runs[kind, rate].items()}
        cells = [f"{100 * right[s]:.1f}%" if s in right else DASH for s in seeds]
        mean = f"{100 * sum(right.values()) / len(right):.1f}%"
        mark = " (chosen)" if chosen.get(kind) == rate else ""
        lines.append(row([STAGE_NAMES[kind], rate + mark, *cells, mean]))
    shown = [runs[key][0] for key in order if 0 in runs[key]]
    shown += [a for key in several for a in runs[key].values()]
    used = list({id(a): a for a in shown}.values())  # each artifact once
    head = (
        "Seed 0 at each rate (validation chooses); then every finding right on the test "
        "split, seed by seed, for the rates run on more seeds."
    )
    return "\n".join([head, "", *lines, "", sources(used)]) + "\n"
