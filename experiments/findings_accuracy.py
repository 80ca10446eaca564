"""Findings accuracy against the distance of each image's measurement from its field's cut point.

    python experiments/findings_accuracy.py DATA_ROOT OUT_STEM LABEL=EVAL_JSON [LABEL=EVAL_JSON ...]

Each ``EVAL_JSON`` is a ``captioning evaluate RUN --out FILE`` report on the test split of
``DATA_ROOT`` (its ``captions`` list: path and generated caption per image). For every field,
the diagnostic test images are binned by |measurement - cut point| in units of the field's
5-95% range on the training split, and the share read back right is reported per bin and model.
Writes ``OUT_STEM.json`` and ``OUT_STEM.png`` (one panel per field). This is what shows whether
a model's errors are near the cut points (a reading limit) or anywhere (a modelling limit).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

from captioning.captions.findings import FIELDS, MEASURE_OF, is_diagnostic, measure
from captioning.captions.parse import parse_caption
from captioning.captions.templates import load_template_set
from captioning.data.dataset import PreparedData
from captioning.data.template_captions import load_cutpoints, read_captions

# bin edges of |distance| as a fraction of the field's 5-95% training range
EDGES = [0.0, 0.0025, 0.005, 0.01, 0.02, 0.05, np.inf]


def distances(root: str) -> tuple[dict, dict]:
    """Per test image path: {field: signed distance / span}; and which images are diagnostic."""
    data = PreparedData(root)
    cuts = load_cutpoints(root)["cuts"]
    train = measure(data.split("train").images)
    train = train[is_diagnostic(train)]
    test = data.split("test")
    m = measure(test.images)
    paths = read_captions(root).iloc[test.rows]["path"].to_numpy()
    out = {}
    for field in FIELDS:
        column = MEASURE_OF[field]
        span = float(np.subtract(*np.quantile(train[column], [0.95, 0.05])))
        d = (m[column].to_numpy() - cuts[field][0]) / span
        out[field] = dict(zip(paths, d, strict=True))
    return out, dict(zip(paths, is_diagnostic(m), strict=True))


def per_bin(report: dict, dist: dict, diagnostic: dict, truth: dict, tset) -> dict:
    """{field: [{low, high, n, accuracy}, ...]} for one evaluation report; ``truth``: path ->
    the true findings."""
    out = {}
    for field in FIELDS:
        gaps, right = [], []
        for entry in report["captions"]:
            path = entry["path"]
            if not diagnostic[path]:
                continue
            parsed = parse_caption(entry["generated"], tset)
            gaps.append(abs(dist[field][path]))
            right.append(parsed.fields.get(field) == truth[path][field])
        gaps, right = np.asarray(gaps), np.asarray(right)
        rows = []
        for low, high in itertools.pairwise(EDGES):
            mask = (gaps >= low) & (gaps < high)
            rows.append(
                {
                    "low": low,
                    "high": None if np.isinf(high) else high,
                    "n": int(mask.sum()),
                    "accuracy": round(float(right[mask].mean()), 5) if mask.any() else None,
                }
            )
        out[field] = rows
    return out


def main(root: str, stem: str, *runs: str) -> None:
    tset = load_template_set("findings")
    frame = read_captions(root).set_index("path")
    truth = {p: row for p, row in frame[list(FIELDS)].iterrows()}
    dist, diagnostic = distances(root)
    result = {"data_root": str(Path(root).resolve()), "bin_edges_fraction_of_range": EDGES[:-1]}
    result["models"] = {}
    for spec in runs:
        label, path = spec.split("=", 1)
        report = json.loads(Path(path).read_text())
        result["models"][label] = per_bin(report, dist, diagnostic, truth, tset)
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FIELDS), figsize=(4.2 * len(FIELDS), 3.4), sharey=True)
    labels = [f"<{h:g}" for h in EDGES[1:-1]] + [f">={EDGES[-2]:g}"]
    for ax, field in zip(axes, FIELDS, strict=True):
        for label, bins in result["models"].items():
            acc = [np.nan if b["accuracy"] is None else b["accuracy"] for b in bins[field]]
            ax.plot(range(len(acc)), acc, marker="o", label=label)
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_title(f"{field} (|distance| / 5-95% range)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("read back right")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{stem}.png", dpi=110)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["models"], indent=1)[:3000])


if __name__ == "__main__":
    main(*sys.argv[1:])
