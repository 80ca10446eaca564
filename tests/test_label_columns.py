"""Label columns named at prepare time (``data prepare --label-columns a,b``) in every caption
format, the split grouped by a column (``--group-column``), and the classifier of one head per
label column trained on them; on generated files (real PNGs written with PIL) and on the real
MedPix 2.0 slice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from captioning.data.dataset import PreparedData
from captioning.data.sources import caption_source
from captioning.data.sources.prepare import CaptionFileOptions, prepare_caption_file
from captioning.data.split import SPLITS
from captioning.errors import DataError
from captioning.models.classifier import load_model

from helpers import cli as run_cli
from helpers import cli_here

# case -> modality; every case has 3 images, planes in turn; location "007" (text that looks
# like a number, and must stay text) on even cases, "Chest, Pulmonary" on odd ones
N_CASES, PER_CASE = 12, 3
PLANES = ("Axial", "Coronal", "Sagittal")
TINY = ["--set", "decoder.hidden=8", "--set", "decoder.embed_dim=8"]
TINY += ["--set", "decoder.attention_dim=8"]
TINY += ["--set", "decoder.tune_search=false"]  # the search: test_captioner_cli.py


def rows(n_cases: int = N_CASES) -> list[dict]:
    """One row per image: image, caption, case and the three label columns."""
    out = []
    for c in range(n_cases):
        modality = "CT" if c % 2 == 0 else "MR"
        location = "007" if c % 2 == 0 else "Chest, Pulmonary"
        for i in range(PER_CASE):
            out.append(
                {
                    "image": f"case{c:02d}/img{i}.png",
                    "caption": f"{modality} {PLANES[i].lower()} slice of case {c}.",
                    "case": f"MPX{c:02d}",
                    "modality": modality,
                    "plane": PLANES[i],
                    "location": location,
                }
            )
    return out


def write_images(folder: Path, entries: list[dict]) -> Path:
    """A distinct real PNG per row (grey noise plus a square whose place depends on the
    plane); case 3's first image is a byte copy of case 1's (links the two cases)."""
    rng = np.random.default_rng(0)
    images = folder / "images"
    for k, entry in enumerate(entries):
        pixels = rng.integers(0, 60, (48, 40), dtype=np.uint8)
        offset = 4 + 12 * PLANES.index(entry["plane"])
        pixels[10:26, offset : offset + 12] = 200 if entry["modality"] == "CT" else 120
        pixels[0, k % 40] = 255  # every file's bytes differ
        path = images / entry["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "L").save(path)
    (images / "case03/img0.png").write_bytes((images / "case01/img0.png").read_bytes())
    return images


def write_csv(path: Path, entries: list[dict], columns=None) -> Path:
    columns = columns or list(entries[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(entries)
    return path


def write_jsonl(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def split_of(c: int) -> str:
    """A given split by case: cases 0-7 train, 8-9 val, 10-11 test."""
    return "train" if c < 8 else "val" if c < 10 else "test"


def r2gen_payload(entries: list[dict]) -> dict:
    payload = {s: [] for s in SPLITS}
    for k, e in enumerate(entries):
        split = split_of(int(e["case"][3:]))
        payload[split].append(
            {
                "id": f"s{k}",
                "report": e["caption"],
                "image_path": [e["image"]],
                "split": split,
                **{key: e[key] for key in ("case", "modality", "plane", "location")},
            }
        )
    return payload


def coco_payload(entries: list[dict], on: str = "image") -> dict:
    """The labels on the image entries (``on="image"``) or on each annotation."""
    images, annotations = [], []
    labels = ("case", "modality", "plane", "location")
    for k, e in enumerate(entries):
        image = {"id": k, "file_name": e["image"], "width": 40}
        if on == "image":
            image.update({key: e[key] for key in labels})
        images.append(image)
        for v in range(2):
            note = {"id": 2 * k + v, "image_id": k, "caption": f"{e['caption']} ({v})"}
            if on == "annotations":
                note.update({key: e[key] for key in labels})
            annotations.append(note)
    return {"images": images, "annotations": annotations}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """The images and the same rows in every caption format."""
    folder = tmp_path_factory.mktemp("labels")
    entries = rows()
    images = write_images(folder, entries)
    with_split = [{**e, "split": split_of(int(e["case"][3:]))} for e in entries]
    jsonl_entries = [{**e, "modality": e["modality"], "case": int(e["case"][3:])} for e in entries]
    coco_images = folder / "coco_images.json"
    coco_images.write_text(json.dumps(coco_payload(entries, "image")))
    coco_notes = folder / "coco_annotations.json"
    coco_notes.write_text(json.dumps(coco_payload(entries, "annotations")))
    r2gen = folder / "mpx" / "annotation.json"
    r2gen.parent.mkdir()
    r2gen.write_text(json.dumps(r2gen_payload(entries)))
    return {
        "folder": folder,
        "entries": entries,
        "images": images,
        "csv": write_csv(folder / "cases.csv", entries),
        "csv_split": write_csv(folder / "cases_split.csv", with_split),
        "jsonl": write_jsonl(folder / "cases.jsonl", jsonl_entries),
        "r2gen": r2gen,
        "coco_images": coco_images,
        "coco_annotations": coco_notes,
    }


def prepare(files, captions: Path, root: Path, **options) -> PreparedData:
    options.setdefault("label_columns", ("modality", "plane", "location"))
    prepare_caption_file(
        root,
        CaptionFileOptions(source=str(captions), images=str(files["images"]), **options),
    )
    return PreparedData(root)


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTIONING_HOME", str(tmp_path / "home"))


# --------------------------------------------------------------------------- every format
@pytest.mark.parametrize(
    "layout", ["csv", "csv_split", "jsonl", "r2gen", "coco_images", "coco_annotations"]
)
def test_every_format_keeps_the_label_columns(files, tmp_path, layout):
    data = prepare(files, files[layout], tmp_path / "ds")
    truth = {e["image"]: e for e in files["entries"]}
    manifest = pd.read_csv(tmp_path / "ds" / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(manifest.columns)[-3:] == ["label_modality", "label_plane", "label_location"]
    for name in ("modality", "plane", "location"):
        assert list(manifest[f"label_{name}"]) == [truth[p][name] for p in manifest["path"]]
    assert "007" in set(manifest["label_location"])  # text stays text
    source = data.card["caption_source"]
    assert source["label_columns"] == ["modality", "plane", "location"]
    assert source["has_labels"] is False and data.classes == []  # no 'label' column
    counts = source["label_counts"]
    assert list(counts) == ["modality", "plane", "location"]
    for name, values in counts.items():
        assert sorted(values) == sorted({e[name] for e in files["entries"]})
        for split in SPLITS:
            got = {v: c[split] for v, c in values.items() if c[split]}
            want = manifest.loc[manifest["split"] == split, f"label_{name}"].value_counts()
            assert got == want.to_dict(), (name, split)
    read = caption_source(data)
    assert read.label_columns == ("modality", "plane", "location")
    values = read.label_values(data)
    assert list(values.columns) == ["modality", "plane", "location"]
    assert list(values["location"]) == list(manifest["label_location"])
    card = (tmp_path / "ds" / "data_card.md").read_text()
    assert "Label column `plane` (manifest `label_plane`)" in card
    assert "| Chest, Pulmonary |" in card
    references = json.loads((tmp_path / "ds/captions/references_card.json").read_text())
    assert references["caption_source"]["label_columns"] == ["modality", "plane", "location"]


def test_json_numbers_and_bools_become_text(files, tmp_path):
    entries = [{**e, "location": 7, "plane": True} for e in files["entries"]]
    path = write_jsonl(tmp_path / "n.jsonl", entries)
    data = prepare(files, path, tmp_path / "ds", label_columns=("location", "plane"))
    values = caption_source(data).label_values(data)
    assert set(values["location"]) == {"7"} and set(values["plane"]) == {"true"}


def test_rows_of_one_image_add_references_and_agree(files, tmp_path):
    entries = files["entries"] + [
        {**e, "caption": "another reference"} for e in files["entries"][:5]
    ]
    data = prepare(files, write_csv(tmp_path / "two.csv", entries), tmp_path / "ds")
    assert len(data.manifest) == len(files["entries"])
    assert data.card["text"]["n_references"] == len(entries)


def test_without_the_options_the_dataset_is_as_before(files, tmp_path):
    """The extra columns of a file are ignored unless named: no label_ column, no card key."""
    data = prepare(files, files["csv"], tmp_path / "ds", label_columns=())
    assert not [c for c in data.manifest.columns if c.startswith("label_")]
    assert list(data.manifest.columns) == [
        "path", "class", "label", "md5", "width", "height", "split", "study", "images",
    ]  # fmt: skip
    source = data.card["caption_source"]
    assert not {"label_columns", "label_counts", "group_column"} & set(source)
    assert caption_source(data).label_columns == ()
    assert (
        "stratified by class, grouped by content md5." in (tmp_path / "ds/data_card.md").read_text()
    )


# --------------------------------------------------------------------------- refusals
def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_column_missing_from_the_header_is_refused(files, tmp_path):
    columns = ["image", "caption", "case", "modality", "location"]
    path = write_csv(tmp_path / "no_plane.csv", files["entries"], columns)
    with pytest.raises(DataError) as err:
        prepare(files, path, tmp_path / "ds")
    message = one_line(err)
    assert message.startswith(f"{path}:1:") and "'plane'" in message
    assert not (tmp_path / "ds").exists()


def test_an_empty_cell_is_kept_as_not_stated(files, tmp_path):
    """Real label columns have gaps (MedPix 2.0 has an image without a plane): the image is
    kept, its value is "" in the manifest, and a classifier head has no "" class."""
    from captioning.data.sources import caption_source

    entries = [dict(e) for e in files["entries"]]
    entries[4]["plane"] = ""
    data = prepare(files, write_csv(tmp_path / "blank.csv", entries), tmp_path / "ds")
    values = caption_source(data).label_values(data)
    assert len(values) == len(entries) and (values["plane"] == "").sum() == 1
    assert "" not in set(values["modality"])


def test_a_missing_jsonl_key_is_refused_with_its_line(files, tmp_path):
    entries = [dict(e) for e in files["entries"]]
    del entries[2]["location"]
    path = write_jsonl(tmp_path / "missing.jsonl", entries)
    with pytest.raises(DataError) as err:
        prepare(files, path, tmp_path / "ds")
    message = one_line(err)
    assert message.startswith(f"{path}:3:") and "'location'" in message


def test_rows_of_one_image_that_disagree_are_refused(files, tmp_path):
    entries = files["entries"] + [{**files["entries"][1], "caption": "x", "plane": "Sagittal"}]
    path = write_csv(tmp_path / "disagree.csv", entries)
    with pytest.raises(DataError) as err:
        prepare(files, path, tmp_path / "ds")
    message = one_line(err)
    line = len(entries) + 1
    assert message.startswith(f"{path}:{line}:") and "'plane'" in message
    assert "'Sagittal' differs from 'Coronal'" in message and f"{path}:3" in message


def test_a_missing_r2gen_key_is_refused_with_its_entry(files, tmp_path):
    payload = r2gen_payload(files["entries"])
    del payload["val"][1]["modality"]
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError) as err:
        prepare(files, path, tmp_path / "ds")
    message = one_line(err)
    assert message.startswith(f"{path}: val[1]:") and "'modality'" in message


@pytest.mark.parametrize(
    "on, change, where, problem",
    [
        ("image", lambda p: p["images"][2].pop("plane"), "images[2]", "'plane'"),
        ("annotations", lambda p: p["annotations"][5].pop("plane"), "annotations[5]", "'plane'"),
        (
            "annotations",
            lambda p: p["annotations"][1].update(plane="Coronal"),
            "annotations[1]",
            "'Coronal' differs from 'Axial'",
        ),
        (
            "image",
            lambda p: p["annotations"][0].update(modality="MR"),
            "annotations[0]",
            "'MR' differs from 'CT'",
        ),
        ("image", lambda p: p["images"][0].update(plane=["A"]), "images[0]", "must be text"),
    ],
)
def test_coco_columns_missing_or_disagreeing_are_refused(
    files, tmp_path, on, change, where, problem
):
    payload = coco_payload(files["entries"], on)
    change(payload)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError) as err:
        prepare(files, path, tmp_path / "ds")
    message = one_line(err)
    assert message.startswith(f"{path}: {where}") and problem in message


def test_the_command_line_names_file_line_and_column(files, tmp_path):
    columns = ["image", "caption", "modality"]
    path = write_csv(tmp_path / "few.csv", files["entries"], columns)
    result = run_cli(
        "data", "prepare", "--captions", str(path), "--images", str(files["images"]),
        "--root", str(tmp_path / "ds"), "--label-columns", "modality,plane",
        env={"CAPTIONING_HOME": str(tmp_path / "home")}, timeout=300,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(errors) == 1 and f"{path}:1:" in errors[0] and "'plane'" in errors[0]
    for bad, problem in [("modality,,plane", "empty column name"), ("a,b,a", "a given twice")]:
        result = run_cli(
            "data", "prepare", "--captions", str(files["csv"]), "--images", str(files["images"]),
            "--root", str(tmp_path / "ds"), "--label-columns", bad,
            env={"CAPTIONING_HOME": str(tmp_path / "home")}, timeout=300,
        )  # fmt: skip
        assert result.returncode != 0 and problem in result.stderr, result.stderr
    result = run_cli(
        "data", "prepare", "--source", str(tmp_path), "--label-columns", "modality",
        env={"CAPTIONING_HOME": str(tmp_path / "home")}, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0 and "apply to a caption file" in result.stderr


# --------------------------------------------------------------------------- the split
def test_the_seeded_split_is_grouped_by_the_column_and_stratified(files, tmp_path):
    data = prepare(
        files,
        files["csv"],
        tmp_path / "ds",
        group_column="case",
        fractions=(0.6, 0.2, 0.2),
    )
    case = {e["image"]: e["case"] for e in files["entries"]}
    manifest = data.manifest.assign(case=data.manifest["path"].map(case))
    assert manifest.groupby("case")["split"].nunique().max() == 1  # no case in two splits
    # case 3 holds a byte copy of case 1's image: the two cases are one group
    assert (
        manifest.loc[manifest["case"] == "MPX01", "split"].iloc[0]
        == (manifest.loc[manifest["case"] == "MPX03", "split"].iloc[0])
    )
    # stratified by the first label column: both modalities in every split
    assert manifest.groupby("split")["label_modality"].nunique().to_dict() == {
        "test": 2,
        "train": 2,
        "val": 2,
    }
    source = data.card["caption_source"]
    assert source["group_column"] == "case"
    md = (tmp_path / "ds" / "data_card.md").read_text()
    assert "stratified by label column `modality`, grouped by `case` and content md5" in md
    # seeded: the same call gives the same split
    again = prepare(
        files, files["csv"], tmp_path / "ds2", group_column="case", fractions=(0.6, 0.2, 0.2)
    )
    assert again.manifest_sha256 == data.manifest_sha256


def test_without_a_group_column_cases_may_straddle_splits(files, tmp_path):
    """The default stays grouped by content only (so the option is what keeps cases whole)."""
    data = prepare(files, files["csv"], tmp_path / "ds", fractions=(0.6, 0.2, 0.2))
    case = data.manifest["path"].map({e["image"]: e["case"] for e in files["entries"]})
    assert data.manifest.groupby(case)["split"].nunique().max() > 1
    assert "group_column" not in data.card["caption_source"]


def test_a_split_given_by_the_file_is_kept(files, tmp_path):
    data = prepare(files, files["csv_split"], tmp_path / "ds", group_column="case")
    want = {e["image"]: split_of(int(e["case"][3:])) for e in files["entries"]}
    assert list(data.manifest["split"]) == [want[p] for p in data.manifest["path"]]
    assert data.card["split_from"] == "the caption file"


def test_a_blank_group_value_groups_by_content_alone(files, tmp_path):
    """An image without a case is kept (it links to others through its content only)."""
    entries = [dict(e) for e in files["entries"]]
    for row in (3, 7):
        entries[row]["case"] = " "
    path = write_csv(tmp_path / "nocase.csv", entries)
    data = prepare(files, path, tmp_path / "ds", label_columns=(), group_column="case")
    assert len(data.manifest) == len(entries)


# --------------------------------------------------------------------------- training
def cli(*args: str, cwd: Path):
    """The command in this process (the trainings these tests read), in ``cwd``; it succeeded."""
    result = cli_here(*args, cwd=cwd, env={"CAPTIONING_HOME": str(cwd / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.slow
def test_a_classifier_of_label_columns_and_a_captioner_on_it(files, tmp_path):
    """One head per column; a value only val has is unseen (left out of the accuracy); a class
    of one training image trains; evaluate scores every head; a captioner uses the encoder,
    and its class loss applies because the data's 'label' is the first head's column."""
    entries = [
        {**e, "split": split_of(int(e["case"][3:])), "label": e["modality"]}
        for e in files["entries"]
    ]
    entries[0]["location"] = "Spine"  # one training image: a class of one
    entries[-1]["location"] = "Eye and Orbit"  # in test only: unseen
    entries[27]["location"] = "Vascular"  # in val only (case 9): unseen
    assert split_of(int(entries[27]["case"][3:])) == "val"
    captions = write_csv(tmp_path / "cases.csv", entries)
    cli(
        "data", "prepare", "--captions", str(captions), "--images", str(files["images"]),
        "--root", "ds", "--label-columns", "modality,plane,location", cwd=tmp_path,
    )  # fmt: skip
    train = [
        "--set",
        "train.epochs=1",
        "--set",
        "train.min_steps=0",  # one epoch, as given (the schedule rule would grow it)
        "--set",
        "train.batch_size=8",
        "--set",
        "model.widths=[4,8]",
    ]
    cli("train", "classifier", "--data", "ds", "--run-dir", "clf", *train, cwd=tmp_path)
    run = json.loads((tmp_path / "clf" / "run.json").read_text())
    heads = run["label_columns"]
    assert set(heads) == {"modality", "plane", "location"}
    assert heads["modality"] == ["CT", "MR"] and run["classes"] == ["CT", "MR"]
    assert heads["location"] == ["007", "Chest, Pulmonary", "Spine"]  # the train split's
    assert run["head_layers"]["modality"] == "logits"
    metrics = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    best = metrics["best_val"]
    for column in heads:
        assert 0 <= best[f"accuracy_{column}"] <= 1
    assert best["unseen_location"] == 1 and best["unseen_plane"] == 0
    test = metrics["test"]
    assert test["n"] == 6 and test["unseen_location"] == 1
    assert {f"accuracy_{c}" for c in heads} <= set(test)
    cli("evaluate", "--run", "clf", "--split", "val", "--out", "val.json", cwd=tmp_path)
    report = json.loads((tmp_path / "val.json").read_text())
    assert report["n"] == 6 and report["unseen_location"] == 1
    assert report["heads"]["location"]["n"] == 5
    for column in heads:
        assert report[f"accuracy_{column}"] == pytest.approx(best[f"accuracy_{column}"])
        assert (tmp_path / f"confusion_val_{column}.csv").is_file()
    cli(
        "train", "captioner", "--data", "ds", "--encoder", "clf", "--run-dir", "cap",
        "--smoke", *TINY, cwd=tmp_path,
    )  # fmt: skip
    captioner = json.loads((tmp_path / "cap" / "run.json").read_text())
    assert captioner["classes"] == ["CT", "MR"] and captioner["labelled"] is True
    # decoder.labels: the decoder carries the three heads, unchanged by both stages, and
    # captions through them
    cli(
        "train", "captioner", "--data", "ds", "--encoder", "clf", "--run-dir", "cap_labels",
        "--smoke", "--set", "decoder.labels=true", *TINY, cwd=tmp_path,
    )  # fmt: skip
    classifier = load_model(tmp_path / "clf" / "best_model.keras")
    decoder = load_model(tmp_path / "cap_labels" / "best_model.keras").get_layer("decoder")
    heads = [classifier.get_layer(name) for name in run["head_layers"].values()]
    assert decoder.label_sizes == tuple(h.units for h in heads)  # the run's column order
    for copy, head in zip(decoder.label_heads, heads, strict=True):
        for mine, theirs in zip(copy.get_weights(), head.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    image = next(files["images"].rglob("*.png"))
    result = run_cli("caption", str(image), "--run", "cap_labels", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.loads(result.stdout.splitlines()[0])  # one JSON line per image
    assert entry["path"] == str(image) and "error" not in entry and entry["class"] in ("CT", "MR")


def test_a_single_label_classifier_records_no_heads(files, tmp_path):
    """A dataset with one ``label`` column and no label columns keeps the one-head path."""
    from captioning.config import ClassifierConfig
    from captioning.training.classifier_data import load_classifier_data

    entries = [{**e, "label": e["modality"]} for e in files["entries"]]
    prepare(files, write_csv(tmp_path / "l.csv", entries), tmp_path / "ds", label_columns=())
    found = load_classifier_data(ClassifierConfig(), tmp_path / "ds")
    assert found.heads == {} and found.classes == ["CT", "MR"]
    assert found.targets(found.train) is found.train.labels


def test_the_multi_head_task_leaves_unseen_values_out():
    """Summed cross-entropy over the heads; a label -1 counts in no loss or accuracy of its
    column, and the metrics count it as unseen."""
    import tensorflow as tf

    from captioning.config import ModelConfig
    from captioning.models.classifier import build_multi_head_classifier
    from captioning.training.classifier_task import MultiHeadClassificationTask

    model = build_multi_head_classifier(ModelConfig(widths=[4, 8]), {"modality": 2, "plane": 3})
    assert model.get_layer("logits").units == 2 and model.get_layer("logits_plane").units == 3
    task = MultiHeadClassificationTask(["modality", "plane"])
    pixels = tf.random.uniform((4, 64, 64, 1), 0, 255, seed=0)
    labels = {"modality": tf.constant([0, 1, 1, 0]), "plane": tf.constant([2, -1, 0, -1])}
    per_example, stats = task.loss_and_stats(model, (pixels, labels), training=False)
    logits = model(pixels, training=False)
    cross = {
        k: tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(v, 0), logits[k]).numpy()
        for k, v in labels.items()
    }
    want = cross["modality"] + cross["plane"] * np.array([1, 0, 1, 0])
    np.testing.assert_allclose(per_example.numpy(), want, rtol=1e-5)
    sums = {k: float(v) for k, v in stats.items()}
    assert sums["known_plane"] == 2 and sums["count"] == 4
    metrics = task.summarize(sums)
    assert metrics["unseen_plane"] == 2 and metrics["unseen_modality"] == 0
    assert metrics["accuracy_plane"] == sums["correct_plane"] / 2
    assert metrics["accuracy"] == pytest.approx(
        (metrics["accuracy_modality"] + metrics["accuracy_plane"]) / 2
    )
    assert (
        task.summarize({**sums, "known_plane": 0.0, "correct_plane": 0.0})["accuracy"]
        == (metrics["accuracy_modality"])
    )  # a column without known labels is left out of the mean


@pytest.mark.slow
def test_medpix_label_columns_classifier_and_captioner(medpix_slice, medpix_labelled, tmp_path):
    """The real MedPix slice: prepared with its three label columns, a classifier of one head
    each trained a step, a captioner trained on its encoder."""
    captions = medpix_slice / "captions.csv"
    ds, printed = medpix_labelled  # data prepare --label-columns modality,plane,location
    assert "label columns modality (2 values)" in printed
    data = PreparedData(ds)
    table = pd.read_csv(captions, dtype=str, keep_default_na=False).set_index("image")
    for name in ("modality", "plane", "location"):
        assert list(data.manifest[f"label_{name}"].astype(str)) == list(
            table.loc[data.manifest["path"], name]
        )
    assert data.card["caption_source"]["label_columns"] == ["modality", "plane", "location"]
    cli("train", "classifier", "--data", ds, "--smoke", "--run-dir", "clf", cwd=tmp_path)
    run = json.loads((tmp_path / "clf" / "run.json").read_text())
    assert set(run["label_columns"]) == {"modality", "plane", "location"}
    assert run["label_columns"]["modality"] == ["CT", "MR"] == run["classes"]
    assert run["head_layers"] == {
        "modality": "logits",
        "plane": "logits_plane",
        "location": "logits_location",
    }
    metrics = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    assert {"accuracy_modality", "accuracy_plane", "accuracy_location"} <= set(metrics["best_val"])
    assert metrics["test"] is None  # the slice has train and val cases only
    log = pd.read_csv(tmp_path / "clf" / "log.csv")
    assert log["train_loss"].iloc[0] > 0  # --smoke fills a batch: 8 images per modality
    cli(
        "train", "captioner", "--data", ds, "--encoder", "clf", "--run-dir", "cap",
        "--smoke", *TINY, cwd=tmp_path,
    )  # fmt: skip
    captioner = json.loads((tmp_path / "cap" / "run.json").read_text())
    assert captioner["labelled"] is False and captioner["classes"] == ["CT", "MR"]
    assert (tmp_path / "cap" / "best_model.keras").is_file()
    cli("evaluate", "--run", "cap", "--split", "val", "--out", "val.json", cwd=tmp_path)
    check_classify_then_template(json.loads((tmp_path / "val.json").read_text()))


def check_classify_then_template(report: dict) -> None:
    """The label baseline of a run whose encoder has label heads: scored like the model, with
    each image's caption one of the train split's and its paired bootstrap."""
    block = report["baselines"]["classify_then_template"]
    assert {"bleu4", "cider", "rouge_l"} <= set(block) and isinstance(block["cider"], float)
    assert block["columns"] == ["modality", "plane", "location"]
    assert set(block["head_accuracy"]) == {"modality", "plane", "location"}
    assert sum(block["matched_columns"].values()) == report["n"]
    assert block["paired_bootstrap"]["bleu4"]["low"] <= block["paired_bootstrap"]["bleu4"]["high"]
    captions = {e["baselines"]["classify_then_template"] for e in report["captions"]}
    assert 1 <= len(captions) == block["groups_used"]
