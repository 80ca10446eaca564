"""Speed levers as train-step throughput ratios, measured in one process, interleaved.

    python benchmarks/levers.py --data ~/.cache/captioning/mednist
    python benchmarks/levers.py --data DIR --smoke        # seconds, checks the script only

Each variant is the training loop's step (loss, gradients, AdamW update; one replica) on
batches of real training images held in memory (no input pipeline): the default classifier
and the default captioner's stage 1 (attention decoder on the encoder's cached features).
Variants: baseline (``tf.function``), XLA (``jit_compile=True``), bfloat16 mixed precision
(Keras ``mixed_bfloat16``; losses in float32), both, and larger batches. Every round times
each variant once, in turn, so a change of the machine's load hits all alike; a variant's
images/s is its median over the rounds. Thread settings (``tf.config.threading``) only take
effect before TensorFlow starts: each runs in its own child process, alternated the same way.
The stem is already stride 2 (``models.encoder``): no cheaper stem without a new architecture.
Results: experiments/benchmarks/levers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import ROOT, record

THREADS = [(0, 0), (1, 1), (2, 1), (2, 2), (4, 1)]  # (intra, inter); 0: TensorFlow's default


def make_step(task, model, optimizer, jit: bool):
    """The loop's train step (one replica): loss, gradients, update; returns the stats."""
    call = float32_outputs(model)
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def step(batch):
        with tf.GradientTape() as tape:
            per_example, stats = task.loss_and_stats(call, batch, training=True)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return stats

    return step


def float32_outputs(model):
    """``model`` with its outputs cast to float32 (mixed precision computes in bfloat16)."""
    import tensorflow as tf

    def call(inputs, training=False):
        out = model(inputs, training=training)
        if isinstance(out, dict):
            return {k: tf.cast(v, tf.float32) for k, v in out.items()}
        return tf.cast(out, tf.float32)

    return call


def classifier_variant(images, labels, batch: int, policy: str, jit: bool, model=None):
    """(step, batches) of the default classifier (``model``: ``ModelConfig`` overrides)."""
    import keras
    import tensorflow as tf

    from captioning.config import ModelConfig, TrainConfig
    from captioning.models.classifier import build_classifier
    from captioning.training.classifier_task import ClassificationTask
    from captioning.training.loop import make_optimizer

    keras.config.set_dtype_policy(policy)
    try:
        network = build_classifier(ModelConfig(**(model or {})), 6)
    finally:
        keras.config.set_dtype_policy("float32")
    optimizer = make_optimizer(TrainConfig(), 10_000)
    batches = [
        (
            tf.constant(images[i : i + batch, ..., None], tf.float32),
            tf.constant(labels[i : i + batch]),
        )
        for i in range(0, len(images) - batch + 1, batch)
    ]
    task = ClassificationTask()
    return make_step(task, network, optimizer, jit), batches, network, optimizer


def caption_variant(features, batch: int, policy: str, jit: bool, vocab: int, readout: int):
    """(step, batches) of the default captioner's stage 1 on cached ``features``."""
    import dataclasses

    import keras
    import numpy as np
    import tensorflow as tf

    from captioning.config import CaptionerConfig
    from captioning.models.captioner import build_feature_model
    from captioning.models.decoders import build_decoder
    from captioning.training.caption_task import CaptionTask
    from captioning.training.loop import make_optimizer

    config = CaptionerConfig()
    dec = config.decoder
    settings = {k: v for k, v in dataclasses.asdict(dec).items() if k not in ("kind", "readout")}
    keras.config.set_dtype_policy(policy)
    try:
        decoder = build_decoder(dec.kind, vocab, readout=readout, **settings)
        model = build_feature_model(decoder, features, dec.max_length)
    finally:
        keras.config.set_dtype_policy("float32")
    optimizer = make_optimizer(config.train, 10_000)
    rng = np.random.default_rng(0)
    n = len(features["pooled"])
    tokens = np.zeros((n, dec.max_length + 1), np.int32)  # <start> words <end> <pad>..
    for i in range(n):
        words = rng.integers(4, vocab, rng.integers(12, dec.max_length - 1))
        tokens[i, : len(words) + 2] = [1, *words, 2]
    batches = []
    for i in range(0, n - batch + 1, batch):
        inputs = {k: tf.constant(v[i : i + batch], tf.float32) for k, v in features.items()}
        targets = {"tokens": tf.constant(tokens[i : i + batch]), "label": tf.zeros(batch, tf.int32)}
        batches.append((inputs, targets))
    task = CaptionTask(attention_penalty=dec.attention_penalty, word_weights=np.ones(vocab, "f4"))
    return make_step(task, model, optimizer, jit), batches, model, optimizer


def throughput(step, batches, images: int) -> float:
    """Images/s of ``step`` over about ``images`` images (cycling through ``batches``)."""
    count, i, tic = 0, 0, time.perf_counter()
    while count < images:
        stats = step(batches[i % len(batches)])
        float(stats["count"])  # wait for the step
        count += int(stats["count"])
        i += 1
    return count / (time.perf_counter() - tic)


def interleaved(variants: dict, rounds: int, images: int) -> dict:
    """Median images/s per variant, timing each once per round, in turn."""
    for step, batches, *_ in variants.values():  # trace / compile outside the timing
        float(step(batches[0])["count"])
    seen: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (step, batches, *_) in variants.items():
            seen[name].append(throughput(step, batches, images))
    return {
        name: {
            "images_per_second": round(statistics.median(v), 1),
            "rounds": [round(x, 1) for x in v],
        }
        for name, v in seen.items()
    }


def with_ratios(results: dict, baseline: str) -> dict:
    base = results[baseline]["images_per_second"]
    for value in results.values():
        value["ratio_to_baseline"] = round(value["images_per_second"] / base, 3)
    return results


def load_inputs(root: str, n: int):
    """Training images and labels (the first ``n`` of the train split), and their features
    from a default (untrained: only shapes and cost matter) encoder."""
    from captioning.config import ModelConfig
    from captioning.data.dataset import PreparedData
    from captioning.models.captioner import encode_images
    from captioning.models.classifier import build_classifier

    data = PreparedData(root)
    train = data.split("train")
    images, labels = train.images[:n], train.labels[:n]
    encoder = build_classifier(ModelConfig(), len(data.classes)).get_layer("encoder")
    return images, labels, encode_images(encoder, images)


def measure(root: str, smoke: bool, levers: bool) -> dict:
    """Classifier and captioner stage-1 variants (all levers, or the baselines alone)."""
    import json as _json

    from captioning.captions.templates import load_template_set

    n = 512 if smoke else 2048
    images, labels, features = load_inputs(root, n)
    pretrained = ROOT / "captioning" / "pretrained" / "captioner"
    vocab = len(_json.loads((pretrained / "vocabulary.json").read_text())["tokens"])
    readout = len(load_template_set().fields)  # the default set's findings: read-out size
    rounds, count = (1, 256) if smoke else (3, 1536)
    cls = {"float32": ("float32", False, 128)}
    cap = dict(cls)
    if levers:
        cls |= {
            "xla": ("float32", True, 128),
            "bf16": ("mixed_bfloat16", False, 128),
            "bf16_xla": ("mixed_bfloat16", True, 128),
            "batch256": ("float32", False, 256),
            "batch512": ("float32", False, 512),
            "xla_batch256": ("float32", True, 256),
        }
        cap |= {k: cls[k] for k in ("xla", "bf16", "bf16_xla", "batch256", "xla_batch256")}
    classifier = {k: classifier_variant(images, labels, b, p, j) for k, (p, j, b) in cls.items()}
    out = {"classifier": with_ratios(interleaved(classifier, rounds, count), "float32")}
    caption = {
        k: caption_variant(features, b, p, j, vocab, readout) for k, (p, j, b) in cap.items()
    }
    out["captioner_stage1"] = with_ratios(interleaved(caption, rounds, count), "float32")
    return out


def threads_child(root: str, smoke: bool, intra: int, inter: int) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return measure(root, smoke, levers=False)


def threads(root: str, smoke: bool, rounds: int) -> dict:
    """Baseline images/s per (intra, inter) setting, each in a child process, alternated."""
    seen: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for intra, inter in THREADS:
            cmd = [sys.executable, __file__, "--data", root, "--threads", f"{intra},{inter}"]
            out = subprocess.run(
                cmd + (["--smoke"] if smoke else []), capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(f"threads {intra},{inter}: {out.stderr.strip().splitlines()[-1]}")
            child = json.loads(out.stdout.strip().splitlines()[-1])
            name = f"intra{intra}_inter{inter}"
            for model, values in child.items():
                seen.setdefault(model, {}).setdefault(name, []).append(
                    values["float32"]["images_per_second"]
                )
    return {
        model: with_ratios(
            {
                k: {"images_per_second": round(statistics.median(v), 1), "rounds": v}
                for k, v in per.items()
            },
            "intra0_inter0",
        )
        for model, per in seen.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST root")
    parser.add_argument("--out", help="JSON file (default experiments/benchmarks/levers.json)")
    parser.add_argument("--smoke", action="store_true", help="few images and steps")
    parser.add_argument("--threads", help=argparse.SUPPRESS)  # child: "intra,inter"
    args = parser.parse_args()
    if args.threads:
        intra, inter = (int(x) for x in args.threads.split(","))
        print(json.dumps(threads_child(args.data, args.smoke, intra, inter)))
        return
    load_before = os.getloadavg()
    result = {"smoke": args.smoke, "load_average_before": load_before}
    result["levers"] = measure(args.data, args.smoke, levers=True)
    result["threads"] = threads(args.data, args.smoke, 1 if args.smoke else 2)
    from captioning.data.dataset import PreparedData

    record("levers", result, args.out, data_card=PreparedData(args.data).card)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
