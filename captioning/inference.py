"""A trained captioner, ready to caption decoded images: the one inference path that
``captioning caption``, ``serve``, ``evaluate`` and ``calibrate`` share.

``Captioner`` loads what a run folder holds (``best_model.keras`` with ``safe_mode=True``,
``vocabulary.json``, the config's decoding settings) and captions batches of decoded images:
caption text, predicted class and its probability (from the classifier head kept in the
end-to-end model), search scores and, for the attention decoder, attention weights per word.

With the run's ``scope.json`` and ``calibration.json`` (written at the end of training, or by
``captioning calibrate --run RUN`` for an older run) every image also gets an out-of-scope score
(``captioning.scope``; an image over the threshold gets no caption unless asked) and a
temperature-scaled confidence for its class and each finding (``captioning.confidence``).
Every caption of a run whose template set states fields also gets its ``findings``: field ->
the value the caption states (the phrase its confidence is the probability of), None where it
states none; no calibration needed, so runs made before confidences have them too.
``captioning.entries.caption_entries`` turns results into the JSON entries users see (CLI
``--json`` and the HTTP service alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from captioning.captions.findings import FIELD_VALUES
from captioning.captions.sentence import run_template_set, to_sentence
from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.confidence import (
    FieldLogits,
    concat_field_logits,
    finding_logits,
    load_calibration,
    stated_findings,
)
from captioning.data.image_spec import run_image_spec, with_channel_axis
from captioning.errors import RunError
from captioning.metrics.calibration import class_groups, group_probs
from captioning.phrasing import content_seeds, opening_words
from captioning.scope import Scope
from captioning.scope.colour import colour_reason, colour_refused
from captioning.scope.evidence import EvidenceReader
from captioning.utils.runs import read_json


@dataclass
class Captions:
    """Results for N images."""

    texts: list[str]
    class_ids: np.ndarray  # (N,) int
    probs: np.ndarray  # (N,) probability of the predicted class
    scores: np.ndarray  # (N,) length-normalised log-probability of the caption
    words: list[list[str]]
    attention: np.ndarray | None  # (N, max_length, P) or None
    class_logits: np.ndarray | None = None  # (N, K) raw head logits
    field_logits: dict[str, FieldLogits] | None = None  # raw grouped logits per finding
    confidence: dict[str, np.ndarray] | None = None  # name -> (N,) prob, NaN where not stated
    ood_score: np.ndarray | None = None  # (N,) higher = further out; None without a scope
    in_scope: np.ndarray | None = None  # (N,) bool; None without a scope
    out_of_scope_reason: list | None = None  # (N,) one line why, None where in scope
    findings: list[dict] | None = None  # (N,) field -> stated value or None; {} without fields


class Captioner:
    """A captioner run folder, ready to caption uint8 images of its ``image_spec`` ((N, 64, 64)
    for MedNIST's default; (N, S, S) or (N, S, S, 3) in general)."""

    def __init__(self, run_dir: str | Path, phrasing: str | None = None):
        import tensorflow as tf

        import captioning.models.decoders  # noqa: F401  (registers the decoder layers)
        from captioning.decoding import DECODING_FILE, CaptionSearch, DecodingRules
        from captioning.models.captioner import image_features
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
        self.image_spec = run_image_spec(self.model, self.run, self.run_dir)  # decode to this
        decoding = self.config["decoder"]
        # the beam width and length penalty chosen on validation, where the run has them
        chosen = self.run_dir / DECODING_FILE
        self.search_choice = read_json(chosen) if chosen.is_file() else None
        decoding = {**decoding, **self._chosen_settings()}
        self.beam_width = int(decoding["beam_width"])
        self.decoder = self.model.get_layer("decoder")
        self.scope = Scope.load(self.run_dir)  # None for a run made before scopes
        self.evidence_reader = EvidenceReader(self.model) if self.scope is not None else None
        self.calibration = load_calibration(self.run_dir)  # None likewise
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
            # runs from before the rules lack their keys: none applied, as they decoded then
            rules=DecodingRules.from_settings(decoding),
            unk_id=self.vocab.unk_id,
        )
        encoder, head = self.model.get_layer("encoder"), self.model.get_layer("logits")

        @tf.function(reduce_retracing=True)
        def encode(pixels):
            features = image_features(encoder, pixels)
            return features, head(features["pooled"])  # logits (B, K)

        decoder = self.decoder

        # the decoder on given captions, for the finding confidences; traced (run eagerly, one
        # call took ~150 ms)
        @tf.function(reduce_retracing=True)
        def teacher_forced(inputs):
            return decoder(inputs, training=False)

        self._encode, self._teacher_forced = encode, teacher_forced
        self._tf = tf

    def _chosen_settings(self) -> dict:
        """``beam_width`` and ``length_alpha`` from ``decoding.json`` (none without one)."""
        if self.search_choice is None:
            return {}
        return {k: self.search_choice[k] for k in ("beam_width", "length_alpha")}

    @property
    def has_attention(self) -> bool:
        return bool(self.decoder.has_attention)

    @property
    def finding_fields(self) -> tuple[str, ...]:
        """The findings its captions state: its template set's fields (none without a set)."""
        return tuple(self.tset.fields) if self.tset else ()

    def resolve_beam(self, beam: int | None) -> int:
        """The beam width to decode with: ``beam``, or the run's ``beam_width`` when None. The
        one place that applies that default and the >= 1 rule (CLI, service, export, evaluate)."""
        width = self.beam_width if beam is None else int(beam)
        if width < 1:
            raise RunError(f"--beam must be at least 1, got {width}")
        return width

    def pooled_features(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        """(N, D) float32: the encoder's pooled vector of uint8 images (N, S, S[, 3]), the vector
        the decoder and the scope read; the retrieval baseline of ``evaluate`` compares them."""
        tf = self._tf
        parts = []
        for i in range(0, len(images), batch):
            pixels = with_channel_axis(tf.cast(tf.constant(images[i : i + batch]), tf.float32))
            features, _ = self._encode(pixels)
            parts.append(np.asarray(features["pooled"], np.float32))  # (b, D)
        if not parts:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(parts)

    def caption(
        self, images: np.ndarray, beam: int | None = None, attention=False, batch=512, colour=None
    ) -> Captions:
        """Caption uint8 images (N, S, S[, 3]); ``beam`` defaults to the run's ``beam_width``;
        ``colour``: (N,) ``colour_spread`` of the files they came from, read by the scope
        check (``captioning.scope.colour``; None: arrays without files, no colour)."""
        tf = self._tf
        width = self.resolve_beam(beam)
        texts, words, logits, scores, maps, findings = [], [], [], [], [], []
        stated = self.finding_fields
        fields: dict[str, list[FieldLogits]] = {f: [] for f in stated}
        for i in range(0, len(images), batch):
            pixels = with_channel_axis(tf.cast(tf.constant(images[i : i + batch]), tf.float32))
            features, z = self._encode(pixels)
            seeds = content_seeds(images[i : i + batch])  # (b,) the phrasing choice's seeds
            found = self.search.search(features, width, attention=attention, seeds=seeds)
            logits.append(z.numpy())
            if self.tset:
                part = finding_logits(
                    self._teacher_forced,
                    features,
                    found.tokens,
                    self.vocab.start_id,
                    self.vocab.tokens,
                    self.tset,
                )
                for name, value in part.items():
                    fields[name].append(value)
            findings += stated_findings(found.tokens, self.vocab.tokens, self.tset)
            scores.append(found.score)
            if found.attention is not None:
                maps.append(found.attention)
            for row in found.tokens:
                w = self.vocab.decode_tokens(row)
                words.append(w)
                texts.append(to_sentence(w, self.tset))  # the template's case and punctuation
        k = len(self.classes)
        logits = np.concatenate(logits) if logits else np.zeros((0, k), np.float32)
        field_logits = {name: concat_field_logits(parts) for name, parts in fields.items()}
        confidence = self.confidences(logits, field_logits)
        ood = in_scope = reasons = None
        if self.scope is not None and len(logits):
            ood, in_scope, reasons = self.judge(images, colour)
        return Captions(
            texts=texts,
            class_ids=logits.argmax(1),
            probs=confidence["class"],
            scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
            words=words,
            attention=np.concatenate(maps) if maps else None,
            class_logits=logits,
            field_logits=field_logits,
            confidence=confidence,
            ood_score=ood,
            in_scope=in_scope,
            out_of_scope_reason=reasons,
            findings=findings,
        )

    def judge(self, images: np.ndarray, colour=None) -> tuple[np.ndarray, np.ndarray, list]:
        """The scope check of uint8 images (N, S, S[, 3]) (``caption``'s ``colour``): (N,)
        out-of-scope score, (N,) in scope, (N,) one-line reason (None where in scope). The
        run's rule, then, for a grey run, the files' colour (``captioning.scope.colour``)."""
        evidence = self.evidence_reader(images)  # the scope's views of the images
        ood = self.scope.scores(evidence)
        in_scope = self.scope.in_scope(ood)
        reasons = self.scope.reasons(evidence, self.classes, ood)
        if colour is not None:
            coloured = colour_refused(colour, self.image_spec.channels)
            in_scope = in_scope & ~coloured
            reasons = [
                colour_reason(c) if out else why
                for c, out, why in zip(colour, coloured, reasons, strict=True)
            ]
        return ood, in_scope, reasons

    def confidences(self, class_logits, field_logits, temperatures=None) -> dict[str, np.ndarray]:
        """Name -> (N,) probability of the predicted class and of each stated finding (NaN
        where the caption states none), scaled by ``temperatures`` (default: the run's
        calibration, else 1)."""
        if temperatures is None:
            temperatures = self.calibration["temperatures"] if self.calibration else {}
        n, k = class_logits.shape
        probs = group_probs(class_logits, class_groups(n, k), temperatures.get("class", 1.0), k)
        out = {"class": probs.max(1) if n else np.zeros(0)}
        for name, f in field_logits.items():
            k = len(FIELD_VALUES[name])
            values = group_probs(f.logits, f.groups, temperatures.get(name, 1.0), k)
            picked = values[np.arange(n), np.maximum(f.chosen, 0)]
            out[name] = np.where(f.chosen >= 0, picked, np.nan)
        return out
