"""tf.data input pipelines over the decoded image cache: no JPEG is decoded during training.

Shuffling is a seeded permutation per epoch (the same on every worker, so sharding splits one
order; and the same after a resume, so a resumed run sees the batches it would have seen).
Batches are gathered from the in-memory uint8 images on the host (``host_gather``), augmented
(``augment.RandomAffine``, one warp per image), and prefetched while the model trains on the
previous batch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from captioning.config import AugmentConfig
from captioning.data.augment import build_augmenter
from captioning.data.image_spec import with_channel_axis

DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def host_gather(arrays: dict[str, np.ndarray]) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """``indices (b,) -> {name: rows (b, ...)}`` of numpy arrays, gathered on the host inside
    the input pipeline (``tf.numpy_function``); each output keeps its array's dtype and row shape.

    Why not ``tf.constant(array)`` and ``tf.gather``: the constant is a second copy of the whole
    array (and, while it is made, a third): about 1 GiB more for the captioner's cached features
    of 42k images. Gathering a batch's rows from numpy costs microseconds per batch.
    """
    names = list(arrays)
    held = _HeldArrays([arrays[name] for name in names])
    dtypes = [tf.as_dtype(v.dtype) for v in held.values]
    # TensorFlow keeps every function given to ``numpy_function`` for the life of the process
    # (on its global graph), so ``take`` reaches the arrays through a weak reference; the
    # datasets that map ``gather`` hold them, and they are freed with the last such dataset.
    weak = weakref.ref(held)

    def take(indices: np.ndarray) -> list[np.ndarray]:
        return [v[indices] for v in weak().values]

    def gather(indices: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = tf.numpy_function(take, [indices], dtypes, stateful=False)
        for tensor, value in zip(rows, held.values, strict=True):
            tensor.set_shape((None, *value.shape[1:]))
        return dict(zip(names, rows, strict=True))

    return gather


class _HeldArrays:
    """The arrays of one ``host_gather`` (an object, so that it can be weakly referenced)."""

    def __init__(self, values: list[np.ndarray]):
        self.values = values


def make_dataset_fn(
    images: np.ndarray,
    targets: dict[str, np.ndarray] | np.ndarray,
    global_batch: int,
    *,
    training: bool,
    seed: int = 0,
    augment: AugmentConfig | None = None,
) -> DatasetFn:
    """A function ``(input_context, epoch) -> tf.data.Dataset`` of ``(pixels, targets)``.

    ``pixels`` is (b, 64, 64, 1) float32 in 0..255 with b the per-replica batch; ``targets``
    keeps the structure given (an array or a dict of arrays, sliced alongside the images).
    Training drops the last partial batch (a fixed global batch keeps the loss scale exact);
    evaluation keeps every sample (see ``eval_slices`` for how it is split across workers).
    ``augment`` applies to training batches; its layers are
    built afresh each epoch, seeded by (seed, epoch), and run in order, so an epoch's
    augmentation is the same in an uninterrupted run and in a resumed one.
    """
    n = len(images)
    flat_targets = tf.nest.flatten(targets)
    rows_of = host_gather({"pixels": images, **{str(i): t for i, t in enumerate(flat_targets)}})

    def gather(indices):
        rows = rows_of(indices)
        pixels = with_channel_axis(tf.cast(rows.pop("pixels"), tf.float32))  # (b, S, S, C)
        return pixels, tf.nest.pack_sequence_as(targets, [rows[str(i)] for i in range(len(rows))])

    def dataset_fn(context: tf.distribute.InputContext, epoch: int = 0) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch)
        if training:
            # Worker p takes every P-th sample of the epoch's order, so step i's global batch
            # is order[i*G:(i+1)*G] whatever the number of workers and replicas.
            order = epoch_order(n, seed, epoch)
            order = order[context.input_pipeline_id :: context.num_input_pipelines]
            ds = tf.data.Dataset.from_tensor_slices(order).batch(batch, drop_remainder=True)
        else:
            ds = tf.data.Dataset.from_tensor_slices(eval_slices(n, global_batch, context))
            ds = ds.map(lambda start, stop: tf.range(start, stop, dtype=tf.int64))
        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        augmenter = build_augmenter(augment, seed * 10_000 + epoch) if augment else None
        if training and augmenter is not None:
            # Sequential on purpose: random ops in a parallel map draw in a racy order.
            ds = ds.map(lambda x, y: (augmenter(x, training=True), y))
        return distribution_ready(ds)

    return dataset_fn


def distribution_ready(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Options every pipeline here needs, then prefetch: our datasets shard themselves (by
    ``input_pipeline_id``), so tf.distribute must not shard again; order is deterministic;
    tf.data's autotuning is off (below)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    # No autotuning thread (AUTOTUNE parallelism and buffer then keep tf.data's static
    # defaults). With it, deleting an epoch's iterator blocked for ~10 s in about one epoch in
    # two (the loop's ``input_teardown`` phase: 10 s of a 60 s classifier fit on 2 cores;
    # 0.005 s without it), and the input wait was the same either way.
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def eval_slices(
    n: int, global_batch: int, context: tf.distribute.InputContext
) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) of every per-replica evaluation batch this input pipeline feeds.

    Evaluation step i covers samples [i*G, (i+1)*G); replica k of the R replicas in sync gets
    its k-th slice of b = G/R samples. Every pipeline yields the same number of batches,
    ceil(n/G) per local replica, some of them short or empty at the end: every worker runs
    the same number of steps (its collectives never wait on a finished peer) and every
    sample is counted once.
    """
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    batch = global_batch // replicas
    steps = -(-n // global_batch)
    first = context.input_pipeline_id * local
    starts = np.array(
        [(i * replicas + first + r) * batch for i in range(steps) for r in range(local)],
        dtype=np.int64,
    ).clip(0, n)
    return starts, np.minimum(starts + batch, n)


def steps_per_epoch(n: int, global_batch: int, limit: int | None = None) -> int:
    """Training steps in one epoch (partial batch dropped), capped by ``limit``."""
    steps = max(n // global_batch, 1)
    return min(steps, limit) if limit else steps
