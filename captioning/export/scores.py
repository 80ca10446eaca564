"""The out-of-scope score and the calibrated class probability in TensorFlow ops, for the
exported serving model.

Twins of numpy code (``captioning.scope``'s ``Scope.scores`` and ``inference``'s
``Captioner.confidences`` for the class): the SavedModel runs without this package, so
it cannot call them; the CLI keeps numpy because the scope is also fitted and evaluated on
arrays outside any graph. tests/test_export.py (``test_tf_scores_equal_numpy``) checks that
the two agree for every scope method.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def scope_score_fn(scope):
    """(pooled (B, C), logits (B, K)) -> (B,) float64 out-of-scope score of the run's method,
    as ``Scope.scores`` computes it; None for a run without a scope."""
    if scope is None:
        return None
    if scope.method == "mahalanobis":
        # d2(x, mean) = |x R|^2 - 2 (x R).(mean R) + |mean R|^2 with R R^T = precision
        root = np.linalg.cholesky((scope.precision + scope.precision.T) / 2)  # (C, C)
        centres = scope.means @ root  # (K', C)
        root_t, centres_t = tf.constant(root), tf.constant(centres)
        norms = tf.constant((centres**2).sum(1)[None, :])  # (1, K')

        def mahalanobis(pooled, logits):
            z = tf.matmul(tf.cast(pooled, tf.float64), root_t)  # (B, C)
            d2 = tf.reduce_sum(z**2, 1, keepdims=True) - 2 * tf.matmul(z, centres_t, False, True)
            return tf.maximum(tf.reduce_min(d2 + norms, 1), 0.0)  # nearest class mean

        return mahalanobis
    if scope.method == "msp":

        def msp(pooled, logits):
            z = tf.cast(logits, tf.float64)  # (B, K)
            return 1.0 - tf.exp(tf.reduce_max(z, 1) - tf.reduce_logsumexp(z, 1))

        return msp
    return lambda pooled, logits: -tf.reduce_logsumexp(tf.cast(logits, tf.float64), 1)  # energy


def class_probability(logits, temperature: float):
    """(B, K) logits -> (B,) float64 probability of the predicted class at ``temperature``."""
    return tf.reduce_max(tf.nn.softmax(tf.cast(logits, tf.float64) / temperature), 1)
