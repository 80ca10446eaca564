"""Getting MedNIST onto disk: download with resume, md5 check, and safe ``.tar.gz`` extraction.

Extraction refuses (rather than skips) anything unsafe: absolute paths, ``..`` components,
symbolic and hard links, devices and FIFOs. A refused or truncated archive raises ``DataError``
naming the archive and the member; the caller builds in a temporary folder, so nothing
half-written is ever left in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tarfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path, PurePosixPath

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # Windows: downloads are not locked
    fcntl = None

from captioning.data.images import IMAGE_SUFFIXES
from captioning.errors import DataError

OFFICIAL_URL = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/MedNIST.tar.gz"
)
OFFICIAL_MD5 = "0bc7306e7427e00ad1c5526a6677552d"  # the value MONAI's own download checks
SOURCE_ENV = "CAPTIONING_MEDNIST_SOURCE"  # a local archive, folder or mirror URL (offline use)


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sidecar_md5(archive: Path) -> str | None:
    """The md5 in ``<archive>.md5`` (``md5sum`` format), if such a file lies beside it."""
    sidecar = archive.with_name(archive.name + ".md5")
    if not sidecar.is_file():
        return None
    words = sidecar.read_text().split()
    return words[0].lower() if words else None


def verify_md5(archive: Path, expected: str | None) -> str:
    """Return the archive's md5; raise ``DataError`` if ``expected`` is given and differs."""
    actual = md5_file(archive)
    if expected and actual != expected.lower():
        raise DataError(f"{archive}: md5 mismatch (expected {expected.lower()}, got {actual})")
    return actual


def download(url: str, dest: Path, md5: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, resuming a previous partial download.

    Bytes go to ``dest.part`` first; only a complete file with the right md5 is renamed to
    ``dest``. A transfer cut short (fewer bytes than announced) keeps the partial file for the
    next attempt to resume; a wrong md5 deletes it so the next attempt starts clean. Processes
    fetching into one folder at once (two commands, parallel test workers) take turns on a lock
    of the folder: the second waits, then finds the file there, instead of both appending to
    one partial file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.parent):
        if dest.is_file() and (md5 is None or md5_file(dest) == md5.lower()):
            return dest
        return _transfer(url, dest, md5, timeout)


@contextlib.contextmanager
def _exclusive(folder: Path):
    """Hold an exclusive lock on ``folder`` itself (a descriptor of the folder: no lock file
    is left beside the downloads). Where the platform has no ``fcntl`` (Windows), nothing is
    locked."""
    if fcntl is None:
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(handle)


def _transfer(url: str, dest: Path, md5: str | None, timeout: float) -> Path:
    """``download``'s transfer into ``dest.part``, resumed from its bytes, then checked."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if offset and response.status != 206:  # server ignored Range: start over
                offset = 0
            total = response.headers.get("Content-Length")
            total = int(total) + offset if total else None
            mode = "ab" if offset else "wb"
            received = offset
            with (
                open(part, mode) as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    file=sys.stderr,
                    disable=None,
                ) as bar,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        if not (err.code == 416 and offset):  # 416: the partial file already holds every byte
            raise DataError(f"{url}: download failed ({err.reason}); rerun to resume") from None
        received = total = offset
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"{url}: download failed ({reason}); rerun to resume") from None
    if total is not None and received < total:  # the connection closed early, without an error
        raise DataError(
            f"{url}: download incomplete ({received:,} of {total:,} bytes); rerun to resume"
        )
    try:
        verify_md5(part, md5)
    except DataError:
        part.unlink()
        raise DataError(f"{url}: md5 mismatch after download (expected {md5}); deleted") from None
    os.replace(part, dest)
    return dest


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Raise ``DataError`` unless ``member`` is a plain file or folder inside the target."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (parts and ":" in parts[0]):
        raise DataError(f"{archive}: unsafe member '{name}' (absolute path)")
    if ".." in parts:
        raise DataError(f"{archive}: unsafe member '{name}' (path goes up with '..')")
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: unsafe member '{name}' (link to '{member.linkname}')")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: unsafe member '{name}' (device, FIFO or other special file)")


def extract(archive: Path, target: Path, per_class_limit: int | None = None) -> int:
    """Extract a ``.tar.gz`` into the folder ``target`` (created), checking every member.

    ``per_class_limit`` keeps only the first N images of each folder, in archive order (a
    deterministic subset for tests and smoke runs). Returns the number of files written.
    """
    target.mkdir(parents=True, exist_ok=True)
    kept: Counter[str] = Counter()
    written = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                check_member(archive, member)
                if member.isdir():
                    continue
                parent = str(PurePosixPath(member.name).parent)
                is_image = member.name.lower().endswith(IMAGE_SUFFIXES)
                if per_class_limit is not None and is_image:
                    if kept[parent] >= per_class_limit:
                        continue
                    kept[parent] += 1
                tar.extract(member, target, filter="data")
                written += 1
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: corrupt or truncated archive ({_one_line(err)})") from None
    if written == 0:
        raise DataError(f"{archive}: archive holds no files")
    return written


def _one_line(err: BaseException) -> str:
    """A tarfile error as one short line (opening lists every compression it tried, one a line)."""
    text = str(err)
    if text.startswith("file could not be opened successfully"):
        return "not a .tar.gz or .tar archive, or empty"
    return " ".join(text.split())


def find_class_root(folder: Path) -> Path:
    """The folder whose sub-folders are the classes: ``folder`` itself or a single wrapper
    below it (the official archive wraps everything in ``MedNIST/``)."""
    current = folder
    for _ in range(4):
        children = [c for c in current.iterdir() if not c.name.startswith(".")]
        subdirs = [c for c in children if c.is_dir()]
        has_images = any(c.suffix.lower() in IMAGE_SUFFIXES for c in children if c.is_file())
        wrapper = len(subdirs) == 1 and any(g.is_dir() for g in subdirs[0].iterdir())
        if wrapper and not has_images:
            current = subdirs[0]
            continue
        if not subdirs:
            raise DataError(f"{folder}: no class folders found (expected <root>/<Class>/<image>)")
        return current
    return current
