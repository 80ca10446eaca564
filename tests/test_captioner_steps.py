"""The captioner trainer's named steps, one at a time, on a handful of in-memory rows."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from captioning.captions.templates import load_template_set
from captioning.captions.text import TextRules
from captioning.config import CaptionerConfig
from captioning.data.dataset import Split
from captioning.data.sources import CaptionSource
from captioning.errors import RunError
from captioning.training.caption_targets import caption_targets
from captioning.training.captioner_setup import (
    CaptionData,
    TrainingRun,
    build_vocabulary,
    load_encoder_run,
    resolve_lengths,
)
from captioning.training.captioner_stages import (
    choose_stage,
    stage_summary,
    whole_run,
)
from captioning.training.loop import FitResult

TSET = load_template_set("findings")


def split(rows) -> Split:
    rows = np.asarray(rows)
    return Split(
        images=np.zeros((len(rows), 64, 64), np.uint8),
        labels=np.zeros(len(rows), np.int32),
        paths=[f"{r}.png" for r in rows],
        rows=rows,
    )


def captions() -> CaptionData:
    frame = pd.DataFrame(
        {
            "reference_0": ["head ct small", "chest x-ray large", "hand zebra"],
            "reference_1": ["head ct tiny", "chest x-ray huge", "hand unseen"],
        }
    )
    return CaptionData(None, frame, split([0, 1]), split([2]), TSET, truth=None)


def run(tmp_path, **train) -> TrainingRun:
    config = CaptionerConfig()
    for key, value in train.items():
        setattr(config.train, key, value)
    return TrainingRun(config, tf.distribute.get_strategy(), True, tmp_path)


def test_the_vocabulary_is_the_training_words_or_the_resumed_runs(tmp_path):
    vocab = build_vocabulary(captions(), tmp_path / "vocabulary.json", resuming=False)
    assert {"head", "ct", "tiny", "huge"} <= set(vocab.tokens)
    assert "zebra" not in vocab.index  # a validation-only word stays unknown
    saved = build_vocabulary(
        CaptionData(None, captions().frame.iloc[[2]], split([0]), split([0]), TSET, None),
        tmp_path / "vocabulary.json",
        resuming=False,
    )
    saved.save(tmp_path / "vocabulary.json")
    assert build_vocabulary(captions(), tmp_path / "vocabulary.json", resuming=True) == saved
    assert build_vocabulary(captions(), tmp_path / "vocabulary.json", resuming=False) == vocab


def test_targets_encode_both_splits_and_weigh_the_finding_words(tmp_path):
    data = captions()
    vocab = build_vocabulary(data, tmp_path / "v.json", resuming=False)
    targets = caption_targets(run(tmp_path, batch_size=1, max_steps_per_epoch=None), data, vocab)
    length = CaptionerConfig().decoder.max_length + 1
    assert targets.encoded["train"].shape == (2, 2, length)
    assert targets.encoded["val"].shape == (1, 2, length)
    assert targets.val_references == [[["hand", "zebra"], ["hand", "unseen"]]]
    assert targets.steps == 2  # two training images, one per batch
    weight = CaptionerConfig().decoder.field_word_weight
    assert targets.word_weights[vocab.index["small"]] == weight
    assert targets.word_weights[vocab.index["head"]] == 1.0
    assert targets.fields == {}  # no field heads: no field targets


def test_field_heads_learn_the_values_the_captions_state(tmp_path):
    data = captions()
    data.frame["extent"] = ["small", "large", ""]  # '' : a non-diagnostic image states none
    for field in TSET.fields[1:]:
        data.frame[field] = ["", "", ""]
    vocab = build_vocabulary(data, tmp_path / "v.json", resuming=False)
    config = run(tmp_path, batch_size=1, max_steps_per_epoch=None)
    config.config.decoder.field_heads = True
    targets = caption_targets(config, data, vocab)
    assert TSET.fields[0] == "extent"
    assert targets.fields["train"][:, 0].tolist() == [0, 1]  # FIELD_VALUES order
    assert targets.fields["val"].tolist() == [[-1] * len(TSET.fields)]


@pytest.mark.parametrize(
    ("first", "second", "chosen"),
    [(0.5, 0.5, "stage2"), (0.5, 0.6, "stage2"), (0.6, 0.5, "stage1"), (0.5, None, "stage1")],
)
def test_the_better_stage_is_chosen_and_a_tie_goes_to_stage_2(first, second, chosen):
    one = FitResult(best={"findings": first})
    two = None if second is None else FitResult(best={"findings": second})
    assert choose_stage("findings", one, two) == chosen


def test_the_whole_run_adds_up_both_stages():
    first = FitResult(best={"findings": 0.5}, epochs_run=3, seconds=1.5)
    second = FitResult(best={"findings": 0.7}, epochs_run=1, seconds=2.0, resumed_from=1)
    result = whole_run(first, second, "abc")
    assert (result.epochs_run, result.seconds, result.weights_sha256) == (4, 3.5, "abc")
    assert result.best == {"findings": 0.7} and result.resumed_from == 1
    assert whole_run(first, None, "d").best == first.best
    assert stage_summary(second) == {
        "best_val": {"findings": 0.7},
        "epochs_run": 1,
        "resumed_from_epoch": 1,
        "seconds": 2.0,
    }


def test_the_encoder_must_be_a_classifier_run(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "captioner"}))
    with pytest.raises(RunError, match="needs a classifier run folder"):
        load_encoder_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"kind": "classifier", "classes": ["A"]}))
    assert load_encoder_run(tmp_path).run["classes"] == ["A"]


def test_caption_lengths_come_from_the_training_captions():
    """Templates: the minimum is the 5th percentile and max_length is kept; free text
    without a cut of its own: the 25th percentile, and max_length grows to the 90th + 1."""
    lengths = [*range(1, 101)]  # train captions of 1..100 words
    frame = pd.DataFrame({"reference_0": [" ".join(["w"] * n) for n in lengths]})
    train = split(range(len(lengths)))
    templated = CaptionerConfig()
    resolve_lengths(templated, CaptionData(None, frame, train, train, TSET, truth=frame))
    assert (templated.decoder.max_length, templated.decoder.min_length) == (24, 5)

    free = CaptionerConfig()
    source = CaptionSource("file", has_labels=False, has_truth=False, rules=TextRules())
    resolve_lengths(free, CaptionData(None, frame, train, train, None, None, source))
    assert (free.decoder.max_length, free.decoder.min_length) == (91, 25)

    cut = CaptionerConfig()  # a source with its own cut: max_length is left to that
    source = CaptionSource(
        "r2gen", has_labels=False, has_truth=False, rules=TextRules(max_length=60)
    )
    resolve_lengths(cut, CaptionData(None, frame, train, train, None, None, source))
    assert (cut.decoder.max_length, cut.decoder.min_length) == (24, 12)
