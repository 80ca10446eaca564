"""The data card: what a prepared dataset holds, written as JSON (for code) and Markdown (for
people). It is the first thing to read when a number looks wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from captioning.data.image_spec import ImageSpec
from captioning.data.split import SPLITS

CARD_VERSION = 1


def duplicate_groups(manifest: pd.DataFrame) -> list[dict]:
    """Groups of byte-identical images (same md5), largest first."""
    sizes = manifest.groupby("md5").size()
    groups = []
    for md5 in sizes[sizes > 1].sort_values(ascending=False, kind="stable").index:
        members = manifest[manifest["md5"] == md5]
        groups.append(
            {
                "md5": md5,
                "size": len(members),
                "classes": sorted(members["class"].unique().tolist()),
                "splits": sorted(members["split"].unique().tolist()),
                "paths": members["path"].tolist()[:5],
            }
        )
    return groups


def split_counts(manifest: pd.DataFrame, column: str) -> dict:
    """Images per value of ``column`` and split: ``{value: {"train": n, "val": n, "test": n}}``,
    values sorted."""
    counts = pd.crosstab(manifest[column], manifest["split"])
    counts = counts.reindex(columns=list(SPLITS), fill_value=0)
    return {
        str(value): {s: int(counts.loc[value, s]) for s in SPLITS}
        for value in sorted(counts.index, key=str)
    }


def write_data_card(
    folder: Path,
    manifest: pd.DataFrame,
    *,
    classes: list[str],
    manifest_sha256: str,
    skipped: list[dict],
    empty_classes: list[str],
    settings: dict,
    extra_markdown: list[str] = (),
) -> dict:
    """Write ``data_card.json`` and ``data_card.md`` into ``folder``; return the card.
    ``extra_markdown``: lines appended to the Markdown (a caption source's text statistics)."""
    counts = pd.crosstab(manifest["class"], manifest["split"]).reindex(
        index=classes, columns=list(SPLITS), fill_value=0
    )
    groups = duplicate_groups(manifest)
    card = {
        "card_version": CARD_VERSION,
        "classes": classes,
        "n_images": len(manifest),
        "counts": {c: {s: int(counts.loc[c, s]) for s in SPLITS} for c in classes},
        "split_sizes": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "manifest_sha256": manifest_sha256,
        "skipped": skipped,
        "empty_classes": empty_classes,
        "duplicates": {
            "groups": len(groups),
            "images_in_groups": sum(g["size"] for g in groups),
            "groups_across_splits": sum(len(g["splits"]) > 1 for g in groups),
            "groups_across_classes": sum(len(g["classes"]) > 1 for g in groups),
            "largest": groups[:50],
        },
        **settings,
    }
    (folder / "data_card.json").write_text(json.dumps(card, indent=2))
    extra = "".join(f"{line}\n" for line in ["", *extra_markdown]) if extra_markdown else ""
    (folder / "data_card.md").write_text(render_markdown(card) + extra)
    return card


def render_markdown(card: dict) -> str:
    """A short human-readable summary of the card."""
    lines = [
        f"# Prepared {card.get('title', 'MedNIST')}: data card",
        "",
        f"Source: `{card['source']}`"
        + (f" (md5 `{card['archive_md5']}`)" if card.get("archive_md5") else ""),
        f"Split: seed {card['seed']}, fractions {card['fractions']}, {_split_rule(card)}."
        if card.get("split_from", "seeded") == "seeded"
        else f"Split: as given in {card['split_from']}.",
        f"Manifest sha256: `{card['manifest_sha256']}`",
        f"Images: {ImageSpec.from_card(card).describe()} (`images.npy`: uint8 "
        f"{('N', *ImageSpec.from_card(card).cache_shape)}).".replace("'", ""),
        "",
        "| class | " + " | ".join(SPLITS) + " | total |",
        "|---|" + "---:|" * (len(SPLITS) + 1),
    ]
    for name, row in card["counts"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{row[s]:,}" for s in SPLITS)
            + f" | {sum(row.values()):,} |"
        )
    sizes = card["split_sizes"]
    lines.append(
        "| **total** | "
        + " | ".join(f"{sizes[s]:,}" for s in SPLITS)
        + f" | {card['n_images']:,} |"
    )
    dup = card["duplicates"]
    lines += [
        "",
        f"Duplicates: {dup['groups']} groups of byte-identical images ({dup['images_in_groups']} "
        f"images); {dup['groups_across_splits']} groups cross splits, "
        f"{dup['groups_across_classes']} cross classes.",
        f"Skipped (unreadable): {len(card['skipped'])}"
        + "".join(f"\n- `{s['path']}`: {s['reason']}" for s in card["skipped"][:20]),
    ]
    if card["empty_classes"]:
        lines.append(f"Empty class folders (not classes): {', '.join(card['empty_classes'])}")
    return "\n".join(lines) + "\n"


def _split_rule(card: dict) -> str:
    """How a seeded split was drawn: stratified by class (or a caption file's first label
    column), grouped by content md5 (and its group column)."""
    source = card.get("caption_source") or {}
    columns = source.get("label_columns")
    strata = f"label column `{columns[0]}`" if columns else "class"
    group = source.get("group_column")
    groups = f"`{group}` and content md5" if group else "content md5"
    return f"stratified by {strata}, grouped by {groups}"
