"""Beam width and length penalty chosen on validation, saved with the run.

After training, the chief decodes a fixed subsample of the validation split
(``decoder.tune_images`` images, drawn with the run's seed) with each beam width of
``BEAMS`` and each ``length_alpha`` of ``ALPHAS`` (greedy once: the penalty does not change
the greedy caption), scores the captions with the trainer's validation metric
(``BleuValidator``, the run's ``monitor``), and writes the best setting and the whole grid to
``decoding.json``. ``Captioner`` (``caption``, ``serve``, ``evaluate``, ``export``)
then decodes with it by default; a run without the file uses its config's ``beam_width`` and
``length_alpha``. Ties go to the cheaper setting (smaller beam, then the grid's order).

The choice is fitted on validation images, so evaluate on the test split (as ``evaluate``
does) for numbers independent of it.
"""

from __future__ import annotations

import logging

import numpy as np

from captioning.decoding import DECODING_FILE, DecodingRules
from captioning.models.captioner import encode_images
from captioning.models.classifier import load_model
from captioning.training.caption_task import BleuValidator
from captioning.utils.runs import write_json

log = logging.getLogger(__name__)

BEAMS = (1, 3, 5)
ALPHAS = (0.0, 0.7, 1.0)


def grid(length_alpha: float) -> list[tuple[int, float]]:
    """(beam width, length_alpha) pairs to try: greedy once (with the config's alpha, which
    it ignores), then every beam x alpha."""
    return [(1, length_alpha)] + [(k, a) for k in BEAMS if k > 1 for a in ALPHAS]


def tuning_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of ``limit`` of the ``n`` validation images (all when fewer)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def choose_search(run, captions, targets, best_model) -> dict | None:
    """On the chief, with ``decoder.tune_search``: score the grid on the validation subsample
    with the saved ``best_model`` and write ``decoding.json``; returns its body (None when
    not run)."""
    config, dec = run.config, run.config.decoder
    if not run.chief or not dec.tune_search or not len(captions.val.images):
        return None
    model = load_model(best_model)
    rows = tuning_rows(len(captions.val.images), dec.tune_images, config.train.seed)
    features = encode_images(model.get_layer("encoder"), captions.val.images[rows])
    truth = None if captions.truth is None else captions.truth.iloc[rows]
    validator = BleuValidator(
        lambda _: features,
        [targets.val_references[i] for i in rows],
        targets.vocab,
        dec.max_length,
        truth=truth,
        template_set=captions.template_set,
        rules=DecodingRules.from_settings(vars(dec)),
        cider=config.monitor == "cider",
    )
    scored = []
    for width, alpha in grid(dec.length_alpha):
        metrics = validator.score(model, width, alpha)
        scored.append({"beam_width": width, "length_alpha": alpha, "metrics": metrics})
        log.info(
            "search beam %d alpha %.1f: %s %.4f",
            width,
            alpha,
            config.monitor,
            metrics[config.monitor],
        )
    best = max(scored, key=lambda s: s["metrics"][config.monitor])  # first of the best: cheaper
    body = {
        "beam_width": best["beam_width"],
        "length_alpha": best["length_alpha"],
        "monitor": config.monitor,
        "split": "val",
        "images": len(rows),
        "seed": config.train.seed,
        "grid": scored,
    }
    write_json(run.run_dir / DECODING_FILE, body)
    return body
