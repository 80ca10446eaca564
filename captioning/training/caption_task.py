"""The captioning objective for the training loop, and the validation metrics of greedy captions
(BLEU-4, and the class and findings read back from them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from captioning.captions.readback import findings_scores
from captioning.captions.tokenize import tokenize
from captioning.captions.vocabulary import Vocabulary
from captioning.decoding import CaptionSearch, DecodingRules
from captioning.metrics import corpus_bleu
from captioning.metrics.cider import CiderD
from captioning.training import timing


def word_weights(vocab: Vocabulary, words, weight: float) -> np.ndarray:
    """(V,) float32 loss weight per vocabulary id: ``weight`` for ``words``, 1 for the rest."""
    out = np.ones(len(vocab), np.float32)
    for word in words:
        if word in vocab.index:
            out[vocab.index[word]] = weight
    return out


def field_words(template_set) -> set[str]:
    """The words of the set's finding phrases (``small``, ``abundant``, ``high-signal``, ...):
    the words a caption states its findings with."""
    return {
        token
        for values in template_set.phrases.values()
        for phrases in values.values()
        for phrase in phrases
        for token in tokenize(phrase)
    }


class CaptionTask:
    """Masked caption cross-entropy (+ attention penalty, + weighted class and field
    cross-entropies); the monitored validation metric (``monitor``) comes from ``validate_fn``.

    ``word_weights`` (V,): each target word's cross-entropy is scaled by its weight, and a
    caption's loss is the weighted mean over its words. Upweighting the finding words makes
    the decoder pay for a wrong finding, which otherwise costs about as much as choosing
    another of the references' equivalent phrasings.

    ``labelled`` False: the images have no class label of the head's classes (a caption file
    without them): no class loss and no accuracy.

    ``field_sizes`` (the decoder's field heads): ``field_weight`` x the sum over fields of
    each head's cross-entropy on the image's value (``targets["fields"]``, -1: none stated,
    no loss) joins the loss; ``field_accuracy`` is the heads' share of right values."""

    def __init__(
        self,
        *,
        attention_penalty: float = 0.0,
        class_weight: float = 0.0,
        validate_fn=None,
        monitor: str = "findings",  # the captioner config's default
        word_weights=None,
        labelled: bool = True,
        field_sizes: tuple[int, ...] = (),
        field_weight: float = 0.0,
    ):
        self.attention_penalty, self.class_weight = attention_penalty, class_weight
        self.field_sizes, self.field_weight = tuple(field_sizes), field_weight
        self.labelled = labelled
        self.validate_fn, self.monitor = validate_fn, monitor
        self.word_weights = None if word_weights is None else tf.constant(word_weights)

    def loss_and_stats(self, model, batch, training: bool):
        """Per-example loss (b,) and the summed statistics of one replica's batch (see
        ``loop.Task``): losses, words, correctly predicted words and, when labelled, classes."""
        inputs, targets = batch
        tokens = targets["tokens"]  # (b, L + 1): <start> w1 .. <end> <pad>..
        out = model({**inputs, "tokens": tokens[:, :-1]}, training=training)
        target = tokens[:, 1:]  # (b, L)
        mask = tf.cast(tf.not_equal(target, 0), tf.float32)  # padding counts for nothing
        logits = out["caption_logits"]  # (b, L, V)
        cross = tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits)  # (b, L)
        words = tf.reduce_sum(mask, 1)  # (b,)
        if self.word_weights is None:
            caption_loss = tf.reduce_sum(cross * mask, 1) / tf.maximum(words, 1.0)  # (b,)
        else:
            weighted = tf.gather(self.word_weights, target) * mask  # (b, L)
            caption_loss = tf.reduce_sum(cross * weighted, 1) / tf.maximum(
                tf.reduce_sum(weighted, 1), 1e-6
            )
        per_example = caption_loss
        if self.attention_penalty and "attention" in out:
            # doubly stochastic attention: each position's attention summed over the words
            # should be its equal share, words / P (Xu et al. ask for 1, which a caption of
            # fewer words than positions cannot reach)
            coverage = tf.reduce_sum(out["attention"] * mask[..., None], 1)  # (b, P)
            share = words[:, None] / tf.cast(tf.shape(coverage)[1], tf.float32)  # (b, 1)
            per_example += self.attention_penalty * tf.reduce_mean((share - coverage) ** 2, -1)
        correct_words = tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=target.dtype), target), tf.float32
        )
        stats = {
            "loss": tf.reduce_sum(per_example),
            "caption_loss": tf.reduce_sum(caption_loss),
            "words": tf.reduce_sum(words),
            "correct_words": tf.reduce_sum(correct_words * mask),
            "count": tf.cast(tf.shape(target)[0], tf.float32),
        }
        if "field_logits" in out:
            field_loss, right, stated = self._field_terms(out["field_logits"], targets["fields"])
            per_example += self.field_weight * field_loss
            stats.update(loss=tf.reduce_sum(per_example), field_right=right, field_stated=stated)
        if "class_logits" in out and self.labelled:
            labels = targets["label"]
            class_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, out["class_logits"])
            if self.class_weight:
                per_example += self.class_weight * class_loss
                stats["loss"] = tf.reduce_sum(per_example)
            predicted = tf.argmax(out["class_logits"], -1, output_type=labels.dtype)
            stats["correct"] = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32))
        return per_example, stats

    def _field_terms(self, logits, values):
        """The field heads' summed cross-entropy per example (b,), and how many of the (b, F)
        stated values they got right and how many there were. ``logits`` (b, sum(sizes)),
        ``values`` (b, F) int32 with -1 where none is stated."""
        groups = tf.split(logits, list(self.field_sizes), axis=-1)  # F x (b, n_f)
        loss, right = 0.0, 0.0
        stated = tf.cast(values >= 0, tf.float32)  # (b, F)
        for j, group in enumerate(groups):
            value = tf.maximum(values[:, j], 0)
            cross = tf.nn.sparse_softmax_cross_entropy_with_logits(value, group)  # (b,)
            loss += cross * stated[:, j]
            hit = tf.equal(tf.argmax(group, -1, output_type=value.dtype), value)
            right += tf.reduce_sum(tf.cast(hit, tf.float32) * stated[:, j])
        return loss, right, tf.reduce_sum(stated)

    def summarize(self, sums):
        """Mean losses per caption, word accuracy, class accuracy when labelled, and the field
        heads' accuracy when the model has them."""
        count = max(sums.get("count", 0.0), 1.0)
        metrics = {
            "loss": sums.get("loss", 0.0) / count,
            "caption_loss": sums.get("caption_loss", 0.0) / count,
            "word_accuracy": sums.get("correct_words", 0.0) / max(sums.get("words", 0.0), 1.0),
        }
        if "correct" in sums:
            metrics["accuracy"] = sums["correct"] / count
        if "field_stated" in sums:
            metrics["field_accuracy"] = sums["field_right"] / max(sums["field_stated"], 1.0)
        return metrics

    def validate(self, model) -> dict:
        """The metrics of generated captions (``validate_fn``), or none."""
        return self.validate_fn(model) if self.validate_fn else {}


class BleuValidator:
    """Greedy captions for the validation images: their corpus BLEU-4 against all references
    (``bleu4``), their CIDEr-D (``cider``, when ``cider`` is set: the free-text monitor) and,
    given ``truth`` (columns class, quality and the set's findings, one row per image) and the
    ``template_set``, what parse-back reads from them: ``class_accuracy``,
    ``<field>_accuracy`` per finding (on the diagnostic images), ``findings`` (the mean of
    class and finding accuracies) and ``all_right`` (share of captions with everything right).
    ``features_of(model)`` gives the encoder features of those images."""

    def __init__(
        self,
        features_of,
        references,
        vocab: Vocabulary,
        max_length: int,
        batch=1024,
        *,
        truth: pd.DataFrame | None = None,
        template_set=None,
        rules: DecodingRules | None = None,
        cider: bool = False,
    ):
        self.features_of, self.references = features_of, references
        # the references' CIDEr-D statistics, built once for every epoch's captions
        self.cider = CiderD(references) if cider else None
        self.rules = rules  # the run's decoding rules: validation scores what inference writes
        self.vocab, self.max_length, self.batch = vocab, max_length, batch
        self.truth, self.template_set = truth, template_set
        self._searches: dict[tuple[int, float | None], CaptionSearch] = {}

    def search_for(self, model, length_alpha: float | None = None) -> CaptionSearch:
        """The search on ``model``'s decoder (``length_alpha`` None: the default), made once
        per model and alpha (tracing is slow)."""
        key = (id(model), length_alpha)
        if key not in self._searches:
            alpha = {} if length_alpha is None else {"length_alpha": length_alpha}
            self._searches = {k: v for k, v in self._searches.items() if k[0] == id(model)}
            self._searches[key] = CaptionSearch(
                model.get_layer("decoder"),
                start_id=self.vocab.start_id,
                end_id=self.vocab.end_id,
                max_length=self.max_length,
                rules=self.rules,
                unk_id=self.vocab.unk_id,
                **alpha,
            )
        return self._searches[key]

    def __call__(self, model) -> dict:
        return self.score(model)

    def score(self, model, width: int = 1, length_alpha: float | None = None) -> dict:
        """The metrics of the captions ``model`` writes for the validation images: greedy
        (``width`` 1, what each epoch is scored by), else beam search ``width`` wide."""
        search = self.search_for(model, length_alpha)
        with timing.phase("validation_features"):  # stage 2: the encoder on every image
            features = self.features_of(model)
        n = len(self.references)
        hyps = []
        with timing.phase("greedy_decoding"):
            for i in range(0, n, self.batch):
                part = {
                    k: tf.constant(v[i : i + self.batch], tf.float32) for k, v in features.items()
                }
                found = search.greedy(part) if width == 1 else search.beam(part, width)
                hyps += [self.vocab.decode_tokens(row) for row in found.tokens]
        with timing.phase("caption_metrics"):
            metrics = {"bleu4": corpus_bleu(hyps, self.references)[3]}
            if self.cider is not None:
                metrics["cider"] = self.cider.score(hyps)
            if self.truth is not None:
                metrics.update(
                    findings_metrics([" ".join(h) for h in hyps], self.truth, self.template_set)
                )
        return metrics


def findings_metrics(captions: list[str], truth: pd.DataFrame, template_set) -> dict:
    """Class and findings accuracy read back from ``captions`` (see ``BleuValidator``)."""
    scores = findings_scores(captions, truth.reset_index(drop=True), template_set)
    out = {"class_accuracy": float(np.mean(scores["class"]))}
    for name in template_set.fields:
        right, where = scores[name]
        out[f"{name}_accuracy"] = float(np.mean(right[where])) if where.any() else 1.0
    out["findings"] = float(
        np.mean([out["class_accuracy"]] + [out[f"{f}_accuracy"] for f in template_set.fields])
    )
    out["all_right"] = float(np.mean(scores["all"]))
    return out
