"""The ``file`` caption source: a CSV or JSONL file of image paths and captions.

Columns (CSV header) or keys (one JSON object per JSONL line):

- ``image`` (required): the image path, relative to the image folder (``--images``). A study of
  several images: paths joined by ``|`` in a CSV, or a JSON list; the encoder reads the first.
- ``caption``: one reference caption. Rows naming the same image add references (one row per
  reference). In JSONL, ``captions`` (a list) gives several at once.
- ``split`` (optional): ``train``, ``val`` or ``test``, on every row or on none; without it
  ``data prepare`` draws a seeded split grouped by image content.
- ``label`` (optional): a class name, on every row or on none; it lets ``train classifier``,
  the scope check and calibration run on this data.
- ``id`` (optional): a study id, kept in the manifest.

Other columns are ignored, except those ``data prepare`` names (``--label-columns``,
``--group-column``): each must be on every row with a value, and the rows of one image must
agree on it. A row that breaks these rules is refused with its line number.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from captioning.data.sources.records import Record, merge_by_image, named_columns
from captioning.data.sources.registry import CaptionFormat, register
from captioning.errors import DataError

KNOWN = ("image", "caption", "captions", "split", "label", "id")


def _text(value, where: str, key: str) -> str | None:
    """A cell as text; empty cells are None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be text, got {type(value).__name__}")
    value = value.strip()
    return value or None


def _record(values: dict, where: str, multi_sep: str | None, columns=()) -> Record:
    image = values.get("image")
    if isinstance(image, list):
        images = tuple(_text(p, where, "image") or "" for p in image)
    else:
        text = _text(image, where, "image") or ""
        images = tuple(p.strip() for p in text.split(multi_sep)) if multi_sep else (text,)
    references = []
    if values.get("caption") is not None:
        references.append(_text(values["caption"], where, "caption") or "")
    captions = values.get("captions")
    if captions is not None:
        if not isinstance(captions, list):
            raise DataError(f"{where}: captions must be a list of texts")
        references += [_text(c, where, "captions") or "" for c in captions]
    return Record(
        images=images,
        references=references,
        split=_text(values.get("split"), where, "split"),
        label=_text(values.get("label"), where, "label"),
        study=_text(values.get("id"), where, "id"),
        where=where,
        columns=named_columns(values, columns, where),
    )


def read_csv(path: Path, columns: tuple[str, ...] = ()) -> list[Record]:
    """Records of a CSV caption file (see the module doc); ``columns``: the other columns
    to read (``Record.columns``)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if "image" not in header or "caption" not in header:
                raise DataError(
                    f"{path}: a CSV caption file needs the columns 'image' and 'caption' "
                    f"(found: {', '.join(header) or 'none'})"
                )
            absent = [name for name in columns if name not in header]
            if absent:
                raise DataError(
                    f"{path}:1: no column {absent[0]!r} in the header (named by "
                    f"--label-columns or --group-column; found: {', '.join(header)})"
                )
            records = [
                _record(row, f"{path}:{reader.line_num}", "|", columns)
                for row in reader
                if any((v or "").strip() for v in row.values() if isinstance(v, str))
            ]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    return merge_by_image(records)


def read_jsonl(path: Path, columns: tuple[str, ...] = ()) -> list[Record]:
    """Records of a JSONL caption file (see the module doc); ``columns``: the other keys to
    read (``Record.columns``)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            values = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not a JSON object ({err.msg})") from None
        if not isinstance(values, dict):
            raise DataError(f"{where}: not a JSON object")
        if "image" not in values or not ({"caption", "captions"} & set(values)):
            raise DataError(f"{where}: needs 'image' and 'caption' (or 'captions')")
        records.append(_record(values, where, None, columns))
    return merge_by_image(records)


register(
    CaptionFormat(
        "csv", "file", read_csv, suffixes=(".csv",), description="image,caption[,split,label,id]"
    )
)
register(
    CaptionFormat(
        "jsonl",
        "file",
        read_jsonl,
        suffixes=(".jsonl",),
        description='one {"image", "caption" or "captions", ...} object a line',
    )
)
