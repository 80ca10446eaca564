"""Attention overlays: the image, then one panel per generated word with where the decoder
looked (``captioning caption --attention-dir`` and ``captioning evaluate`` write them)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_attention_png(image: np.ndarray, words: list[str], attention: np.ndarray, path: Path):
    """The image, then one panel per word with its attention map (S x S, upsampled to the
    image) overlaid in colour. ``attention``: (max_length, P) with P = S * S."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = math.isqrt(attention.shape[-1])
    words = [*words, "<end>"][: len(attention)]
    panels = len(words) + 1
    cols = min(panels, 6)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes.flat[0].set_title("image", fontsize=8)
    extent = (0, image.shape[1], image.shape[0], 0)
    for ax, word, alpha in zip(axes.flat[1:], words, attention, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(alpha.reshape(side, side), cmap="jet", alpha=0.45, extent=extent)
        ax.set_title(word, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
