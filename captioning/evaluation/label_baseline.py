"""The ``classify_then_template`` caption baseline: classify the image's label columns, then
write the caption that goes with the predicted labels. No decoder: what a captioner adds
beyond reading the labels is what it scores above this.

The labels: each label column of the run's data (``data prepare --label-columns``) predicted
by its head of the classifier the captioner's encoder came from (run.json ``encoder_run``, a
classifier of label columns: ``build_multi_head_classifier``). The caption: among the train
images whose labels are the predicted ones, the caption closest to the others (the constant
baseline's rule, ``constant_caption``, within that group): the train split's own phrasing of
"an image with these labels", rather than a fixed sentence, so the baseline scores what the
labels alone can give. A predicted combination no train image has backs off to the first
columns that some train image has (the last column dropped first), and to the constant caption
when not even the first column matches. Nothing is chosen on the evaluated split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from captioning.evaluation.consensus import Pool
from captioning.utils.runs import read_json

NAME = "classify_then_template"


def label_heads(captioner, evalset) -> tuple[Path, dict] | str:
    """The encoder run and its heads (column -> classes) for ``evalset``'s label columns, or
    the one-line reason the baseline does not apply to this run."""
    if not evalset.label_columns:
        return "the run's data has no label columns (data prepare --label-columns)"
    where = captioner.run.get("encoder_run")
    if not where or not (Path(where) / "run.json").is_file():
        return f"the run's encoder run is not at hand ({where})"
    encoder = read_json(Path(where) / "run.json")
    heads = encoder.get("label_columns") or {}
    columns = [c for c in evalset.label_columns if c in heads]
    if not columns:
        return f"the encoder run {where} has no heads of the label columns"
    if encoder.get("manifest_sha256") != captioner.run.get("manifest_sha256"):
        return f"the encoder run {where} was trained on another dataset (manifest differs)"
    return Path(where), {c: heads[c] for c in columns}


def predict_labels(encoder_dir: Path, heads: dict, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per column of ``heads``, the predicted value (N,) of each image by its head."""
    from captioning.evaluation.classifier import predict_heads
    from captioning.models.classifier import load_model

    probs = predict_heads(load_model(encoder_dir / "best_model.keras"), images)
    return {c: np.asarray(heads[c], dtype=object)[np.argmax(probs[c], 1)] for c in heads}


def group_captions(pool: Pool, labels: dict[str, np.ndarray], predicted: dict, pick) -> tuple:
    """Per query, ``pick`` (a sub-``Pool`` -> its caption: ``constants.constant_caption``) of
    the train images (``pool``, true ``labels`` per column) that share its ``predicted``
    labels, backing off column by column from the last; and per query the number of columns
    matched (0: the whole pool's pick, the constant caption)."""
    columns = list(predicted)
    n = len(next(iter(predicted.values()))) if columns else 0
    found: dict[tuple, str] = {}
    captions, depth = [], np.zeros(n, np.int32)
    for i in range(n):
        wanted = tuple(predicted[c][i] for c in columns)
        for d in range(len(columns), -1, -1):
            key = wanted[:d]
            if key not in found:
                rows = np.ones(len(pool), bool)
                for c, value in zip(columns[:d], key, strict=True):
                    rows &= labels[c] == value
                if not rows.any():
                    continue
                found[key] = pick(Pool(pool.texts, pool.refs[rows], pool.vectors))
            captions.append(found[key])
            depth[i] = d
            break
    return captions, depth


def classify_then_template(captioner, evalset, pool_set, pool: Pool, pick) -> tuple | str:
    """The baseline's caption of each image of ``evalset`` and its settings (without metrics),
    or the reason it does not apply. ``pool_set``: the run's train split (its label columns
    group the captions); ``pool``: its references (``build_pool``); ``pick``: a group's caption
    (``constants.constant_caption``, passed in)."""
    found = label_heads(captioner, evalset)
    if isinstance(found, str):
        return found
    encoder_dir, heads = found
    predicted = predict_labels(encoder_dir, heads, evalset.images)
    train_labels = {c: pool_set.frame[f"label_{c}"].astype(str).to_numpy() for c in heads}
    captions, depth = group_captions(pool, train_labels, predicted, pick)
    accuracy = {}
    for c in heads:  # the heads on the evaluated images whose label is one of the head's
        truth = evalset.frame[f"label_{c}"].astype(str).to_numpy()
        known = np.isin(truth, heads[c])
        right = predicted[c][known] == truth[known]
        accuracy[c] = round(float(np.mean(right)), 6) if known.any() else None
    info = {
        "how": "per predicted label combination, the train caption of that combination's "
        "train images closest to the others (the constant baseline's rule within the group)",
        "columns": list(heads),
        "label_heads": f"{encoder_dir} (the classifier the run's encoder came from)",
        "head_accuracy": accuracy,
        "matched_columns": {str(d): int(np.sum(depth == d)) for d in range(len(heads), -1, -1)},
        "groups_used": len(set(captions)),
        "pool": f"train split ({len(pool)} images)",
    }
    return captions, info
