"""What storing the ``neighbours`` banks as int8 costs: the bundled captioner's banks against
the unrounded projections of the same training images.

    python experiments/bank_rounding.py --data MEDNIST_PREPARED [--run RUN] [--sample 2000]

The run's encoder reads the training split again; each view is projected with the run's own
centre and basis (float64, unrounded) and compared with the stored int8 bank times its scale:

- per view, for ``--sample`` training images queried against the rest of their class: the
  relative change of the nearest distance (median and 99th percentile), over all and among the
  farthest tenth (where the limits are drawn);
- for the test and validation splits: the share of images whose in-scope decision under the
  run's limits differs between the unrounded and the stored bank.
Nothing is fitted here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scope_common import ROOT, record

from captioning.scope import neighbours
from captioning.scope.evidence import VIEWS


def unrounded_banks(train: dict, arrays: dict) -> dict:
    """view -> (M, m) float64 projection of the training evidence on the run's basis."""
    return {
        v: neighbours.project(train[v], arrays[f"near_{v}_centre"], arrays[f"near_{v}_basis"])
        for v in VIEWS
    }


def leave_one_out(bank: np.ndarray, query: np.ndarray, labels: np.ndarray, picks) -> np.ndarray:
    """(n,) squared distance of each picked image's unrounded row ``query[i]`` to its nearest
    other image of its class in ``bank``."""
    out = np.empty(len(picks))
    for j, i in enumerate(picks):
        members = labels == labels[i]
        members[i] = False
        out[j] = ((bank[members] - query[i]) ** 2).sum(1).min()
    return out


def distance_change(exact: dict, arrays: dict, labels, sample: int, seed: int) -> dict:
    """Per view, the relative change of leave-one-out nearest distances, stored vs unrounded."""
    picks = np.random.default_rng(seed).choice(len(labels), sample, replace=False)
    result = {}
    for v in VIEWS:
        bank, scale = neighbours.stored_bank(arrays, v)
        stored = bank * scale
        before = leave_one_out(exact[v], exact[v], labels, picks)
        after = leave_one_out(stored, exact[v], labels, picks)
        keep = before > 0  # exact duplicates have no relative change to speak of
        change = np.abs(after[keep] - before[keep]) / before[keep]
        far = before[keep] >= np.quantile(before[keep], 0.9)
        result[v] = {
            "median": round(float(np.median(change)), 6),
            "p99": round(float(np.quantile(change, 0.99)), 6),
            "farthest_tenth_median": round(float(np.median(change[far])), 6),
            "farthest_tenth_max": round(float(change[far].max()), 6),
            "duplicates_skipped": int((~keep).sum()),
        }
    return result


def decisions_changed(scope, evidence: dict, exact: dict) -> float:
    """The share of images judged differently with the unrounded banks."""
    unrounded = dict(scope.arrays)
    for v in VIEWS:
        unrounded[f"near_{v}_bank"] = exact[v]
        unrounded[f"near_{v}_scale"] = np.ones(exact[v].shape[1])
    stored = neighbours.ratios(evidence, scope.arrays).max(1) <= 1
    plain = neighbours.ratios(evidence, unrounded).max(1) <= 1
    return round(float(np.mean(stored != plain)), 6)


def main() -> None:
    import captioning.models.decoders  # noqa: F401  (a captioner's model needs them)
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model
    from captioning.scope import Scope, encoder_outputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the run's prepared MedNIST folder")
    parser.add_argument("--run", default=str(ROOT / "captioning" / "pretrained" / "captioner"))
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="bank_rounding_bundled")
    args = parser.parse_args()
    model = load_model(Path(args.run) / "best_model.keras")
    scope, data = Scope.load(Path(args.run)), PreparedData(args.data)
    train = data.split("train")
    exact = unrounded_banks(encoder_outputs(model, train.images), scope.arrays)
    result = {
        "run": args.run,
        "bank_bytes": int(sum(scope.arrays[f"near_{v}_bank"].nbytes for v in VIEWS)),
        "nearest_distance_change": distance_change(
            exact, scope.arrays, train.labels, args.sample, args.seed
        ),
        "decisions_changed": {
            split: decisions_changed(scope, encoder_outputs(model, data.split(split).images), exact)
            for split in ("val", "test")
        },
    }
    print(result)
    record(args.name, result, {"root": str(data.root), "manifest_sha256": data.manifest_sha256})


if __name__ == "__main__":
    main()
