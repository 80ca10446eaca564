"""Template baseline: "classify, then verbalise", the simplest report generator to beat.

The pretrained classifier gives the class; one small head per finding (and one for the quality
flag) reads the field from the classifier's frozen encoder; the predicted fields are rendered
with a template of the set. The heads are linear softmax layers on the encoder's pooled vector
and its flattened spatial map, standardised with train-split statistics, trained on the train
split only (findings heads on the diagnostic images only). The rendered captions are scored
exactly like a captioner's (``captions.readback.findings_scores``: parse-back, so the baseline
and the LSTM models are compared on the same footing).

Also here: the pixel-rule oracle (``evaluate_oracle``), the ceiling every results table shows:
the true class and the findings formulas applied to the image, verbalised with the same template,
scored the same way; no model is involved, so it is 100% right by construction. And
``measurement_margin``, the share of images whose measurement lies within a noise
band of a cut point (a rough bound on what any reader of the pixels can reach).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.findings import FIELD_VALUES, FIELDS, QUALITY_VALUES
from captioning.captions.templates import load_template_set, render
from captioning.data.image_spec import with_channel_axis
from captioning.errors import DataError


def encoder_features(encoder, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(N, D) float32: the encoder's pooled vector and flattened feature map, per image.

    ``encoder``: a model taking raw pixels (B, H, W, 1) float 0..255 with outputs ``pooled``
    and ``feature_map`` (``classifier.get_layer("encoder")``). ``images``: (N, H, W) uint8."""
    parts = []
    for start in range(0, len(images), batch_size):
        batch = with_channel_axis(np.asarray(images[start : start + batch_size], np.float32))
        out = encoder(batch, training=False)
        pooled = np.asarray(out["pooled"], np.float32)
        fmap = np.asarray(out["feature_map"], np.float32).reshape(len(batch), -1)
        parts.append(np.concatenate([pooled, fmap], axis=1))
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(parts)


class FieldHeads:
    """One linear softmax head per field (``quality`` and each finding) on encoder features."""

    def __init__(self, fields: dict[str, tuple[str, ...]] | None = None):
        self.fields = {"quality": QUALITY_VALUES, **(FIELDS if fields is None else fields)}
        self.model = None
        self.mean = self.scale = None

    def fit(
        self,
        features: np.ndarray,
        truth: pd.DataFrame,
        epochs: int = 15,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> FieldHeads:
        """``truth``: one row per feature row, a column per field (strings; findings of
        non-diagnostic images '' and left out of those heads' loss)."""
        import keras

        if len(features) != len(truth):
            raise DataError(f"{len(features)} feature rows but {len(truth)} truth rows")
        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0) + 1e-3
        x = self._standardise(features)
        targets, weights = {}, {}
        for name, values in self.fields.items():
            lookup = {v: i for i, v in enumerate(values)}
            column = truth[name].to_numpy()
            known = np.array([v in lookup for v in column])
            targets[name] = np.array([lookup.get(v, 0) for v in column], np.int32)
            weights[name] = known.astype(np.float32)
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((x.shape[1],), name="features")
        outputs = {
            name: keras.layers.Dense(len(values), activation="softmax", name=name)(inputs)
            for name, values in self.fields.items()
        }
        self.model = keras.Model(inputs, outputs, name="field_heads")
        self.model.compile(
            keras.optimizers.Adam(learning_rate),
            loss={name: "sparse_categorical_crossentropy" for name in self.fields},
        )
        self.model.fit(
            x, targets, sample_weight=weights, batch_size=batch_size, epochs=epochs, verbose=0
        )
        return self

    def predict(self, features: np.ndarray) -> pd.DataFrame:
        """Predicted field values (strings); findings of images predicted non-diagnostic: ''."""
        if self.model is None:
            raise DataError("FieldHeads.predict before fit")
        probs = self.model.predict(self._standardise(features), batch_size=4096, verbose=0)
        out = {}
        for name, values in self.fields.items():
            out[name] = np.asarray(values, dtype=object)[np.argmax(probs[name], axis=1)]
        ok = out["quality"] == QUALITY_VALUES[0]
        for name in self.fields:
            if name != "quality":
                out[name] = np.where(ok, out[name], "")
        return pd.DataFrame(out).astype(object)

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale).astype(np.float32)


def verbalise(class_names, predicted: pd.DataFrame, tset, template: int = 0) -> list[str]:
    """One caption per image: template ``template`` of the set, filled with the predictions."""
    keys = ["quality", *tset.fields]
    return [
        render(c, dict(zip(keys, row, strict=True)), tset, template)
        for c, row in zip(class_names, predicted[keys].itertuples(index=False), strict=True)
    ]


def measurement_margin(values: np.ndarray, cuts, band: float) -> float:
    """Share of ``values`` within ``band`` (same units) of any cut point."""
    values = np.asarray(values, np.float64)
    if len(values) == 0 or len(cuts) == 0:
        return 0.0
    gaps = np.abs(values[:, None] - np.asarray(cuts, np.float64)[None, :]).min(axis=1)
    return float(np.mean(gaps < band))


def evaluate_baseline(
    classifier_run: str | Path,
    data_root: str | Path,
    templates: str = "findings",
    split: str = "test",
    epochs: int = 15,
    seed: int = 0,
) -> dict:
    """Fit the heads on the train split of ``data_root`` (captions built), score on ``split``."""
    from captioning.data.caption_data import caption_frame
    from captioning.data.dataset import PreparedData
    from captioning.models.classifier import load_model

    tic = time.perf_counter()
    data = PreparedData(data_root, templates)  # the images the set describes
    tset = load_template_set(templates)
    frame = caption_frame(data, templates)  # rebuilt if the set's text changed
    classifier = load_model(Path(classifier_run) / "best_model.keras")
    encoder = classifier.get_layer("encoder")
    train, test = data.split("train"), data.split(split)
    heads = FieldHeads({f: FIELD_VALUES[f] for f in tset.fields})
    heads.fit(
        encoder_features(encoder, train.images),
        frame.iloc[train.rows].reset_index(drop=True),
        epochs=epochs,
        seed=seed,
    )
    truth = frame.iloc[test.rows].reset_index(drop=True)
    predicted = heads.predict(encoder_features(encoder, test.images))
    logits = classifier.predict(with_channel_axis(np.asarray(test.images, np.float32)), verbose=0)
    class_names = [data.classes[i] for i in np.argmax(logits, axis=1)]
    captions = verbalise(class_names, predicted, tset)
    references = [list(r) for r in truth[[c for c in truth if c.startswith("reference_")]].values]
    return {
        **_score(captions, truth, tset),
        "split": split,
        "templates": tset.name,
        "heads": "linear softmax per field on frozen encoder pooled + flattened feature map",
        "epochs": epochs,
        "seed": seed,
        "seconds": round(time.perf_counter() - tic, 1),
        "captions": [
            {"path": p, "generated": g, "references": r}
            for p, g, r in zip(truth["path"], captions, references, strict=True)
        ][:20],
    }


def _score(captions, truth: pd.DataFrame, tset) -> dict:
    """Caption metrics and parse-back accuracy of ``captions`` against ``truth``'s references."""
    from captioning.captions.readback import findings_scores
    from captioning.evaluation.truth import summarize_findings
    from captioning.metrics import score_captions

    references = [list(r) for r in truth[[c for c in truth if c.startswith("reference_")]].values]
    scores = findings_scores(captions, truth, tset)
    metrics = score_captions(captions, references)
    return {
        **{k: (None if v is None else round(float(v), 6)) for k, v in metrics.items()},
        "n": len(truth),
        "caption_class_accuracy": round(float(np.mean(scores["class"])), 6),
        "findings_accuracy": summarize_findings(scores),
    }


def evaluate_oracle(data_root: str | Path, templates: str = "findings", split: str = "test"):
    """The pixel-rule oracle: the true class and the findings measured by the formulas
    (``captions.findings``), rendered with template 0 and scored like a captioner. A ceiling for
    the results tables, not a model: it reads the labels and calls the formulas."""
    from captioning.data.dataset import PreparedData
    from captioning.data.template_captions import read_captions

    data = PreparedData(data_root)
    tset = load_template_set(templates)
    truth = read_captions(data.root, tset.name).iloc[data.split(split).rows]
    truth = truth.reset_index(drop=True)
    captions = verbalise(truth["class"], truth, tset)
    return {
        **_score(captions, truth, tset),
        "split": split,
        "templates": tset.name,
        "model": "pixel-rule oracle (true class + findings formulas, template 0): a ceiling",
    }
