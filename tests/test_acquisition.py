"""The ``acquisition`` template set: exact transforms, seeded draws, the transformed images
``data captions`` writes, cut points fitted on them, and the data classes that read them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from captioning.captions.acquisition import (
    ORIENTATIONS,
    POSITIONS,
    draw,
    rotate,
    shift,
    shift_pixels,
    transform,
    transform_images,
)
from captioning.captions.findings import compute_findings, fit_cutpoints
from captioning.captions.parse import parse_caption
from captioning.data.dataset import PreparedData
from captioning.data.evaluation import run_split
from captioning.data.template_captions import load_cutpoints, read_captions
from captioning.errors import DataError

from helpers import cli, cli_here  # cli_here: in this process, where runs are read

FIELDS = ["orientation", "position", "extent", "density", "brightness"]


def ramp(height=64, width=64) -> np.ndarray:
    """(H, W) uint8 with every pixel distinct within a row and a column, minimum 7."""
    r, c = np.mgrid[:height, :width]
    return ((r * 3 + c * 5) % 240 + 7).astype(np.uint8)


def test_rotations_follow_np_rot90_and_turn_clockwise():
    x = ramp()
    w = x.shape[1]
    cw = rotate(x, "rotated_90_cw")
    assert np.array_equal(cw, np.rot90(x, k=-1))
    assert np.array_equal(rotate(x, "rotated_90_ccw"), np.rot90(x, k=1))
    assert np.array_equal(rotate(x, "rotated_180"), x[::-1, ::-1])
    assert np.array_equal(rotate(x, "upright"), x)
    # clockwise: the top row becomes the right-hand column, read top to bottom
    assert np.array_equal(cw[:, w - 1], x[0, :])
    assert cw[0, w - 1] == x[0, 0]


def test_shifts_move_content_a_quarter_and_fill_with_the_minimum():
    x = ramp()
    s = shift_pixels(64)
    assert s == 16 and shift_pixels(30) == 8
    low = x.min()
    left, right, up, down = (shift(x, p) for p in ("left", "right", "up", "down"))
    assert np.array_equal(left[:, :-s], x[:, s:]) and (left[:, -s:] == low).all()
    assert np.array_equal(right[:, s:], x[:, :-s]) and (right[:, :s] == low).all()
    assert np.array_equal(up[:-s], x[s:]) and (up[-s:] == low).all()  # towards row 0
    assert np.array_equal(down[s:], x[:-s]) and (down[:s] == low).all()
    assert np.array_equal(shift(x, "centred"), x)
    with pytest.raises(ValueError, match="position"):
        shift(x, "sideways")


def test_transform_rotates_then_shifts():
    x = ramp()
    got = transform(x, "rotated_90_cw", "up")
    assert np.array_equal(got, shift(np.rot90(x, k=-1), "up"))
    assert not np.array_equal(got, np.rot90(shift(x, "up"), k=-1))


def test_draws_are_seeded_per_path_and_cover_every_value():
    paths = [f"Class{i % 6}/{i:06d}.jpeg" for i in range(300)]
    first = draw(paths, FIELDS)
    assert first.equals(draw(paths, FIELDS))  # reproducible
    order = np.random.default_rng(0).permutation(len(paths))
    shuffled = draw([paths[i] for i in order], FIELDS)
    assert shuffled.equals(first.iloc[order].reset_index(drop=True))  # per image, not per order
    assert not first.equals(draw(paths, FIELDS, seed=1))
    shares = {f: first[f].value_counts(normalize=True) for f in ("orientation", "position")}
    assert set(shares["orientation"].index) == set(ORIENTATIONS)
    assert set(shares["position"].index) == set(POSITIONS)
    assert shares["orientation"].min() >= 0.20 and shares["position"].min() >= 0.15
    only = draw(paths, ["position", "extent"])  # a field the set does not state stays identity
    assert (only["orientation"] == "upright").all() and only["position"].equals(first["position"])


def test_transform_images_matches_each_image_transform(mednist_small):
    images = np.asarray(PreparedData(mednist_small).images[:60])
    draws = draw([f"x{i}" for i in range(60)], FIELDS)
    out = transform_images(images, draws)
    for i, row in draws.iterrows():
        assert np.array_equal(out[i], transform(images[i], row["orientation"], row["position"]))


def test_rgb_images_turn_and_move_like_their_channels(mednist_small):
    grey = PreparedData(mednist_small).images[:30]
    rgb = np.stack([grey, grey // 2, 255 - grey], -1)  # (N, 64, 64, 3)
    draws = draw([f"x{i}" for i in range(30)], FIELDS)
    out = transform_images(rgb, draws)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], transform_images(rgb[..., c].copy(), draws))


@pytest.fixture(scope="module")
def acquired(mednist_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("acquisition") / "mednist"
    shutil.copytree(mednist_small, root)
    done = cli_here("data", "captions", "--root", str(root), "--templates", "acquisition")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "captioned 240 images with template set 'acquisition'" in done.stdout
    return root


def test_the_labelled_export_gives_back_the_sets_pixels_and_draws(acquired, tmp_path):
    # experiments/acquisition_labelled.py: train and val as a labelled caption file, never test;
    # `data prepare` of it reads back the set's pixels, and its label columns are the draws
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / "acquisition_labelled.py"
    spec = importlib.util.spec_from_file_location("acquisition_labelled", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, root = tmp_path / "labelled", tmp_path / "prepared"
    module.main(["--data", str(acquired), "--out", str(out)])
    done = cli_here(
        "data", "prepare", "--captions", str(out / "labels.csv"), "--images", str(out / "images"),
        "--root", str(root), "--label-columns", "class,orientation,position",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    view, frame = PreparedData(acquired, "acquisition"), read_captions(acquired, "acquisition")
    columns = ["class", "orientation", "position"]
    expected = {  # the set's train and val images: .png path -> (pixels, truth)
        Path(row["path"]).with_suffix(".png").as_posix(): (
            view.images[i],
            [row[k] for k in columns],
        )
        for i, row in enumerate(frame.to_dict("records"))
        if row["split"] != "test"
    }
    prepared = PreparedData(root)
    assert sorted(prepared.manifest["path"]) == sorted(expected)  # each once, no test image
    for i, row in enumerate(prepared.manifest.to_dict("records")):
        pixels, truth = expected[row["path"]]
        assert np.array_equal(prepared.images[i], pixels)
        assert [row[f"label_{k}"] for k in columns] == truth


def test_written_images_are_the_drawn_transforms(acquired):
    original = PreparedData(acquired)
    view = PreparedData(acquired, "acquisition")
    assert view.image_path == acquired / "captions" / "acquisition_images.npy"
    assert original.image_path == acquired / "images.npy"
    frame = read_captions(acquired, "acquisition")
    draws = draw(original.manifest["path"], FIELDS)
    assert frame["orientation"].equals(draws["orientation"])
    assert frame["position"].equals(draws["position"])
    expected = transform_images(original.images, draws)
    assert np.array_equal(np.asarray(view.images), expected)
    test = view.split("test")  # every split reads the transformed images
    assert np.array_equal(test.images, expected[test.rows])
    # a run on the set (evaluate, calibrate) reads them through run_split too
    run = {"data_root": str(acquired), "manifest_sha256": view.manifest_sha256}
    _, part, _ = run_split({**run, "templates": "acquisition"}, "val")
    assert np.array_equal(part.images, expected[part.rows])
    _, part, _ = run_split({**run, "templates": None}, "val")
    assert np.array_equal(part.images, np.asarray(original.images)[part.rows])


def test_cut_points_and_findings_come_from_the_transformed_train_split(acquired):
    view = PreparedData(acquired, "acquisition")
    cutpoints = load_cutpoints(acquired, "acquisition")
    train = view.split("train")
    assert cutpoints["cuts"] == fit_cutpoints(train.images)["cuts"]
    prepared = fit_cutpoints(PreparedData(acquired).split("train").images)["cuts"]
    assert cutpoints["cuts"] != prepared  # shifting uncovers background: the cuts move
    card = json.loads((acquired / "captions" / "acquisition_card.json").read_text())
    assert card["acquisition"]["cutpoints"] == "captions/acquisition_cutpoints.json"
    assert card["cutpoints"]["cuts"] == cutpoints["cuts"]
    frame = read_captions(acquired, "acquisition")
    measured = compute_findings(np.asarray(view.images), cutpoints)
    for field in ("quality", "extent", "density", "brightness"):
        assert frame[field].equals(measured[field].astype(str)), field


def test_references_state_the_drawn_fields(acquired):
    frame = read_captions(acquired, "acquisition")
    refs = [c for c in frame.columns if c.startswith("reference_")]
    assert len(refs) == 5
    for _, row in frame.head(40).iterrows():
        fields = {k: row[k] for k in ("quality", *FIELDS)}
        for col in refs:
            assert parse_caption(row[col], "acquisition").matches(row["class"], fields), row[col]


def test_missing_transformed_images_is_a_clear_error(acquired, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(acquired, root)
    (root / "captions" / "acquisition_images.npy").unlink()
    with pytest.raises(DataError, match=r"acquisition_images\.npy: no transformed images"):
        _ = PreparedData(root, "acquisition").images
    assert isinstance(PreparedData(root).split("val").images, np.ndarray)  # others unaffected


def test_an_external_folder_is_acquired_by_the_same_draws(acquired, tmp_path):
    from captioning.evaluation.inputs import external_set

    data, view = PreparedData(acquired), PreparedData(acquired, "acquisition")
    captioner = SimpleNamespace(
        run={"data_root": str(acquired)},
        run_dir=tmp_path,
        classes=data.classes,
        templates="acquisition",
        image_spec=data.image_spec,
    )
    evalset = external_set(captioner, data.image_dir, tmp_path)  # the same files, unprepared
    rows = data.manifest.reset_index().set_index("path").loc[evalset.frame["path"], "index"]
    truth = read_captions(acquired, "acquisition").iloc[rows.to_numpy()]
    for field in FIELDS:
        assert list(evalset.frame[field]) == list(truth[field]), field
    assert np.array_equal(evalset.images, np.asarray(view.images)[rows.to_numpy()])


@pytest.mark.slow
def test_train_and_evaluate_a_captioner_on_the_set(acquired, tmp_path):
    # the encoder: the MedNIST classifier bundled with the package (no --encoder), whose
    # classes the set's images have; training one here would add a minute and test nothing new.
    # The set's recipe config (the set, the state read from the whole map, a trained head per
    # field), shrunk
    recipe = Path(__file__).resolve().parents[1] / "experiments" / "captioner_acquisition.toml"
    tiny = [f"decoder.{k}=8" for k in ("hidden", "embed_dim", "attention_dim")]
    sets = [
        "train.min_steps=0",
        "finetune.min_steps=0",
        "decoder.tune_search=false",
        *tiny,
    ]
    args = [a for s in sets for a in ("--set", s)]
    done = cli_here(
        "train",
        "captioner",
        "--data",
        str(acquired),
        "--smoke",
        "--run-dir",
        "cap",
        "--config",
        str(recipe),
        *args,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((tmp_path / "cap" / "run.json").read_text())
    assert run["templates"] == "acquisition"
    decoder = json.loads((tmp_path / "cap" / "config.json").read_text())["decoder"]
    assert decoder["init_from_map"] and decoder["field_heads"]
    trained = json.loads((tmp_path / "cap" / "metrics.json").read_text())["stage1"]["best_val"]
    assert 0 <= trained["field_accuracy"] <= 1  # the heads were scored on their own labels
    assert (tmp_path / "cap" / "scope.json").is_file()  # fitted on the set's images
    # the set's own cut points (fitted on the transformed images) travel with the run
    kept = json.loads((tmp_path / "cap" / "cutpoints.json").read_text())
    assert kept == json.loads((acquired / "captions" / "acquisition_cutpoints.json").read_text())
    done = cli_here("evaluate", "--run", "cap", "--out", "report.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    accuracy = report["findings_accuracy"]
    assert {"orientation", "position", "extent", "density", "brightness"} <= set(accuracy)
    assert all(0 <= accuracy[f] <= 1 for f in ("orientation", "position"))
    balanced = report["findings_balanced_accuracy"]  # each value counted alike
    assert set(balanced) == set(accuracy) - {"all", "quality"}
    assert report["templates"] == "acquisition"
    frame = pd.DataFrame(report["captions"])
    assert len(frame) == report["n"] > 0
    assert {"orientation", "position"} <= set(report["ece"])  # the new fields are calibrated
    # caption --json states the acquisition findings (the keys of confidence, minus class)
    images = sorted((acquired / "images").rglob("*.jpeg"))[:3]
    done = cli("caption", "--run", "cap", *map(str, images), "--json", "--keep-out-of-scope",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for entry in map(json.loads, done.stdout.splitlines()):
        assert set(entry["findings"]) == set(entry["confidence"]) - {"class"}
        assert entry["findings"]["orientation"] in (*ORIENTATIONS, None)
        assert entry["findings"]["position"] in (*POSITIONS, None)
