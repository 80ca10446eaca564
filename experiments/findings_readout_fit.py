"""How exactly a linear read-out of the intensity statistics recovers each finding.

    python experiments/findings_readout_fit.py CLASSIFIER_RUN DATA_ROOT OUT_JSON

Fits the captioner's findings read-out (``LSTMDecoder.fit_readout``: least squares from the
510 cumulative-histogram shares to each finding's distance from its cut point, in hundredths of
the measurement's standard deviation) on the training split, for several ridge strengths, and
reports the fit's RMSE on train and the share of test images whose predicted distance has the
right sign, i.e. the finding a perfect threshold at 0 would state. This is the ceiling of what
the decoder can read from the read-out. The encoder (classifier run) only serves the shapes: the
statistics do not depend on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from captioning.captions.findings import FIELDS, MEASURE_OF, cut_distances, is_diagnostic, measure
from captioning.data.dataset import PreparedData
from captioning.data.template_captions import load_cutpoints
from captioning.models.captioner import encode_images
from captioning.models.classifier import load_model
from captioning.models.decoders import build_decoder

RIDGES = (1e-3, 1e-6, 1e-8, 1e-10)


def main(classifier_run: str, root: str, out: str) -> None:
    data = PreparedData(root)
    cuts = load_cutpoints(root)
    encoder = load_model(Path(classifier_run) / "best_model.keras").get_layer("encoder")
    train, test = data.split("train"), data.split("test")
    stats = {
        name: encode_images(encoder, p.images) for name, p in (("train", train), ("test", test))
    }
    fields = list(FIELDS)
    targets = cut_distances(measure(train.images), cuts, fields)
    m = measure(test.images)
    diagnostic = is_diagnostic(m)
    rows = []
    for ridge in RIDGES:
        decoder = build_decoder("attention", 8, embed_dim=4, hidden=4, attention_dim=4, readout=3)
        decoder(
            {**{k: v[:1] for k, v in stats["train"].items()}, "tokens": np.zeros((1, 2), "int32")}
        )
        rmse = decoder.fit_readout(stats["train"]["statistics"], targets, ridge)
        predicted = np.asarray(decoder.readout(stats["test"]["statistics"]))
        right = {}
        for i, field in enumerate(fields):
            side = m[MEASURE_OF[field]].to_numpy() >= cuts["cuts"][field][0]
            right[field] = round(float(((predicted[:, i] >= 0) == side)[diagnostic].mean()), 6)
        rows.append(
            {"ridge_times_n": ridge, "train_rmse": round(rmse, 6), "test_sign_right": right}
        )
        print(rows[-1], flush=True)
    result = {
        "what": "findings read-out fit: train RMSE (unit: 1% of a measurement's std) and the "
        "share of diagnostic test images whose predicted distance has the right sign",
        "command": "python experiments/findings_readout_fit.py CLASSIFIER_RUN DATA_ROOT OUT_JSON",
        "data_manifest_sha256": data.manifest_sha256,
        "n_train": len(train),
        "n_test_diagnostic": int(diagnostic.sum()),
        "rows": rows,
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
