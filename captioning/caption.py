"""Captioning images with a trained captioner run: ``captioning caption RUN_DIR IMAGE...``.

``Captioner`` loads what a run folder holds (``best_model.keras``, ``vocabulary.json``, the
config's decoding settings) and captions batches of decoded images: caption text, predicted
class and its probability (from the classifier head kept in the end-to-end model), search
scores and, for the attention decoder, attention weights per word.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from captioning.captions.sentence import run_template_set, to_sentence
from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.data.images import ImageError, load_image
from captioning.errors import RunError
from captioning.phrasing import content_seeds, opening_words
from captioning.runs import read_json


@dataclass
class Captions:
    """Results for N images."""

    texts: list[str]
    class_ids: np.ndarray  # (N,) int
    probs: np.ndarray  # (N,) probability of the predicted class
    scores: np.ndarray  # (N,) length-normalised log-probability of the caption
    words: list[list[str]]
    attention: np.ndarray | None  # (N, max_length, P) or None


class Captioner:
    """A captioner run folder, ready to caption uint8 images (N, 64, 64)."""

    def __init__(self, run_dir: str | Path, phrasing: str | None = None):
        import tensorflow as tf

        import captioning.models.decoders  # noqa: F401  (registers the decoder layers)
        from captioning.decoding import CaptionSearch
        from captioning.models.classifier import load_model

        self.run_dir = Path(run_dir)
        self.run = read_json(self.run_dir / "run.json")
        if self.run.get("kind") != "captioner":
            raise RunError(f"{self.run_dir}: not a captioner run (kind {self.run.get('kind')!r})")
        self.config = read_json(self.run_dir / "config.json")
        self.classes: list[str] = self.run["classes"]
        self.templates: str = self.run["templates"]
        self.vocab = Vocabulary.load(self.run_dir / VOCABULARY_FILE)
        self.tset = run_template_set(self.templates)  # None: the run's set is gone
        self.model = load_model(self.run_dir / "best_model.keras")
        decoding = self.config["decoder"]
        self.beam_width = int(decoding["beam_width"])
        self.decoder = self.model.get_layer("decoder")
        self.search = CaptionSearch(
            self.decoder,
            start_id=self.vocab.start_id,
            end_id=self.vocab.end_id,
            max_length=int(decoding["max_length"]),
            length_alpha=float(decoding["length_alpha"]),
            # runs from before the option: their own search ("best")
            phrasing=phrasing or decoding.get("phrasing", "best"),
            phrasing_ratio=float(decoding.get("phrasing_ratio", 0.5)),
            phrasing_words=opening_words(self.tset, self.vocab.index) if self.tset else (),
        )
        encoder, head = self.model.get_layer("encoder"), self.model.get_layer("logits")

        @tf.function(reduce_retracing=True)
        def encode(pixels):
            features = encoder(pixels, training=False)
            return features, tf.nn.softmax(head(features["pooled"]), -1)

        self._encode = encode
        self._tf = tf

    @property
    def has_attention(self) -> bool:
        return bool(self.decoder.has_attention)

    def caption(
        self, images: np.ndarray, beam: int | None = None, attention=False, batch=512
    ) -> Captions:
        """Caption uint8 images (N, 64, 64); ``beam`` defaults to the run's ``beam_width``."""
        tf = self._tf
        width = self.beam_width if beam is None else int(beam)
        if width < 1:
            raise RunError(f"--beam must be at least 1, got {width}")
        texts, words, ids, probs, scores, maps = [], [], [], [], [], []
        for i in range(0, len(images), batch):
            pixels = tf.cast(tf.constant(images[i : i + batch]), tf.float32)[..., None]
            features, p = self._encode(pixels)
            seeds = content_seeds(images[i : i + batch])  # (b,) the phrasing choice's seeds
            found = self.search.search(features, width, attention=attention, seeds=seeds)
            p = p.numpy()
            ids.append(p.argmax(1))
            probs.append(p.max(1))
            scores.append(found.score)
            if found.attention is not None:
                maps.append(found.attention)
            for row in found.tokens:
                w = self.vocab.decode_tokens(row)
                words.append(w)
                texts.append(to_sentence(w, self.tset))  # the template's case and punctuation
        return Captions(
            texts=texts,
            class_ids=np.concatenate(ids) if ids else np.zeros(0, np.int64),
            probs=np.concatenate(probs) if probs else np.zeros(0, np.float32),
            scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
            words=words,
            attention=np.concatenate(maps) if maps else None,
        )


def write_attention_png(image: np.ndarray, words: list[str], attention: np.ndarray, path: Path):
    """The image, then one panel per word with its attention map (S x S, upsampled to the
    image) overlaid in colour. ``attention``: (max_length, P) with P = S * S."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = math.isqrt(attention.shape[-1])
    words = [*words, "<end>"][: len(attention)]
    panels = len(words) + 1
    cols = min(panels, 6)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes.flat[0].set_title("image", fontsize=8)
    extent = (0, image.shape[1], image.shape[0], 0)
    for ax, word, alpha in zip(axes.flat[1:], words, attention, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(alpha.reshape(side, side), cmap="jet", alpha=0.45, extent=extent)
        ax.set_title(word, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def caption_files(
    run_dir: str | Path,
    paths: list[str],
    beam: int | None = None,
    as_json: bool = False,
    attention_dir: str | Path | None = None,
    out=sys.stdout,
) -> int:
    """Caption image files; print one line (or JSON object) per file, in order. A file that
    cannot be read gets an error entry and the rest are still captioned. Returns the exit code
    (1 if any file failed)."""
    captioner = Captioner(run_dir)
    entries: list[dict] = []
    images, good = [], []
    for i, path in enumerate(paths):
        try:
            images.append(load_image(path))
            good.append(i)
            entries.append({"path": path})
        except ImageError as err:
            entries.append({"path": path, "error": err.problem})
    want_attention = attention_dir is not None and captioner.has_attention
    if images:
        result = captioner.caption(np.stack(images), beam=beam, attention=want_attention)
        for j, i in enumerate(good):
            entries[i].update(
                caption=result.texts[j],
                **{"class": captioner.classes[int(result.class_ids[j])]},
                prob=round(float(result.probs[j]), 6),
            )
            if want_attention:
                name = f"{i:03d}_{Path(paths[i]).stem}.png"
                write_attention_png(
                    images[j], result.words[j], result.attention[j], Path(attention_dir) / name
                )
                entries[i]["attention_png"] = str(Path(attention_dir) / name)
    for entry in entries:
        if as_json:
            print(json.dumps(entry), file=out)
        elif "error" in entry:
            print(f"error: {entry['path']}: {entry['error']}", file=sys.stderr)
        else:
            print(
                f"{entry['path']}: {entry['caption']}  [{entry['class']} {entry['prob']:.4f}]",
                file=out,
            )
    if attention_dir is not None and not captioner.has_attention:
        print("note: this decoder has no attention; no overlays written", file=sys.stderr)
    return 1 if any("error" in e for e in entries) else 0
