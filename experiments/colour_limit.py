"""Where a grey run's colour limit sits (``captioning.scope.colour.COLOUR_LIMIT``): the colour
spread of generated grey files that must pass, and of colour photographs that should not.

    python experiments/colour_limit.py --data MEDNIST_PREPARED

- Grey that must pass: 600 MedNIST test images enlarged to 64-1,024 px, half of them tinted
  (per-channel gains 0.8-1 and offsets 0-20 levels), stored as RGB JPEG at quality 50-95.
- Colour that should be refused: 600 random square crops (48 px to the short side) of the
  colour sample photographs of ``scope_rule.py``, JPEG quality 90.
Every file goes through ``open_image`` as ``caption`` reads it. Reports the quantiles of each
set's spread and the share above the limit. Design sets only: no MedPix image is read.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from scope_common import record
from scope_rule import SKIMAGE_PHOTOS, encoded

from captioning.data.images import open_image
from captioning.scope.colour import COLOUR_LIMIT

QUANTILES = (0.0, 0.05, 0.5, 0.95, 0.99, 1.0)


def tinted_grey(data, rng, n: int = 600) -> np.ndarray:
    """Spreads of MedNIST test images as (tinted) grey RGB JPEGs."""
    test = data.split("test")
    out = []
    for i in range(n):
        grey = test.images[int(rng.integers(len(test)))]
        side = int(rng.choice([64, 256, 512, 1024]))
        grey = np.asarray(Image.fromarray(grey).resize((side, side), Image.BILINEAR), np.float64)
        tint = (rng.uniform(0.8, 1.0, 3), rng.uniform(0, 20, 3))
        gains, offsets = tint if i % 2 else (np.ones(3), np.zeros(3))
        rgb = np.clip(grey[..., None] * gains + offsets, 0, 255).round().astype(np.uint8)
        quality = int(rng.choice([50, 75, 90, 95]))
        out.append(open_image(encoded(rgb, "JPEG", quality)).colour)
    return np.array(out)


def colour_crops(rng, n: int = 600) -> np.ndarray:
    """Spreads of random square crops of the colour sample photographs."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    photos = [p[..., :3] for p in photos + list(load_sample_images().images) if p.ndim == 3]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(48, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(open_image(encoded(photo[y : y + side, x : x + side], "JPEG", 90)).colour)
    return np.array(out)


def summary(spreads: np.ndarray) -> dict:
    return {
        "files": len(spreads),
        "quantiles": {str(q): round(float(np.quantile(spreads, q)), 3) for q in QUANTILES},
        "above_limit": round(float((spreads > COLOUR_LIMIT).mean()), 4),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a prepared MedNIST folder")
    args = parser.parse_args(argv)
    from captioning.data.dataset import PreparedData

    data, rng = PreparedData(args.data), np.random.default_rng(0)
    result = {
        "limit": COLOUR_LIMIT,
        "grey_and_tinted_grey_jpeg": summary(tinted_grey(data, rng)),
        "colour_photograph_crops": summary(colour_crops(rng)),
    }
    print(result)
    record(
        "colour_limit",
        result,
        {"mednist": data.root.name, "manifest_sha256": data.manifest_sha256},
    )


if __name__ == "__main__":
    main()
