"""Caption metrics checked against the reference implementations (issue 4, "Metric fixtures").

pycocoevalcap (coco-caption's Bleu, Cider and Rouge scorers; all pure Python), sacrebleu (no
tokenisation, no smoothing) and nltk's ``corpus_bleu`` score hand-made fixtures; ours must agree
to 1e-9 (sacrebleu: 1e-6 on the 0..100 scale, see ``test_bleu4_equals_sacrebleu``).
"""

from __future__ import annotations

import random

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from captioning.captions import FIELDS, load_template_set, render, tokenize
from captioning.metrics import bleu as bleu_module
from captioning.metrics import (
    bleu4_nltk,
    bleu_stats,
    cider_d_scores,
    corpus_bleu,
    corpus_cider_d,
    corpus_rouge_l,
    lcs_length,
    rouge_l_scores,
    score_captions,
)

TOL = 1e-9


def _t(text: str) -> list[str]:
    return text.split()


def _template_fixture(n: int = 40, seed: int = 0):
    """Project captions: references from the findings templates, hypotheses slightly wrong."""
    tset = load_template_set("findings")
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(n):
        cls = rng.choice(sorted(tset.classes))
        fields = {f: rng.choice(FIELDS[f]) for f in tset.fields}
        refs.append([tokenize(render(cls, fields, tset, j)) for j in range(tset.n_references)])
        wrong = {f: (v if rng.random() < 0.7 else rng.choice(FIELDS[f])) for f, v in fields.items()}
        hyps.append(tokenize(render(cls, wrong, tset, rng.randrange(tset.n_references + 2))))
    return hyps, refs


FIXTURES = {
    "ordinary": (
        [_t("chest x-ray of a large lung field"), _t("axial head ct centred")],
        [
            [_t("chest x-ray showing a large lung field"), _t("a frontal chest radiograph")],
            [_t("head ct centred"), _t("axial ct of the head centred in the frame"), _t("ct")],
        ],
    ),
    "short_hypotheses": (
        [_t("chest"), _t("head ct"), _t("hand x-ray image"), _t("abdomen ct of the abdomen")],
        [
            [_t("chest x-ray"), _t("frontal chest radiograph of the lungs")],
            [_t("head ct"), _t("ct of the head")],
            [_t("x-ray of a hand"), _t("hand radiograph")],
            [_t("ct of the abdomen"), _t("abdominal ct slice of the abdomen centred")],
        ],
    ),
    "empty_hypothesis": (
        [[], _t("breast mri of dense tissue"), _t("cxr")],
        [
            [_t("a chest x-ray"), _t("chest radiograph")],
            [_t("breast mri with dense tissue"), _t("mri of the breast")],
            [_t("cxr"), _t("chest x-ray centred")],
        ],
    ),
    "repeated_words": (
        [_t("the the the the the"), _t("ct ct ct scan scan of of the head head")],
        [
            [_t("the head ct"), _t("the the scan")],
            [_t("ct scan of the head"), _t("a ct of the head and the neck")],
        ],
    ),
    "closest_length_ties": (  # hypothesis of 5: references of 4 and 6 are equally close
        [_t("a b c d e"), _t("x y z w v u t")],
        [
            [_t("a b c d e f"), _t("a b c d"), _t("a b")],
            [_t("x y z w v u t s r"), _t("x y z w v")],
        ],
    ),
    "no_four_gram_match": (
        [_t("hand x-ray left"), _t("chest ct right side")],
        [[_t("hand x-ray of the left side")], [_t("ct of the chest on the right side")]],
    ),
    "single_image": (
        [_t("sagittal mri of the head with large extent")],
        [[_t("mri of the head large extent"), _t("sagittal head mri showing a large extent")]],
    ),
    "templates": _template_fixture(),
}


def _coco_inputs(hyps, refs):
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    return gts, res


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_bleu_equals_pycocoevalcap(name):
    hyps, refs = FIXTURES[name]
    expected, _ = Bleu(4).compute_score(*_coco_inputs(hyps, refs), verbose=0)
    got = corpus_bleu(hyps, refs)
    assert len(got) == 4
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= TOL


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_cider_d_equals_pycocoevalcap(name):
    hyps, refs = FIXTURES[name]
    expected, per_image = Cider().compute_score(*_coco_inputs(hyps, refs))
    assert abs(corpus_cider_d(hyps, refs) - expected) <= TOL
    ours = cider_d_scores(hyps, refs)
    assert max(abs(a - b) for a, b in zip(ours, per_image, strict=True)) <= TOL


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_rouge_l_equals_pycocoevalcap(name):
    hyps, refs = FIXTURES[name]
    expected, per_image = Rouge().compute_score(*_coco_inputs(hyps, refs))
    assert abs(corpus_rouge_l(hyps, refs) - expected) <= TOL
    ours = rouge_l_scores(hyps, refs)
    assert max(abs(a - b) for a, b in zip(ours, per_image, strict=True)) <= TOL


def _sacrebleu(hyps, refs) -> float:
    streams = max(len(r) for r in refs)
    ref_streams = [[" ".join(r[j]) if j < len(r) else None for r in refs] for j in range(streams)]
    result = sacrebleu.corpus_bleu(
        [" ".join(h) for h in hyps],
        ref_streams,
        tokenize="none",
        smooth_method="none",
        force=True,
    )
    return result.score


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_bleu4_equals_sacrebleu(name):
    """sacrebleu also uses the closest reference length (ties: shorter) and counts 0 k-grams for
    hypotheses shorter than k, so it equals coco's BLEU-4 x 100 whenever every order 1..4 has at
    least one clipped match; the only difference left is coco's tiny/small constants (relative
    ~1e-9). With an order without matches sacrebleu gives 0 and coco a small positive number."""
    hyps, refs = FIXTURES[name]
    stats = bleu_stats(hyps, refs)
    ours = 100 * corpus_bleu(hyps, refs)[3]
    theirs = _sacrebleu(hyps, refs)
    if all(c > 0 for c in stats["correct"]):
        assert abs(ours - theirs) <= 1e-6
    else:
        assert theirs == 0.0
        assert 0.0 < ours < 1.0


@pytest.mark.filterwarnings("ignore:\\nThe hypothesis contains 0 counts:UserWarning")
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_bleu4_nltk_is_nltk(name):
    hyps, refs = FIXTURES[name]
    assert bleu4_nltk(hyps, refs) == pytest.approx(float(nltk_corpus_bleu(refs, hyps)), abs=TOL)


def test_nltk_and_coco_agree_without_short_hypotheses():
    """With every hypothesis >= 4 tokens and every order matched, the two definitions agree."""
    hyps, refs = FIXTURES["templates"]
    assert min(len(h) for h in hyps) >= 4
    assert bleu4_nltk(hyps, refs) == pytest.approx(corpus_bleu(hyps, refs)[3], abs=1e-9)


def test_worked_example_of_docs():
    """docs/metrics.md: a 2-token hypothesis lowers nltk's 3- and 4-gram precisions only."""
    hyps = [_t("chest x-ray"), _t("head ct of the brain")]
    refs = [[_t("chest x-ray")], [_t("head ct of the brain")]]
    assert corpus_bleu(hyps, refs)[3] == pytest.approx(1.0, abs=1e-9)
    assert bleu4_nltk(hyps, refs) == pytest.approx((1 * 1 * 3 / 4 * 2 / 3) ** 0.25, abs=1e-12)
    assert 100 * corpus_bleu(hyps, refs)[3] == pytest.approx(_sacrebleu(hyps, refs), abs=1e-6)


def test_large_vocabulary_path(monkeypatch):
    """Keys are re-numbered before int64 could overflow; forcing it must not change scores."""
    hyps, refs = FIXTURES["templates"]
    expected = corpus_bleu(hyps, refs)
    monkeypatch.setattr(bleu_module, "_KEY_LIMIT", 1000)
    assert corpus_bleu(hyps, refs) == expected


def test_score_captions_tokenises_texts():
    hyps = ["Head CT, centred.", "chest X-ray"]
    refs = [["head ct centred", "Axial head CT."], ["Chest x-ray of the lungs", "chest x-ray"]]
    scores = score_captions(hyps, refs)
    assert set(scores) >= {"bleu1", "bleu2", "bleu3", "bleu4", "bleu4_nltk", "cider", "rouge_l"}
    hyp_tokens = [tokenize(h) for h in hyps]
    ref_tokens = [[tokenize(r) for r in rs] for rs in refs]
    assert scores["bleu4"] == corpus_bleu(hyp_tokens, ref_tokens)[3]
    assert scores["cider"] == corpus_cider_d(hyp_tokens, ref_tokens)
    assert scores["rouge_l"] == corpus_rouge_l(hyp_tokens, ref_tokens)
    assert all(isinstance(v, float) for v in scores.values())


@pytest.mark.parametrize(
    ("hyps", "refs", "message"),
    [
        ([["a"]], [], "reference sets"),
        ([], [], "no hypotheses"),
        ([["a"]], [[]], "no references"),
        (["a b"], [[["a", "b"]]], "token lists"),
    ],
)
def test_bad_corpus_is_refused(hyps, refs, message):
    with pytest.raises(ValueError, match=message):
        corpus_bleu(hyps, refs)


# Properties, on random corpora over a small vocabulary (so that n-grams repeat and match).
_WORD = st.sampled_from(["a", "b", "c", "d", "ct", "mri"])
_SENT = st.lists(_WORD, min_size=0, max_size=8)
_IMAGE = st.tuples(_SENT, st.lists(st.lists(_WORD, min_size=1, max_size=8), min_size=1, max_size=4))
_CORPUS = st.lists(_IMAGE, min_size=1, max_size=6)


@settings(max_examples=30, deadline=None)
@given(_CORPUS)
def test_random_corpora_equal_pycocoevalcap(corpus):
    hyps, refs = [h for h, _ in corpus], [r for _, r in corpus]
    gts, res = _coco_inputs(hyps, refs)
    expected, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert max(abs(a - b) for a, b in zip(corpus_bleu(hyps, refs), expected, strict=True)) <= TOL
    assert abs(corpus_cider_d(hyps, refs) - Cider().compute_score(gts, res)[0]) <= TOL
    assert abs(corpus_rouge_l(hyps, refs) - Rouge().compute_score(gts, res)[0]) <= TOL


@settings(max_examples=30, deadline=None)
@given(_CORPUS, st.randoms(use_true_random=False))
def test_scores_in_range_and_order_free(corpus, rnd):
    hyps, refs = [h for h, _ in corpus], [r for _, r in corpus]
    bleus = corpus_bleu(hyps, refs)
    assert all(0.0 <= b <= 1.0 for b in bleus)
    assert 0.0 <= corpus_rouge_l(hyps, refs) <= 1.0
    assert corpus_cider_d(hyps, refs) >= 0.0
    order = list(range(len(corpus)))
    rnd.shuffle(order)
    shuffled = [hyps[i] for i in order], [[list(r) for r in refs[i]] for i in order]
    for rs in shuffled[1]:
        rnd.shuffle(rs)  # the order of an image's references does not matter either
    assert corpus_bleu(*shuffled) == bleus  # integer totals: exactly equal
    assert corpus_cider_d(*shuffled) == pytest.approx(corpus_cider_d(hyps, refs), abs=1e-12)
    assert corpus_rouge_l(*shuffled) == pytest.approx(corpus_rouge_l(hyps, refs), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.lists(_WORD, min_size=4, max_size=8), min_size=1, max_size=3),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_a_reference_scores_one_against_its_set(refs, data):
    """A hypothesis equal to one of its references (>= 4 tokens): BLEU-1..4 = 1, ROUGE-L = 1."""
    hyps = [data.draw(st.sampled_from(rs)) for rs in refs]
    assert corpus_bleu(hyps, refs) == pytest.approx([1.0] * 4, abs=1e-9)
    assert corpus_rouge_l(hyps, refs) == pytest.approx(1.0)
    assert bleu4_nltk(hyps, refs) == pytest.approx(1.0)


def _lcs_table(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


@settings(max_examples=100, deadline=None)
@given(_SENT, _SENT)
def test_bit_parallel_lcs_equals_table(a, b):
    assert lcs_length(a, b) == _lcs_table(a, b) == lcs_length(b, a)
