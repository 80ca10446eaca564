"""What ``caption --json`` and ``POST /caption`` answer per image: one JSON-ready entry per
input (a caption with its class, confidences and findings; an out-of-scope answer with its
reason; or the one-line problem that kept a file from being read), from a loaded
``captioning.inference.Captioner``."""

from __future__ import annotations

import numpy as np

from captioning.data.images import Decoded
from captioning.inference import Captioner


def caption_entries(
    captioner: Captioner,
    inputs: list[tuple[str, Decoded | np.ndarray | str]],
    beam: int | None = None,
    keep_out_of_scope: bool = False,
    attention: bool = False,
) -> list[dict]:
    """One JSON-ready entry per input, in order. ``inputs``: (name, the decoded file
    (``open_image``: its pixels and colour) or a bare uint8 image of the run's spec, or the
    one-line problem that kept it from being read). A problem becomes
    ``{"path", "error"}``; the others are captioned in one batch. An out-of-scope image gets
    ``in_scope: false``, its score, the threshold and ``out_of_scope_reason`` (one line) instead of
    a caption (an answer, not an
    error) unless ``keep_out_of_scope``. Every captioned entry has ``findings`` (field -> the
    stated value or None; ``{}`` for a run whose set states no fields) and, with a calibration,
    ``confidence``. With ``attention`` (attention decoders only), each
    captioned entry also carries ``"attention": {"words": [...], "maps": (L, P) array}``
    (not JSON-ready: the caller renders or converts it)."""
    entries = [
        {"path": name, "error": item} if isinstance(item, str) else {"path": name}
        for name, item in inputs
    ]
    good = [i for i, (_, item) in enumerate(inputs) if not isinstance(item, str)]
    if not good:
        return entries
    want_attention = attention and captioner.has_attention
    files = [inputs[i][1] for i in good]
    images = np.stack([f.pixels if isinstance(f, Decoded) else f for f in files])
    colour = [f.colour if isinstance(f, Decoded) else 0.0 for f in files]
    result = captioner.caption(images, beam=beam, attention=want_attention, colour=colour)
    for j, i in enumerate(good):
        entry = entries[i]
        if result.in_scope is not None:
            entry["in_scope"] = bool(result.in_scope[j])
            entry["ood_score"] = round(float(result.ood_score[j]), 6)
            if not entry["in_scope"]:
                entry["threshold"] = round(captioner.scope.threshold, 6)
                entry["out_of_scope_reason"] = result.out_of_scope_reason[j]
                if not keep_out_of_scope:
                    continue
        entry.update(
            caption=result.texts[j],
            **{"class": captioner.classes[int(result.class_ids[j])]},
            prob=round(float(result.probs[j]), 6),
        )
        if captioner.calibration is not None:
            entry["confidence"] = {
                name: None if np.isnan(p[j]) else round(float(p[j]), 6)
                for name, p in result.confidence.items()
            }
        entry["findings"] = result.findings[j]
        if want_attention:
            entry["attention"] = {"words": result.words[j], "maps": result.attention[j]}
    return entries
