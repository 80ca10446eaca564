"""What every caption-source reader yields: one ``Record`` per image (or study), with its
references and, when the source has them, a split, a class label and the values of the columns
``data prepare`` names (``--label-columns``, ``--group-column``). Shared checks live here: image
paths stay inside the image folder, every record has a reference, splits are known, a named
column has a value on every row."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from captioning.data.split import SPLITS
from captioning.errors import DataError


@dataclass
class Record:
    """One image (or one study of several images) and its reference captions.

    ``images``: paths relative to the image folder, POSIX-style; the encoder reads the first
    (see docs/datasets.md). ``where``: the file and line (or entry) it came from, for
    messages. ``split`` and ``label`` are None when the source does not give them.
    ``columns``: the value (text) of each column the reader was asked for (``read(path,
    columns)``), on every record; empty when none were asked for."""

    images: tuple[str, ...]
    references: list[str] = field(default_factory=list)
    split: str | None = None
    label: str | None = None
    study: str | None = None
    where: str = ""
    columns: dict[str, str] = field(default_factory=dict)


def column_value(value, where: str, name: str) -> str:
    """A named column's cell (``--label-columns``, ``--group-column``) as text: numbers and
    booleans as written in JSON; an empty cell (or JSON null) is "" (not stated: real label
    columns have gaps; that image is left out of the column's head and content score, and
    forms no group of its own); refused in one line naming ``where`` (the file and line or
    entry) and the column when it is not a single value."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: column {name!r} must be text, got {type(value).__name__}")
    return value.strip()


def named_columns(values: dict, names, where: str) -> dict[str, str]:
    """The value of each column of ``names`` in one row ``values`` (``column_value``)."""
    missing = [name for name in names if name not in values]
    if missing:
        raise DataError(
            f"{where}: no column {missing[0]!r} (a column named by --label-columns or "
            "--group-column must be on every row)"
        )
    return {name: column_value(values[name], where, name) for name in names}


def merge_by_image(records: list[Record]) -> list[Record]:
    """Records naming the same images become one whose references are all of theirs (the CSV
    convention: one row per reference). Their split, label and named columns must agree."""
    merged: dict[tuple[str, ...], Record] = {}
    for record in records:
        kept = merged.get(record.images)
        if kept is None:
            merged[record.images] = Record(
                record.images,
                list(record.references),
                record.split,
                record.label,
                record.study,
                record.where,
                dict(record.columns),
            )
            continue
        for name in ("split", "label"):
            if getattr(kept, name) != getattr(record, name):
                raise DataError(
                    f"{record.where}: {name} {getattr(record, name)!r} differs from "
                    f"{getattr(kept, name)!r} given for the same image at {kept.where}"
                )
        for name, value in record.columns.items():
            if kept.columns.get(name) != value:
                raise DataError(
                    f"{record.where}: column {name!r} value {value!r} differs from "
                    f"{kept.columns.get(name)!r} given for the same image at {kept.where}"
                )
        kept.references.extend(record.references)
    return list(merged.values())


def check_records(records: list[Record], origin: Path) -> None:
    """Refuse what no dataset can be built from: no records, a record without a reference or
    image, a split other than train/val/test, splits or labels on some records only."""
    if not records:
        raise DataError(f"{origin}: no captions found")
    for record in records:
        if not record.images or any(not p for p in record.images):
            raise DataError(f"{record.where}: no image path")
        record.references = [r for r in record.references if r.strip()]
        if not record.references:
            raise DataError(f"{record.where}: no reference caption (empty text)")
        if record.split is not None and record.split not in SPLITS:
            raise DataError(
                f"{record.where}: split {record.split!r} is not one of {', '.join(SPLITS)}"
            )
    for name in ("split", "label"):
        given = [getattr(r, name) is not None for r in records]
        if any(given) and not all(given):
            missing = records[given.index(False)]
            raise DataError(
                f"{missing.where}: no {name}, while other rows have one (give it on every row "
                "or on none)"
            )


def inside(image_dir: Path, relative: str, where: str) -> Path:
    """``image_dir / relative``, refused with one line if it is absolute or leaves
    ``image_dir`` (through ``..`` or a link)."""
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise DataError(
            f"{where}: image path {relative!r} is absolute; paths are relative to the image "
            f"folder {image_dir}"
        )
    path = Path(os.path.normpath(image_dir / posix))
    if not path.resolve().is_relative_to(image_dir.resolve()):
        raise DataError(
            f"{where}: image path {relative!r} escapes the image folder {image_dir}; refused"
        )
    return path
