"""A free-text report dataset through the documented commands, with no code change: prepared
from the ``r2gen`` and ``file`` layouts, a classifier trained on the file's labels, captioners
trained briefly on each, evaluated (BLEU, ROUGE-L, CIDEr; METEOR where Java exists) and used to
caption an image."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tiny_reports import make_reports

from helpers import cli as run_cli
from helpers import cli_here

pytestmark = pytest.mark.slow  # three small trainings (about two minutes on two cores)
TINY = ["--set", "decoder.hidden=8", "--set", "decoder.embed_dim=8"]
TINY += ["--set", "decoder.attention_dim=8"]
TINY += ["--set", "decoder.tune_search=false"]  # the search: test_captioner_cli.py
METRIC_KEYS = {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "meteor_missing", "rouge_l", "cider"}


def cli(*args: str, cwd: Path, here: bool = False) -> subprocess.CompletedProcess:
    """The command line in ``cwd``, with its own ``CAPTIONING_HOME`` there; ``here``: in this
    process (the preparing, training and evaluating the tests read; the captioning and the
    refusal run the real command)."""
    env = {"CAPTIONING_HOME": str(cwd / "home")}
    if here:
        return cli_here(*args, cwd=cwd, env=env)
    return run_cli(*args, cwd=cwd, env=env, timeout=900)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """Both layouts prepared, a classifier on the file's labels, and a captioner on each."""
    folder = tmp_path_factory.mktemp("sources")
    reports = make_reports(folder)
    images = str(reports["images"])
    ok(
        cli(
            "data",
            "prepare",
            "--captions",
            str(reports["csv"]),
            "--images",
            images,
            cwd=folder,
            here=True,
        )
    )
    ok(
        cli(
            "data",
            "prepare",
            "--captions",
            str(reports["r2gen"]),
            "--images",
            images,
            cwd=folder,
            here=True,
        )
    )
    labelled, r2gen = folder / "home" / "reports", folder / "home" / "iu_tiny"
    ok(
        cli(
            "train",
            "classifier",
            "--data",
            str(labelled),
            "--smoke",
            "--run-dir",
            "clf",
            cwd=folder,
            here=True,
        )
    )
    # the r2gen captioner on the MedNIST classifier bundled with the package (no --encoder),
    # the file captioner on the classifier of its own labels
    runs = [("cap_r2gen", r2gen, []), ("cap_file", labelled, ["--encoder", "clf"])]
    for name, data, encoder in runs:
        command = ["train", "captioner", "--data", str(data), *encoder, "--smoke"]
        ok(cli(*command, "--run-dir", name, *TINY, cwd=folder, here=True))
    return {"folder": folder, "reports": reports, "r2gen": r2gen, "labelled": labelled}


def test_r2gen_captioner_trains_evaluates_and_captions(work):
    folder = work["folder"]
    run = folder / "cap_r2gen"
    meta = json.loads((run / "run.json").read_text())
    assert meta["caption_source"] == "r2gen" and meta["templates"] is None
    assert meta["encoder_run"].endswith("pretrained/classifier") and len(meta["classes"]) == 6
    vocab = json.loads((run / "vocabulary.json").read_text())
    assert vocab["text"]["min_count"] == 3  # the source's rules travel with the run
    assert not (run / "scope.json").exists()  # no labels: no scope, no calibration
    ok(cli("evaluate", "--run", str(run), "--out", "test.json", cwd=folder, here=True))
    report = json.loads((folder / "test.json").read_text())
    assert METRIC_KEYS | {"n"} <= set(report)
    assert report["n"] == 4  # the annotation's test studies
    for key in ("bleu1", "bleu4", "rouge_l", "cider"):
        assert isinstance(report[key], float), key
    if shutil.which("java"):
        assert isinstance(report["meteor"], float) and report["meteor_missing"] is None
    else:
        assert report["meteor"] is None and "Java" in report["meteor_missing"]
    assert report["caption_class_accuracy"] is None and report["findings_accuracy"] is None
    assert report["ece"] is None and report["out_of_scope"] is None
    assert set(report["not_applicable"]) >= {"findings_accuracy", "ece", "out_of_scope"}
    check_baselines_and_diversity(report)
    references = {c["path"]: c["references"] for c in report["captions"]}
    annotation = json.loads(work["reports"]["r2gen"].read_text())
    test_reports = {e["image_path"][0]: e["report"] for e in annotation["test"]}
    assert references == {p: [r] for p, r in test_reports.items()}
    image = work["reports"]["images"] / next(iter(test_reports))
    result = ok(cli("caption", "--run", str(run), str(image), "--json", cwd=folder))
    entry = json.loads(result.stdout.strip().splitlines()[0])
    assert entry["caption"] and entry["findings"] == {}  # free text: no template fields


def test_labelled_file_captioner_gets_scope_and_calibration(work):
    folder = work["folder"]
    run = folder / "cap_file"
    assert json.loads((run / "run.json").read_text())["caption_source"] == "file"
    assert (run / "scope.json").is_file() and (run / "calibration.json").is_file()
    ok(cli("evaluate", "--run", str(run), "--out", "file.json", cwd=folder, here=True))
    report = json.loads((folder / "file.json").read_text())
    assert METRIC_KEYS | {"n"} <= set(report)
    assert isinstance(report["accuracy"], float) and isinstance(report["out_of_scope"], int)
    assert report["ece"] is not None and "ece" not in report["not_applicable"]
    assert all(len(c["references"]) == 2 for c in report["captions"])
    check_baselines_and_diversity(report)


def check_baselines_and_diversity(report: dict) -> None:
    """The baselines (train pool, k chosen on val) with the model's metric keys, and the
    diversity of the generated captions."""
    baselines = report["baselines"]
    assert set(baselines) >= {"constant", "retrieval_features", "retrieval_pixels"}, baselines
    for name in ("constant", "retrieval_features", "retrieval_pixels"):
        assert set(baselines[name]) >= METRIC_KEYS, name
        assert isinstance(baselines[name]["cider"], float)
        bootstrap = baselines[name]["paired_bootstrap"]  # the model minus the baseline
        assert bootstrap["resamples"] == 1000 and bootstrap["seed"] == 0
        for key in ("bleu4", "cider", "rouge_l"):
            assert bootstrap[key]["low"] <= bootstrap[key]["high"], (name, key)
    assert baselines["retrieval_features"]["k_chosen_on"].startswith("val")
    assert isinstance(baselines["model_below"], list)
    assert 0 < report["distinct_share"] <= 1 and 0 <= report["repeat_share"] <= 1
    assert 0 <= report["unk_share"] <= 1 and report["vocabulary_used"] >= 1


def test_an_unlabelled_source_cannot_train_a_classifier(work):
    result = cli("train", "classifier", "--data", str(work["r2gen"]), "--smoke", cwd=work["folder"])
    assert result.returncode != 0 and "no class labels" in result.stderr
