"""Truth scorers: what an evaluation can say beyond the references, from each image's truth.

A captioner's report always has the caption metrics against the references; what else it can
check depends on what the caption source knows about each image. A truth scorer turns the
generated captions and the set's truth columns into report entries:

- ``TemplateTruth`` (templated captions): the class and each finding read back from the
  captions with the template set's parser (``caption_class_accuracy``, ``findings_accuracy``),
  the share of each template (``template_share``), and calibration curves for the findings;
- ``NoTruth`` (free-text reports): the same keys, null, each named in ``not_applicable``.

A new scorer (say, modality or plane read from free text with a lexicon, against label
columns) is one class with the methods of ``TruthScorer`` and one entry in ``SCORERS``; the
report builder merges what every applicable scorer returns. See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from captioning.captions.parse import template_share
from captioning.captions.readback import findings_scores
from captioning.captions.templates import load_template_set

NO_TRUTH = "the caption source states no class or findings to read back"
TEMPLATE_KEYS = ("caption_class_accuracy", "findings_accuracy", "template_share")


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


class TemplateScores(NamedTuple):
    """Per image: whether the class and each field read back right (``findings_scores``);
    and the share of the captions written with each template of the set."""

    per_image: dict
    template_share: dict


class TemplateTruth(TruthScorer):
    """Parse-back against a templated set's class and findings columns."""

    def __init__(self, templates: str):
        self.tset = load_template_set(templates)

    def score(self, generated, words, evalset) -> TemplateScores:
        return TemplateScores(
            findings_scores(generated, evalset.frame, self.tset),
            template_share(words, self.tset),  # from the decoder's tokens, not the sentences
        )

    def summary(self, scores: TemplateScores) -> dict:
        return {
            "caption_class_accuracy": mean_of(scores.per_image["class"]),
            "findings_accuracy": summarize_findings(scores.per_image),
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


# name -> factory(captioner, evalset) giving the scorer, or None where it does not apply
SCORERS: dict[str, Callable] = {
    "template": lambda captioner, evalset: (
        None if evalset.free_text else TemplateTruth(captioner.templates)
    ),
    "none": lambda captioner, evalset: NoTruth() if evalset.free_text else None,
}


def truth_scorers(captioner, evalset) -> list[TruthScorer]:
    """Every registered scorer that applies to ``evalset``, in ``SCORERS`` order."""
    found = (factory(captioner, evalset) for factory in SCORERS.values())
    return [scorer for scorer in found if scorer is not None]
