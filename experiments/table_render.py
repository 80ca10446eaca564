"""The tables themselves: one function per table name, from the loaded artifacts to Markdown.

Every number printed here is read from an artifact; each table ends with the data, machine and
code its artifacts record (``null`` fields are said to be unrecorded, never guessed). Metric
labels and formats come from ``captioning.metrics.registry``; the speed table is in
``table_speed``, the helpers every table shares in ``table_common``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, from a checkout
from table_acquisition import acquisition, acquisition_rates
from table_common import pct, row, sources
from table_medpix import medpix, medpix_128, medpix_constant, medpix_encoders, medpix_heads
from table_profile import renderers as profile_renderers
from table_speed import speed, speed_rows

from captioning.metrics.registry import DASH, HEADLINE, metric
from captioning.metrics.registry import value as metric_value


def grouped(results: list[dict]) -> list[tuple[str, list[dict]]]:
    """Results grouped by their ``label``, in the order of their file names."""
    out: dict[str, list[dict]] = {}
    for art in results:
        out.setdefault(art["label"], []).append(art)
    return list(out.items())


def seed_summary(arts: list[dict]) -> tuple[dict, str, str]:
    """{seed: accuracy}, mean ± sd (percentage points) and the errors, seed by seed."""
    by_seed = {a["seed"]: a for a in sorted(arts, key=lambda a: a["seed"])}
    accs = [a["metrics"]["accuracy"] for a in by_seed.values()]
    spread = DASH
    if len(accs) > 1:
        spread = f"{100 * statistics.mean(accs):.3f}% ± {100 * statistics.stdev(accs):.3f}"
    errors = " / ".join(str(a["metrics"]["error_count"]) for a in by_seed.values())
    return {s: a["metrics"]["accuracy"] for s, a in by_seed.items()}, spread, errors


def classifier(artifacts: dict) -> str:
    """Test accuracy per seed of every recorded classifier, and the seed notebook's benchmark."""
    results = artifacts["results"].get("classifier", [])
    bench = artifacts["benchmarks"].get("classifier")
    seeds = sorted({a["seed"] for a in results} | {0})
    lines = [
        row(["model", "parameters", *(f"seed {s}" for s in seeds), "mean ± sd", "errors"]),
        row(["---", "---:", *("---:" for _ in seeds), "---:", "---"]),
    ]
    for label, arts in grouped(results):
        accs, spread, errors = seed_summary(arts)
        params = {a["training"].get("parameters") for a in arts}
        cells = [pct(accs.get(s)) for s in seeds]
        params = ", ".join(f"{p:,}" if p else DASH for p in params)
        lines.append(row([label, params, *cells, spread, errors]))
    used = list(results)
    if bench:
        training = bench["training"]
        for key, label in (
            ("seed_replica", "seed notebook's model in our pipeline and loop"),
            ("seed_notebook", "seed notebook as it ran (Keras 2 ImageDataGenerator + `fit`)"),
        ):
            if key in training:
                run = training[key]
                accs = [pct(run["test_accuracy"]) if s == 0 else DASH for s in seeds]
                lines.append(
                    row([label, f"{run['parameters']:,}", *accs, DASH, run["test_errors"]])
                )
        used.append(bench)
    return "\n".join(lines) + "\n\n" + sources(used)


def metric_column(name: str) -> tuple[str, object]:
    """(label, cell) of the registry's metric ``name``, formatted as the registry says."""
    m = metric(name)
    return m.label, lambda metrics: m.format(metric_value(metrics, name))


# the captioner tables' columns: the headline caption metrics, then what the captions get right
CAPTIONER_COLUMNS = (
    *(metric_column(name) for name in HEADLINE),
    metric_column("caption_class_accuracy"),
    *(metric_column(f"findings_accuracy.{f}") for f in ("extent", "density", "brightness", "all")),
    (f"{metric('ece').label} % class / worst finding", lambda m: ece_text(m.get("ece"))),
    metric_column("out_of_scope_rate"),
)


def ece_text(ece) -> str:
    """``0.04 / 0.61``: the class's expected calibration error and the largest of the findings',
    in percent; a dash where the evaluation had no calibration."""
    if not isinstance(ece, dict) or ece.get("class") is None:
        return DASH
    findings = [v for k, v in ece.items() if k != "class" and v is not None]
    worst = f"{100 * max(findings):.2f}" if findings else DASH
    return f"{100 * ece['class']:.2f} / {worst}"


def mean_metrics(metrics: list[dict]) -> dict:
    """The mean of each number (nested dicts included) over ``metrics``; keys all share."""
    out = {}
    for key, value in metrics[0].items():
        values = [m.get(key) for m in metrics]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = mean_metrics(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.mean(values)
    return out


def captioner_results(artifacts: dict) -> list[dict]:
    """Every result under ``experiments/results/captioner*/``, in file-name order."""
    groups = sorted(g for g in artifacts["results"] if g.startswith("captioner"))
    return [art for g in groups for art in artifacts["results"][g]]


def captioner(artifacts: dict) -> str:
    """One row per recorded captioner result; a note while there is none."""
    results = captioner_results(artifacts)
    if not results:
        return (
            "No captioner result is recorded yet. Record one with `experiments/record.py` "
            "(above), then run `python experiments/tables.py`.\n"
        )
    lines = [
        row(["model", *(name for name, _ in CAPTIONER_COLUMNS)]),
        row(["---", *("---:" for _ in CAPTIONER_COLUMNS)]),
    ]
    for label, arts in grouped(results):
        seeds = [a.get("seed") for a in arts]
        for art in arts:
            name = label if len(arts) == 1 else f"{label}, seed {art.get('seed')}"
            lines.append(row([name, *(cell(art["metrics"]) for _, cell in CAPTIONER_COLUMNS)]))
        if len(arts) > 1:  # the mean over seeds, in bold
            mean = mean_metrics([a["metrics"] for a in arts])
            name = f"**{label}, mean of seeds {', '.join(map(str, seeds))}**"
            lines.append(row([name, *(f"**{cell(mean)}**" for _, cell in CAPTIONER_COLUMNS)]))
    return "\n".join(lines) + "\n\n" + sources(results)


def headline(artifacts: dict) -> str:
    """The README's summary: the headline classifier and captioner results and the speed."""
    results = artifacts["results"].get("classifier", [])
    chosen = [a for a in results if a.get("headline")]
    lines = [row(["", "result"]), row(["---", "---"])]
    used = list(chosen)
    if chosen:
        accs, spread, errors = seed_summary(chosen)
        n = chosen[0]["metrics"]["n"]
        seeds = ", ".join(str(s) for s in accs)
        mean = spread if len(accs) > 1 else pct(next(iter(accs.values())))
        lines.append(
            row(["classifier accuracy", f"{mean} (errors {errors} of {n:,}; seeds {seeds})"])
        )
    caps = [a for a in captioner_results(artifacts) if a.get("headline")]
    for label, arts in grouped(caps):  # several seeds: their mean
        m = mean_metrics([a["metrics"] for a in arts])
        cells = ", ".join(f"{name} {cell(m)}" for name, cell in CAPTIONER_COLUMNS)
        if len(arts) > 1:
            label += f" (mean of seeds {', '.join(str(a.get('seed')) for a in arts)})"
        lines.append(row([f"captioner: {label}", cells]))
    if not caps:
        lines.append(row(["captioner", "no recorded result yet (see experiments/README.md)"]))
    used += caps
    speed_cells = speed_rows(artifacts["benchmarks"])
    if speed_cells and "classifier" in artifacts["benchmarks"]:
        first = speed_cells[0]
        text = f"{first[0]}: {first[1]} vs {first[2]}; {first[3]} ({first[4]}, same run)"
        lines.append(row(["speed", text]))
        used.append(artifacts["benchmarks"]["classifier"])
    return "\n".join(lines) + "\n\n" + sources(used)


RENDERERS = {
    "headline": headline,
    "classifier": classifier,
    "captioner": captioner,
    "speed": speed,
    "medpix": medpix,
    "medpix_128": medpix_128,
    "medpix_heads": medpix_heads,
    "medpix_encoders": medpix_encoders,
    "medpix_constant": medpix_constant,
    "acquisition": acquisition,
    "acquisition_rates": acquisition_rates,
    **profile_renderers(),
}
