"""Greedy and beam search on tiny random decoders: shared by both decoders, consistent scores."""

import numpy as np
import pytest
import tensorflow as tf

from captioning.decoding import CaptionSearch, choose_first
from captioning.models.decoders import build_decoder
from captioning.phrasing import content_seeds, seed_halves

VOCAB, MAX_LENGTH = 12, 7


def tiny(kind, seed=0, batch=6):
    tf.keras.utils.set_random_seed(seed)
    decoder = build_decoder(kind, VOCAB, embed_dim=8, hidden=8, attention_dim=8)
    rng = np.random.default_rng(seed)
    features = {
        "feature_map": tf.constant(rng.normal(size=(batch, 4, 4, 6)), tf.float32),
        "pooled": tf.constant(rng.normal(size=(batch, 6)), tf.float32),
    }
    decoder({**features, "tokens": tf.ones((batch, 2), tf.int32)})
    # sharpen the output layer so the search has real choices to make
    kernel, bias = decoder.out.kernel, decoder.out.bias
    kernel.assign(kernel * 6.0)
    bias.assign(tf.constant(rng.normal(size=VOCAB) * 2.0, tf.float32))
    search = CaptionSearch(decoder, start_id=1, end_id=2, max_length=MAX_LENGTH, length_alpha=0.7)
    return decoder, search, features


def teacher_forced_log_prob(decoder, features, tokens, lengths):
    """Sum of log p(word) of the given sequences under the decoder, up to their lengths."""
    inputs = np.concatenate([np.ones((len(tokens), 1), np.int32), tokens[:, :-1]], axis=1)
    logits = decoder({**features, "tokens": tf.constant(inputs)})["logits"]
    log_p = tf.nn.log_softmax(logits).numpy()  # (B, T, V)
    picked = np.take_along_axis(log_p, tokens[..., None], -1)[..., 0]
    mask = np.arange(tokens.shape[1])[None] < lengths[:, None]
    return (picked * mask).sum(1)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_beam_width_one_equals_greedy(kind):
    _, search, features = tiny(kind)
    greedy, beam = search.greedy(features), search.beam(features, 1)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_allclose(beam.score, greedy.score, rtol=1e-5)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("width", [2, 3, 5])
def test_beam_never_scores_below_greedy(kind, width):
    for seed in range(3):
        _, search, features = tiny(kind, seed)
        greedy, beam = search.greedy(features), search.beam(features, width)
        assert np.all(beam.score >= greedy.score - 1e-5)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("width", [1, 3])
def test_scores_are_the_log_probabilities_of_the_returned_words(kind, width):
    decoder, search, features = tiny(kind, seed=1)
    found = search.search(features, width)
    expected = teacher_forced_log_prob(decoder, features, found.tokens, found.length)
    np.testing.assert_allclose(found.log_prob, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(found.score, found.log_prob / found.length**0.7, rtol=1e-5)
    for row, n in zip(found.tokens, found.length, strict=True):
        assert n <= MAX_LENGTH and (row[n:] == 0).all()  # padding after the last word
        assert 2 not in row[: n - 1]  # <end> only ever last
        assert n == MAX_LENGTH or row[n - 1] == 2


def test_attention_weights_are_distributions_over_the_map():
    _, search, features = tiny("attention", seed=2)
    found = search.beam(features, 3, attention=True)
    assert found.attention.shape == (6, MAX_LENGTH, 16)
    sums = found.attention.sum(-1)
    for row, n in zip(sums, found.length, strict=True):
        np.testing.assert_allclose(row[:n], 1.0, rtol=1e-5)
        np.testing.assert_allclose(row[n:], 0.0)


def test_beam_attention_for_one_image():
    # one image: the loop starts at a static (1, k, L, P) that the beam's gather must keep
    _, search, features = tiny("attention", seed=2, batch=1)
    found = search.beam(features, 3, attention=True)
    assert found.attention.shape == (1, MAX_LENGTH, 16)
    np.testing.assert_allclose(found.attention[0, : found.length[0]].sum(-1), 1.0, rtol=1e-5)


def test_show_tell_has_no_attention():
    _, search, features = tiny("show_tell")
    assert search.greedy(features, attention=True).attention is None


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("width", [1, 3])
def test_forced_first_word_is_kept_and_scored(kind, width):
    decoder, search, features = tiny(kind, seed=3)
    free = search.search(features, width)
    same = (
        search.greedy(features, first=free.tokens[:, 0])
        if width == 1
        else search.beam(features, width, first=free.tokens[:, 0])
    )
    np.testing.assert_array_equal(same.tokens, free.tokens)  # forcing its own choice: no change
    first = np.array([4, 5, -1, 6, 7, 8], np.int32)  # -1: free
    found = (
        search.greedy(features, first=first)
        if width == 1
        else search.beam(features, width, first=first)
    )
    forced = first >= 0
    np.testing.assert_array_equal(found.tokens[forced, 0], first[forced])
    np.testing.assert_array_equal(found.tokens[~forced], free.tokens[~forced])
    expected = teacher_forced_log_prob(decoder, features, found.tokens, found.length)
    np.testing.assert_allclose(found.log_prob, expected, rtol=1e-4, atol=1e-4)


def pick_first(probs, seeds, words, ratio):
    """``choose_first`` (graph ops) on numpy inputs: uint64 seeds, phrasing word ids."""
    low, high = seed_halves(np.asarray(seeds, np.uint64))
    eligible = np.isin(np.arange(probs.shape[1]), list(words))
    picked = choose_first(
        tf.constant(probs, tf.float32), tf.constant(low), tf.constant(high), eligible, ratio
    )
    return picked.numpy()


def test_choose_first_picks_among_near_top_phrasing_words():
    probs = np.array([[0.0, 0.4, 0.3, 0.1, 0.2], [0.0, 0.1, 0.5, 0.3, 0.1]])
    # row 0: top 1; word 2 (0.3 >= 0.5 * 0.4) is near, word 4 (0.2) is near, word 3 is not
    # row 1: top 2; word 3 (0.3 >= 0.25) is near; word 1 is too unlikely
    words = [2, 3, 4]
    picks = {tuple(pick_first(probs, np.array([s, s]), words, 0.5)) for s in range(6)}
    assert {p[0] for p in picks} == {1, 2, 4} and {p[1] for p in picks} == {2, 3}
    # a word that is not a phrasing word is never chosen unless it is the top
    assert {int(pick_first(probs[:1], np.array([s]), [], 0.5)[0]) for s in range(6)} == {1}


def test_choose_first_takes_the_seed_modulo_the_candidates():
    """64-bit seeds (split in 32-bit halves for the graph) pick candidate seed % count."""
    rng = np.random.default_rng(5)
    probs = rng.random((40, VOCAB)).astype(np.float32) ** 3
    words = [0, 3, 4, 7, 9, 10]
    seeds = rng.integers(0, 2**64 - 1, 40, dtype=np.uint64, endpoint=True)
    seeds[:4] = [0, 1, 2**32 - 1, 2**64 - 1]
    got = pick_first(probs, seeds, words, 0.2)
    for row, seed, word in zip(probs, seeds, got, strict=True):
        near = (row >= np.float32(0.2) * row.max()) & np.isin(np.arange(VOCAB), words)
        near[row.argmax()] = True
        candidates = np.flatnonzero(near)
        assert word == candidates[int(seed) % len(candidates)]


def test_content_seeds_follow_the_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    seeds = content_seeds(images)
    np.testing.assert_array_equal(seeds, content_seeds(images.copy()))
    assert len(set(seeds.tolist())) == 4
    assert content_seeds(images[1:2])[0] == seeds[1]  # one image's seed ignores the batch


@pytest.mark.parametrize("width", [1, 3])
def test_varied_phrasing_is_seeded_and_varies(width):
    decoder, search, features = tiny("attention", seed=4, batch=6)
    probs = search.first_word_probs(features)  # (6, V)
    words = list(range(3, VOCAB))
    varied = CaptionSearch(
        decoder,
        start_id=1,
        end_id=2,
        max_length=MAX_LENGTH,
        length_alpha=0.7,
        phrasing="varied",
        phrasing_ratio=0.01,
        phrasing_words=words,
    )
    seeds = np.arange(6, dtype=np.uint64)
    once, twice = (varied.search(features, width, seeds=seeds) for _ in range(2))
    np.testing.assert_array_equal(once.tokens, twice.tokens)  # same images: same captions
    top = probs.max(1)
    for row, word in enumerate(once.tokens[:, 0]):
        assert word == probs[row].argmax() or (
            word in words and probs[row, word] >= 0.01 * top[row]
        )
    firsts = {
        int(varied.search(features, width, seeds=np.full(6, s, np.uint64)).tokens[0, 0])
        for s in range(12)
    }
    assert len(firsts) > 1  # other seeds (other images) get other phrasings
    best = search.search(features, width, seeds=seeds)  # "best": seeds change nothing
    np.testing.assert_array_equal(best.tokens, search.search(features, width).tokens)
