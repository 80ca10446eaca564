"""How well a CNN learns the findings when trained for them alone: the learned path's ceiling.

    python experiments/findings_ceiling.py --data MEDNIST_PREPARED [--epochs 12] \
        [--init bundled|random] [--name findings_study/findings_ceiling-bundled-12epochs]

The default captioner states extent, density and brightness from a read-out fitted in closed
form to the pixel rules (experiments/findings_accuracy.md); the learned path
(``decoder.readout=false``, ``decoder.field_heads=true``) must learn them from its features.
Here the project's encoder architecture (``ModelConfig`` defaults), from the bundled
classifier's encoder weights or from random ones, with one 2-way linear head per finding on
its pooled vector, is trained on the three findings of the ``findings`` set (the captions'
own labels; near-blank images, which state none, are left out) over the whole train split,
and scored on the test split's diagnostic images: each field right, all three right, and each
field's errors against the distance of the image's measurement from its cut point (in shares
of the measurement's 5-95% range, as ``findings_accuracy.py`` measures it), which is where a
learned reading can blur.

Nothing here is fitted on the test split; one seed: what training for the findings alone
reaches in these epochs, a floor on what the captioner's learned path could.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from findings_accuracy import distances  # noqa: E402
from scope_common import record  # noqa: E402

FINDINGS = ("extent", "density", "brightness")
BANDS = (0.0025, 0.01, 0.05)  # distance from the cut point, as a share of the 5-95% range


def split_targets(data, frame, split: str):
    """A split's images (N, S, S) and each finding's value id (N, 3), -1 where none is stated."""
    from captioning.captions.findings import field_ids

    part = data.split(split)
    return np.asarray(part.images), field_ids(frame.iloc[part.rows], FINDINGS)


def train_findings_cnn(images, targets, epochs: int, init: str, seed: int):
    """The project's encoder (``init``: the bundled classifier's weights, or random) and a
    2-way head per finding, trained on ``targets`` (-1 rows weigh nothing)."""
    import keras

    from captioning.bundled import bundled_run
    from captioning.config import ModelConfig
    from captioning.models.classifier import build_multi_head_classifier, load_model

    keras.utils.set_random_seed(seed)
    model = build_multi_head_classifier(ModelConfig(), dict.fromkeys(FINDINGS, 2))
    if init == "bundled":
        bundled = load_model(bundled_run("classifier") / "best_model.keras")
        model.get_layer("encoder").set_weights(bundled.get_layer("encoder").get_weights())
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss={f: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for f in FINDINGS},
    )
    labels = {f: np.maximum(targets[:, j], 0) for j, f in enumerate(FINDINGS)}
    weights = {f: (targets[:, j] >= 0).astype("float32") for j, f in enumerate(FINDINGS)}
    model.fit(images[..., None].astype("float32"), labels, sample_weight=weights,
              batch_size=128, epochs=epochs)  # fmt: skip
    return model


def by_distance(right: np.ndarray, distance: np.ndarray) -> dict:
    """Share right, and count, within each band of distance from the cut point and beyond."""
    out = {}
    for band in BANDS:
        near = distance < band
        out[f"within_{band}"] = {"n": int(near.sum()), "right": _share(right[near])}
    far = distance >= max(BANDS)
    out[f"beyond_{max(BANDS)}"] = {"n": int(far.sum()), "right": _share(right[far])}
    return out


def _share(values: np.ndarray):
    return round(float(values.mean()), 5) if len(values) else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--init", choices=("bundled", "random"), default="bundled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    from captioning.data.caption_data import caption_frame
    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    frame = caption_frame(data, "findings")
    train_images, train_targets = split_targets(data, frame, "train")
    test_images, test_targets = split_targets(data, frame, "test")
    start = time.perf_counter()
    model = train_findings_cnn(train_images, train_targets, args.epochs, args.init, args.seed)
    seconds = time.perf_counter() - start
    logits = model.predict(test_images[..., None].astype("float32"), batch_size=512)
    stated = (test_targets >= 0).all(1)  # diagnostic images state every finding
    # each test image's distance from each cut point, in shares of the field's 5-95% range
    signed, _ = distances(args.data)
    paths = frame.iloc[data.split("test").rows]["path"]
    result = {"n_train": len(train_images), "n_test_diagnostic": int(stated.sum()),
              "epochs": args.epochs, "init": args.init, "seed": args.seed,
              "train_seconds": round(seconds, 1)}  # fmt: skip
    every = stated.copy()
    for j, name in enumerate(FINDINGS):
        right = logits[name].argmax(1) == test_targets[:, j]
        every &= right
        distance = np.abs(paths.map(signed[name]).to_numpy())
        result[name] = {
            "right": _share(right[stated]),
            "by_distance": by_distance(right[stated], distance[stated]),
        }
    result["all_right"] = _share(every[stated])
    print(result, flush=True)
    name = args.name or f"findings_study/findings_ceiling-{args.init}-{args.epochs}epochs"
    record(name, result, {"mednist": data.root.name, "manifest_sha256": data.manifest_sha256})


if __name__ == "__main__":
    main()
