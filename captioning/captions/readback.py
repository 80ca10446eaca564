"""What parse-back reads from generated captions, scored against the truth: per image, whether
the class and each finding are right. Validation during training and ``captioning evaluate``
both score captions with it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from captioning.captions.findings import QUALITY_VALUES
from captioning.captions.parse import parse_caption


def findings_scores(generated: list[str], truth: pd.DataFrame, tset) -> dict:
    """Per-image correctness of the class and of each field, read back from the captions.

    ``truth``: columns class, quality and the findings. Returns {name: bool array or None}:
    None marks images where the field is not scored (a non-diagnostic image's findings)."""
    parsed = [parse_caption(text, tset) for text in generated]
    diagnostic = (truth["quality"] == QUALITY_VALUES[0]).to_numpy()
    out = {
        "class": np.array([p.class_name == c for p, c in zip(parsed, truth["class"], strict=True)]),
        "quality": np.array(
            [p.quality == q for p, q in zip(parsed, truth["quality"], strict=True)]
        ),
    }
    for field in tset.fields:
        right = np.array(
            [p.fields.get(field) == v for p, v in zip(parsed, truth[field], strict=True)]
        )
        out[field] = np.where(diagnostic, right, False), diagnostic
    out["all"] = np.array(
        [
            p.matches(c, dict(r._asdict()))
            for p, c, r in zip(
                parsed,
                truth["class"],
                truth[["quality", *tset.fields]].itertuples(index=False),
                strict=True,
            )
        ]
    )
    return out
