"""A full disk (simulated with a file-size limit, RLIMIT_FSIZE) is reported in one line and
corrupts nothing: no half-written dataset, no damaged checkpoint or model."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from captioning.config import TrainConfig
from captioning.models.classifier import load_model
from captioning.training.checkpoints import restore_latest
from captioning.training.optimizers import make_optimizer

pytestmark = pytest.mark.slow


def cli_limited(*args, max_bytes: int | None):
    def limit():
        if max_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run(
        [sys.executable, "-m", "captioning.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit,
        check=False,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 40 noisy 64x64 PNGs (incompressible, so sizes are predictable)."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for k, name in enumerate(("Dark", "Bright")):
        (root / name).mkdir()
        for i in range(40):
            pixels = rng.integers(0, 100, (64, 64)) + 150 * k
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def test_prepare_on_a_full_disk_leaves_nothing_behind(folder, tmp_path):
    target = tmp_path / "out" / "prepared"
    # images.npy is 80 x 4 KiB = 320 KiB: a 100 KiB limit fails while writing it
    result = cli_limited("data", "prepare", "--source", folder, "--root", target, max_bytes=100_000)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {target}: cannot write the prepared dataset (")
    assert "Traceback" not in result.stderr
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no hidden building folder either


def test_training_on_a_full_disk_keeps_the_last_good_checkpoint_and_model(folder, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    assert (
        cli_limited(
            "data", "prepare", "--source", folder, "--root", data, max_bytes=None
        ).returncode
        == 0
    )
    common = [
        "train",
        "classifier",
        "--data",
        data,
        "--run-dir",
        run,
        "--smoke",
        "--set",
        "model.widths=[4,8,8]",
    ]
    assert cli_limited(*common, max_bytes=None).returncode == 0
    before = (run / "best_model.keras").read_bytes()
    # The next epoch's model file (~100 KB) cannot be written under a 20 KB limit.
    result = cli_limited(*common, "--set", "train.epochs=2", max_bytes=20_000)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {run}") and "cannot write" in last, last
    assert "Traceback" not in result.stderr
    assert (run / "best_model.keras").read_bytes() == before
    model = load_model(run / "best_model.keras")
    optimizer = make_optimizer(TrainConfig(), total_steps=10)  # as training built it
    optimizer.build(model.trainable_variables)
    assert restore_latest(run / "checkpoints", model, optimizer).epoch >= 1
    assert not [p for p in run.rglob(".*tmp-*")]  # no stray temporaries
    json.loads((run / "config.json").read_text())
