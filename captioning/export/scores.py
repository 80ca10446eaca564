"""The out-of-scope score and the calibrated class probability in TensorFlow ops, for the
exported serving model.

Twins of numpy code (``captioning.scope``'s ``Scope.scores`` and ``Scope.reasons``, and
``inference``'s ``Captioner.confidences`` for the class): the SavedModel runs without this
package, so it cannot call them; the CLI keeps numpy because the scope is also fitted and
evaluated on arrays outside any graph. tests/test_export.py (``test_tf_scores_equal_numpy``)
checks that the two agree for every scope method.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from captioning.scope.evidence import VIEWS
from captioning.scope.gaussian import REASONS


def gaussian_ratios_fn(stats: dict):
    """evidence -> (B, 3) float64: ``captioning.scope.gaussian.ratios`` in TensorFlow ops."""
    views = []
    for v in VIEWS:
        roots = stats[f"{v}_roots"].astype(np.float64)  # (K, D, D)
        centres = np.einsum("kd,kde->ke", stats[f"{v}_means"], roots)  # (K, D)
        views.append((v, tf.constant(roots), tf.constant(centres)))
    limits = tf.constant(stats["limits"].astype(np.float64))  # (K, 3)

    def ratios(evidence):
        given = tf.argmax(evidence["logits"], 1)  # (B,)
        columns = []
        for v, roots, centres in views:
            x = tf.cast(evidence[v], tf.float64)  # (B, D)
            z = tf.einsum("bd,kde->bke", x, roots) - centres[None]  # (B, K, D) whitened
            d2 = tf.reduce_sum(z**2, 2)  # (B, K)
            columns.append(tf.gather(d2, given, batch_dims=1))  # the predicted class's
        out = tf.stack(columns, 1) / tf.gather(limits, given)  # (B, 3)
        return tf.where(tf.math.is_nan(out), tf.constant(np.inf, tf.float64), out)

    return ratios


def scope_reason_fn(scope, class_names):
    """(evidence, ratios or None) -> (B,) string: ``Scope.reasons`` in TensorFlow ops ('' where
    in scope)."""
    names = tf.constant(list(class_names))
    if scope.method != "gaussian":
        line = f"its {scope.method} score is above the run's limit"
        return lambda score, evidence: tf.where(score <= scope.threshold, "", line)
    phrases = tf.constant([REASONS[v] for v in VIEWS])
    ratios_of = gaussian_ratios_fn(scope.gaussians)

    def reason(score, evidence):
        ratios = ratios_of(evidence)  # (B, 3)
        worst = tf.argmax(ratios, 1)
        name = tf.gather(names, tf.argmax(evidence["logits"], 1))
        line = tf.strings.join(
            [
                tf.gather(phrases, worst),
                " are unlike the training images of ",
                name,
                " (",
                tf.strings.as_string(tf.reduce_max(ratios, 1), precision=1),
                "x the farthest distance kept)",
            ]
        )
        untrained = tf.strings.join(["the model has no training images of ", name])
        line = tf.where(tf.math.is_inf(score), untrained, line)
        return tf.where(score <= scope.threshold, "", line)

    return reason


def scope_score_fn(scope):
    """evidence (``pooled`` (B, C), ``logits`` (B, K) and the gaussian rule's views) -> (B,)
    float64 out-of-scope score of the run's method, as ``Scope.scores`` computes it; None for
    a run without a scope."""
    if scope is None:
        return None
    if scope.method == "gaussian":
        ratios = gaussian_ratios_fn(scope.gaussians)
        return lambda evidence: tf.reduce_max(ratios(evidence), 1)
    if scope.method == "mahalanobis":
        # d2(x, mean) = |x R|^2 - 2 (x R).(mean R) + |mean R|^2 with R R^T = precision
        root = np.linalg.cholesky((scope.precision + scope.precision.T) / 2)  # (C, C)
        centres = scope.means @ root  # (K', C)
        root_t, centres_t = tf.constant(root), tf.constant(centres)
        norms = tf.constant((centres**2).sum(1)[None, :])  # (1, K')

        def mahalanobis(evidence):
            z = tf.matmul(tf.cast(evidence["pooled"], tf.float64), root_t)  # (B, C)
            d2 = tf.reduce_sum(z**2, 1, keepdims=True) - 2 * tf.matmul(z, centres_t, False, True)
            return tf.maximum(tf.reduce_min(d2 + norms, 1), 0.0)  # nearest class mean

        return mahalanobis
    if scope.method == "msp":

        def msp(evidence):
            z = tf.cast(evidence["logits"], tf.float64)  # (B, K)
            return 1.0 - tf.exp(tf.reduce_max(z, 1) - tf.reduce_logsumexp(z, 1))

        return msp
    return lambda evidence: -tf.reduce_logsumexp(tf.cast(evidence["logits"], tf.float64), 1)


def class_probability(logits, temperature: float):
    """(B, K) logits -> (B,) float64 probability of the predicted class at ``temperature``."""
    return tf.reduce_max(tf.nn.softmax(tf.cast(logits, tf.float64) / temperature), 1)
