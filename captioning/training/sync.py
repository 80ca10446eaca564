"""Keeping the processes of a multi-worker run in step, over the collectives themselves.

``from_first_replica`` broadcasts values held by replica 0 (the chief's) to every replica: a
resumed run restores the chief's checkpoint on the chief and sends the variables and loop
counters to the other workers, so they need no access to the chief's run folder (hosts
without a shared filesystem resume too) and can never start from a different epoch.
``text_from_first_replica`` does the same for a string (a resumed run's ``TrainingState`` as
JSON: its best metrics and their epoch drive patience and the captioner's stage choice).
``agree`` checks that every worker runs the same experiment (each config setting, the data,
...) before any model is built, and names what differs; a mismatch would otherwise hang or
silently mix two runs.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import tensorflow as tf

from captioning.errors import RunError

_REDUCERS: dict[tuple[int, bool], tuple[tf.distribute.Strategy, object]] = {}


def _reducer(strategy: tf.distribute.Strategy, first_only: bool):
    """The all-reduce function for ``strategy``, traced once for vectors of any length and
    reused (a new ``tf.function`` per call, or one per length, would retrace, and tracing a
    collective is slow)."""
    key = (id(strategy), first_only)
    if key not in _REDUCERS or _REDUCERS[key][0] is not strategy:

        def replica_fn(vector):
            ctx = tf.distribute.get_replica_context()
            keep = tf.equal(ctx.replica_id_in_sync_group, 0) if first_only else tf.constant(True)
            return ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.where(keep, vector, tf.zeros_like(vector))
            )

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float64)])
        def run(vector):
            return strategy.run(replica_fn, args=(vector,))

        _REDUCERS[key] = (strategy, run)
    return _REDUCERS[key][1]


def _all_reduce(strategy: tf.distribute.Strategy, values: list[np.ndarray], first_only: bool):
    """Sum ``values`` over replicas; with ``first_only`` the other replicas contribute zeros
    (so the sum is replica 0's value, -inf and nan included). The arrays travel as one
    float64 vector (exact for float32 values and for integers below 2**53)."""
    shapes = [np.shape(v) for v in values]
    flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in values] + [np.zeros(0)])
    run = _reducer(strategy, first_only)
    total = np.asarray(strategy.experimental_local_results(run(tf.constant(flat)))[0])
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(total[offset : offset + size].reshape(shape))
        offset += size
    return out


def from_first_replica(strategy: tf.distribute.Strategy, variables, numbers: list[float]):
    """Give every worker replica 0's ``variables`` (assigned in place) and ``numbers``
    (returned). A no-op with a single replica."""
    variables = list(variables)
    if strategy.num_replicas_in_sync == 1 or not (variables or len(numbers)):
        return list(numbers)
    arrays = [np.asarray(v.numpy()) for v in variables] + [np.asarray(numbers, np.float64)]
    *values, numbers_out = _all_reduce(strategy, arrays, first_only=True)
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value.astype(np.dtype(variable.dtype)))
    return [float(x) for x in numbers_out]


def text_from_first_replica(strategy: tf.distribute.Strategy, text: str) -> str:
    """Give every worker replica 0's ``text``: its length, then its UTF-8 bytes (one float64
    each; exact). The other workers' ``text`` only has to exist. A no-op with one replica."""
    if strategy.num_replicas_in_sync == 1:
        return text
    mine = np.frombuffer(text.encode(), np.uint8)
    (length,) = from_first_replica(strategy, [], [len(mine)])
    if not length:  # nothing to send (an empty all-reduce crashes MirroredStrategy)
        return ""
    padded = np.zeros(int(length))
    padded[: min(len(mine), int(length))] = mine[: int(length)]
    (first,) = _all_reduce(strategy, [padded], first_only=True)
    return first.astype(np.uint8).tobytes().decode()


# Settings that may differ between the hosts of one run (paths, how to distribute).
HOST_LOCAL_KEYS = ("data.root", "train.strategy", "train.collective_timeout_s")


def experiment_identity(resolved: dict, **parts: str) -> dict[str, str]:
    """What must be equal on every worker, by name: each setting of the resolved config
    (dotted keys, JSON values) except the host-local ones, plus ``parts`` such as
    ``data=<manifest checksum>``. Pass it to ``agree`` before building any model."""
    flat: dict[str, str] = {}

    def walk(tree: dict, prefix: str) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif f"{prefix}{key}" not in HOST_LOCAL_KEYS:
                flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True, default=str)

    walk(resolved, "")
    return {**flat, **parts}


def fingerprint(text: str) -> list[float]:
    """Three 20-bit pieces of the sha256 of ``text`` (exact as floats on the wire)."""
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
    return [float((digest >> shift) & 0xFFFFF) for shift in (0, 20, 40)]


def agree(strategy: tf.distribute.Strategy, what: str, parts: dict[str, str]) -> None:
    """Raise ``RunError`` on every worker unless all of them hold the same ``parts``; the
    message names each part that differs on some worker, with this worker's value.

    Parts travel as fingerprints (one per part, so a mismatch can be named): first of the
    list of names (so the per-part vectors have one length everywhere), then of each value.
    Call it before creating variables: ``MultiWorkerMirroredStrategy`` broadcasts initial
    values, which hangs or fails obscurely when the workers build different models."""
    if strategy.num_replicas_in_sync == 1:
        return
    names = sorted(parts)
    if _differing(strategy, [fingerprint("\n".join(names))])[0]:
        raise RunError(
            f"workers disagree on {what}: they name different settings "
            f"({len(names)} here); install the same version of captioning on every worker"
        )
    differs = _differing(strategy, [fingerprint(parts[name]) for name in names])
    if any(differs):
        listed = "; ".join(
            f"{name} (this worker: {_shown(parts[name])})"
            for name, bad in zip(names, differs, strict=True)
            if bad
        )
        raise RunError(
            f"workers disagree on {what}: {listed}. Run the same command, config and "
            "prepared dataset on every worker"
        )


def _differing(strategy: tf.distribute.Strategy, rows: list[list[float]]) -> list[bool]:
    """For each row (a fingerprint): does it differ from replica 0's on any worker?"""
    mine = np.asarray(rows, np.float64)  # (parts, 3)
    (first,) = _all_reduce(strategy, [mine], first_only=True)
    local = np.any(first != mine, axis=1).astype(np.float64)  # (parts,) 1 where I differ
    (anywhere,) = _all_reduce(strategy, [local], first_only=False)
    return [bool(x) for x in anywhere]


def _shown(value: str, limit: int = 64) -> str:
    """A value short enough for one line; long ones by digest (comparable across workers)."""
    if len(value) <= limit:
        return value
    return f"sha256 {hashlib.sha256(value.encode()).hexdigest()[:16]}"


def metrics_from_chief(strategy: tf.distribute.Strategy, metrics: dict[str, float]) -> dict:
    """The chief's values of ``metrics`` on every worker (validation metrics computed eagerly
    on each worker): all then take the same best-epoch and early-stopping decisions, even
    where another host's floating point would round a generated caption differently."""
    if not metrics:  # nothing to send (an empty all-reduce crashes MirroredStrategy)
        return {}
    names = sorted(metrics)
    values = from_first_replica(strategy, [], [float(metrics[k]) for k in names])
    return dict(zip(names, values, strict=True))
