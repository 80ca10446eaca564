"""The captioner report builder without a trained model: a stand-in captioner and its result on
a tiny set, scored by the template truth scorer, by no truth scorer, and by a scorer plugged in
by the test (the plug a label-column scorer would use)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from captioning.captions.templates import load_template_set, render
from captioning.captions.tokenize import tokenize
from captioning.evaluation.artifacts import write_artifacts
from captioning.evaluation.captioner import build_report, measure
from captioning.evaluation.inputs import EvalSet
from captioning.evaluation.truth import (
    NoTruth,
    TemplateTruth,
    TruthScorer,
    balanced_findings,
    mean_of,
    truth_scorers,
)
from captioning.metrics.meteor import shared_jar

CLASSES = ["Hand", "HeadCT"]


@pytest.fixture(scope="module", autouse=True)
def one_meteor_jar():
    """Every report here scores METEOR (build_report asks for it): one jar for the module,
    not one start (seconds, a 2 GB heap) per test."""
    with shared_jar():
        yield


FIELDS = {"quality": "diagnostic", "extent": "small", "density": "low", "brightness": "dark"}


def stand_in(texts: list[str], class_ids: list[int], templates: str | None = "findings"):
    """A captioner whose ``caption`` returns ``texts`` and the head's ``class_ids``."""
    result = SimpleNamespace(
        texts=texts,
        words=[tokenize(t) for t in texts],
        class_ids=np.array(class_ids),
        probs=np.full(len(texts), 0.9),
        confidence={"class": np.full(len(texts), 0.9)},
        in_scope=None,
        ood_score=None,
    )
    return SimpleNamespace(
        classes=CLASSES,
        templates=templates,
        calibration=None,
        scope=None,
        run={"decoder": "attention"},
        search=SimpleNamespace(length_alpha=0.0, phrasing="best", max_length=40),
        run_dir=Path("run"),
        has_attention=False,
        beam_width=1,
        resolve_beam=lambda beam: 1 if beam is None else beam,
        caption=lambda images, beam: result,
    )


def template_set(n_per_class: int = 2) -> EvalSet:
    """Diagnostic images of both classes, their five template references and truth."""
    tset = load_template_set("findings")
    rows = []
    for c in CLASSES:
        for i in range(n_per_class):
            refs = {f"reference_{k}": render(c, FIELDS, tset, k) for k in range(5)}
            rows.append({"path": f"{c}/{i}.jpeg", "class": c, **FIELDS, **refs})
    frame = pd.DataFrame(rows)
    labels = np.array([CLASSES.index(c) for c in frame["class"]])
    references = [list(r) for r in frame.filter(like="reference_").itertuples(index=False)]
    evaluated = {"data": "tiny", "split": "test", "skipped": []}
    images = np.zeros((len(frame), 8, 8), np.uint8)
    return EvalSet(images, labels, frame, references, evaluated, "test")


def test_template_truth_reads_class_and_findings_back():
    evalset = template_set()
    texts = list(evalset.frame["reference_0"])
    texts[0] = texts[2]  # a Hand image captioned as HeadCT
    captioner = stand_in(texts, [0, 0, 1, 1])
    scorers = truth_scorers(captioner, evalset)
    assert [type(s) for s in scorers] == [TemplateTruth]
    report = build_report(captioner, evalset, measure(captioner, evalset, scorers, None))
    assert report["caption_class_accuracy"] == 0.75 and report["accuracy"] == 1.0
    assert report["findings_accuracy"]["all"] == 0.75
    assert report["findings_balanced_accuracy"]["extent"] == 1.0  # one true value, all right
    assert report["per_class"]["Hand"]["caption_class_accuracy"] == 0.5
    assert list(report["per_class"]["Hand"]) == [
        "n",
        "caption_class_accuracy",
        "accuracy",
        "out_of_scope",
        "findings_accuracy",
        "bleu4",
    ]
    assert report["template_share"]["0"] == 1.0
    assert report["captions"][0]["pred_class"] == "Hand" and "not_applicable" not in report
    assert report["bleu4"] is not None and report["n"] == 4


def test_balanced_findings_weigh_each_true_value_alike():
    # position: 6 centred (all right), 2 left (1 right); the last image is not scored
    truth = pd.DataFrame({"position": ["centred"] * 6 + ["left", "left", "left"]})
    right = np.array([True] * 6 + [True, False, True])
    scored = np.array([True] * 8 + [False])
    scores = {"position": (right, scored), "all": right, "extent": (right, scored)}
    balanced = balanced_findings(scores, truth)
    assert balanced == {"position": 0.75}  # (6/6 + 1/2) / 2; plain accuracy: 7/8
    assert mean_of(right, scored) == 0.875


def test_a_free_text_set_gets_null_truth_named_not_applicable():
    evalset = template_set()
    evalset.source, evalset.labelled = "file", False
    captioner = stand_in(list(evalset.frame["reference_1"]), [0, 0, 1, 1], templates=None)
    scorers = truth_scorers(captioner, evalset)
    assert [type(s) for s in scorers] == [NoTruth]
    report = build_report(captioner, evalset, measure(captioner, evalset, scorers, None))
    assert report["caption_source"] == "file"
    assert report["caption_class_accuracy"] is None and report["template_share"] is None
    assert report["accuracy"] is None and report["per_class"] is None
    assert set(report["not_applicable"]) == {
        "caption_class_accuracy",
        "findings_accuracy",
        "findings_balanced_accuracy",
        "template_share",
        "accuracy",
        "per_class",
        "ece",
        "out_of_scope",
    }
    assert report["captions"][0] == {
        "path": "Hand/0.jpeg",
        "generated": " ".join(tokenize(evalset.frame["reference_1"][0])),
        "references": list(evalset.frame.filter(like="reference_").iloc[0]),
    }
    assert "phrasing" not in report["decoding"] and "scope" not in report


LEXICON = {"hand": "Hand", "head": "HeadCT"}


class HandScorer(TruthScorer):
    """A label-column scorer in miniature: is the class the caption names (a lexicon of one
    word per class) the image's ``class`` column?"""

    def score(self, generated, words, evalset):
        named = [next((LEXICON[w] for w in ws if w in LEXICON), None) for ws in words]
        return np.array(named, object) == evalset.frame["class"].to_numpy()

    def summary(self, scores):
        return {"lexicon_class_accuracy": mean_of(scores)}

    def per_class(self, scores, mask):
        return {"lexicon_class_accuracy": mean_of(scores, mask)}


def test_a_plugged_in_scorer_adds_its_keys(tmp_path):
    evalset = template_set()
    evalset.source = "file"  # labelled free text: the head's class is known
    texts = ["a hand", "a head", "a head", "the head"]
    captioner = stand_in(texts, [0, 0, 1, 1], templates=None)
    scorers = [NoTruth(), HandScorer()]
    measured = measure(captioner, evalset, scorers, None)
    report = build_report(captioner, evalset, measured)
    assert report["lexicon_class_accuracy"] == 0.75
    assert report["per_class"]["Hand"] == {"n": 2, "accuracy": 1.0, "lexicon_class_accuracy": 0.5}
    keys = list(report)
    assert keys.index("template_share") < keys.index("lexicon_class_accuracy") < keys.index("ece")
    write_artifacts(captioner, evalset, report, measured.curves, tmp_path)
    assert "| `Hand/0.jpeg` | a hand |" in (tmp_path / "captions_test.md").read_text()


def test_evaluate_run_is_the_package_entry_and_the_old_import_still_works():
    from captioning.commands.evaluate import evaluate_run as old
    from captioning.evaluation import evaluate_run

    assert old is evaluate_run


@pytest.mark.parametrize("mask", [None, np.array([True, False, True])])
def test_mean_of(mask):
    assert mean_of([True, True, False], mask) == (
        pytest.approx(2 / 3, abs=1e-6) if mask is None else 0.5
    )
    assert mean_of([], None) is None


def test_the_sample_table_ends_with_the_baselines():
    """The model's scores and each scored baseline's; a baseline not computed in one line."""
    from captioning.evaluation.artifacts import baseline_lines

    scores = {"bleu4": 0.25, "meteor": None, "rouge_l": 0.5, "cider": 1.0}
    report = {
        **scores,
        "baselines": {
            "constant": {**scores, "bleu4": 0.125, "caption": "a hand"},
            "classify_then_template": {"not_computed": "the run's data has no label columns"},
            "model_below": [],
        },
    }
    lines = baseline_lines(report)
    assert "| model | 0.250 | – | 0.500 | 1.000 |" in lines
    assert "| baseline `constant` | 0.125 | – | 0.500 | 1.000 |" in lines
    assert lines[-1] == (
        "- baseline `classify_then_template` not computed: the run's data has no label columns"
    )
    assert baseline_lines({"baselines": {"not_computed": "no dataset"}}) == []
