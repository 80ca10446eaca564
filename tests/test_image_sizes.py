"""Runs at other image settings, end to end on real MedNIST images: data prepared at 128x128
grey and at 64x64 RGB trains a classifier and a captioner a step (hidden size 8), and
``caption`` and ``serve`` decode new files to the run's setting; ``export`` refuses such a run
in one line. The 64x64 grey default is pinned elsewhere (test_compat.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from captioning.data.image_spec import ImageSpec

from helpers import cli, cli_here

pytestmark = pytest.mark.slow

STEP = [
    "--set",
    "train.epochs=1",
    "--set",
    "train.min_steps=0",
    "--set",
    "train.max_steps_per_epoch=1",
    "--set",
    "train.batch_size=8",
]
TINY_CLASSIFIER = ["--set", "model.widths=[4, 8]", *STEP]
TINY_DECODER = [
    *STEP,
    "--set",
    "finetune.min_steps=0",  # stage 2 one epoch too (the schedule rule would grow it to 300)
    # no decoding search: the greedy search it chose for these untrained runs, given (whether
    # the SavedModel's beam search agrees with the command's: test_export.py)
    "--set",
    "decoder.tune_search=false",
    "--set",
    "decoder.beam_width=1",
    "--set",
    "decoder.hidden=8",
    "--set",
    "decoder.embed_dim=8",
    "--set",
    "decoder.attention_dim=8",
]
SPECS = {"grey128": ImageSpec(128, 1), "rgb64": ImageSpec(64, 3)}


@pytest.fixture(scope="module", params=list(SPECS))
def runs(request, mednist_archive, tmp_path_factory):
    """(work folder, dataset, classifier run, captioner run, spec) for one setting."""
    spec = SPECS[request.param]
    work = tmp_path_factory.mktemp(request.param)
    setting = ["--image-size", str(spec.size), "--channels", str(spec.channels)]
    done = cli_here(  # in this process: the setup, not the commands' start-up, is read
        "data", "prepare", "--source", str(mednist_archive), "--root", "data",
        "--per-class-limit", "12", *setting, cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert spec.describe() in done.stdout
    done = cli_here(
        "train", "classifier", "--data", "data", "--run-dir", "clf", *TINY_CLASSIFIER, cwd=work
    )
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli_here(
        "train", "captioner", "--data", "data", "--encoder", "clf", "--run-dir", "cap",
        *TINY_DECODER, cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return work, work / "data", work / "clf", work / "cap", spec


def test_the_runs_record_the_setting_and_their_models_read_it(runs):
    import captioning.models.decoders  # noqa: F401  (registers the decoder layers)
    from captioning.models.classifier import load_model

    _, data, clf, cap, spec = runs
    assert np.load(data / "images.npy", mmap_mode="r").shape[1:] == spec.cache_shape
    for run in (clf, cap):
        record = json.loads((run / "run.json").read_text())
        assert ImageSpec.from_card(record) == spec
        assert ImageSpec.from_model(load_model(run / "best_model.keras")) == spec


def test_caption_decodes_a_file_to_the_runs_setting(runs):
    work, data, _, cap, _ = runs
    image = sorted((data / "images").rglob("*.jpeg"))[0]
    done = cli("caption", "--run", str(cap), str(image), "--json", "--keep-out-of-scope", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    entry = json.loads(done.stdout.splitlines()[0])
    assert entry["path"] == str(image) and entry["caption"] and "error" not in entry


def test_serve_decodes_uploads_to_the_runs_setting(runs):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from captioning.inference import Captioner
    from captioning.serving.app import create_app
    from captioning.serving.server import running

    _, data, _, cap, spec = runs
    captioner = Captioner(cap)
    assert captioner.image_spec == spec
    image = sorted((data / "images").rglob("*.jpeg"))[0]
    with running(create_app(captioner)) as url:
        answer = httpx.post(
            f"{url}/caption?attention=1", files=[("file", (image.name, image.read_bytes()))]
        )
    assert answer.status_code == 200, answer.text
    entry = answer.json()["results"][0]
    assert "error" not in entry and "ood_score" in entry


def test_captioner_data_must_match_the_encoder(runs, tmp_path, mednist_archive):
    _, _, clf, _, spec = runs
    other = ImageSpec(64, 1) if spec != ImageSpec(64, 1) else ImageSpec(128, 1)
    setting = ["--image-size", str(other.size), "--channels", str(other.channels)]
    done = cli_here(
        "data", "prepare", "--source", str(mednist_archive), "--root", str(tmp_path / "d"),
        "--per-class-limit", "4", *setting, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli(
        "train", "captioner", "--data", str(tmp_path / "d"), "--encoder", str(clf),
        "--run-dir", str(tmp_path / "cap"), *TINY_DECODER,
    )  # fmt: skip
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    assert f"images are {other.describe()}" in line and spec.describe() in line


def test_export_decodes_files_to_the_runs_setting(runs, tmp_path):
    import tensorflow as tf

    from captioning.data.images import load_image
    from captioning.entries import caption_entries
    from captioning.export import export_run
    from captioning.inference import Captioner

    _, data, _, cap, spec = runs
    body = export_run(cap, tmp_path / "model", command="pytest")
    assert ImageSpec.from_card(body) == spec
    shape = body["signatures"]["serving_pixels"]["inputs"]["pixels"]["shape"]
    assert shape == [None, *spec.cache_shape]
    files = sorted((data / "images").rglob("*.jpeg"))[::12]  # one of each class
    model = tf.saved_model.load(str(tmp_path / "model" / "saved_model"))
    out = model.signatures["serving_default"](images=tf.constant([f.read_bytes() for f in files]))
    captioner = Captioner(cap)
    inputs = [(str(f), load_image(f, spec=spec)) for f in files]
    entries = caption_entries(captioner, inputs, keep_out_of_scope=True)
    threshold = captioner.scope.threshold
    for i, entry in enumerate(entries):
        assert out["class"].numpy()[i].decode() == entry["class"]
        score = float(out["ood_score"].numpy()[i])
        np.testing.assert_allclose(score, entry["ood_score"], rtol=1e-4, atol=1e-6)
        # a training image may score the threshold itself: float rounding decides that one
        if abs(score - threshold) > 1e-5 * max(1.0, abs(threshold)):
            assert bool(out["in_scope"].numpy()[i]) == entry["in_scope"], (score, threshold)
        if entry["in_scope"] and bool(out["in_scope"].numpy()[i]):
            assert out["caption"].numpy()[i].decode() == entry["caption"]
