"""Atomic writes: build a file or folder under a temporary name beside its target and rename
it into place only when complete. A crash or a full disk leaves the previous version intact
and no stray temporary behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from captioning.errors import CaptioningError


class WriteError(CaptioningError, OSError):
    """A file could not be written; its previous version is untouched."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path`` (same suffix, so writers that check the
    extension accept it); on success rename it to ``path``, on failure delete it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:  # disk full, file-size limit, permissions
        reason = err.strerror or str(err)
        raise WriteError(f"{path}: cannot write ({reason}); the previous version is kept") from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
