"""Acquisition fields: how an image was placed in the frame, with truth that is exact by
construction. The stored image is transformed by a seeded draw, and the draw is the truth.

Two fields, each a function of the draw alone (never of the pixels or the class):

- ``orientation``: ``upright`` (as stored), ``rotated_90_cw`` (``np.rot90(x, k=-1)``),
  ``rotated_180`` (``np.rot90(x, k=2)``), ``rotated_90_ccw`` (``np.rot90(x, k=1)``);
- ``position``: ``centred``, or the content moved ``left`` / ``right`` / ``up`` / ``down`` by
  a quarter of the side (``round(side / 4)``: 16 pixels at 64); ``up`` moves the content
  towards row 0. The uncovered strip takes the image's minimum grey level (its background).

The image is rotated first, then shifted. Draws are uniform (each orientation 1/4 of the
images, each position 1/5) and seeded per image: the value of an image is a function of
``ACQUISITION_SEED`` and its path only (sha256), so it is the same on every run and machine,
whatever the order or the split of the images. A set that states only one of the fields
leaves the other at its identity value (``upright`` or ``centred``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

ACQUISITION_SEED = 0
ORIENTATIONS = ("upright", "rotated_90_cw", "rotated_180", "rotated_90_ccw")
POSITIONS = ("centred", "left", "right", "up", "down")
# Field -> its values; the first value of each is the identity (the image as stored).
ACQUISITION_FIELDS: dict[str, tuple[str, ...]] = {
    "orientation": ORIENTATIONS,
    "position": POSITIONS,
}
ROT90_K = {"upright": 0, "rotated_90_cw": -1, "rotated_180": 2, "rotated_90_ccw": 1}
_CHUNK = 2048  # images per batch when transforming: ~2048 * 64 * 64 bytes (8 MB) at a time


def acquires(fields) -> bool:
    """Whether a set stating ``fields`` reads transformed images (it states an acquisition
    field)."""
    return any(f in ACQUISITION_FIELDS for f in fields)


def shift_pixels(side: int) -> int:
    """How far a shift moves the content: a quarter of the side, rounded (16 at 64)."""
    return round(side / 4)


def rotate(image: np.ndarray, orientation: str) -> np.ndarray:
    """``image`` (..., H, W) turned as ``orientation`` says (``np.rot90`` on the last two
    axes: ``rotated_90_cw`` is ``k=-1``)."""
    return np.rot90(image, k=ROT90_K[orientation], axes=(-2, -1))


def shift(image: np.ndarray, position: str) -> np.ndarray:
    """``image`` (..., H, W) with its content moved a quarter of the side towards
    ``position`` (``up``: towards row 0); the uncovered strip is filled with each image's
    minimum grey level. ``centred`` returns a copy."""
    out = np.array(image, copy=True)
    if position == "centred":
        return out
    height, width = image.shape[-2:]
    fill = image.min(axis=(-2, -1), keepdims=True)  # (..., 1, 1): each image's background
    dy, dx = shift_pixels(height), shift_pixels(width)
    if position == "left":
        out[..., :, : width - dx] = image[..., :, dx:]
        out[..., :, width - dx :] = fill
    elif position == "right":
        out[..., :, dx:] = image[..., :, : width - dx]
        out[..., :, :dx] = fill
    elif position == "up":
        out[..., : height - dy, :] = image[..., dy:, :]
        out[..., height - dy :, :] = fill
    elif position == "down":
        out[..., dy:, :] = image[..., : height - dy, :]
        out[..., :dy, :] = fill
    else:
        raise ValueError(f"position {position!r}: expected one of {POSITIONS}")
    return out


def transform(image: np.ndarray, orientation: str, position: str) -> np.ndarray:
    """Rotate, then shift: the image (..., H, W) as the acquisition fields say."""
    return shift(rotate(image, orientation), position)


def transform_images(images, draws: pd.DataFrame, out: np.ndarray | None = None) -> np.ndarray:
    """Every image of ``images`` (N, H, W) or RGB (N, H, W, 3) uint8 (a memory map is read in
    chunks) transformed by its row of ``draws`` (columns orientation, position; RGB: each
    channel alike); written into ``out`` (same shape) when given (e.g. a memory-mapped file),
    else into a new array. Returns ``out``."""
    if out is None:
        out = np.empty(images.shape, images.dtype)
    orientation = draws["orientation"].to_numpy()
    position = draws["position"].to_numpy()
    for start in range(0, len(images), _CHUNK):
        part = slice(start, start + _CHUNK)
        x = np.asarray(images[part])  # (n, H, W), or (n, H, W, 3) seen as (n, 3, H, W)
        x = np.moveaxis(x, -1, 1) if x.ndim == 4 else x  # the transforms turn the last two axes
        y = np.empty_like(x)
        for o in ORIENTATIONS:
            for p in POSITIONS:
                rows = np.flatnonzero((orientation[part] == o) & (position[part] == p))
                if len(rows):
                    y[rows] = transform(x[rows], o, p)
        out[part] = np.moveaxis(y, 1, -1) if y.ndim == 4 else y
    return out


def draw(paths, fields, seed: int = ACQUISITION_SEED) -> pd.DataFrame:
    """The seeded acquisition of each image: columns orientation and position, one row per
    path. Uniform over the values of each field the set states (``fields``); a field it does
    not state is its identity value. Two images with the same path get the same draw."""
    keys = list(paths)
    a = np.empty(len(keys), np.uint64)
    b = np.empty(len(keys), np.uint64)
    for i, path in enumerate(keys):
        digest = hashlib.sha256(f"{seed}\0{path}".encode()).digest()
        a[i] = int.from_bytes(digest[:8], "little")
        b[i] = int.from_bytes(digest[8:16], "little")
    values = {}
    for name, source in (("orientation", a), ("position", b)):
        options = np.asarray(ACQUISITION_FIELDS[name], dtype=object)
        if name in fields:
            values[name] = options[(source % np.uint64(len(options))).astype(np.int64)]
        else:
            values[name] = np.full(len(keys), options[0], dtype=object)
    return pd.DataFrame(values)


def acquire(images, paths, fields, seed: int = ACQUISITION_SEED):
    """``images`` (N, H, W) as acquired for a set stating ``fields``: the transformed images
    (a new array) and the draws (``draw``)."""
    draws = draw(paths, fields, seed)
    return transform_images(images, draws), draws
