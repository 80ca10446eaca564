"""The files an evaluation writes beside its report: a Markdown table of sample captions,
attention overlays and, for a calibrated run, a reliability diagram. A class-organised
(templated) set shows one or two images per class; a free-text set its first images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from captioning.evaluation.overlays import write_attention_png
from captioning.metrics.calibration import write_reliability_png

SAMPLES = 6  # free-text sets: images in the Markdown table and with attention overlays


def write_artifacts(captioner, evalset, report: dict, curves: dict | None, folder: Path) -> None:
    """Everything beside the report in ``folder``, named with the set's tag."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = evalset.tag
    if curves is not None:
        write_reliability_png(curves, folder / f"reliability_{tag}.png")
    samples = write_first_samples if evalset.free_text else write_samples
    samples(report, folder / f"captions_{tag}.md")
    if captioner.has_attention:
        write_overlays(captioner, evalset, report["decoding"]["beam_width"], folder / "attention")


def _title(report: dict) -> str:
    where = report["split"] or report["data"]
    return f"# Sample captions ({where}, beam {report['decoding']['beam_width']})"


def write_samples(report: dict, path: Path, per_class: int = 2) -> None:
    """A Markdown table of generated captions beside reference 0, a few per class, then the
    model's scores beside its baselines'."""
    lines = [
        _title(report),
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
    path.write_text("\n".join(lines + baseline_lines(report)) + "\n")


def write_first_samples(report: dict, path: Path) -> None:
    """A Markdown table of the first generated captions beside their first reference, then
    the model's scores beside its baselines'."""
    lines = [_title(report), "", "| image | generated | reference 0 |", "|---|---|---|"]
    for entry in report["captions"][:SAMPLES]:
        lines.append(f"| `{entry['path']}` | {entry['generated']} | {entry['references'][0]} |")
    path.write_text("\n".join(lines + baseline_lines(report)) + "\n")


def baseline_lines(report: dict) -> list[str]:
    """Markdown: the model's corpus scores and each scored baseline's; one line per baseline
    not computed, with why; nothing without a ``baselines`` block."""
    blocks = report.get("baselines") or {}
    if "not_computed" in blocks or not blocks:
        return []
    keys = ("bleu4", "meteor", "rouge_l", "cider")

    def cells(values: dict) -> str:
        return " | ".join("–" if values.get(k) is None else f"{values[k]:.3f}" for k in keys)

    lines = ["", "| captions | BLEU-4 | METEOR | ROUGE-L | CIDEr-D |", "|---|---:|---:|---:|---:|"]
    lines.append(f"| model | {cells(report)} |")
    skipped = []
    for name, block in blocks.items():
        if isinstance(block, dict) and "not_computed" in block:
            skipped.append(f"- baseline `{name}` not computed: {block['not_computed']}")
        elif isinstance(block, dict) and "bleu4" in block:
            lines.append(f"| baseline `{name}` | {cells(block)} |")
    return lines + (["", *skipped] if skipped else [])


def write_overlays(captioner, evalset, beam_width: int, folder: Path) -> None:
    """Attention overlays: the first image of each class (``<tag>_<class>.png``), or of a
    free-text set its first images (named by their path)."""
    frame = evalset.frame
    if evalset.free_text:
        shown = list(range(min(SAMPLES, len(evalset))))
        names = [
            Path(frame["path"].iloc[i]).with_suffix("").as_posix().replace("/", "_") for i in shown
        ]
    else:
        true_class = frame["class"].to_numpy()
        present = [c for c in captioner.classes if (true_class == c).any()]
        shown = [int(np.flatnonzero(true_class == c)[0]) for c in present]
        names = present
    drawn = captioner.caption(evalset.images[shown], beam=beam_width, attention=True)
    for j, (i, name) in enumerate(zip(shown, names, strict=True)):
        write_attention_png(
            evalset.images[i],
            drawn.words[j],
            drawn.attention[j],
            folder / f"{evalset.tag}_{name}.png",
        )
