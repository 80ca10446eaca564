"""The images an evaluation reads: a run's own split of its prepared dataset, or any labelled
folder or archive (``captioning evaluate --data``, ``captioning calibrate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from captioning.data import archive
from captioning.data.dataset import PreparedData
from captioning.data.folder import decode_files, list_class_images
from captioning.data.image_spec import DEFAULT_IMAGE
from captioning.errors import DataError, RunError


def load_labelled(source: Path, classes: list[str], workdir: Path, spec=DEFAULT_IMAGE):
    """Images, labels, paths and skipped files from a folder or ``.tar.gz`` laid out
    ``<root>/<Class>/<image>``, decoded as ``spec`` says (the model's ``ImageSpec``). Class
    names must be among the model's ``classes``."""
    if not source.exists():
        raise DataError(f"{source}: no such folder or archive")
    if source.is_file():
        archive.extract(source, workdir / "images")
        source = workdir / "images"
    image_dir = archive.find_class_root(source)
    files, found_classes, _ = list_class_images(image_dir, None)
    unknown = sorted(set(found_classes) - set(classes))
    if unknown:
        raise DataError(
            f"{image_dir}: class folders unknown to the model: {', '.join(unknown)} "
            f"(the model knows {', '.join(classes)})"
        )
    rows, skipped = decode_files(files, image_dir, workdir / "images.npy", spec=spec)
    pixels = np.load(workdir / "images.npy")
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[r["class"]] for r in rows], dtype=np.int32)
    return pixels, labels, [r["path"] for r in rows], skipped


def run_split(run: dict, split: str):
    """The run's own prepared dataset and its ``split``, with what was evaluated; refuses a
    dataset re-prepared since training (its split could overlap the training images)."""
    dataset = PreparedData(run["data_root"], run.get("templates"))  # the images it trained on
    if dataset.manifest_sha256 != run["manifest_sha256"]:
        raise RunError(
            f"{dataset.root}: dataset changed since the run was trained "
            "(manifest checksum differs); evaluate with --data instead"
        )
    if split not in set(dataset.manifest["split"]):
        raise DataError(f"{dataset.root}: no split named '{split}'")
    evaluated = {
        "data": str(dataset.root),
        "split": split,
        "skipped": [],
        "manifest_sha256": dataset.manifest_sha256,
    }
    return dataset, dataset.split(split), evaluated
