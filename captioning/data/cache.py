"""Writing the image cache ``images.npy`` row by row, so that ``data prepare`` holds one batch of
decoded images at a time, whatever the number of images or their size (224x224 RGB is 147 kB
an image: 7.8 GB for MedNIST's 53k, which must not pass through memory at once).

``CacheWriter`` writes an ``.npy`` header for at most ``capacity`` rows, takes rows in order,
and on ``close`` rewrites the header for the rows written: byte for byte what ``np.save``
writes for those rows (unreadable images are skipped, so fewer rows than files is the rule,
not an error).
The result is an ordinary ``.npy`` that ``np.load(..., mmap_mode="r")`` opens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from captioning.data.image_spec import ImageSpec

CHUNK_ROWS = 1024  # images decoded per batch by ``folder.decode_files``


class CacheWriter:
    """Append uint8 images of ``spec.cache_shape`` to the ``.npy`` file ``path``.

    Rows are written with plain file writes, not through a memory map: the pages of a map
    written to count in the process's resident memory until the kernel writes them back, so
    a map would make ``prepare``'s memory look like the cache's size."""

    def __init__(self, path: Path, capacity: int, spec: ImageSpec):
        self.path, self.spec, self.count = Path(path), spec, 0
        self.handle = open(self.path, "wb")  # noqa: SIM115  closed by ``close``
        np.lib.format.write_array_header_1_0(self.handle, self._header(capacity))
        self.header_bytes = self.handle.tell()

    def _header(self, rows: int) -> dict:
        return {"descr": "|u1", "fortran_order": False, "shape": (rows, *self.spec.cache_shape)}

    def append(self, image: np.ndarray) -> None:
        """Write the next row."""
        if image.shape != self.spec.cache_shape or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: row {image.dtype} {image.shape}, not the cache's")
        self.handle.write(np.ascontiguousarray(image).tobytes())
        self.count += 1

    def close(self) -> None:
        """Rewrite the header for the rows written."""
        # numpy pads the header so that the row count can grow in place: the header for fewer
        # rows has the same length, and the rows stay where they are
        self.handle.seek(0)
        np.lib.format.write_array_header_1_0(self.handle, self._header(self.count))
        if self.handle.tell() != self.header_bytes:
            raise AssertionError(f"{self.path}: npy header length changed")
        self.handle.close()


def copy_rows(source: Path, target: Path, rows: list[int], spec: ImageSpec) -> None:
    """Write the cache ``source``'s rows ``rows`` (in that order) as the new cache ``target``,
    reading one row at a time."""
    row_bytes = int(np.prod(spec.cache_shape))
    writer = CacheWriter(target, len(rows), spec)
    with open(source, "rb") as handle:
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        start = handle.tell()
        for row in rows:
            handle.seek(start + row * row_bytes)
            data = np.frombuffer(handle.read(row_bytes), np.uint8)
            writer.append(data.reshape(spec.cache_shape))
    writer.close()
