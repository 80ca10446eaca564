"""The ``captioning data`` commands: ``prepare`` (MedNIST, or a caption file with
``--captions``) and ``captions`` (MedNIST's template captions). Their defaults and choices are
the library's: ``PrepareOptions``, the caption sources' ``FORMATS``, the text rules'
``PUNCTUATION`` and the default template set."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from captioning.captions.templates import DEFAULT_TEMPLATE_SET
from captioning.captions.text import PUNCTUATION, TextRules
from captioning.data.image_spec import CHANNEL_NAMES, DEFAULT_IMAGE, FITS, ImageSpec
from captioning.data.prepare import PrepareOptions
from captioning.data.sources import FORMATS
from captioning.errors import DataError

# the text rules of an R2Gen annotation file when not given: R2Gen's own for IU X-Ray
R2GEN_TEXT_DEFAULTS = FORMATS["r2gen"].text_defaults


def _default(cls, name: str):
    """The default of dataclass ``cls``'s field ``name`` (the CLI shows the library's)."""
    return next(f.default for f in fields(cls) if f.name == name)


def add_parser(commands) -> None:
    """The ``data`` subcommands, on the top-level subparsers ``commands``."""
    data = commands.add_parser("data", help="prepare datasets").add_subparsers(
        dest="data_command", required=True
    )
    prep = data.add_parser("prepare", help="download/extract MedNIST, decode, split, cache")
    prep.add_argument(
        "--source",
        help="URL, .tar.gz archive or folder <root>/<Class>/<image> "
        "(default: $CAPTIONING_MEDNIST_SOURCE, else the official MedNIST archive)",
    )
    prep.add_argument(
        "--root",
        help="output folder (default: $CAPTIONING_HOME/mednist; with --captions, "
        "$CAPTIONING_HOME/<the caption file's name>)",
    )
    prep.add_argument(
        "--md5",
        help="expected md5 of the archive (default: the official one for "
        "the official URL, or <archive>.md5 beside a local archive)",
    )
    prep.add_argument("--strict", action="store_true", help="an unreadable image is an error")
    prep.add_argument("--per-class-limit", type=int, help="keep the first N images per class")
    seed, fractions = _default(PrepareOptions, "seed"), _default(PrepareOptions, "fractions")
    prep.add_argument("--seed", type=int, default=seed, help=f"split seed (default {seed})")
    prep.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=fractions,
        metavar=("TRAIN", "VAL", "TEST"),
        help=f"split fractions (default {' '.join(map(str, fractions))})",
    )
    prep.add_argument("--force", action="store_true", help="rebuild an existing dataset")
    add_image_options(prep)
    add_caption_file_options(prep)
    prep.set_defaults(func=run)
    caps = data.add_parser("captions", help="templated captions with findings for every image")
    caps.add_argument("--root", help="prepared dataset folder (default: $CAPTIONING_HOME/mednist)")
    caps.add_argument(
        "--templates",
        default=DEFAULT_TEMPLATE_SET,
        help="template set: a name (built in, or in a folder of $CAPTIONING_TEMPLATES), a .toml "
        f"file, or a folder holding one set (default: {DEFAULT_TEMPLATE_SET})",
    )
    caps.set_defaults(func=run)


def add_image_options(prep) -> None:
    """``--image-size``, ``--channels`` and ``--fit``: the data's ``ImageSpec``."""
    prep.add_argument(
        "--image-size",
        type=int,
        default=DEFAULT_IMAGE.size,
        metavar="S",
        help=f"cache images at SxS pixels (default {DEFAULT_IMAGE.size}, MedNIST's own)",
    )
    prep.add_argument(
        "--channels",
        type=int,
        choices=sorted(CHANNEL_NAMES),
        default=DEFAULT_IMAGE.channels,
        help="1: grey (default), 3: RGB; models trained on the data read the same",
    )
    prep.add_argument(
        "--fit",
        choices=FITS,
        default=DEFAULT_IMAGE.fit,
        help="a file that is not square: stretch to SxS (default, as MedNIST was made) or pad "
        "with black to a square first (keeps its proportions)",
    )


def run(args: argparse.Namespace) -> int:
    if args.data_command == "captions":
        return build_template_captions(args)
    if args.captions or args.images:
        return prepare_from_caption_file(args)
    return prepare_mednist(args)


def prepare_mednist(args: argparse.Namespace) -> int:
    """``data prepare``: MedNIST (or a folder in its layout) decoded, split and cached."""
    from captioning.data.prepare import default_source, prepare
    from captioning.utils.paths import captioning_home, default_data_root

    if args.label_columns is not None or args.group_column is not None:
        raise DataError("--label-columns and --group-column apply to a caption file (--captions)")
    options = PrepareOptions(
        source=args.source or default_source(),
        md5=args.md5,
        strict=args.strict,
        per_class_limit=args.per_class_limit,
        seed=args.seed,
        fractions=tuple(args.fractions),
        force=args.force,
        image=ImageSpec(args.image_size, args.channels, args.fit),
    )
    root = Path(args.root) if args.root else default_data_root()
    card = prepare(root, options, downloads=captioning_home() / "downloads")
    sizes = ", ".join(f"{k} {v:,}" for k, v in card["split_sizes"].items())
    print(
        f"prepared {card['n_images']:,} images in {len(card['classes'])} classes ({sizes}); "
        f"{len(card['skipped'])} skipped; {card['duplicates']['groups']} duplicate groups; "
        f"{ImageSpec.from_card(card).describe()}"
    )
    print(f"dataset: {root.resolve()}  (see data_card.md)")
    return 0


def prepare_from_caption_file(args: argparse.Namespace) -> int:
    """``data prepare --captions FILE --images DIR``: a caption file (see docs/datasets.md)."""
    from captioning.data.sources import detect_format
    from captioning.data.sources.label_columns import column_names
    from captioning.data.sources.prepare import (
        CaptionFileOptions,
        default_root,
        prepare_caption_file,
        text_rules,
    )

    if not (args.captions and args.images):
        raise DataError("--captions FILE and --images DIR go together")
    if args.source or args.md5 or args.per_class_limit:
        raise DataError("--source, --md5 and --per-class-limit do not apply to --captions")
    fmt = args.format or detect_format(Path(args.captions))
    rules = text_rules(  # what was given, else the format's defaults, else TextRules's
        fmt,
        lowercase=not args.keep_case,
        punctuation=args.punctuation,
        min_count=args.min_count,
        max_length=args.max_length,
    )
    options = CaptionFileOptions(
        source=args.captions,
        strict=args.strict,
        seed=args.seed,
        fractions=tuple(args.fractions),
        force=args.force,
        image=ImageSpec(args.image_size, args.channels, args.fit),
        images=args.images,
        format=fmt,
        rules=rules,
        label_columns=column_names(args.label_columns),
        group_column=args.group_column,
    )
    root = Path(args.root) if args.root else default_root(Path(args.captions))
    card = prepare_caption_file(root, options)
    sizes = ", ".join(f"{k} {v:,}" for k, v in card["split_sizes"].items())
    text = card["text"]
    print(
        f"prepared {card['n_images']:,} images with {text['n_references']:,} "
        f"{card['caption_source']['kind']} captions ({sizes}); {len(card['skipped'])} skipped; "
        f"vocabulary {text['vocabulary_size']:,} words; "
        + (f"{len(card['classes'])} classes" if card["classes"] else "no class labels")
        + _label_columns_summary(card["caption_source"])
        + f"; {ImageSpec.from_card(card).describe()}"
    )
    print(f"dataset: {root.resolve()}  (see data_card.md)")
    return 0


def _label_columns_summary(source: dict) -> str:
    """``; label columns modality (2 values), plane (5 values)`` (empty without them)."""
    counts = source.get("label_counts")
    if not counts:
        return ""
    return "; label columns " + ", ".join(
        f"{name} ({len(values)} values)" for name, values in counts.items()
    )


def build_template_captions(args: argparse.Namespace) -> int:
    """``data captions``: MedNIST's template captions with the findings of every image."""
    from captioning.data.template_captions import build_captions
    from captioning.utils.paths import default_data_root

    root = Path(args.root) if args.root else default_data_root()
    card = build_captions(root, args.templates)
    print(
        f"captioned {card['n_images']:,} images with template set '{card['template_set']}' "
        f"(references per image: {card['n_references']}, "
        f"vocabulary {card['vocabulary_size']['all']})"
    )
    print(f"captions: {root.resolve() / 'captions'}  (see {card['template_set']}_card.md)")
    if "acquisition" in card:  # a set stating orientation/position: its images are transformed
        print(f"transformed images: {root.resolve() / card['acquisition']['images']}")
    return 0


def add_caption_file_options(prep: argparse.ArgumentParser) -> None:
    """``data prepare`` from a caption file instead of MedNIST (see docs/datasets.md)."""
    group = prep.add_argument_group("a caption file instead of MedNIST (docs/datasets.md)")
    group.add_argument(
        "--captions", metavar="FILE", help="a caption file: " + ", ".join(sorted(FORMATS))
    )
    group.add_argument("--images", metavar="DIR", help="folder the file's image paths are in")
    group.add_argument(
        "--format", choices=sorted(FORMATS), help="default: from the file's name and content"
    )
    group.add_argument(
        "--label-columns",
        metavar="NAMES",
        help="comma-separated columns (keys) of the file to keep as labels, e.g. "
        "modality,plane: manifest columns label_<name>, one classifier head each; every row "
        "must give each; the seeded split is stratified by the first",
    )
    group.add_argument(
        "--group-column",
        metavar="NAME",
        help="column (key) of the file to group the seeded split by, e.g. case: no group "
        "straddles two splits (byte-identical images stay together too)",
    )
    group.add_argument("--keep-case", action="store_true", help="do not lower-case the text")
    punctuation = _default(TextRules, "punctuation")
    group.add_argument(
        "--punctuation",
        choices=PUNCTUATION,
        default=punctuation,
        help=f"drop punctuation, or keep each mark as a token (default: {punctuation})",
    )
    group.add_argument(
        "--min-count",
        type=int,
        help=f"words seen fewer times in train become <unk> (default "
        f"{_default(TextRules, 'min_count')}; r2gen: {R2GEN_TEXT_DEFAULTS['min_count']})",
    )
    group.add_argument(
        "--max-length",
        type=int,
        help=f"cut captions at N tokens (default none; r2gen: {R2GEN_TEXT_DEFAULTS['max_length']})",
    )
