"""``captioning evaluate RUN_DIR`` for captioner runs: one report for every caption source.

The report (JSON) has the caption metrics of ``captioning.metrics.registry`` against the
references (``bleu1``..``bleu4`` as coco-caption defines them, ``bleu4_nltk``, ``cider``
(CIDEr-D), ``rouge_l``, ``meteor``: the coco-caption jar's, null with ``meteor_missing`` giving
the reason where it cannot run), computed with the source's tokenisation rules; what the truth
scorers (``captioning.evaluation.truth``) read back from the captions (templated runs:
``caption_class_accuracy``, ``findings_accuracy`` per field, ``template_share``; free-text runs:
the same keys null, named in ``not_applicable``; free text with label columns: ``content``, the
modality, plane and body system each caption states, read with a lexicon, against the labels,
and ``content_lexicon``); and, where the images carry the encoder's
class labels, the head's ``accuracy``, a ``per_class`` breakdown, the scope check
(``out_of_scope``, ``out_of_scope_rate``) and calibration (``ece``: 15 bins, of the class
probability and, for templated runs, of each finding's probability against the finding read
back). The diversity of the generated captions (``distinct_share``, ``unk_share``,
``repeat_share``, ``vocabulary_used``: ``captioning.metrics.diversity``) and, for a run
evaluated with its own dataset at hand, ``baselines``: two constant captions and
nearest-neighbour retrieval from the train split, scored with the same metrics
(``captioning.evaluation.retrieval``; ``model_below`` names those whose CIDEr-D the model
does not reach; each baseline's ``paired_bootstrap``: the model minus the baseline, with 95%
intervals over resampled test images, ``captioning.metrics.bootstrap``). Then decoding
settings and throughput, what was evaluated, and ``captions`` (path, generated, references,
the retrieval baselines' captions, class) for every image. Every caption metric counts
every image: an out-of-scope image is scored with the caption it would have had, so
abstaining never raises accuracy.

Beside the report: a Markdown table of sample captions, attention overlays, and a reliability
diagram when the run is calibrated (``captioning.evaluation.artifacts``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from captioning.errors import DataError, RunError
from captioning.evaluation.artifacts import write_artifacts
from captioning.evaluation.inputs import NO_LABELS, EvalSet, evaluation_set
from captioning.evaluation.retrieval import caption_baselines
from captioning.evaluation.truth import TruthScorer, mean_of, truth_scorers
from captioning.metrics import corpus_bleu, score_captions
from captioning.metrics.calibration import expected_calibration_error
from captioning.metrics.diversity import diversity
from captioning.metrics.meteor import shared_jar
from captioning.utils.runs import write_json

# the key order of the report as returned and printed (the written file sorts its keys);
# "*": the keys of added truth scorers
ORDER = (
    "n", "caption_source", "caption_class_accuracy", "accuracy", "findings_accuracy",
    "findings_balanced_accuracy", "template_share", "content", "content_lexicon", "*",
    "distinct_share", "unk_share", "repeat_share", "vocabulary_used",
    "baselines", "ece", "out_of_scope", "out_of_scope_rate", "scope", "per_class",
    "not_applicable", "decoding", "templates", "data", "split", "skipped", "manifest_sha256",
    "run_dir", "model", "captions",
)  # fmt: skip
PER_CLASS_ORDER = (
    "n", "caption_class_accuracy", "accuracy", "out_of_scope", "findings_accuracy", "*", "bleu4"
)  # fmt: skip
LABEL_KEYS = ("accuracy", "per_class", "ece", "out_of_scope")  # null without class labels


@dataclass
class Measured:
    """What one evaluation measured, before the report lays it out. ``generated``: the texts
    the metrics score (a templated run's sentences; a free-text run's decoder tokens);
    ``scores``: each truth scorer's per-image results; ``outside``: (N,) bool, out of scope,
    or None without a scope check or class labels; ``curves``: calibration curves or None."""

    result: object
    generated: list[str]
    scorers: list[TruthScorer]
    scores: list
    outside: np.ndarray | None
    curves: dict | None
    beam_width: int
    seconds: float


def evaluate_captioner_run(
    run_dir: Path,
    data: str | None = None,
    split: str = "test",
    out: Path | None = None,
    beam: int | None = None,
    phrasing: str | None = None,
    truth: list[TruthScorer] | None = None,
    baselines: bool = True,
    lexicon: str | None = None,
) -> dict:
    """Evaluate the captioner in ``run_dir`` on ``data`` (a labelled folder or archive) or its
    own ``split``; write the report to ``out`` if given, its figures beside it (else in
    ``run_dir/eval``). ``phrasing`` overrides the run's ``decoder.phrasing``; ``truth``
    replaces the truth scorers chosen for the caption source; ``baselines``: also score the
    constant and retrieval baselines (``baselines`` of the report); ``lexicon``: the label-column
    lexicon of the content scorer (a name or file; default the shipped ``medpix``)."""
    from captioning.inference import Captioner  # TensorFlow: loaded only to caption

    run_dir = Path(run_dir)
    captioner = Captioner(run_dir, phrasing=phrasing)
    with tempfile.TemporaryDirectory(prefix="captioning-eval-") as tmp:
        evalset = evaluation_set(captioner, data, split, Path(tmp))
    scorers = truth_scorers(captioner, evalset, lexicon=lexicon) if truth is None else truth
    measured = measure(captioner, evalset, scorers, beam)
    with shared_jar():  # one METEOR jar for the baselines and the model, not one each
        found = run_baselines(captioner, evalset, measured.generated) if baselines else None
        report = build_report(captioner, evalset, measured, found)
    below = (report.get("baselines") or {}).get("model_below")
    if below:
        logging.getLogger(__name__).warning(
            "%s: the model's CIDEr-D %.3f is below the baselines %s",
            run_dir, report["cider"], ", ".join(below),
        )  # fmt: skip
    folder = out.parent if out else run_dir / "eval"
    write_artifacts(captioner, evalset, report, measured.curves, folder)
    if out:
        write_json(out, report)
    return report


def run_baselines(captioner, evalset: EvalSet, generated: list[str] | None = None) -> dict:
    """The constant and retrieval baselines on ``evalset``, from the run's own train split
    (k chosen on its val split), each with its paired bootstrap against the model's
    ``generated`` captions when given; ``{"not_computed": why}`` where the run's dataset or a
    split is missing (a bundled run, a dataset without a val split)."""
    try:
        pool = evaluation_set(captioner, None, "train", Path(tempfile.gettempdir()))
        val = evaluation_set(captioner, None, "val", Path(tempfile.gettempdir()))
    except (DataError, RunError, OSError, KeyError) as err:
        return {"not_computed": f"the run's train and val splits cannot be read: {err}"}
    return caption_baselines(captioner, evalset, pool, val, generated=generated)


def measure(captioner, evalset: EvalSet, scorers: list[TruthScorer], beam: int | None):
    """Caption the set (timed) and run the truth scorers and the scope and calibration checks."""
    width = captioner.resolve_beam(beam)
    tic = time.perf_counter()
    result = captioner.caption(evalset.images, beam=width)
    seconds = time.perf_counter() - tic
    generated = [" ".join(w) for w in result.words] if evalset.free_text else result.texts
    scores = [s.score(generated, result.words, evalset) for s in scorers]
    labelled = evalset.labelled
    outside = None if (result.in_scope is None or not labelled) else ~result.in_scope
    curves = None
    if labelled and captioner.calibration:
        curves = {"class": (result.confidence["class"], result.class_ids == evalset.labels)}
        for scorer, scored in zip(scorers, scores, strict=True):
            curves.update(scorer.curves(scored, result))
    return Measured(result, generated, scorers, scores, outside, curves, width, seconds)


def ordered(entries: dict, order: tuple[str, ...]) -> dict:
    """``entries`` in ``order``; keys ``order`` does not name go where it says ``"*"``."""
    rest = {k: v for k, v in entries.items() if k not in order}
    out = {}
    for key in order:
        if key == "*":
            out.update(rest)
        elif key in entries:
            out[key] = entries[key]
    return out


def _round(value):
    return value if value is None or isinstance(value, str) else round(float(value), 6)


def build_report(captioner, evalset: EvalSet, m: Measured, baselines: dict | None = None) -> dict:
    """The report (see the module doc) from what ``m`` measured on ``evalset``, with
    ``baselines`` (``run_baselines``) when given."""
    metrics = score_captions(m.generated, evalset.references, split=evalset.tokenize, meteor=True)
    per_image = (baselines or {}).pop("per_image", {})  # retrieval captions: in each image's entry
    if baselines is not None and "not_computed" not in baselines:
        model_cider = metrics["cider"]
        baselines["model_below"] = [
            name
            for name, block in baselines.items()
            if isinstance(block, dict) and block.get("cider", -1) > model_cider
        ]
    truth, not_applicable = {}, {}
    for scorer, scored in zip(m.scorers, m.scores, strict=True):
        truth.update(scorer.summary(scored))
        not_applicable.update(scorer.not_applicable())
    report = {**truth, **label_entries(captioner, evalset, m), **diversity(m.result.words)}
    if baselines is not None:
        report["baselines"] = baselines
    if evalset.free_text:
        report["caption_source"] = evalset.source
        if not evalset.labelled:
            not_applicable.update(dict.fromkeys(LABEL_KEYS, NO_LABELS))
    if not_applicable:
        report["not_applicable"] = not_applicable
    report.update(
        n=len(evalset),
        decoding=decoding(captioner, evalset, m),
        templates=None if evalset.free_text else captioner.templates,
        **evalset.evaluated,
        run_dir=str(captioner.run_dir.resolve()),
        model="best_model.keras",
        captions=caption_entries(captioner, evalset, m, per_image),
    )
    return {**{k: _round(v) for k, v in metrics.items()}, **ordered(report, ORDER)}


def label_entries(captioner, evalset: EvalSet, m: Measured) -> dict:
    """The head's accuracy, per class, scope and calibration: null without class labels."""
    outside, result = m.outside, m.result
    entries = {
        "accuracy": mean_of(result.class_ids == evalset.labels) if evalset.labelled else None,
        "per_class": per_class(captioner, evalset, m) if evalset.labelled else None,
        "ece": None
        if m.curves is None
        else {name: _round(expected_calibration_error(*pair)) for name, pair in m.curves.items()},
        "out_of_scope": None if outside is None else int(outside.sum()),
        "out_of_scope_rate": None if outside is None else mean_of(outside),
    }
    if not evalset.free_text:
        scope = captioner.scope
        entries["scope"] = (
            None if scope is None else {"method": scope.method, "threshold": scope.threshold}
        )
    return entries


def per_class(captioner, evalset: EvalSet, m: Measured) -> dict:
    """Per class of the encoder present in the set: ``n`` and the head's accuracy, the truth
    scorers' entries, and (templated sets) the out-of-scope count and BLEU-4."""
    true_class = evalset.frame["class"].to_numpy()
    ids, labels = m.result.class_ids, evalset.labels
    references = evalset.references
    out = {}
    for name in captioner.classes:
        mask = true_class == name
        if not mask.any():
            continue
        entry = {"n": int(mask.sum()), "accuracy": mean_of(ids[mask] == labels[mask])}
        for scorer, scored in zip(m.scorers, m.scores, strict=True):
            entry.update(scorer.per_class(scored, mask))
        if not evalset.free_text:
            idx = np.flatnonzero(mask)
            entry["out_of_scope"] = None if m.outside is None else int(m.outside[mask].sum())
            hyps = [evalset.tokenize(m.generated[i]) for i in idx]  # BLEU-4 alone: no nltk, CIDEr
            refs = [[evalset.tokenize(r) for r in references[i]] for i in idx]
            entry["bleu4"] = round(corpus_bleu(hyps, refs)[3], 6)
        out[name] = ordered(entry, PER_CLASS_ORDER)
    return out


def decoding(captioner, evalset: EvalSet, m: Measured) -> dict:
    """The decoding settings and the throughput of the timed captioning pass."""
    search = captioner.search
    phrasing = {} if evalset.free_text else {"phrasing": search.phrasing}
    return {
        "decoder": captioner.run.get("decoder"),
        "beam_width": m.beam_width,
        "length_alpha": search.length_alpha,
        **phrasing,
        "max_length": search.max_length,
        # the decoding rules (decoding.rules; None: a search without them) and whether the beam
        # and length_alpha are the run's choice on validation (decoding.json)
        "rules": vars(search.rules) if getattr(search, "rules", None) else None,
        "search_chosen_on_validation": getattr(captioner, "search_choice", None) is not None,
        "seconds": round(m.seconds, 3),
        "images_per_second": round(len(evalset) / max(m.seconds, 1e-9), 1),
    }


def caption_entries(captioner, evalset: EvalSet, m: Measured, baselines=None) -> list[dict]:
    """Per image: path, generated caption, references; ``baselines``, each retrieval
    baseline's caption, where given; the true class where labelled; for a templated set also
    the head's class and probability and the scope check."""
    frame, result, outside = evalset.frame, m.result, m.outside
    references = evalset.references
    entries = []
    for i in range(len(evalset)):
        entry = {"path": frame["path"].iloc[i], "generated": m.generated[i]}
        entry["references"] = references[i]
        if baselines:
            entry["baselines"] = {name: captions[i] for name, captions in baselines.items()}
        if evalset.labelled:
            entry["class"] = frame["class"].iloc[i]
        if not evalset.free_text:
            entry["pred_class"] = captioner.classes[int(result.class_ids[i])]
            entry["prob"] = round(float(result.probs[i]), 6)
            if outside is not None:
                entry["in_scope"] = not outside[i]
                entry["ood_score"] = round(float(result.ood_score[i]), 6)
        entries.append(entry)
    return entries
