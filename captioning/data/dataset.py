"""Reading a prepared dataset: manifest, memory-mapped image cache, data card."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.acquisition import acquires
from captioning.captions.templates import load_template_set
from captioning.data.image_spec import ImageSpec
from captioning.errors import DataError


def set_images_path(root: str | Path, set_name: str) -> Path:
    """Where ``data captions`` writes the transformed images of a template set that states
    acquisition fields (``captions.acquisition``): ``<root>/captions/<set>_images.npy``."""
    return Path(root) / "captions" / f"{set_name}_images.npy"


@dataclass(frozen=True)
class Split:
    """The images and labels of one split, aligned row by row."""

    images: np.ndarray  # (N, S, S) or (N, S, S, 3) uint8: the dataset's ImageSpec
    labels: np.ndarray  # (N,) int32
    paths: list[str]  # relative to the dataset's image folder
    rows: np.ndarray  # (N,) row numbers into the manifest and the cache

    def __len__(self) -> int:
        return len(self.labels)


class PreparedData:
    """A folder written by ``captioning data prepare``.

    The image cache is memory-mapped: opening is instant and only the rows a split needs are
    read. ``manifest_sha256`` is checked on open, so a hand-edited manifest is caught.

    ``templates``: the template set the images are read for (a name or path; None: the images
    as prepared). A set that states acquisition fields (orientation, position) reads the
    transformed images ``data captions`` wrote for it (``set_images_path``): every consumer of
    a run on such a set (training, evaluation, calibration, the scope) opens the data this
    way, so all of them see the same pixels.
    """

    def __init__(self, root: str | Path, templates: str | Path | None = None):
        self.root = Path(root).expanduser().resolve()
        self.image_path = self.root / "images.npy"
        self.image_set: str | None = None  # the set whose transformed images are read
        if templates is not None:
            tset = load_template_set(templates)
            if acquires(tset.fields):
                self.image_set = tset.name
                self.image_path = set_images_path(self.root, tset.name)
        card_path = self.root / "data_card.json"
        if not card_path.is_file():
            raise DataError(
                f"{self.root}: not a prepared dataset (no data_card.json); "
                "run 'captioning data prepare' first"
            )
        try:
            self.card = json.loads(card_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{card_path}: unreadable data card ({err}); prepare again") from None
        manifest_path = self.root / "manifest.csv"
        try:
            digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        except OSError as err:
            raise DataError(
                f"{manifest_path}: cannot read the manifest ({err.strerror or err}); prepare again"
            ) from None
        if digest != self.card["manifest_sha256"]:
            raise DataError(
                f"{manifest_path}: checksum differs from the data card's "
                "(edited or corrupt); prepare the dataset again"
            )
        # class names such as "0" or "007" and paths stay text: only the numbers are numbers
        self.manifest = pd.read_csv(
            manifest_path,
            keep_default_na=False,
            dtype={
                "path": str,
                "class": str,
                "md5": str,
                "split": str,
                "study": str,
                "images": str,
            },
        )
        self.classes: list[str] = self.card["classes"]

    @property
    def manifest_sha256(self) -> str:
        return self.card["manifest_sha256"]

    @property
    def image_spec(self) -> ImageSpec:
        """The images' side and channels, as the card records them (64x64 grey before the
        card had them)."""
        return ImageSpec.from_card(self.card)

    @property
    def images(self) -> np.ndarray:
        """All images, (N, S, S) grey or (N, S, S, 3) RGB uint8, memory-mapped read-only.
        Opened afresh on each use: the pages a kept map has read count in the process's
        resident memory (~200 MB for MedNIST after the splits are read), and opening costs one
        header read."""
        path = self.image_path
        again = (  # what rebuilds the file
            f"run 'captioning data captions --templates {self.image_set}'"
            if self.image_set
            else "prepare again"
        )
        if self.image_set and not path.is_file():
            raise DataError(
                f"{path}: no transformed images of template set '{self.image_set}'; {again}"
            )
        try:
            images = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the image cache ({err}); {again}") from None
        if images.shape[1:] != self.image_spec.cache_shape:
            raise DataError(
                f"{path}: images of shape {images.shape[1:]}, but the data card says "
                f"{self.image_spec.describe()}; {again}"
            )
        if len(images) != len(self.manifest):
            raise DataError(
                f"{path}: {len(images)} images for {len(self.manifest)} manifest rows; {again}"
            )
        return images

    @property
    def image_dir(self) -> Path:
        """Folder the manifest's paths are relative to."""
        return self.root / self.card["image_dir"]

    def split(
        self, name: str, per_class_limit: int | None = None, exclude=(), limit_by=None
    ) -> Split:
        """Rows of split ``name`` (optionally the first N per class, without the classes in
        ``exclude``), loaded into memory. ``limit_by``: a Series aligned with the manifest
        whose values the limit counts per instead of the class (a label column's)."""
        unknown = sorted(set(exclude) - set(self.classes))
        if unknown:
            raise DataError(f"{self.root}: no class named {', '.join(unknown)} to exclude")
        frame = self.manifest[self.manifest["split"] == name]
        if exclude:
            frame = frame[~frame["class"].isin(list(exclude))]
        if per_class_limit is not None:
            key = "label" if limit_by is None else limit_by.loc[frame.index].to_numpy()
            frame = frame.groupby(key, sort=False).head(per_class_limit)
        rows = frame.index.to_numpy()
        return Split(
            images=np.asarray(self.images[rows]),
            labels=frame["label"].to_numpy(np.int32),
            paths=frame["path"].tolist(),
            rows=rows,
        )
