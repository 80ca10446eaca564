"""What a free-text caption source holds, for its data card and caption card: reference
lengths (a histogram), the vocabulary the training split gives under the source's rules, the
out-of-vocabulary rate that leaves on val and test (the share of their tokens that would be
``<unk>``), and the texts several images hold word for word (boilerplate, placeholders)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np

from captioning.captions.text import TextRules


def text_stats(references: list[list[str]], splits: list[str], rules: TextRules) -> dict:
    """Statistics of ``references`` (per image, its reference texts; ``splits`` aligned).

    Lengths are counted before the ``max_length`` cut (``cut_share``: the share of references
    it shortens); the vocabulary and OOV rates after it, as training sees them."""
    uncut = replace(rules, max_length=None).tokenizer()
    split_text = rules.tokenizer()
    lengths: Counter = Counter()
    counts: Counter = Counter()
    for refs, split in zip(references, splits, strict=True):
        for text in refs:
            lengths[len(uncut(text))] += 1
            if split == "train":
                counts.update(split_text(text))
    vocabulary = {w for w, n in counts.items() if n >= rules.min_count}
    oov = {}
    for part in ("val", "test"):
        tokens = [
            t
            for refs, split in zip(references, splits, strict=True)
            if split == part
            for text in refs
            for t in split_text(text)
        ]
        oov[part] = (
            round(sum(t not in vocabulary for t in tokens) / len(tokens), 4) if tokens else None
        )
    flat = np.repeat(np.array(sorted(lengths), float), [lengths[k] for k in sorted(lengths)])
    cut = (
        0
        if rules.max_length is None
        else sum(v for k, v in lengths.items() if k > rules.max_length)
    )
    return {
        "rules": rules.to_dict(),
        "n_references": int(flat.size),
        "references_per_image": {
            str(k): v for k, v in sorted(Counter(len(r) for r in references).items())
        },
        "length": {
            "min": int(flat.min()),
            "median": float(np.median(flat)),
            "p95": float(np.percentile(flat, 95)),
            "max": int(flat.max()),
            "mean": round(float(flat.mean()), 2),
            "histogram": {str(k): lengths[k] for k in sorted(lengths)},
        },
        "cut_share": round(cut / flat.size, 4),
        "vocabulary_size": len(vocabulary),
        "train_words_seen": len(counts),
        "oov_rate": oov,
        "repeated": repeated_texts(references, splits, uncut),
    }


def repeated_texts(references: list[list[str]], splits: list[str], tokenize, top: int = 5) -> dict:
    """The texts more than one image holds word for word (same tokens under ``tokenize``).

    Real report files repeat themselves: normal-study boilerplate, and placeholders nobody
    replaced (MedPix 2.0 holds "Replace this - DESCRIPTION OF THE IMAGE OR FINDINGS." for 21
    images). A user should see them before training, and before reading a constant or retrieval
    baseline: ``copied_from_train`` is the share of val and test images holding a text some
    train image holds, which such baselines can copy word for word. ``top``: the most held
    texts (the first spelling seen), with their images per split."""
    holders: dict[tuple, Counter] = defaultdict(Counter)  # tokens -> split -> images
    spelling: dict[tuple, str] = {}
    keys = []  # per image, its distinct non-empty texts
    for refs, split in zip(references, splits, strict=True):
        mine = {tuple(tokenize(text)): text for text in refs}
        mine.pop((), None)
        keys.append(set(mine))
        for key, text in mine.items():
            holders[key][split] += 1
            spelling.setdefault(key, text)
    shared = {k for k, c in holders.items() if c.total() > 1}
    in_train = {k for k, c in holders.items() if c["train"]}
    copied = {}
    for part in ("val", "test"):
        held = [k for k, split in zip(keys, splits, strict=True) if split == part]
        copied[part] = round(sum(bool(k & in_train) for k in held) / len(held), 4) if held else None
    ranked = sorted(shared, key=lambda k: (-holders[k].total(), spelling[k]))[:top]
    return {
        "images_share": round(sum(bool(k & shared) for k in keys) / len(keys), 4),
        "distinct_texts": len(shared),
        "copied_from_train": copied,
        "top": [
            {"text": spelling[k], "images": holders[k].total(), "splits": dict(holders[k])}
            for k in ranked
        ],
    }


def text_stats_markdown(stats: dict) -> list[str]:
    """The statistics as a few Markdown lines."""
    rules, length, oov = stats["rules"], stats["length"], stats["oov_rate"]
    limit = rules["max_length"]
    return [
        f"Tokenisation: lower-case {'yes' if rules['lowercase'] else 'no'}, punctuation "
        f"{rules['punctuation']}, "
        + (
            f"words seen fewer than {rules['min_count']} times in train -> `<unk>`, "
            if rules["min_count"] > 1
            else "every word of train kept, "
        )
        + f"maximum length {limit if limit is not None else 'none'}.",
        f"References: {stats['n_references']:,}; per image "
        + ", ".join(f"{k}: {v:,}" for k, v in stats["references_per_image"].items())
        + ".",
        f"Length (tokens): min {length['min']}, median {length['median']:g}, "
        f"95th percentile {length['p95']:g}, max {length['max']}, mean {length['mean']}"
        + (f"; {stats['cut_share']:.1%} cut at {limit}." if limit is not None else "."),
        f"Vocabulary: {stats['vocabulary_size']:,} words from train "
        f"({stats['train_words_seen']:,} seen); OOV rate val {_pct(oov['val'])}, "
        f"test {_pct(oov['test'])}.",
        *_repeated_markdown(stats.get("repeated")),
    ]


def _repeated_markdown(repeated: dict | None) -> list[str]:
    """One line on the texts several images hold word for word (none for older cards)."""
    if not repeated:
        return []
    if not repeated["top"]:
        return ["Repeated word for word: no text is held by two images."]
    copied = repeated["copied_from_train"]
    most = "; ".join(
        f'"{_shorten(t["text"])}" ({t["images"]:,}: '
        + ", ".join(f"{s} {n:,}" for s, n in sorted(t["splits"].items()))
        + ")"
        for t in repeated["top"][:3]
    )
    return [
        f"Repeated word for word: {repeated['images_share']:.1%} of images hold one of "
        f"{repeated['distinct_texts']:,} texts another image holds; val {_pct(copied['val'])} and "
        f"test {_pct(copied['test'])} hold one of train's. Most held: {most}."
    ]


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"
