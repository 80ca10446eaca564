"""A captioner run's calibration and scope on its test split: ECE of the class and of each
finding (15 bins), before and after the temperatures fitted on validation, and the share of
test images out of scope, beside the findings accuracy.

    python experiments/scope_calibration.py CAPTIONER_RUN [--out JSON]

Runs ``captioning evaluate`` (the run's beam width) and records its summary; the reliability
diagram is written beside the JSON as ``<name>_reliability.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from scope_common import RESULTS, record

from captioning.commands.evaluate import evaluate_run
from captioning.utils.runs import read_json

KEYS = ("n", "ece", "out_of_scope", "out_of_scope_rate", "scope", "findings_accuracy", "accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    out = Path(args.out) if args.out else RESULTS / "scope_calibration.json"
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate_run(run_dir, out=Path(tmp) / "report.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        (out.parent / f"{out.stem}_reliability.png").write_bytes(
            (Path(tmp) / "reliability_test.png").read_bytes()
        )
    calibration = json.loads((run_dir / "calibration.json").read_text())
    run = read_json(run_dir / "run.json")
    summary = {k: report[k] for k in KEYS}
    summary["bleu4"] = report["bleu4"]
    summary["validation"] = calibration
    summary["run_dir"] = str(run_dir)
    summary["training"] = {"command": run.get("command"), "encoder_run": run.get("encoder_run")}
    print(json.dumps({k: summary[k] for k in ("ece", "out_of_scope_rate")}, indent=2))
    record(
        out.stem,
        summary,
        {"root": report["data"], "manifest_sha256": report["manifest_sha256"], "split": "test"},
        str(out),
    )


if __name__ == "__main__":
    main()
