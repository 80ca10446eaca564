"""What a classifier trains on: the prepared dataset and its train and val splits, with one
``label`` (MedNIST) or, for a dataset prepared with label columns, the classes of each head
(the column's values in the training split) and the columns' values per image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from captioning.config import ClassifierConfig
from captioning.data.dataset import PreparedData, Split
from captioning.data.sources import caption_source
from captioning.errors import DataError
from captioning.utils.paths import default_data_root


@dataclass
class ClassifierData:
    """The prepared dataset a classifier trains on, and its train and val splits. ``heads``:
    with label columns, column -> its head's classes (else empty: the one ``label``);
    ``values``: the label columns' values, in manifest order."""

    root: Path
    data: PreparedData
    train: Split
    val: Split
    heads: dict[str, list[str]] = field(default_factory=dict)
    values: pd.DataFrame | None = None

    @property
    def classes(self) -> list[str]:
        """The classes of the layer named ``logits``: the first column's with label columns."""
        return next(iter(self.heads.values())) if self.heads else self.data.classes

    def targets(self, part: Split):
        """What the model learns for ``part``: its labels, or with label columns, per column
        the class ids (-1: a value its head lacks)."""
        if not self.heads:
            return part.labels
        from captioning.evaluation.classifier import head_targets

        return head_targets(self.values.iloc[part.rows], self.heads)


def load_classifier_data(config: ClassifierConfig, data_root=None) -> ClassifierData:
    """The dataset at ``data_root`` (else the config's, else the default root), which must
    have class labels or label columns; records the resolved root in ``config.data.root``."""
    root = Path(data_root or config.data.root or default_data_root()).expanduser().resolve()
    config.data.root = str(root)
    data = PreparedData(root)
    source = caption_source(data)
    if not data.classes and not source.label_columns:  # see docs/datasets.md
        raise DataError(
            f"{root}: the dataset's captions have no class labels; a classifier needs them "
            "(a 'label' column in the caption file, or columns named by data prepare "
            "--label-columns)"
        )
    if not source.label_columns:
        train, val = (
            data.split(s, config.data.per_class_limit, config.data.exclude_classes)
            for s in ("train", "val")
        )
        return ClassifierData(root, data, train, val)
    if config.data.exclude_classes:
        raise DataError(
            "data.exclude_classes names classes of a 'label'; a classifier of label columns "
            "cannot leave any out"
        )
    values = source.label_values(data)
    first = values[source.label_columns[0]]
    # --smoke's per-class limit counts per value of the first label column
    train, val = (
        data.split(s, config.data.per_class_limit, limit_by=first) for s in ("train", "val")
    )
    seen = values.iloc[train.rows]
    # "" (not stated) is no class: those images are left out of that head (label -1)
    heads = {column: sorted(set(seen[column]) - {""}) for column in source.label_columns}
    return ClassifierData(root, data, train, val, heads, values)
