"""The phrase spotter at the heart of parse-back (``captions.parse``): the class and findings a
caption states, read with a template set's phrases.

It scans the tokens left to right, takes the longest class or field phrase of the set that
starts at each position, skips the set's filler words (the templates' words outside their
slots), and reports every other word as unknown. It works on a loaded ``TemplateSet`` (duck
typed: ``classes``, ``phrases``, ``templates``, ``non_diagnostic``, ``fields``), so loading a
set (``captions.templates``, which checks every rendering parses back) can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from captioning.captions.findings import QUALITY_VALUES
from captioning.captions.tokenize import tokenize

SLOT = re.compile(r"\{([a-z_]+)\}")  # a template's slot: {class}, {extent}, ...


@dataclass
class Parsed:
    """What a caption says. ``fields`` holds the set's findings (None when not stated);
    ``missing`` lists findings a diagnostic caption should state but does not; ``conflicts``
    lists findings stated twice with different values (the first is kept)."""

    class_name: str | None
    quality: str  # 'diagnostic' unless a non-diagnostic phrase is present
    fields: dict[str, str | None]
    unknown_words: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def matches(self, class_name: str, fields: dict) -> bool:
        """True when class, quality and every stated finding equal the given ones."""
        quality = fields.get("quality", QUALITY_VALUES[0])
        if self.class_name != class_name or self.quality != quality or self.conflicts:
            return False
        if quality == QUALITY_VALUES[1]:
            return True
        return not self.missing and all(fields.get(f) == v for f, v in self.fields.items())


def phrase_table(tset) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """tokens -> (kind, value) for every class and field phrase of the set, and the longest
    phrase's length: what parse-back matches a caption's words against."""
    table, _, longest = _grammar(tset)
    return table, longest


@lru_cache(maxsize=16)
def _grammar(tset) -> tuple[dict[tuple[str, ...], tuple[str, str]], frozenset, int]:
    """Phrase table (tokens -> (kind, value)), filler vocabulary, longest phrase length."""
    table: dict[tuple[str, ...], tuple[str, str]] = {}
    for class_name, phrases in tset.classes.items():
        for p in phrases:
            table[tuple(tokenize(p))] = ("class", class_name)
    for kind, values in tset.phrases.items():
        for value, phrases in values.items():
            for p in phrases:
                table[tuple(tokenize(p))] = (kind, value)
    filler = frozenset(
        token for t in tset.templates + tset.non_diagnostic for token in tokenize(SLOT.sub(" ", t))
    )
    return table, filler, max(len(k) for k in table)


def spot_phrases(text: str, tset) -> Parsed:
    """Parse ``text`` with the grammar of ``tset`` (a loaded ``TemplateSet``)."""
    table, filler, longest = _grammar(tset)
    tokens = tokenize(text)
    found: dict[str, str] = {}
    conflicts: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(tokens):
        for length in range(min(longest, len(tokens) - i), 0, -1):
            hit = table.get(tuple(tokens[i : i + length]))
            if hit is not None:
                kind, value = hit
                if kind in found and found[kind] != value and kind not in conflicts:
                    conflicts.append(kind)
                found.setdefault(kind, value)
                i += length
                break
        else:
            if tokens[i] not in filler:
                unknown.append(tokens[i])
            i += 1
    quality = found.get("quality", QUALITY_VALUES[0])
    fields = {f: found.get(f) for f in tset.fields}
    missing = [] if quality == QUALITY_VALUES[1] else [f for f, v in fields.items() if v is None]
    if "class" not in found:
        missing.insert(0, "class")
    return Parsed(
        class_name=found.get("class"),
        quality=quality,
        fields=fields,
        unknown_words=unknown,
        missing=missing,
        conflicts=conflicts,
    )
