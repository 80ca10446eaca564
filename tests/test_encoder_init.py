"""``model.init_from``: a classifier of the MedPix label columns whose encoder starts from
another classifier run's (the bundled MedNIST classifier here), and the runs it refuses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from captioning.bundled import bundled_run
from captioning.config import ConfigError, ModelConfig
from captioning.data.image_spec import ImageSpec
from captioning.errors import DataError, RunError
from captioning.models.classifier import build_multi_head_classifier, load_model
from captioning.training.encoder_init import check_init_run, copy_encoder, resolve_init_run

from helpers import cli_here

HEADS = {"modality": 2, "plane": 3}


def encoder_weights(path) -> list[np.ndarray]:
    return load_model(path / "best_model.keras").get_layer("encoder").get_weights()


def test_copy_encoder_takes_the_encoder_and_leaves_the_heads():
    """The encoder's every weight is the source run's; the new heads keep their own."""
    model = build_multi_head_classifier(ModelConfig(), HEADS)
    heads_before = [w.copy() for w in model.get_layer("logits").get_weights()]
    source = bundled_run("classifier")
    copy_encoder(model, source)
    for mine, theirs in zip(
        model.get_layer("encoder").get_weights(), encoder_weights(source), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    for mine, before in zip(model.get_layer("logits").get_weights(), heads_before, strict=True):
        np.testing.assert_array_equal(mine, before)


def test_init_from_refuses_another_encoder_or_image_setting(tmp_path):
    """Another architecture, another image size, a folder that is no classifier run: one line
    each, naming the run."""
    source = resolve_init_run("bundled")
    assert resolve_init_run("") is None
    check_init_run(source, ModelConfig(dropout=0.3), ImageSpec())  # dropout: not the encoder
    with pytest.raises(ConfigError, match=r"encoder differs: widths \[16, 32, 64, 64\]"):
        check_init_run(source, ModelConfig(widths=[8, 16]), ImageSpec())
    with pytest.raises(DataError, match="trained on 64x64 grey"):
        check_init_run(source, ModelConfig(), ImageSpec(size=128, channels=3))
    not_a_classifier = tmp_path / "run"
    shutil.copytree(source, not_a_classifier)
    run = json.loads((not_a_classifier / "run.json").read_text())
    (not_a_classifier / "run.json").write_text(json.dumps({**run, "kind": "captioner"}))
    with pytest.raises(RunError, match="needs a classifier run folder"):
        resolve_init_run(str(not_a_classifier))
    with pytest.raises(RunError, match="needs a classifier run folder"):
        resolve_init_run(str(tmp_path / "missing"))


def test_label_classifier_starts_from_the_bundled_encoder(medpix_labelled, tmp_path):
    """``train classifier --set model.init_from=bundled`` on the real MedPix slice: run.json
    names the source and its checksum; after two steps the encoder is still near the bundled
    one, several times nearer than a run from random weights (nothing else differs)."""
    ds, _ = medpix_labelled
    runs = {}
    for name, init in (("transfer", "bundled"), ("random", "")):
        done = cli_here(
            "train", "classifier", "--data", ds, "--smoke", "--run-dir", name,
            "--set", f"model.init_from={init}", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = encoder_weights(tmp_path / name)
    record = json.loads((tmp_path / "transfer" / "run.json").read_text())["init_from"]
    assert record["run"] == str(bundled_run("classifier"))
    assert len(record["best_model_sha256"]) == 64
    assert "init_from" not in json.loads((tmp_path / "random" / "run.json").read_text())
    bundled = encoder_weights(bundled_run("classifier"))

    def distance(weights):
        return sum(float(np.abs(a - b).sum()) for a, b in zip(weights, bundled, strict=True))

    assert distance(runs["transfer"]) < 0.25 * distance(runs["random"])


def test_zero_epochs_keep_the_encoder_as_built(medpix_labelled, tmp_path):
    """``train.epochs=0`` trains nothing: the saved encoder is the one it started from (here
    the bundled one, exactly), its heads are scored all the same; a captioner refuses it."""
    ds, _ = medpix_labelled
    done = cli_here(
        "train", "classifier", "--data", ds, "--smoke", "--run-dir", "untrained",
        "--set", "train.epochs=0", "--set", "model.init_from=bundled", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for mine, theirs in zip(
        encoder_weights(tmp_path / "untrained"),
        encoder_weights(bundled_run("classifier")),
        strict=True,
    ):
        np.testing.assert_array_equal(mine, theirs)
    metrics = json.loads((tmp_path / "untrained" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 0 and metrics["best_val"] == {}
    refused = cli_here(
        "train", "captioner", "--data", ds, "--encoder", "untrained", "--smoke",
        "--set", "train.epochs=0", cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "train.epochs = 0: a captioner's stage 1" in refused.stderr.strip().splitlines()[-1]
