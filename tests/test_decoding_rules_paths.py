"""With the decoding rules on, ``captioning caption``, the HTTP service (the app, in process)
and an exported SavedModel give the same captions, none with ``<unk>``, a word twice in a row
or a repeated 3-gram; the same run with the rules switched off writes them (the check bites)."""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_captioner_run

pytestmark = pytest.mark.slow  # an export: about a minute of CPU
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def unk_loving_run(run):
    """A tiny untrained run whose decoder favours <unk> and then a few words at every step."""
    from captioning.captions.vocabulary import Vocabulary
    from captioning.utils.runs import read_json, write_json

    model = tiny_captioner_run(run, "attention", max_length=10)
    vocab = Vocabulary.load(run / "vocabulary.json")
    out = model.get_layer("decoder").out
    bias = np.random.default_rng(0).normal(size=len(vocab)) * 0.5
    bias[vocab.unk_id], bias[vocab.end_id] = 8.0, -8.0
    bias[4:7] += 4.0
    out.bias.assign(bias.astype(np.float32))
    out.kernel.assign(out.kernel * 3.0)  # the image still matters
    model.save(run / "best_model.keras")
    config = read_json(run / "config.json")
    config["decoder"].update(block_specials=True, block_repeats=True, min_length=3, beam_width=3)
    write_json(run / "config.json", config)
    return vocab


def broken_rules(words: list[str]) -> set[str]:
    found = {"unk"} if "<unk>" in words else set()
    if any(a == b for a, b in itertools.pairwise(words)):
        found.add("repeat")
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(grams) != len(set(grams)):
        found.add("3-gram")
    return found


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_caption_serve_and_saved_model_agree_with_the_rules_on(tmp_path):
    import tensorflow as tf

    from captioning.cli import main
    from captioning.inference import Captioner
    from captioning.serving.app import create_app
    from captioning.serving.server import running
    from captioning.utils.runs import read_json, write_json

    run = tmp_path / "run"
    run.mkdir()
    unk_loving_run(run)
    pixels = np.random.default_rng(1).integers(0, 256, (6, 64, 64), dtype=np.uint8)
    pixels[:3] //= 5
    files = []
    for i, image in enumerate(pixels):
        files.append(tmp_path / f"image{i}.png")
        files[-1].write_bytes(png(image))

    captioner = Captioner(run)
    found = captioner.caption(pixels)
    assert all(broken_rules(w) == set() and len(w) >= 3 for w in found.words)

    table = tmp_path / "captions.csv"
    assert main(["caption", *map(str, files), "--run", str(run), "--csv", str(table)]) == 0
    with table.open(newline="") as f:
        cli = [row["caption"] for row in csv.DictReader(f)]
    assert cli == found.texts

    with running(create_app(run)) as url:
        answer = httpx.post(
            f"{url}/caption",
            files=[("file", (p.name, p.read_bytes())) for p in files],
            timeout=120,
        )
    assert [r["caption"] for r in answer.json()["results"]] == cli

    out = tmp_path / "export"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    loaded = tf.saved_model.load(str(out / "saved_model"))
    got = loaded.signatures["serving_default"](images=tf.constant([p.read_bytes() for p in files]))
    assert [c.decode() for c in got["caption"].numpy()] == cli

    # the same run without the rules: the faults they remove are there
    config = read_json(run / "config.json")
    config["decoder"].update(block_specials=False, block_repeats=False, min_length=0)
    write_json(run / "config.json", config)
    without = Captioner(run).caption(pixels)
    assert set().union(*(broken_rules(w) for w in without.words)) >= {"unk", "repeat"}
