"""What is and is not bit-identical when a model trains twice with one seed.

Trains the classifier (or the captioner on a given encoder run) ``--runs`` times with seed 0 on
a per-class slice of a prepared MedNIST (``--per-class-limit 0``: every image), each run in a
fresh process, first as the CLI trains (``default``), then with TensorFlow's op determinism
switched on (``op_determinism``: an op without a deterministic kernel raises, naming itself),
and with TensorFlow's thread pools cut to one thread (``one_inter_op_thread``: independent ops
run one at a time; ``one_thread``: each op on one thread as well).
For each mode it records every run's weight checksum (``weights_sha256`` of the run's
metrics.json) and best validation metric, whether the checksums agree, and the largest absolute
difference of any weight of the last checkpoint from the first run's (0.0 when bit-identical).

    python experiments/reproducibility.py DATA [--kind classifier|captioner] [--encoder RUN]
        [--runs 3] [--per-class-limit 100] [--epochs 1] [--batch-size 0]
        [--modes default,op_determinism,one_inter_op_thread,one_thread] [--name NAME]

Writes ``experiments/results/<name>.json`` (see experiments/scope_common.py's ``record``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scope_common import ROOT, record

# one run, in a process of its own: TensorFlow's global state (threads, determinism) is fresh
TRAIN = """
import sys
sys.path.insert(0, {root!r})
import tensorflow as tf
if {determinism}:
    tf.config.experimental.enable_op_determinism()
if {inter_op}:
    tf.config.threading.set_inter_op_parallelism_threads({inter_op})
if {intra_op}:
    tf.config.threading.set_intra_op_parallelism_threads({intra_op})
from captioning.commands.train_{kind} import train_{kind}
train_{kind}(overrides={overrides!r}, data_root={data!r}, run_dir={run_dir!r}{extra})
"""
# mode -> (op determinism, inter-op threads, intra-op threads; 0: TensorFlow's default)
MODES = {
    "default": (False, 0, 0),
    "op_determinism": (True, 0, 0),
    "one_inter_op_thread": (False, 1, 0),
    "one_thread": (False, 1, 1),
}
# the validation metric each kind's metrics.json keeps its best of
BEST = {"classifier": "accuracy", "captioner": "all_right"}


def train_once(args, run_dir: Path, overrides: list[str], mode: str) -> dict:
    """Train one run; its checksum, best validation metric and last checkpoint's weights, or
    the error its last line names when training fails (an op with no deterministic kernel)."""
    extra = f", encoder_dir={args.encoder!r}" if args.kind == "captioner" else ""
    determinism, inter_op, intra_op = MODES[mode]
    code = TRAIN.format(
        root=str(ROOT),
        determinism=determinism,
        inter_op=inter_op,
        intra_op=intra_op,
        kind=args.kind,
        overrides=overrides,
        data=args.data,
        run_dir=str(run_dir),
        extra=extra,
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = sorted(run_dir.rglob("variables.npz"))[-1]  # stage 2 after stage 1
    with np.load(last) as stored:
        weights = [stored[name] for name in sorted(stored.files)]
    return {
        "weights_sha256": metrics["weights_sha256"],
        "best_val": metrics["best_val"][BEST[args.kind]],
        "weights": weights,
    }


def compare(runs: list[dict]) -> dict:
    """The runs of one mode side by side: checksums, best validation metrics and their spread,
    and the largest absolute weight difference from the first run."""
    failed = [r["error"] for r in runs if "error" in r]
    if failed:
        return {"error": failed[0], "runs_failed": len(failed)}
    first = runs[0]["weights"]
    differences = [
        max(float(np.max(np.abs(a - b))) for a, b in zip(first, r["weights"], strict=True))
        for r in runs[1:]
    ]
    best = [r["best_val"] for r in runs]
    checksums = [r["weights_sha256"] for r in runs]
    return {
        "weights_sha256": checksums,
        "bit_identical": len(set(checksums)) == 1,
        "best_val": best,
        "best_val_spread": max(best) - min(best),
        "max_abs_weight_diff_from_first": max(differences, default=0.0),
    }


def overrides_of(args) -> list[str]:
    """The config overrides every run of this comparison trains with."""
    limit = [f"data.per_class_limit={args.per_class_limit}"] if args.per_class_limit else []
    found = [
        *limit,
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        "train.min_steps=0",
        "train.seed=0",
    ]
    if args.kind == "captioner":  # stage 2 as short as stage 1
        found += [f"finetune.epochs={args.epochs}", "finetune.min_steps=0"]
    return found


def main(argv: list[str] | None = None) -> None:
    """Train each mode ``--runs`` times and record the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="prepared MedNIST folder")
    parser.add_argument("--kind", choices=sorted(BEST), default="classifier")
    parser.add_argument("--encoder", help="the captioner's encoder: a classifier run folder")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-class-limit", type=int, default=100, help="0: every image")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=0, help="0: by data size")
    parser.add_argument("--modes", default="default,op_determinism", help=f"of {sorted(MODES)}")
    parser.add_argument("--name", default="reproducibility_classifier")
    args = parser.parse_args(argv)
    if args.kind == "captioner" and not args.encoder:
        parser.error("--kind captioner needs --encoder RUN")
    overrides, modes, data = overrides_of(args), {}, None
    with tempfile.TemporaryDirectory() as scratch:
        for mode in args.modes.split(","):
            runs = []
            for i in range(args.runs):
                run_dir = Path(scratch) / f"{mode}-{i}"
                runs.append(train_once(args, run_dir, overrides, mode))
                if data is None and (run_dir / "run.json").is_file():
                    run = json.loads((run_dir / "run.json").read_text())
                    data = {**run["data"], "split_sizes": run.get("split_sizes")}
            modes[mode] = compare(runs)
            print(mode, {k: v for k, v in modes[mode].items() if k != "weights_sha256"})
    result = {"kind": args.kind, "runs_per_mode": args.runs, "overrides": overrides}
    record(args.name, result | {"modes": modes}, data or {"root": args.data})


if __name__ == "__main__":
    main()
