"""Where the training time goes: one classifier epoch and one epoch of each captioner stage,
broken down by the training loop's timers (``captioning.training.timing``), with FLOPs per
training example and the FLOP/s reached, against a float32 matmul peak measured in the same run.

    python benchmarks/profile_training.py --data ~/.cache/captioning/mednist
    python benchmarks/profile_training.py --data DIR --smoke     # seconds, checks the script only

Runs the real commands (``train_classifier``, then ``train_captioner`` on that classifier) with
one epoch each (captioner: ``train.epochs=1``, ``finetune.epochs=1``) and the defaults
otherwise. Phases per fit: ``first_step`` (tracing + first step), ``train_steps`` (the other
steps, input pipeline included), ``validation_steps``, ``validation_features`` and
``greedy_decoding`` (captioner), ``caption_metrics`` (BLEU + read-back), ``checkpointing``;
``input_wait`` (waiting for the next training batch), ``input_teardown`` (deleting an
epoch's iterator); ``other`` is the fit's seconds minus
those (progress bar, logs, dataset set-up). The captioner's steps outside its fits (feature
cache, read-out fit, model loads, calibration) are timed by wrapping them (``instrument``).

FLOPs: counted by ``tf.compat.v1.profiler`` (float_operation) on the traced graph of the
loss-and-gradients step at batch 128 (forward + backward, optimizer update excluded), divided
by 128. Results: experiments/benchmarks/profile_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import record

BATCH = 128


def matmul_peak(seconds: float = 4.0, n: int = 1024) -> float:
    """float32 FLOP/s of back-to-back n x n matmuls (all threads): the attainable peak."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    step = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    float(step(a, b))  # trace and warm up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        float(step(a, b))
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def train_step_flops(task, model, batch) -> int:
    """Float operations per example of a loss-and-gradients step on ``batch`` (forward +
    backward; ``batch`` has ``BATCH`` examples)."""
    import tensorflow as tf

    @tf.function
    def grads(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(task.loss_and_stats(model, batch, training=True)[0])
        return tape.gradient(loss, model.trainable_variables)

    graph = grads.get_concrete_function(batch).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    return int(total) // BATCH  # per example


def classifier_flops(config) -> int:
    import tensorflow as tf

    from captioning.models.classifier import build_classifier
    from captioning.training.classifier_task import ClassificationTask

    model = build_classifier(config.model, 6)
    batch = (tf.zeros((BATCH, 64, 64, 1)), tf.zeros((BATCH,), tf.int32))
    return train_step_flops(ClassificationTask(), model, batch)


def captioner_flops(model_path: Path, max_length: int, attention_penalty: float) -> int:
    """FLOPs of a saved stage model (``stage1``: cached features, ``stage2``: pixels)."""
    import tensorflow as tf

    from captioning.models.classifier import load_model
    from captioning.training.caption_task import CaptionTask

    model = load_model(model_path)
    inputs = {
        t.name.split(":")[0]: tf.zeros((BATCH, *t.shape[1:]), t.dtype)
        for t in model.inputs
        if t.name.split(":")[0] != "tokens"
    }
    inputs["tokens"] = tf.ones((BATCH, max_length), tf.int32)
    targets = {
        "tokens": tf.ones((BATCH, max_length + 1), tf.int32),
        "label": tf.zeros((BATCH,), tf.int32),
    }
    task = CaptionTask(attention_penalty=attention_penalty, class_weight=1.0)
    return train_step_flops(task, model, (inputs, targets))


def instrument(timing) -> None:
    """Time the captioner command's steps outside its fits (each a ``phase`` while recording):
    the module attributes the command looks up when it calls them are wrapped (it imports
    them when it runs, so the modules that define them are patched)."""
    from captioning import calibrate
    from captioning.training import (
        caption_targets,
        captioner_model,
        captioner_setup,
        captioner_stages,
    )

    def wrap(module, name):
        original = getattr(module, name)

        def timed(*args, **kwargs):
            with timing.phase(name):
                return original(*args, **kwargs)

        setattr(module, name, timed)

    wrap(captioner_setup, "load_caption_data")
    wrap(captioner_model, "build_model")
    wrap(caption_targets, "caption_targets")
    wrap(calibrate, "calibrate_run")
    for name in ("build_end_to_end", "save_chosen", "encode_images"):
        wrap(captioner_stages, name)
    for name in ("fit_findings_readout", "load_model"):  # inside the stages
        wrap(captioner_stages, name)


NESTED = {"encode_images"}  # inside a stage's validation_features: not counted twice


def breakdown(phases: dict, scope: str, fit_seconds: float, batch: int, flops: int) -> dict:
    """One fit's phases, ``other`` (the rest of the fit) and the train steps' throughput."""
    mine = {k.split("/", 1)[1]: v for k, v in phases.items() if k.startswith(scope + "/")}
    timed = sum(v["seconds"] for k, v in mine.items() if k not in NESTED)
    out = {"fit_seconds": round(fit_seconds, 3), "phases": mine}
    out["phases"]["other"] = {"seconds": round(fit_seconds - timed, 3), "calls": 1}
    steps = mine.get("train_steps", {"seconds": 0.0, "calls": 0})
    if steps["calls"]:
        images_per_s = steps["calls"] * batch / steps["seconds"]
        out["train_images_per_second"] = round(images_per_s, 1)
        out["train_flops_per_example"] = flops
        out["train_flop_per_second"] = round(images_per_s * flops)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST root (with captions)")
    parser.add_argument("--out", help="JSON file (default experiments/benchmarks/...)")
    parser.add_argument("--smoke", action="store_true", help="a few images: checks the script")
    args = parser.parse_args()

    from captioning import config as cfg
    from captioning.commands.train_captioner import train_captioner
    from captioning.commands.train_classifier import train_classifier
    from captioning.data.dataset import PreparedData
    from captioning.training import timing

    load_before = os.getloadavg()
    peak_before = matmul_peak()
    smoke = ["data.per_class_limit=96", "train.max_steps_per_epoch=3"] if args.smoke else []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        with timing.recording() as times:
            tic = time.perf_counter()
            _, cls = train_classifier(
                data_root=args.data,
                run_dir=runs / "classifier",
                overrides=["train.epochs=1", *smoke],
            )
            cls_wall = time.perf_counter() - tic
            tic = time.perf_counter()
            instrument(timing)
            with timing.scope("captioner"):
                cap_dir, _ = train_captioner(
                    encoder_dir=runs / "classifier",
                    data_root=args.data,
                    run_dir=runs / "captioner",
                    overrides=["train.epochs=1", "finetune.epochs=1", *smoke],
                )
            cap_wall = time.perf_counter() - tic
        phases = times.as_dict()
        metrics = json.loads((cap_dir / "metrics.json").read_text())
        cap_config = cfg.load_config(cfg.CaptionerConfig, None, [], False)
        dec = cap_config.decoder
        flops = {
            "classifier": classifier_flops(cfg.load_config(cfg.ClassifierConfig, None, [], False)),
            **{
                stage: captioner_flops(
                    cap_dir / stage / "best_model.keras", dec.max_length, dec.attention_penalty
                )
                for stage in ("stage1", "stage2")
            },
        }
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    fits = {
        "classifier": breakdown(phases, "fit", cls.seconds, BATCH, flops["classifier"]),
        **{
            stage: breakdown(phases, stage, metrics[stage]["seconds"], BATCH, flops[stage])
            for stage in ("stage1", "stage2")
        },
    }
    for fit in fits.values():
        if "train_flop_per_second" in fit:
            fit["share_of_matmul_peak"] = round(fit["train_flop_per_second"] / peak, 4)
    stages = metrics["stage1"]["seconds"] + metrics["stage2"]["seconds"]
    result = {
        "smoke": args.smoke,
        "load_average_before": load_before,
        "matmul_peak_flop_per_second": {"before": round(peak_before), "after": round(peak_after)},
        "flops_method": "tf.compat.v1.profiler float_operation on the traced loss+gradients graph",
        "commands": {
            "classifier": {"wall_seconds": round(cls_wall, 3), **fits["classifier"]},
            "captioner": {
                "wall_seconds": round(cap_wall, 3),
                # feature cache, read-out fit, model loads and saves, calibration
                "outside_fits_seconds": round(cap_wall - stages, 3),
                "outside_fits_phases": {
                    k.split("/", 1)[1]: v for k, v in phases.items() if k.startswith("captioner/")
                },
                "stage1": fits["stage1"],
                "stage2": fits["stage2"],
                "peak_rss_mib": metrics.get("peak_rss_mib"),
            },
        },
    }
    card = PreparedData(Path(args.data)).card
    record("profile_training", result, args.out, data_card=card)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
