"""What a captioner is evaluated on: the images, their references and truth, and how to name
them in the report. Three sets, one shape (``EvalSet``):

- a templated run's own split (the prepared dataset's caption table: class and findings);
- a templated run on a labelled folder or archive given with ``--data`` (captions and findings
  built on the fly with the cut points of the run's dataset);
- a free-text run's own split (a caption file or an R2Gen annotation: references, and class
  labels only when the source has labels of the encoder's classes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from captioning.captions.acquisition import acquire, acquires
from captioning.captions.findings import check_cutpoints, compute_findings
from captioning.captions.templates import load_template_set
from captioning.captions.tokenize import tokenize
from captioning.data.evaluation import load_labelled, run_split
from captioning.data.sources import caption_source
from captioning.data.template_captions import CUTPOINTS_FILE, caption_table, load_cutpoints
from captioning.errors import DataError

NO_LABELS = "the caption source has no class labels of the encoder's classes"


@dataclass
class EvalSet:
    """Images (N, H, W) uint8 with one row of ``frame`` each (``path``, ``reference_*``, and the
    truth columns the source has) and ``references`` (each image's reference texts).
    ``labels``: class ids in the encoder's classes (meaningful only when ``labelled``).
    ``source``: the caption source kind (``templates``, ``file``, ``r2gen``). ``evaluated``:
    what the report says was evaluated; ``tag``: the stem of the files written beside it.
    ``tokenize``: the rule the caption metrics split texts with. ``label_columns``: the label
    columns of the source (``data prepare --label-columns``), each in ``frame`` as
    ``label_<name>``: what the content scorer checks the captions against."""

    images: np.ndarray
    labels: np.ndarray
    frame: pd.DataFrame
    references: list[list[str]]
    evaluated: dict
    tag: str
    source: str = "templates"
    labelled: bool = True
    tokenize: object = field(default=tokenize)
    label_columns: tuple[str, ...] = ()

    @property
    def free_text(self) -> bool:
        """A report source: no class-organised images, per-image samples instead of per class."""
        return self.source != "templates"

    def __len__(self) -> int:
        return len(self.images)


def _references(frame: pd.DataFrame) -> list[list[str]]:
    from captioning.data.caption_data import row_references  # imports TensorFlow

    return row_references(frame)


def evaluation_set(captioner, data: str | None, split: str, workdir: Path) -> EvalSet:
    """The set ``captioner`` is evaluated on: ``data`` (a labelled folder or archive) when
    given, else the run's own ``split``. ``workdir``: scratch space for an archive's images."""
    if captioner.run.get("caption_source", "templates") != "templates":
        if data:
            raise DataError(
                f"{captioner.run_dir}: --data (a labelled image folder) applies to runs on "
                "templated captions; prepare new data with 'data prepare --captions' instead"
            )
        chosen = free_text_split(captioner, split)
    elif data:
        chosen = external_set(captioner, Path(data).expanduser().resolve(), workdir)
    else:
        chosen = template_split(captioner, split)
    if len(chosen) == 0:
        raise DataError(f"{chosen.evaluated['data']}: no readable labelled images to evaluate")
    return chosen


def template_split(captioner, split: str) -> EvalSet:
    """A templated run's own split, with its dataset's caption table."""
    from captioning.data.caption_data import caption_frame  # imports TensorFlow

    dataset, part, evaluated = run_split(captioner.run, split)
    frame = caption_frame(dataset, captioner.templates).iloc[part.rows].reset_index(drop=True)
    return EvalSet(part.images, part.labels, frame, _references(frame), evaluated, split)


def external_set(captioner, source: Path, workdir: Path) -> EvalSet:
    """A labelled folder or archive never prepared: its captions and findings are built with
    the cut points stored with the run's dataset (a bundled run carries its own). A run on a
    set stating acquisition fields sees the images transformed by their seeded draws."""
    images, labels, paths, skipped = load_labelled(
        source, captioner.classes, workdir, captioner.image_spec
    )
    tset = load_template_set(captioner.templates)
    bundled = captioner.run_dir / CUTPOINTS_FILE
    cutpoints = (
        check_cutpoints(json.loads(bundled.read_text()))
        if bundled.is_file()
        else load_cutpoints(captioner.run["data_root"], tset)
    )
    manifest = pd.DataFrame(
        {"path": paths, "split": "external", "class": [captioner.classes[i] for i in labels]}
    )
    draws = None
    if acquires(tset.fields):  # acquired as the run's own data: seeded by each image's path
        images, draws = acquire(images, paths, tset.fields)
    findings = compute_findings(images, cutpoints)
    frame = caption_table(manifest, findings if draws is None else findings.join(draws), tset)
    evaluated = {"data": str(source), "split": None, "skipped": skipped}
    tag = source.name.split(".")[0] or "data"
    return EvalSet(images, labels, frame, _references(frame), evaluated, tag)


def free_text_split(captioner, split: str) -> EvalSet:
    """A free-text run's own split: the source's references, scored with the tokenisation
    rules the run's vocabulary carries; labelled only when the source's class labels are the
    encoder's classes."""
    dataset, part, evaluated = run_split(captioner.run, split)
    source = caption_source(dataset)
    frame = source.frame(dataset).iloc[part.rows].reset_index(drop=True)
    columns = label_columns(dataset)
    for name in columns:
        frame[f"label_{name}"] = (
            dataset.manifest[f"label_{name}"].iloc[part.rows].astype(str).to_numpy()
        )
    labelled = source.has_labels and dataset.classes == captioner.classes
    return EvalSet(
        part.images,
        part.labels,
        frame,
        _references(frame),
        evaluated,
        split,
        source=source.kind,
        labelled=labelled,
        tokenize=captioner.vocab.tokenize,
        label_columns=columns,
    )


def label_columns(dataset) -> tuple[str, ...]:
    """The label columns the data card's ``caption_source.label_columns`` lists, each checked
    to be in the manifest as ``label_<name>``."""
    names = (dataset.card.get("caption_source") or {}).get("label_columns") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DataError(
            f"{dataset.root}/data_card.json: caption_source.label_columns must be a list of names"
        )
    missing = [n for n in names if f"label_{n}" not in dataset.manifest.columns]
    if missing:
        raise DataError(
            f"{dataset.root}/manifest.csv: no column {', '.join(f'label_{n}' for n in missing)} "
            "for the data card's label_columns; prepare again"
        )
    return tuple(names)
