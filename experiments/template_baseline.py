"""Template baseline ("classify, then verbalise") on a prepared dataset with captions built.

    python experiments/template_baseline.py CLASSIFIER_RUN DATA_ROOT [OUT_JSON] [SPLIT]
    python experiments/template_baseline.py oracle DATA_ROOT [OUT_JSON] [SPLIT]

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

import numpy as np

from captioning.baseline import evaluate_baseline, evaluate_oracle, measurement_margin
from captioning.captions.build import load_cutpoints
from captioning.captions.findings import FIELDS, MEASURE_OF, is_diagnostic, measure
from captioning.data.dataset import PreparedData


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


def main(run: str, root: str, out: str | None = None, split: str = "test") -> None:
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


if __name__ == "__main__":
    main(*sys.argv[1:])
