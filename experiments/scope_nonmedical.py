"""Non-medical images against a run's out-of-scope rule: crops of scikit-learn's two sample
photographs, noise, gradients and checkerboards, as 64x64 grayscale through the normal
decoding rules; the in-distribution side is the run's test split.

    python experiments/scope_nonmedical.py RUN_DIR [--per-kind 100] [--out JSON] [--seed 0]

Reports, for every method, AUROC (non-medical as positives) and the share of each kind flagged
at the method's threshold. Flat images are near-blank frames, which MedNIST has (its captions
call them non-diagnostic): they are reported on their own and not counted as out of scope. So
are ``faint`` patterns (gradients and checkerboards spanning fewer than ``FOREGROUND_STEP`` = 32
grey levels): by the findings' own rule such a frame holds no anatomy, a near-blank frame too.
Counted gradients and checkerboards span at least 32 grey levels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scope_common import detection, record, run_scope, to_64

from captioning.captions.findings import FOREGROUND_STEP
from captioning.scope import encoder_outputs


def photo_crops(n: int, rng) -> np.ndarray:
    """Square crops (32..400 px) of the sample photographs, in grayscale."""
    from sklearn.datasets import load_sample_images

    photos = [
        np.asarray(img, np.float64) @ [0.299, 0.587, 0.114] for img in load_sample_images().images
    ]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(32, min(photo.shape[:2])))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        out.append(to_64(photo[y : y + side, x : x + side].round().astype(np.uint8)))
    return np.stack(out)


def noise(n: int, rng) -> np.ndarray:
    """Uniform, Gaussian (random mean and spread) and salt-and-pepper noise."""
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            x = rng.uniform(0, 255, (64, 64))
        elif kind == 1:
            x = rng.normal(rng.uniform(30, 220), rng.uniform(10, 80), (64, 64))
        else:
            x = np.where(rng.random((64, 64)) < rng.uniform(0.05, 0.5), 255.0, 0.0)
        out.append(np.clip(x, 0, 255).round().astype(np.uint8))
    return np.stack(out)


def levels(rng, faint: bool) -> tuple[float, float]:
    """Two grey levels at least ``FOREGROUND_STEP`` apart, or (``faint``) fewer than that."""
    span = rng.uniform(1, FOREGROUND_STEP - 1) if faint else rng.uniform(FOREGROUND_STEP, 255)
    low = rng.uniform(0, 255 - span)
    return low, low + span


def gradients(n: int, rng, faint: bool = False) -> np.ndarray:
    """Linear gradients at random angles and ranges, and radial ones."""
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    out = []
    for i in range(n):
        low, high = levels(rng, faint)
        if i % 2:
            angle = rng.uniform(0, 2 * np.pi)
            t = np.cos(angle) * xx + np.sin(angle) * yy
        else:
            cy, cx = rng.uniform(0, 1, 2)
            t = np.hypot(yy - cy, xx - cx)
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
        out.append((low + (high - low) * t).round().astype(np.uint8))
    return np.stack(out)


def checkerboards(n: int, rng, faint: bool = False) -> np.ndarray:
    """Checkerboards of periods 2..32 px and random grey levels, at random offsets."""
    yy, xx = np.mgrid[0:64, 0:64]
    out = []
    for _ in range(n):
        period = int(rng.integers(2, 33))
        dy, dx = rng.integers(0, period, 2)
        low, high = levels(rng, faint)
        board = ((yy + dy) // period + (xx + dx) // period) % 2
        out.append(np.where(board, high, low).round().astype(np.uint8))
    return np.stack(out)


def flat(n: int, rng) -> np.ndarray:
    """Uniform grey frames (near-blank: in MedNIST's own scope)."""
    return np.stack([np.full((64, 64), int(v), np.uint8) for v in rng.integers(0, 256, n)])


KINDS = {"photo": photo_crops, "noise": noise, "gradient": gradients, "checkerboard": checkerboards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    model, scope, data = run_scope(run_dir)
    rng = np.random.default_rng(args.seed)
    images = {kind: make(args.per_kind, rng) for kind, make in KINDS.items()}
    images["flat"] = flat(args.per_kind, rng)
    half = args.per_kind // 2
    images["faint"] = np.concatenate([gradients(half, rng, True), checkerboards(half, rng, True)])
    test = data.split("test")
    test_evidence = encoder_outputs(model, test.images)
    outputs = {kind: encoder_outputs(model, x) for kind, x in images.items()}
    result = {"run_dir": str(run_dir), "run_method": scope.method, "methods": {}}
    for method in scope.methods:
        threshold = scope.thresholds[method]
        inside = scope.scores(test_evidence, method)
        scores = {k: scope.scores(outputs[k], method) for k in images}
        counted = np.concatenate([scores[k] for k in KINDS])
        entry = detection(inside, counted, threshold)
        entry["flagged_per_kind"] = {
            k: round(float(np.mean(s > threshold)), 6) for k, s in scores.items()
        }
        result["methods"][method] = entry
        print(method, entry, flush=True)
    result["n_per_kind"] = args.per_kind
    result["n_in"] = len(test)
    record(
        "scope_nonmedical",
        result,
        {"root": str(data.root), "manifest_sha256": data.manifest_sha256, "split": "test"},
        args.out,
    )


if __name__ == "__main__":
    main()
