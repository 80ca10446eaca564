"""The ``coco`` caption format (COCO captions json: several captions per image), and how
``data prepare`` tells the formats apart: by suffix, by content where formats share one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_reports import make_reports, report

from captioning.captions.text import TextRules
from captioning.data.dataset import PreparedData
from captioning.data.sources import FORMATS, CaptionFormat, caption_source, detect_format
from captioning.data.sources.coco import read_coco
from captioning.data.sources.prepare import text_rules
from captioning.data.sources.registry import Sample
from captioning.errors import DataError

from helpers import cli as run_cli


def coco_payload(studies: list[dict], splits: list[str] | None = None) -> dict:
    """A COCO captions object of the studies' frontal images, two captions each."""
    images, annotations = [], []
    for i, s in enumerate(studies):
        entry = {"id": 100 + i, "file_name": s["images"][0], "width": 64, "height": 64}
        if splits:
            entry["split"] = splits[i]
        images.append(entry)
        for variant in (0, 1):
            caption = report(s["side"], s["size"], variant)
            annotations.append({"id": len(annotations), "image_id": 100 + i, "caption": caption})
    return {"info": {"description": "tiny"}, "images": images, "annotations": annotations}


def write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    return make_reports(tmp_path_factory.mktemp("reports"))


def test_coco_file_prepares_through_the_command_line(reports, tmp_path):
    captions = write(tmp_path / "captions_train.json", coco_payload(reports["studies"]))
    result = run_cli(
        "data", "prepare", "--captions", str(captions), "--images", str(reports["images"]),
        "--root", str(tmp_path / "ds"), env={"CAPTIONING_HOME": str(tmp_path)}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "coco captions" in result.stdout
    data = PreparedData(tmp_path / "ds")
    n = len(reports["studies"]) - 2  # study 0's image is corrupt, study 1's missing
    assert len(data.manifest) == n
    assert data.card["caption_source"]["format"] == "coco"
    assert data.card["split_from"] == "seeded"  # no split in the file: drawn, grouped by content
    assert set(data.manifest["split"]) == {"train", "val", "test"}
    source = caption_source(data)
    assert (source.kind, source.has_labels, source.has_truth) == ("coco", False, False)
    frame = source.frame(data)
    by_path = {s["images"][0]: s for s in reports["studies"]}
    for _, row in frame.iterrows():  # several captions per image: several references, in order
        s = by_path[row["path"]]
        assert [row["reference_0"], row["reference_1"]] == [
            report(s["side"], s["size"], v) for v in (0, 1)
        ]
    assert data.card["text"]["references_per_image"] == {"2": n}


def test_coco_reader_keeps_ids_splits_and_caption_order(reports, tmp_path):
    studies = reports["studies"][:3]
    captions = write(tmp_path / "c.json", coco_payload(studies, ["train", "val", "test"]))
    records = read_coco(captions)
    assert [r.images for r in records] == [(s["images"][0],) for s in studies]
    assert [r.split for r in records] == ["train", "val", "test"]
    assert [r.study for r in records] == ["100", "101", "102"]
    assert records[0].references == [
        report(studies[0]["side"], studies[0]["size"], v) for v in (0, 1)
    ]


def test_coco_reader_reads_named_keys_from_the_image_or_its_annotations(reports, tmp_path):
    payload = coco_payload(reports["studies"][:3])
    payload["images"][0]["view"] = "PA"
    for note in payload["annotations"]:
        note["reader"] = "r1" if note["image_id"] == 100 else 2
    payload["images"][1]["view"] = "AP"
    payload["images"][2]["view"] = "AP"
    records = read_coco(write(tmp_path / "c.json", payload), ("view", "reader"))
    assert [r.columns for r in records] == [
        {"view": "PA", "reader": "r1"},
        {"view": "AP", "reader": "2"},
        {"view": "AP", "reader": "2"},
    ]
    assert all(r.columns == {} for r in read_coco(tmp_path / "c.json"))  # none asked for


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda p: p["annotations"].append({"image_id": 7, "caption": "x"}), "image id 7"),
        (lambda p: p["images"].append({"id": 9, "file_name": "b.png"}), "no annotation gives"),
        (lambda p: p["images"].append(dict(p["images"][0])), "given twice"),
        (lambda p: p["images"][0].pop("file_name"), "'file_name' must be non-empty text"),
        (lambda p: p["annotations"][0].update(caption=3), "annotations[0]: 'caption'"),
        (lambda p: p["images"][0].update(id=[1]), "'id' must be a number or text"),
    ],
)
def test_malformed_coco_files_are_refused_in_one_line(reports, tmp_path, change, problem):
    payload = coco_payload(reports["studies"][:2])
    change(payload)
    captions = write(tmp_path / "c.json", payload)
    with pytest.raises(DataError) as err:
        read_coco(captions)
    message = str(err.value)
    assert message.startswith(str(captions)) and problem in message and "\n" not in message


def test_json_is_told_apart_by_content(reports, tmp_path):
    assert detect_format(reports["r2gen"]) == "r2gen"
    assert detect_format(write(tmp_path / "a.json", coco_payload(reports["studies"][:2]))) == "coco"
    assert detect_format(reports["csv"]) == "csv" and detect_format(reports["jsonl"]) == "jsonl"


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("list.json", "[1, 2]", "matches none of the known formats"),
        ("broken.json", "{", "not JSON"),
        ("absent.json", None, "no such caption file"),
        ("notes.txt", "hello", "cannot tell the format from the name"),
    ],
)
def test_unknown_files_are_refused_in_one_line(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as err:
        detect_format(path)
    message = str(err.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message
    if "known formats" in message:
        assert all(name in message for name in FORMATS)


def test_a_new_format_is_one_registration(monkeypatch, tmp_path):
    """What a reader module does at import: after it, the format is detected and listed."""
    fmt = CaptionFormat(
        "tsv", "file", read=lambda path: [], suffixes=(".tsv",), description="tab-separated"
    )
    monkeypatch.setitem(FORMATS, "tsv", fmt)
    assert detect_format(tmp_path / "x.tsv") == "tsv"
    assert "tsv" in sorted(FORMATS)


def test_text_rules_take_the_format_defaults_unless_given():
    assert text_rules("r2gen") == TextRules(min_count=3, max_length=60)  # R2Gen's IU X-Ray
    assert text_rules("coco") == TextRules() == text_rules("csv")
    assert text_rules("r2gen", min_count=1, max_length=100) == TextRules(max_length=100)
    assert text_rules("coco", lowercase=False, punctuation="keep") == TextRules(
        lowercase=False, punctuation="keep"
    )


def test_sample_parses_once(tmp_path):
    path = write(tmp_path / "a.json", {"images": [], "annotations": []})
    sample = Sample(path)
    first = sample.json
    path.write_text("not json any more")
    assert sample.json is first


def test_the_command_line_refuses_an_unknown_json_in_one_line(reports, tmp_path):
    bad = write(tmp_path / "odd.json", {"rows": []})
    result = run_cli(
        "data", "prepare", "--captions", str(bad), "--images", str(reports["images"]),
        env={"CAPTIONING_HOME": str(tmp_path)}, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "odd.json" in errors[0] and "coco" in errors[0], result.stderr
