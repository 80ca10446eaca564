"""Real CT and MR images against the MedNIST scope rule: how many a run keeps in scope, and how
many it keeps with a class the image cannot be.

    python experiments/scope_real_ct_mr.py CAPTIONS_CSV IMAGES_DIR [--run RUN] [--name NAME]

CAPTIONS_CSV has ``image`` (a file name in IMAGES_DIR), ``modality`` (CT, MR), ``location``
(body system) and optionally ``split`` (MedPix 2.0's layout). Every image is captioned with
``captioning caption --json`` (the bundled model unless ``--run``). A class is possible only
for: CT of the head (HeadCT), of the chest (ChestCT), of the abdomen or genito-urinary tract
(AbdomenCT), MR of the breast (BreastMRI); any other class of those, and any class of other
images, is impossible. Reports, per split and overall: in scope, in scope with an impossible
class, in scope with a possible class, and the classes given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scope_common import ROOT, record

# (modality, body system) -> the MedNIST classes such an image may be
POSSIBLE = {
    ("CT", "Brain and Neuro"): "HeadCT",
    ("CT", "Head and Neck"): "HeadCT",
    ("CT", "Nerve, central"): "HeadCT",
    ("CT", "Chest, Pulmonary"): "ChestCT",
    ("CT", "Gastrointestinal"): "AbdomenCT",
    ("CT", "Genitourinary"): "AbdomenCT",
    ("CT", "Abdomen"): "AbdomenCT",
    ("MR", "Breast and Mammography"): "BreastMRI",
}


def caption_folder(images: Path, run: str | None) -> dict[str, dict]:
    """``caption --json`` of every image in ``images``: file name -> its JSON entry."""
    command = [sys.executable, "-m", "captioning.cli", "caption", str(images), "--json"]
    command += ["--run", run] if run else []
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    entries = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {Path(e["path"]).name: e for e in entries}


def rates(frame: pd.DataFrame) -> dict:
    kept = frame[frame["in_scope"]]
    return {
        "images": len(frame),
        "in_scope": round(float(frame["in_scope"].mean()), 4),
        "in_scope_impossible": round(float((frame["in_scope"] & ~frame["possible"]).mean()), 4),
        "in_scope_possible": round(float((frame["in_scope"] & frame["possible"]).mean()), 4),
        "mean_class_probability_in_scope": round(float(kept["prob"].mean()), 4)
        if len(kept)
        else None,
        "classes_in_scope": {k: int(v) for k, v in kept["class"].value_counts().items()},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captions", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--run", help="a captioner run (default: the bundled model)")
    parser.add_argument("--name", default="scope_real_ct_mr", help="results/<name>.json")
    args = parser.parse_args(argv)
    table = pd.read_csv(args.captions)
    entries = caption_folder(args.images, args.run)
    missing = sorted(set(table["image"]) - set(entries))
    if missing:
        sys.exit(f"error: {len(missing)} images got no caption entry, e.g. {missing[0]}")
    table["in_scope"] = [bool(entries[i].get("in_scope")) for i in table["image"]]
    table["class"] = [entries[i].get("class") for i in table["image"]]
    table["prob"] = [entries[i].get("prob") for i in table["image"]]
    pairs = zip(table["modality"], table["location"], strict=True)
    allowed = [POSSIBLE.get(pair) for pair in pairs]
    given = zip(table["class"], allowed, strict=True)
    table["possible"] = [c is not None and c == a for c, a in given]
    splits = {"all": table}
    if "split" in table:
        splits |= {str(s): g for s, g in table.groupby("split")}
    result = {
        "run": args.run or "bundled (captioning/pretrained/captioner)",
        "rule": {f"{m} {loc}": c for (m, loc), c in POSSIBLE.items()},
        "rates": {name: rates(frame) for name, frame in splits.items()},
    }
    data = {"captions": args.captions.name, "images": len(table)}
    record(args.name, result, data)


if __name__ == "__main__":
    main()
