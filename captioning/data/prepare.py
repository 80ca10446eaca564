"""``captioning data prepare``: from an archive, URL or folder to a prepared dataset folder.

The prepared folder (see ``data/README.md`` for sizes) holds::

    images/          extracted archive (absent when the source was a folder)
    manifest.csv     one row per readable image: path, class, label, md5, width, height, split
    images.npy       the decoded images, uint8 (N, S, S) grey or (N, S, S, 3) RGB (the
                     ``ImageSpec`` of ``--image-size``/``--channels``, default 64 grey),
                     row i = manifest row i, written as decoded (memory stays flat)
    data_card.json   counts, skipped files, duplicate groups, manifest checksum, provenance
    data_card.md     the same, short, for people

Everything is built in a hidden temporary folder beside the target and renamed into place
only when complete, so a failure never leaves a half-written dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from captioning.data import archive
from captioning.data.card import write_data_card
from captioning.data.folder import decode_files, list_class_images
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.split import fold_counts, grouped_stratified_split
from captioning.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class PrepareOptions:
    """What ``data prepare`` was asked to do (recorded in the data card)."""

    source: str
    md5: str | None = None
    strict: bool = False
    per_class_limit: int | None = None
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    force: bool = False
    image: ImageSpec = DEFAULT_IMAGE  # side and channels of the cached images
    skipped: list[dict] = field(default_factory=list)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "ftp://", "file://"))


def default_source() -> str:
    """The official archive, unless ``$CAPTIONING_MEDNIST_SOURCE`` names a local copy or mirror."""
    return os.environ.get(archive.SOURCE_ENV) or archive.OFFICIAL_URL


def fetch(url: str, downloads: Path, md5: str | None = None) -> Path:
    """The archive at ``url`` as a file in ``downloads``: downloaded once (resuming a partial
    download), then reused. Checked against ``md5``, or the official md5 for the official URL.
    The real-data tests fetch their archive through here too, so they test this very path."""
    expected = md5 or (archive.OFFICIAL_MD5 if url == archive.OFFICIAL_URL else None)
    return archive.download(url, Path(downloads) / Path(url).name, expected)


def prepare(root: Path, options: PrepareOptions, downloads: Path, builder=None) -> dict:
    """Prepare ``root`` from ``options.source``; return the data card as a dict.

    ``builder(folder, options, downloads) -> card`` fills the hidden folder (default: a MedNIST
    archive, URL or class folder; ``captioning.data.sources.prepare`` passes the caption-file
    one), so every kind of dataset gets the same refusal rules and all-or-nothing swap."""
    root = Path(root).resolve()
    _check_options(options)
    if (root / "data_card.json").exists():
        if not options.force:
            raise DataError(f"{root}: already prepared (use --force to rebuild it)")
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        # the swap below removes what was at ``root``: only ever an older prepared dataset
        raise DataError(
            f"{root}: exists and is not a prepared dataset (no data_card.json); "
            "choose an empty or new folder"
        )
    building = root.parent / f".{root.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        card = (builder or _build)(building, options, downloads)
        _move_into_place(building, root)
    except OSError as err:  # disk full, file-size limit, permissions
        reason = err.strerror or str(err)
        raise DataError(
            f"{root}: cannot write the prepared dataset ({reason}); nothing was changed"
        ) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return card


def _check_options(options: PrepareOptions) -> None:
    """Refuse settings that cannot work before anything is downloaded or written."""
    if options.per_class_limit is not None and options.per_class_limit <= 0:
        raise DataError(
            f"--per-class-limit must be a positive number, got {options.per_class_limit}"
        )
    try:
        fold_counts(tuple(options.fractions))
    except (ValueError, TypeError) as err:
        raise DataError(f"--fractions: {err}") from None


def _build(building: Path, options: PrepareOptions, downloads: Path) -> dict:
    """Build MedNIST (or any class-folder dataset) in ``building``; return its data card."""
    image_dir, external, provenance = _locate_images(building, options, downloads)
    files, classes, empty = list_class_images(image_dir, options.per_class_limit)
    if not classes:
        raise DataError(f"{image_dir}: no images found in any class folder")
    cache = building / "images.npy"
    rows, skipped = decode_files(files, image_dir, cache, options.strict, options.image)
    options.skipped.extend(skipped)
    if not rows:
        raise DataError(f"{image_dir}: none of the {len(files)} images could be read")
    manifest = pd.DataFrame(rows)
    unreadable = [name for name in classes if name not in set(manifest["class"])]
    for name in unreadable:  # a label with no example would break stratification and metrics
        log.warning("%s: no image of this class could be read; not a class", image_dir / name)
    empty += unreadable
    classes = [name for name in classes if name not in unreadable]
    manifest["label"] = manifest["class"].map({name: i for i, name in enumerate(classes)})
    manifest["split"] = grouped_stratified_split(
        manifest["label"].to_numpy(), manifest["md5"].to_numpy(), options.fractions, options.seed
    )
    manifest = manifest[["path", "class", "label", "md5", "width", "height", "split"]]
    manifest.to_csv(building / "manifest.csv", index=False)
    checksum = hashlib.sha256((building / "manifest.csv").read_bytes()).hexdigest()
    relative = image_dir.relative_to(building) if not external else image_dir
    return write_data_card(
        building,
        manifest,
        classes=classes,
        manifest_sha256=checksum,
        skipped=options.skipped,
        empty_classes=empty,
        settings={
            "image_dir": str(relative),
            "image_dir_is_external": external,
            "seed": options.seed,
            "fractions": list(options.fractions),
            "per_class_limit": options.per_class_limit,
            "strict": options.strict,
            **options.image.card_fields(),
            **provenance,
        },
    )


def _locate_images(
    building: Path, options: PrepareOptions, downloads: Path
) -> tuple[Path, bool, dict]:
    """The class-folder root: an archive (downloaded first when a URL) is checked against its
    md5 and extracted into ``building``; a folder is read where it is (``external``). Also
    the provenance the card records (source, archive md5)."""
    source = options.source
    provenance = {"source": source}
    if is_url(source):
        source_path = fetch(source, downloads, options.md5)
        provenance["archive_md5"] = archive.md5_file(source_path)
    else:
        source_path = Path(source).expanduser().resolve()
        if not source_path.exists():
            raise DataError(f"{source_path}: no such archive or folder")
        provenance["source"] = str(source_path)
    if not source_path.is_file():
        return archive.find_class_root(source_path), True, provenance
    expected = options.md5 or archive.sidecar_md5(source_path)
    provenance["archive_md5"] = archive.verify_md5(source_path, expected)
    archive.extract(source_path, building / "images", options.per_class_limit)
    return archive.find_class_root(building / "images"), False, provenance


def _move_into_place(building: Path, root: Path) -> None:
    """Swap the finished folder in; an older dataset is removed only after the swap."""
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        os.replace(root, old)
    os.replace(building, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
