"""METEOR (``captioning.metrics.meteor``) against pycocoevalcap's own ``Meteor`` scorer, and
its refusal to give a number where it cannot run the jar."""

from __future__ import annotations

import sys

import pytest

from captioning.captions import tokenize
from captioning.metrics import meteor
from captioning.metrics.meteor import corpus_meteor, shared_jar

# report-like captions, 2-5 references each; one hypothesis empty, one exact, one reworded
REFERENCES = [
    [
        "The heart is normal in size. The lungs are clear.",
        "Normal heart size; clear lungs.",
        "No acute cardiopulmonary abnormality.",
    ],
    [
        "There is a small left pleural effusion.",
        "Small left-sided pleural effusion, no pneumothorax.",
    ],
    [
        "Axial head CT, centred, with high-signal tissue.",
        "A head CT slice showing bright tissue.",
        "Head computed tomography, centred slice.",
        "Brain CT with a large bright region.",
        "An axial CT of the head.",
    ],
    ["Hand radiograph with no fracture.", "Radiograph of the hand: no fracture seen."],
    ["Mild cardiomegaly.", "The cardiac silhouette is mildly enlarged.", "Enlarged heart."],
]
HYPOTHESES = [
    "the lungs are clear and the heart is normal",
    "small left pleural effusion",
    "axial head ct centred with high-signal tissue",
    "",
    "the heart is enlarged",
]


@pytest.mark.needs_java
def test_meteor_equals_pycocoevalcap():
    from pycocoevalcap.meteor.meteor import Meteor

    hyp_tokens = [tokenize(h) for h in HYPOTHESES]
    ref_tokens = [[tokenize(r) for r in refs] for refs in REFERENCES]
    with shared_jar():  # every corpus of the block is scored by one jar, started once
        ours, reason = corpus_meteor(hyp_tokens, ref_tokens)
        jar = meteor._SHARED[-1]["jar"]
        again, _ = corpus_meteor(hyp_tokens, ref_tokens)
        assert meteor._SHARED[-1]["jar"] is jar
        gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(ref_tokens)}
        res = {i: [" ".join(h)] for i, h in enumerate(hyp_tokens)}
        _, ours_per_image = jar.score(list(res[i][0] for i in res), list(gts.values()))
    assert jar._process.poll() is not None  # stopped at the end of the block
    assert reason is None and ours is not None
    # pycocoevalcap scores the same texts: one hypothesis and the references per image id
    theirs, per_image = Meteor().compute_score(gts, res)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert 0.0 < ours < 1.0
    assert per_image[3] == 0.0  # the empty hypothesis
    assert ours_per_image == pytest.approx(per_image, abs=1e-12)
    assert again == pytest.approx(theirs, abs=1e-12)


def test_no_java_is_a_reason_not_a_number(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java on PATH
    score, reason = corpus_meteor([["a"]], [[["a"]]])
    assert score is None
    assert "no Java runtime" in reason


def test_no_pycocoevalcap_is_a_reason_not_a_number(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m.startswith("pycocoevalcap")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])  # nothing importable from here
    score, reason = corpus_meteor([["a"]], [[["a"]]])
    assert score is None
    assert "pycocoevalcap is not installed" in reason


def test_score_captions_reports_meteor_or_why_not(monkeypatch, tmp_path):
    from captioning.metrics import score_captions

    monkeypatch.setenv("PATH", str(tmp_path))
    scores = score_captions(HYPOTHESES, REFERENCES, meteor=True)
    assert scores["meteor"] is None and "no Java runtime" in scores["meteor_missing"]
    assert "meteor" not in score_captions(HYPOTHESES, REFERENCES)  # only when asked
