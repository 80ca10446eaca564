"""Choosing the tf.distribute strategy, and who is the chief.

``auto``: multi-worker when ``TF_CONFIG`` names a cluster, mirrored when several GPUs are
visible, else the default (one device) strategy. The training loop is the same for all three.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from captioning.errors import RunError


def cluster_spec() -> dict:
    """The ``cluster`` part of ``$TF_CONFIG`` ({} when unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        return json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as err:
        raise RunError(f"$TF_CONFIG is not valid JSON ({err})") from None


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Build the strategy called ``name`` (auto, default, mirrored, multiworker)."""
    if name == "auto":
        workers = sum(len(v) for v in cluster_spec().values())
        if workers > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not cluster_spec():
            raise RunError("strategy 'multiworker' needs $TF_CONFIG naming the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise RunError(f"unknown strategy '{name}'")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes the run folder (the only process, outside of
    multi-worker training; else the 'chief' task, or worker 0 when no chief is named)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
