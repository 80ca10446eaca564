"""The serving model: everything ``captioning caption`` does for an image, as one ``tf.Module``
that ``tf.saved_model.save`` writes and plain ``tf.saved_model.load`` runs.

``serving_default(images)``: (N,) string, encoded PNG/JPEG files -> per image ``caption`` (the
sentence the CLI prints; '' when out of scope or unreadable), ``class``, ``class_probability``
(temperature-calibrated, as the CLI's ``prob``), ``in_scope``, ``ood_score``,
``out_of_scope_reason`` ('' when in scope), ``score`` (the
caption's length-normalised log-probability), ``finding_<field>`` for each field of the run's
template set (the value the caption states, as the CLI's ``findings``; '' where it states none
and wherever ``caption`` is ''), ``confidence_<field>`` (runs with a calibration; NaN where the
caption states none), and ``error`` ('' when the file was read; else the CLI's one-line
problem).
``serving_pixels(pixels)``: the same from (N, S, S) uint8 arrays ((N, S, S, 3) for an RGB run;
(N, 64, 64) for MedNIST's default).

The pieces: the image decoding of ``export.images``; the encoder, head and decoder layers of
the run's model with their trained weights; the search itself, ``CaptionSearch.search_graph``
(the graph the CLI runs: phrasing rule, greedy or beam search, greedy fall-back), seeded by
``export.seeds``; the text and finding tables of ``export.text``; the scope rule and the
calibration temperatures as constants (``export.scores``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from captioning.captions.vocabulary import Vocabulary
from captioning.data.image_spec import with_channel_axis
from captioning.export import images as tf_images
from captioning.export import seeds as tf_seeds
from captioning.export.scores import class_probability, judge_fn
from captioning.export.text import FindingTable, SentenceTable
from captioning.models.captioner import image_features
from captioning.scope.colour import COLOUR_LIMIT, REASON_PARTS

# the string outputs; in_scope is bool, the others float
STRINGS = ("caption", "class", "error", "out_of_scope_reason")


class CaptionGraph:
    """A ``Captioner``'s captioning of decoded images as graph ops (a plain object, so
    ``tf.Module`` tracks only what ``ServingModel`` chooses: the weights, the tables and the
    scope rule's arrays)."""

    def __init__(self, captioner, beam: int, sentences, findings, store=tf.constant):
        model = captioner.model
        self.encoder, self.head = model.get_layer("encoder"), model.get_layer("logits")
        self.decoder, self.search, self.beam = captioner.decoder, captioner.search, beam
        self.start_id, self.end_id = captioner.vocab.start_id, captioner.vocab.end_id
        self.words = tf.constant(captioner.vocab.tokens)  # (V,) id -> token
        self.class_names = tf.constant(captioner.classes)  # (K,)
        self.sentences, self.findings = sentences, findings  # findings: None without fields
        calibration = captioner.calibration
        self.confident = findings is not None and calibration is not None
        self.temperatures = calibration["temperatures"] if calibration else {}
        scope = captioner.scope
        # the scope rule: (score, reason) of the evidence; ``store`` keeps the rule's arrays
        self.judge = None if scope is None else judge_fn(scope, captioner.classes, store)
        self.evidence = None if scope is None else captioner.evidence_reader.read  # the CLI's ops
        self.threshold = None if scope is None else float(scope.threshold)
        self.grey = captioner.image_spec.channels == 1  # colour refused (scope.colour)
        self.names = [*STRINGS, "class_probability", "in_scope", "ood_score", "score"]
        fields = findings.fields if findings else []
        self.names += [f"finding_{name}" for name in fields]
        self.names += [f"confidence_{name}" for name in (fields if self.confident else [])]

    def __call__(self, pixels, errors, colour) -> dict:
        """(B, S, S[, 3]) uint8, (B,) error strings ('' when read) and (B,) the files' colour
        spreads -> the output dictionary; empty outputs for an empty batch (batch norm needs a
        row)."""

        def empty():
            strings = [*STRINGS, *(k for k in self.names if k.startswith("finding_"))]
            dtypes = {"in_scope": tf.bool, **{k: tf.string for k in strings}}
            return {k: tf.zeros([0], dtypes.get(k, tf.float32)) for k in self.names}

        batch = tf.shape(pixels)[0]
        return tf.cond(batch > 0, lambda: self.caption(pixels, errors, colour), empty)

    def caption(self, pixels, errors, colour) -> dict:
        """``__call__`` for a batch of at least one image."""
        features = image_features(self.encoder, with_channel_axis(tf.cast(pixels, tf.float32)))
        logits = self.head(features["pooled"])  # (B, K)
        if self.search.varied:  # the seeds only matter to the phrasing rule
            low, high = tf_seeds.content_seed_halves(pixels)  # (B,) int64 each
        else:
            low = high = tf.zeros(tf.shape(pixels)[:1], tf.int64)
        found = self.search.search_graph(features, low, high, self.beam)
        tokens = found["tokens"]  # (B, L) int32
        read = tf.equal(errors, "")  # (B,) bool: the file gave pixels
        ood_score, in_scope, reason = self.scope(pixels, read, colour)
        t_class = float(self.temperatures.get("class", 1.0))
        out = {
            "caption": tf.where(in_scope, self.sentence(tokens), ""),
            "class": tf.where(read, tf.gather(self.class_names, tf.argmax(logits, 1)), ""),
            "class_probability": self.or_nan(read, class_probability(logits, t_class)),
            "in_scope": in_scope,
            "ood_score": self.or_nan(read, ood_score),
            "out_of_scope_reason": tf.where(read, reason, ""),
            "score": tf.where(read, found["score"], np.nan),
            "error": errors,
        }
        if self.findings is not None:
            words, count = self.caption_words(tokens)
            located = self.findings.locate(words, count)  # one scan for values and confidences
            for name, value in self.findings.values(words, count, located).items():
                out[f"finding_{name}"] = tf.where(in_scope, value, "")  # as the caption
        if self.confident:
            for name, p in self.confidences(features, tokens, words, count, located).items():
                out[f"confidence_{name}"] = self.or_nan(read, p)
        return out

    @staticmethod
    def or_nan(read, values):
        """(B,) float32 ``values``, NaN where the file was not read."""
        return tf.cast(tf.where(read, values, np.nan), tf.float32)

    def sentence(self, tokens):
        """(B, L) word ids -> (B,) the caption as ``to_sentence`` writes it."""
        ended = tf.cumsum(tf.cast(tf.equal(tokens, self.end_id), tf.int32), 1)  # >0: from <end>
        said = (ended == 0) & (tokens != Vocabulary.pad_id) & (tokens != self.start_id)
        return self.sentences(tf.gather(self.words, tokens), said)

    def scope(self, pixels, read, colour):
        """(B,) float64 out-of-scope score (NaN without a scope), (B,) bool in scope and (B,)
        the one-line reason ('' where in scope): the run's rule, then for a grey run the
        files' colour (``captioning.scope.colour``)."""
        if self.judge is None:
            nan = tf.fill(tf.shape(read), tf.constant(np.nan, tf.float64))
            return nan, read, tf.fill(tf.shape(read), "")
        evidence = self.evidence(with_channel_axis(tf.cast(pixels, tf.float32)))
        ood_score, reason = self.judge(evidence)
        in_scope = (ood_score <= self.threshold) & read
        if self.grey:
            coloured = colour > COLOUR_LIMIT  # (B,)
            spread = tf.strings.as_string(colour, precision=1)
            line = tf.strings.join([REASON_PARTS[0], spread, REASON_PARTS[1]])
            in_scope, reason = in_scope & ~coloured, tf.where(coloured, line, reason)
        return ood_score, in_scope, reason

    def caption_words(self, tokens):
        """(B, L) word ids -> (B, L) their words, non-pad first, and (B,) how many."""
        order = tf.argsort(tf.cast(tokens <= 0, tf.int32), 1, stable=True)  # words first
        kept = tf.gather(self.words, tf.gather(tokens, order, batch_dims=1))  # (B, L) strings
        count = tf.reduce_sum(tf.cast(tokens > 0, tf.int32), 1)  # (B,) words in the caption
        return kept, count

    def confidences(self, features, tokens, words, count, located) -> dict:
        """Finding name -> (B,) float64 calibrated confidence of the finding the caption
        states, from the decoder's teacher-forced logits on it."""
        start = tf.fill([tf.shape(tokens)[0], 1], self.start_id)
        inputs = tf.concat([start, tokens[:, :-1]], 1)  # (B, L): <start> + caption, shifted
        steps = self.decoder({**features, "tokens": inputs}, training=False)["logits"]
        return self.findings.confidences(words, count, steps, self.temperatures, located)


class ServingModel(tf.Module):
    """A loaded ``inference.Captioner`` with its search fixed at ``beam`` wide."""

    def __init__(self, captioner, beam: int):
        super().__init__(name="captioning_serving")
        self.model_variables = list(captioner.model.variables)  # tracked: the functions read them
        self.beam = captioner.resolve_beam(beam)
        tset = captioner.tset
        self.sentences = SentenceTable(tset)
        with_findings = bool(captioner.finding_fields)  # the run's set states fields
        self.findings = FindingTable(tset, captioner.vocab.tokens) if with_findings else None
        self.finding_names = list(captioner.finding_fields)
        self.scope_arrays = []  # the scope rule's arrays as variables: saved once

        def store(array):
            self.scope_arrays.append(tf.Variable(array, trainable=False))
            return self.scope_arrays[-1]

        graph = CaptionGraph(captioner, self.beam, self.sentences, self.findings, store)
        files_spec = tf.TensorSpec([None], tf.string, name="images")
        spec = captioner.image_spec  # the run's: files are decoded to it
        pixels_spec = tf.TensorSpec([None, *spec.cache_shape], tf.uint8, name="pixels")

        @tf.function(input_signature=[files_spec])
        def from_files(images):
            pixels, errors, colour = tf_images.decode_images(images, spec)
            return graph(pixels, errors, colour)

        @tf.function(input_signature=[pixels_spec])
        def from_pixels(pixels):
            n = tf.shape(pixels)[0]  # bare pixels: no file, no colour
            return graph(pixels, tf.fill([n], ""), tf.zeros([n], tf.float64))

        self.serving_default = from_files
        self.serving_pixels = from_pixels

    def signatures(self) -> dict:
        """The signatures to save: ``serving_default`` (files) and ``serving_pixels``."""
        return {"serving_default": self.serving_default, "serving_pixels": self.serving_pixels}
