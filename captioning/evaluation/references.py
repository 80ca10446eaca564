"""``captioning evaluate RUN_DIR`` for a captioner trained on a caption source without
structured truth (a caption file of free-text reports: ``file`` or ``r2gen``, see
docs/datasets.md): the field's metric table against the references, and nothing that would
need truth the source does not have.

The report (JSON) has ``bleu1``..``bleu4`` (coco-caption), ``bleu4_nltk``, ``meteor`` (the
coco-caption jar; null with ``meteor_missing`` giving the reason where it cannot run),
``rouge_l``, ``cider`` (CIDEr-D) and ``n``, all computed on the decoder's tokens under the
source's tokenisation rules (those the run's vocabulary carries). The parse-back metrics
(``caption_class_accuracy``, ``findings_accuracy``, ``template_share``) are null: the source
states no class or findings to read back. The head's ``accuracy``, a ``per_class`` breakdown,
the scope check (``out_of_scope``) and calibration (``ece``) are given when the source's
class labels are the encoder's classes, else null. ``not_applicable`` names each null metric
with the reason. ``captions`` lists every image's generated caption and references; a Markdown
table of samples and attention overlays of the first images go beside the report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from captioning.data.caption_data import row_references
from captioning.data.sources import caption_source
from captioning.metrics import score_captions
from captioning.metrics.calibration import expected_calibration_error, write_reliability_png
from captioning.utils.runs import write_json

NO_TRUTH = "the caption source states no class or findings to read back"
NO_LABELS = "the caption source has no class labels of the encoder's classes"
SAMPLES = 6  # images in the Markdown table and with attention overlays


def _round(value):
    return None if value is None else round(float(value), 6)


def evaluate_reference_run(
    captioner, dataset, part, evaluated: dict, out: Path | None, beam: int | None, tag: str
) -> dict:
    """Caption ``part`` (a split of ``dataset``) with ``captioner`` and score it against the
    source's references (see the module doc); write the report to ``out`` if given."""
    source = caption_source(dataset)
    frame = source.frame(dataset).iloc[part.rows].reset_index(drop=True)
    references = row_references(frame)
    width = captioner.beam_width if beam is None else beam
    tic = time.perf_counter()
    result = captioner.caption(part.images, beam=width)
    seconds = time.perf_counter() - tic
    generated = [" ".join(words) for words in result.words]  # the tokens, as the metrics see them
    metrics = score_captions(generated, references, split=captioner.vocab.tokenize, meteor=True)
    labelled = source.has_labels and dataset.classes == captioner.classes
    labels = part.labels
    outside = None if (result.in_scope is None or not labelled) else ~result.in_scope
    calibrated = labelled and captioner.calibration is not None
    not_applicable = {
        "caption_class_accuracy": NO_TRUTH,
        "findings_accuracy": NO_TRUTH,
        "template_share": NO_TRUTH,
    }
    if not labelled:
        not_applicable.update(
            {k: NO_LABELS for k in ("accuracy", "per_class", "ece", "out_of_scope")}
        )
    report = {
        **{k: (v if isinstance(v, str) else _round(v)) for k, v in metrics.items()},
        "n": len(part),
        "caption_source": source.kind,
        "caption_class_accuracy": None,
        "findings_accuracy": None,
        "template_share": None,
        "accuracy": _round(np.mean(result.class_ids == labels)) if labelled else None,
        "per_class": _per_class(result, labels, dataset.classes) if labelled else None,
        "ece": {
            "class": _round(
                expected_calibration_error(result.confidence["class"], result.class_ids == labels)
            )
        }
        if calibrated
        else None,
        "out_of_scope": None if outside is None else int(outside.sum()),
        "out_of_scope_rate": None if outside is None else _round(outside.mean()),
        "not_applicable": not_applicable,
        "decoding": {
            "decoder": captioner.run.get("decoder"),
            "beam_width": width,
            "length_alpha": captioner.search.length_alpha,
            "max_length": captioner.search.max_length,
            "seconds": round(seconds, 3),
            "images_per_second": round(len(part) / max(seconds, 1e-9), 1),
        },
        "templates": None,
        **evaluated,
        "run_dir": str(captioner.run_dir.resolve()),
        "model": "best_model.keras",
        "captions": [
            {
                "path": frame["path"].iloc[i],
                "generated": generated[i],
                "references": references[i],
                **({"class": frame["class"].iloc[i]} if labelled else {}),
            }
            for i in range(len(part))
        ],
    }
    artifacts = out.parent if out else captioner.run_dir / "eval"
    artifacts.mkdir(parents=True, exist_ok=True)
    if calibrated:
        curves = {"class": (result.confidence["class"], result.class_ids == labels)}
        write_reliability_png(curves, artifacts / f"reliability_{tag}.png")
    _write_samples(report, artifacts / f"captions_{tag}.md")
    if captioner.has_attention:
        from captioning.evaluation.overlays import write_attention_png

        shown = captioner.caption(part.images[:SAMPLES], beam=width, attention=True)
        for i in range(len(shown.words)):
            name = Path(frame["path"].iloc[i]).with_suffix("").as_posix().replace("/", "_")
            write_attention_png(
                part.images[i],
                shown.words[i],
                shown.attention[i],
                artifacts / "attention" / f"{tag}_{name}.png",
            )
    if out:
        write_json(out, report)
    return report


def _per_class(result, labels: np.ndarray, classes: list[str]) -> dict:
    """The head's accuracy per class."""
    out = {}
    for k, name in enumerate(classes):
        mask = labels == k
        if mask.any():
            out[name] = {
                "n": int(mask.sum()),
                "accuracy": _round(np.mean(result.class_ids[mask] == k)),
            }
    return out


def _write_samples(report: dict, path: Path) -> None:
    """A Markdown table of the first generated captions beside their first reference."""
    lines = [
        f"# Sample captions ({report['split'] or report['data']}, "
        f"beam {report['decoding']['beam_width']})",
        "",
        "| image | generated | reference 0 |",
        "|---|---|---|",
    ]
    for entry in report["captions"][:SAMPLES]:
        lines.append(f"| `{entry['path']}` | {entry['generated']} | {entry['references'][0]} |")
    path.write_text("\n".join(lines) + "\n")
