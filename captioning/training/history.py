"""Per-epoch records of a run: CSV log, TensorBoard scalars and a PNG of the curves."""

from __future__ import annotations

import csv
from pathlib import Path

import tensorflow as tf

from captioning.utils.atomic import atomic_path


class History:
    """Appends one row per epoch to ``log.csv``, writes TensorBoard scalars, redraws
    ``curves.png``. On resume, rows after the restored epoch are dropped (they belonged to
    an epoch that was interrupted before its checkpoint)."""

    def __init__(self, run_dir: Path, resume_epoch: int = 0):
        self.csv_path = run_dir / "log.csv"
        self.png_path = run_dir / "curves.png"
        self.rows: list[dict] = []
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as handle:
                self.rows = [
                    {k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items()}
                    for row in csv.DictReader(handle)
                    if int(float(row["epoch"])) <= resume_epoch
                ]
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def append(self, row: dict[str, float]) -> None:
        """Record one epoch: rewrite ``log.csv`` (atomically), add its scalars, redraw."""
        self.rows.append(row)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        with self.writer.as_default(step=int(row["epoch"])):
            for key, value in row.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
        self.writer.flush()
        self.plot()

    def plot(self) -> None:
        """Loss and every other metric against epochs, train and val side by side."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = sorted(
            {k.split("_", 1)[1] for k in self.rows[0] if k.startswith(("train_", "val_"))}
        )
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [r["epoch"] for r in self.rows]
        for ax, name in zip(axes[0], names, strict=True):
            for split in ("train", "val"):
                key = f"{split}_{name}"
                if key in self.rows[0]:
                    ax.plot(epochs, [r.get(key) for r in self.rows], marker="o", label=split)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        fig.savefig(self.png_path, dpi=100)
        plt.close(fig)
