"""The one training loop: custom steps under tf.distribute, for every model in the project.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585),
so each step is ``strategy.run(step_fn)``: per-replica losses are scaled by the *global* batch
(``tf.nn.compute_average_loss``) and the Keras optimizer all-reduces (sums) the gradients.
A ``Task`` says what a batch's loss and statistics are; the loop does the rest: progress bar,
validation each epoch, best checkpoint by a validation metric, resume, logs.

Multi-worker runs (``MultiWorkerMirroredStrategy``) need every process to issue the same
collectives in the same order, so: the global batch must split evenly over the replicas;
every worker runs exactly ``steps`` training steps and the same number of validation steps
(the dataset functions give each worker enough batches, empty ones where its share of the
validation set runs out); the validation metrics every decision is taken from (best epoch,
early stopping) are the chief's; on resume the chief's checkpoint, variables and counters
(best metrics and their epoch included), is broadcast to all (``restore_from_chief``), so
every worker stops at the same epoch. Only the chief writes files; the other workers keep
everything in memory. A worker that dies makes the survivors raise ``WorkerLostError``
naming it (see ``strategy``).
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
    restore_from_chief,
    save_checkpoint,
    save_model_atomically,
    weights_digest,
)
from captioning.training.history import History
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


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW with linear warm-up then cosine decay to 0 (or a constant rate)."""
    return keras.optimizers.AdamW(
        learning_rate_schedule(config, total_steps), weight_decay=config.weight_decay
    )


def learning_rate_schedule(config: TrainConfig, total_steps: int):
    """The rate of ``make_optimizer``: linear warm-up then cosine decay, or a constant."""
    rate = config.learning_rate
    if config.schedule == "cosine":
        warmup = min(config.warmup_steps, max(total_steps - 1, 0))
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else config.learning_rate,
            max(total_steps - warmup, 1),
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    return rate


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
    with reporting_lost_workers(strategy), timing.scope(stage or "fit"):
        return _fit(
            task, model, optimizer, strategy, train_fn, val_fn, steps, config, run_dir,
            best_model_name, stage,
        )  # fmt: skip


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


def _fit(
    task, model, optimizer, strategy, train_fn, val_fn, steps, config, run_dir,
    best_model_name, stage,
) -> FitResult:  # fmt: skip
    chief = is_chief(strategy)
    patience = getattr(config, "patience", None)
    # what decides the collectives this fit issues (the command agreed on the rest)
    loop = {"stage": stage, "steps": steps, "epochs": config.epochs, "patience": patience}
    loop["batch_size"] = config.batch_size
    sync.agree(strategy, "the training loop", {k: str(v) for k, v in loop.items()})
    with strategy.scope():
        optimizer.build(model.trainable_variables)  # slots exist before a restore fills them
    state = restore_from_chief(run_dir / "checkpoints", model, optimizer, strategy, chief)
    result = FitResult(resumed_from=state.epoch, best=state.best_metrics or {})
    label = f"{stage}: " if stage else ""
    if state.epoch and chief:
        print(f"{label}resuming {run_dir} after epoch {state.epoch}")
    history = History(run_dir, resume_epoch=state.epoch) if chief else None
    global_batch = config.batch_size

    def train_step_fn(batch):
        with tf.GradientTape() as tape:
            per_example, stats = task.loss_and_stats(model, batch, training=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return stats

    def eval_step_fn(batch):
        return task.loss_and_stats(model, batch, training=False)[1]

    def reduce(stats):
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in stats.items()
        }

    @tf.function(jit_compile=jit_compile(config, strategy))
    def train_step(batch):
        return reduce(strategy.run(train_step_fn, args=(batch,)))

    @tf.function(reduce_retracing=True)  # the last evaluation batches are shorter
    def eval_step(batch):
        return reduce(strategy.run(eval_step_fn, args=(batch,)))

    start = time.perf_counter()
    validate = getattr(task, "validate", None)
    stopped = ""
    for epoch in range(state.epoch, config.epochs):
        if patience and state.best_metrics and epoch - state.best_metrics["epoch"] >= patience:
            stopped = f" (early stop: no better val {task.monitor} for {patience} epochs)"
            break
        tic = time.perf_counter()
        with timing.phase("dataset_setup"):
            train_ds = strategy.distribute_datasets_from_function(
                lambda ctx, e=epoch: train_fn(ctx, e)
            )
        bar = keras.utils.Progbar(
            steps,
            stateful_metrics=["loss", "accuracy"],
            verbose=1 if chief else 0,
            unit_name="step",
        )
        print(f"epoch {epoch + 1}/{config.epochs}") if chief else None
        sums: dict[str, float] = {}
        batches = iter(train_ds)
        for step, batch in enumerate(timing.timed_iter(batches, "input_wait")):
            if step >= steps:
                break
            # the first step of a fit traces (and compiles) the step: timed apart
            with timing.phase("train_steps" if step or result.epochs_run else "first_step"):
                sums = _accumulate(sums, train_step(batch))  # as floats: the step is done
            if step % 20 == 0 or step == steps - 1:
                bar.update(step + 1, list(task.summarize(sums).items()))
        with timing.phase("input_teardown"):
            del batches, train_ds  # joins the pipeline's threads
        train_metrics = task.summarize(sums)
        with timing.phase("validation_steps"):
            val_metrics = evaluate(eval_step, strategy, val_fn, task, config.max_eval_batches)
        if validate is not None:
            val_metrics.update(validate(model))  # its own phases (decoding, metrics)
        val_metrics = _from_chief(strategy, val_metrics)
        row = {
            "epoch": epoch + 1,
            **{f"train_{k}": v for k, v in train_metrics.items()},
            **{f"val_{k}": v for k, v in val_metrics.items()},
            "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            "seconds": time.perf_counter() - tic,
        }
        state.epoch = epoch + 1
        if val_metrics[task.monitor] > state.best:
            state.best, state.best_metrics = (
                val_metrics[task.monitor],
                {**val_metrics, "epoch": epoch + 1},
            )
            result.best = state.best_metrics
            if chief:
                with timing.phase("checkpointing"):
                    save_model_atomically(model, run_dir / best_model_name)
        if chief:  # variables are identical on every worker: one copy is enough
            with timing.phase("checkpointing"):
                save_checkpoint(run_dir / "checkpoints", model, optimizer, state)
        if history is not None:
            with timing.phase("history"):
                history.append(row)
            print(" - ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_")))
        result.epochs_run += 1
    print(f"{label}stopped after epoch {state.epoch} of {config.epochs}{stopped}")  # every worker
    result.seconds = time.perf_counter() - start
    result.chief = chief
    result.weights_sha256 = weights_digest(model)
    return result


def jit_compile(config: TrainConfig, strategy: tf.distribute.Strategy) -> bool:
    """Whether to compile the train step with XLA: ``train.jit_compile`` on one replica (the
    optimizer's cross-replica merge of several replicas cannot run inside XLA)."""
    return config.jit_compile and strategy.num_replicas_in_sync == 1


def _from_chief(strategy, metrics: dict[str, float]) -> dict[str, float]:
    """The chief's values of the validation metrics (``task.validate`` runs eagerly on each
    worker): every worker then takes the same best-epoch and early-stopping decisions, even
    where another host's floating point would round a generated caption differently."""
    if not metrics:  # nothing to send (an empty all-reduce crashes MirroredStrategy)
        return {}
    names = sorted(metrics)
    values = sync.from_first_replica(strategy, [], [float(metrics[k]) for k in names])
    return dict(zip(names, values, strict=True))


def _accumulate(sums: dict[str, float], stats) -> dict[str, float]:
    return {k: sums.get(k, 0.0) + float(v) for k, v in stats.items()}


def evaluate(eval_step, strategy, val_fn: DatasetFn, task: Task, max_batches: int | None):
    """Summed statistics over the whole validation set (or ``max_batches`` of it)."""
    sums: dict[str, float] = {}
    for i, batch in enumerate(
        strategy.distribute_datasets_from_function(lambda ctx: val_fn(ctx, 0))
    ):
        if max_batches is not None and i >= max_batches:
            break
        sums = _accumulate(sums, eval_step(batch))
    return task.summarize(sums)
