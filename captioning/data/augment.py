"""Training-batch augmentation: one random affine warp per image, in a single resampling pass.

Why one warp: Keras' ``RandomTranslation``, ``RandomZoom``, ``RandomRotation`` and
``RandomShear`` each resample the whole batch; composing the transforms into one matrix per
image and resampling once costs about half as much, on the CPU beside every training step
(measured in ``experiments/speed.md``).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from captioning.config import AugmentConfig


@keras.saving.register_keras_serializable(package="captioning")
class RandomAffine(keras.layers.Layer):
    """Random translation, isotropic zoom, rotation, shear and horizontal flip of (B, H, W, C)
    float images, each image its own draw, resampled once (bilinear; outside pixels 0, black
    like air on a radiograph). Identity unless ``training``.

    Ranges, as in ``AugmentConfig``: shift up to ``translate`` of the side in x and y; scale in
    [1 - zoom, 1 + zoom]; rotation up to ``rotate`` of a full turn; shear (x += k y) with k up
    to ``shear``; a flip with probability 1/2 if ``flip``. Draws come from a seeded
    ``keras.random.SeedGenerator``: the same seed gives the same sequence of warps.
    """

    def __init__(
        self,
        translate: float = 0.0,
        zoom: float = 0.0,
        rotate: float = 0.0,
        shear: float = 0.0,
        flip: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.translate, self.zoom, self.rotate = translate, zoom, rotate
        self.shear, self.flip, self.seed = shear, flip, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, batch, bound: float) -> tf.Tensor:
        """(B,) draws in [-bound, bound]; zeros (and no draw) when ``bound`` is 0."""
        if not bound:
            return tf.zeros([batch])
        return keras.random.uniform([batch], -bound, bound, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        batch = tf.shape(images)[0]
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)
        # output pixel p -> input pixel centre + M (p - centre) - shift, with
        # M = rotation(angle) . shear . diag(sx, 1) / scale; a flip is sx = -1
        scale = 1.0 + self._uniform(batch, self.zoom)
        angle = self._uniform(batch, self.rotate * 2 * math.pi)
        shear = self._uniform(batch, self.shear)
        sx = tf.ones([batch])
        if self.flip:
            coin = keras.random.uniform([batch], seed=self.seed_generator)
            sx = tf.where(coin < 0.5, -1.0, 1.0)
        shift_x = self._uniform(batch, self.translate) * width
        shift_y = self._uniform(batch, self.translate) * height
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        # rotation . [[1, shear], [0, 1]] . diag(sx, 1), divided by scale
        a0, a1 = cos * sx, cos * shear - sin
        b0, b1 = sin * sx, sin * shear + cos
        cx, cy = (width - 1) / 2, (height - 1) / 2
        a2 = cx - a0 * cx - a1 * cy - shift_x
        b2 = cy - b0 * cx - b1 * cy - shift_y
        zeros = tf.zeros([batch])
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # (B, 8)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.shape(images)[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "translate": self.translate,
            "zoom": self.zoom,
            "rotate": self.rotate,
            "shear": self.shear,
            "flip": self.flip,
            "seed": self.seed,
        }


def build_augmenter(config: AugmentConfig, seed: int) -> RandomAffine | None:
    """The augmentation ``config`` asks for, as one ``RandomAffine``; None if all off."""
    c = config
    if not (c.translate or c.zoom or c.rotate or c.shear or c.flip):
        return None
    return RandomAffine(c.translate, c.zoom, c.rotate, c.shear, c.flip, seed=seed, name="augment")
