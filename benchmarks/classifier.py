"""Benchmark the classifier against the seed notebook's approach, in the same run.

    python benchmarks/classifier.py --data ~/.cache/captioning/mednist
    python benchmarks/classifier.py --data DIR --smoke       # seconds, checks the script only

Measures (results: experiments/benchmarks/classifier.json, printed as a table):
- input pipeline images/s: ours (decoded cache -> tf.data, batch augmentation, prefetch) vs
  the seed's approach (decode each JPEG with Pillow to 32x32 RGB, augment each batch);
- classifier training: wall seconds of the whole command, seconds of the training loop,
  seconds to first reach 99.5% validation accuracy (and each run's over ours), test accuracy
  and errors, peak RSS;
  ours (default config) vs the seed replica (experiments/classifier_seed_replica.toml: the
  seed's model in our pipeline and loop) vs the seed notebook as it ran (its Keras 2
  ImageDataGenerator pipeline and model.fit, benchmarks/seed_notebook.py, needs tf_keras).
Nothing here asserts a time: it records what this machine did.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import ROOT, record


def pipeline_ours(data, seconds: float) -> float:
    """Images/s of the training pipeline (with the default augmentation) from the cache."""
    import tensorflow as tf

    from captioning.config import AugmentConfig
    from captioning.data.pipeline import make_dataset_fn

    train = data.split("train")
    fn = make_dataset_fn(
        train.images,
        train.labels,
        128,
        training=True,
        augment=AugmentConfig(),
    )
    count, start = 0, time.perf_counter()
    for epoch in range(100):
        for pixels, _ in fn(tf.distribute.InputContext(), epoch):
            count += int(pixels.shape[0])
            if time.perf_counter() - start > seconds:
                return count / (time.perf_counter() - start)
    return count / (time.perf_counter() - start)


def pipeline_seed(data, seconds: float) -> float:
    """Images/s of the seed's approach: Pillow decode per image to 32x32 RGB, then the seed's
    augmentation (shear, zoom, flip) on each batch of 32 with Keras preprocessing layers."""
    import keras
    import numpy as np
    from PIL import Image

    augment = keras.Sequential(
        [
            keras.layers.RandomShear(0.2, 0.2),
            keras.layers.RandomZoom(0.2),
            keras.layers.RandomFlip("horizontal"),
        ]
    )
    paths = [data.image_dir / p for p in data.split("train").paths]
    count, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        batch = []
        for path in paths[i : i + 32]:
            with Image.open(path) as image:
                batch.append(np.asarray(image.convert("RGB").resize((32, 32)), np.float32) / 255)
        augment(np.stack(batch), training=True)
        count += len(batch)
        i = (i + 32) % (len(paths) - 32)
    return count / (time.perf_counter() - start)


def train_and_evaluate(name: str, data_root: str, workdir: Path, extra: list[str]) -> dict:
    """Run the real CLI (train, then evaluate) in a subprocess; collect what it wrote."""
    run = workdir / name
    train = [
        sys.executable,
        "-m",
        "captioning.cli",
        "train",
        "classifier",
        "--data",
        data_root,
        "--run-dir",
        str(run),
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    out = run / "test.json"
    subprocess.run(
        [sys.executable, "-m", "captioning.cli", "evaluate", "--run", str(run), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    report = json.loads(out.read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    elapsed, to_995 = 0.0, None
    for row in rows:
        elapsed += float(row["seconds"])
        if to_995 is None and float(row["val_accuracy"]) >= 0.995:
            to_995 = round(elapsed, 1)
    return {
        "command": shlex.join(train),
        "wall_seconds": round(wall, 1),
        "train_loop_seconds": metrics["train_seconds_this_process"],
        "seconds_to_val_99.5": to_995,
        "epochs": len(rows),
        "val_accuracy_per_epoch": [round(float(r["val_accuracy"]), 5) for r in rows],
        "test_accuracy": report["accuracy"],
        "test_errors": report["error_count"],
        "test_n": report["n"],
        "peak_rss_mib": metrics["peak_rss_mib"],
        "parameters": metrics["parameters"],
    }


def seed_notebook(data_root: str, smoke: bool) -> dict:
    """The seed's own pipeline and model.fit (benchmarks/seed_notebook.py, needs tf_keras)."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("seed_notebook.py")),
        "--data",
        data_root,
        *(["--epochs", "1", "--limit", "256"] if smoke else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:], "command": shlex.join(command)}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "command": shlex.join(command)}


def ratios_to_995(training: dict) -> dict:
    """Seconds to first reach 99.5% validation accuracy, each other run over ours (None when
    a run never reached it in its epochs)."""
    ours = training["ours"]["seconds_to_val_99.5"]
    ratios = {}
    for name in ("seed_replica", "seed_notebook"):
        theirs = training[name].get("seconds_to_val_99.5")
        ratios[f"{name}_over_ours"] = round(theirs / ours, 2) if theirs and ours else None
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--out", help="default: experiments/benchmarks/classifier.json")
    parser.add_argument("--seconds", type=float, default=15, help="per pipeline measurement")
    parser.add_argument("--skip-seed-training", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script")
    args = parser.parse_args()

    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    seconds = 2 if args.smoke else args.seconds
    ours, seed = pipeline_ours(data, seconds), pipeline_seed(data, seconds)
    result = {
        "data": {
            "root": str(data.root),
            "manifest_sha256": data.manifest_sha256,
            "split_sizes": data.card["split_sizes"],
        },
        "pipeline_images_per_second": {
            "ours_cache_tfdata": round(ours),
            "seed_decode_per_image": round(seed),
            "ratio": round(ours / seed, 1),
        },
    }
    extra = ["--smoke"] if args.smoke else []
    with tempfile.TemporaryDirectory(prefix="bench-classifier-") as tmp:
        training = {"ours": train_and_evaluate("ours", args.data, Path(tmp), extra)}
        if not args.skip_seed_training:
            seed_config = str(ROOT / "experiments/classifier_seed_replica.toml")
            training["seed_replica"] = train_and_evaluate(
                "seed_replica", args.data, Path(tmp), ["--config", seed_config, *extra]
            )
            training["seed_notebook"] = seed_notebook(args.data, smoke=args.smoke)
            ours = training["ours"]["train_loop_seconds"]
            training["train_seconds_ratio"] = {
                "seed_replica_in_our_pipeline_over_ours": round(
                    training["seed_replica"]["train_loop_seconds"] / ours, 2
                ),
                "seed_notebook_over_ours": round(
                    training["seed_notebook"]["train_seconds"] / ours, 2
                ),
            }
            training["seconds_to_val_99.5_ratio"] = ratios_to_995(training)
    result["training"] = training
    print(json.dumps(result, indent=2))
    record("classifier", result, args.out, data_card=data.card)


if __name__ == "__main__":
    main()
