"""``captioning evaluate RUN_DIR`` for captioner runs: caption metrics and clinical-style checks.

The report (JSON) has the caption metrics of ``captioning.metrics`` (``bleu1``..``bleu4`` as
coco-caption defines them, ``bleu4_nltk``, ``cider`` (CIDEr-D), ``rouge_l``, ``meteor``: the
coco-caption jar's, null with ``meteor_missing`` giving the reason where it cannot run),
``caption_class_accuracy`` (the class read back from each generated caption with the template
set's parser), ``findings_accuracy`` per field (quality on every image; each finding of the
set on the images whose true quality is diagnostic; ``all`` = class and every finding
right), ``accuracy`` of the classifier head, a ``per_class`` breakdown, ``template_share`` (the
share of captions written with each template of the set, ``"none"``: no template exactly),
decoding settings (``phrasing`` included) and throughput, and ``captions`` (path, generated,
references, classes) for every image. A Markdown table of sample captions and attention
overlays for one image per class go beside it.

Scope and confidence (runs with ``scope.json`` / ``calibration.json``, else null): ``ece`` (the
expected calibration error, 15 bins, of the class probability against the head's class and of
each finding's probability against the finding read back, on the diagnostic images whose
caption states it), a reliability diagram ``reliability_<tag>.png``, and ``out_of_scope``
(count) and ``out_of_scope_rate``. Every caption metric still counts every image: an
out-of-scope image is scored with the caption it would have had, so abstaining never raises
accuracy.

A run trained on a caption source without structured truth (a caption file of free text, see
docs/datasets.md) is scored by ``captioning.evaluation.references`` instead: the same metric
table, and the parse-back metrics reported as not applicable.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.findings import check_cutpoints, compute_findings
from captioning.captions.parse import template_share
from captioning.captions.readback import findings_scores
from captioning.captions.templates import load_template_set
from captioning.data.caption_data import caption_frame
from captioning.data.evaluation import load_labelled, run_split
from captioning.data.template_captions import CUTPOINTS_FILE, caption_table, load_cutpoints
from captioning.errors import DataError
from captioning.evaluation.overlays import write_attention_png
from captioning.inference import Captioner
from captioning.metrics import score_captions
from captioning.metrics.calibration import expected_calibration_error, write_reliability_png
from captioning.utils.runs import write_json


def _references(frame: pd.DataFrame) -> list[list[str]]:
    cols = [c for c in frame.columns if c.startswith("reference_")]
    return [list(row) for row in frame[cols].itertuples(index=False)]


def _mean(values, where=None) -> float | None:
    values = np.asarray(values, bool)
    if where is not None:
        values = values[np.asarray(where, bool)]
    return round(float(values.mean()), 6) if len(values) else None


def summarize_findings(scores: dict, index=None) -> dict:
    """Accuracy per field over the images in ``index`` (a boolean mask; all when None)."""
    out = {}
    for name, value in scores.items():
        if name == "class":
            continue
        right, scored = value if isinstance(value, tuple) else (value, None)
        mask = np.ones(len(right), bool) if index is None else index
        if scored is not None:
            mask = mask & scored
        out[name] = _mean(right, mask)
    return out


def calibration_curves(result, scores: dict, labels: np.ndarray) -> dict:
    """Name -> (confidence, correct) for the class (the head's, against the label) and each
    finding (its probability against the finding read back, where the caption states it on a
    diagnostic image)."""
    curves = {"class": (result.confidence["class"], result.class_ids == labels)}
    for name, conf in result.confidence.items():
        if name == "class":
            continue
        right, diagnostic = scores[name]
        use = diagnostic & ~np.isnan(conf)
        curves[name] = (conf[use], right[use])
    return curves


def _external_truth(captioner: Captioner, source: Path, workdir: Path):
    """Images and ground-truth captions for a labelled folder/archive never prepared: findings
    are measured with the cut points stored with the run's dataset."""
    images, labels, paths, skipped = load_labelled(source, captioner.classes, workdir)
    bundled = captioner.run_dir / CUTPOINTS_FILE  # a bundled run carries its own
    cutpoints = (
        check_cutpoints(json.loads(bundled.read_text()))
        if bundled.is_file()
        else load_cutpoints(captioner.run["data_root"])
    )
    manifest = pd.DataFrame(
        {"path": paths, "split": "external", "class": [captioner.classes[i] for i in labels]}
    )
    frame = caption_table(
        manifest, compute_findings(images, cutpoints), load_template_set(captioner.templates)
    )
    return images, labels, frame, skipped


def evaluate_captioner_run(
    run_dir: Path,
    data: str | None = None,
    split: str = "test",
    out: Path | None = None,
    beam: int | None = None,
    phrasing: str | None = None,
) -> dict:
    """Evaluate the captioner in ``run_dir``; write the report to ``out`` if given.
    ``phrasing`` overrides the run's ``decoder.phrasing`` ('best' or 'varied')."""
    run_dir = Path(run_dir)
    captioner = Captioner(run_dir, phrasing=phrasing)
    if captioner.run.get("caption_source", "templates") != "templates":
        return _evaluate_free_text(captioner, data, split, out, beam)
    tset = load_template_set(captioner.templates)
    with tempfile.TemporaryDirectory(prefix="captioning-eval-") as tmp:
        if data:
            source = Path(data).expanduser().resolve()
            images, labels, frame, skipped = _external_truth(captioner, source, Path(tmp))
            evaluated = {"data": str(source), "split": None, "skipped": skipped}
            tag = source.name.split(".")[0] or "data"
        else:
            dataset, part, evaluated = run_split(captioner.run, split)
            images, labels = part.images, part.labels
            frame = (
                caption_frame(dataset, captioner.templates).iloc[part.rows].reset_index(drop=True)
            )
            tag = split
    if len(labels) == 0:
        raise DataError(f"{evaluated['data']}: no readable labelled images to evaluate")
    width = captioner.beam_width if beam is None else beam
    tic = time.perf_counter()
    result = captioner.caption(images, beam=width)
    seconds = time.perf_counter() - tic
    references = _references(frame)
    metrics = score_captions(result.texts, references, meteor=True)
    scores = findings_scores(result.texts, frame, tset)
    classes = captioner.classes
    true_class = frame["class"].to_numpy()
    curves = calibration_curves(result, scores, labels) if captioner.calibration else None
    outside = None if result.in_scope is None else ~result.in_scope
    per_class = {}
    for name in classes:
        mask = true_class == name
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        per_class[name] = {
            "n": int(mask.sum()),
            "caption_class_accuracy": _mean(scores["class"], mask),
            "accuracy": _mean(result.class_ids[mask] == labels[mask]),
            "out_of_scope": None if outside is None else int(outside[mask].sum()),
            "findings_accuracy": summarize_findings(scores, mask),
            "bleu4": round(
                score_captions([result.texts[i] for i in idx], [references[i] for i in idx])[
                    "bleu4"
                ],
                6,
            ),
        }
    report = {
        **{
            k: (v if v is None or isinstance(v, str) else round(float(v), 6))
            for k, v in metrics.items()
        },
        "n": len(labels),
        "caption_class_accuracy": _mean(scores["class"]),
        "accuracy": _mean(result.class_ids == labels),
        "findings_accuracy": summarize_findings(scores),
        "template_share": template_share(result.words, tset),
        "ece": None
        if curves is None
        else {
            name: None if (e := expected_calibration_error(*pair)) is None else round(e, 6)
            for name, pair in curves.items()
        },
        "out_of_scope": None if outside is None else int(outside.sum()),
        "out_of_scope_rate": None if outside is None else _mean(outside),
        "scope": None
        if captioner.scope is None
        else {"method": captioner.scope.method, "threshold": captioner.scope.threshold},
        "per_class": per_class,
        "decoding": {
            "decoder": captioner.run.get("decoder"),
            "beam_width": width,
            "length_alpha": captioner.search.length_alpha,
            "phrasing": captioner.search.phrasing,
            "max_length": captioner.search.max_length,
            "seconds": round(seconds, 3),
            "images_per_second": round(len(labels) / max(seconds, 1e-9), 1),
        },
        "templates": captioner.templates,
        **evaluated,
        "run_dir": str(run_dir.resolve()),
        "model": "best_model.keras",
        "captions": [
            {
                "path": frame["path"].iloc[i],
                "generated": result.texts[i],
                "references": references[i],
                "class": true_class[i],
                "pred_class": classes[int(result.class_ids[i])],
                "prob": round(float(result.probs[i]), 6),
                **(
                    {}
                    if outside is None
                    else {
                        "in_scope": not outside[i],
                        "ood_score": round(float(result.ood_score[i]), 6),
                    }
                ),
            }
            for i in range(len(labels))
        ],
    }
    artifacts = out.parent if out else run_dir / "eval"
    artifacts.mkdir(parents=True, exist_ok=True)
    if curves is not None:
        write_reliability_png(curves, artifacts / f"reliability_{tag}.png")
    write_samples(report, artifacts / f"captions_{tag}.md")
    if captioner.has_attention:
        firsts = [
            int(np.flatnonzero(true_class == c)[0]) for c in classes if (true_class == c).any()
        ]
        shown = captioner.caption(images[firsts], beam=width, attention=True)
        for j, i in enumerate(firsts):
            write_attention_png(
                images[i],
                shown.words[j],
                shown.attention[j],
                artifacts / "attention" / f"{tag}_{true_class[i]}.png",
            )
    if out:
        write_json(out, report)
    return report


def _evaluate_free_text(captioner, data, split: str, out, beam) -> dict:
    """A run on a caption file: its own split, scored against the references only."""
    from captioning.evaluation.references import evaluate_reference_run

    if data:
        raise DataError(
            f"{captioner.run_dir}: --data (a labelled image folder) applies to runs on "
            "templated captions; prepare new data with 'data prepare --captions' instead"
        )
    dataset, part, evaluated = run_split(captioner.run, split)
    return evaluate_reference_run(captioner, dataset, part, evaluated, out, beam, split)


def write_samples(report: dict, path: Path, per_class: int = 2) -> None:
    """A Markdown table of generated captions beside reference 0, a few per class."""
    where = report["split"] or report["data"]
    lines = [
        f"# Sample captions ({where}, beam {report['decoding']['beam_width']})",
        "",
        "| class | generated | reference 0 | head's class |",
        "|---|---|---|---|",
    ]
    seen: dict[str, int] = {}
    for entry in report["captions"]:
        c = entry["class"]
        if seen.get(c, 0) >= per_class:
            continue
        seen[c] = seen.get(c, 0) + 1
        lines.append(
            f"| {c} | {entry['generated']} | {entry['references'][0]} | {entry['pred_class']} |"
        )
    path.write_text("\n".join(lines) + "\n")
