"""Epoch checkpoints for resuming: every model and optimizer variable, verified on load.

Layout: ``checkpoints/epoch-NNNN/{variables.npz, state.json}``. ``state.json`` records the
epoch, the best validation score so far, and the sha256 of ``variables.npz``; a checkpoint
whose file is truncated, altered or shaped for another model is skipped with a warning and
the previous one is used. Each checkpoint is written in a temporary folder and renamed into
place, so a crash mid-save never hides the last good one. Arrays load with
``allow_pickle=False``: a checkpoint cannot carry code.

Under a multi-worker strategy ``restore_from_chief`` restores on the chief only and sends the
variables and the whole ``TrainingState`` to the other workers: every decision a resumed run
makes (start epoch, best epoch, patience, the captioner's stage choice) is the chief's.

Plain arrays in variable order, not ``tf.train.Checkpoint``: under Keras 3 that skips the
batch-norm statistics of layers nested in a custom layer (``ConvBlock``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from captioning.training import sync
from captioning.utils.atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """Loop counters saved beside the variables: everything a resumed run decides from."""

    epoch: int = 0  # epochs completed
    best: float = float("-inf")  # best validation score so far
    # validation metrics of the best epoch and its "epoch" (patience counts from it)
    best_metrics: dict | None = None

    def to_json(self) -> str:
        """The state as JSON (floats round-trip exactly, -inf included)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingState:
        """The inverse of ``to_json``."""
        return cls(**json.loads(text))


def _variables(model, optimizer) -> list:
    """Every variable a checkpoint holds, in the order it stores them."""
    return [*model.weights, *optimizer.variables]


def save_checkpoint(folder: Path, model, optimizer, state: TrainingState, keep: int = 2) -> Path:
    """Write ``folder/epoch-NNNN`` and keep only the newest ``keep`` checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch-{state.epoch:04d}"
    arrays = {
        f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(_variables(model, optimizer))
    }
    shutil.rmtree(final, ignore_errors=True)  # a rerun of this epoch replaces it
    with atomic_path(final) as tmp:
        tmp.mkdir()
        np.savez(tmp / "variables.npz", **arrays)
        digest = hashlib.sha256((tmp / "variables.npz").read_bytes()).hexdigest()
        meta = {
            **dataclasses.asdict(state),
            "variables_sha256": digest,
            "count": len(arrays),
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=2))
    for old in sorted(folder.glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore_latest(folder: Path, model, optimizer) -> TrainingState | None:
    """Load the newest valid checkpoint into ``model`` and ``optimizer``; None if there is none.
    Invalid checkpoints are reported and skipped, oldest-valid wins over nothing."""
    for candidate in sorted(folder.glob("epoch-*"), reverse=True):
        try:
            return _restore(candidate, model, optimizer)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            log.warning("checkpoint %s is unusable (%s); trying the previous one", candidate, err)
    return None


def _restore(candidate: Path, model, optimizer) -> TrainingState:
    """Load one checkpoint after checking its checksum, variable count and shapes; raises
    ``ValueError`` (nothing assigned) when any of them does not match."""
    meta = json.loads((candidate / "state.json").read_text())
    blob = (candidate / "variables.npz").read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta["variables_sha256"]:
        raise ValueError("variables.npz does not match its checksum")
    variables = _variables(model, optimizer)
    if meta["count"] != len(variables):
        raise ValueError(f"{meta['count']} variables saved, the model has {len(variables)}")
    with np.load(candidate / "variables.npz", allow_pickle=False) as arrays:
        values = [arrays[f"v{i:05d}"] for i in range(len(variables))]
    for variable, value in zip(variables, values, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"shape {value.shape} saved for {variable.path} {variable.shape}")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)
    return TrainingState(epoch=meta["epoch"], best=meta["best"], best_metrics=meta["best_metrics"])


def restore_from_chief(folder: Path, model, optimizer, strategy, chief: bool) -> TrainingState:
    """The chief restores its newest checkpoint in ``folder``; then every worker holds the
    chief's variables and its ``TrainingState`` (a fresh one when there is no checkpoint).
    The other workers need no access to ``folder`` and cannot decide from state of their own."""
    state = (restore_latest(folder, model, optimizer) if chief else None) or TrainingState()
    sync.from_first_replica(strategy, _variables(model, optimizer), [])
    return TrainingState.from_json(sync.text_from_first_replica(strategy, state.to_json()))


def weights_digest(model: keras.Model) -> str:
    """sha256 of every weight's bytes, in order: workers that agree print the same digest."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        model.save(tmp)
