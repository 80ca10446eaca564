"""What the findings' labels can teach: learners that see exact statistics, trained on labels.

    python experiments/findings_learnability.py --data MEDNIST_PREPARED [--epochs 20] \
        [--name findings_study/findings_learnability]

Expect (2-core CPU, about 30 minutes): every learner below is right on fewer test images than
the fitted read-out (99.91 / 99.98 / 99.95%), the converged one included.

The learned path (``decoder.readout=false``, ``decoder.field_heads=true``) must learn extent,
density and brightness from the captions' own labels (two values each, split at a cut point);
a read-out fitted in closed form to the pixel rules' measurements is what the default uses
(experiments/findings_accuracy.md). Here the question is how far the labels alone carry a
learner that is given everything it needs, so that the encoder's features are not the limit:

- ``logistic_lbfgs``: logistic regression (scikit-learn, L-BFGS run to convergence) on the
  image's exact cumulative intensity histogram (``IntensityHistogram``: 510 shares of the frame
  at or above each grey level, as stored and above the image's minimum), standardised; each
  finding's inverse regularisation C chosen on the validation split. Each measurement is one
  of these columns or a weighted sum of them, so a perfect reader exists in this model class.
  Also trained on a quarter and a half of the train split, to show how the error moves with
  the number of labelled images.
- ``logistic_l1``: the same with an L1 penalty (liblinear, 2,000 iterations at most), which
  prefers few columns: a learner whose bias suits a finding that is one column.
- ``logistic_adam``: the same linear model (batch-normalised input), trained by Adam on the
  cross-entropy for ``--epochs`` epochs: the optimiser the captioner trains with.
- ``pixel_branch``: features learned from the pixels that can threshold single pixels (the
  project's encoder mixes 4x4 patches before any non-linearity and cannot): two 1x1
  convolutions with ReLU on each grey level and the image's minimum, averaged over the frame,
  batch-normalised, a 2-way head per finding; Adam, ``--epochs`` epochs. Its first layer's
  ramps start at random grey levels, uniform over the range: nothing is taken from the rules.

Each is scored on the test split's diagnostic images: each field right, all three right, and
each field's share right against the distance of the image's measurement from its cut point.
Nothing is fitted on the test split; one seed.
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
from findings_ceiling import FINDINGS, _share, by_distance, split_targets  # noqa: E402
from scope_common import record  # noqa: E402

# inverse regularisation strengths tried on validation, per penalty
C_GRID = {"l2": (1.0, 100.0, 10000.0), "l1": (0.1, 1.0, 10.0)}
TRAIN_SHARES = (0.25, 0.5)  # smaller train splits for the L-BFGS learner (plus the whole)


def histograms(images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """(N, S, S) uint8 -> (N, 510) float32: the cumulative intensity histogram the read-out
    reads (``IntensityHistogram``), computed by that layer."""
    from captioning.models.layers import IntensityHistogram

    layer = IntensityHistogram()
    chunks = [
        np.asarray(layer(images[i : i + batch, ..., None].astype("float32")))
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(chunks)


def logistic(train, val, test, rows=None, penalty: str = "l2") -> tuple[np.ndarray, dict]:
    """Each finding's logistic regression on standardised histograms, C chosen on ``val``:
    the test predictions (N, 3) and the chosen C per finding. ``train``/``val``/``test``:
    (histograms, value ids); ``rows`` limits the training images; ``penalty`` l2 (L-BFGS)
    or l1 (liblinear)."""
    from sklearn.preprocessing import StandardScaler

    x, y = (train[0], train[1]) if rows is None else (train[0][rows], train[1][rows])
    scaler = StandardScaler().fit(x)
    x, xv, xt = scaler.transform(x), scaler.transform(val[0]), scaler.transform(test[0])
    predictions, chosen = np.zeros((len(xt), len(FINDINGS)), int), {}
    for j, name in enumerate(FINDINGS):
        fits = {c: _logistic(c, penalty).fit(x, y[:, j]) for c in C_GRID[penalty]}
        best = max(C_GRID[penalty], key=lambda c: (fits[c].predict(xv) == val[1][:, j]).mean())
        predictions[:, j], chosen[name] = fits[best].predict(xt), best
    return predictions, chosen


def _logistic(c: float, penalty: str):
    """An unfitted logistic regression; liblinear visits coordinates in a random order, so
    its seed is fixed."""
    from sklearn.linear_model import LogisticRegression

    if penalty == "l1":  # l1_ratio 1: the whole penalty L1
        return LogisticRegression(
            C=c, l1_ratio=1.0, solver="liblinear", max_iter=2000, random_state=0
        )
    return LogisticRegression(C=c, max_iter=5000)


def _heads_model(inputs, features):
    """A 2-way head per finding on ``features`` (B, D), batch-normalised first."""
    import keras

    normalised = keras.layers.BatchNormalization()(features)
    outputs = {f: keras.layers.Dense(2, name=f)(normalised) for f in FINDINGS}
    return keras.Model(inputs, outputs)


def pixel_branch_model(width: int = 32, slope: float = 30.0, seed: int = 0):
    """Pixels (B, S, S, 1) in 0..255 -> each finding's logits, through per-pixel features
    (1x1 convolutions on the grey level and the image's minimum) averaged over the frame."""
    import keras
    from keras import layers, ops

    pixels = keras.Input((None, None, 1))
    grey = pixels / 255.0
    darkest = ops.min(grey, axis=(1, 2), keepdims=True) * ops.ones_like(grey)
    first = layers.Conv2D(width, 1, activation="relu")
    hidden = first(ops.concatenate([grey, darkest], -1))  # (B, S, S, width)
    hidden = layers.Conv2D(width, 1, activation="relu")(hidden)
    model = _heads_model(pixels, layers.GlobalAveragePooling2D()(hidden))
    # ramps of the given slope that start at random grey levels, uniform over the range
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, slope, (1, 1, 2, width)).astype("float32")
    starts = rng.uniform(0, 1, (2, width)).astype("float32")
    first.set_weights([kernel, -(kernel[0, 0] * starts).sum(0)])
    return model


def fit_adam(model, x, y, epochs: int, lr: float = 1e-2):
    """Train ``model`` on the findings' cross-entropy by Adam (cosine decay over ``epochs``,
    batch 256) and return the trained model."""
    import keras

    steps = epochs * max(1, len(x) // 256)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps)),
        loss={f: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for f in FINDINGS},
    )
    model.fit(x, {f: y[:, j] for j, f in enumerate(FINDINGS)}, batch_size=256,
              epochs=epochs, verbose=2)  # fmt: skip
    return model


def predict(model, x) -> np.ndarray:
    """(N, 3) value ids: each finding's most likely value."""
    logits = model.predict(x, batch_size=1024, verbose=0)
    return np.stack([logits[f].argmax(1) for f in FINDINGS], 1)


def score(predictions: np.ndarray, truth: np.ndarray, distance: np.ndarray) -> dict:
    """Each field right (overall and by distance from its cut point) and all three right."""
    result = {}
    for j, name in enumerate(FINDINGS):
        right = predictions[:, j] == truth[:, j]
        result[name] = {"right": _share(right), "by_distance": by_distance(right, distance[:, j])}
    result["all_right"] = _share((predictions == truth).all(1))
    return result


def diagnostic_split(data, frame, split: str):
    """A split's diagnostic images (N, S, S) and their value ids (N, 3), with the rows kept."""
    images, targets = split_targets(data, frame, split)
    stated = (targets >= 0).all(1)
    return images[stated], targets[stated], stated


def cut_distances_of(data, frame, stated) -> np.ndarray:
    """(N, 3): each kept test image's |distance| from each cut point, in shares of the
    field's 5-95% training range."""
    signed, _ = distances(data.root)
    paths = frame.iloc[data.split("test").rows]["path"][stated]
    return np.stack([np.abs(paths.map(signed[f]).to_numpy()) for f in FINDINGS], 1)


def run_learners(args, train, val, test, distance) -> dict:
    """Every learner of the module docstring, timed and scored."""
    import keras

    (images, y), (images_test, y_test) = train, test
    hist = (histograms(images), y)
    hist_val, hist_test = (histograms(val[0]), val[1]), (histograms(images_test), y_test)
    results, rng = {}, np.random.default_rng(args.seed)
    for share in (*TRAIN_SHARES, 1.0):
        rows = None if share == 1.0 else np.sort(rng.permutation(len(y))[: int(share * len(y))])
        start = time.perf_counter()
        predictions, chosen = logistic(hist, hist_val, hist_test, rows)
        key = "logistic_lbfgs" if share == 1.0 else f"logistic_lbfgs_train_share_{share}"
        results[key] = {**score(predictions, y_test, distance), "C": chosen,
                        "n_train": len(y) if rows is None else len(rows),
                        "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    start = time.perf_counter()
    predictions, chosen = logistic(hist, hist_val, hist_test, penalty="l1")
    results["logistic_l1"] = {**score(predictions, y_test, distance), "C": chosen,
                              "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    learners = {
        "logistic_adam": (lambda: _linear_model(hist[0].shape[1]), hist[0], hist_test[0]),
        "pixel_branch": (lambda: pixel_branch_model(seed=args.seed), images, images_test),
    }
    for name, (build, x, x_test) in learners.items():
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        model = fit_adam(build(), _as_input(x), y, args.epochs)
        seconds = round(time.perf_counter() - start, 1)
        predictions = predict(model, _as_input(x_test))
        results[name] = {**score(predictions, y_test, distance), "epochs": args.epochs,
                         "seconds": seconds}  # fmt: skip
        print(name, results[name]["all_right"], flush=True)
    return results


def _linear_model(features: int):
    import keras

    inputs = keras.Input((features,))
    return _heads_model(inputs, inputs)


def _as_input(x: np.ndarray) -> np.ndarray:
    """Histograms as they are; images (N, S, S) as (N, S, S, 1) floats."""
    return x if x.ndim == 2 else x[..., None].astype("float32")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--epochs", type=int, default=20, help="Adam learners' epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="findings_study/findings_learnability")
    args = parser.parse_args(argv)
    from captioning.data.caption_data import caption_frame
    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    frame = caption_frame(data, "findings")
    train = diagnostic_split(data, frame, "train")[:2]
    val = diagnostic_split(data, frame, "val")[:2]
    *test, stated = diagnostic_split(data, frame, "test")
    distance = cut_distances_of(data, frame, stated)
    results = run_learners(args, train, val, test, distance)
    result = {"n_train": len(train[1]), "n_val": len(val[1]), "n_test_diagnostic": len(test[1]),
              "seed": args.seed, "learners": results}  # fmt: skip
    record(args.name, result, {"mednist": data.root.name, "manifest_sha256": data.manifest_sha256})


if __name__ == "__main__":
    main()
