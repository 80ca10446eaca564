"""The ``r2gen`` caption source: the ``annotation.json`` that R2Gen, R2GenCMN and their
successors use for IU X-Ray and MIMIC-CXR::

    {"train": [{"id": ..., "report": "...", "image_path": ["CXR1_1_IM-0001/0.png", ...],
                "split": "train"}, ...],
     "val": [...], "test": [...]}

One record per entry (a study): its report is the one reference, its split the list it is in,
its images the ``image_path`` list, relative to the image folder (R2Gen's ``image_dir``). IU
X-Ray studies have two images (frontal, lateral): the encoder reads the first, as R2Gen's
single-image baselines do; the manifest keeps all of them (see docs/datasets.md). The entries
have no class label. Extra keys (``study_id``, ``subject_id`` in MIMIC-CXR, or a dataset's own
such as ``view``) are ignored, except those ``data prepare`` names (``--label-columns``,
``--group-column``): each must be on every entry, with a value.
"""

from __future__ import annotations

import json
from pathlib import Path

from captioning.data.sources.records import Record, named_columns
from captioning.data.sources.registry import CaptionFormat, Sample, register
from captioning.data.split import SPLITS
from captioning.errors import DataError


def looks_like_annotation(sample: Sample) -> bool:
    """An object with a train, val or test list (the entries are checked when read)."""
    payload = sample.json
    return isinstance(payload, dict) and any(
        isinstance(payload.get(split), list) for split in SPLITS
    )


def read_annotation(path: Path, columns: tuple[str, ...] = ()) -> list[Record]:
    """Records of an R2Gen ``annotation.json`` (see the module doc); ``columns``: the extra
    keys to read (``Record.columns``)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(payload, dict) or not set(SPLITS) & set(payload):
        raise DataError(f"{path}: an R2Gen annotation file is an object with train/val/test lists")
    records = []
    for split in SPLITS:
        entries = payload.get(split, [])
        if not isinstance(entries, list):
            raise DataError(f"{path}: '{split}' must be a list of studies")
        for i, entry in enumerate(entries):
            where = f"{path}: {split}[{i}]"
            if not isinstance(entry, dict):
                raise DataError(f"{where}: not an object")
            report, images = entry.get("report"), entry.get("image_path")
            if not isinstance(report, str):
                raise DataError(f"{where}: 'report' must be text")
            if isinstance(images, str):
                images = [images]
            if not isinstance(images, list) or not images:
                raise DataError(f"{where}: 'image_path' must be a non-empty list of paths")
            if not all(isinstance(p, str) for p in images):
                raise DataError(f"{where}: 'image_path' must list text paths")
            study = entry.get("id")
            records.append(
                Record(
                    images=tuple(p.strip() for p in images),
                    references=[report],
                    split=split,
                    study=None if study is None else str(study),
                    where=where,
                    columns=named_columns(entry, columns, where),
                )
            )
    return records


register(
    CaptionFormat(
        "r2gen",
        "r2gen",
        read_annotation,
        suffixes=(".json",),
        sniff=looks_like_annotation,
        description='{"train"/"val"/"test": [{"id", "image_path", "report"}]}',
        text_defaults={"min_count": 3, "max_length": 60},  # R2Gen's IU X-Ray settings
    )
)
