"""Scoring runs: captioner and reference-run evaluation, baselines, reports, overlays."""
