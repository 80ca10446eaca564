"""Phrasing study: one captioner run evaluated with ``decoder.phrasing`` "best" and "varied".

    python experiments/phrasing/measure.py CAPTIONER_RUN OUT_JSON [SPLIT] [BEAM ...]

For each phrasing and beam width: the caption metrics (BLEU-4, CIDEr-D, ROUGE-L), the class
and findings read back from the captions (``all``: every finding right), and the share of the
captions written with each template (``template_share``; ``none``: no template exactly), plus
three sample captions. Writes the JSON with the command, commit, data, machine and date.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from captioning.evaluation.captioner import evaluate_captioner_run
from captioning.metrics.registry import HEADLINE
from captioning.utils.runs import package_versions

KEPT = (*HEADLINE, "caption_class_accuracy", "findings_accuracy")


def main(run: str, out: str, split: str = "test", *beams: str) -> None:
    rows = []
    for beam in [int(b) for b in beams] or [None]:
        for phrasing in ("best", "varied"):
            # sample tables and overlays go to the run's eval/ folder
            report = evaluate_captioner_run(
                Path(run), split=split, beam=beam, phrasing=phrasing, baselines=False
            )
            row = {k: report[k] for k in KEPT}
            row.update(
                phrasing=phrasing,
                beam_width=report["decoding"]["beam_width"],
                template_share=report["template_share"],
                samples=[c["generated"] for c in report["captions"][:3]],
            )
            rows.append(row)
            print(json.dumps(row))
    result = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "versions": package_versions(),
        "run": json.loads((Path(run) / "run.json").read_text()),
        "n": report["n"],
        "split": split,
        "rows": rows,
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
