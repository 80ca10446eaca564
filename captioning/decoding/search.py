"""``CaptionSearch``: the search API (graph methods and their numpy wrappers) and the
phrasing rule ``choose_first``; the package docstring says how the search works."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from captioning.decoding.loops import beam_loop, greedy_loop
from captioning.decoding.rules import DecodingRules, banned_words
from captioning.phrasing import PHRASINGS, seed_halves


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


def choose_first(probs, seed_low, seed_high, eligible, ratio: float):
    """The phrasing rule, graph ops. ``probs`` (B, V) float32 first-word probabilities; seeds
    as int64 (B,) 32-bit halves (``phrasing.seed_halves``; a SavedModel has no uint64 modulo);
    ``eligible`` (V,) bool, the phrasing words. Candidates: the top word and every eligible
    word with probability >= ``ratio`` x the top's; the (seed mod count)-th in id order is
    picked. Returns (B,) int32."""
    top = tf.argmax(probs, -1, output_type=tf.int32)  # (B,)
    best = tf.reduce_max(probs, -1, keepdims=True)  # (B, 1)
    near = (probs >= tf.constant(ratio, probs.dtype) * best) & eligible[None, :]  # (B, V)
    near |= tf.one_hot(top, tf.shape(probs)[1], on_value=True, off_value=False)
    count = tf.reduce_sum(tf.cast(near, tf.int64), -1)  # (B,) >= 1
    # seed mod count from the halves: (high * 2**32 + low) mod count, exact in int64
    pick = ((seed_high % count) * ((1 << 32) % count) + seed_low % count) % count  # (B,)
    rank = tf.cumsum(tf.cast(near, tf.int64), -1) - 1  # (B, V) rank among the candidates
    hit = near & tf.equal(rank, pick[:, None])
    return tf.argmax(tf.cast(hit, tf.int32), -1, output_type=tf.int32)


class CaptionSearch:
    """Greedy and beam search over one decoder. Build once and reuse: the numpy methods'
    compiled functions are cached per (beam width, attention on/off)."""

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
        rules: DecodingRules | None = None,
        unk_id: int | None = None,
    ):
        if phrasing not in PHRASINGS:
            raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
        self.decoder = decoder
        self.start_id, self.end_id = start_id, end_id
        self.max_length, self.length_alpha = max_length, float(length_alpha)
        self.phrasing, self.phrasing_ratio = phrasing, float(phrasing_ratio)
        self.phrasing_words = sorted(set(int(w) for w in phrasing_words))
        # what the search may not write (decoding.rules); None: none (a run saved before them)
        self.rules = rules or DecodingRules()
        self.unk_id = unk_id  # <unk>'s id, banned by ``rules.block_specials``
        self._compiled: dict = {}

    @property
    def varied(self) -> bool:
        """Whether the first word is chosen by the phrasing rule (else: free)."""
        return self.phrasing == "varied" and bool(self.phrasing_words)

    # ------------------------------------------------------------------ graph methods
    def normalise(self, log_prob, length):
        """Length-normalised score: log_prob / max(length, 1) ** length_alpha (tensors)."""
        return log_prob / tf.pow(tf.cast(tf.maximum(length, 1), tf.float32), self.length_alpha)

    def first_word_probs_graph(self, features):
        """(B, V) probabilities of the first word after ``<start>``."""
        context, state = self.decoder.initial_state(features)
        tokens = tf.fill([tf.shape(features["pooled"])[0]], self.start_id)
        logits, _, _ = self.decoder.step(tokens, state, context)  # (B, V)
        return tf.nn.softmax(logits)

    def first_words_graph(self, features, seed_low, seed_high):
        """(B,) int32 first word per image under this search's phrasing; -1 (free) for
        ``best`` or without phrasing words. Seeds: (B,) int64 halves (``phrasing``)."""
        if not self.varied:
            return tf.fill([tf.shape(features["pooled"])[0]], -1)
        probs = self.first_word_probs_graph(features)  # (B, V)
        if self.rules.active:  # the phrasing rule picks among the words the rules allow
            batch, vocab = tf.shape(probs)[0], tf.shape(probs)[1]
            none = tf.zeros([batch, self.max_length], tf.int32)  # (B, L) nothing written yet
            banned = banned_words(self, none, tf.fill([batch], self.start_id), 0, vocab)
            probs = tf.where(banned, tf.zeros_like(probs), probs)  # (B, V)
        eligible = tf.reduce_any(tf.one_hot(self.phrasing_words, tf.shape(probs)[1]) > 0, 0)
        return choose_first(probs, seed_low, seed_high, eligible, self.phrasing_ratio)

    def greedy_graph(self, features, first, attention: bool = False) -> dict:
        """The most likely word at every step; at step 0 ``first`` (B,) int32 where >= 0.
        Returns tokens (B, L) int32, log_prob (B,), length (B,) int32, and with ``attention``
        (an attention decoder only) attention (B, L, P)."""
        return greedy_loop(self, features, first, attention)

    def beam_graph(self, features, first, width: int, attention: bool = False) -> dict:
        """Beam search of ``width`` hypotheses per image (no greedy fall-back: see
        ``decode_graph``); arguments and results as ``greedy_graph``."""
        return beam_loop(self, features, first, width, attention)

    def decode_graph(self, features, first, width: int, attention: bool = False) -> dict:
        """Greedy for ``width`` 1, else beam search falling back to the greedy caption where
        that scores higher; results as ``greedy_graph`` plus score (B,)."""
        greedy = self.greedy_graph(features, first, attention)
        greedy["score"] = self.normalise(greedy["log_prob"], greedy["length"])
        if width == 1:
            return greedy
        found = self.beam_graph(features, first, width, attention)
        found["score"] = self.normalise(found["log_prob"], found["length"])
        better = greedy["score"] > found["score"]  # (B,) rare: the beam pruned the greedy path

        def pick(name):
            where = tf.reshape(better, [-1] + [1] * (len(found[name].shape) - 1))
            return tf.where(where, greedy[name], found[name])

        return {name: pick(name) for name in found}

    def search_graph(self, features, seed_low, seed_high, width: int, attention: bool = False):
        """The whole search: the phrasing rule's first word (seeds as ``first_words_graph``),
        then ``decode_graph``. What the CLI, the service and the SavedModel run."""
        first = self.first_words_graph(features, seed_low, seed_high)
        return self.decode_graph(features, first, width, attention)

    # ------------------------------------------------------------------ numpy methods
    def _call(self, key, graph, *args) -> dict:
        if key not in self._compiled:
            self._compiled[key] = tf.function(graph, reduce_retracing=True)
        return {name: value.numpy() for name, value in self._compiled[key](*args).items()}

    def _first(self, features, first):
        batch = int(tf.shape(features["pooled"])[0])
        return tf.constant(np.full(batch, -1) if first is None else np.asarray(first), tf.int32)

    def _decoded(self, out: dict) -> Decoded:
        return Decoded(
            tokens=out["tokens"].astype(np.int32),
            log_prob=out["log_prob"].astype(np.float32),
            length=out["length"].astype(np.int32),
            score=out["score"].astype(np.float32),
            attention=out.get("attention"),
        )

    def first_word_probs(self, features) -> np.ndarray:
        """(B, V) probabilities of the first word after ``<start>``."""
        graph = lambda f: {"probs": self.first_word_probs_graph(f)}  # noqa: E731
        return self._call(("first",), graph, features)["probs"]

    def greedy(self, features, attention: bool = False, first=None) -> Decoded:
        """The most likely word at every step (at step 0 ``first`` (B,), where it is >= 0)."""
        return self._decode(features, 1, attention, first)

    def beam(self, features, width: int, attention: bool = False, first=None) -> Decoded:
        """Beam search of ``width`` hypotheses per image with the greedy fall-back, every one
        starting with ``first`` (B,) where it is >= 0 (width 1: the beam loop alone)."""
        if width != 1:
            return self._decode(features, width, attention, first)
        with_attention = bool(attention and self.decoder.has_attention)

        def graph(f, first):
            out = self.beam_graph(f, first, 1, with_attention)
            return {**out, "score": self.normalise(out["log_prob"], out["length"])}

        key = ("beam", 1, with_attention)
        return self._decoded(self._call(key, graph, features, self._first(features, first)))

    def _decode(self, features, width: int, attention, first) -> Decoded:
        if width < 1:
            raise ValueError(f"beam width must be >= 1, got {width}")
        with_attention = bool(attention and self.decoder.has_attention)

        def graph(f, first):
            return self.decode_graph(f, first, width, with_attention)

        key = ("decode", width, with_attention)
        return self._decoded(self._call(key, graph, features, self._first(features, first)))

    def search(self, features, width: int = 1, attention: bool = False, seeds=None) -> Decoded:
        """``search_graph``: greedy for ``width`` 1, else beam search; the first word by this
        search's phrasing with ``seeds`` (B,) uint64 (``phrasing.content_seeds``; None: free)."""
        if seeds is None or not self.varied or width < 1:
            return self._decode(features, width, attention, None)
        with_attention = bool(attention and self.decoder.has_attention)

        def graph(f, low, high):
            return self.search_graph(f, low, high, width, with_attention)

        low, high = seed_halves(seeds)
        key = ("search", width, with_attention)
        return self._decoded(self._call(key, graph, features, tf.constant(low), tf.constant(high)))
