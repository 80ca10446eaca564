"""A tiny generated report dataset for the caption-source tests: studies of two images (a
frontal and a lateral view) of assorted sizes, channel counts and formats, each with a
free-text report that states what is drawn on its frontal image, written in both the ``file``
(CSV and JSONL) and the ``r2gen`` (``annotation.json``) layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

SIDES = ("left", "right")
SIZES = ("small", "large")
# (mode, width, height, suffix): 8-bit gray, RGB, 16-bit gray, RGBA, JPEG
FORMATS = [
    ("L", 64, 64, ".png"),
    ("RGB", 100, 80, ".png"),
    ("I;16", 70, 70, ".png"),
    ("RGBA", 50, 90, ".png"),
    ("L", 120, 96, ".jpg"),
]


def _image(side: str, size: str, index: int, rng) -> np.ndarray:
    """A dark chest-like field with a bright blob on ``side``, (96, 96) float in 0..1."""
    field = rng.uniform(0.0, 0.2, (96, 96))
    radius = 8 if size == "small" else 18
    cx = 30 if side == "left" else 66
    yy, xx = np.mgrid[:96, :96]
    field[(yy - 48) ** 2 + (xx - cx) ** 2 < radius**2] = 0.9
    field[:, (index * 7) % 96] += 0.05  # every image's bytes differ
    return np.clip(field, 0, 1)


def _save(pixels: np.ndarray, path: Path, mode: str, width: int, height: int) -> None:
    gray = Image.fromarray((pixels * 255).astype(np.uint8), "L").resize((width, height))
    if mode == "I;16":
        image = Image.fromarray((np.asarray(gray, np.uint16) * 40 + 1000).astype(np.uint16))
    elif mode == "L":
        image = gray
    else:
        image = gray.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG" if path.suffix == ".jpg" else "PNG")


def report(side: str, size: str, variant: int) -> str:
    """The study's report: its finding, in one of two phrasings."""
    if variant == 0:
        return f"The heart is normal. There is a {size} opacity in the {side} lung. No effusion."
    return f"Normal heart size. {size.capitalize()} {side} lung opacity, no pleural effusion."


def make_reports(folder: Path, n: int = 30, seed: int = 0) -> dict[str, Path]:
    """Write ``n`` studies under ``folder/images`` and the caption files; return their paths
    (keys images, csv, jsonl, r2gen). Study 0's frontal image is corrupt (a bad image to
    skip) and study 1's is missing from disk (a missing file to skip)."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    studies = []
    for i in range(n):
        side, size = SIDES[i % 2], SIZES[(i // 2) % 2]
        mode, width, height, suffix = FORMATS[i % len(FORMATS)]
        paths = [f"study{i:03d}/{view}{suffix}" for view in ("frontal", "lateral")]
        for j, rel in enumerate(paths):
            _save(_image(side, size, 2 * i + j, rng), images / rel, mode, width, height)
        studies.append({"id": f"s{i:03d}", "side": side, "size": size, "images": paths})
    (images / studies[0]["images"][0]).write_bytes(b"not an image at all")
    (images / studies[1]["images"][0]).unlink()
    splits = ["train"] * (n - 8) + ["val"] * 4 + ["test"] * 4

    with (folder / "reports.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption", "label", "id"])
        for s in studies:  # two rows per study: two references
            for variant in (0, 1):
                writer.writerow(
                    [
                        "|".join(s["images"]),
                        report(s["side"], s["size"], variant),
                        s["side"],
                        s["id"],
                    ]
                )
    with (folder / "reports.jsonl").open("w") as handle:
        for s, split in zip(studies, splits, strict=True):
            entry = {
                "image": s["images"],
                "captions": [report(s["side"], s["size"], v) for v in (0, 1)],
                "split": split,
                "label": s["side"],
            }
            handle.write(json.dumps(entry) + "\n")
    annotation = {name: [] for name in ("train", "val", "test")}
    for s, split in zip(studies, splits, strict=True):
        annotation[split].append(
            {
                "id": s["id"],
                "report": report(s["side"], s["size"], 0),
                "image_path": s["images"],
                "split": split,
            }
        )
    r2gen = folder / "iu_tiny" / "annotation.json"
    r2gen.parent.mkdir()
    r2gen.write_text(json.dumps(annotation))
    return {
        "images": images,
        "csv": folder / "reports.csv",
        "jsonl": folder / "reports.jsonl",
        "r2gen": r2gen,
        "studies": studies,
    }
