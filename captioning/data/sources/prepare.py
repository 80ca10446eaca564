"""``captioning data prepare --captions FILE --images DIR``: a caption file (in any registered
format: ``registry.py``) and its image folder into a prepared dataset, in the layout MedNIST
gets (``captioning.data.prepare``: built in a hidden folder, moved into place when complete)::

    manifest.csv         path (the image the encoder reads), class, label, md5, width, height,
                         split, study, images (all the study's images, '|'-joined), and with
                         ``--label-columns a,b`` one text column ``label_a``, ``label_b`` each
    images.npy           decoded with the same rules as MedNIST (any size, any channels in;
                         out at ``--image-size`` and ``--channels``, default 64 grey)
    data_card.json/.md   counts, skipped images, duplicates, the caption source and its text
                         statistics (lengths, vocabulary, OOV rate on val and test); with label
                         columns, ``caption_source.label_columns`` (their names) and
                         ``caption_source.label_counts`` (value -> split -> images, per column)
    captions/references.csv           path, split, class, study, reference_0..k-1
    captions/references_card.json/.md the text statistics and a few examples

Without a ``split`` in the file the split is seeded: grouped by content md5 (and by the
``--group-column``, when given: ``split.linked_groups``), stratified by the first label column
when there are label columns, else by the ``label``.

Safety as for MedNIST: an image path that is absolute or leaves the image folder refuses the
whole file with one line; an image that is missing or unreadable is skipped and listed in the
card (``--strict``: refused instead).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.text import TextRules
from captioning.captions.text_card import text_stats, text_stats_markdown
from captioning.data.cache import copy_rows
from captioning.data.card import write_data_card
from captioning.data.folder import decode_files, printable_path
from captioning.data.prepare import PrepareOptions, prepare
from captioning.data.sources import REFERENCES_FILE
from captioning.data.sources.label_columns import (
    column_settings,
    label_markdown,
    named_columns,
)
from captioning.data.sources.records import Record, check_records, inside
from captioning.data.sources.registry import CaptionFormat, detect_format, get_format
from captioning.data.split import grouped_stratified_split, linked_groups
from captioning.errors import DataError
from captioning.utils.paths import captioning_home, default_data_root

log = logging.getLogger(__name__)


@dataclass
class CaptionFileOptions(PrepareOptions):
    """``PrepareOptions`` plus the caption file, its image folder, format and text rules, and
    the file's columns to keep as labels (``label_columns``: ``label_<name>`` in the manifest)
    and to group the seeded split by (``group_column``)."""

    images: str = ""
    format: str | None = None
    rules: TextRules = field(default_factory=TextRules)
    label_columns: tuple[str, ...] = ()
    group_column: str | None = None


def default_root(captions: Path) -> Path:
    """``$CAPTIONING_HOME/<name>``: the caption file's name without suffix, or its folder's name
    for an ``annotation.json`` (R2Gen keeps one per dataset folder); never MedNIST's folder."""
    captions = captions.expanduser().resolve()
    name = captions.parent.name if captions.name == "annotation.json" else captions.stem
    root = captioning_home() / (name or "captions")
    return root.with_name(root.name + "-captions") if root == default_data_root() else root


def prepare_caption_file(root: Path, options: CaptionFileOptions) -> dict:
    """Prepare ``root`` from the caption file ``options.source``; return the data card."""
    return prepare(root, options, downloads=captioning_home() / "downloads", builder=_build)


def text_rules(
    fmt: str,
    *,
    lowercase: bool = True,
    punctuation: str = "drop",
    min_count: int | None = None,
    max_length: int | None = None,
) -> TextRules:
    """The tokenisation rules for a caption file in format ``fmt``: what the user gave, else
    the format's own defaults (``CaptionFormat.text_defaults``: R2Gen's ``min_count`` 3 and
    ``max_length`` 60), else the one rule's (``min_count`` 1, no length limit)."""
    defaults = get_format(fmt).text_defaults
    return TextRules(
        lowercase=lowercase,
        punctuation=punctuation,
        min_count=min_count or defaults.get("min_count", 1),
        max_length=max_length or defaults.get("max_length"),
    )


def _build(building: Path, options: CaptionFileOptions, _downloads: Path) -> dict:
    """Build the dataset of a caption file in ``building``; return its data card."""
    captions, image_dir, fmt = _inputs(options)
    records = _read_records(captions, fmt, image_dir, named_columns(options))
    files = [inside(image_dir, r.images[0], r.where) for r in records]
    decoded_cache = building / "decoded.npy"  # each distinct file once, in decoding order
    decoded, skipped = _decode(files, image_dir, decoded_cache, options)
    keep = [
        (record, decoded[path])
        for record, f in zip(records, files, strict=True)
        if (path := f.relative_to(image_dir).as_posix()) in decoded
    ]
    if not keep:
        raise DataError(f"{image_dir}: none of the {len(records)} images could be read")
    manifest, references = _manifest(keep, options)
    rows = [row_index for _, (row_index, _) in keep]  # a file of several records: repeated
    copy_rows(decoded_cache, building / "images.npy", rows, options.image)
    decoded_cache.unlink()
    manifest.to_csv(building / "manifest.csv", index=False)
    checksum = hashlib.sha256((building / "manifest.csv").read_bytes()).hexdigest()
    stats = text_stats(references, manifest["split"].tolist(), options.rules)
    classes = sorted(c for c in manifest["class"].unique() if c)
    source = {
        "kind": fmt.kind,
        "format": fmt.name,
        "captions_file": str(captions),
        "has_labels": bool(classes),
        "has_truth": False,
        "text": options.rules.to_dict(),
        **column_settings(manifest, options),
    }
    _write_references(building, manifest, references, stats, source)
    settings = {
        "title": f"{captions.name} ({fmt.kind} captions)",
        **_card_settings(captions, image_dir, options, seeded=records[0].split is None),
        "caption_source": source,
        "text": stats,
    }
    return write_data_card(
        building,
        manifest,
        classes=classes,
        manifest_sha256=checksum,
        skipped=skipped,
        empty_classes=[],
        settings=settings,
        extra_markdown=[*text_stats_markdown(stats), *label_markdown(source)],
    )


def _card_settings(captions: Path, image_dir: Path, options, seeded: bool) -> dict:
    """The data card's settings block for a caption file (as for MedNIST, plus its source)."""
    return {
        "image_dir": str(image_dir),
        "image_dir_is_external": True,
        "seed": options.seed,
        "fractions": list(options.fractions),
        "split_from": "seeded" if seeded else "the caption file",
        "per_class_limit": None,
        "strict": options.strict,
        **options.image.card_fields(),
        "source": str(captions),
    }


def _inputs(options: CaptionFileOptions) -> tuple[Path, Path, CaptionFormat]:
    """The caption file, the image folder and the format, each checked before anything is read."""
    captions = Path(options.source).expanduser().resolve()
    image_dir = Path(options.images).expanduser().resolve()
    if not captions.is_file():
        raise DataError(f"{captions}: no such caption file")
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: no such image folder")
    return captions, image_dir, get_format(options.format or detect_format(captions))


def _read_records(
    captions: Path, fmt: CaptionFormat, image_dir: Path, columns: tuple[str, ...] = ()
) -> list[Record]:
    """The file's records (with the named ``columns``), checked; every image path of every
    study stays inside ``image_dir`` (only the first image is read, but none may point
    outside)."""
    records = fmt.read(captions, columns) if columns else fmt.read(captions)
    check_records(records, captions)
    for record in records:
        for image in record.images:
            inside(image_dir, image, record.where)
    return records


def _decode(files: list[Path], image_dir: Path, out: Path, options: CaptionFileOptions):
    """Decode each distinct file once into the cache ``out`` (``options.image``'s size and
    channels): (relative path -> (row index, manifest row), skipped). A missing file is
    skipped and logged (``--strict``: refused), an unreadable one skipped as ``decode_files``
    says."""
    strict = options.strict
    missing = [f for f in files if not f.exists()]
    skipped = [
        {"path": printable_path(f.relative_to(image_dir)), "reason": "no such file"}
        for f in dict.fromkeys(missing)
    ]
    if missing and strict:
        raise DataError(f"{missing[0]}: no such file (--strict)")
    for entry in skipped:
        log.warning("skipped %s: %s", image_dir / entry["path"], entry["reason"])
    present = [f for f in files if f.exists()]
    distinct = list(dict.fromkeys(present))
    rows, unreadable = decode_files(distinct, image_dir, out, strict, options.image)
    decoded = {row["path"]: (i, row) for i, row in enumerate(rows)}
    return decoded, skipped + unreadable


def _manifest(keep: list[tuple[Record, tuple]], options) -> tuple[pd.DataFrame, list]:
    """The manifest rows of the kept records, split; and their references, aligned."""
    classes = sorted({r.label for r, _ in keep if r.label is not None})
    ids = {name: i for i, name in enumerate(classes)}
    manifest = pd.DataFrame(
        {
            "path": [row["path"] for _, (_, row) in keep],
            "class": [r.label or "" for r, _ in keep],
            "label": [ids.get(r.label, -1) for r, _ in keep],  # -1: the source has no labels
            "md5": [row["md5"] for _, (_, row) in keep],
            "width": [row["width"] for _, (_, row) in keep],
            "height": [row["height"] for _, (_, row) in keep],
            "split": [r.split for r, _ in keep],
            "study": [r.study or "" for r, _ in keep],
            "images": ["|".join(r.images) for r, _ in keep],
        }
    )
    for name in options.label_columns:
        manifest[f"label_{name}"] = [r.columns[name] for r, _ in keep]
    if keep[0][0].split is None:  # seeded, grouped by content: no image in two splits
        manifest["split"] = grouped_stratified_split(*_split_by(manifest, keep, options))
    elif options.group_column:
        log.info("the file gives the split: --group-column %s is not used", options.group_column)
    return manifest, [r.references for r, _ in keep]


def _split_by(manifest: pd.DataFrame, keep, options) -> tuple:
    """``grouped_stratified_split``'s arguments: stratified by the first label column (else
    the label), grouped by content md5 linked with the ``group_column`` (when given)."""
    strata = manifest[f"label_{options.label_columns[0]}" if options.label_columns else "label"]
    groups = manifest["md5"].to_numpy()
    if options.group_column:
        # an image without a group value links only through its content
        cases = np.array(
            [
                r.columns[options.group_column] or f"md5:{md5}"
                for (r, _), md5 in zip(keep, groups, strict=True)
            ],
            dtype=object,
        )
        groups = linked_groups(groups, cases)
    return strata.to_numpy(), groups, options.fractions, options.seed


def _write_references(building: Path, manifest, references, stats: dict, source: dict) -> None:
    """``captions/references.csv`` and the caption card beside it."""
    width = max(len(r) for r in references)
    frame = manifest[["path", "split", "class", "study"]].copy()
    for i in range(width):
        frame[f"reference_{i}"] = [r[i] if i < len(r) else "" for r in references]
    out = building / "captions"
    out.mkdir()
    frame.to_csv(out / f"{REFERENCES_FILE}.csv", index=False)
    examples = [
        {"path": p, "split": s, "references": r[:3]}
        for p, s, r in zip(frame["path"], frame["split"], references, strict=True)
        if s == "train"
    ][:3]
    card = {"caption_source": source, "text": stats, "examples": examples}
    (out / f"{REFERENCES_FILE}_card.json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [f"# Caption card: {Path(source['captions_file']).name} ({source['kind']})", ""]
    lines += [*text_stats_markdown(stats), "", "Examples (train):", ""]
    lines += [f"- `{e['path']}`: {e['references'][0]}" for e in examples]
    (out / f"{REFERENCES_FILE}_card.md").write_text("\n".join(lines) + "\n")
