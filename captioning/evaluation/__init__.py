"""Scoring runs: ``evaluate_run`` (the one entry: a classifier's or a captioner's report),
captioner reports with pluggable truth scorers, baselines, the quickstart report, overlays.

The metrics every report and table names are listed once in ``captioning.metrics.registry``.
"""

from __future__ import annotations

from pathlib import Path


def evaluate_run(
    run_dir: Path,
    data: str | None = None,
    split: str = "test",
    out: Path | None = None,
    beam: int | None = None,
    lexicon: str | None = None,
) -> dict:
    """Evaluate the best model of ``run_dir`` on ``data`` (a labelled folder or archive) or
    its own ``split``; write the report to ``out`` if given. Captioner runs (``run.json`` kind
    ``captioner``) get the caption report of ``captioning.evaluation.captioner``, classifier
    runs that of ``captioning.evaluation.classifier``; ``beam`` and ``lexicon`` (the lexicon of
    the label columns) apply to captioners only.
    The modules load on first use: TensorFlow is not imported with the package."""
    from captioning.utils.runs import read_json

    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json")
    if run.get("kind") == "captioner":
        from captioning.evaluation.captioner import evaluate_captioner_run

        return evaluate_captioner_run(
            run_dir, data=data, split=split, out=out, beam=beam, lexicon=lexicon
        )
    from captioning.evaluation.classifier import evaluate_classifier_run

    return evaluate_classifier_run(run_dir, run, data=data, split=split, out=out)
