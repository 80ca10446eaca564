"""Caption sources: ``data prepare --captions FILE --images DIR`` on a generated report dataset
in the ``file`` (CSV, JSONL) and ``r2gen`` layouts, through the command line, and the
tokenisation rules free text uses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tiny_reports import make_reports

from captioning.captions.text import TextRules
from captioning.captions.text_card import text_stats, text_stats_markdown
from captioning.captions.tokenize import tokenize
from captioning.captions.vocabulary import Vocabulary
from captioning.data.dataset import PreparedData
from captioning.data.images import load_image
from captioning.data.sources import caption_source
from captioning.data.sources.prepare import default_root

from helpers import cli as run_cli


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    """The command line with its own ``CAPTIONING_HOME``."""
    return run_cli(*args, env={"CAPTIONING_HOME": str(home)}, timeout=300)


def one_line_error(result, *parts: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in errors[0], (part, errors[0])


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    return make_reports(tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def prepared(reports, tmp_path_factory) -> dict[str, Path]:
    """Each layout prepared once through the CLI, at its default root."""
    home = tmp_path_factory.mktemp("home")
    out = {}
    for layout in ("csv", "jsonl", "r2gen"):  # one home each: the CSV and JSONL share a name
        result = cli(
            "data", "prepare", "--captions", str(reports[layout]), "--images",
            str(reports["images"]), home=home / layout,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        out[layout] = Path(result.stdout.split("dataset: ")[1].split()[0])
    out["home"] = home
    return out


def test_default_roots_are_named_after_the_file(prepared):
    home = prepared["home"]
    assert prepared["csv"] == home / "csv" / "reports"
    assert prepared["jsonl"] == home / "jsonl" / "reports"
    assert prepared["r2gen"] == home / "r2gen" / "iu_tiny"  # annotation.json: its folder's name


def test_never_the_mednist_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTIONING_HOME", str(tmp_path))
    assert default_root(tmp_path / "mednist.csv") == tmp_path / "mednist-captions"


def test_csv_layout(reports, tmp_path):
    result = cli(
        "data", "prepare", "--captions", str(reports["csv"]), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds"), home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = PreparedData(tmp_path / "ds")
    studies = reports["studies"]
    n = len(studies) - 2  # study 0's image is corrupt, study 1's missing: both skipped
    assert len(data.manifest) == n and data.images.shape == (n, 64, 64)
    skipped = {s["path"]: s["reason"] for s in data.card["skipped"]}
    assert skipped == {
        "study000/frontal.png": "not a PNG, JPEG or DICOM image",
        "study001/frontal.png": "no such file",
    }
    assert "study000/frontal.png" in result.stderr and "study001/frontal.png" in result.stderr
    # the encoder reads the frontal (first) image, decoded by the MedNIST rules
    for i in (0, 1, 2, 3):
        row = data.manifest.iloc[i]
        assert row["path"].endswith(("frontal.png", "frontal.jpg"))
        assert row["images"] == f"{row['path']}|{row['path'].replace('frontal', 'lateral')}"
        np.testing.assert_array_equal(data.images[i], load_image(reports["images"] / row["path"]))
    widths = set(data.manifest["width"])
    assert {64, 100, 70, 50, 120} <= widths  # sizes, channel counts and formats all decoded
    # labels: from the file, sorted; a seeded split grouped by content, every split used
    assert data.classes == ["left", "right"]
    truth = {s["images"][0]: s["side"] for s in studies}
    assert list(data.manifest["class"]) == [truth[p] for p in data.manifest["path"]]
    assert set(data.manifest["split"]) == {"train", "val", "test"}
    assert data.card["split_from"] == "seeded"
    source = caption_source(data)
    assert (source.kind, source.has_labels, source.has_truth) == ("file", True, False)
    frame = source.frame(data)
    assert list(frame["path"]) == list(data.manifest["path"])
    assert [c for c in frame.columns if c.startswith("reference_")] == [
        "reference_0",
        "reference_1",
    ]
    assert (
        "opacity in the left lung" in frame["reference_0"].iloc[0]
        or "right lung" in (frame["reference_0"].iloc[0])
    )
    text = data.card["text"]
    assert text["n_references"] == 2 * n
    assert text["references_per_image"] == {"2": n}
    assert sum(text["length"]["histogram"].values()) == 2 * n
    assert text["oov_rate"] == {"val": 0.0, "test": 0.0}  # every word occurs in train
    md = (tmp_path / "ds" / "data_card.md").read_text()
    assert "Vocabulary:" in md and "OOV rate" in md and "reports.csv" in md
    card = json.loads((tmp_path / "ds" / "captions" / "references_card.json").read_text())
    assert card["text"] == text
    # the split is seeded: the same command gives the same manifest
    again = cli(
        "data", "prepare", "--captions", str(reports["csv"]), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds2"), home=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert PreparedData(tmp_path / "ds2").manifest_sha256 == data.manifest_sha256


def test_known_columns_can_be_named_as_label_and_group_columns(reports, tmp_path):
    """``--label-columns label`` keeps the file's label as ``label_label`` beside ``class``;
    ``--group-column id`` groups the seeded split by study (each study is one image here)."""
    result = cli(
        "data", "prepare", "--captions", str(reports["csv"]), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds"), "--label-columns", "label", "--group-column", "id",
        home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "label columns label (2 values)" in result.stdout
    data = PreparedData(tmp_path / "ds")
    assert list(data.manifest["label_label"]) == list(data.manifest["class"])
    source = data.card["caption_source"]
    assert source["label_columns"] == ["label"] and source["group_column"] == "id"
    assert data.classes == ["left", "right"] and source["has_labels"] is True
    counts = source["label_counts"]["label"]
    assert {v: sum(c.values()) for v, c in counts.items()} == data.manifest[
        "class"
    ].value_counts().to_dict()


def test_jsonl_layout_keeps_the_given_split(reports, prepared):
    data = PreparedData(prepared["jsonl"])
    given = {}
    for line in reports["jsonl"].read_text().splitlines():
        entry = json.loads(line)
        given[entry["image"][0]] = entry["split"]
    assert list(data.manifest["split"]) == [given[p] for p in data.manifest["path"]]
    assert data.card["split_from"] == "the caption file"
    assert caption_source(data).has_labels


def test_r2gen_layout(reports, prepared):
    data = PreparedData(prepared["r2gen"])
    annotation = json.loads(reports["r2gen"].read_text())
    split_of = {e["id"]: s for s, entries in annotation.items() for e in entries}
    assert len(data.manifest) == sum(len(v) for v in annotation.values()) - 2
    assert list(data.manifest["split"]) == [split_of[s] for s in data.manifest["study"]]
    assert data.classes == [] and set(data.manifest["label"]) == {-1}
    assert all(len(images.split("|")) == 2 for images in data.manifest["images"])
    source = caption_source(data)
    assert (source.kind, source.has_labels, source.has_truth) == ("r2gen", False, False)
    assert source.rules == TextRules(min_count=3, max_length=60)  # R2Gen's IU X-Ray settings
    frame = source.frame(data)
    reports_by_id = {e["id"]: e["report"] for entries in annotation.values() for e in entries}
    assert list(frame["reference_0"]) == [reports_by_id[s] for s in frame["study"]]


@pytest.mark.parametrize(
    "image, problem",
    [("../outside.png", "escapes the image folder"), ("/etc/passwd", "is absolute")],
)
def test_a_path_leaving_the_image_folder_is_refused(reports, tmp_path, image, problem):
    captions = tmp_path / "bad.csv"
    lines = ["image,caption", "study002/frontal.png,fine", f"{image},sneaky"]
    captions.write_text("\n".join(lines) + "\n")
    (reports["images"].parent / "outside.png").write_bytes(b"")
    result = cli(
        "data", "prepare", "--captions", str(captions), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds"), home=tmp_path,
    )  # fmt: skip
    one_line_error(result, f"{captions}:3", repr(image), problem)
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # nothing else written


@pytest.mark.parametrize(
    "lines, problem",
    [
        (["image,text", "a.png,x"], "needs the columns 'image' and 'caption'"),
        (["image,caption,split", "a.png,x,train", "b.png,y,"], "no split, while other rows"),
        (["image,caption,split", "a.png,x,dev"], "split 'dev' is not one of"),
        (["image,caption,label", "a.png,x,A", "a.png,y,B"], "label 'B' differs"),
        (["image,caption", "a.png,"], "no reference caption"),
    ],
)
def test_bad_caption_files_are_refused_in_one_line(reports, tmp_path, lines, problem):
    captions = tmp_path / "bad.csv"
    captions.write_text("\n".join(lines) + "\n")
    result = cli(
        "data", "prepare", "--captions", str(captions), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds"), home=tmp_path,
    )  # fmt: skip
    one_line_error(result, str(captions), problem)


def test_captions_need_images_and_no_mednist_options(reports, tmp_path):
    result = cli("data", "prepare", "--captions", str(reports["csv"]), home=tmp_path)
    one_line_error(result, "--captions FILE and --images DIR go together")
    result = cli(
        "data", "prepare", "--captions", str(tmp_path / "x.txt"), "--images", str(tmp_path),
        home=tmp_path,
    )  # fmt: skip
    one_line_error(result, "x.txt", "--format")


# ----------------------------------------------------------------------- tokenisation rules
def test_default_rules_are_the_one_rule():
    text = "Head CT, centred; patient's non-diagnostic scan. 3 cm!"
    assert TextRules().tokenizer() is tokenize
    assert TextRules().tokenizer()(text) == tokenize(text)


def test_rules_change_tokens():
    text = "Small LEFT effusion. No pneumothorax, no edema."
    assert TextRules(punctuation="keep").tokenizer()(text) == [
        "small", "left", "effusion", ".", "no", "pneumothorax", ",", "no", "edema", ".",
    ]  # fmt: skip
    assert TextRules(lowercase=False).tokenizer()(text)[:2] == ["Small", "LEFT"]
    assert TextRules(max_length=3).tokenizer()(text) == ["small", "left", "effusion"]


def test_vocabulary_min_count_and_rules_travel_with_it(tmp_path):
    rules = TextRules(min_count=2, punctuation="keep")
    vocab = Vocabulary.from_captions(["lungs clear .", "lungs clear , heart big ."], rules=rules)
    assert vocab.tokens[4:] == [".", "clear", "lungs"]  # "heart", "big", "," seen once: <unk>
    ids = vocab.encode("Lungs big.", 10)
    assert ids == [vocab.start_id, vocab.index["lungs"], vocab.unk_id, vocab.index["."], 2]
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == vocab and loaded.rules == rules
    # the default rules write the file as before (MedNIST runs' vocabulary.json unchanged)
    Vocabulary.from_captions(["a b"]).save(tmp_path / "d.json")
    assert json.loads((tmp_path / "d.json").read_text()) == {
        "tokens": ["<pad>", "<start>", "<end>", "<unk>", "a", "b"]
    }


def test_text_stats_count_oov_on_val_and_test():
    references = [["a b a", "a c"], ["a b"], ["a d d"], ["e"]]
    splits = ["train", "train", "val", "test"]
    stats = text_stats(references, splits, TextRules(min_count=2))
    # train counts: a 4, b 2, c 1 -> vocabulary {a, b}; val: a d d -> 2 of 3 unknown
    assert stats["vocabulary_size"] == 2 and stats["train_words_seen"] == 3
    assert stats["oov_rate"] == {"val": round(2 / 3, 4), "test": 1.0}
    assert stats["length"]["histogram"] == {"1": 1, "2": 2, "3": 2}
    assert stats["references_per_image"] == {"1": 3, "2": 1}
    assert stats["cut_share"] == 0


def test_text_stats_list_texts_images_share_word_for_word():
    references = [
        ["Replace this.", "A b."],
        ["replace THIS"],  # the same tokens under the default rules
        ["Replace this."],
        ["a c"],
        ["a b", "a b!"],  # one image holding a text twice counts once
        ["e"],
    ]
    splits = ["train", "train", "val", "val", "test", "test"]
    repeated = text_stats(references, splits, TextRules())["repeated"]
    assert repeated["top"] == [
        {"text": "Replace this.", "images": 3, "splits": {"train": 2, "val": 1}},
        {"text": "A b.", "images": 2, "splits": {"train": 1, "test": 1}},
    ]
    assert repeated["distinct_texts"] == 2 and repeated["images_share"] == round(4 / 6, 4)
    assert repeated["copied_from_train"] == {"val": 0.5, "test": 0.5}
    line = text_stats_markdown(text_stats(references, splits, TextRules()))[-1]
    assert line.startswith("Repeated word for word: 66.7% of images") and "train 2, val 1" in line


def test_fewer_references_fill_their_slots_in_turn():
    import pandas as pd

    from captioning.data.caption_data import encode_references, reference_tokens

    frame = pd.DataFrame(
        {"reference_0": ["a b", "c"], "reference_1": ["b", ""], "reference_2": ["a", ""]}
    )
    vocab = Vocabulary.from_captions(["a b", "c"])
    refs = encode_references(frame, vocab, 4)  # (2, 3, 5)
    assert refs.shape == (2, 3, 5)
    assert (refs[1, 0] == refs[1, 1]).all() and (refs[1, 1] == refs[1, 2]).all()
    assert reference_tokens(frame) == [[["a", "b"], ["b"], ["a"]], [["c"]]]


def test_a_link_leading_out_of_the_image_folder_is_refused(reports, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(reports["images"].joinpath("study002/frontal.png").read_bytes())
    images = tmp_path / "images"
    images.mkdir()
    (images / "link").symlink_to(outside)
    captions = tmp_path / "linked.csv"
    captions.write_text("image,caption\nlink/x.png,through a link\n")
    result = cli(
        "data", "prepare", "--captions", str(captions), "--images", str(images),
        "--root", str(tmp_path / "ds"), home=tmp_path,
    )  # fmt: skip
    one_line_error(result, f"{captions}:2", "escapes the image folder")
    assert not (tmp_path / "ds").exists()


def test_template_captions_are_refused_on_a_caption_file(prepared, tmp_path):
    result = cli("data", "captions", "--root", str(prepared["r2gen"]), home=tmp_path)
    one_line_error(result, str(prepared["r2gen"]), "r2gen caption file, not from templates")
