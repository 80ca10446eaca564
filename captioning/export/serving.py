"""The serving model: everything ``captioning caption`` does for an image, as one ``tf.Module``
that ``tf.saved_model.save`` writes and plain ``tf.saved_model.load`` runs.

``serving_default(images)``: (N,) string, encoded PNG/JPEG files -> per image ``caption`` (the
sentence the CLI prints; '' when out of scope or unreadable), ``class``, ``class_probability``
(temperature-calibrated, as the CLI's ``prob``), ``in_scope``, ``ood_score``, ``score`` (the
caption's length-normalised log-probability), ``confidence_<finding>`` (NaN where the caption
states none), and ``error`` ('' when the file was read; else the CLI's one-line problem).
``serving_pixels(pixels)``: the same from (N, 64, 64) uint8 arrays.

The pieces, each the CLI's own: the image decoding of ``export.images``; the encoder, head and
decoder layers of the run's model with their trained weights; the first-word phrasing choice
seeded by ``export.seeds``; ``CaptionSearch``'s greedy and beam ``tf.function``s (they trace
into the SavedModel as they are), with the beam's fall-back to a better greedy caption; the
scope rule's statistics and threshold as constants; the calibration temperatures as constants.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from captioning.captions.vocabulary import Vocabulary
from captioning.data.images import IMAGE_SIZE
from captioning.export import images as tf_images
from captioning.export import seeds as tf_seeds
from captioning.export.text import FindingTable, SentenceTable
from captioning.models.captioner import image_features


def _scope_fn(scope):
    """(pooled (B, C), logits (B, K)) -> (B,) float64 out-of-scope score of the run's method,
    as ``captioning.scope`` computes it, or None for a run without a scope."""
    if scope is None:
        return None
    if scope.method == "mahalanobis":
        root = np.linalg.cholesky((scope.precision + scope.precision.T) / 2)  # (C, C)
        centres = scope.means @ root  # (K', C)
        root_t, centres_t = tf.constant(root), tf.constant(centres)
        norms = tf.constant((centres**2).sum(1)[None, :])

        def mahalanobis(pooled, logits):
            z = tf.matmul(tf.cast(pooled, tf.float64), root_t)  # (B, C)
            d2 = tf.reduce_sum(z**2, 1, keepdims=True) - 2 * tf.matmul(z, centres_t, False, True)
            return tf.maximum(tf.reduce_min(d2 + norms, 1), 0.0)

        return mahalanobis
    if scope.method == "msp":
        return lambda pooled, logits: (
            1.0
            - tf.exp(
                tf.reduce_max(tf.cast(logits, tf.float64), 1)
                - tf.reduce_logsumexp(tf.cast(logits, tf.float64), 1)
            )
        )
    return lambda pooled, logits: -tf.reduce_logsumexp(tf.cast(logits, tf.float64), 1)


class ServingModel(tf.Module):
    """A loaded ``captioning.commands.caption.Captioner`` with its search fixed at ``beam`` wide."""

    def __init__(self, captioner, beam: int):
        super().__init__(name="captioning_serving")
        model, search, vocab = captioner.model, captioner.search, captioner.vocab
        encoder, head, decoder = (model.get_layer(n) for n in ("encoder", "logits", "decoder"))
        self.model_variables = list(model.variables)  # tracked: the functions read them
        self.beam = int(beam)
        temperatures = captioner.calibration["temperatures"] if captioner.calibration else {}
        scope = captioner.scope
        self.threshold = float(scope.threshold) if scope is not None else None
        tset = captioner.tset
        self.sentences = SentenceTable(tset)
        with_findings = tset is not None and captioner.calibration is not None
        self.findings = FindingTable(tset, vocab.tokens) if with_findings else None
        self.finding_names = list(self.findings.fields) if with_findings else []
        class_names = tf.constant(captioner.classes)
        vocab_t = tf.constant(vocab.tokens)
        varied = search.phrasing == "varied" and bool(search.phrasing_words)
        eligible = np.zeros(len(vocab), bool)
        eligible[search.phrasing_words] = True
        greedy = search._greedy_fn(False)
        beam_search = search._beam_fn(self.beam, False) if self.beam > 1 else None
        ood = _scope_fn(scope)
        t_class = float(temperatures.get("class", 1.0))

        def first_words(features, pixels):  # (B,) int32, -1: free (see CaptionSearch)
            batch = tf.shape(pixels)[0]
            if not varied:
                return tf.fill([batch], -1)
            context, state = decoder.initial_state(features)
            tokens = tf.fill([batch], vocab.start_id)
            logits, _, _ = decoder.step(tokens, state, context)  # (B, V)
            low, high = tf_seeds.content_seed_halves(pixels)
            return tf_seeds.choose_first(
                tf.nn.softmax(logits), low, high, tf.constant(eligible), search.phrasing_ratio
            )

        def run_search(features, first):
            found = greedy(features, first)
            score = search._normalise(found["log_prob"], found["length"])
            if beam_search is None:
                return found["tokens"], score
            wide = beam_search(features, first)
            wide_score = search._normalise(wide["log_prob"], wide["length"])
            better = score > wide_score  # (B,) rare: the beam pruned the greedy path
            return tf.where(better[:, None], found["tokens"], wide["tokens"]), tf.where(
                better, score, wide_score
            )

        def caption_or_empty(pixels, errors):
            """``caption``, or empty outputs for an empty batch (batch norm needs a row)."""
            strings = ("caption", "class", "error")
            names = [*strings, "class_probability", "in_scope", "ood_score", "score"]
            names += [f"confidence_{name}" for name in self.finding_names]

            def empty():
                dtypes = {"in_scope": tf.bool, **{k: tf.string for k in strings}}
                return {k: tf.zeros([0], dtypes.get(k, tf.float32)) for k in names}

            return tf.cond(tf.shape(pixels)[0] > 0, lambda: caption(pixels, errors), empty)

        def caption(pixels, errors):
            """(B, 64, 64) uint8, (B,) error strings -> the output dictionary."""
            x = tf.cast(pixels, tf.float32)[..., None]
            features = image_features(encoder, x)
            logits = head(features["pooled"])  # (B, K)
            tokens, score = run_search(features, first_words(features, pixels))
            ended = tf.cumsum(tf.cast(tf.equal(tokens, vocab.end_id), tf.int32), 1)
            said = (ended == 0) & (tokens != Vocabulary.pad_id) & (tokens != vocab.start_id)
            sentence = self.sentences(tf.gather(vocab_t, tokens), said)
            z = tf.cast(logits, tf.float64) / t_class
            prob = tf.reduce_max(tf.nn.softmax(z), 1)
            read = tf.equal(errors, "")
            if ood is not None:
                ood_score = ood(features["pooled"], logits)
                in_scope = (ood_score <= self.threshold) & read
            else:
                ood_score = tf.fill(tf.shape(prob), tf.constant(np.nan, tf.float64))
                in_scope = read
            out = {
                "caption": tf.where(in_scope, sentence, ""),
                "class": tf.where(read, tf.gather(class_names, tf.argmax(logits, 1)), ""),
                "class_probability": tf.cast(tf.where(read, prob, np.nan), tf.float32),
                "in_scope": in_scope,
                "ood_score": tf.cast(tf.where(read, ood_score, np.nan), tf.float32),
                "score": tf.where(read, score, np.nan),
                "error": errors,
            }
            if self.findings is not None:
                start = tf.fill([tf.shape(tokens)[0], 1], vocab.start_id)
                inputs = tf.concat([start, tokens[:, :-1]], 1)  # teacher forcing on the caption
                steps = decoder({**features, "tokens": inputs}, training=False)["logits"]
                order = tf.argsort(tf.cast(tokens <= 0, tf.int32), 1, stable=True)
                kept = tf.gather(vocab_t, tf.gather(tokens, order, batch_dims=1))
                count = tf.reduce_sum(tf.cast(tokens > 0, tf.int32), 1)
                found = self.findings.confidences(kept, count, steps, temperatures)
                for name, p in found.items():
                    out[f"confidence_{name}"] = tf.cast(tf.where(read, p, np.nan), tf.float32)
            return out

        files_spec = tf.TensorSpec([None], tf.string, name="images")
        pixels_spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE], tf.uint8, name="pixels")

        @tf.function(input_signature=[files_spec])
        def from_files(images):
            pixels, errors = tf_images.decode_images(images)
            return caption_or_empty(pixels, errors)

        @tf.function(input_signature=[pixels_spec])
        def from_pixels(pixels):
            return caption_or_empty(pixels, tf.fill([tf.shape(pixels)[0]], ""))

        self.serving_default = from_files
        self.serving_pixels = from_pixels

    def signatures(self) -> dict:
        """The signatures to save: ``serving_default`` (files) and ``serving_pixels``."""
        return {"serving_default": self.serving_default, "serving_pixels": self.serving_pixels}
