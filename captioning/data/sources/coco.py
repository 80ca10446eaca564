"""The ``coco`` caption format: a COCO captions json (``captions_train2017.json`` and the many
datasets laid out like it)::

    {"images": [{"id": 1, "file_name": "scan_001.png", "split": "train"}, ...],
     "annotations": [{"id": 10, "image_id": 1, "caption": "..."}, ...]}

One record per image: its references are the captions of every annotation naming its ``id``,
in file order (COCO gives about five per image); its path is ``file_name``, relative to the
image folder. ``split`` on an image entry is optional (on every entry or on none; without it
``data prepare`` draws a seeded split); COCO itself ships one file per split, so a file without
splits is split by ``data prepare``. There are no class labels. Other keys (``info``,
``licenses``, ``width``, ``coco_url``) are ignored, except those ``data prepare`` names
(``--label-columns``, ``--group-column``): each is read from the image entry, else from its
annotations (then every one of them must give it), and where both give it they must agree.
"""

from __future__ import annotations

from pathlib import Path

from captioning.data.sources.records import Record, column_value, merge_by_image
from captioning.data.sources.registry import CaptionFormat, Sample, register
from captioning.errors import DataError


def looks_like_coco(sample: Sample) -> bool:
    """An object with an ``images`` and an ``annotations`` list."""
    payload = sample.json
    return isinstance(payload, dict) and all(
        isinstance(payload.get(key), list) for key in ("images", "annotations")
    )


def _load(path: Path) -> dict:
    """The file's JSON object, refused in one line when it is not a COCO captions file."""
    sample = Sample(path)
    if not looks_like_coco(sample):
        raise DataError(
            f"{path}: a COCO captions file is an object with 'images' and 'annotations' lists"
        )
    return sample.json


def _text(value, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: '{key}' must be non-empty text")
    return value.strip()


def _id(value, where: str, key: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{where}: '{key}' must be a number or text")
    return value


def _captions(path: Path, annotations: list) -> tuple[dict, dict]:
    """image id -> its captions, in file order; and image id -> its annotations as (where,
    entry), for the named columns."""
    captions: dict = {}
    entries: dict = {}
    for i, entry in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(entry, dict) or "image_id" not in entry:
            raise DataError(f"{where}: not an object with 'image_id' and 'caption'")
        image_id = _id(entry["image_id"], where, "image_id")
        captions.setdefault(image_id, []).append(_text(entry.get("caption"), where, "caption"))
        entries.setdefault(image_id, []).append((where, entry))
    return captions, entries


def _columns(image: dict, where: str, annotations: list, names) -> dict[str, str]:
    """The named columns of one image: on the image entry, else on every one of its
    annotations; the annotations that give one must agree with each other and the image."""
    values = {}
    for name in names:
        given = [(w, column_value(e[name], w, name)) for w, e in annotations if name in e]
        if name in image:
            value = column_value(image[name], where, name)
            origin = where
        elif given:
            lacking = next((w for w, e in annotations if name not in e), None)
            if lacking is not None:
                raise DataError(
                    f"{lacking}: no column {name!r} (named by --label-columns or "
                    "--group-column: on the image entry, or on every one of its annotations)"
                )
            origin, value = given[0]
        else:
            raise DataError(
                f"{where}: no column {name!r} on the image or its annotations (named by "
                "--label-columns or --group-column)"
            )
        for other, text in given:
            if text != value:
                raise DataError(
                    f"{other}: column {name!r} value {text!r} differs from {value!r} given "
                    f"for the same image at {origin}"
                )
        values[name] = value
    return values


def read_coco(path: Path, columns: tuple[str, ...] = ()) -> list[Record]:
    """Records of a COCO captions file (see the module doc); ``columns``: the extra keys to
    read (``Record.columns``)."""
    payload = _load(path)
    captions, annotations = _captions(path, payload["annotations"])
    records, seen = [], set()
    for i, entry in enumerate(payload["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict) or "id" not in entry:
            raise DataError(f"{where}: not an object with 'id' and 'file_name'")
        image_id = _id(entry["id"], where, "id")
        if image_id in seen:
            raise DataError(f"{where}: image id {image_id!r} given twice")
        seen.add(image_id)
        if image_id not in captions:
            raise DataError(f"{where}: no annotation gives image {image_id!r} a caption")
        split = entry.get("split")
        records.append(
            Record(
                images=(_text(entry.get("file_name"), where, "file_name"),),
                references=captions.pop(image_id),
                split=None if split is None else _text(split, where, "split"),
                study=str(image_id),
                where=where,
                columns=_columns(entry, where, annotations[image_id], columns),
            )
        )
    if captions:
        orphan = next(iter(captions))
        raise DataError(f"{path}: annotations name image id {orphan!r}, which images lacks")
    return merge_by_image(records)


register(
    CaptionFormat(
        "coco",
        "coco",
        read_coco,
        suffixes=(".json",),
        sniff=looks_like_coco,
        description='{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}',
    )
)
