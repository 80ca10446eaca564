"""What free-text captions state of their label columns (modality, plane, body system), read
with a lexicon: the reading rule on hand-written captions, a user's lexicon, malformed ones,
the ceiling on real MedPix references and ``evaluate`` on a tiny run over a MedPix slice."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from captioning.captions.lexicon import load_lexicon, words_of
from captioning.captions.tokenize import tokenize
from captioning.errors import DataError
from captioning.evaluation.inputs import EvalSet
from captioning.evaluation.truth import LabelContentTruth, content_scorer
from captioning.metrics.registry import metric

from helpers import cli_here

COLUMNS = ("modality", "plane", "location")
TINY = ["--set", "decoder.hidden=8", "--set", "decoder.embed_dim=8"]
TINY += ["--set", "decoder.attention_dim=8"]
# the decoding search (test_captioner_cli.py) and stage 2 are not what is read here
TINY += ["--set", "decoder.tune_search=false", "--set", "finetune.epochs=0"]


def read(column: str, text: str) -> set[str]:
    return set(load_lexicon().columns[column].read(tokenize(text)))


def label_set(labels: dict, references: list[list[str]]) -> EvalSet:
    """A free-text set of ``len(references)`` images with label columns ``labels``."""
    n = len(references)
    frame = pd.DataFrame({f"label_{k}": v for k, v in labels.items()})
    frame["path"] = [f"{i}.png" for i in range(n)]
    return EvalSet(
        np.zeros((n, 4, 4), np.uint8), np.zeros(n, np.int32), frame, references,
        {"data": "hand"}, "val", source="file", labelled=False, label_columns=tuple(labels),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("column", "text", "expected"),
    [
        ("modality", "Axial non-contrast CT of the head.", {"CT"}),
        ("modality", "Computed tomography shows a mass.", {"CT"}),
        ("modality", "T2-weighted image with FLAIR hyperintensity.", {"MR"}),
        ("modality", "The actual lesion is small.", set()),  # ct is not inside actual
        ("modality", "CT and MRI of the spine.", {"CT", "MR"}),  # ambiguous
        ("modality", "An MRI; the mri shows an ADC drop.", {"MR"}),
        ("plane", "Superior sagittal sinus thrombosis.", set()),  # an ignored phrase
        ("plane", "Sagittal T1 and axial T2.", {"Sagittal", "Axial"}),
        ("plane", "Volume-rendered 3-D image.", {"3D Reconstruction"}),
        ("location", "Stones in the gall bladder.", {"Gastrointestinal"}),  # not the bladder
        ("location", "Thickened urinary bladder wall.", {"Genitourinary"}),
        ("location", "Lesion of the left lateral ventricle.", {"Brain and Neuro"}),
        ("location", "Dilated left ventricle.", {"Cardiovascular"}),
    ],
)
def test_the_reading_rule_on_hand_written_captions(column, text, expected):
    assert read(column, text) == expected


def test_words_are_cut_at_hyphens_and_lower_cased():
    assert words_of(["T2-weighted", "<unk>", "x-ray"]) == ("t2", "weighted", "unk", "x", "ray")
    assert words_of("Non-contrast CT.") == ("non", "contrast", "ct")


def test_truth_labels_map_to_values_and_unknown_ones_are_not_scored():
    lexicon = load_lexicon()
    assert lexicon.columns["plane"].truth("Transverse") == "Axial"
    assert lexicon.columns["plane"].truth("Axial") == "Axial"
    assert lexicon.columns["plane"].truth("Multiple or Montage") is None
    assert lexicon.columns["location"].truth("") is None


def test_stated_right_ambiguous_and_ceiling_on_a_hand_made_set():
    labels = {"modality": ["CT", "MR", "MR", "CT"], "plane": ["Axial", "Coronal", "Lateral", ""]}
    references = [["axial ct"], ["coronal t1 image"], ["mri", "lateral view mri"], ["a ct"]]
    evalset = label_set(labels, references)
    generated = [["ct", "axial"], ["ct", "and", "mri", "coronal"], ["no", "modality"], ["mr"]]
    scorer = LabelContentTruth(load_lexicon(), evalset.label_columns)
    summary = scorer.summary(scorer.score(None, generated, evalset))
    modality = summary["content"]["modality"]
    assert modality["n"] == 4 and modality["n_stated"] == 3 and modality["stated"] == 0.75
    assert modality["right_when_stated"] == pytest.approx(1 / 3, abs=1e-6)  # ambiguous: wrong
    assert modality["ambiguous"] == pytest.approx(1 / 3, abs=1e-6)
    assert modality["ceiling"] == {"n": 5, "stated": 1.0, "right_when_stated": 1.0, "ambiguous": 0}
    plane = summary["content"]["plane"]
    assert plane["n"] == 2 and plane["unscored"] == 2  # Lateral and no label: not scored
    assert plane["stated"] == 1.0 and plane["right_when_stated"] == 1.0
    assert summary["content_lexicon"]["name"] == "medpix"
    for key in ("stated", "right_when_stated", "ambiguous"):
        assert metric(f"content.modality.{key}").kind == "truth"  # the registry names them
    assert metric("content.plane.stated").label == "plane stated"


def test_nothing_stated_gives_zeros_not_nulls():
    evalset = label_set({"modality": ["CT", "MR"]}, [["ct"], ["mri"]])
    scorer = LabelContentTruth(load_lexicon(), evalset.label_columns)
    entry = scorer.summary(scorer.score(None, [["a"], ["b"]], evalset))["content"]["modality"]
    assert entry["stated"] == 0.0 and entry["right_when_stated"] == 0.0 and entry["n_stated"] == 0


def test_a_user_lexicon_replaces_the_shipped_one(tmp_path):
    path = tmp_path / "mine.json"
    lexicon = {"name": "mine", "columns": {"modality": {"values": {"CT": ["scan"], "MR": ["mr"]}}}}
    path.write_text(json.dumps(lexicon))
    evalset = label_set({"modality": ["CT", "MR"], "view": ["a", "b"]}, [["ct"], ["mr"]])
    scorer = content_scorer(evalset, str(path))
    summary = scorer.summary(scorer.score(None, [["scan"], ["ct"]], evalset))
    assert summary["content"]["modality"]["stated"] == 0.5  # "ct" is not a word of this one
    assert summary["content"]["modality"]["ceiling"]["stated"] == 0.5
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["content_lexicon"] == {"name": "mine", "file": str(path), "sha256": digest}
    assert set(scorer.not_applicable()) == {"content.view"}


def test_content_applies_only_with_label_columns():
    evalset = label_set({}, [["ct"]])
    assert content_scorer(evalset) is None
    with pytest.raises(DataError, match="--lexicon needs label columns"):
        content_scorer(evalset, "medpix")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not a valid JSON lexicon"),
        ('{"columns": []}', "an object with a 'columns' object"),
        ('{"columns": {}}', "no columns"),
        ('{"columns": {"m": {"values": {}}}}', "non-empty 'values'"),
        ('{"columns": {"m": {"values": {"CT": []}}}}', "non-empty list"),
        ('{"columns": {"m": {"values": {"CT": ["--"]}}}}', "is not a word or phrase"),
        ('{"columns": {"m": {"values": {"CT": ["ct"], "MR": ["CT"]}}}}', "listed under"),
        ('{"columns": {"m": {"values": {"CT": ["ct"]}, "labels": {"x": "MR"}}}}', "'labels'"),
        ('{"columns": {"m": {"values": {"CT": ["ct"]}, "words": []}}}', "unknown keys"),
    ],
)
def test_a_malformed_lexicon_is_refused_in_one_line(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as err:
        load_lexicon(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_lexicon_name_lists_the_shipped_ones():
    with pytest.raises(DataError, match=r"nope: no such lexicon file.*shipped: medpix"):
        load_lexicon("nope")


def test_evaluate_takes_a_lexicon_option():
    import argparse

    from captioning.commands import evaluate

    commands = argparse.ArgumentParser().add_subparsers()
    evaluate.add_parser(commands)
    args = commands.choices["evaluate"].parse_args(["--run", "r", "--lexicon", "my.json"])
    assert args.lexicon == "my.json"


def test_the_report_table_and_a_card_without_its_manifest_columns(tmp_path):
    from types import SimpleNamespace

    from captioning.evaluation.inputs import label_columns
    from captioning.evaluation.report import content_lines

    entry = {"n": 9, "stated": 0.5, "right_when_stated": 0.25, "ceiling": {"stated": 1.0}}
    entry["ceiling"]["right_when_stated"] = 0.75
    lines = content_lines({"content": {"plane": entry}, "content_lexicon": {"name": "medpix"}})
    assert "| plane | 9 | 50.00% | 25.00% | 100.00% | 75.00% |" in lines
    assert content_lines({"n": 3}) == []
    card = {"caption_source": {"label_columns": ["plane"]}}
    dataset = SimpleNamespace(root=tmp_path, card=card, manifest=pd.DataFrame({"path": ["a"]}))
    with pytest.raises(DataError, match=r"manifest.csv: no column label_plane"):
        label_columns(dataset)


def test_the_ceiling_on_medpix_references(medpix_slice):
    """Generated captions equal to the references read exactly as the ceiling does (every
    image of the slice, both splits)."""
    table = pd.read_csv(medpix_slice / "captions.csv", keep_default_na=False, dtype=str)
    evalset = label_set({c: table[c] for c in COLUMNS}, [[c] for c in table.caption])
    scorer = content_scorer(evalset)
    content = scorer.summary(scorer.score(None, [tokenize(c) for c in table.caption], evalset))
    for name in COLUMNS:
        entry = content["content"][name]
        print(name, {k: entry[k] for k in ("n", "stated", "right_when_stated", "ambiguous")})
        ceiling = {k: v for k, v in entry["ceiling"].items() if k != "n"}
        assert ceiling == {k: entry[k] for k in ("stated", "right_when_stated", "ambiguous")}
    assert content["content"]["modality"]["right_when_stated"] > 0.9  # the words of CT, MR


@pytest.mark.slow  # a smoke training and two evaluations (in this process)
def test_evaluate_reports_content_on_a_tiny_medpix_run(medpix_labelled, tmp_path):
    def cli(*args):
        done = cli_here(*args, cwd=tmp_path, env={"CAPTIONING_HOME": str(tmp_path)})
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    data, _ = medpix_labelled  # prepared with the label columns
    cli("train", "captioner", "--data", data, "--smoke", "--run-dir", "cap", *TINY)
    cli("evaluate", "--run", "cap", "--split", "val", "--out", "val.json")
    report = json.loads((tmp_path / "val.json").read_text())
    assert set(report["content"]) == set(COLUMNS)
    for entry in report["content"].values():
        assert entry["n"] > 0 and isinstance(entry["stated"], float)
        assert isinstance(entry["right_when_stated"], float)
        assert entry["ceiling"]["stated"] > 0
    assert report["content_lexicon"]["name"] == "medpix"
    # each baseline: the model minus the baseline, paired bootstrap over the evaluated images
    for name in ("constant", "retrieval_features", "retrieval_pixels"):
        block = report["baselines"][name]["paired_bootstrap"]
        assert block["resamples"] == 1000 and block["seed"] == 0
        assert set(block) >= {"bleu4", "cider", "rouge_l"} and "meteor" in block["not_compared"]
        for key in ("bleu4", "cider", "rouge_l"):
            entry = block[key]
            assert entry["low"] <= entry["high"] and 0 <= entry["captioner_wins"] <= 1
            point = report[key] - report["baselines"][name][key]  # the reported scores
            assert entry["difference"] == pytest.approx(point, abs=2e-6), (name, key)
    assert "per_image" not in report["baselines"]  # each image's entry has its captions
    for entry in report["captions"]:
        assert set(entry["baselines"]) == {"retrieval_features", "retrieval_pixels"}
    skipped = report["baselines"]["classify_then_template"]  # the MedNIST encoder: one label
    assert set(skipped) == {"not_computed"} and "label columns" in skipped["not_computed"]
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"columns": {"modality": {"values": {"CT": ["ct"]}}}}))
    cli("evaluate", "--run", "cap", "--split", "val", "--out", "mine.json", "--lexicon", str(mine))
    report = json.loads((tmp_path / "mine.json").read_text())
    assert set(report["content"]) == {"modality"} and report["content_lexicon"]["name"] == "mine"
    assert {"content.plane", "content.location"} <= set(report["not_applicable"])
