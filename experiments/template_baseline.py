"""Template baseline ("classify, then verbalise") on a prepared dataset with captions built.

    python experiments/template_baseline.py CLASSIFIER_RUN DATA_ROOT [OUT_JSON] [SPLIT]
    python experiments/template_baseline.py oracle DATA_ROOT [OUT_JSON] [SPLIT]

With ``--record NAME`` after the arguments, the result is also written as a captioner-table
artifact, ``experiments/results/captioner/NAME.json``, with its provenance.

Fits one linear head per finding (and the quality flag) on the classifier's frozen encoder
features of the train split, renders template 0 with the predicted fields and the classifier's
class, and scores the captions like a captioner's (BLEU, CIDEr-D, ROUGE-L, class and findings
accuracy by parse-back). With ``oracle`` instead of a run: the pixel-rule oracle (true class +
the findings formulas, template 0), the ceiling row of the results tables. Also prints, per
field, the share of diagnostic images of the split whose measurement lies within 1%, 2% and 5%
of the field's 5-95% train range of its cut point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from captioning.captions.findings import FIELDS, MEASURE_OF, is_diagnostic, measure
from captioning.data.dataset import PreparedData
from captioning.data.template_captions import load_cutpoints
from captioning.evaluation.baselines import evaluate_baseline, evaluate_oracle, measurement_margin
from captioning.metrics.registry import kept_scores


def margins(root: str, split: str) -> dict:
    data = PreparedData(root)
    cuts = load_cutpoints(root)["cuts"]
    train, part = measure(data.split("train").images), measure(data.split(split).images)
    train, part = train[is_diagnostic(train)], part[is_diagnostic(part)]
    out = {}
    for field in FIELDS:
        column = MEASURE_OF[field]
        span = float(np.subtract(*np.quantile(train[column], [0.95, 0.05])))
        out[field] = {
            f"within_{int(f * 100)}pct": round(
                measurement_margin(part[column].to_numpy(), cuts[field], f * span), 4
            )
            for f in (0.01, 0.02, 0.05)
        }
    return out


LABELS = {
    "oracle": "pixel-rule oracle: true class + findings formulas, template 0 (a ceiling)",
    "baseline": "template baseline: classifier + linear head per field, template 0",
}


def record(report: dict, name: str, kind: str, root: str, argv: list[str]) -> Path:
    """Write ``report``'s headline metrics as a captioner-table artifact with provenance."""
    from captioning.utils.provenance import provenance

    data = PreparedData(root)
    command = "python experiments/template_baseline.py " + " ".join(
        "DATA" if a == root else a for a in argv
    )
    keys = ("n", *kept_scores(), "caption_class_accuracy", "findings_accuracy")
    metrics = {k: report[k] for k in keys if k in report}
    artifact = {
        "name": name,
        "label": LABELS[kind],
        "kind": kind,
        "seed": report.get("seed"),
        "evaluate_split": report["split"],
        **provenance(command, data.card),
        "metrics": metrics,
    }
    out = Path(__file__).resolve().parent / "results" / "captioner" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(artifact, indent=2) + "\n")
    return out


def main(argv: list[str]) -> None:
    name = None
    if "--record" in argv:
        i = argv.index("--record")
        name, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    run, root, *rest = argv
    out = rest[0] if rest else None
    split = rest[1] if len(rest) > 1 else "test"
    if run == "oracle":
        report = evaluate_oracle(root, split=split)
    else:
        report = evaluate_baseline(run, root, split=split)
    report["margins"] = margins(root, split)
    summary = {k: v for k, v in report.items() if k != "captions"}
    print(json.dumps(summary, indent=2))
    if out:
        with open(out, "w") as fh:
            json.dump(report, fh, indent=2)
    if name:
        kind = "oracle" if run == "oracle" else "baseline"
        print(f"written to {record(report, name, kind, root, sys.argv[1:])}")


if __name__ == "__main__":
    main(sys.argv[1:])
