"""The classifier end to end on real MedNIST, through the command line: prepare a subset,
train briefly, evaluate on the test split and on a labelled folder; kill and resume."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from captioning.utils.provenance import data_provenance

pytestmark = [pytest.mark.slow]
TRAIN = [
    "--set",
    "train.epochs=2",
    "--set",
    "train.batch_size=64",
    "--set",
    "train.warmup_steps=10",
    "--set",
    "train.min_steps=0",  # the epochs as given (the schedule rule would grow them)
]


def cli(*args, timeout=600, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "captioning.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def dataset(mednist_archive, tmp_path_factory):
    """300 real images per class (1,800), prepared through the CLI."""
    root = tmp_path_factory.mktemp("cli") / "mednist"
    cli("data", "prepare", "--source", mednist_archive, "--root", root, "--per-class-limit", 300)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "classifier"
    cli("train", "classifier", "--data", dataset, "--run-dir", run, *TRAIN)
    return run


def test_run_folder_holds_everything_needed_to_reproduce(trained, dataset):
    config = json.loads((trained / "config.json").read_text())
    run = json.loads((trained / "run.json").read_text())
    card = json.loads((dataset / "data_card.json").read_text())
    assert config["train"]["epochs"] == 2 and config["data"]["root"] == str(dataset)
    assert run["manifest_sha256"] == card["manifest_sha256"]
    assert run["classes"] == card["classes"] and run["seed"] == 0
    assert "train classifier" in run["command"] and run["versions"]["tensorflow"]
    # provenance: which data (copy, images, manifest), which code, which machine
    assert run["data"] == data_provenance(card) and run["data"]["images"] == card["n_images"]
    assert set(run["code"]) == {"commit", "dirty"} and run["machine"]["cores"] >= 1
    rows = list(csv.DictReader((trained / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["best_val"]["accuracy"] == max(float(r["val_accuracy"]) for r in rows)
    assert 100 < metrics["peak_rss_mib"] < 8192
    assert (trained / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (trained / "best_model.keras").stat().st_size > 10_000


def test_evaluate_on_the_test_split_is_well_above_chance(trained, tmp_path):
    out = tmp_path / "test.json"
    cli("evaluate", "--run", trained, "--out", out)
    report = json.loads(out.read_text())
    assert report["n"] == 6 * 30 and report["split"] == "test"
    assert report["accuracy"] > 0.8  # chance is 1/6
    assert (
        report["error_count"]
        == len(report["errors"])
        == round(report["n"] * (1 - report["accuracy"]))
    )
    confusion = np.array(report["confusion"])
    assert (
        confusion.sum() == report["n"]
        and np.trace(confusion) == report["n"] - report["error_count"]
    )
    assert set(report["per_class"]) == set(report["classes"])
    for error in report["errors"]:
        assert error["true"] != error["pred"] and 0 < error["prob"] <= 1
    assert (tmp_path / "confusion_test.csv").exists() and (tmp_path / "confusion_test.png").exists()


def test_evaluate_on_a_labelled_folder_skips_unreadable_files(trained, dataset, tmp_path):
    folder = tmp_path / "new"
    source = json.loads((dataset / "data_card.json").read_text())["image_dir"]
    for name in ("Hand", "CXR"):
        (folder / name).mkdir(parents=True)
        for image in sorted((dataset / source / name).iterdir())[:5]:
            shutil.copy(image, folder / name / image.name)
    (folder / "Hand" / "broken.jpeg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = cli("evaluate", "--run", trained, "--data", folder)
    report = json.loads(result.stdout)
    assert report["n"] == 10 and report["split"] is None
    assert [s["path"] for s in report["skipped"]] == ["Hand/broken.jpeg"]
    assert sum(map(sum, report["confusion"])) == 10


def test_evaluate_refuses_class_folders_the_model_does_not_know(trained, dataset, tmp_path):
    image = next((dataset / "images").rglob("*.jpeg"))
    for name in ("Knee", "Hand"):
        (tmp_path / name).mkdir()
        shutil.copy(image, tmp_path / name / image.name)
    result = cli("evaluate", "--run", trained, "--data", tmp_path, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}: class folders unknown to the model: Knee "
        "(the model knows AbdomenCT, BreastMRI, CXR, ChestCT, Hand, HeadCT)"
    ]


def test_training_killed_then_resumed_matches_an_uninterrupted_run(dataset, trained, tmp_path):
    run = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "captioning.cli",
        "train",
        "classifier",
        "--data",
        str(dataset),
        "--run-dir",
        str(run),
        *TRAIN,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 300
    while not (run / "checkpoints" / "epoch-0001").exists():  # killed during epoch 2
        assert process.poll() is None and time.time() < deadline, "first epoch never finished"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = cli("train", "classifier", "--data", dataset, "--run-dir", run, *TRAIN)
    assert "resuming" in resumed.stdout and "after epoch 1" in resumed.stdout
    ours = json.loads((run / "metrics.json").read_text())
    reference = json.loads((trained / "metrics.json").read_text())
    assert ours["resumed_from_epoch"] == 1
    # Same seed, same data order, same augmentation per epoch: equal up to float round-off.
    assert abs(ours["best_val"]["accuracy"] - reference["best_val"]["accuracy"]) <= 1e-6
    assert abs(ours["best_val"]["loss"] - reference["best_val"]["loss"]) <= 1e-4


def test_a_locked_run_folder_is_refused(trained, dataset):
    from captioning.utils.runs import RunLock

    with RunLock(trained):
        result = cli(
            "train", "classifier", "--data", dataset, "--run-dir", trained, "--smoke", check=False
        )
    assert result.returncode != 0
    assert "another command is writing this run folder" in result.stderr
    assert "Traceback" not in result.stderr
