"""What a frozen encoder holds of orientation and position: linear probes on its features.

    python experiments/acquisition_probe.py --data MEDNIST_PREPARED [--run CLASSIFIER_RUN] \
        [--train-per-class 1000] [--out experiments/results/acquisition/probe_bundled.json]

The acquisition caption set (``captioning.captions.acquisition``) rotates and shifts each image
by a seeded draw. A captioner on the frozen bundled encoder read orientation right for about
half of the test images (experiments/acquisition.md). Is the information missing from the
encoder's features, or there and unread by the decoder? Here the train split (at most
``--train-per-class`` images per class) and the whole test split are acquired as the set
acquires them (same draws), and multinomial logistic regressions (scikit-learn, standardised
inputs, C=1) are fitted on the training images' features and scored on the test images, per
field, on three views: the pooled vector (what the Show-Tell decoder starts from), the feature
map flattened (what the attention decoder reads) and, as a floor, raw pixels (64x64 flattened).
Balanced accuracy over a field's values; nothing here is fitted on the test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from scope_common import record  # noqa: E402

FIELDS = ("orientation", "position")


def acquired(data, split: str, per_class: int | None, seed: int = 0):
    """A split's images as the acquisition set acquires them, and their draws."""
    from captioning.captions.acquisition import acquire

    part = data.split(split)
    rows = np.arange(len(part.labels))
    if per_class:
        rng = np.random.default_rng(seed)
        picks = [
            rng.permutation(np.flatnonzero(part.labels == k))[:per_class]
            for k in range(len(data.classes))
        ]
        rows = np.sort(np.concatenate(picks))
    paths = [part.paths[i] for i in rows]
    images, draws = acquire(np.asarray(part.images[rows]), paths, FIELDS)
    return images, draws


def views(encoder, images: np.ndarray) -> dict[str, np.ndarray]:
    """``pooled`` (N, C), ``feature_map`` (N, S*S*C) and ``pixels`` (N, H*W), float32."""
    from captioning.data.image_spec import with_channel_axis

    pooled, maps = [], []
    for i in range(0, len(images), 512):
        out = encoder(with_channel_axis(images[i : i + 512].astype("float32")), training=False)
        pooled.append(np.asarray(out["pooled"]))
        maps.append(np.asarray(out["feature_map"]).reshape(len(out["pooled"]), -1))
    pixels = images.reshape(len(images), -1).astype(np.float32)
    return {"pooled": np.concatenate(pooled), "feature_map": np.concatenate(maps), "pixels": pixels}


def probe(train_x, train_y, test_x, test_y) -> float:
    """Balanced test accuracy of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
    model.fit(train_x, train_y)
    return round(float(balanced_accuracy_score(test_y, model.predict(test_x))), 4)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--run", default=str(ROOT / "captioning" / "pretrained" / "classifier"))
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--name", default="acquisition/probe_bundled")
    args = parser.parse_args(argv)
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model

    data = PreparedData(args.data)
    encoder = load_model(Path(args.run) / "best_model.keras").get_layer("encoder")
    train_images, train_draws = acquired(data, "train", args.train_per_class)
    test_images, test_draws = acquired(data, "test", None)
    train_views, test_views = views(encoder, train_images), views(encoder, test_images)
    result = {"run": args.run, "n_train": len(train_images), "n_test": len(test_images)}
    for field in FIELDS:
        result[field] = {
            view: probe(train_views[view], train_draws[field], test_views[view], test_draws[field])
            for view in train_views
        }
        print(field, result[field], flush=True)
    record(args.name, result, {"mednist": data.root.name, "manifest_sha256": data.manifest_sha256})


if __name__ == "__main__":
    main()
