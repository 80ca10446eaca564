"""The acquisition set's train and val images as a labelled caption file, so that `train
classifier` can pretrain an encoder on the set's own fields (class, orientation, position),
as issue 20's label encoder does on MedPix's columns.

    python experiments/acquisition_labelled.py --data MEDNIST_PREPARED --out WORK/acq-labelled
    captioning data prepare --captions WORK/acq-labelled/labels.csv \
        --images WORK/acq-labelled/images --root WORK/acq-prepared \
        --label-columns class,orientation,position
    captioning train classifier --data WORK/acq-prepared --run-dir WORK/classifier-acq

The images are the set's own (each turned and shifted by its seeded draw,
``captioning.captions.acquisition.acquire``), written as 8-bit grey PNG at the prepared size,
so ``data prepare`` reads back the same pixels. Only the train and val splits are written:
the set's test split, on which the captioners are scored, stays unseen by the encoder (the
file has no ``split`` column, so ``data prepare`` draws its own split of these images, grouped
by content). The caption column only names the three values; the classifier does not read it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from acquisition_probe import acquired  # noqa: E402

COLUMNS = ("class", "orientation", "position")


def write_split(data, split: str, out: Path, writer) -> int:
    """Write one split's acquired images under ``out/images`` and their rows; the count."""
    from PIL import Image

    images, draws = acquired(data, split, None)
    part = data.split(split)
    for i, path in enumerate(part.paths):
        name = Path(path).with_suffix(".png").as_posix()
        (out / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(images[i], dtype=np.uint8), mode="L").save(out / "images" / name)
        values = [data.classes[part.labels[i]], *draws.iloc[i][list(COLUMNS[1:])]]
        writer.writerow([name, ", ".join(values), *values])
    return len(part.paths)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--out", required=True, help="folder for labels.csv and images/")
    args = parser.parse_args(argv)
    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption", *COLUMNS])
        counts = {split: write_split(data, split, out, writer) for split in ("train", "val")}
    print(f"{out / 'labels.csv'}: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))


if __name__ == "__main__":
    main()
