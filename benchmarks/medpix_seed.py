"""One seed of the MedPix 2.0 recipe, label pretraining included, timed command by command:

    python benchmarks/medpix_seed.py MEDPIX_DIR [--seed 0] [--out FILE] [--smoke]

MEDPIX_DIR holds ``captions.csv`` and ``images/`` (the MedPix 2.0 development copy). The
commands are ``experiments/medpix.sh``'s for the encoder trained on MedPix's own labels, each in
its own process: carve the test split, ``data prepare`` (64x64 grey, padded as the committed
tables were, the three label columns), ``train classifier`` on the labels, ``train captioner``
on that encoder, ``evaluate``. Each command's wall seconds (start-up, data loading and its own
evaluation included) and peak resident memory are recorded; ``train_seconds`` is the two
trainings together, the time the recipe's "one seed trains in at most 10 minutes" is about.
Writes ``experiments/benchmarks/medpix_seed.json`` (default) with the machine and its load.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from common import ROOT, record, run_sampled

CLI = [sys.executable, "-m", "captioning.cli"]
TRAIN_LIMIT_S = 600  # the recipe's budget for one seed's two trainings on two cores


def steps(medpix: Path, work: Path, seed: int, smoke: bool) -> list[tuple[str, list[str]]]:
    """(name, command) in order: medpix.sh's commands for the label encoder's captioner."""
    data, classifier, captioner = work / "data", work / "classifier", work / "captioner"
    small = ["--smoke"] if smoke else []
    carve = [sys.executable, str(ROOT / "experiments" / "medpix_split.py")]
    return [
        ("carve", [*carve, str(medpix / "captions.csv"), str(work / "captions.csv")]),
        ("prepare", [*CLI, "data", "prepare", "--captions", str(work / "captions.csv"),
                     "--images", str(medpix / "images"), "--root", str(data),
                     "--label-columns", "modality,plane,location", "--fit", "pad"]),
        ("train_classifier", [*CLI, "train", "classifier", "--data", str(data), "--run-dir",
                              str(classifier), "--set", f"train.seed={seed}", *small]),
        ("train_captioner", [*CLI, "train", "captioner", "--data", str(data), "--encoder",
                             str(classifier), "--run-dir", str(captioner), "--set",
                             f"train.seed={seed}", *small]),
        ("evaluate", [*CLI, "evaluate", "--run", str(captioner), "--out",
                      str(work / "test.json")]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("medpix", type=Path, help="folder with captions.csv and images/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="default: experiments/benchmarks/medpix_seed.json")
    parser.add_argument("--smoke", action="store_true", help="a few steps: checks the script")
    args = parser.parse_args()
    timed = {}
    with tempfile.TemporaryDirectory(prefix="bench-medpix-") as tmp:
        work = Path(tmp)
        for name, command in steps(args.medpix.resolve(), work, args.seed, args.smoke):
            run = run_sampled(command)
            if run["code"] != 0:
                raise SystemExit(f"{name} failed (exit {run['code']}): {shlex.join(command)}")
            timed[name] = {
                "command": shlex.join(command).replace(tmp, "WORK"),
                "seconds": run["seconds"],
                "peak_rss_mib": run["peak_rss_mib"]["run"],
            }
        test = json.loads((work / "test.json").read_text())
        card = json.loads((work / "data" / "data_card.json").read_text())
    train = timed["train_classifier"]["seconds"] + timed["train_captioner"]["seconds"]
    result = {
        "smoke": args.smoke,
        "seed": args.seed,
        "steps": timed,
        "train_seconds": round(train, 1),
        "train_limit_seconds": TRAIN_LIMIT_S,
        "within_limit": train <= TRAIN_LIMIT_S,
        "test": {  # what the seed scored on the carved test split (evaluate --out)
            "cider": test.get("cider"),
            "bleu4": test.get("bleu4"),
            "right_when_stated": {
                column: block.get("right_when_stated")
                for column, block in (test.get("content") or {}).items()
            },
        },
        "data": {"images": card.get("n_images"), "manifest_sha256": card.get("manifest_sha256")},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=2))
    record("medpix_seed", result, args.out)


if __name__ == "__main__":
    main()
