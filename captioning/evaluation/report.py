"""The quickstart's report: one Markdown page, built only from what the runs wrote to disk
(data card, run metadata, evaluation JSON, PNGs), so every number in it can be traced to a
file. Figures are copied next to it into ``report/`` so the page can be moved as a folder."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from captioning.captions import load_template_set, render
from captioning.metrics import metric, score_captions
from captioning.utils.runs import package_versions


def _load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def class_only_baseline(report: dict) -> dict:
    """Scores of the captions a class-only model would write: the ``class`` template set's
    caption for the *true* class (an upper bound of any class-only captioner), against the
    same references the captioner is scored on."""
    tset = load_template_set("class")
    hyps = [render(c["class"], {}, tset, 0) for c in report["captions"]]
    return score_captions(hyps, [c["references"] for c in report["captions"]])


def template_share_lines(report: dict) -> list[str]:
    """A line saying how often the captioner wrote each template of its set (from the
    evaluation's ``template_share``), then a blank line; nothing for an older evaluation."""
    share = report.get("template_share")
    if not share:
        return []
    phrasing = report.get("decoding", {}).get("phrasing", "best")
    parts = [
        f"{'no template' if k == 'none' else 'template ' + k} {_pct(v)}" for k, v in share.items()
    ]
    return [f"Phrasing of the test captions ({phrasing}): " + ", ".join(parts) + ".", ""]


def _figure(src: Path, folder: Path, name: str) -> str | None:
    """Copy ``src`` into the report folder; return its relative link (None if missing)."""
    if not src.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, folder / name)
    return f"{folder.name}/{name}"


def _pct(value) -> str:
    return metric("accuracy").format(value, missing="n/a")


# the caption metrics of the results table, with the report's own precision
TABLE_METRICS = ("bleu1", "bleu4", "cider", "rouge_l")
TABLE_DIGITS = 3


def _scores(values: dict) -> str:
    """The table's caption-metric cells of ``values`` (a report or a baseline's scores)."""
    return " | ".join(metric(k).format(values[k], TABLE_DIGITS) for k in TABLE_METRICS)


def content_lines(report: dict) -> list[str]:
    """The label columns the captions state (the evaluation's ``content``), one row per
    column, beside the same reading of the references (the ceiling); nothing without it."""
    content = report.get("content")
    if not content:
        return []
    stats = ("stated", "right_when_stated")
    labels = [metric(f"content.{s}").label for s in stats]
    lexicon = (report.get("content_lexicon") or {}).get("name", "?")
    lines = [
        "## What the captions state of the label columns",
        "",
        f"Read with the lexicon `{lexicon}`; the references read the same way give the ceiling.",
        "",
        "| column | images | " + " | ".join(labels + [f"ceiling: {x}" for x in labels]) + " |",
        "|---|" + "---:|" * (1 + 2 * len(stats)),
    ]
    for name, entry in content.items():
        cells = [metric(f"content.{name}.{s}").format(entry[s]) for s in stats]
        cells += [metric(f"content.{name}.{s}").format(entry["ceiling"][s]) for s in stats]
        lines.append(f"| {name} | {entry['n']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def header_lines(card: dict, timings: dict[str, float], command: str) -> list[str]:
    """Title, date, command, versions and data; then the time per stage."""
    versions = package_versions()
    return [
        "# captioning quickstart report",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; command: `{command}`",
        f"- TensorFlow {versions['tensorflow']}, Keras {versions['keras']}, "
        f"Python {versions['python']}, {versions['platform']}",
        f"- data: {card['n_images']:,} images, {len(card['classes'])} classes, split "
        f"{card['split_sizes']} (seed {card['seed']}, grouped by content md5), manifest sha256 "
        f"`{card['manifest_sha256'][:12]}`",
        "",
        "## Time per stage (seconds)",
        "",
        "| " + " | ".join(timings) + " | total |",
        "|" + "---:|" * (len(timings) + 1),
        "| "
        + " | ".join(f"{v:.0f}" for v in timings.values())
        + f" | {sum(timings.values()):.0f} |",
        "",
    ]


def results_lines(classifier: Path, captioner: Path) -> list[str]:
    """The results on the test split: the classifier, the class-only upper bound and the
    captioner, one row each, with the protocol they were measured under."""
    clf = _load(classifier / "eval" / "test.json")
    clf_run = _load(classifier / "metrics.json")
    cap = _load(captioner / "eval" / "test.json")
    cap_run = _load(captioner / "run.json")
    cap_metrics = _load(captioner / "metrics.json")
    monitor = _load(captioner / "config.json").get("monitor", "bleu4")
    fields = [f for f in cap["findings_accuracy"] if f not in ("quality", "all")]
    labels = [metric(k).label for k in TABLE_METRICS]
    fields_labels = [f"{metric(f'findings_accuracy.{f}').label} acc." for f in fields]
    blank = len(TABLE_METRICS) + len(fields)
    return [
        "## Results on the test split",
        "",
        f"Protocol: test split ({cap['n']:,} images), best checkpoint by validation accuracy "
        f"(classifier) and validation `{monitor}` of greedy captions (captioner; the better of "
        f"its two stages), beam {cap['decoding']['beam_width']}, "
        "seed 0, one run. BLEU as coco-caption defines it; CIDEr is CIDEr-D.",
        "",
        "| model | class accuracy | " + " | ".join(labels + fields_labels) + " |",
        "|---|" + "---:|" * (1 + blank),
        f"| classifier (ours, {clf_run['parameters']:,} parameters) | {_pct(clf['accuracy'])} "
        f"({clf['error_count']} errors) |" + " |" * blank,
        "| class-only captions (true class; upper bound) | 100.00% | "
        f"{_scores(class_only_baseline(cap))} |" + " – |" * len(fields),
        f"| captioner ({cap_run.get('decoder', 'attention')}, "
        f"{cap_metrics.get('chosen_stage', 'stage2')} chosen) | "
        f"{_pct(cap['caption_class_accuracy'])} (from captions) | {_scores(cap)} | "
        + " | ".join(_pct(cap["findings_accuracy"][f]) for f in fields)
        + " |",
        "",
        *template_share_lines(cap),
        "The seed notebook's model and the template baseline are compared in "
        "`experiments/README.md` (they are not trained by the quickstart, to keep it short).",
        "",
    ]


def figure_lines(classifier: Path, captioner: Path, figures: Path) -> list[str]:
    """The training curves, the confusion matrix and the attention overlays, copied into
    ``figures`` and linked; a figure that was not written is left out."""
    lines = ["## Figures", ""]
    for title, src, name in [
        ("Classifier training curves", classifier / "curves.png", "classifier_curves.png"),
        (
            "Classifier confusion matrix (test)",
            classifier / "eval" / "confusion_test.png",
            "confusion_test.png",
        ),
        (
            "Captioner stage 1 (frozen encoder) curves",
            captioner / "stage1" / "curves.png",
            "captioner_stage1_curves.png",
        ),
        (
            "Captioner stage 2 (end to end) curves",
            captioner / "stage2" / "curves.png",
            "captioner_stage2_curves.png",
        ),
    ]:
        link = _figure(src, figures, name)
        if link:
            lines += [f"### {title}", "", f"![{title}]({link})", ""]
    overlays = sorted((captioner / "eval" / "attention").glob("test_*.png"))
    if overlays:
        lines += ["### Attention overlays (one test image per class)", ""]
        for overlay in overlays:
            lines.append(f"![{overlay.stem}]({_figure(overlay, figures, overlay.name)})")
        lines.append("")
    return lines


def write_report(
    path: Path,
    *,
    data: Path,
    classifier: Path,
    captioner: Path,
    timings: dict[str, float],
    command: str,
) -> Path:
    """Write ``path`` (Markdown) and its figures (into ``report/`` beside it); return ``path``."""
    path = Path(path)
    lines = [
        *header_lines(_load(data / "data_card.json"), timings, command),
        *results_lines(classifier, captioner),
        *content_lines(_load(captioner / "eval" / "test.json")),
        *figure_lines(classifier, captioner, path.parent / "report"),
    ]
    samples = captioner / "eval" / "captions_test.md"
    if samples.exists():
        body = samples.read_text().split("\n", 1)[1]  # drop its own title
        lines += ["## Sample captions per class", "", body.strip(), ""]
    path.write_text("\n".join(lines) + "\n")
    return path
