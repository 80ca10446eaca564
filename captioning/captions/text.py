"""Tokenisation rules per caption source: lower-casing, punctuation, a vocabulary minimum count
(rarer words become ``<unk>``) and a maximum length.

The default rules are the project's one rule (``captioning.captions.tokenize``) unchanged:
lower-case, punctuation dropped, every word of the training captions kept, no length limit.
The templated MedNIST captions always use them, so their vocabulary and scores do not move.
A free-text source (radiology reports) states its own, for example R2Gen's: words seen fewer
than 3 times are ``<unk>``, reports cut at 60 tokens (IU X-Ray) or 100 (MIMIC-CXR).

``punctuation = "keep"`` makes each punctuation mark a token of its own ("lungs clear ." ->
``["lungs", "clear", "."]``), so a decoder can learn sentence ends; ``"drop"`` discards it, as
COCO-style evaluation does. ``max_length`` cuts the token list: the vocabulary, training and
the metrics then see the same (cut) references, as R2Gen's evaluation does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from captioning.captions.tokenize import tokenize
from captioning.errors import DataError

PUNCTUATION = ("drop", "keep")
_WORD = r"[a-z0-9]+(?:['\-][a-z0-9]+)*"  # the default rule's words (see captions.tokenize)
_WORD_CASED = r"[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*"
_MARK = r"[^\sA-Za-z0-9]"  # one punctuation mark (or any other symbol): a token of its own


@dataclass(frozen=True)
class TextRules:
    """How a source's captions become tokens (see the module doc)."""

    lowercase: bool = True
    punctuation: str = "drop"
    min_count: int = 1
    max_length: int | None = None

    def __post_init__(self):
        if self.punctuation not in PUNCTUATION:
            raise DataError(f"punctuation must be one of {PUNCTUATION}, got {self.punctuation!r}")
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise DataError(f"min_count must be a whole number >= 1, got {self.min_count!r}")
        if self.max_length is not None and (
            not isinstance(self.max_length, int) or self.max_length < 1
        ):
            raise DataError(f"max_length must be a whole number >= 1, got {self.max_length!r}")

    @property
    def is_default(self) -> bool:
        """The project's one rule: what template captions use."""
        return self == TextRules()

    def tokenizer(self) -> Callable[[str], list[str]]:
        """``text -> tokens`` under these rules; the default rules give ``tokenize`` itself."""
        if self.lowercase and self.punctuation == "drop":
            split = tokenize
        else:
            word = _WORD if self.lowercase else _WORD_CASED
            pattern = re.compile(word if self.punctuation == "drop" else f"{word}|{_MARK}")

            def split(text: str) -> list[str]:
                return pattern.findall(text.lower() if self.lowercase else text)

        if self.max_length is None:
            return split
        limit = self.max_length

        def cut(text: str) -> list[str]:
            return split(text)[:limit]

        return cut

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> TextRules:
        """Rules from ``to_dict``'s output (None: the default rules); unknown keys refused."""
        if not values:
            return cls()
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(f"unknown tokenisation setting(s): {', '.join(unknown)}")
        return cls(**values)
