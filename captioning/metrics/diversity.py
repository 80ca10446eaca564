"""Diversity of a corpus of generated captions: numbers of the captions alone (no references),
the warning signs of a decoder that says one thing to every image or loops.

- ``distinct_share``: distinct captions / captions;
- ``unk_share``: share of captions containing the unknown-word token ``<unk>``;
- ``repeat_share``: share of captions with a token twice in a row or a 3-gram seen twice;
- ``vocabulary_used``: distinct words over all the captions (``<unk>`` not counted).
"""

from __future__ import annotations

import itertools

from captioning.captions.vocabulary import UNK


def repeats(tokens: list[str]) -> bool:
    """True when ``tokens`` has a token twice in a row or a repeated 3-gram."""
    if any(a == b for a, b in itertools.pairwise(tokens)):
        return True
    grams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    return len(set(grams)) < len(grams)


def diversity(captions: list[list[str]]) -> dict:
    """The diversity keys (module doc) of ``captions`` (token lists); shares None when empty."""
    n = len(captions)

    def share(count: int):
        return round(count / n, 6) if n else None

    return {
        "distinct_share": share(len({tuple(c) for c in captions})),
        "unk_share": share(sum(UNK in c for c in captions)),
        "repeat_share": share(sum(repeats(c) for c in captions)),
        "vocabulary_used": len({w for c in captions for w in c} - {UNK}),
    }
