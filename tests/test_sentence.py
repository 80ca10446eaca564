"""Captions shown to people: template re-rendering, the rule fallback, template identification."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from captioning.captions.findings import FIELDS
from captioning.captions.parse import match_template, parse_caption, template_share
from captioning.captions.sentence import rule_sentence, run_template_set, to_sentence
from captioning.captions.templates import load_template_set, render
from captioning.captions.tokenize import tokenize

TSET = load_template_set("findings")
CLASSES = sorted(TSET.classes)
ALL_FIELDS = [dict(zip(FIELDS, c, strict=True)) for c in itertools.product(*FIELDS.values())]
CASES = [*ALL_FIELDS, {"quality": "non-diagnostic"}]


def test_every_rendering_round_trips_through_the_sentence():
    for class_name, fields, i in itertools.product(CLASSES, CASES, range(TSET.n_references)):
        reference = render(class_name, fields, TSET, i)
        tokens = tokenize(reference)
        shown = to_sentence(tokens, TSET)
        assert shown == reference  # the template's own case and punctuation
        assert tokenize(shown) == tokens
        assert parse_caption(shown, TSET).matches(class_name, fields)
        found = match_template(tokens, TSET)
        assert (found.index, found.class_name) == (i, class_name)


@given(
    class_name=st.sampled_from(CLASSES),
    fields=st.sampled_from(CASES),
    index=st.integers(0, 4),
    template_set=st.sampled_from(["findings", "class"]),
)
def test_sentence_round_trip_any_set(class_name, fields, index, template_set):
    tset = load_template_set(template_set)
    tokens = tokenize(render(class_name, fields, tset, index))
    shown = to_sentence(tokens, tset)
    assert tokenize(shown) == tokens
    assert shown[0].isupper() and shown.endswith(".")
    assert parse_caption(shown, tset).class_name == class_name


WORDS = sorted(
    {
        t
        for c, f in itertools.product(CLASSES, CASES)
        for t in tokenize(" ".join(render(c, f, TSET, i) for i in range(TSET.n_references)))
    }
)


@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=20))
def test_rule_fallback_round_trips_any_words(tokens):
    shown = to_sentence(tokens, TSET)  # mostly no template: the rule fallback
    assert tokenize(shown) == tokens
    assert shown[0] == shown[0].upper() and shown.endswith(".")


def test_rule_fallback_writes_abbreviations_and_a_capital():
    assert rule_sentence(["head", "ct", "small", "x-ray"]) == "Head CT small X-ray."
    assert rule_sentence(["ct", "of", "the", "chest"], TSET) == "CT of the chest."
    assert rule_sentence([]) == ""
    # a word out of place: not a rendering, so the rule writes it
    tokens = tokenize(render("HeadCT", ALL_FIELDS[0], TSET, 1))
    swapped = [tokens[1], tokens[0], *tokens[2:]]
    assert match_template(swapped, TSET) is None
    assert to_sentence(swapped, TSET) == rule_sentence(swapped, TSET)


def test_captions_of_an_older_template_text_still_show():
    """A run trained on the lower-case templates of before: its words are no rendering of the
    current set, so the rule writes them, with CT and MRI as radiologists write them."""
    old = tokenize("extensive extent of anatomy on this high-signal axial ct of the head")
    shown = to_sentence(old, TSET)
    assert shown.startswith("Extensive extent") and tokenize(shown) == old
    assert "axial CT of the head." in shown
    assert to_sentence(["breast", "mri", "<unk>"], run_template_set("gone")) == "Breast MRI <unk>."
    assert run_template_set("gone") is None and run_template_set(None) is None


def test_references_read_as_report_lines():
    for class_name, fields, i in itertools.product(CLASSES, CASES, range(TSET.n_references)):
        text = render(class_name, fields, TSET, i)
        assert text[0].isupper() and text.endswith(".")
        assert " ct " not in f" {text} " and " mri " not in f" {text} "
        assert "extent" not in tokenize(text) and "high-signal" not in tokenize(text)
    assert render("CXR", {}, "class", 0) == "Frontal chest radiograph."


def test_first_word_names_the_template():
    """Each template opens with its own fixed word, for every class and finding: choosing the
    first word chooses the phrasing and says nothing about the image."""
    openers = {}
    for class_name, fields, i in itertools.product(CLASSES, CASES, range(TSET.n_references)):
        openers.setdefault(i, set()).add(tokenize(render(class_name, fields, TSET, i))[0])
    assert all(len(words) == 1 for words in openers.values())
    assert len(set.union(*openers.values())) == TSET.n_references


def test_template_share_counts_each_template():
    captions = [render("HeadCT", ALL_FIELDS[0], TSET, i) for i in (0, 0, 3)] + ["head ct zebra"]
    share = template_share(captions, TSET)
    assert share == {"0": 0.5, "1": 0.0, "2": 0.0, "3": 0.25, "4": 0.0, "none": 0.25}
    assert template_share([], TSET)["none"] == 0.0
