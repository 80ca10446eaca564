"""The caption card: what a caption file holds and how hard its findings are, as JSON (for
code) and Markdown (for people). The key number is, per field, the accuracy of the best
class-only predictor: if it were near 100%, the field would restate the class."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from captioning.captions.findings import FIELD_VALUES, QUALITY_VALUES
from captioning.captions.tokenize import tokenize

CAPTION_CARD_VERSION = 1


def class_only_accuracy(frame: pd.DataFrame, field: str) -> dict:
    """Accuracy of predicting ``field`` from the class alone: the majority value of each class
    on the train split, scored on train and on test (diagnostic images only)."""
    rows = frame[frame["quality"] == QUALITY_VALUES[0]]
    train = rows[rows["split"] == "train"]
    if train.empty:
        return {"train": None, "test": None, "majority": {}}
    majority = train.groupby("class")[field].agg(lambda s: s.value_counts().index[0])
    out: dict = {"majority": {str(c): str(v) for c, v in majority.items()}}
    for split in ("train", "test"):
        part = rows[rows["split"] == split]
        guess = part["class"].map(majority)
        out[split] = round(float((guess == part[field]).mean()), 4) if len(part) else None
    return out


def _balance(values: pd.Series, order) -> dict:
    counts = values.value_counts()
    total = max(int(counts.sum()), 1)
    return {v: round(int(counts.get(v, 0)) / total, 4) for v in order}


def caption_card(
    frame: pd.DataFrame, tset, cutpoints: dict, borderline: dict, classes: list[str]
) -> dict:
    """Summarise a caption table (columns path, split, class, quality, findings, references)."""
    refs = [c for c in frame.columns if c.startswith("reference_")]
    lengths, vocabulary = _lengths_and_vocabulary(frame, refs)
    quality = pd.crosstab(frame["class"], frame["quality"]).reindex(
        index=classes, columns=list(QUALITY_VALUES), fill_value=0
    )
    return {
        "caption_card_version": CAPTION_CARD_VERSION,
        "template_set": tset.name,
        "template_file": str(tset.path),
        # the captions were built from this content of the set: a reworded set rebuilds them
        "template_sha256": tset.sha256,
        # template i -> its text: the keys of an evaluation's ``template_share``
        "templates": {str(i): t for i, t in enumerate(tset.templates)},
        "n_images": len(frame),
        "n_references": len(refs),
        "vocabulary_size": vocabulary,
        "length": {
            "min": min(lengths),
            "max": max(lengths),
            "mean": round(sum(k * v for k, v in lengths.items()) / sum(lengths.values()), 2),
            "histogram": {str(k): lengths[k] for k in sorted(lengths)},
        },
        "quality": {c: {q: int(quality.loc[c, q]) for q in QUALITY_VALUES} for c in classes},
        "fields": _field_stats(frame, tset.fields, cutpoints, borderline, classes),
        "cutpoints": cutpoints,
        "examples": _examples(frame, tset.fields, refs, classes),
    }


def _lengths_and_vocabulary(frame: pd.DataFrame, refs: list[str]) -> tuple[Counter, dict]:
    """Token count -> how many references have it; the vocabulary size, all and train."""
    lengths: Counter = Counter()
    vocab_all: set[str] = set()
    vocab_train: set[str] = set()
    is_train = (frame["split"] == "train").to_numpy()
    for col in refs:
        for text, train in zip(frame[col], is_train, strict=True):
            tokens = tokenize(text)
            lengths[len(tokens)] += 1
            vocab_all.update(tokens)
            if train:
                vocab_train.update(tokens)
    return lengths, {"all": len(vocab_all), "train": len(vocab_train)}


def _field_stats(
    frame: pd.DataFrame, fields, cutpoints: dict, borderline: dict, classes: list[str]
) -> dict:
    """Per finding field: its values, their balance (all and per class, diagnostic images),
    the class-only accuracy, the borderline share and the cuts."""
    diagnostic = frame[frame["quality"] == QUALITY_VALUES[0]]
    return {
        field: {
            "values": list(FIELD_VALUES[field]),
            "balance": _balance(diagnostic[field], FIELD_VALUES[field]),
            "balance_per_class": {
                c: _balance(diagnostic.loc[diagnostic["class"] == c, field], FIELD_VALUES[field])
                for c in classes
            },
            "class_only_accuracy": class_only_accuracy(frame, field),
            # None: a drawn field (its truth is exact, no image is near a cut)
            "borderline_share": round(borderline[field], 4) if field in borderline else None,
            "cuts": cutpoints["cuts"].get(field),  # None: a drawn field (no cut point)
        }
        for field in fields
    }


def _examples(frame: pd.DataFrame, fields, refs: list[str], classes: list[str]) -> dict:
    """Two train images of each class: path, quality and findings, references."""
    examples = {}
    for c in classes:
        rows = frame[(frame["class"] == c) & (frame["split"] == "train")].head(2)
        examples[c] = [
            {
                "path": r["path"],
                "fields": {k: r[k] for k in ("quality", *fields)},
                "references": [r[col] for col in refs],
            }
            for _, r in rows.iterrows()
        ]
    return examples


def card_markdown(card: dict) -> str:
    """A short human-readable version of the card."""
    length = card["length"]
    lines = [
        f"# Caption card: template set `{card['template_set']}`",
        "",
        f"{card['n_images']:,} images; references per image: {card['n_references']}; "
        f"vocabulary {card['vocabulary_size']['all']} words "
        f"({card['vocabulary_size']['train']} in train); "
        f"caption length {length['min']}-{length['max']} tokens (mean {length['mean']}).",
        "",
        "Non-diagnostic images: "
        + ", ".join(f"{c} {q[QUALITY_VALUES[1]]}" for c, q in card["quality"].items()),
    ]
    if card["fields"]:
        lines += [
            "",
            "| field | balance (all classes) | class-only accuracy (train / test) | borderline |",
            "|---|---|---|---|",
        ]
        for field, info in card["fields"].items():
            balance = ", ".join(f"{v} {p:.0%}" for v, p in info["balance"].items())
            acc = info["class_only_accuracy"]
            lines.append(
                f"| {field} | {balance} | {_pct(acc['train'])} / {_pct(acc['test'])} "
                f"| {_pct(info['borderline_share'])} |"
            )
        lines += ["", "Balance per class:", ""]
        for field, info in card["fields"].items():
            per_class = "; ".join(
                f"{c}: " + "/".join(f"{p:.0%}" for p in b.values())
                for c, b in info["balance_per_class"].items()
            )
            lines.append(f"- {field} ({'/'.join(info['values'])}): {per_class}")
    if card.get("templates"):
        lines += ["", "Templates (reference i is template i; `template_share` counts them):", ""]
        lines += [f"- {i}: {text}" for i, text in card["templates"].items()]
    lines += ["", "Examples (reference 0):", ""]
    for c, rows in card["examples"].items():
        for row in rows[:1]:
            lines.append(f"- {c}: {row['references'][0]}")
    return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def write_card(card: dict, json_path: Path, md_path: Path) -> None:
    """Write the card as JSON and Markdown."""
    json_path.write_text(json.dumps(card, indent=2) + "\n")
    md_path.write_text(card_markdown(card))
