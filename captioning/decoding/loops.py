"""The greedy and beam ``tf.while_loop``s of ``CaptionSearch`` (graph ops, batch first).

Both take the search (its ``decoder``, ``start_id``, ``end_id``, ``max_length``, ``rules``
and ``normalise``), the encoder's ``features`` dict, ``first`` (B,) int32 (the word forced at step
0; -1: free) and whether to collect attention, and return ``tokens`` (B, L) int32 (<end>
included, 0 after), ``log_prob`` (B,) float32, ``length`` (B,) int32 and, with attention,
``attention`` (B, L, P) float32 (L = max_length, P = map positions).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from captioning.decoding.rules import apply_rules


def pad_time(x, max_length):
    """(T, B, ...) stacked from a TensorArray -> (B, max_length, ...), zero-padded in time."""
    x = tf.experimental.numpy.moveaxis(x, 0, 1)
    pad = [[0, 0], [0, max_length - tf.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
    return tf.pad(x, pad)


def greedy_loop(search, features, first, attention: bool) -> dict:
    """The most likely word at every step (``first`` at step 0 where it is >= 0) that the
    search's rules allow (``rules.apply_rules``)."""
    decoder, end_id, max_length = search.decoder, search.end_id, search.max_length
    context, state = decoder.initial_state(features)
    batch = tf.shape(features["pooled"])[0]
    maps = tf.TensorArray(tf.float32, size=0, dynamic_size=True)  # (T, B, P)

    def body(t, tokens, state, done, log_prob, length, seqs, maps):
        logits, state, alpha = decoder.step(tokens, state, context)  # (B, V), ..., (B, P)
        log_p = tf.nn.log_softmax(logits)
        allowed = apply_rules(search, log_p, seqs, tokens, t)  # (B, V) banned at -inf
        best = tf.argmax(allowed, -1, output_type=tf.int32)  # (B,)
        best = tf.where(tf.equal(t, 0) & (first >= 0), first, best)
        gained = tf.gather(log_p, best, batch_dims=1)  # (B,)
        best = tf.where(done, 0, best)  # finished: <pad>, at no cost
        log_prob += tf.where(done, 0.0, gained)
        length += tf.where(done, 0, 1)
        seqs += tf.one_hot(t, max_length, dtype=tf.int32)[None, :] * best[:, None]  # (B, L)
        if attention:
            maps = maps.write(t, tf.where(done[:, None], 0.0, alpha))
        done |= tf.equal(best, end_id)
        return t + 1, best, state, done, log_prob, length, seqs, maps

    tokens, done = tf.fill([batch], search.start_id), tf.zeros([batch], tf.bool)
    start = (0, tokens, state, done, tf.zeros([batch]), tf.zeros([batch], tf.int32))
    _, _, _, _, log_prob, length, seqs, maps = tf.while_loop(
        lambda t, tokens, state, done, *rest: tf.logical_not(tf.reduce_all(done)),
        body,
        (*start, tf.zeros([batch, max_length], tf.int32), maps),
        maximum_iterations=max_length,
    )
    out = {"tokens": seqs, "log_prob": log_prob, "length": length}
    if attention:
        out["attention"] = pad_time(maps.stack(), max_length)
    return out


def _beam_log_probs(search, logits, t, first, done, seqs, k: int):
    """(B*k, V) logits -> (B, k, V) log-probabilities of the next word: the words the rules
    ban (given the hypotheses ``seqs`` (B, k, L)) at -inf; a finished hypothesis can only add
    <pad> (id 0) at no cost; at step 0 only ``first`` where it is >= 0."""
    vocab, length = tf.shape(logits)[-1], tf.shape(seqs)[-1]
    flat = tf.reshape(seqs, [-1, length])  # (B*k, L)
    last = tf.gather(flat, tf.maximum(t - 1, 0), axis=1)  # (B*k,) the word just written
    log_p = apply_rules(search, tf.nn.log_softmax(logits), flat, last, t)  # (B*k, V)
    log_p = tf.reshape(log_p, [-1, k, vocab])
    pad_only = tf.one_hot(0, vocab, on_value=0.0, off_value=-np.inf)  # (V,)
    log_p = tf.where(done[..., None], pad_only, log_p)
    other = tf.not_equal(tf.range(vocab)[None, None, :], first[:, None, None])  # (B, 1, V)
    forced = tf.equal(t, 0) & (first >= 0)[:, None, None] & other
    return tf.where(forced, -np.inf, log_p)


def _beam_top(search, log_p, log_prob, length, done, k: int):
    """Keep the k best of the k x V extensions by normalised score. ``log_p`` (B, k, V);
    ``log_prob``, ``length``, ``done`` (B, k). Returns parent and word (B, k) int32 and the
    kept hypotheses' log_prob, length and done flag before this word (B, k)."""
    batch, vocab = tf.shape(log_p)[0], tf.shape(log_p)[2]
    candidate = log_prob[..., None] + log_p  # (B, k, V)
    new_length = length + tf.where(done, 0, 1)  # (B, k)
    ranked = search.normalise(candidate, new_length[..., None])  # (B, k, V)
    _, top = tf.math.top_k(tf.reshape(ranked, [batch, k * vocab]), k)  # (B, k) flat ids
    parent, word = top // vocab, top % vocab  # (B, k)
    log_prob = tf.gather(tf.reshape(candidate, [batch, k * vocab]), top, batch_dims=1)
    length = tf.gather(new_length, parent, batch_dims=1)
    was_done = tf.gather(done, parent, batch_dims=1)
    return parent, word, log_prob, length, was_done


def _beam_attention(attention, alpha, parent, was_done, at_t, k: int):
    """The kept hypotheses' attention so far (B, k, L, P), with this step's ``alpha`` (B*k, P)
    written at ``at_t`` (L,) one-hot (0 for a hypothesis that had finished)."""
    batch = tf.shape(parent)[0]
    alpha = tf.gather(tf.reshape(alpha, [batch, k, -1]), parent, batch_dims=1)  # (B, k, P)
    alpha = tf.where(was_done[..., None], 0.0, alpha)
    moved = tf.gather(attention, parent, batch_dims=1) + (
        tf.cast(at_t, tf.float32)[None, None, :, None] * alpha[:, :, None, :]
    )
    # keep the static shape: with one image the loop starts at (1, k, L, P) and the gather
    # would return (None, k, L, P)
    return tf.ensure_shape(moved, attention.shape)


def beam_loop(search, features, first, k: int, attention: bool) -> dict:
    """Beam search of ``k`` hypotheses per image, ranked by normalised score; returns the
    best one's words (hypotheses kept sorted, so beam 0)."""
    decoder, max_length = search.decoder, search.max_length
    context, state = decoder.initial_state(features)
    batch = tf.shape(features["pooled"])[0]
    tile = lambda x: tf.repeat(x, k, axis=0)  # noqa: E731  (B, ...) -> (B*k, ...)
    context, state = tf.nest.map_structure(tile, context), tf.nest.map_structure(tile, state)
    offsets = tf.range(batch)[:, None] * k  # (B, 1): row of image b's beams in (B*k, ...)

    def body(t, tokens, state, log_prob, length, done, seqs, maps):
        logits, state, alpha = decoder.step(tokens, state, context)  # (B*k, V)
        log_p = _beam_log_probs(search, logits, t, first, done, seqs, k)  # (B, k, V)
        parent, word, log_prob, length, was_done = _beam_top(
            search, log_p, log_prob, length, done, k
        )
        done = was_done | tf.equal(word, search.end_id)
        at_t = tf.one_hot(t, max_length, dtype=tf.int32)  # (L,)
        seqs = tf.gather(seqs, parent, batch_dims=1) + at_t * word[..., None]  # (B, k, L)
        flat_parent = tf.reshape(parent + offsets, [-1])  # (B*k,)
        state = tf.nest.map_structure(lambda s: tf.gather(s, flat_parent), state)
        if attention:
            maps = _beam_attention(maps, alpha, parent, was_done, at_t, k)
        return t + 1, tf.reshape(word, [-1]), state, log_prob, length, done, seqs, maps

    # only beam 0 is live at first, so the k beams start as k different words
    log_prob = tf.tile(tf.constant([[0.0] + [-np.inf] * (k - 1)], tf.float32), [batch, 1])
    positions = tf.shape(context[0])[1] if attention else 0  # P: the attention map's size
    maps = tf.zeros([batch, k, max_length, positions]) if attention else 0.0  # (B, k, L, P)
    start = (0, tf.fill([batch * k], search.start_id), state, log_prob)
    start += (tf.zeros([batch, k], tf.int32), tf.zeros([batch, k], tf.bool))
    _, _, _, log_prob, length, _, seqs, maps = tf.while_loop(
        lambda t, tokens, state, log_prob, length, done, *rest: tf.logical_not(tf.reduce_all(done)),
        body,
        (*start, tf.zeros([batch, k, max_length], tf.int32), maps),
        maximum_iterations=max_length,
    )
    out = {"tokens": seqs[:, 0], "log_prob": log_prob[:, 0], "length": length[:, 0]}
    if attention:
        out["attention"] = maps[:, 0]
    return out
