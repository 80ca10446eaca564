"""Encoder variants and augmentation as train-step costs, measured in one process, interleaved.

    python benchmarks/encoders.py --data ~/.cache/captioning/mednist
    python benchmarks/encoders.py --data DIR --smoke        # seconds, checks the script only

Encoders: the classifier's training step (loss, gradients, AdamW; batches of real training
images held in memory, no input pipeline) for the default (stride-4 stem, widths 16/32/64/64)
and the variants measured when choosing it: the stride-2 stem (the default before), a
stride-2 stem with narrow widths 8/16/32/64, and a stride-4 stem without the last stage. Ratios
are to the default; every round times each variant once, in turn (``levers.interleaved``).

Augmentation: milliseconds per batch of 128 for the default ranges (translate 5%, zoom 5%),
as one ``RandomAffine`` warp and as the chain of Keras layers it replaced (``RandomTranslation``
then ``RandomZoom``), best of several rounds, interleaved.
Results: experiments/benchmarks/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import record
from levers import classifier_variant, interleaved, with_ratios

VARIANTS = {  # name: ModelConfig overrides
    "default": {},
    "stride2_stem": {"stem_stride": 2},
    "stride2_widths_8_16_32_64": {"stem_stride": 2, "widths": [8, 16, 32, 64]},
    "stride4_widths_16_32_64": {"widths": [16, 32, 64]},
}


def encoder_steps(images, labels, batch: int) -> dict:
    """{variant: (step, batches, model, optimizer)} of the classifier variants (float32)."""
    return {
        name: classifier_variant(images, labels, batch, "float32", False, model=overrides)
        for name, overrides in VARIANTS.items()
    }


def augmentation_ms(images, rounds: int, calls: int) -> dict:
    """Best milliseconds per batch of each augmenter, rounds interleaved."""
    import keras
    import tensorflow as tf

    from captioning.config import AugmentConfig
    from captioning.data.augment import build_augmenter

    config = AugmentConfig()
    chain = keras.Sequential(
        [
            keras.layers.RandomTranslation(
                config.translate, config.translate, fill_mode="constant", seed=0
            ),
            keras.layers.RandomZoom(config.zoom, fill_mode="constant", seed=1),
        ]
    )
    augmenters = {"random_affine": build_augmenter(config, seed=0), "keras_translate_zoom": chain}
    batch = tf.constant(images[:128, ..., None], tf.float32)
    calls_of = {
        name: tf.function(lambda x, a=aug: a(x, training=True), autograph=False)
        for name, aug in augmenters.items()
    }
    for call in calls_of.values():
        call(batch).numpy()  # trace outside the timing
    seen: dict[str, list[float]] = {name: [] for name in calls_of}
    for _ in range(rounds):
        for name, call in calls_of.items():
            tic = time.perf_counter()
            for _ in range(calls):
                call(batch).numpy()
            seen[name].append((time.perf_counter() - tic) / calls * 1000)
    best = {name: round(min(v), 2) for name, v in seen.items()}
    return {
        "ms_per_batch_128": best,
        "rounds": {name: [round(x, 2) for x in v] for name, v in seen.items()},
        "keras_over_random_affine": round(best["keras_translate_zoom"] / best["random_affine"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST root")
    parser.add_argument("--out", help="JSON file (default experiments/benchmarks/encoders.json)")
    parser.add_argument("--smoke", action="store_true", help="few images and steps")
    args = parser.parse_args()
    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    train = data.split("train")
    n, rounds, count = (256, 1, 256) if args.smoke else (2048, 3, 1536)
    images, labels = train.images[:n], train.labels[:n]
    steps = encoder_steps(images, labels, 128)
    result = {
        "smoke": args.smoke,
        "parameters": {name: int(v[2].count_params()) for name, v in steps.items()},
        "train_step": with_ratios(interleaved(steps, rounds, count), "default"),
        "augmentation": augmentation_ms(images, rounds, 5 if args.smoke else 40),
    }
    record("encoders", result, args.out, data_card=data.card)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
