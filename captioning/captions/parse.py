"""Parse-back: recover the class and the findings a caption states.

The evaluation scores a generated caption's findings against the image's own by parsing it. The
parser is a phrase spotter (``captions.spotting``), not a template matcher, so it also reads
captions that are only partly in the grammar (a generated caption with a word out of place): it
scans the tokens left to right, takes the longest class or field phrase of the set that starts
at each position, skips the set's filler words, and reports every other word as unknown.

``match_template`` goes one step further for a caption that is exactly one of the set's
renderings: it names the template it came from, so the share of each phrasing among generated
captions can be counted (``template_share``) and a caption can be shown with its template's case
and punctuation (``captions.sentence``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from captioning.captions.findings import QUALITY_VALUES
from captioning.captions.spotting import Parsed, phrase_table, spot_phrases
from captioning.captions.templates import TemplateSet, load_template_set, render
from captioning.captions.tokenize import tokenize

__all__ = [
    "Parsed",
    "TemplateMatch",
    "match_template",
    "parse_caption",
    "phrase_table",
    "template_share",
]


def parse_caption(text: str, template_set: TemplateSet | str) -> Parsed:
    """Parse ``text`` with the grammar of ``template_set`` (a loaded set, a name or a path)."""
    tset = (
        template_set if isinstance(template_set, TemplateSet) else load_template_set(template_set)
    )
    return spot_phrases(text, tset)


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
