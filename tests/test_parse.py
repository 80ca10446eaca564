"""Parse-back: every rendering parses to its own class and fields; unknown words reported."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from captioning.captions.findings import FIELDS
from captioning.captions.parse import parse_caption
from captioning.captions.templates import load_template_set, render

TSET = load_template_set("findings")
CLASSES = sorted(TSET.classes)


def test_round_trip_every_template_and_value():
    for class_name, i in itertools.product(CLASSES, range(TSET.n_references)):
        for combo in itertools.product(*FIELDS.values()):
            fields = dict(zip(FIELDS, combo, strict=True))
            parsed = parse_caption(render(class_name, fields, TSET, i), TSET)
            assert parsed.class_name == class_name
            assert parsed.fields == fields
            assert parsed.quality == "diagnostic"
            assert not (parsed.unknown_words or parsed.missing or parsed.conflicts)


@given(
    class_name=st.sampled_from(CLASSES),
    fields=st.fixed_dictionaries({f: st.sampled_from(v) for f, v in FIELDS.items()}),
    index=st.integers(0, 50),
    shout=st.booleans(),
)
def test_parse_of_render_is_identity(class_name, fields, index, shout):
    text = render(class_name, fields, TSET, index)
    parsed = parse_caption(text.upper() if shout else text, TSET)
    assert parsed.matches(class_name, fields) and not parsed.unknown_words


def test_non_diagnostic_round_trip():
    for i in range(TSET.n_references):
        parsed = parse_caption(render("HeadCT", {"quality": "non-diagnostic"}, TSET, i), TSET)
        assert (parsed.class_name, parsed.quality, parsed.missing) == (
            "HeadCT",
            "non-diagnostic",
            [],
        )


def test_unknown_missing_and_conflicting():
    parsed = parse_caption("head ct with zebra coverage, dark and bright", TSET)
    assert parsed.class_name == "HeadCT"
    assert parsed.unknown_words == ["zebra"]
    assert parsed.missing == ["extent", "density"]
    assert parsed.conflicts == ["brightness"] and parsed.fields["brightness"] == "dark"
    empty = parse_caption("", TSET)
    assert empty.class_name is None and empty.missing == ["class", *FIELDS]


def test_class_set_parses_class_only():
    tset = load_template_set("class")
    parsed = parse_caption(render("Hand", {}, tset, 0), tset)
    assert (parsed.class_name, parsed.fields, parsed.missing) == ("Hand", {}, [])
