"""Caption search: greedy and beam search, batched over images, for any decoder of
``captioning.models.decoders`` (the ``CaptionDecoder`` contract: ``initial_state``, ``step``,
``has_attention``; docs/decoders.md).

Each search is one ``tf.function`` around a ``tf.while_loop`` over time steps; every op inside
works on the whole batch (B images, or B x k beams), so there is no Python loop per image or per
step at run time. The loop stops when every sequence has emitted ``<end>`` or after
``max_length`` words.

Scores: ``log_prob`` is the sum of the log-probabilities of the generated words including
``<end>``; ``length`` counts those words; ``score = log_prob / length ** length_alpha`` is the
length-normalised score (``length_alpha`` 0: raw log-probability, 1: mean per word). Beam
search ranks hypotheses by ``score``; a finished hypothesis stays in its beam and can only be
extended by ``<pad>`` at no cost, so it keeps competing with longer ones. Beam search also
scores the greedy sequence and returns it when it is better, so beam search never returns a
lower-scoring caption than greedy decoding (plain beam search can prune the greedy path and
end lower; this costs one greedy pass, about 1/k of the beam's work).

Phrasing (``phrasing="varied"``): a template set says the same findings in several phrasings,
and a decoder trained on all of them finds them about equally likely, so plain search picks
whichever is ahead by a hair, nearly always the same one. With ``varied``, the first word is
chosen per image among the top first word and the ``phrasing_words`` (the words that open a
template and say nothing about the image) whose probability is at least ``phrasing_ratio``
times the top one's, by a seed from the image's pixels (``phrasing.content_seeds``), and the
search (greedy or beam) continues from it. The same image gets the same caption on every run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from captioning.phrasing import PHRASINGS, choose_first


@dataclass
class Decoded:
    """Search results for B images, as numpy arrays."""

    tokens: np.ndarray  # (B, max_length) int32: word ids, <end> included, 0 (<pad>) after
    log_prob: np.ndarray  # (B,) float32
    length: np.ndarray  # (B,) int32: generated words including <end>
    score: np.ndarray  # (B,) float32: log_prob / length ** length_alpha
    attention: np.ndarray | None  # (B, max_length, P) float32, or None (no attention)

    def __len__(self) -> int:
        return len(self.tokens)


def _pad_time(x, max_length):
    """(T, B, ...) from a TensorArray -> (B, max_length, ...), zero-padded in time."""
    x = tf.experimental.numpy.moveaxis(x, 0, 1)
    pad = [[0, 0], [0, max_length - tf.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
    return tf.pad(x, pad)


class CaptionSearch:
    """Greedy and beam search over one decoder. Build once and reuse: the compiled loops are
    cached per (beam width, attention on/off)."""

    def __init__(
        self,
        decoder,
        *,
        start_id: int,
        end_id: int,
        max_length: int,
        length_alpha: float = 0.7,  # decoder.length_alpha's default
        phrasing: str = "best",
        phrasing_ratio: float = 0.5,
        phrasing_words: Iterable[int] = (),
    ):
        if phrasing not in PHRASINGS:
            raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
        self.decoder = decoder
        self.start_id, self.end_id = start_id, end_id
        self.max_length, self.length_alpha = max_length, float(length_alpha)
        self.phrasing, self.phrasing_ratio = phrasing, float(phrasing_ratio)
        self.phrasing_words = sorted(set(int(w) for w in phrasing_words))
        self._compiled: dict = {}

    def _normalise(self, log_prob, length):
        return log_prob / tf.pow(tf.cast(tf.maximum(length, 1), tf.float32), self.length_alpha)

    # ----------------------------------------------------------------------------- greedy
    def _greedy_fn(self, with_attention: bool):
        decoder, max_length, end_id = self.decoder, self.max_length, self.end_id

        @tf.function(reduce_retracing=True)
        def greedy(features, first):  # first: (B,) int32 word forced at step 0, -1: free
            context, state = decoder.initial_state(features)
            batch = tf.shape(features["pooled"])[0]
            tokens = tf.fill([batch], self.start_id)
            done = tf.zeros([batch], tf.bool)
            log_prob = tf.zeros([batch])
            length = tf.zeros([batch], tf.int32)
            words = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
            attention = tf.TensorArray(tf.float32, size=0, dynamic_size=True)

            def body(t, tokens, state, done, log_prob, length, words, attention):
                logits, state, alpha = decoder.step(tokens, state, context)  # (B, V)
                log_p = tf.nn.log_softmax(logits)
                best = tf.argmax(log_p, -1, output_type=tf.int32)  # (B,)
                best = tf.where(tf.equal(t, 0) & (first >= 0), first, best)
                gained = tf.gather(log_p, best, batch_dims=1)
                best = tf.where(done, 0, best)
                log_prob += tf.where(done, 0.0, gained)
                length += tf.where(done, 0, 1)
                words = words.write(t, best)
                if with_attention:
                    attention = attention.write(t, tf.where(done[:, None], 0.0, alpha))
                return (
                    t + 1,
                    best,
                    state,
                    done | tf.equal(best, end_id),
                    log_prob,
                    length,
                    words,
                    attention,
                )

            loop = tf.while_loop(
                lambda t, _tok, _s, done, *rest: tf.logical_not(tf.reduce_all(done)),
                body,
                (0, tokens, state, done, log_prob, length, words, attention),
                maximum_iterations=max_length,
            )
            _, _, _, _, log_prob, length, words, attention = loop
            out = {
                "tokens": _pad_time(words.stack(), max_length),
                "log_prob": log_prob,
                "length": length,
            }
            if with_attention:
                out["attention"] = _pad_time(attention.stack(), max_length)
            return out

        return greedy

    # ------------------------------------------------------------------------------- beam
    def _beam_fn(self, k: int, with_attention: bool):
        decoder, max_length, end_id = self.decoder, self.max_length, self.end_id
        normalise = self._normalise

        @tf.function(reduce_retracing=True)
        def beam(features, first):  # first: (B,) int32 word forced at step 0, -1: free
            context, state = decoder.initial_state(features)
            batch = tf.shape(features["pooled"])[0]
            tile = lambda x: tf.repeat(x, k, axis=0)  # noqa: E731  (B, ...) -> (B*k, ...)
            context = tf.nest.map_structure(tile, context)
            state = tf.nest.map_structure(tile, state)
            tokens = tf.fill([batch * k], self.start_id)
            # only beam 0 is live at first, so the k beams start as k different words
            log_prob = tf.tile(
                tf.constant([[0.0] + [-np.inf] * (k - 1)], tf.float32), [batch, 1]
            )  # (B, k)
            length = tf.zeros([batch, k], tf.int32)
            done = tf.zeros([batch, k], tf.bool)
            seqs = tf.zeros([batch, k, max_length], tf.int32)
            positions = 0
            if with_attention:
                positions = tf.shape(context[0])[1]
            attention = tf.zeros([batch, k, max_length, positions]) if with_attention else 0.0
            offsets = tf.range(batch)[:, None] * k  # (B, 1)

            def body(t, tokens, state, log_prob, length, done, seqs, attention):
                logits, state, alpha = decoder.step(tokens, state, context)  # (B*k, V)
                vocab = tf.shape(logits)[-1]
                log_p = tf.reshape(tf.nn.log_softmax(logits), [batch, k, vocab])
                pad_only = tf.one_hot(0, vocab, on_value=0.0, off_value=-np.inf)  # (V,)
                log_p = tf.where(done[..., None], pad_only, log_p)  # finished: <pad>, free
                other = tf.not_equal(tf.range(vocab)[None, None, :], first[:, None, None])
                forced = tf.equal(t, 0) & (first >= 0)[:, None, None] & other  # (B, 1, V)
                log_p = tf.where(forced, -np.inf, log_p)  # step 0: only the forced word
                candidate = log_prob[..., None] + log_p  # (B, k, V)
                new_length = length + tf.where(done, 0, 1)  # (B, k)
                ranked = normalise(candidate, new_length[..., None])
                _, top = tf.math.top_k(tf.reshape(ranked, [batch, k * vocab]), k)  # (B, k)
                parent, word = top // vocab, top % vocab  # (B, k)
                log_prob = tf.gather(tf.reshape(candidate, [batch, k * vocab]), top, batch_dims=1)
                length = tf.gather(new_length, parent, batch_dims=1)
                was_done = tf.gather(done, parent, batch_dims=1)
                done = was_done | tf.equal(word, end_id)
                at_t = tf.one_hot(t, max_length, dtype=tf.int32)  # (L,)
                seqs = tf.gather(seqs, parent, batch_dims=1) + at_t * word[..., None]
                flat_parent = tf.reshape(parent + offsets, [-1])  # (B*k,)
                state = tf.nest.map_structure(lambda s: tf.gather(s, flat_parent), state)
                if with_attention:
                    alpha = tf.gather(tf.reshape(alpha, [batch, k, -1]), parent, batch_dims=1)
                    alpha = tf.where(was_done[..., None], 0.0, alpha)  # (B, k, P)
                    moved = tf.gather(attention, parent, batch_dims=1) + (
                        tf.cast(at_t, tf.float32)[None, None, :, None] * alpha[:, :, None, :]
                    )
                    # keep the entry's static shape: with one image the loop starts at
                    # (1, k, L, P) and the gather would return (None, k, L, P)
                    attention = tf.ensure_shape(moved, attention.shape)
                return t + 1, tf.reshape(word, [-1]), state, log_prob, length, done, seqs, attention

            loop = tf.while_loop(
                lambda t, _tok, _s, _lp, _len, done, *rest: tf.logical_not(tf.reduce_all(done)),
                body,
                (0, tokens, state, log_prob, length, done, seqs, attention),
                maximum_iterations=max_length,
            )
            _, _, _, log_prob, length, _, seqs, attention = loop
            out = {"tokens": seqs[:, 0], "log_prob": log_prob[:, 0], "length": length[:, 0]}
            if with_attention:
                out["attention"] = attention[:, 0]
            return out

        return beam

    # ---------------------------------------------------------------------------- public
    def _run(self, key, make, features, first) -> dict:
        if key not in self._compiled:
            self._compiled[key] = make()
        batch = int(tf.shape(features["pooled"])[0])
        first = np.full(batch, -1, np.int32) if first is None else np.asarray(first, np.int32)
        out = self._compiled[key](features, tf.constant(first))
        return {name: value.numpy() for name, value in out.items()}

    def first_word_probs(self, features) -> np.ndarray:
        """(B, V) probabilities of the first word after ``<start>``."""
        if "first" not in self._compiled:
            decoder, start_id = self.decoder, self.start_id

            @tf.function(reduce_retracing=True)
            def first(features):
                context, state = decoder.initial_state(features)
                tokens = tf.fill([tf.shape(features["pooled"])[0]], start_id)
                logits, _, _ = decoder.step(tokens, state, context)  # (B, V)
                return tf.nn.softmax(logits)

            self._compiled["first"] = first
        return self._compiled["first"](features).numpy()

    def first_words(self, features, seeds) -> np.ndarray | None:
        """(B,) the first word of each caption under this search's phrasing, or None (free:
        ``best`` phrasing, no seeds, or no phrasing words)."""
        if self.phrasing == "best" or seeds is None or not self.phrasing_words:
            return None
        probs = self.first_word_probs(features)
        return choose_first(probs, np.asarray(seeds), self.phrasing_words, self.phrasing_ratio)

    def _finish(self, out: dict) -> Decoded:
        score = self._normalise(out["log_prob"], out["length"]).numpy()
        return Decoded(
            tokens=out["tokens"].astype(np.int32),
            log_prob=out["log_prob"].astype(np.float32),
            length=out["length"].astype(np.int32),
            score=score.astype(np.float32),
            attention=out.get("attention"),
        )

    def greedy(self, features, attention: bool = False, first=None) -> Decoded:
        """The most likely word at every step (at step 0 ``first`` (B,), where it is >= 0)."""
        with_attention = attention and self.decoder.has_attention
        key = ("greedy", with_attention)
        make = lambda: self._greedy_fn(with_attention)  # noqa: E731
        return self._finish(self._run(key, make, features, first))

    def beam(self, features, width: int, attention: bool = False, first=None) -> Decoded:
        """Beam search of ``width`` hypotheses per image (width 1 finds the greedy caption);
        every hypothesis starts with ``first`` (B,) where it is >= 0."""
        if width < 1:
            raise ValueError(f"beam width must be >= 1, got {width}")
        with_attention = attention and self.decoder.has_attention
        key = ("beam", width, with_attention)
        make = lambda: self._beam_fn(width, with_attention)  # noqa: E731
        found = self._finish(self._run(key, make, features, first))
        if width == 1:
            return found
        greedy = self.greedy(features, attention, first)
        better = greedy.score > found.score  # (B,) rare: the beam pruned the greedy path
        if better.any():
            for name in ("tokens", "log_prob", "length", "score", "attention"):
                a, b = getattr(found, name), getattr(greedy, name)
                if a is not None:
                    a[better] = b[better]
        return found

    def search(self, features, width: int = 1, attention: bool = False, seeds=None) -> Decoded:
        """Greedy for ``width`` 1, else beam search; the first word by this search's phrasing
        with ``seeds`` (B,) (see ``phrasing.content_seeds``)."""
        first = self.first_words(features, seeds)
        return (
            self.greedy(features, attention, first)
            if width == 1
            else self.beam(features, width, attention, first)
        )
