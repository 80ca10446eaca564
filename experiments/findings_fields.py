"""The findings fields (version 2) on a prepared MedNIST, as experiments/findings_v2.md quotes
them: each field's cut point, its balance over all images and per class, the accuracy of the
best class-only predictor on the test split, and the share of test images near the cut.

    python experiments/findings_fields.py DATA

Every number comes from the pixels and the split alone (``captioning.captions.findings``: the
measurements and the cut points fitted on the training split; ``captioning.captions.card``: the
class-only predictor); nothing is trained. Writes ``experiments/results/findings_fields.json``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scope_common import record

from captioning.captions.card import class_only_accuracy
from captioning.captions.findings import (
    FIELDS,
    FITTED_QUANTILES,
    MEASURE_OF,
    findings_from_measurements,
    fit_cutpoints,
    is_diagnostic,
    measure,
)
from captioning.data.dataset import PreparedData
from captioning.utils.provenance import data_provenance

BANDS = (0.01, 0.02, 0.05)  # shares of the training 5-95% range around the cut


def near_cut(values: pd.Series, train: pd.Series, cut: float) -> dict:
    """Share of ``values`` within each band of ``cut``, the band a share of the 5-95% range
    of the training values."""
    width = float(np.subtract(*np.quantile(train, [0.95, 0.05])))
    gap = np.abs(values.to_numpy() - cut)
    return {f"{band:g}": round(float(np.mean(gap < band * width)), 6) for band in BANDS}


def field_table(frame: pd.DataFrame, measured: pd.DataFrame, cutpoints: dict) -> dict:
    """Per field: quantile, cut, balance (all and per class) of the first value, class-only
    accuracy (test) and the test images near the cut; ``frame``: one row per image with split,
    class and the field values, ``measured``: its measurements (same rows)."""
    keep = (frame["quality"] == "diagnostic").to_numpy()
    diagnostic, values_of = frame[keep], measured[keep]
    train, test = (values_of[(diagnostic["split"] == s).to_numpy()] for s in ("train", "test"))
    out = {}
    for field, values in FIELDS.items():
        cut = cutpoints["cuts"][field][0]
        first = diagnostic[field] == values[0]
        measured = MEASURE_OF[field]
        out[field] = {
            "quantile": FITTED_QUANTILES[field],
            "cut": cut,
            "first_value": values[0],
            "first_share_all": round(float(first.mean()), 6),
            "first_share_per_class": {
                str(c): round(float(s.mean()), 6) for c, s in first.groupby(diagnostic["class"])
            },
            "class_only_test": class_only_accuracy(frame, field)["test"],
            "test_near_cut": near_cut(test[measured], train[measured], cut),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure every image, fit the cut points on train, and record the fields' statistics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="prepared MedNIST folder")
    args = parser.parse_args(argv)
    data = PreparedData(args.data)
    images = np.asarray(data.images)  # (N, 64, 64) uint8, manifest order
    measured = measure(images)
    split = data.manifest["split"].to_numpy()
    cutpoints = fit_cutpoints(images[split == "train"])
    measured = measured.reset_index(drop=True)
    frame = pd.concat(
        [
            data.manifest[["split", "class"]].reset_index(drop=True),
            findings_from_measurements(measured, cutpoints).reset_index(drop=True),
        ],
        axis=1,
    )
    non_diagnostic = frame.loc[~is_diagnostic(measured), "class"].value_counts()
    result = {
        "fields": field_table(frame, measured, cutpoints),
        "non_diagnostic": {str(c): int(n) for c, n in non_diagnostic.items()},
        "cutpoints": cutpoints,
    }
    record("findings_fields", result, data_provenance(data.card))


if __name__ == "__main__":
    main()
