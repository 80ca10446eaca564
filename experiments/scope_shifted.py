"""Same modality, other acquisition: MedNIST test images placed in a larger field, cropped,
rotated by small angles, gamma- or contrast-shifted, with noise, and at other sizes (each
written as a PNG of its own size and read back by the normal decoding rules). Each must stay in
scope with its class, or be flagged; in scope with a wrong class is the failure.

    python experiments/scope_shifted.py RUN_DIR [--per-class 50] [--out JSON] [--seed 0]

Reports per shift and overall: the share in scope with the right class, in scope with a wrong
class, and flagged, for the run's method and the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scope_common import record, run_scope, to_64

from captioning.scope import encoder_outputs

KEYS = ("in_scope_right", "in_scope_wrong", "flagged")


def larger_field(x, side):
    field = np.zeros((side, side), np.uint8)
    at = (side - 64) // 2
    field[at : at + 64, at : at + 64] = x
    return to_64(field)


def crop(x, share):
    side = round(64 * share)
    at = (64 - side) // 2
    return to_64(np.ascontiguousarray(x[at : at + side, at : at + side]))


def rotate(x, degrees):
    image = Image.fromarray(x).rotate(degrees, Image.Resampling.BILINEAR, fillcolor=int(x.min()))
    return np.asarray(image)


def gamma(x, g):
    return (255.0 * (x / 255.0) ** g).round().astype(np.uint8)


def contrast(x, c):
    return np.clip(x.mean() + c * (x - x.mean()), 0, 255).round().astype(np.uint8)


def noisy(x, sigma, rng):
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).round().astype(np.uint8)


def resized(x, side):
    return to_64(np.asarray(Image.fromarray(x).resize((side, side), Image.Resampling.BICUBIC)))


def shifts(rng) -> dict:
    """Name -> function of one (64, 64) uint8 image."""
    out = {f"field_{s}": (lambda x, s=s: larger_field(x, s)) for s in (80, 96, 128)}
    out |= {f"crop_{f}": (lambda x, f=f: crop(x, f)) for f in (0.9, 0.8)}
    out |= {f"rotate_{a}": (lambda x, a=a: rotate(x, a)) for a in (-10, -5, 5, 10)}
    out |= {f"gamma_{g}": (lambda x, g=g: gamma(x, g)) for g in (0.7, 1.5)}
    out |= {f"contrast_{c}": (lambda x, c=c: contrast(x, c)) for c in (0.8, 1.2)}
    out |= {f"noise_{s}": (lambda x, s=s: noisy(x, s, rng)) for s in (5, 10)}
    out |= {f"size_{s}": (lambda x, s=s: resized(x, s)) for s in (128, 256, 512)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    model, scope, data = run_scope(run_dir)
    rng = np.random.default_rng(args.seed)
    test = data.split("test")
    pick = np.concatenate(
        [
            rng.choice(np.flatnonzero(test.labels == k), args.per_class, replace=False)
            for k in np.unique(test.labels)
        ]
    )
    images, labels = test.images[pick], test.labels[pick]
    result = {"run_dir": str(run_dir), "run_method": scope.method, "n_per_shift": len(pick)}
    per_shift: dict = {}
    totals = {m: np.zeros(3) for m in scope.methods}  # right in scope, wrong in scope, flagged
    for name, shift in shifts(rng).items():
        shifted = np.stack([shift(x) for x in images])
        evidence = encoder_outputs(model, shifted)
        right = evidence["logits"].argmax(1) == labels
        per_shift[name] = {"class_accuracy": round(float(right.mean()), 6)}
        for method in scope.methods:
            inside = scope.scores(evidence, method) <= scope.thresholds[method]
            counts = np.array([(inside & right).sum(), (inside & ~right).sum(), (~inside).sum()])
            totals[method] += counts
            per_shift[name][method] = dict(zip(KEYS, (counts / len(pick)).round(6), strict=True))
        print(name, per_shift[name], flush=True)
    n = len(pick) * len(per_shift)
    result["overall"] = {
        m: dict(zip(KEYS, (t / n).round(6), strict=True)) for m, t in totals.items()
    }
    result["per_shift"] = per_shift
    print("overall", result["overall"])
    record(
        "scope_shifted",
        result,
        {"root": str(data.root), "manifest_sha256": data.manifest_sha256, "split": "test"},
        args.out,
    )


if __name__ == "__main__":
    main()
