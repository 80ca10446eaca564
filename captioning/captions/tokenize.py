"""The one tokenisation rule for captions: used by the vocabulary, the parser and every metric.

Rule: lower-case the text, then keep runs of letters and digits, joined by inner hyphens or
apostrophes ("non-diagnostic", "patient's" are one token each). Everything else (punctuation,
whitespace) separates tokens and is dropped, as COCO-style caption evaluation does. So
"Head CT, centred." and "head ct centred" tokenise the same way.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case word tokens; punctuation is dropped (see module doc)."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: list[str]) -> str:
    """Join tokens with single spaces (the inverse of ``tokenize`` up to punctuation and case)."""
    return " ".join(tokens)
