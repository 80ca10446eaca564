"""Choosing the tf.distribute strategy, who is the chief, and what to say when a worker is lost.

``auto``: multi-worker when ``TF_CONFIG`` names a cluster, mirrored when several GPUs are
visible, else the default (one device) strategy. The training loop is the same for all three.

A lost worker is noticed by TensorFlow itself: the coordination service (hosted by worker 0)
stops hearing the dead task's heartbeats after about 10 s and aborts every collective, and a
worker whose peer's connection drops mid-collective fails at once. Collectives that merely
wait on a live but stuck peer give up after ``timeout_seconds``. ``lost_worker_message`` turns
the resulting error into one line that names the lost task.
"""

from __future__ import annotations

import json
import os
import re

import tensorflow as tf

from captioning.config import STRATEGIES
from captioning.errors import RunError


class WorkerLostError(RunError):
    """Another worker of a multi-worker run died or stopped answering."""


# What a collective raises when a peer is gone (dead process, dropped link) or stuck (timeout).
LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.InternalError,
)


def tf_config() -> dict:
    """``$TF_CONFIG`` parsed ({} when unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise RunError(f"$TF_CONFIG is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise RunError("$TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return value


def cluster_spec() -> dict:
    """The ``cluster`` part of ``$TF_CONFIG`` ({} when unset)."""
    return tf_config().get("cluster", {})


def make_strategy(name: str = "auto", timeout_s: float | None = None) -> tf.distribute.Strategy:
    """Build the strategy called ``name`` (one of ``STRATEGIES``).

    ``mirrored`` uses every GPU, or every logical CPU device when there is no GPU and the CPU
    was split (``tf.config.set_logical_device_configuration``). ``timeout_s`` bounds each
    collective of a multi-worker run (a peer that is alive but stuck)."""
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
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        spec = tf_config()
        if not spec.get("cluster") or not spec.get("task"):
            raise RunError("strategy 'multiworker' needs $TF_CONFIG naming the cluster and task")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise RunError(f"unknown strategy '{name}' (known: {', '.join(STRATEGIES)})")


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The ``train.strategy`` value that builds this kind of strategy (for run.json)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"


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


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    """True when the strategy spans several processes (collectives go over the network)."""
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_multi_worker_mode and in_multi_worker_mode())


_TASK = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")


def lost_worker_message(err: Exception, strategy: tf.distribute.Strategy) -> str:
    """One line naming the task(s) the error blames (never this process), with addresses."""
    resolver = getattr(strategy, "cluster_resolver", None)
    me = (resolver.task_type, int(resolver.task_id)) if resolver is not None else None
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    text = str(err)
    lost = []
    for job, task in _TASK.findall(text):
        key = (job, int(task))
        if key != me and key not in lost:
            lost.append(key)
    if not lost:  # nobody named: with one peer it can only be that one
        peers = [(job, i) for job, tasks in cluster.items() for i in range(len(tasks))]
        lost = [p for p in peers if p != me]

    def name(job, task):
        tasks = cluster.get(job, [])
        address = tasks[task] if isinstance(tasks, list) and task < len(tasks) else "?"
        return f"{job} {task} ({address})"

    if "unhealthy" in text or "heartbeat" in text:
        cause = "stopped sending heartbeats"
    elif isinstance(err, tf.errors.DeadlineExceededError) or "timed out" in text.lower():
        cause = "did not answer within the collective timeout"
    elif "reset by peer" in text or "Connection refused" in text or "Socket closed" in text:
        cause = "dropped its connection"
    else:
        cause = f"{type(err).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"
    who = " and ".join(name(*k) for k in lost) or "another worker"
    mine = f" ({me[0]} {me[1]})" if me else ""
    return (
        f"lost {who}: it {cause}; this worker{mine} stopped. Rerun the same command on every "
        "worker to resume from the chief's last checkpoint"
    )
