"""The caption file's named columns at prepare time: ``--label-columns`` (one classifier head
and one content score per column) and ``--group-column`` (the seeded split keeps a group
together), checked, and what the data card says of them."""

from __future__ import annotations

import pandas as pd

from captioning.data.card import split_counts
from captioning.data.split import SPLITS
from captioning.errors import DataError


def column_names(text: str | None) -> tuple[str, ...]:
    """``--label-columns modality,plane`` -> ("modality", "plane") (none for None)."""
    return () if text is None else tuple(name.strip() for name in text.split(","))


def named_columns(options) -> tuple[str, ...]:
    """The columns to read besides the known ones: the label columns, then the group column;
    refused in one line when a name is empty or a label column is named twice."""
    names = tuple(options.label_columns)
    if not all(name.strip() for name in names):
        raise DataError(f"--label-columns {','.join(names)!r}: an empty column name")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"--label-columns: {', '.join(twice)} given twice")
    group = options.group_column
    if group is not None and not group.strip():
        raise DataError("--group-column: an empty column name")
    return tuple(dict.fromkeys([*names, *([group] if group else [])]))


def column_settings(manifest: pd.DataFrame, options) -> dict:
    """The data card's ``caption_source`` entries of ``--label-columns`` (names, and per column
    value -> split -> images) and ``--group-column``; none when neither was given, so such a
    card is what it was before the options."""
    out: dict = {}
    if options.label_columns:
        out["label_columns"] = list(options.label_columns)
        out["label_counts"] = {
            name: split_counts(manifest, f"label_{name}") for name in options.label_columns
        }
    if options.group_column:
        out["group_column"] = options.group_column
    return out


def label_markdown(source: dict) -> list[str]:
    """The data card's lines for the label columns: one table of value counts per column."""
    lines = []
    for name, counts in source.get("label_counts", {}).items():
        lines += ["", f"Label column `{name}` (manifest `label_{name}`):", ""]
        lines += ["| value | " + " | ".join(SPLITS) + " | total |", "|---|" + "---:|" * 4]
        for value, row in counts.items():
            cells = " | ".join(f"{row[s]:,}" for s in SPLITS)
            lines.append(f"| {value} | {cells} | {sum(row.values()):,} |")
    return lines
