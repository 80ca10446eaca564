"""Parse-back: recover the class and the findings a caption states.

The evaluation scores a generated caption's findings against the image's own by parsing it. The
parser is a phrase spotter, not a template matcher, so it also reads captions that are only
partly in the grammar (a generated caption with a word out of place): it scans the tokens left
to right, takes the longest class or field phrase of the set that starts at each position,
skips the set's filler words, and reports every other word as unknown.

``match_template`` goes one step further for a caption that is exactly one of the set's
renderings: it names the template it came from, so the share of each phrasing among generated
captions can be counted (``template_share``) and a caption can be shown with its template's case
and punctuation (``captions.sentence``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from captioning.captions.findings import QUALITY_VALUES
from captioning.captions.templates import _SLOT, TemplateSet, load_template_set, render
from captioning.captions.tokenize import tokenize


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


def phrase_table(tset: TemplateSet) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """tokens -> (kind, value) for every class and field phrase of the set, and the longest
    phrase's length: what parse-back matches a caption's words against."""
    table, _, longest = _grammar(tset)
    return table, longest


@lru_cache(maxsize=16)
def _grammar(tset: TemplateSet) -> tuple[dict[tuple[str, ...], tuple[str, str]], frozenset, int]:
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
        token for t in tset.templates + tset.non_diagnostic for token in tokenize(_SLOT.sub(" ", t))
    )
    return table, filler, max(len(k) for k in table)


def parse_caption(text: str, template_set: TemplateSet | str) -> Parsed:
    """Parse ``text`` with the grammar of ``template_set`` (a loaded set, a name or a path)."""
    tset = (
        template_set if isinstance(template_set, TemplateSet) else load_template_set(template_set)
    )
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


class TemplateMatch(NamedTuple):
    """A caption that is exactly rendering ``index`` of its set for ``class_name`` and
    ``fields`` (with ``quality``; a non-diagnostic caption's findings are None)."""

    index: int
    class_name: str
    fields: dict


@lru_cache(maxsize=4096)
def _rendered_tokens(tset: TemplateSet, class_name: str, fields: tuple, index: int) -> tuple:
    return tuple(tokenize(render(class_name, dict(fields), tset, index)))


def match_template(
    tokens: list[str] | str, template_set: TemplateSet | str
) -> TemplateMatch | None:
    """Which template of the set ``tokens`` (a token list or a text) is a rendering of, or None
    when it is none of them exactly (a word out of place, a finding missing, a phrase of another
    template, or a caption written with another version of the set)."""
    tset = (
        template_set if isinstance(template_set, TemplateSet) else load_template_set(template_set)
    )
    tokens = tuple(tokenize(tokens) if isinstance(tokens, str) else tokens)
    parsed = parse_caption(" ".join(tokens), tset)
    if parsed.class_name is None or parsed.conflicts or parsed.unknown_words:
        return None
    if parsed.quality == QUALITY_VALUES[0] and parsed.missing:
        return None
    fields = {"quality": parsed.quality, **parsed.fields}
    key = tuple(sorted(fields.items()))
    for index in range(tset.n_references):
        if _rendered_tokens(tset, parsed.class_name, key, index) == tokens:
            return TemplateMatch(index, parsed.class_name, fields)
    return None


def template_share(captions: Iterable[list[str] | str], template_set: TemplateSet | str) -> dict:
    """Share of ``captions`` written with each template of the set: keys ``"0"``.. ``"k-1"``
    (template index) and ``"none"`` (no template exactly); values sum to 1 (all 0 if empty)."""
    tset = (
        template_set if isinstance(template_set, TemplateSet) else load_template_set(template_set)
    )
    counts = dict.fromkeys([*map(str, range(tset.n_references)), "none"], 0)
    for caption in captions:
        found = match_template(caption, tset)
        counts["none" if found is None else str(found.index)] += 1
    total = sum(counts.values())
    return {k: round(v / total, 6) if total else 0.0 for k, v in counts.items()}
