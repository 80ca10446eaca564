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

from captioning.scope import RULES
from captioning.scope.evidence import VIEWS
from captioning.scope.gaussian import REASONS
from captioning.scope.neighbours import NEAR_VIEWS, stored_bank


def _class_gaussian_fn(means: np.ndarray, roots: np.ndarray, store):
    """(x (B, D), given (B,)) -> (B,) float64: ``gaussian.class_distances`` in TensorFlow ops."""
    roots = roots.astype(np.float64)  # (K, D, D)
    centres = store(np.einsum("kd,kde->ke", means, roots))  # (K, D)
    roots = store(roots)

    def distances(x, given):
        z = tf.einsum("bd,kde->bke", tf.cast(x, tf.float64), roots) - centres[None]  # (B, K, D)
        return tf.gather(tf.reduce_sum(z**2, 2), given, batch_dims=1)  # the given class's

    return distances


def _nearest_fn(stats: dict, view: str, store):
    """(x (B, D), given (B,)) -> (B,) float64: ``neighbours.project`` then
    ``neighbours.nearest_distances`` in TensorFlow ops."""
    centre = store(stats[f"near_{view}_centre"].astype(np.float64))  # (D,)
    basis = store(stats[f"near_{view}_basis"].astype(np.float64))  # (D, m)
    bank, scale = stored_bank(stats, view)  # (M, m) int8 (float16 before): kept so (smaller)
    scale = np.asarray(scale, np.float64)  # (m,) or 1
    norms = store(((bank.astype(np.float64) * scale) ** 2).sum(1))  # (M,)
    bank, labels = store(bank), store(stats["near_labels"].astype(np.int64))
    scale = tf.constant(scale)

    def distances(x, given):
        x = tf.cast(x, tf.float64)
        length = tf.norm(x, axis=1, keepdims=True)
        z = (x / tf.where(length > 0, length, 1.0) - centre) @ basis  # (B, m)
        cross = (z * scale) @ tf.transpose(tf.cast(bank, tf.float64))  # (B, M): z . (bank*scale)
        d2 = tf.reduce_sum(z**2, 1, keepdims=True) - 2 * cross + norms[None]
        d2 = tf.where(given[:, None] == labels[None], d2, tf.constant(np.inf, tf.float64))
        return tf.maximum(tf.reduce_min(d2, 1), 0.0)  # the nearest image of the given class

    return distances


def rule_ratios_fn(scope, store=tf.constant):
    """evidence -> (B, 3) float64: ``RULES[scope.method].ratios`` in TensorFlow ops, for the
    ``gaussian`` and ``neighbours`` rules; ``store`` turns each of the rule's arrays into a
    tensor (``judge_fn``)."""
    stats = scope.arrays
    if scope.method == "gaussian":
        columns = [
            _class_gaussian_fn(stats[f"{v}_means"], stats[f"{v}_roots"], store) for v in VIEWS
        ]
    else:
        columns = [_nearest_fn(stats, v, store) for v in NEAR_VIEWS]
    views = RULES[scope.method].VIEWS
    limits = store(stats[RULES[scope.method].LIMITS].astype(np.float64))  # (K, 3)

    def ratios(evidence):
        given = tf.argmax(evidence["logits"], 1)  # (B,)
        x = [evidence[v.removeprefix("near_")] for v in views]
        distances = tf.stack([f(xv, given) for f, xv in zip(columns, x, strict=True)], 1)
        out = distances / tf.gather(limits, given)  # (B, 3)
        return tf.where(tf.math.is_nan(out), tf.constant(np.inf, tf.float64), out)

    return ratios


def judge_fn(scope, class_names, store=tf.constant):
    """evidence (``pooled`` (B, C), ``logits`` (B, K) and the rules' views) -> ((B,) float64
    out-of-scope score, (B,) one-line reason, '' where in scope): ``Scope.scores`` and
    ``Scope.reasons`` in TensorFlow ops, the rule's ratios computed once. ``store`` turns each
    of a rule's arrays into a tensor: the SavedModel passes one that keeps them as variables,
    saved once however many signatures read them (constants are copied into each)."""
    if scope.method not in RULES:
        score_of = _plain_score_fn(scope)
        line = f"its {scope.method} score is above the run's limit"

        def judge_plain(evidence):
            score = score_of(evidence)
            return score, tf.where(score <= scope.threshold, "", line)

        return judge_plain
    names = tf.constant(list(class_names))
    phrases = tf.constant([REASONS[v] for v in RULES[scope.method].VIEWS])
    ratios_of = rule_ratios_fn(scope, store)

    def judge(evidence):
        ratios = ratios_of(evidence)  # (B, 3)
        score = tf.reduce_max(ratios, 1)
        name = tf.gather(names, tf.argmax(evidence["logits"], 1))
        line = tf.strings.join(
            [
                tf.gather(phrases, tf.argmax(ratios, 1)),
                " are unlike the training images of ",
                name,
                " (",
                tf.strings.as_string(score, precision=1),
                "x the farthest distance kept)",
            ]
        )
        untrained = tf.strings.join(["the model has no training images of ", name])
        line = tf.where(tf.math.is_inf(score), untrained, line)
        return score, tf.where(score <= scope.threshold, "", line)

    return judge


def _plain_score_fn(scope):
    """evidence -> (B,) float64 score of the ``mahalanobis``, ``msp`` or ``energy`` method."""
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
