"""The training loop's compiled steps: one training step and one evaluation step of a ``Task``
under ``tf.distribute``, each returning the statistics summed over every replica.

Each replica's loss is scaled by the *global* batch (``tf.nn.compute_average_loss``) and the
Keras optimizer all-reduces (sums) the gradients, so N replicas take the step one device would
take on the same global batch.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from captioning.config import TrainConfig
from captioning.data.pipeline import DatasetFn


class Steps(NamedTuple):
    """The compiled steps: ``train(batch)`` applies gradients, ``eval(batch)`` does not; both
    return ``{name: summed statistic}`` over the replicas."""

    train: object
    eval: object


def compile_steps(task, model, optimizer, strategy, config: TrainConfig) -> Steps:
    """The ``tf.function`` steps of ``task`` on ``model`` (built in ``strategy.scope()``)."""
    global_batch = config.batch_size

    def train_step_fn(batch):
        with tf.GradientTape() as tape:
            per_example, stats = task.loss_and_stats(model, batch, training=True)  # (b,), sums
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return stats

    def eval_step_fn(batch):
        return task.loss_and_stats(model, batch, training=False)[1]

    def summed(stats):
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in stats.items()
        }

    @tf.function(jit_compile=jit_compile(config, strategy))
    def train_step(batch):
        return summed(strategy.run(train_step_fn, args=(batch,)))

    @tf.function(reduce_retracing=True)  # the last evaluation batches are shorter
    def eval_step(batch):
        return summed(strategy.run(eval_step_fn, args=(batch,)))

    return Steps(train_step, eval_step)


def jit_compile(config: TrainConfig, strategy: tf.distribute.Strategy) -> bool:
    """Whether to compile the train step with XLA: ``train.jit_compile`` on one replica (the
    optimizer's cross-replica merge of several replicas cannot run inside XLA)."""
    return config.jit_compile and strategy.num_replicas_in_sync == 1


def accumulate(sums: dict[str, float], stats) -> dict[str, float]:
    """``sums`` plus one step's statistics, read back as Python floats (so the step is done)."""
    return {k: sums.get(k, 0.0) + float(v) for k, v in stats.items()}


def evaluate(eval_step, strategy, val_fn: DatasetFn, task, max_batches: int | None):
    """The task's metrics over the whole validation set (or its first ``max_batches``)."""
    sums: dict[str, float] = {}
    for i, batch in enumerate(
        strategy.distribute_datasets_from_function(lambda ctx: val_fn(ctx, 0))
    ):
        if max_batches is not None and i >= max_batches:
            break
        sums = accumulate(sums, eval_step(batch))
    return task.summarize(sums)
