"""What a free-text caption source holds, for its data card and caption card: reference
lengths (a histogram), the vocabulary the training split gives under the source's rules, and
the out-of-vocabulary rate that leaves on val and test (the share of their tokens that would
be ``<unk>``)."""

from __future__ import annotations

from collections import Counter
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
    ]


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"
