"""Keeping the processes of a multi-worker run in step, over the collectives themselves.

``from_first_replica`` broadcasts values held by replica 0 (the chief's) to every replica: a
resumed run restores the chief's checkpoint on the chief and sends the variables and loop
counters to the other workers, so they need no access to the chief's run folder (hosts
without a shared filesystem resume too) and can never start from a different epoch.
``agree`` checks that every worker runs the same experiment (steps, batch, data, config)
before the first step; a mismatch would otherwise hang or silently mix two runs.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import tensorflow as tf

from captioning.errors import RunError

_REDUCERS: dict[tuple[int, bool], tuple[tf.distribute.Strategy, object]] = {}


def _reducer(strategy: tf.distribute.Strategy, first_only: bool):
    """The all-reduce function for ``strategy``, traced once per vector length and reused
    (a new ``tf.function`` per call would retrace every time)."""
    key = (id(strategy), first_only)
    if key not in _REDUCERS or _REDUCERS[key][0] is not strategy:

        def replica_fn(vector):
            ctx = tf.distribute.get_replica_context()
            keep = tf.equal(ctx.replica_id_in_sync_group, 0) if first_only else tf.constant(True)
            return ctx.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.where(keep, vector, tf.zeros_like(vector))
            )

        @tf.function
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


# Settings that may differ between the hosts of one run (paths, how to distribute).
HOST_LOCAL_KEYS = ("data.root", "train.strategy", "train.collective_timeout_s")


def experiment_identity(resolved: dict, *extra: str) -> str:
    """What must be equal on every worker: the resolved config without host-local settings,
    plus e.g. the data's checksum. Pass it to ``fit(identity=...)``."""
    tree = json.loads(json.dumps(resolved, default=str))
    for key in HOST_LOCAL_KEYS:
        section, _, name = key.partition(".")
        tree.get(section, {}).pop(name, None)
    return "|".join([json.dumps(tree, sort_keys=True), *extra])


def fingerprint(text: str) -> list[float]:
    """Three 20-bit pieces of the sha256 of ``text`` (exact as floats on the wire)."""
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
    return [float((digest >> shift) & 0xFFFFF) for shift in (0, 20, 40)]


def agree(strategy: tf.distribute.Strategy, what: str, text: str) -> None:
    """Raise ``RunError`` on every worker unless all of them hold the same ``text``."""
    if strategy.num_replicas_in_sync == 1:
        return
    mine = fingerprint(text)
    (first,) = _all_reduce(strategy, [np.asarray(mine, np.float64)], first_only=True)
    differs = float(not np.array_equal(first, mine))
    (disagreeing,) = _all_reduce(strategy, [np.asarray(differs, np.float64)], first_only=False)
    if disagreeing:
        raise RunError(
            f"workers disagree on {what}: run the same command, config and prepared "
            "dataset on every worker"
        )
