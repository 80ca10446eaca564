"""The captioner's vocabulary: token <-> id, built from the training captions.

Ids 0..3 are the special tokens ``<pad>`` (0, so zero-padding is padding), ``<start>``,
``<end>`` and ``<unk>``; the words follow, most frequent first (ties alphabetical), so the same
captions always give the same ids. Text is split with the project's one tokenisation rule
(``captioning.captions.tokenize``), or with a caption source's own rules
(``captioning.captions.text.TextRules``: lower-casing, punctuation, minimum count, maximum
length). Saved as ``vocabulary.json`` in the run folder (with the rules when they are not the
default ones), so captioning and evaluation need nothing but the run folder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from captioning.captions.text import TextRules
from captioning.captions.tokenize import detokenize
from captioning.errors import DataError, RunError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
VOCABULARY_FILE = "vocabulary.json"


class Vocabulary:
    """An ordered token list; ``pad_id`` is 0. ``rules``: how text becomes tokens."""

    pad_id, start_id, end_id, unk_id = 0, 1, 2, 3

    def __init__(self, tokens: list[str], rules: TextRules | None = None):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary lists each token once")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.rules = rules or TextRules()
        self.tokenize = self.rules.tokenizer()

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.tokens == other.tokens
            and self.rules == other.rules
        )

    @classmethod
    def from_captions(
        cls, captions: Iterable[str], min_count: int | None = None, rules: TextRules | None = None
    ) -> Vocabulary:
        """Every word seen at least ``min_count`` times in ``captions`` (default: the rules'
        ``min_count``, 1 under the default rules), tokenised by ``rules``."""
        rules = rules or TextRules()
        min_count = rules.min_count if min_count is None else min_count
        split = rules.tokenizer()
        counts = Counter(token for text in captions for token in split(text))
        words = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([*SPECIALS, *words], rules)

    def encode(self, text: str, max_length: int) -> list[int]:
        """``<start> words... <end>``; at most ``max_length`` tokens after ``<start>`` (the
        caption is cut and still ends with ``<end>``)."""
        ids = [self.index.get(t, self.unk_id) for t in self.tokenize(text)][: max_length - 1]
        return [self.start_id, *ids, self.end_id]

    def encode_batch(self, texts: Iterable[str], max_length: int) -> np.ndarray:
        """(N, max_length + 1) int32, zero-padded: ``<start>`` then up to ``max_length`` tokens."""
        texts = list(texts)
        out = np.zeros((len(texts), max_length + 1), np.int32)
        for row, text in enumerate(texts):
            ids = self.encode(text, max_length)
            out[row, : len(ids)] = ids
        return out

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """Words of a generated sequence: stops at ``<end>``, drops ``<pad>`` and ``<start>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i in (self.pad_id, self.start_id):
                continue
            words.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return words

    def decode(self, ids: Iterable[int]) -> str:
        return detokenize(self.decode_tokens(ids))

    def save(self, path: str | Path) -> None:
        """Write the tokens (and the rules, unless they are the default ones)."""
        payload = {"tokens": self.tokens}
        if not self.rules.is_default:
            payload["text"] = self.rules.to_dict()
        Path(path).write_text(json.dumps(payload, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
            return cls(payload["tokens"], TextRules.from_dict(payload.get("text")))
        except FileNotFoundError:
            raise RunError(f"{path}: missing (is this a captioner run folder?)") from None
        except (OSError, ValueError, KeyError, TypeError, DataError) as err:
            raise RunError(f"{path}: not a vocabulary ({err})") from None
