"""The fields ``caption --json`` (and ``--csv``) writes for scope, confidence and findings, on a
tiny untrained captioner run folder built here (no data needed): in scope, out of scope,
``--keep-out-of-scope``, a run made before scope and calibration existed, and runs whose
captions state no fields."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from captioning.captions.findings import FIELDS
from captioning.captions.parse import parse_caption
from captioning.confidence import CALIBRATION_FILE
from captioning.scope import METHODS, encoder_outputs, fit_scope
from captioning.utils.runs import write_json

from helpers import tiny_captioner_run

CLASSES = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A captioner run folder: tiny encoder and decoder, untrained; scope fitted on noise."""
    run = tmp_path_factory.mktemp("run")
    model = tiny_captioner_run(run, "attention", max_length=12)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 64, 64), dtype=np.uint8)
    evidence = encoder_outputs(model, images)
    part = lambda rows: {k: v[rows] for k, v in evidence.items()}  # noqa: E731
    fit_scope(part(slice(40)), np.arange(40) % 6, part(slice(40, None))).save(run)
    files = []
    for i in range(2):
        files.append(run / f"image{i}.png")
        Image.fromarray(images[i]).save(files[-1])
    return run, [str(f) for f in files]


def set_scope(run, threshold):
    body = json.loads((run / "scope.json").read_text())
    body["thresholds"] = {m: threshold for m in METHODS}
    write_json(run / "scope.json", body)


def caption(run, files, **options) -> tuple[int, str]:
    from captioning.commands.caption import caption_files

    out = io.StringIO()
    code = caption_files(run, files, out=out, **options)
    return code, out.getvalue()


def test_in_scope_entries_carry_score_and_calibrated_confidences(tiny_run):
    run, files = tiny_run
    set_scope(run, 1e30)
    write_json(
        run / CALIBRATION_FILE, {"temperatures": {"class": 2.0, **dict.fromkeys(FIELDS, 1.5)}}
    )
    code, text = caption(run, files, as_json=True)
    assert code == 0
    entries = [json.loads(line) for line in text.splitlines()]
    assert len(entries) == 2
    for entry in entries:
        assert entry["in_scope"] is True and isinstance(entry["ood_score"], float)
        assert {"caption", "class", "prob"} <= set(entry)
        assert set(entry["confidence"]) == {"class", *FIELDS}
        assert entry["prob"] == entry["confidence"]["class"]
        assert 1 / len(CLASSES) <= entry["prob"] <= 1
        for name in FIELDS:  # null when the (untrained) caption states no such finding
            p = entry["confidence"][name]
            assert p is None or 0 <= p <= 1
        assert_findings_read_back(entry)
        for name, value in entry["findings"].items():  # no stated value, no confidence
            assert value is not None or entry["confidence"][name] is None


def assert_findings_read_back(entry, fields=tuple(FIELDS)):
    """``findings`` names the set's fields and says what parse-back reads in the caption."""
    assert list(entry["findings"]) == list(fields)
    if fields:
        assert entry["findings"] == parse_caption(entry["caption"], "findings").fields


def test_out_of_scope_entries_have_no_caption_unless_kept(tiny_run):
    run, files = tiny_run
    set_scope(run, -1e30)
    code, text = caption(run, files, as_json=True)
    assert code == 0  # an answer, not an error
    for entry in map(json.loads, text.splitlines()):
        assert entry["in_scope"] is False and entry["ood_score"] > -1e30
        assert entry["out_of_scope_reason"].startswith("its ")  # one line: which view, class
        assert not {"caption", "class", "prob", "confidence", "findings"} & set(entry)
    code, text = caption(run, files)
    lines = text.splitlines()
    assert code == 0 and len(lines) == 2
    assert all("out of scope" in line and "no caption" in line for line in lines)
    code, text = caption(run, files, as_json=True, keep_out_of_scope=True)
    for entry in map(json.loads, text.splitlines()):
        assert entry["in_scope"] is False and "caption" in entry and "confidence" in entry
        assert_findings_read_back(entry)  # as the caption: kept, so stated


def test_a_run_from_before_scope_still_captions_and_says_so_once(tiny_run, capsys, tmp_path):
    import shutil

    run, files = tiny_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    for name in ("scope.json", "scope.npz", CALIBRATION_FILE):
        (old / name).unlink(missing_ok=True)
    code, text = caption(old, files, as_json=True)
    assert code == 0
    for entry in map(json.loads, text.splitlines()):
        assert {"caption", "class", "prob"} <= set(entry)
        assert not {"in_scope", "ood_score", "confidence"} & set(entry)
        assert_findings_read_back(entry)  # from the caption: no calibration needed
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 1 and f"captioning calibrate --run {old}" in notes[0]


def test_csv_has_a_column_per_finding_after_the_others(tiny_run, tmp_path):
    from captioning.commands.caption import CSV_COLUMNS

    run, files = tiny_run
    set_scope(run, 1e30)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    _, text = caption(run, [*files, str(broken)], as_json=True, csv_path=tmp_path / "out.csv")
    entries = [json.loads(line) for line in text.splitlines()]
    with open(tmp_path / "out.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [*CSV_COLUMNS, *(f"finding_{name}" for name in FIELDS)]
    for row, entry in zip(rows, entries, strict=True):
        for name in FIELDS:  # empty where not stated, and for the error entry
            assert row[f"finding_{name}"] == (entry.get("findings", {}).get(name) or "")
    assert "error" in entries[-1] and "findings" not in entries[-1]


@pytest.mark.parametrize("templates", ["class", None])
def test_runs_stating_no_fields_have_empty_findings(tiny_run, tmp_path, templates):
    """A class-only set and a free-text run (no template set): ``findings`` is ``{}`` on every
    captioned entry, and the CSV has no finding columns."""
    from captioning.commands.caption import CSV_COLUMNS

    run, files = tiny_run
    set_scope(run, 1e30)
    other = tmp_path / "run"
    shutil.copytree(run, other)
    meta = json.loads((other / "run.json").read_text())
    write_json(other / "run.json", {**meta, "templates": templates})
    code, text = caption(other, files, as_json=True, csv_path=tmp_path / "out.csv")
    assert code == 0
    for entry in map(json.loads, text.splitlines()):
        assert "caption" in entry and entry["findings"] == {}
    header = (tmp_path / "out.csv").read_text().splitlines()[0]
    assert header == ",".join(CSV_COLUMNS)


def test_a_grey_run_refuses_colour_files_and_says_why_but_not_tinted_grey(tiny_run, tmp_path):
    run, files = tiny_run
    set_scope(run, 1e30)  # every image in scope by the rule: only colour can refuse
    grey = np.asarray(Image.open(files[0]), np.float64)
    tinted, coloured = tmp_path / "tinted.jpg", tmp_path / "false_colour.png"
    tint = np.stack([grey * 0.9 + 12, grey, grey * 0.8 + 20], -1)
    Image.fromarray(tint.clip(0, 255).astype(np.uint8)).save(tinted, quality=80)
    hue = np.stack([grey, 255 - grey, np.abs(grey - 128) * 2], -1)
    Image.fromarray(hue.clip(0, 255).astype(np.uint8)).save(coloured)
    code, text = caption(run, [files[0], str(tinted), str(coloured)], as_json=True)
    plain, tint_entry, colour_entry = (json.loads(line) for line in text.splitlines())
    assert code == 0 and plain["in_scope"] and tint_entry["in_scope"]
    assert colour_entry["in_scope"] is False and "caption" not in colour_entry
    assert colour_entry["out_of_scope_reason"].startswith("it is a colour image (")
    assert "trained on grey images" in colour_entry["out_of_scope_reason"]
