"""The one training loop, for every model in the project: ``fit`` runs a ``Task`` (what a
batch's loss and statistics are) epoch after epoch, with a progress bar, validation each
epoch, the best model by a validation metric, checkpoints to resume from, and logs.

The steps are our own (``captioning.training.steps``), not ``model.fit``, because Keras 3's
``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

Multi-worker runs need every process to issue the same collectives in the same order, so:
the global batch must split evenly over the replicas; every worker runs exactly ``steps``
training steps and the same number of validation steps (the dataset functions give each
worker empty batches where its share of the validation set runs out); every decision (best
epoch, early stopping) is taken from the chief's validation metrics; on resume the chief's
checkpoint, variables and counters, is broadcast to all (``restore_from_chief``). Only the
chief writes files. A worker that dies makes the survivors raise ``WorkerLostError`` naming
it (``captioning.training.strategy``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import keras
import tensorflow as tf

from captioning.config import TrainConfig
from captioning.data.pipeline import DatasetFn
from captioning.errors import RunError
from captioning.training import sync, timing
from captioning.training.checkpoints import (
    TrainingState,
    restore_from_chief,
    save_checkpoint,
    save_model_atomically,
    weights_digest,
)
from captioning.training.history import History
from captioning.training.optimizers import make_optimizer as make_optimizer  # re-exported
from captioning.training.steps import accumulate, compile_steps, evaluate
from captioning.training.strategy import (
    LOST_WORKER_ERRORS,
    WorkerLostError,
    is_chief,
    is_multiworker,
    lost_worker_message,
)


class Task(Protocol):
    """What the loop needs to know about a model's training objective."""

    monitor: str  # validation metric to maximise, e.g. "accuracy"

    def loss_and_stats(self, model, batch, training: bool):
        """Return (per-example loss (b,), {name: per-replica sum}) for one replica's batch.
        The sums must include ``count`` (examples) so the loop can average across replicas."""

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn summed statistics into metrics (e.g. correct / count -> accuracy)."""

    # Optional: ``validate(model) -> {name: value}``, metrics that need more than summed batch
    # statistics (e.g. BLEU of generated captions); merged into the epoch's validation metrics,
    # so ``monitor`` may name one of them. It runs eagerly on every worker, outside
    # ``strategy.run``, with the same names everywhere; the chief's values are the ones kept.


@dataclass
class FitResult:
    """What ``fit`` leaves behind, besides the files in the run folder."""

    best: dict[str, float] = field(default_factory=dict)  # val metrics of the best epoch
    epochs_run: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    chief: bool = True  # False on the workers of a multi-worker run that write nothing
    weights_sha256: str = ""  # of the final model weights: equal on every worker of a run


def fit(
    *,
    task: Task,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    train_fn: DatasetFn,
    val_fn: DatasetFn,
    steps: int,
    config: TrainConfig,
    run_dir: Path,
    best_model_name: str = "best_model.keras",
    stage: str = "",
) -> FitResult:
    """Train ``model`` for ``config.epochs`` epochs of ``steps`` steps, resuming if the run
    folder holds a checkpoint. Model and optimizer must have been built in ``strategy.scope()``
    (after ``sync.agree`` on the experiment, under a multi-worker strategy). ``stage`` names
    this fit in messages (e.g. ``stage1``); the workers check that they run the same one.
    """
    check_global_batch(config.batch_size, strategy.num_replicas_in_sync)
    job = _Fit(
        task, model, optimizer, strategy, train_fn, val_fn, steps, config, run_dir,
        best_model_name, stage, chief=is_chief(strategy),
    )  # fmt: skip
    with reporting_lost_workers(strategy), timing.scope(stage or "fit"):
        return _run_epochs(job)


def check_global_batch(global_batch: int, replicas: int) -> int:
    """The per-replica batch; ``RunError`` unless the global batch splits evenly."""
    if global_batch % replicas:
        nearest = replicas * max(round(global_batch / replicas), 1)
        raise RunError(
            f"train.batch_size {global_batch} is the global batch and must divide evenly over "
            f"the {replicas} replicas (e.g. {nearest})"
        )
    return global_batch // replicas


@contextlib.contextmanager
def reporting_lost_workers(strategy: tf.distribute.Strategy):
    """Turn a failed collective of a multi-worker run into a one-line ``WorkerLostError``."""
    if not is_multiworker(strategy):
        yield
        return
    try:
        yield
    except LOST_WORKER_ERRORS as err:
        raise WorkerLostError(lost_worker_message(err, strategy)) from None


@dataclass
class _Fit:
    """One ``fit`` call: its arguments, and whether this process is the chief."""

    task: Task
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    strategy: tf.distribute.Strategy
    train_fn: DatasetFn
    val_fn: DatasetFn
    steps: int
    config: TrainConfig
    run_dir: Path
    best_model_name: str
    stage: str
    chief: bool

    @property
    def label(self) -> str:
        """The stage as a message prefix (``"stage1: "``), or nothing."""
        return f"{self.stage}: " if self.stage else ""


def _run_epochs(job: _Fit) -> FitResult:
    """Agree on the loop, restore the chief's checkpoint, then train epoch after epoch until
    ``config.epochs`` or early stopping. ``config.epochs`` 0 trains nothing and saves the
    model as built as the best one (a classifier's untrained encoder, for comparisons)."""
    _agree_on_loop(job)
    state = _restore(job)
    result = FitResult(resumed_from=state.epoch, best=state.best_metrics or {}, chief=job.chief)
    history = History(job.run_dir, resume_epoch=state.epoch) if job.chief else None
    steps = compile_steps(job.task, job.model, job.optimizer, job.strategy, job.config)
    start, stopped = time.perf_counter(), ""
    for epoch in range(state.epoch, job.config.epochs):
        stopped = _early_stop(job, state, epoch)
        if stopped:
            break
        tic = time.perf_counter()
        train_metrics = _train_epoch(job, steps.train, epoch, first=not result.epochs_run)
        val_metrics = _validate(job, steps.eval)
        row = _epoch_row(epoch, train_metrics, val_metrics, job.optimizer, tic)
        state.epoch = epoch + 1
        _keep_if_best(job, state, result, val_metrics)
        _save_epoch(job, state, history, row)
        result.epochs_run += 1
    if not job.config.epochs and job.chief:  # 0 epochs: the model as built is the result
        save_model_atomically(job.model, job.run_dir / job.best_model_name)
    stop = f"{job.label}stopped after epoch {state.epoch} of {job.config.epochs}{stopped}"
    print(stop)  # on every worker
    result.seconds = time.perf_counter() - start
    result.weights_sha256 = weights_digest(job.model)
    return result


def _agree_on_loop(job: _Fit) -> None:
    """Check that every worker runs this fit alike: what decides the collectives it issues
    (the command agreed on the rest of the experiment before building the model)."""
    patience = getattr(job.config, "patience", None)
    loop = {"stage": job.stage, "steps": job.steps, "epochs": job.config.epochs}
    loop |= {"patience": patience, "batch_size": job.config.batch_size}
    sync.agree(job.strategy, "the training loop", {k: str(v) for k, v in loop.items()})


def _restore(job: _Fit) -> TrainingState:
    """The chief's newest checkpoint, on every worker (a fresh state when there is none)."""
    with job.strategy.scope():
        job.optimizer.build(job.model.trainable_variables)  # slots exist before a restore
    folder = job.run_dir / "checkpoints"
    state = restore_from_chief(folder, job.model, job.optimizer, job.strategy, job.chief)
    if state.epoch and job.chief:
        print(f"{job.label}resuming {job.run_dir} after epoch {state.epoch}")
    return state


def _early_stop(job: _Fit, state: TrainingState, epoch: int) -> str:
    """Why training stops before ``epoch`` (``patience`` epochs without a better validation
    score), or ``""`` to go on."""
    patience = getattr(job.config, "patience", None)
    if patience and state.best_metrics and epoch - state.best_metrics["epoch"] >= patience:
        return f" (early stop: no better val {job.task.monitor} for {patience} epochs)"
    return ""


def _train_epoch(job: _Fit, train_step, epoch: int, first: bool) -> dict[str, float]:
    """``job.steps`` training steps on the epoch's dataset, with a progress bar on the chief;
    the task's training metrics. ``first``: the fit's first epoch, whose first step traces
    (and compiles) the step and is timed apart."""
    with timing.phase("dataset_setup"):
        train_ds = job.strategy.distribute_datasets_from_function(
            lambda ctx: job.train_fn(ctx, epoch)
        )
    bar = keras.utils.Progbar(
        job.steps,
        stateful_metrics=["loss", "accuracy"],
        verbose=1 if job.chief else 0,
        unit_name="step",
    )
    print(f"epoch {epoch + 1}/{job.config.epochs}") if job.chief else None
    sums: dict[str, float] = {}
    batches = iter(train_ds)
    for step, batch in enumerate(timing.timed_iter(batches, "input_wait")):
        if step >= job.steps:
            break
        with timing.phase("first_step" if first and not step else "train_steps"):
            sums = accumulate(sums, train_step(batch))
        if step % 20 == 0 or step == job.steps - 1:
            bar.update(step + 1, list(job.task.summarize(sums).items()))
    with timing.phase("input_teardown"):
        del batches, train_ds  # joins the pipeline's threads
    return job.task.summarize(sums)


def _validate(job: _Fit, eval_step) -> dict[str, float]:
    """The epoch's validation metrics, the chief's on every worker: the summed statistics of
    the validation set, plus ``task.validate`` when the task has it."""
    with timing.phase("validation_steps"):
        metrics = evaluate(
            eval_step, job.strategy, job.val_fn, job.task, job.config.max_eval_batches
        )
    validate = getattr(job.task, "validate", None)
    if validate is not None:
        metrics.update(validate(job.model))  # its own phases (decoding, metrics)
    return sync.metrics_from_chief(job.strategy, metrics)


def _epoch_row(epoch, train_metrics, val_metrics, optimizer, tic: float) -> dict[str, float]:
    """The epoch's row of ``log.csv``."""
    return {
        "epoch": epoch + 1,
        **{f"train_{k}": v for k, v in train_metrics.items()},
        **{f"val_{k}": v for k, v in val_metrics.items()},
        "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
        "seconds": time.perf_counter() - tic,
    }


def _keep_if_best(job: _Fit, state: TrainingState, result: FitResult, val_metrics) -> None:
    """Record the epoch as the best so far when it beats the best validation score, and (chief)
    save the model as ``best_model_name``."""
    score = val_metrics[job.task.monitor]
    if score > state.best:
        state.best, state.best_metrics = score, {**val_metrics, "epoch": state.epoch}
        result.best = state.best_metrics
        if job.chief:
            with timing.phase("checkpointing"):
                save_model_atomically(job.model, job.run_dir / job.best_model_name)


def _save_epoch(job: _Fit, state: TrainingState, history: History | None, row: dict) -> None:
    """The chief's checkpoint and log row of the epoch; the other workers write nothing (their
    variables are the chief's)."""
    if not job.chief:
        return
    with timing.phase("checkpointing"):
        save_checkpoint(job.run_dir / "checkpoints", job.model, job.optimizer, state)
    with timing.phase("history"):
        history.append(row)
    print(" - ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_")))
