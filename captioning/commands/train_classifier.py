"""``captioning train classifier``: pretrain the CNN encoder as a MedNIST classifier, or, on a
dataset prepared with label columns (``data prepare --label-columns``), as a classifier of one
head per column (see ``captioning.training.classifier_task``).

The steps are in ``captioning.training.classifier_task``; this module orders them and holds the
command's options. Light to import: TensorFlow loads when training starts.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from captioning._moved import moved_name
from captioning.commands.options import add_train_options, report_training, train_options


def add_parser(train_commands) -> None:
    """``train classifier``, on the ``train`` command's subparsers."""
    parser = train_commands.add_parser(
        "classifier",
        help="pretrain the CNN encoder as a classifier: of the dataset's classes, or one head "
        "per label column (data prepare --label-columns)",
    )
    parser.add_argument(
        "--data", help="prepared dataset folder (default: $CAPTIONING_HOME/mednist)"
    )
    add_train_options(parser, "classifier")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir, result = train_classifier(**train_options(args))
    report_training(run_dir, result)
    return 0


def train_classifier(
    *, config_path=None, overrides=(), smoke=False, data_root=None, run_dir=None, command=""
):
    """Resolve the config, train, and write the run folder (on the chief: the other workers
    of a multi-worker run write nothing); return its path and the fit's ``FitResult``."""
    import keras

    from captioning.config import ClassifierConfig, load_config, to_dict
    from captioning.training import classifier_task as steps
    from captioning.training.classifier_data import load_classifier_data
    from captioning.training.encoder_init import check_init_run, resolve_init_run
    from captioning.training.schedule import resolve_train_schedule
    from captioning.training.strategy import is_chief, make_strategy
    from captioning.training.sync import agree, experiment_identity
    from captioning.utils.runs import RunLock, check_resume, default_run_dir

    config = load_config(ClassifierConfig, config_path, overrides, smoke)
    found = load_classifier_data(config, data_root)
    init_from = resolve_init_run(config.model.init_from)  # transfer: checked before any work
    if init_from is not None:
        check_init_run(init_from, config.model, found.data.image_spec)
    resolve_train_schedule(config.train, len(found.train))  # batch 0, min_steps: by data size
    run_dir = Path(run_dir or default_run_dir("classifier")).resolve()
    keras.utils.set_random_seed(config.train.seed)
    strategy = make_strategy(config.train.strategy, config.train.collective_timeout_s)
    chief = is_chief(strategy)
    resolved = to_dict(config)
    # before any variable exists: the workers would otherwise build different models
    identity = experiment_identity(resolved, data=found.data.manifest_sha256)
    agree(strategy, "the experiment", identity)
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        # only the chief's run folder counts: another worker's local folder decides nothing
        resuming = chief and check_resume(run_dir, resolved, frozen_sections=("data", "model"))
        if chief:
            steps.write_classifier_run(
                run_dir,
                config,
                resolved,
                found,
                strategy,
                command=command,
                resumed=resuming,
                init_from=init_from,
            )
        result, facts = steps.fit_classifier(config, found, strategy, run_dir, init_from)
        if chief and found.heads:  # label columns: each head's accuracy on the test split
            facts["test"] = steps.score_heads_on_test(run_dir, found)
        if chief:
            steps.write_classifier_metrics(run_dir, config, result, facts, strategy)
    return run_dir, result


def __getattr__(name: str):
    """``ClassificationTask`` moved to ``captioning.training.classifier_task``; the old import
    path still works without loading TensorFlow when the CLI imports this module."""
    if name == "ClassificationTask":
        return moved_name(__name__, name, "captioning.training.classifier_task")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
