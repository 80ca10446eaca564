"""Caption data for training: the caption table, references as token ids, and the tf.data
pipeline that draws one reference per example and epoch."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import tensorflow as tf

from captioning.captions.templates import load_template_set
from captioning.captions.tokenize import tokenize
from captioning.captions.vocabulary import Vocabulary
from captioning.data.dataset import PreparedData
from captioning.data.image_spec import with_channel_axis
from captioning.data.pipeline import (
    DatasetFn,
    distribution_ready,
    epoch_order,
    eval_slices,
    host_gather,
)
from captioning.data.template_captions import (
    build_captions,
    built_from,
    load_cutpoints,
    read_captions,
)
from captioning.errors import DataError

log = logging.getLogger(__name__)


def caption_frame(data: PreparedData, templates: str) -> pd.DataFrame:
    """The dataset's caption table, built first if missing or stale; rows in manifest order.
    ``templates``: a set name or a path to a ``.toml`` file.

    Stale: written for other images, by another version of the findings, or from another
    content of the template set (its text changed since: its sha256 differs); for a set stating
    acquisition fields, also when its transformed images are missing."""
    tset = load_template_set(templates)
    try:
        frame = read_captions(data.root, tset.name)
    except DataError:
        frame = None
    stale = frame is None or list(frame["path"]) != list(data.manifest["path"])
    if not stale and built_from(data.root, tset.name) != tset.sha256:
        log.info("the '%s' template set changed since its captions were built", tset.name)
        stale = True
    if not stale:
        try:  # DataError: another version of the findings wrote it (or it is gone)
            load_cutpoints(data.root, tset)
            _ = PreparedData(data.root, tset.path).images  # a set's transformed images exist
        except DataError:
            stale = True
    if stale:
        log.info("building '%s' captions for %s", tset.name, data.root)
        build_captions(data.root, templates)
        frame = read_captions(data.root, tset.name)
    return frame


def reference_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("reference_")]


def row_references(frame: pd.DataFrame) -> list[list[str]]:
    """Each row's reference texts. A free-text source may give an image fewer references than
    the table has columns: its empty cells are not references and are left out."""
    cols = reference_columns(frame)
    return [[t for t in row if t] for row in frame[cols].itertuples(index=False)]


def encode_references(frame: pd.DataFrame, vocab: Vocabulary, max_length: int) -> np.ndarray:
    """(N, R, max_length + 1) int32: every reference of every row, ``<start>``-prefixed.

    A row with fewer than R references repeats its own in turn to fill the R slots, so the
    per-epoch draw of one slot always gives one of the image's references (never an empty
    caption); templated captions fill every slot and are encoded unchanged."""
    texts = row_references(frame)
    width = len(reference_columns(frame))
    filled = [[refs[i % len(refs)] if refs else "" for i in range(width)] for refs in texts]
    return np.stack(
        [vocab.encode_batch([row[i] for row in filled], max_length) for i in range(width)],
        axis=1,
    )


def reference_tokens(frame: pd.DataFrame, split=tokenize) -> list[list[list[str]]]:
    """Tokenised references per row, for BLEU (``split``: the source's tokeniser)."""
    return [[split(text) for text in refs] for refs in row_references(frame)]


def caption_dataset_fn(
    inputs: dict[str, np.ndarray],
    references: np.ndarray,
    labels: np.ndarray,
    global_batch: int,
    *,
    training: bool,
    seed: int = 0,
    fields: np.ndarray | None = None,
) -> DatasetFn:
    """``(input_context, epoch) -> Dataset`` of ``(inputs, {"tokens", "label"[, "fields"]})``.

    ``inputs`` are arrays sliced per example: ``pixels`` (N, S, S[, 3]) uint8, or cached features
    (float16) such as ``feature_map`` (N, S, S, C) and ``pooled`` (N, C); each arrives as
    float32 (pixels with a channel axis). ``tokens`` (b, L + 1) is one reference per example:
    drawn per (seed, epoch, example) when training, reference 0 otherwise. The order is the
    loop's seeded per-epoch permutation (``epoch_order``), sharded by input pipeline;
    validation is split by ``eval_slices`` (every worker the same number of batches).
    ``fields`` (N, F) int32, the field heads' targets (``findings.field_ids``), ride along.
    """
    n, n_refs = references.shape[:2]
    extra = {} if fields is None else {"_fields": fields}
    # the arrays stay in numpy: a batch's rows are gathered on the host (no second copy)
    rows_of = host_gather({**inputs, "_references": references, "_label": labels, **extra})

    def gather(indices, choice):
        rows = rows_of(indices)
        refs, label = rows.pop("_references"), rows.pop("_label")  # (b, R, L + 1), (b,)
        targets = {"fields": rows.pop("_fields")} if fields is not None else {}  # (b, F)
        x = {k: tf.cast(v, tf.float32) for k, v in rows.items()}
        if "pixels" in x:
            x["pixels"] = with_channel_axis(x["pixels"])  # (b, S, S, C)
        tokens = tf.gather(refs, choice, batch_dims=1)  # (b, L + 1)
        return x, {"tokens": tokens, "label": label, **targets}

    def dataset_fn(context: tf.distribute.InputContext, epoch: int = 0) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch)
        if training:
            order = epoch_order(n, seed, epoch)
            choice = np.random.default_rng([seed, epoch, 1]).integers(0, n_refs, n)[order]
            shard = slice(context.input_pipeline_id, None, context.num_input_pipelines)
            ds = tf.data.Dataset.from_tensor_slices((order[shard], choice[shard]))
            ds = ds.batch(batch, drop_remainder=True)
        else:  # the same number of batches on every worker, some short or empty
            ds = tf.data.Dataset.from_tensor_slices(eval_slices(n, global_batch, context))
            ds = ds.map(
                lambda start, stop: (
                    tf.range(start, stop, dtype=tf.int64),
                    tf.zeros([stop - start], tf.int64),
                )
            )
        return distribution_ready(ds.map(gather))

    return dataset_fn
