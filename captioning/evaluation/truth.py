"""Truth scorers: what an evaluation can say beyond the references, from each image's truth.

A captioner's report always has the caption metrics against the references; what else it can
check depends on what the caption source knows about each image. A truth scorer turns the
generated captions and the set's truth columns into report entries:

- ``TemplateTruth`` (templated captions): the class and each finding read back from the
  captions with the template set's parser (``caption_class_accuracy``, ``findings_accuracy``;
  ``findings_balanced_accuracy``: each field's mean over its true values), the share of each
  template (``template_share``), and calibration curves for the findings;
- ``NoTruth`` (free-text reports): the same keys, null, each named in ``not_applicable``;
- ``LabelContentTruth`` (free text with label columns, such as MedPix's modality, plane and
  body system): what each caption states of each column, read with a lexicon
  (``captioning.captions.lexicon``), against the image's labels (``content``).

A new scorer is one class with the methods of ``TruthScorer`` and one entry in ``SCORERS``; the
report builder merges what every applicable scorer returns. See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from captioning.captions.lexicon import DEFAULT_LEXICON, ColumnLexicon, Lexicon, load_lexicon
from captioning.captions.parse import template_share
from captioning.captions.readback import findings_scores
from captioning.captions.templates import load_template_set
from captioning.errors import DataError
from captioning.metrics.registry import METRICS, metric

NO_TRUTH = "the caption source states no class or findings to read back"
TEMPLATE_KEYS = (
    "caption_class_accuracy", "findings_accuracy", "findings_balanced_accuracy", "template_share"
)  # fmt: skip


class TruthScorer:
    """The interface (and a scorer that adds nothing). ``score`` runs once per evaluation and
    returns per-image results that the other methods summarise; ``summary`` gives report keys
    over all images, ``per_class`` the keys of one class's entry (``mask``: its images),
    ``curves`` calibration curves name -> (confidence, correct) for the finding probabilities,
    ``not_applicable`` key -> why it is null."""

    def score(self, generated: list[str], words: list[list[str]], evalset):
        return None

    def summary(self, scores) -> dict:
        return {}

    def per_class(self, scores, mask: np.ndarray) -> dict:
        return {}

    def curves(self, scores, result) -> dict:
        return {}

    def not_applicable(self) -> dict:
        return {}


def mean_of(values, where=None) -> float | None:
    """The share of true ``values`` (over ``where``, a boolean mask), 6 decimals; None when
    no image is counted."""
    values = np.asarray(values, bool)
    if where is not None:
        values = values[np.asarray(where, bool)]
    return round(float(values.mean()), 6) if len(values) else None


def summarize_findings(scores: dict, index=None) -> dict:
    """Accuracy per field over the images in ``index`` (a boolean mask; all when None); a
    finding counts only the images where it is scored (diagnostic ones)."""
    out = {}
    for name, value in scores.items():
        if name == "class":
            continue
        right, scored = value if isinstance(value, tuple) else (value, None)
        mask = np.ones(len(right), bool) if index is None else index
        if scored is not None:
            mask = mask & scored
        out[name] = mean_of(right, mask)
    return out


def balanced_findings(scores: dict, truth) -> dict:
    """Per field of ``truth`` (a frame of the true values), the mean over the field's true
    values of the share read back right (scored images only): a rare value counts as much as
    a common one (the acquisition set's shifts against its centred images)."""
    out = {}
    for name, value in scores.items():
        if not isinstance(value, tuple) or name not in truth:
            continue
        right, scored = value
        values = truth[name].to_numpy()
        shares = [mean_of(right, scored & (values == v)) for v in np.unique(values[scored])]
        out[name] = round(float(np.mean(shares)), 6) if shares else None
    return out


class TemplateScores(NamedTuple):
    """Per image: whether the class and each field read back right (``findings_scores``);
    the share of the captions written with each template of the set; the true values."""

    per_image: dict
    template_share: dict
    truth: object  # the evaluated frame (class, quality and each field's value)


class TemplateTruth(TruthScorer):
    """Parse-back against a templated set's class and findings columns."""

    def __init__(self, templates: str):
        self.tset = load_template_set(templates)

    def score(self, generated, words, evalset) -> TemplateScores:
        return TemplateScores(
            findings_scores(generated, evalset.frame, self.tset),
            template_share(words, self.tset),  # from the decoder's tokens, not the sentences
            evalset.frame,
        )

    def summary(self, scores: TemplateScores) -> dict:
        return {
            "caption_class_accuracy": mean_of(scores.per_image["class"]),
            "findings_accuracy": summarize_findings(scores.per_image),
            "findings_balanced_accuracy": balanced_findings(scores.per_image, scores.truth),
            "template_share": scores.template_share,
        }

    def per_class(self, scores: TemplateScores, mask) -> dict:
        return {
            "caption_class_accuracy": mean_of(scores.per_image["class"], mask),
            "findings_accuracy": summarize_findings(scores.per_image, mask),
        }

    def curves(self, scores: TemplateScores, result) -> dict:
        """Each finding's probability against the finding read back, where the caption
        states it on a diagnostic image."""
        curves = {}
        for name, conf in result.confidence.items():
            if name == "class":
                continue
            right, diagnostic = scores.per_image[name]
            use = diagnostic & ~np.isnan(conf)
            curves[name] = (conf[use], right[use])
        return curves


class NoTruth(TruthScorer):
    """A source without truth to read back: the template keys null, with the reason."""

    def summary(self, scores) -> dict:
        return dict.fromkeys(TEMPLATE_KEYS)

    def not_applicable(self) -> dict:
        return dict.fromkeys(TEMPLATE_KEYS, NO_TRUTH)


class ColumnReading(NamedTuple):
    """One label column over the images whose label the lexicon knows (``n``; ``unscored``:
    the others): per image, stated (a value matched), right (exactly the label matched) and
    ambiguous (several values); ``ceiling``: the same counts over their references."""

    n: int
    unscored: int
    stated: np.ndarray
    right: np.ndarray
    ambiguous: np.ndarray
    ceiling: tuple


def read_column(column: ColumnLexicon, truth, texts) -> tuple:
    """Stated, right and ambiguous (boolean arrays) of ``texts`` (token lists or texts), the
    ``truth`` being each one's label value."""
    found = [column.read(t) for t in texts]
    stated = np.array([bool(f) for f in found], bool)
    right = np.array([f == {v} for f, v in zip(found, truth, strict=True)], bool)
    return stated, right, np.array([len(f) > 1 for f in found], bool)


def _share(count, total) -> float:
    """``count / total``, 6 decimals; 0.0 (not null) when ``total`` is 0."""
    return round(float(count) / float(total), 6) if total else 0.0


# the statistics of a column's entry, each named in the registry as ``content.<stat>``
CONTENT_STATS = {
    "stated": lambda stated, right, ambiguous: _share(stated.sum(), len(stated)),
    "right_when_stated": lambda stated, right, ambiguous: _share(right.sum(), stated.sum()),
    "ambiguous": lambda stated, right, ambiguous: _share(ambiguous.sum(), stated.sum()),
}
assert {f"content.{k}" for k in CONTENT_STATS} == {
    m.name for m in METRICS if m.name.startswith("content.")
}, "the content statistics and the registry's content.<stat> metrics differ"


class LabelContentTruth(TruthScorer):
    """What free-text captions state of each label column (modality, plane, body system),
    read with ``lexicon`` (``captioning.captions.lexicon``: the reading rule), against the
    image's labels: ``content`` (column -> n, stated, right_when_stated, ambiguous and the
    ``ceiling``: the same over the references) and ``content_lexicon`` (which lexicon)."""

    def __init__(self, lexicon: Lexicon, columns: tuple[str, ...]):
        self.lexicon = lexicon
        self.columns = [c for c in columns if c in lexicon.columns]
        self.missing = [c for c in columns if c not in lexicon.columns]

    def score(self, generated, words, evalset) -> dict:
        out = {}
        for name in self.columns:
            column = self.lexicon.columns[name]
            truth = [column.truth(v) for v in evalset.frame[f"label_{name}"]]
            keep = [i for i, v in enumerate(truth) if v is not None]
            pairs = [(ref, truth[i]) for i in keep for ref in evalset.references[i]]
            refs = [evalset.tokenize(ref) for ref, _ in pairs]
            out[name] = ColumnReading(
                len(keep),
                len(truth) - len(keep),
                *read_column(column, [truth[i] for i in keep], [words[i] for i in keep]),
                ceiling=read_column(column, [v for _, v in pairs], refs),
            )
        return out

    def summary(self, scores: dict) -> dict:
        content = {}
        for name, reading in scores.items():
            entry = {"n": reading.n, "unscored": reading.unscored}
            entry["n_stated"] = int(reading.stated.sum())
            for stat, share in CONTENT_STATS.items():
                entry[stat] = share(reading.stated, reading.right, reading.ambiguous)
            entry["ceiling"] = {
                "n": len(reading.ceiling[0]),
                **{stat: share(*reading.ceiling) for stat, share in CONTENT_STATS.items()},
            }
            content[name] = entry
        return {metric("content").name: content, "content_lexicon": self.lexicon.describe()}

    def not_applicable(self) -> dict:
        return {
            f"content.{name}": f"the lexicon '{self.lexicon.name}' has no words for column '{name}'"
            for name in self.missing
        }


def content_scorer(evalset, lexicon: str | None = None) -> LabelContentTruth | None:
    """The content scorer where ``evalset`` has label columns (``lexicon``: a name or file;
    default the shipped ``medpix``); None where it has none (a lexicon asked for anyway is
    refused: there is nothing to read it against)."""
    if not evalset.label_columns:
        if lexicon is not None:
            raise DataError(
                f"{evalset.evaluated.get('data')}: --lexicon needs label columns, and the data "
                "card lists none (data prepare --label-columns)"
            )
        return None
    return LabelContentTruth(load_lexicon(lexicon or DEFAULT_LEXICON), evalset.label_columns)


# name -> factory(captioner, evalset, **options) giving the scorer, or None where it does not
# apply; options: what the evaluation was asked for (``lexicon``: a lexicon name or file)
SCORERS: dict[str, Callable] = {
    "template": lambda captioner, evalset, **_: (
        None if evalset.free_text else TemplateTruth(captioner.templates)
    ),
    "none": lambda captioner, evalset, **_: NoTruth() if evalset.free_text else None,
    "content": lambda captioner, evalset, lexicon=None, **_: content_scorer(evalset, lexicon),
}


def truth_scorers(captioner, evalset, **options) -> list[TruthScorer]:
    """Every registered scorer that applies to ``evalset``, in ``SCORERS`` order; ``options``
    go to every factory (``lexicon``: the label-column lexicon, a name or a file)."""
    found = (factory(captioner, evalset, **options) for factory in SCORERS.values())
    return [scorer for scorer in found if scorer is not None]
