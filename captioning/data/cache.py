"""Writing the image cache ``images.npy`` row by row, so that ``data prepare`` holds one batch of
decoded images at a time, whatever the number of images or their size (224x224 RGB is 147 kB
an image: 7.8 GB for MedNIST's 53k, which must not pass through memory at once).

``CacheWriter`` opens an ``.npy`` file memory-mapped for at most ``capacity`` rows, takes
rows in order, and on ``close`` rewrites the header for the rows written and cuts the file
there: byte for byte what ``np.save`` writes for those rows (unreadable images are skipped,
so fewer rows than files is the rule, not an error).
The result is an ordinary ``.npy`` that ``np.load(..., mmap_mode="r")`` opens.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from captioning.data.image_spec import ImageSpec

CHUNK_ROWS = 1024  # rows copied at a time by ``copy_rows``


class CacheWriter:
    """Append uint8 images of ``spec.cache_shape`` to the ``.npy`` file ``path``."""

    def __init__(self, path: Path, capacity: int, spec: ImageSpec):
        self.path, self.spec, self.count = Path(path), spec, 0
        shape = (max(capacity, 1), *spec.cache_shape)  # a 0-row map cannot be opened
        self.array = np.lib.format.open_memmap(self.path, "w+", np.uint8, shape)
        self.header_bytes = self.array.offset

    def append(self, image: np.ndarray) -> None:
        """Write the next row."""
        self.array[self.count] = image
        self.count += 1

    def close(self) -> None:
        """Flush, then make the file hold exactly the rows written."""
        self.array.flush()
        del self.array
        header = {
            "descr": "|u1",
            "fortran_order": False,
            "shape": (self.count, *self.spec.cache_shape),
        }
        with open(self.path, "r+b") as handle:
            # numpy pads the header so that the row count can grow in place: the header for
            # fewer rows has the same length, and the data stays where it is
            np.lib.format.write_array_header_1_0(handle, header)
            if handle.tell() != self.header_bytes:
                raise AssertionError(f"{self.path}: npy header length changed")
        row = int(np.prod(self.spec.cache_shape))
        os.truncate(self.path, self.header_bytes + self.count * row)


def copy_rows(source: Path, target: Path, rows: list[int], spec: ImageSpec) -> None:
    """Write ``source``'s rows ``rows`` (in that order) as the new cache ``target``, a chunk
    of ``CHUNK_ROWS`` at a time."""
    images = np.load(source, mmap_mode="r")
    writer = CacheWriter(target, len(rows), spec)
    for start in range(0, len(rows), CHUNK_ROWS):
        for image in images[rows[start : start + CHUNK_ROWS]]:
            writer.append(image)
    writer.close()
    del images
