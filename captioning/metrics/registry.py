"""The one list of metrics: each metric's report key, how it is computed, its label and format,
its direction and its kind. Everything that prints or keeps a metric (``captioning evaluate``,
the quickstart report, the experiments tables and record, the model card) reads it from here,
so a metric is added in one place (see docs/metrics.md, "Add a metric").

Kinds:

- ``corpus``: one number for the whole corpus, from the token lists (BLEU, CIDEr-D, ...);
- ``per_image``: one number per image, reported as the mean over the images (and per class);
- ``truth``: needs the truth of each image (the class, the findings): computed by the truth
  scorer of the evaluation (``captioning.evaluation.truth``), not from the references;
- ``generated``: one number for the corpus of generated captions alone, no references
  (diversity: ``captioning.metrics.diversity``).

A corpus or per-image metric names its ``scorer``: a function of ``(hyp_tokens, ref_tokens)``
returning ``{name: value}`` for one or more metrics (BLEU-1..4 come from one pass); the first
metric that names a scorer runs it, the others take their value from that run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from captioning.metrics.bleu import bleu4_nltk, corpus_bleu
from captioning.metrics.cider import corpus_cider_d
from captioning.metrics.meteor import corpus_meteor
from captioning.metrics.rouge import corpus_rouge_l

DASH = "–"
KINDS = ("corpus", "per_image", "truth", "generated")


@dataclass(frozen=True)
class Metric:
    """One metric. ``name`` is the report key and says whose definition it follows
    (``bleu4``: coco-caption's, ``bleu4_nltk``: nltk's); ``label`` heads a table column;
    ``title`` is the longer label of a card or a report line; ``how`` is the definition in a
    few words; ``digits`` and ``percent`` give its format."""

    name: str
    label: str
    how: str
    kind: str
    digits: int = 3
    percent: bool = False
    higher_is_better: bool = True
    title: str | None = None
    scorer: Callable | None = None
    on_request: bool = False  # computed only when asked for (METEOR: Java, slow)

    def format(self, value, digits: int | None = None, missing: str = DASH) -> str:
        """``value`` as a table shows it: ``0.4120`` or ``99.52%``; ``missing`` for None."""
        if value is None:
            return missing
        digits = self.digits if digits is None else digits
        return f"{100 * value:.{digits}f}%" if self.percent else f"{value:.{digits}f}"

    @property
    def long_label(self) -> str:
        return self.title or self.label


def _coco_bleu(hyp_tokens, ref_tokens) -> dict:
    return {f"bleu{k + 1}": b for k, b in enumerate(corpus_bleu(hyp_tokens, ref_tokens, max_n=4))}


def _nltk_bleu(hyp_tokens, ref_tokens) -> dict:
    return {"bleu4_nltk": bleu4_nltk(hyp_tokens, ref_tokens)}


def _cider(hyp_tokens, ref_tokens) -> dict:
    return {"cider": corpus_cider_d(hyp_tokens, ref_tokens)}


def _rouge(hyp_tokens, ref_tokens) -> dict:
    return {"rouge_l": corpus_rouge_l(hyp_tokens, ref_tokens)}


def _meteor(hyp_tokens, ref_tokens) -> dict:
    meteor, missing = corpus_meteor(hyp_tokens, ref_tokens)
    return {"meteor": meteor, "meteor_missing": missing}  # the reason when it could not run


_COCO = "BLEU of coco-caption (pycocoevalcap Bleu)"
_PCT = {"kind": "truth", "digits": 2, "percent": True}  # truth metrics: shares, in percent
_GEN = {"kind": "generated", "digits": 2, "percent": True}  # diversity shares, in percent
METRICS: tuple[Metric, ...] = (
    *(
        Metric(f"bleu{n}", f"BLEU-{n}", _COCO, "corpus", 4, title=f"BLEU-{n} (coco-caption)",
               scorer=_coco_bleu)
        for n in (1, 2, 3, 4)
    ),
    Metric("bleu4_nltk", "BLEU-4 (nltk)", "nltk corpus_bleu, no smoothing", "corpus", 4,
           scorer=_nltk_bleu),
    Metric("cider", "CIDEr-D", "CIDEr-D of coco-caption", "corpus", 3, scorer=_cider),
    Metric("rouge_l", "ROUGE-L", "ROUGE-L F, beta 1.2, coco-caption", "corpus", 4, scorer=_rouge),
    Metric("meteor", "METEOR", "METEOR 1.5, coco-caption's jar", "corpus", 4, scorer=_meteor,
           on_request=True),
    Metric("caption_class_accuracy", "class", "class read back from the caption",
           title="class stated in the caption", **_PCT),
    Metric("findings_accuracy", "findings", "each finding read back, diagnostic images", **_PCT),
    Metric("findings_accuracy.all", "all right", "class and every finding read back right",
           title="every finding and the class right (all right)", **_PCT),
    Metric("findings_balanced_accuracy", "findings, balanced",
           "each finding read back, mean over its true values, diagnostic images",
           title="each finding right, balanced over its values", **_PCT),
    Metric("template_share", "templates", "share of captions per template of the set", **_PCT),
    Metric("content", "content", "per label column, the value the caption states (lexicon)",
           title="label columns stated in the caption", **_PCT),
    Metric("content.stated", "stated", "captions stating a value of the column",
           title="captions stating the column", **_PCT),
    Metric("content.right_when_stated", "right", "stated values that are the label, of stated",
           title="right when stated", **_PCT),
    Metric("content.ambiguous", "ambiguous", "captions stating several values, of stated",
           higher_is_better=False, **_PCT),
    Metric("accuracy", "accuracy", "the classifier head's class", title="classifier accuracy",
           **_PCT),
    Metric("ece", "ECE", "expected calibration error, 15 bins", higher_is_better=False, **_PCT),
    Metric("out_of_scope_rate", "out of scope", "share of images the scope check refuses",
           title="out-of-scope rate", higher_is_better=False, **_PCT),
    Metric("distinct_share", "distinct", "distinct generated captions / captions",
           title="distinct captions", **_GEN),
    Metric("unk_share", "<unk>", "share of generated captions containing <unk>",
           title="captions with <unk>", higher_is_better=False, **_GEN),
    Metric("repeat_share", "repeats", "share of generated captions with a token twice in a row "
           "or a repeated 3-gram", title="captions with repeats", higher_is_better=False, **_GEN),
    Metric("vocabulary_used", "words used", "distinct words in the generated captions",
           "generated", 0, title="vocabulary used"),
)  # fmt: skip
_BY_NAME = {m.name: m for m in METRICS}
# the caption metrics a one-line summary shows (experiments tables, phrasing study)
HEADLINE = ("bleu4", "cider", "rouge_l")
assert all(m.kind in KINDS for m in METRICS)


def metric(name: str) -> Metric:
    """The metric ``name``; ``findings_accuracy.<field>`` for a field not listed is the field's
    read-back accuracy (fields come from the template set, not from this list), and
    ``content.<column>.<stat>`` (``content.modality.stated``) is ``content.<stat>`` for the
    column (columns come from the dataset and the lexicon)."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    parent, _, field = name.partition(".")
    if field and parent == "findings_accuracy":
        return Metric(name, field, f"{field} read back, diagnostic images", **_PCT)
    column, _, stat = field.rpartition(".")
    if column and parent == "content" and f"content.{stat}" in _BY_NAME:  # content.<column>.<stat>
        shared = _BY_NAME[f"content.{stat}"]
        return replace(shared, name=name, label=f"{column} {shared.label}",
                       title=f"{column}: {shared.long_label}")  # fmt: skip
    raise KeyError(f"unknown metric '{name}' (known: {', '.join(_BY_NAME)})")


def names(*kinds: str) -> tuple[str, ...]:
    """Report keys of the metrics of ``kinds`` (all kinds when none), in the list's order;
    dotted sub-metrics (``findings_accuracy.all``) are left out: their parent is the key."""
    return tuple(m.name for m in METRICS if (not kinds or m.kind in kinds) and "." not in m.name)


def kept_scores() -> tuple[str, ...]:
    """The corpus and per-image metrics a results artifact keeps: all but those computed only
    on request (METEOR needs Java, so not every machine has it)."""
    return tuple(m.name for m in METRICS if m.scorer is not None and not m.on_request)


def value(metrics: dict, name: str):
    """The value of ``name`` in a report's metrics (a dotted name reads a nested dict)."""
    for part in name.split("."):
        metrics = metrics.get(part) if isinstance(metrics, dict) else None
    return metrics


def score_tokens(hyp_tokens, ref_tokens, meteor: bool = False) -> dict:
    """Every corpus and per-image metric of the token lists, in the list's order (a per-image
    metric: its mean); METEOR only with ``meteor``. Extra keys a scorer returns (such as
    ``meteor_missing``) come along."""
    out: dict = {}
    for m in METRICS:
        if m.scorer is None or m.name in out or (m.on_request and not meteor):
            continue
        for key, result in m.scorer(hyp_tokens, ref_tokens).items():
            per_image = key in _BY_NAME and _BY_NAME[key].kind == "per_image"
            out[key] = (float(np.mean(result)) if len(result) else None) if per_image else result
    return out
