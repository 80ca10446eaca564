"""Decoding rules (``captioning.decoding.rules``): a real tiny decoder whose output layer is
set to write ``<unk>``, a word twice in a row, or a repeating 3-gram gets none of them under
greedy and beam search once the rules are on; the same decoder without them does (so the
checks bite); a run without the settings decodes as before."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from captioning.decoding import CaptionSearch, DecodingRules, length_bounds
from captioning.models.decoders import build_decoder

VOCAB, MAX_LENGTH = 12, 9
PAD, START, END, UNK = 0, 1, 2, 3
ALL_ON = DecodingRules(block_specials=True, block_repeats=True)


def fixed_decoder(bias, kind="show_tell", batch=4):
    """A tiny real decoder whose logits are ``bias`` (V,) at every step (output kernel 0)."""
    tf.keras.utils.set_random_seed(0)
    decoder = build_decoder(kind, VOCAB, embed_dim=8, hidden=8, attention_dim=8)
    rng = np.random.default_rng(0)
    features = {
        "feature_map": tf.constant(rng.normal(size=(batch, 4, 4, 6)), tf.float32),
        "pooled": tf.constant(rng.normal(size=(batch, 6)), tf.float32),
    }
    decoder({**features, "tokens": tf.ones((batch, 2), tf.int32)})
    decoder.out.kernel.assign(tf.zeros_like(decoder.out.kernel))
    decoder.out.bias.assign(tf.constant(bias, tf.float32))
    return decoder, features


def search_for(decoder, rules):
    return CaptionSearch(
        decoder, start_id=START, end_id=END, max_length=MAX_LENGTH, rules=rules, unk_id=UNK
    )


def words_of(row):
    """The caption's words before <end>."""
    row = list(row)
    return row[: row.index(END)] if END in row else row


def violations(tokens) -> set[str]:
    """Which rules the captions break: specials, a word twice in a row, a repeated 3-gram."""
    found = set()
    for row in tokens:
        words = words_of(row)
        if {PAD, START, UNK} & set(words):
            found.add("special")
        if any(a == b for a, b in itertools.pairwise(words)):
            found.add("repeat")
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(grams) != len(set(grams)):
            found.add("3-gram")
    return found


def run(decoder, features, rules, width):
    search = search_for(decoder, rules)
    return search.greedy(features) if width == 1 else search.beam(features, width)


# <unk> first, then word 5, then 6: left alone, "<unk> <unk> ..."; without <unk>, "5 5 5 ...";
# without repeats in a row, "5 6 5 6 ..." (a repeated 3-gram); <end> never likely
UNK_THEN_TWO = np.array([-9, -9, -9, 9, -2, 6, 5, 0, -1, -3, -4, -5], np.float32)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("width", [1, 3])
def test_rules_remove_unk_repeats_and_repeated_trigrams(kind, width):
    decoder, features = fixed_decoder(UNK_THEN_TWO, kind)
    assert violations(run(decoder, features, DecodingRules(), width).tokens) == {
        "special",
        "repeat",
        "3-gram",
    }
    specials_only = run(decoder, features, DecodingRules(block_specials=True), width).tokens
    assert violations(specials_only) == {"repeat", "3-gram"}
    found = run(decoder, features, ALL_ON, width)
    assert violations(found.tokens) == set()
    assert (found.length == MAX_LENGTH).all()  # still as long as the decoder wants: no <end>
    if width == 1:  # "5 6 5 6" then 5 would repeat "5 6 5", 6 itself: 7; later 5, 7 and 6 out
        assert words_of(found.tokens[0]) == [5, 6, 5, 6, 7, 5, 6, 8, 5]


@pytest.mark.parametrize("width", [1, 3])
def test_each_rule_alone_is_what_removes_its_fault(width):
    """Toggling ``block_repeats`` off brings the repeats back (the test above would fail)."""
    decoder, features = fixed_decoder(UNK_THEN_TWO)
    off = DecodingRules(block_specials=True, block_repeats=False, min_length=3)
    assert "repeat" in violations(run(decoder, features, off, width).tokens)
    on = DecodingRules(block_specials=True, block_repeats=True, min_length=3)
    assert violations(run(decoder, features, on, width).tokens) == set()


@pytest.mark.parametrize("width", [1, 3])
def test_min_length_holds_end_back(width):
    bias = np.array([-9, -9, 9, -9, -2, 6, 5, 4, 3, 2, 1, 0], np.float32)  # <end> first
    decoder, features = fixed_decoder(bias)
    assert (run(decoder, features, DecodingRules(), width).length == 1).all()
    found = run(decoder, features, DecodingRules(block_repeats=True, min_length=4), width)
    assert (found.length == 5).all()  # four words, then <end>
    assert all(len(words_of(r)) == 4 for r in found.tokens)


@pytest.mark.parametrize("width", [1, 3])
def test_scores_stay_the_decoders_log_probabilities(width):
    """The rules choose among words; the score is still the decoder's own log-probability."""
    decoder, features = fixed_decoder(UNK_THEN_TWO)
    found = run(decoder, features, ALL_ON, width)
    log_p = tf.nn.log_softmax(tf.constant(UNK_THEN_TWO)).numpy()
    expected = [log_p[[w for w in row if w]].sum() for row in found.tokens]
    np.testing.assert_allclose(found.log_prob, expected, rtol=1e-5)


def test_a_run_without_the_settings_decodes_as_before():
    """No keys (a run saved before the rules): all off, and the search is the old one."""
    assert DecodingRules.from_settings({"max_length": 24}) == DecodingRules()
    assert not DecodingRules().active
    rng = np.random.default_rng(3)
    decoder, features = fixed_decoder(rng.normal(size=VOCAB) * 3, "attention")
    decoder.out.kernel.assign(tf.constant(rng.normal(size=(8, VOCAB)) * 4, tf.float32))
    old = CaptionSearch(decoder, start_id=START, end_id=END, max_length=MAX_LENGTH)
    for width in (1, 3):
        got = search_for(decoder, DecodingRules.from_settings({})).search(features, width)
        want = old.search(features, width)
        np.testing.assert_array_equal(got.tokens, want.tokens)
        np.testing.assert_array_equal(got.score, want.score)


def test_from_settings_reads_the_config_keys():
    rules = DecodingRules.from_settings(
        {"block_specials": True, "block_repeats": False, "min_length": 4}
    )
    assert rules == DecodingRules(block_specials=True, block_repeats=False, min_length=4)
    assert DecodingRules.from_settings({"min_length": -1}).min_length == 0  # unresolved: off


def test_length_bounds_is_the_fifth_percentile_capped():
    assert length_bounds([3] * 5 + [10] * 95, 24) == 9  # 5th percentile between the two
    assert length_bounds(list(range(1, 101)), 24) == 5
    assert length_bounds([40] * 10, 24) == 12  # at most half of max_length
    assert length_bounds([], 24) == 0
