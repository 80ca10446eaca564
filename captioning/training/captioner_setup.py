"""The captioner trainer's first steps: the encoder run, the caption data and its truth, the
vocabulary and the run's files (the model's parts: ``captioner_model``).

Each step takes what the steps before it returned (``train_captioner`` calls them in order);
``load_caption_data`` alone decides the captions and their truth (``captioning.data.sources``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from captioning.captions.templates import TemplateSet, load_template_set
from captioning.captions.tokenize import tokenize
from captioning.captions.vocabulary import Vocabulary
from captioning.config import CaptionerConfig
from captioning.data.caption_data import caption_frame, reference_columns
from captioning.data.dataset import PreparedData, Split
from captioning.data.image_spec import ImageSpec, check_same_images
from captioning.data.sources import CaptionSource, caption_source
from captioning.data.template_captions import CUTPOINTS_FILE, load_cutpoints
from captioning.decoding.rules import (
    FREE_TEXT_MAX_QUANTILE,
    FREE_TEXT_MIN_QUANTILE,
    MIN_LENGTH_QUANTILE,
    length_bounds,
)
from captioning.errors import RunError
from captioning.training import sync
from captioning.training.strategy import strategy_name
from captioning.utils.paths import default_data_root
from captioning.utils.provenance import data_provenance, git_state, machine
from captioning.utils.runs import RunLock, check_resume, package_versions, read_json, write_json

BEST_MODEL = "best_model.keras"
log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """What every step reads: the resolved config, the distribution strategy, whether this
    process is the chief (the only one that writes files) and the run folder."""

    config: CaptionerConfig
    strategy: tf.distribute.Strategy
    chief: bool
    run_dir: Path


@dataclass
class EncoderRun:
    """The classifier run whose encoder the captioner starts from (``run.json`` as read)."""

    path: Path
    run: dict

    @property
    def digest(self) -> str:
        """sha256 of its best model: the workers of a run must start from the same one."""
        return hashlib.sha256((self.path / BEST_MODEL).read_bytes()).hexdigest()


@dataclass
class CaptionData:
    """The captions the captioner learns and the truth its validation reads back.

    ``frame`` has one row per image of the dataset (columns ``reference_<i>``, the class and,
    for templates, quality and the template set's findings); ``train`` and ``val`` index it;
    ``truth`` is the validation images' class, quality and findings (one row each, in ``val``
    order), or None for captions without structured truth (free text: then validation scores
    BLEU-4 only, and ``template_set`` is None too). ``labelled``: the splits' labels are the
    encoder's classes (else they are -1, and no class loss or accuracy is computed)."""

    data: PreparedData
    frame: pd.DataFrame
    train: Split
    val: Split
    template_set: TemplateSet | None
    truth: pd.DataFrame | None
    source: CaptionSource | None = None
    labelled: bool = True


def run_lock(run: TrainingRun):
    """The chief's lock on the run folder (two runs never write one folder); none elsewhere."""
    return RunLock(run.run_dir) if run.chief else contextlib.nullcontext()


def is_resuming(run: TrainingRun, resolved: dict) -> bool:
    """Whether the chief's run folder holds a run of this experiment to resume (data, captions
    and decoder must not have changed); another worker's local folder decides nothing."""
    return run.chief and check_resume(
        run.run_dir, resolved, frozen_sections=("data", "captions", "decoder")
    )


def load_encoder_run(encoder_dir) -> EncoderRun:
    """The ``--encoder`` folder, checked to be a classifier run."""
    path = Path(encoder_dir).expanduser().resolve()
    run = read_json(path / "run.json")
    if run.get("kind") != "classifier":
        raise RunError(f"{path}: --encoder needs a classifier run folder")
    return EncoderRun(path, run)


def load_caption_data(config: CaptionerConfig, encoder: EncoderRun, data_root=None) -> CaptionData:
    """Open the prepared dataset (``--data``, else the config's, else the encoder's, else the
    default root; written back to ``config.data.root``) and ask its caption source for the
    captions. Templates: the classes must be the encoder's, and the captions come from
    ``config.captions.templates`` with the truth they state. A caption file: its references,
    no truth (``monitor`` becomes ``cider`` unless it is ``bleu4``), its labels only when they
    are the encoder's classes; ``decoder.max_length`` grows to the source's maximum length."""
    root = data_root or config.data.root or encoder.run["data_root"] or default_data_root()
    root = Path(root).expanduser().resolve()
    config.data.root = str(root)
    data = PreparedData(root, config.captions.templates)  # a set's transformed images, if any
    check_same_images(data.image_spec, data.root, ImageSpec.from_card(encoder.run), encoder.path)
    source = caption_source(data)
    # a label-column encoder's ``classes`` are its first head's (the one the captioner keeps):
    # the data's labels drive the class loss only when they are those classes
    labelled = source.has_labels and data.classes == encoder.run["classes"]
    if source.kind == "templates" and not labelled:
        raise RunError(
            f"{encoder.path}: trained on classes {encoder.run['classes']}, not {data.classes}"
        )
    # built first: a set stating acquisition fields writes the transformed images read below
    frame = caption_frame(data, config.captions.templates) if source.has_truth else None
    # the whole validation split (``train.max_eval_batches`` limits only the validation loss)
    train, val = (data.split(s, config.data.per_class_limit) for s in ("train", "val"))
    if source.has_truth:
        tset = load_template_set(config.captions.templates)
        truth = frame.iloc[val.rows][["class", "quality", *tset.fields]]
        return CaptionData(data, frame, train, val, tset, truth, source, labelled)
    _fit_config_to_free_text(config, source)
    if not labelled:  # -1: no label (the class loss and accuracy leave these images out)
        train, val = (
            dataclasses.replace(p, labels=np.full_like(p.labels, -1)) for p in (train, val)
        )
    return CaptionData(data, source.frame(data), train, val, None, None, source, labelled)


def _fit_config_to_free_text(config: CaptionerConfig, source: CaptionSource) -> None:
    """Settings that only make sense with structured truth, changed (and said) for a source
    without it; recorded in the run's ``config.json``."""
    if config.monitor not in ("bleu4", "cider"):
        log.info("captions without structured truth: monitoring cider, not %s", config.monitor)
        config.monitor = "cider"
    limit = source.rules.max_length
    if limit is not None and config.decoder.max_length < limit + 1:  # + 1: <end>
        log.info(
            "decoder.max_length %d -> %d: the source's own + <end>",
            config.decoder.max_length,
            limit + 1,
        )
        config.decoder.max_length = limit + 1


def resolve_lengths(config: CaptionerConfig, captions: CaptionData) -> None:
    """Caption lengths from the training captions (``decoding.rules``' percentiles), recorded
    in the run's config.json so inference and a resumed run read them back:
    ``decoder.min_length`` -1 -> the 5th percentile in words (free text: the 25th), at most
    ``max_length // 2``; free text without a length cut of its own also grows
    ``decoder.max_length`` to its 90th percentile + 1 (``<end>``)."""
    rules = captions.source.rules if captions.source else None
    split = rules.tokenizer() if rules else tokenize
    rows = captions.frame.iloc[captions.train.rows]
    lengths = [len(split(t)) for c in reference_columns(captions.frame) for t in rows[c] if t]
    free_text = captions.truth is None
    dec = config.decoder
    if free_text and rules is not None and rules.max_length is None and lengths:
        longest = int(np.percentile(lengths, FREE_TEXT_MAX_QUANTILE)) + 1
        if longest > dec.max_length:
            log.info(
                "decoder.max_length %d -> %d: the training captions' 90th percentile + 1",
                dec.max_length,
                longest,
            )
            dec.max_length = longest
    if dec.min_length >= 0:
        return
    quantile = FREE_TEXT_MIN_QUANTILE if free_text else MIN_LENGTH_QUANTILE
    dec.min_length = length_bounds(lengths, dec.max_length, quantile)
    log.info("decoder.min_length %d: from the training captions", dec.min_length)


def build_vocabulary(captions: CaptionData, path: Path, resuming: bool) -> Vocabulary:
    """A resumed run's saved vocabulary, else every word of the training split's references."""
    if resuming and path.exists():
        return Vocabulary.load(path)
    train_rows = captions.frame.iloc[captions.train.rows]
    rules = captions.source.rules if captions.source else None  # None: the one rule
    return Vocabulary.from_captions(
        (text for c in reference_columns(captions.frame) for text in train_rows[c]), rules=rules
    )


def agree_on_experiment(
    run: TrainingRun, resolved: dict, captions: CaptionData, vocab: Vocabulary, encoder: EncoderRun
) -> None:
    """Fail unless every worker has the same config, data, vocabulary and encoder: called
    before any file is written and any variable exists (workers that built different models
    would hang, not fail)."""
    sync.agree(
        run.strategy,
        "the experiment",
        sync.experiment_identity(
            resolved,
            data=captions.data.manifest_sha256,
            vocabulary="|".join(vocab.tokens),
            encoder=encoder.digest,
        ),
    )


def write_run_files(
    run: TrainingRun,
    resolved: dict,
    captions: CaptionData,
    vocab: Vocabulary,
    encoder: EncoderRun,
    *,
    vocab_path: Path,
    resuming: bool,
    command: str,
) -> None:
    """The chief's ``config.json``, vocabulary, the set's cut points (the run reads them away
    from its data) and ``run.json`` (what, from what, where); the other workers write nothing."""
    if not run.chief:
        return
    config, data = run.config, captions.data
    write_json(run.run_dir / "config.json", resolved)
    vocab.save(vocab_path)
    if (tset := captions.template_set) is not None and tset.fields:
        write_json(run.run_dir / CUTPOINTS_FILE, load_cutpoints(data.root, tset))
    write_json(
        run.run_dir / "run.json",
        {
            "command": command,
            "seed": config.train.seed,
            "kind": "captioner",
            "decoder": config.decoder.kind,
            "templates": config.captions.templates if captions.template_set else None,
            "caption_source": captions.source.kind if captions.source else "templates",
            "labelled": captions.labelled,
            "encoder_run": str(encoder.path),
            "manifest_sha256": data.manifest_sha256,
            "data_root": config.data.root,
            "classes": encoder.run["classes"],  # the head's (templates: the data's too)
            **data.image_spec.card_fields(),  # what caption/serve/export decode to
            "split_sizes": {"train": len(captions.train), "val": len(captions.val)},
            "vocabulary_size": len(vocab),
            "strategy": strategy_name(run.strategy),
            "replicas": run.strategy.num_replicas_in_sync,
            "resumed": resuming,
            "versions": package_versions(),
            "code": git_state(),
            "data": data_provenance(data.card),
            "machine": machine(),
        },
    )
