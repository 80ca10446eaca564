"""How well can orientation be read at all: a CNN trained for orientation alone, and the test
images that are ambiguous by nature (near-blank, or nearly the same turned).

    python experiments/orientation_ceiling.py --data MEDNIST_PREPARED [--epochs 3] \
        [--model stem_stride=2 --model "widths=[32,64,128,128]" ...] \
        [--name acquisition/orientation_ceiling]
    python experiments/orientation_ceiling.py --data MEDNIST_PREPARED --run CLASSIFIER_RUN \
        --name acquisition/orientation_ceiling-NAME

The acquisition caption set turns each image by a multiple of 90 degrees (a seeded draw per
image, ``captioning.captions.acquisition``). Its issue asks captions to state the turn right
for >= 97% of images; where an image looks alike turned, no reader can. Here the project's
encoder architecture (``ModelConfig`` defaults), from random weights, with one 4-way linear
head (``--model KEY=VALUE``: another ``[model]`` setting, as ``--set model.KEY=VALUE``), is
trained on the orientation of the whole train split as the set acquires it (turned
and shifted, the set's own draws) and scored on the whole test split (its own draws):
balanced accuracy, per class, and on two kinds of ambiguous image, counted first:

- near-blank: standard deviation below the quality flag's 2 grey levels (the captions call
  them non-diagnostic);
- nearly rotation-symmetric: the upright image differs from some turn of itself by less than
  10% (or 20%) of its own mean absolute deviation (``symmetry``);
- without a layout: its coarse layout (the means of 8x8 blocks of pixels) differs from that
  of some turn of itself by less than 10% (or 20%) of the image's own mean absolute
  deviation (``layout_symmetry``): a crop of lung texture, an oval skull top, whose pixels
  change when turned but whose arrangement does not. The limits are the symmetry's, fixed
  before any measurement.

``--run``: instead of training, the ``orientation`` head of a ``train classifier`` run of label
columns (experiments/acquisition_labelled.py: class, orientation and position of the set's
train and val images, with the classifier's own recipe), scored the same way.

Nothing here is fitted on the test split; one seed, a few epochs: a floor on the ceiling.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from acquisition_probe import acquired  # noqa: E402
from scope_common import record  # noqa: E402

SYMMETRY_LIMITS = (0.1, 0.2)


def symmetry(images: np.ndarray) -> np.ndarray:
    """(N,) how far each upright image (N, H, W) is from its nearest turn: min over the three
    turns of mean |x - rot90(x, k)|, over mean |x - mean(x)| (0: it looks the same turned)."""
    x = images.astype(np.float32)
    spread = np.abs(x - x.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2)) + 1e-6
    turned = [np.abs(x - np.rot90(x, k, axes=(1, 2))).mean(axis=(1, 2)) for k in (1, 2, 3)]
    return np.min(turned, axis=0) / spread


def layout_symmetry(images: np.ndarray, block: int = 8) -> np.ndarray:
    """(N,) how far each upright image's coarse layout (the means of ``block`` x ``block``
    blocks) is from that of its nearest turn, over the image's own mean absolute deviation
    (pixels, not blocks: texture with no arrangement scores near 0)."""
    x = images.astype(np.float32)
    n, h, w = x.shape
    coarse = x.reshape(n, h // block, block, w // block, block).mean(axis=(2, 4))
    spread = np.abs(x - x.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2)) + 1e-6
    turned = [
        np.abs(coarse - np.rot90(coarse, k, axes=(1, 2))).mean(axis=(1, 2)) for k in (1, 2, 3)
    ]
    return np.min(turned, axis=0) / spread


def train_orientation_cnn(images, labels, epochs: int, seed: int, model_config=None):
    """The project's encoder (``model_config``, default ``ModelConfig()``) and a 4-way head,
    trained from random weights on ``labels``."""
    import keras

    from captioning.config import ModelConfig
    from captioning.models.classifier import build_classifier

    keras.utils.set_random_seed(seed)
    model = build_classifier(model_config or ModelConfig(), 4)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(images[..., None].astype("float32"), labels, batch_size=128, epochs=epochs)
    return model


def by_decile(right: np.ndarray, measure: np.ndarray, where: np.ndarray) -> list[dict]:
    """The images ``where`` marks in ten groups of ``measure`` (lowest first): each group's
    count, share right and the measure's upper bound in it."""
    order = np.argsort(measure[where], kind="stable")
    groups = np.array_split(order, 10)
    values, hits = measure[where], right[where]
    return [
        {
            "n": len(g),
            "right": round(float(hits[g].mean()), 4),
            "upto": round(float(values[g].max()), 3),
        }
        for g in groups
    ]


def accuracy_on(right: np.ndarray, where: np.ndarray) -> dict:
    """Count and share right among the images ``where`` marks."""
    n = int(where.sum())
    return {"n": n, "right": round(float(right[where].mean()), 4) if n else None}


def trained(data, test_images, args) -> tuple[np.ndarray, dict]:
    """Predicted orientations (N,) of ``test_images`` by a CNN trained here on the train
    split's turns (``--model``, ``--epochs``, ``--seed``), and how it was made."""
    from dataclasses import asdict

    from captioning.captions.acquisition import ORIENTATIONS
    from captioning.config import ClassifierConfig, load_config

    train_images, train_draws = acquired(data, "train", None)
    code = {name: i for i, name in enumerate(ORIENTATIONS)}
    train_y = train_draws["orientation"].map(code).to_numpy()
    overrides = [f"model.{setting}" for setting in args.model]
    model_config = load_config(ClassifierConfig, overrides=overrides).model
    start = time.perf_counter()
    model = train_orientation_cnn(train_images, train_y, args.epochs, args.seed, model_config)
    seconds = time.perf_counter() - start
    logits = model.predict(test_images[..., None].astype("float32"), batch_size=512)
    made = {
        "n_train": len(train_y),
        "epochs": args.epochs,
        "seed": args.seed,
        "model": asdict(model_config),
        "parameters": int(model.count_params()),
        "train_seconds": round(seconds, 1),
    }
    return logits.argmax(1), made


def from_run(run_dir: Path, test_images) -> tuple[np.ndarray, dict]:
    """Predicted orientations (N,) by the ``orientation`` head of a classifier run of label
    columns (its values mapped to ``ORIENTATIONS``' order), and which run it was."""
    import json

    from captioning.captions.acquisition import ORIENTATIONS
    from captioning.evaluation.classifier import predict_heads
    from captioning.models.classifier import load_model

    run = json.loads((run_dir / "run.json").read_text())
    values = run["label_columns"]["orientation"]
    model = load_model(run_dir / "best_model.keras")
    probs = predict_heads(model, test_images)["orientation"]
    order = np.array([ORIENTATIONS.index(v) for v in values])
    made = {"run": str(run_dir), "parameters": int(model.count_params())}
    return order[probs.argmax(1)], made


def ambiguity(right: np.ndarray, data) -> dict:
    """Accuracy on the kinds of ambiguous test image, per class and by layout decile."""
    from captioning.captions.findings import QUALITY_MIN_STD, measure

    test = data.split("test")
    upright = np.asarray(test.images)  # the same images before the set turned them
    blank = measure(upright)["std"].to_numpy() < QUALITY_MIN_STD
    apart, layout = symmetry(upright), layout_symmetry(upright)
    laid_out = (layout >= max(SYMMETRY_LIMITS)) & ~blank  # a turn changes the layout
    return {
        "per_class": {
            name: accuracy_on(right, test.labels == k) for k, name in enumerate(data.classes)
        },
        "near_blank": accuracy_on(right, blank),
        "nearly_symmetric": {
            str(limit): accuracy_on(right, (apart < limit) & ~blank) for limit in SYMMETRY_LIMITS
        },
        "the_rest": accuracy_on(right, (apart >= max(SYMMETRY_LIMITS)) & ~blank),
        "without_layout": {
            str(limit): accuracy_on(right, (layout < limit) & ~blank) for limit in SYMMETRY_LIMITS
        },
        "with_layout": accuracy_on(right, laid_out),
        "by_layout_decile": by_decile(right, layout, ~blank),
        "with_layout_per_class": {
            name: accuracy_on(right, laid_out & (test.labels == k))
            for k, name in enumerate(data.classes)
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--run", type=Path, help="score this classifier run's orientation head")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="acquisition/orientation_ceiling")
    args = parser.parse_args(argv)
    from sklearn.metrics import balanced_accuracy_score

    from captioning.captions.acquisition import ORIENTATIONS
    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    test_images, test_draws = acquired(data, "test", None)
    code = {name: i for i, name in enumerate(ORIENTATIONS)}
    test_y = test_draws["orientation"].map(code).to_numpy()
    if args.run:
        predicted, made = from_run(args.run, test_images)
    else:
        predicted, made = trained(data, test_images, args)
    right = predicted == test_y
    result = {
        **made,
        "n_test": len(test_y),
        "balanced_accuracy": round(float(balanced_accuracy_score(test_y, predicted)), 4),
        "accuracy": round(float(right.mean()), 4),
        **ambiguity(right, data),
    }
    print(result, flush=True)
    record(args.name, result, {"mednist": data.root.name, "manifest_sha256": data.manifest_sha256})


if __name__ == "__main__":
    main()
