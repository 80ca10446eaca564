"""The R2Gen-layout check: a caption file of short, regular report sentences in R2Gen's
``annotation.json`` layout, run through the documented commands, the model against the
constant caption.

Run:    python experiments/r2gen_check.py MEDPIX_ARCHIVE WORK_DIR [--smoke]
        (MEDPIX_ARCHIVE: the MedPix 2.0 development copy, ``medpix2/captions.csv`` and
        ``medpix2/images/``)
Expect: experiments/results/r2gen_check.json: the captioner's BLEU-4 and CIDEr-D on the test
        studies beside the baselines of the same ``evaluate`` run (constant caption, retrieval,
        classify-then-template); about 15 minutes on 2 CPU cores (``--smoke``: the commands
        with a few training steps, nothing recorded).

The data: ``TRAIN``/``VAL``/``TEST`` studies of one real MedPix image each (CT and MR; the
axial, coronal and sagittal planes and the body systems of ``REGION``), whole clinical cases
per split (seeded). **The reports are generated from the images' MedPix labels**, not written
by a radiologist: a first sentence stating plane, modality and body region in one of a few
phrasings, and a second sentence from a short list per region (both chosen at random, seeded).
So the check is of the commands on a small, regular report file, as the issue's 600-study file
was; it is not a radiology result. The commands, as docs/datasets.md writes them:
``data prepare --captions annotation.json --images DIR --label-columns ...``, ``train
classifier`` (an encoder of the three labels), ``train captioner --encoder`` with the default
schedule rule of data size, ``evaluate --out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scope_common import ROOT, record

TRAIN, VAL, TEST = 600, 100, 100  # studies (images) per split
SEED = 0
PLANES = ("Axial", "Coronal", "Sagittal")
MODALITY = {"CT": ("ct", "computed tomography"), "MR": ("mr", "mri")}
REGION = {  # MedPix location -> (region words, second sentences)
    "Brain and Neuro": ("brain", ("no midline shift.", "the ventricles are normal in size.")),
    "Musculoskeletal": ("bones", ("no fracture is seen.", "the joint spaces are preserved.")),
    "Chest, Pulmonary": ("chest", ("the lungs are clear.", "no pleural effusion.")),
    "Gastrointestinal": ("abdomen", ("the bowel is not dilated.", "no free air.")),
    "Genitourinary": ("pelvis", ("the kidneys are normal.", "the bladder is unremarkable.")),
    "Head and Neck": ("neck", ("the airway is patent.", "no cervical mass.")),
    "Spine": ("spine", ("the vertebral bodies are aligned.", "no cord compression.")),
}
FIRST = (
    "{plane} {modality} of the {region}.",
    "{plane} {modality} image of the {region}.",
    "{modality} of the {region} in the {plane} plane.",
)
COLUMNS = ("modality", "plane", "location")


def read_medpix(archive: Path) -> pd.DataFrame:
    """The archive's caption table, the images of ``PLANES`` and ``REGION`` only."""
    with tarfile.open(archive) as tar:
        name = next(m.name for m in tar.getmembers() if m.name.endswith("/captions.csv"))
        table = pd.read_csv(tar.extractfile(name), dtype=str, keep_default_na=False)
    keep = table.plane.isin(PLANES) & table.location.isin(REGION) & table.modality.isin(MODALITY)
    return table[keep].sort_values("image").reset_index(drop=True)


def assign_splits(table: pd.DataFrame, seed: int = SEED) -> pd.DataFrame:
    """Whole cases, in a seeded order, to test, then val, then train, until each holds its
    number of images (a case that would overfill a split goes to the next one); the rest
    unused. ``table`` with a ``split`` column of the chosen images."""
    cases = np.array(sorted(table.case.unique()))
    order = np.random.default_rng(seed).permutation(cases)
    sizes = table.groupby("case").size()
    wanted = {"test": TEST, "val": VAL, "train": TRAIN}
    filled = dict.fromkeys(wanted, 0)
    chosen = {}
    for case in order:
        for split, target in wanted.items():
            if filled[split] + sizes[case] <= target:
                chosen[case] = split
                filled[split] += sizes[case]
                break
    out = table[table.case.isin(chosen)].copy()
    out["split"] = out.case.map(chosen)
    return out.reset_index(drop=True)


def report(row, rng: np.random.Generator) -> str:
    """Two short sentences from the image's labels, phrasings chosen with ``rng``."""
    region, seconds = REGION[row.location]
    words = MODALITY[row.modality]
    first = FIRST[rng.integers(len(FIRST))].format(
        plane=row.plane.lower(), modality=words[rng.integers(len(words))], region=region
    )
    return f"{first} {seconds[rng.integers(len(seconds))]}"


def write_dataset(archive: Path, table: pd.DataFrame, work: Path) -> Path:
    """``work/images/`` (the chosen images) and ``work/annotation.json`` in R2Gen's layout,
    one study per image, the label columns as extra keys."""
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    wanted = set(table.image)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and "/images/" in member.name and name in wanted:
                (images / name).write_bytes(tar.extractfile(member).read())
    rng = np.random.default_rng(SEED)
    payload: dict = {"train": [], "val": [], "test": []}
    for row in table.itertuples(index=False):
        entry = {"id": Path(row.image).stem, "image_path": [row.image], "split": row.split}
        entry.update(report=report(row, rng), **{c: getattr(row, c) for c in COLUMNS})
        payload[row.split].append(entry)
    path = work / "annotation.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def captioning(*args: str, cwd: Path) -> dict:
    """``captioning ARGS`` with this checkout's package; the command and its seconds."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env["CAPTIONING_HOME"] = str(cwd / "home")
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "captioning.cli", *args], cwd=cwd, env=env)
    if done.returncode != 0:
        raise SystemExit(f"captioning {' '.join(args)}: exit code {done.returncode}")
    return {"command": "captioning " + " ".join(args), "seconds": round(time.perf_counter() - tic)}


def run_commands(work: Path, smoke: bool) -> list[dict]:
    """The documented commands on ``work/annotation.json``, from the work folder."""
    extra = ["--smoke"] if smoke else []
    return [
        captioning(
            "data", "prepare", "--captions", "annotation.json", "--images", "images",
            "--root", "data", "--label-columns", ",".join(COLUMNS), "--force", cwd=work,
        ),
        captioning("train", "classifier", "--data", "data", "--run-dir", "clf", *extra, cwd=work),
        captioning(
            "train", "captioner", "--data", "data", "--encoder", "clf", "--run-dir", "cap",
            *extra, cwd=work,
        ),
        captioning("evaluate", "--run", "cap", "--out", "eval.json", cwd=work),
    ]  # fmt: skip


SCORES = ("bleu4", "cider", "rouge_l", "meteor")


def summary(work: Path) -> dict:
    """What the evaluation says of the model against each baseline (scores, paired
    bootstrap of BLEU-4 and CIDEr-D), with the first test captions."""
    ev = json.loads((work / "eval.json").read_text())
    baselines = {}
    for name, block in ev["baselines"].items():
        if not isinstance(block, dict) or "bleu4" not in block:
            continue
        paired = block.get("paired_bootstrap") or {}
        baselines[name] = {
            **{k: block.get(k) for k in SCORES},
            "caption": block.get("caption"),
            "model_minus_baseline": {k: paired.get(k) for k in ("bleu4", "cider")},
        }
    model = {k: ev.get(k) for k in (*SCORES, "distinct_share", "repeat_share", "unk_share")}
    run = json.loads((work / "cap" / "run.json").read_text())
    return {
        "model": model,
        "baselines": baselines,
        "bleu4_above_constant": ev["bleu4"] > ev["baselines"]["constant"]["bleu4"],
        "n_test": ev["n"],
        "decoding": ev["decoding"],
        "captioner_config": json.loads((work / "cap" / "config.json").read_text())["train"],
        "split_sizes": run["split_sizes"],
        "samples": [
            {"generated": c["generated"], "reference": c["references"][0]}
            for c in ev["captions"][:8]
        ],
    }


def main(argv=None) -> None:
    """Build the file, run the commands, record the result (not with ``--smoke``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="the MedPix 2.0 development archive")
    parser.add_argument("work", type=Path, help="a folder for the data and the runs")
    parser.add_argument("--smoke", action="store_true", help="a few steps; nothing recorded")
    args = parser.parse_args(argv)
    if not args.archive.is_file():
        raise SystemExit(f"{args.archive}: no such archive")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    table = assign_splits(read_medpix(args.archive))
    write_dataset(args.archive, table, work)
    commands = run_commands(work, args.smoke)
    result = {"commands": commands, **summary(work)}
    print(json.dumps({k: result[k] for k in ("model", "baselines")}, indent=1))
    if args.smoke:
        return
    counts = table.groupby("split").size().to_dict()
    data = {
        "source": f"{args.archive.name}: MedPix 2.0 development copy, one image per study",
        "studies": counts,
        "cases": table.groupby("split").case.nunique().to_dict(),
        "reports": "generated from each image's MedPix labels (plane, modality, body region), "
        "two short sentences, phrasings chosen at random (seed 0): not written by a radiologist",
        "first_sentences": list(FIRST),
        "regions": {k: v[0] for k, v in REGION.items()},
        "layout": "R2Gen annotation.json (train/val/test lists of id, image_path, report)",
    }
    record("r2gen_check", result, data)


if __name__ == "__main__":
    main()
