"""Caption sources: where each image's reference captions come from, and what else the source
knows about the image. The one place to start when adding a dataset (docs/datasets.md).

A source gives, per image of a prepared dataset, its **references** (one or more captions)
and, optionally, a **class label** (it enables ``train classifier``, the scope check and
calibration) and **structured truth** (the fields parse-back metrics compare with).

The ``templates`` source renders MedNIST's captions from a template set (``data captions``):
labels and truth. Every other source is a caption file in a registered format: one reader
module each in this package (``file.py``: csv and jsonl; ``r2gen.py``; ``coco.py``; ...),
which registers itself (``registry.py``); ``FORMATS`` lists them, ``detect_format`` picks one
for a file. They have labels only when the file gives them, and no structured truth. A caption
file may also carry several **label columns**, named when it is prepared (``--label-columns
modality,plane``): the manifest keeps each as ``label_<name>`` (text), the data card lists
them (``caption_source.label_columns``), and ``train classifier`` trains one head per column.

``captioning data prepare --captions FILE --images DIR`` reads a caption file into the folder
layout MedNIST gets (``captioning.data.sources.prepare``), plus ``captions/references.csv``;
the data card's ``caption_source`` block says which source it is, and ``caption_source(data)``
gives the training and evaluation code what it needs.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pkgutil
from dataclasses import dataclass

import pandas as pd

from captioning.captions.text import TextRules
from captioning.data.sources.registry import FORMATS, CaptionFormat, detect_format, register
from captioning.errors import DataError

__all__ = [
    "FORMATS",
    "REFERENCES_FILE",
    "CaptionFormat",
    "CaptionSource",
    "caption_source",
    "detect_format",
    "register",
]

REFERENCES_FILE = "references"  # captions/references.csv and references_card.{json,md}
# modules of this package that are not reader modules (every other one registers a format)
_NOT_READERS = {"label_columns", "prepare", "records", "registry"}


def _import_readers() -> None:
    """Import every reader module of this package, so each registers its format."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_READERS and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_readers()


@dataclass(frozen=True)
class CaptionSource:
    """The caption source of a prepared dataset, as training and evaluation see it."""

    kind: str
    has_labels: bool  # class labels: classifier training, scope check, calibration
    has_truth: bool  # structured truth: parse-back metrics (class, findings, all right)
    rules: TextRules  # tokenisation (the default rules for templates)
    # the columns named by ``data prepare --label-columns``: manifest columns ``label_<name>``
    label_columns: tuple[str, ...] = ()

    def frame(self, data, templates: str | None = None) -> pd.DataFrame:
        """The caption table in manifest order: path, split, class, reference_0..k-1 (an
        image with fewer references has empty cells) and, for templates, the findings."""
        if self.kind == "templates":
            from captioning.data.caption_data import caption_frame  # TensorFlow: only here

            return caption_frame(data, templates)
        path = data.root / "captions" / f"{REFERENCES_FILE}.csv"
        try:
            frame = pd.read_csv(path, keep_default_na=False, dtype=str)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the captions ({err}); prepare again") from None
        if list(frame["path"]) != list(data.manifest["path"]):
            raise DataError(f"{path}: rows differ from the manifest's; prepare again")
        return frame

    def label_values(self, data) -> pd.DataFrame:
        """The label columns' values in manifest order, as text (a value such as ``007`` stays
        itself): one column per name of ``label_columns``."""
        path = data.root / "manifest.csv"
        columns = [f"label_{name}" for name in self.label_columns]
        try:
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != data.manifest_sha256:
                raise ValueError("checksum differs from the data card's")
            frame = pd.read_csv(io.BytesIO(raw), usecols=columns, keep_default_na=False, dtype=str)
        except (OSError, ValueError) as err:
            problem = f"{path}: cannot read the label columns ({err}); prepare again"
            raise DataError(problem) from None
        return frame[columns].set_axis(list(self.label_columns), axis=1)


def caption_source(data) -> CaptionSource:
    """The source a prepared dataset was built from (its data card says; MedNIST's card,
    written before sources had names, means ``templates``)."""
    info = data.card.get("caption_source") or {"kind": "templates"}
    kind = info.get("kind")
    if kind != "templates" and kind not in {f.kind for f in FORMATS.values()}:
        raise DataError(f"{data.root}: unknown caption source {kind!r} in the data card")
    if kind == "templates":
        return CaptionSource("templates", has_labels=True, has_truth=True, rules=TextRules())
    return CaptionSource(
        kind,
        has_labels=bool(info.get("has_labels")),
        has_truth=False,
        rules=TextRules.from_dict(info.get("text")),
        label_columns=tuple(info.get("label_columns") or ()),
    )
