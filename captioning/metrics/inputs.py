"""The shape every corpus metric expects, checked once: one reference set per hypothesis.

A corpus is ``hyp_tokens: list[list[str]]`` (one token list per image) and
``ref_tokens: list[list[list[str]]]`` (per image, one or more reference token lists). Checking it
in one place gives every metric the same error message instead of a silent zip truncation.
"""

from __future__ import annotations


def check_corpus(hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]) -> None:
    """Raise ``ValueError`` unless there is at least one hypothesis and each has references."""
    if len(hyp_tokens) != len(ref_tokens):
        raise ValueError(
            f"{len(hyp_tokens)} hypotheses but {len(ref_tokens)} reference sets: one set per "
            "hypothesis"
        )
    if len(hyp_tokens) == 0:
        raise ValueError("no hypotheses to score")
    for i, refs in enumerate(ref_tokens):
        if len(refs) == 0:
            raise ValueError(f"hypothesis {i} has no references")
    for i, hyp in enumerate(hyp_tokens):
        if isinstance(hyp, str):
            raise ValueError(f"hypothesis {i} is a string: pass token lists (use tokenize)")
