"""Captions for people: a generated token sequence shown as a proper sentence.

The decoder writes tokens in the one tokenisation rule's form (lower case, no punctuation;
``captions.tokenize``), which is what every metric and the parser read. People read a sentence:
``to_sentence`` parses the tokens back to their template and values (``parse.match_template``)
and renders that template again, so the text has the set's own case and punctuation
("Examination: head CT. Anatomy fills ..."). A caption that is no rendering of the set (a word
out of place, or a run trained with another version of the set) falls back to rules: known
abbreviations in their written form (CT, MRI, X-ray, PA), a capital first letter, a final
period. Either way ``tokenize(to_sentence(tokens, tset)) == tokens``: showing a caption never
changes what it says or how it scores.
"""

from __future__ import annotations

import re
from functools import lru_cache

from captioning.captions.parse import match_template
from captioning.captions.templates import _SLOT, TemplateSet, load_template_set, render
from captioning.errors import DataError

# written forms that hold whatever the set says (a run's vocabulary may come from an older set)
DEFAULT_FORMS = {"ct": "CT", "mri": "MRI", "mr": "MR", "pa": "PA", "x-ray": "X-ray"}
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


@lru_cache(maxsize=16)
def written_forms(tset: TemplateSet | None) -> dict[str, str]:
    """token -> the form the set writes it in, for every word it writes with a capital in a
    phrase, or in a template other than at the start of a sentence (``ct`` -> ``CT``,
    ``x-ray`` -> ``X-ray``). Phrases are written as they read mid-sentence."""
    forms = dict(DEFAULT_FORMS)
    if tset is None:
        return forms
    phrases = [p for ps in tset.classes.values() for p in ps]
    phrases += [p for values in tset.phrases.values() for ps in values.values() for p in ps]
    templates = [_SLOT.sub(" x ", t) for t in (*tset.templates, *tset.non_diagnostic)]
    for text, is_template in [(p, False) for p in phrases] + [(t, True) for t in templates]:
        for match in _WORD.finditer(text):
            word = match.group()
            before = text[: match.start()].rstrip()
            opens_sentence = is_template and (not before or before[-1] in ".!?")
            if word != word.lower() and not opens_sentence:
                forms[word.lower()] = word
    return forms


def rule_sentence(tokens: list[str], tset: TemplateSet | None = None) -> str:
    """Tokens as a sentence by rule (no template): written forms of known words, a capital
    first letter, a final period. Empty tokens give ''."""
    forms = written_forms(tset)
    words = [forms.get(t, t) for t in tokens]
    if not words:
        return ""
    words[0] = words[0][:1].upper() + words[0][1:]
    text = " ".join(words)
    return text if _SENTENCE_END.search(text) else text + "."


def to_sentence(tokens: list[str], tset: TemplateSet | None) -> str:
    """The caption ``tokens`` as people read it: its template re-rendered when the tokens are
    exactly one of ``tset``'s renderings, else ``rule_sentence`` (also when ``tset`` is None)."""
    if tset is not None:
        found = match_template(tokens, tset)
        if found is not None:
            return render(found.class_name, found.fields, tset, found.index)
    return rule_sentence(tokens, tset)


def run_template_set(name_or_path: str | None) -> TemplateSet | None:
    """The template set a run names, or None when it no longer loads (its captions are then
    shown by ``rule_sentence``)."""
    try:
        return load_template_set(name_or_path) if name_or_path else None
    except DataError:
        return None
