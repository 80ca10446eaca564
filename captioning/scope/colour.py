"""Colour as out-of-scope evidence for a run trained on grey images.

A grey run's input has lost the file's colour, so a colour photograph reaches its encoder as a
grey picture that may look like a radiograph. The file's ``colour_spread``
(``captioning.data.images``: the colour no tint of its grey level explains) is measured when it
is decoded; a grey run (its ``ImageSpec`` has one channel) refuses an image whose spread is
above ``COLOUR_LIMIT``. Not fitted per run: the run's own files are not kept (the prepared cache
holds the grey pixels only); an RGB run, which sees colour, is never judged by it.
"""

from __future__ import annotations

import numpy as np

# levels 0..255: above every grey or tinted-grey image generated as a design set (MedNIST
# test images enlarged to 64-1,024 px, per-channel gains 0.8-1 and offsets 0-20, JPEG quality
# 50-95: at most 2.6) and below 94% of colour photographs' crops; experiments/colour_limit.py,
# experiments/scope.md
COLOUR_LIMIT = 4.0


def colour_refused(colour, channels: int) -> np.ndarray:
    """(N,) bool: the images a run of ``channels`` input channels refuses for their colour
    (``colour``: (N,) ``colour_spread`` of each file; 0 where there was no file)."""
    colour = np.asarray(colour, np.float64)
    return colour > COLOUR_LIMIT if channels == 1 else np.zeros(len(colour), bool)


# the one line of an image refused for its colour, around its spread (1 decimal)
REASON_PARTS = (
    "it is a colour image (",
    f" levels of colour beyond a tint of its grey; the limit is {COLOUR_LIMIT:g}) "
    "and the model was trained on grey images",
)


def colour_reason(spread: float) -> str:
    """The one line of an image refused for its colour."""
    return f"{REASON_PARTS[0]}{spread:.1f}{REASON_PARTS[1]}"
