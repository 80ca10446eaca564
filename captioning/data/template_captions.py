"""``captioning data captions``: captions for every image of a prepared dataset.

Writes into ``<root>/captions/``:

- ``cutpoints.json``: the findings' cut points, fitted on the TRAIN split once and then reused
  (refitted only when the manifest changes), so val/test/new images are binned the same way;
- for a set stating acquisition fields (``captions.acquisition``: orientation, position):
  ``<set>_images.npy``, every image rotated and shifted by its seeded draw (what training,
  evaluation and calibration of a run on the set read: ``PreparedData(root, set)``), and
  ``<set>_cutpoints.json``, the findings' cut points fitted on the TRANSFORMED train split;
- ``<set>.csv``: path, split, class, quality, the findings, reference_0..reference_{k-1};
- ``<set>_card.json`` and ``<set>_card.md``: the caption card (see ``captions.card``), which
  also records the sha256 of the set's content the captions were rendered from
  (``built_from``), so captions of a set whose text has since changed are known to be stale.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.acquisition import ACQUISITION_SEED, acquires, draw, transform_images
from captioning.captions.card import caption_card, write_card
from captioning.captions.findings import (
    CUTPOINTS_VERSION,
    FIELD_VALUES,
    borderline_share,
    check_cutpoints,
    findings_from_measurements,
    fit_cutpoints,
    measure,
)
from captioning.captions.templates import (
    DEFAULT_TEMPLATE_SET,
    TemplateSet,
    load_template_set,
    render,
)
from captioning.data.dataset import PreparedData, set_images_path
from captioning.errors import DataError

log = logging.getLogger(__name__)
CAPTIONS_DIR = "captions"
CUTPOINTS_FILE = "cutpoints.json"


def cutpoints_path(root: str | Path, templates: str | Path | TemplateSet | None = None) -> Path:
    """The cut points a set's findings are binned with: ``cutpoints.json`` (fitted on the
    prepared images, shared by every set that reads them), or ``<set>_cutpoints.json`` for a
    set stating acquisition fields (fitted on its own transformed images)."""
    tset = templates
    if templates is not None and not isinstance(templates, TemplateSet):
        tset = load_template_set(templates)
    name = CUTPOINTS_FILE
    if tset is not None and acquires(tset.fields):
        name = f"{tset.name}_{CUTPOINTS_FILE}"
    return Path(root) / CAPTIONS_DIR / name


def load_cutpoints(root: str | Path, templates: str | Path | TemplateSet | None = None) -> dict:
    """The cut points stored with a prepared dataset for the set ``templates`` (None: the
    prepared images'), written by ``data captions``."""
    path = cutpoints_path(root, templates)
    if not path.is_file():
        raise DataError(f"{path}: no cut points; run 'captioning data captions' first")
    return check_cutpoints(json.loads(path.read_text()))


def dataset_cutpoints(data: PreparedData, path: Path | None = None, refit: bool = False) -> dict:
    """Stored cut points when they match this manifest (and ``refit`` is off), else fit them on
    ``data``'s train split (the images it reads) and store them at ``path`` (default: the
    prepared images' ``cutpoints.json``)."""
    path = path or data.root / CAPTIONS_DIR / CUTPOINTS_FILE
    if path.is_file() and not refit:
        stored = json.loads(path.read_text())
        if stored.get("version") != CUTPOINTS_VERSION:
            log.info(
                "%s: written by findings version %s; fitting again on train",
                path,
                stored.get("version"),
            )
        elif stored.get("manifest_sha256") == data.manifest_sha256:
            return check_cutpoints(stored)
        else:
            log.info("%s: written for another manifest; fitting again on train", path)
    train = data.split("train")
    if len(train) == 0:
        raise DataError(f"{data.root}: the train split is empty; cannot fit cut points")
    cutpoints = fit_cutpoints(train.images)
    cutpoints["manifest_sha256"] = data.manifest_sha256
    _write_text(path, json.dumps(cutpoints, indent=2) + "\n")
    return cutpoints


def caption_table(
    manifest: pd.DataFrame, findings: pd.DataFrame, tset: TemplateSet
) -> pd.DataFrame:
    """One row per image: path, split, class, quality, findings, reference_0..k-1."""
    frame = pd.concat(
        [
            manifest[["path", "split", "class"]].reset_index(drop=True),
            findings.reset_index(drop=True),
        ],
        axis=1,
    )
    keys = ["class", "quality", *(f for f in FIELD_VALUES if f in frame.columns)]
    cache: dict[tuple, str] = {}  # few distinct (class, findings, template) combinations
    for i in range(tset.n_references):
        texts = []
        for key in frame[keys].itertuples(index=False, name=None):
            text = cache.get((i, key))
            if text is None:
                text = render(key[0], dict(zip(keys[1:], key[1:], strict=True)), tset, i)
                cache[(i, key)] = text
            texts.append(text)
        frame[f"reference_{i}"] = texts
    return frame


def build_captions(root: str | Path, templates: str | Path = DEFAULT_TEMPLATE_SET) -> dict:
    """Write captions, cut points and the caption card for the dataset at ``root``; return the
    card. ``templates`` is a set name (see ``captions.templates``), a ``.toml`` file or a folder."""
    data = PreparedData(root)
    kind = (data.card.get("caption_source") or {}).get("kind", "templates")
    if kind != "templates":  # a caption file brought its own references (docs/datasets.md)
        raise DataError(
            f"{data.root}: its captions come from a {kind} caption file, not from templates; "
            "'data captions' renders templates for class-folder datasets such as MedNIST"
        )
    tset = load_template_set(templates)
    unknown = [c for c in data.classes if c not in tset.classes]
    if unknown:
        raise DataError(f"template set '{tset.name}' ({tset.path}) has no phrases for {unknown}")
    view, draws, cutpoints = _set_images(data, tset)
    measurements = measure(view.images)  # (N, 4) float64, all splits, on the images read
    findings = findings_from_measurements(measurements, cutpoints)
    if draws is not None:  # the acquisition fields: the draws themselves
        findings = pd.concat([findings, draws.set_index(findings.index)], axis=1)
    frame = caption_table(data.manifest, findings, tset)
    out = data.root / CAPTIONS_DIR
    _write_text(out / f"{tset.name}.csv", frame.to_csv(index=False))
    train = (data.manifest["split"] == "train").to_numpy()
    borderline = borderline_share(measurements[train], cutpoints)
    card = caption_card(frame, tset, cutpoints, borderline, data.classes)
    if draws is not None:
        card["acquisition"] = {
            "seed": ACQUISITION_SEED,
            "fields": [f for f in tset.fields if f in draws.columns],
            "images": str(view.image_path.relative_to(data.root)),
            "cutpoints": str(cutpoints_path(data.root, tset).relative_to(data.root)),
        }
    write_card(card, out / f"{tset.name}_card.json", out / f"{tset.name}_card.md")
    return card


def _set_images(data: PreparedData, tset: TemplateSet):
    """The images a set's captions describe, the draws behind them and the cut points: for a
    set stating acquisition fields, the transformed images (written now, with cut points
    fitted on their train split), else the prepared images and their stored cut points."""
    if not acquires(tset.fields):
        return data, None, dataset_cutpoints(data)
    draws = draw(data.manifest["path"], tset.fields)  # seeded per image path
    write_images(data.images, draws, set_images_path(data.root, tset.name))
    view = PreparedData(data.root, tset.path)
    return view, draws, dataset_cutpoints(view, cutpoints_path(data.root, tset), refit=True)


def write_images(images, draws: pd.DataFrame, path: Path) -> None:
    """``images`` (N, H, W) uint8 transformed by ``draws`` into a new ``.npy`` at ``path``,
    written in chunks into a memory-mapped file and moved into place only when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
    transform_images(images, draws, out=out)
    out.flush()
    del out  # closes the map before the move
    os.replace(tmp, path)


def read_captions(root: str | Path, templates: str = DEFAULT_TEMPLATE_SET) -> pd.DataFrame:
    """The caption table written by ``build_captions`` (empty findings read as '')."""
    path = Path(root) / CAPTIONS_DIR / f"{templates}.csv"
    if not path.is_file():
        raise DataError(f"{path}: no captions; run 'captioning data captions' first")
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def built_from(root: str | Path, templates: str = DEFAULT_TEMPLATE_SET) -> str | None:
    """sha256 of the template set content the stored captions were rendered from (None when
    unknown: no card, or one written before cards recorded it)."""
    path = Path(root) / CAPTIONS_DIR / f"{templates}_card.json"
    try:
        return json.loads(path.read_text()).get("template_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
