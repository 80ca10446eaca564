"""Reading a labelled image folder laid out ``<root>/<Class>/<image>`` (nested folders
allowed): which files are images of which class, and decoding them all into one array."""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from captioning.data.cache import CHUNK_ROWS, CacheWriter
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import IMAGE_SUFFIXES, ImageError, decode_image
from captioning.errors import DataError

log = logging.getLogger(__name__)


def list_class_images(
    image_dir: Path, limit: int | None
) -> tuple[list[Path], list[str], list[str]]:
    """Image files per class folder (sorted; nested folders included), the class names, and
    the names of class folders that hold no image."""
    files: list[Path] = []
    classes: list[str] = []
    empty: list[str] = []
    for folder in sorted(
        p for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit is not None:
            found = found[:limit]
        if not found:
            log.warning("%s: class folder holds no PNG/JPEG image; skipped", folder)
            empty.append(folder.name)
            continue
        classes.append(folder.name)
        files.extend(found)
    return files, classes, empty


def decode_files(
    files: list[Path],
    image_dir: Path,
    out: Path,
    strict: bool = False,
    spec: ImageSpec = DEFAULT_IMAGE,
):
    """Decode every file (2 threads: Pillow releases the GIL while decoding) into the image
    cache ``out`` (an ``.npy`` of rows ``spec.cache_shape``, written as decoded: one chunk of
    images in memory at a time).

    Returns (manifest rows, skipped files with reasons); row i of ``out`` is manifest row i.
    An unreadable file is skipped with a warning, or raises ``DataError`` when ``strict``.
    """
    writer = CacheWriter(out, len(files), spec)
    rows, skipped = [], []
    try:
        with (
            ThreadPoolExecutor(max_workers=2) as pool,
            tqdm(total=len(files), desc="decoding", unit="img", disable=None) as bar,
        ):
            for start in range(0, len(files), CHUNK_ROWS):  # a chunk at a time: bounded memory
                chunk = files[start : start + CHUNK_ROWS]
                for path, result in zip(
                    chunk, pool.map(partial(_read, spec=spec), chunk), strict=True
                ):
                    bar.update()
                    if isinstance(result, ImageError):
                        if strict:
                            raise DataError(f"{result} (--strict)")
                        log.warning("skipped %s", result)
                        relative = printable_path(path.relative_to(image_dir))
                        skipped.append({"path": relative, "reason": result.problem})
                        continue
                    pixels, md5, width, height = result
                    writer.append(pixels)
                    relative = path.relative_to(image_dir)
                    rows.append(
                        {
                            "path": relative.as_posix(),
                            "class": relative.parts[0],
                            "md5": md5,
                            "width": width,
                            "height": height,
                        }
                    )
    finally:  # also on a --strict refusal: the file is closed (and removed with the folder)
        writer.close()
    return rows, skipped


def _read(path: Path, spec: ImageSpec):
    """One file -> (pixels, md5, width, height), or the ``ImageError`` that kept it out."""
    if printable_path(path) != str(path):
        return ImageError(printable_path(path), "file name is not valid UTF-8 (rename the file)")
    try:
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            raise ImageError(path, "is a directory, not an image")
        if not data:
            raise ImageError(path, "empty file (0 bytes)")
        pixels, (width, height), _ = decode_image(data, str(path), spec, colour=False)
        return pixels, hashlib.md5(data).hexdigest(), width, height
    except ImageError as err:
        return err
    except OSError as err:
        return ImageError(path, f"cannot read file ({err.strerror or err})")


def printable_path(path: Path) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 (names from another system's
    encoding) appear as ``\\xNN``, so the manifest, card and messages can always be written."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
