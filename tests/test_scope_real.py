"""Out-of-scope detection on real MedNIST images with small, briefly trained models: a class
left out of training is flagged far more often than the kept ones, and photographs and noise
come back ``in_scope: false`` through the ``caption`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_captioner_cli import TINY_DECODER, cli

from captioning.captions.findings import FIELDS

from helpers import cli_here

SHORT = [
    *("--set", "train.epochs=4", "--set", "train.batch_size=32", "--set", "train.warmup_steps=0"),
    *("--set", "train.min_steps=0"),  # the epochs as given (the schedule rule would grow them)
]


@pytest.mark.slow
def test_a_left_out_class_is_flagged_far_more_often_than_the_kept_ones(mednist_small, tmp_path):
    from sklearn.metrics import roc_auc_score

    from captioning.calibrate import calibrate_run
    from captioning.commands.train_classifier import train_classifier
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model
    from captioning.scope import Scope, encoder_outputs

    held = "Hand"
    run, _ = train_classifier(
        overrides=[f'data.exclude_classes=["{held}"]', *SHORT[1::2]],
        data_root=mednist_small,
        run_dir=tmp_path / "run",
    )
    calibrate_run(run)
    scope = Scope.load(run)
    data = PreparedData(mednist_small)
    # statistics from the 5 kept classes only
    assert (
        scope.info["n_train"] == len(data.split("train", exclude=[held])) < len(data.split("train"))
    )
    model = load_model(run / "best_model.keras")
    test = data.split("test")
    held_id = data.classes.index(held)
    kept = test.images[test.labels != held_id]  # never used for fitting
    out = data.images[(data.manifest["class"] == held).to_numpy()]  # every split
    kept_scores, out_scores = (scope.scores(encoder_outputs(model, x)) for x in (kept, out))
    flagged_kept = np.mean(kept_scores > scope.threshold)
    flagged_out = np.mean(out_scores > scope.threshold)
    auroc = roc_auc_score(
        np.r_[0 * kept_scores, 0 * out_scores + 1], np.r_[kept_scores, out_scores]
    )
    assert auroc > 0.9, auroc
    # the threshold keeps every one of the few validation images: a strict rule, yet the
    # held-out class is flagged far more often (0.35 against 0.0 when written)
    assert flagged_out > flagged_kept + 0.25, (flagged_out, flagged_kept)


@pytest.fixture(scope="module")
def scoped_captioner(mednist_small, tmp_path_factory):
    """A briefly trained classifier and a smoke captioner on it (frozen encoder): training
    ends by fitting the run's scope and calibration."""
    work = tmp_path_factory.mktemp("scoped")
    data = ["--data", str(mednist_small)]
    longer = [*SHORT, "--set", "train.epochs=15"]  # a usable encoder on 32 images per class
    done = cli_here("train", "classifier", *data, "--run-dir", "clf", *longer, cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli_here(
        "train", "captioner", *data, "--encoder", "clf", "--smoke", "--run-dir", "cap",
        "--set", "finetune.epochs=0", *TINY_DECODER, cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return work, work / "cap"


@pytest.mark.slow
def test_photographs_and_noise_are_out_of_scope_through_the_cli(tmp_path):
    """The shipped model (trained on the whole training split) turns away sample photographs
    and noise. A model trained inside a test (32 images per class) is too weak for this: its
    scores for one photograph crop sat within 4% of its threshold with either stem."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    files = []
    for i, photo in enumerate(load_sample_images().images):
        for j, (y, x, side) in enumerate([(50, 100, 256), (150, 300, 128)]):
            files.append(tmp_path / f"photo{i}_{j}.png")
            Image.fromarray(photo[y : y + side, x : x + side]).save(files[-1])
    for j in range(3):
        files.append(tmp_path / f"noise{j}.png")
        Image.fromarray(rng.integers(0, 256, (64 * (j + 1),) * 2, dtype=np.uint8)).save(files[-1])
    done = cli("caption", *map(str, files), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["path"] for e in entries] == list(map(str, files))
    for entry in entries:
        assert entry["in_scope"] is False, (entry["path"], entry["ood_score"])
        assert entry["ood_score"] > entry["threshold"]
        assert "caption" not in entry


@pytest.mark.slow
def test_a_run_trained_here_gets_a_scope_and_states_it_for_each_image(
    scoped_captioner, mednist_small
):
    work, run = scoped_captioner
    assert {"scope.json", "scope.npz", "calibration.json"} <= {p.name for p in run.iterdir()}
    mednist = sorted((mednist_small / "images").rglob("*.jpeg"))[::40]  # one per class
    done = cli(
        "caption", "--run", str(run), *map(str, mednist), "--json", "--keep-out-of-scope", cwd=work
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for entry in map(json.loads, done.stdout.splitlines()):
        assert isinstance(entry["in_scope"], bool) and "caption" in entry
        assert set(entry["confidence"]) == {"class", *FIELDS}


@pytest.mark.slow
def test_evaluate_reports_calibration_error_and_out_of_scope_rate(scoped_captioner):
    work, run = scoped_captioner
    done = cli_here("evaluate", str(run), "--out", "eval/report.json", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((work / "eval" / "report.json").read_text())
    assert "all" in report["findings_accuracy"]
    assert set(report["ece"]) == {"class", *FIELDS}
    assert all(v is None or 0 <= v <= 1 for v in report["ece"].values())
    assert report["out_of_scope"] == round(report["out_of_scope_rate"] * report["n"])
    assert (work / "eval" / "reliability_test.png").is_file()
