"""The captioner's model parts: the encoder run's encoder, class head and (``decoder.labels``)
label heads, and a fresh decoder of the config's kind, all created under the run's strategy."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from captioning.captions.findings import FIELD_VALUES, measured
from captioning.captions.templates import TemplateSet
from captioning.config import ConfigError, DecoderConfig
from captioning.models.classifier import load_model
from captioning.models.decoders import CaptionDecoder, build_decoder, decoder_settings, decoders
from captioning.training.captioner_setup import BEST_MODEL, EncoderRun, TrainingRun


@dataclass
class CaptionerParts:
    """The pretrained encoder and class head (from the encoder run), the new decoder, and
    the encoder run's label heads it copies (``decoder.labels``; else empty)."""

    encoder: object  # keras.Model: pixels -> feature map
    head: object  # keras layer: pooled features -> class logits
    decoder: CaptionDecoder
    label_heads: list = dataclasses.field(default_factory=list)  # Dense layers, pooled -> logits


def build_model(
    run: TrainingRun, encoder: EncoderRun, vocab_size: int, template_set: TemplateSet | None
) -> CaptionerParts:
    """The encoder run's encoder and class head, and a new decoder of the config's kind (not
    yet built; with a findings read-out of the set's fields when ``decoder.readout`` is on,
    room for the encoder run's label heads when ``decoder.labels`` is, and a trained head per
    field when ``decoder.field_heads`` is), all created under the
    strategy (stage 2 trains the encoder: its variables are mirrored)."""
    dec: DecoderConfig = run.config.decoder
    # the read-out states the measured findings (those with a cut point), never drawn fields
    readout = len(measured(template_set.fields)) if dec.readout and template_set else 0
    with run.strategy.scope():
        classifier = load_model(encoder.path / BEST_MODEL)
        # one head per label column (``head_layers``: column -> layer), or the class head
        names = encoder.run.get("head_layers") or {"class": "logits"}
        heads = [classifier.get_layer(name) for name in names.values()] if dec.labels else []
        if heads and "label_sizes" not in decoder_settings(decoders()[dec.kind]):
            raise ConfigError(f"decoder.labels: the '{dec.kind}' decoder reads no label heads")
        # every other ``[decoder]`` setting the decoder's constructor takes, by name
        settings = {
            k: v
            for k, v in dataclasses.asdict(dec).items()
            if k not in ("kind", "readout", "labels", "field_heads")
        }
        decoder = build_decoder(
            dec.kind,
            vocab_size,
            readout=readout,
            label_sizes=tuple(head.units for head in heads),
            field_sizes=field_sizes(dec, template_set),
            **settings,
        )
    return CaptionerParts(
        classifier.get_layer("encoder"), classifier.get_layer("logits"), decoder, heads
    )


def field_sizes(dec: DecoderConfig, template_set: TemplateSet | None) -> tuple[int, ...]:
    """The value count of each field of the set, one field head each (``decoder.field_heads``),
    or () without them; a caption source without fields (free text) has nothing to learn."""
    if not dec.field_heads:
        return ()
    if template_set is None or not template_set.fields:
        raise ConfigError("decoder.field_heads: these captions state no findings to learn")
    return tuple(len(FIELD_VALUES[name]) for name in template_set.fields)
