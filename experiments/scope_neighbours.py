"""A probe, not the rule: would nearest training neighbours close the scope rule's gap on real
CT and MR images (MedPix in scope with an impossible class 4-5%, target <= 2%)?

    python experiments/scope_neighbours.py --data MEDNIST_PREPARED --medpix MEDPIX_DIR

Beside the ``gaussian`` rule's three views (``captioning.scope.evidence``), two neighbour views:
an image's cosine distance to its nearest TRAINING image of the class it is given, on the
encoder's ``mid`` and ``features`` vectors (deep nearest neighbours: a class's images need not
form one Gaussian, and a broad class such as Hand no longer covers everything near its mean).
Each combination of views gets its limits exactly as the rule does (``gaussian.common_limits``:
per class and view, one common quantile of the VALIDATION distances keeping 99.7% in scope), for
a neighbour bank of every training image and of a random subset per class (the bank is what a
run would have to store). The sets are ``scope_rule.py``'s (MedNIST test, MedPix train and
val, the CXR proxy, generated photographs, noise and patterns), scored as that script does;
nothing is fitted on them. The bundled captioner by default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scope_common import ROOT, record
from scope_rule import cxr_proxy, noise_and_patterns, photographs, read_medpix, shares, split_rates

COMBINATIONS = {
    "gaussian views (the rule, refitted here)": ("features", "mid", "pixels"),
    "gaussian views + neighbours": ("features", "mid", "pixels", "near_mid", "near_features"),
    "neighbours + pixel statistics": ("near_mid", "near_features", "pixels"),
}
BANKS = (0, 3000, 1000)  # training images per class kept as neighbours (0: all of them)


class Distances:
    """Per view, (N,) distances of evidence to the class each image is given: the rule's
    Gaussians (``gaussians``, fitted once: they do not depend on the bank) and a neighbour
    bank of ``bank`` training images per class (0: all)."""

    def __init__(self, gaussians: dict, train: dict, labels: np.ndarray, bank: int, k: int):
        self.k, self.gaussians = k, gaussians
        rng = np.random.default_rng(0)
        rows = {c: np.flatnonzero(labels == c) for c in range(k)}
        self.banks = {}
        for view in ("mid", "features"):
            unit = train[view] / np.linalg.norm(train[view], axis=1, keepdims=True)
            kept = rows
            if bank:
                kept = {c: rng.choice(r, min(bank, len(r)), replace=False) for c, r in rows.items()}
            self.banks[view] = {c: unit[r].astype(np.float32) for c, r in kept.items()}

    def __call__(self, evidence: dict, view: str) -> np.ndarray:
        from captioning.scope.gaussian import class_distances

        given = evidence["logits"].argmax(1)
        if not view.startswith("near_"):
            return class_distances(evidence[view], *self.gaussians[view], given)
        base = view.removeprefix("near_")
        unit = evidence[base] / np.linalg.norm(evidence[base], axis=1, keepdims=True)
        out = np.empty(len(unit))
        for c in np.unique(given):
            rows = given == c
            out[rows] = 1 - (unit[rows].astype(np.float32) @ self.banks[base][c].T).max(1)
        return out


def judge(distances: Distances, views, val: dict, sets: dict[str, dict]) -> dict[str, np.ndarray]:
    """(N,) in scope per set, under limits fitted on ``val`` for ``views``."""
    from captioning.scope import DEFAULT_KEEP
    from captioning.scope.gaussian import common_limits

    given = val["logits"].argmax(1)
    on_val = np.stack([distances(val, v) for v in views], 1)
    limits = common_limits(on_val, given, DEFAULT_KEEP, distances.k)
    out = {}
    for name, evidence in sets.items():
        d = np.stack([distances(evidence, v) for v in views], 1)
        out[name] = (d <= limits[evidence["logits"].argmax(1)]).all(1)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the run's prepared MedNIST folder")
    parser.add_argument("--run", default=str(ROOT / "captioning" / "pretrained" / "captioner"))
    parser.add_argument("--medpix", type=Path, required=True, help="captions.csv and images/")
    args = parser.parse_args(argv)
    import captioning.models.decoders  # noqa: F401  (a captioner's model needs them)
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model
    from captioning.scope import DEFAULT_KEEP
    from captioning.scope.evidence import EvidenceReader
    from captioning.scope.gaussian import fit_class_gaussians

    read = EvidenceReader(load_model(Path(args.run) / "best_model.keras"))
    data, rng = PreparedData(args.data), np.random.default_rng(0)  # the draws of scope_rule.py
    train = data.split("train")
    val, test = (read(data.split(s).images) for s in ("val", "test"))
    table, medpix_images, _, allowed = read_medpix(args.medpix)  # colour: not in this probe
    cxr = read(cxr_proxy(data, rng)[0])
    (photos, _, photo_kinds), (noise, _, noise_kinds) = photographs(rng), noise_and_patterns(rng)
    sets = {"test": test, "cxr": cxr, "photos": read(photos), "noise": read(noise)}
    sets["medpix"] = read(medpix_images)
    results, k = {}, len(data.classes)
    train_evidence = read(train.images)
    gaussians = {
        v: fit_class_gaussians(train_evidence[v], train.labels, k)
        for v in ("features", "mid", "pixels")
    }
    given = {n: e["logits"].argmax(1) for n, e in sets.items()}
    for bank in BANKS:
        distances = Distances(gaussians, train_evidence, train.labels, bank, k)
        for label, views in COMBINATIONS.items():
            if bank and not any(v.startswith("near_") for v in views):
                continue  # the bank changes nothing without a neighbour view
            kept = judge(distances, views, val, sets)
            results[f"{label}, bank {bank or 'all'}"] = {
                "views": list(views),
                "mednist_test_flagged": round(1 - float(kept["test"].mean()), 4),
                "cxr_proxy_kept_as_cxr": round(
                    float((kept["cxr"] & (given["cxr"] == data.classes.index("CXR"))).mean()), 4
                ),
                "photographs": shares(kept["photos"], photo_kinds),
                "noise_and_patterns": shares(kept["noise"], noise_kinds),
                "medpix": split_rates(
                    table, allowed, data.classes, kept["medpix"], given["medpix"]
                ),
            }
            print(label, bank, results[f"{label}, bank {bank or 'all'}"], flush=True)
    record(
        "scope_neighbours",
        {"run": args.run, "keep": DEFAULT_KEEP, "banks_per_class": list(BANKS), "rules": results},
        {
            "mednist": data.root.name,
            "manifest_sha256": data.manifest_sha256,
            "medpix": args.medpix.name,
        },
    )


if __name__ == "__main__":
    main()
