"""Caption sources: where each image's reference captions come from, and what else the source
knows about the image. The one place to start when adding a dataset (docs/datasets.md).

A source gives, per image of a prepared dataset, its **references** (one or more captions)
and, optionally, a **class label** (it enables ``train classifier``, the scope check and
calibration) and **structured truth** (the fields parse-back metrics compare with):

==============  ==========================================  ======  ===============
kind            what it reads                               labels  structured truth
==============  ==========================================  ======  ===============
``templates``   MedNIST class folders; captions rendered    yes     yes (class and
                from a template set and pixel findings                findings)
``file``        a CSV or JSONL of image paths and captions  when    no
                (``captioning.data.sources.file``)          given
``r2gen``       R2Gen's ``annotation.json`` (IU X-Ray,      no      no
                MIMIC-CXR; ``captioning.data.sources.r2gen``)
==============  ==========================================  ======  ===============

``captioning data prepare --captions FILE --images DIR`` reads a ``file`` or ``r2gen`` source
into the same folder layout MedNIST gets (``captioning.data.sources.prepare``), plus
``captions/references.csv``; the data card's ``caption_source`` block says which source it
is, and ``caption_source(data)`` gives the training and evaluation code what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from captioning.captions.text import TextRules
from captioning.data.sources.file import read_csv, read_jsonl
from captioning.data.sources.r2gen import read_annotation
from captioning.errors import DataError

# file format -> (source kind, reader)
FORMATS = {
    "csv": ("file", read_csv),
    "jsonl": ("file", read_jsonl),
    "r2gen": ("r2gen", read_annotation),
}
KINDS = ("templates", "file", "r2gen")
REFERENCES_FILE = "references"  # captions/references.csv and references_card.{json,md}


def detect_format(path: Path) -> str:
    """The format of a caption file from its name: ``.csv``, ``.jsonl``, or ``.json`` (an
    R2Gen annotation file)."""
    suffix = path.suffix.lower()
    found = {".csv": "csv", ".jsonl": "jsonl", ".json": "r2gen"}.get(suffix)
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the name (.csv, .jsonl or an R2Gen "
            "annotation .json); name it with --format csv|jsonl|r2gen"
        )
    return found


@dataclass(frozen=True)
class CaptionSource:
    """The caption source of a prepared dataset, as training and evaluation see it."""

    kind: str
    has_labels: bool  # class labels: classifier training, scope check, calibration
    has_truth: bool  # structured truth: parse-back metrics (class, findings, all right)
    rules: TextRules  # tokenisation (the default rules for templates)

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


def caption_source(data) -> CaptionSource:
    """The source a prepared dataset was built from (its data card says; MedNIST's card,
    written before sources had names, means ``templates``)."""
    info = data.card.get("caption_source") or {"kind": "templates"}
    kind = info.get("kind")
    if kind not in KINDS:
        raise DataError(f"{data.root}: unknown caption source {kind!r} in the data card")
    if kind == "templates":
        return CaptionSource("templates", has_labels=True, has_truth=True, rules=TextRules())
    return CaptionSource(
        kind,
        has_labels=bool(info.get("has_labels")),
        has_truth=False,
        rules=TextRules.from_dict(info.get("text")),
    )
