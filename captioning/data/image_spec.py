"""The image setting of a dataset and of every model trained on it: side length, channels and
how a file that is not square becomes a square.

One frozen ``ImageSpec`` is chosen when a dataset is prepared (``data prepare --image-size
--channels --fit``), recorded in its data card (``image_size``, ``image_channels``,
``image_fit``), and read back from there by training, and from a trained run (its model's input
shape and its ``run.json``) by ``caption``, ``serve`` and ``export``. MedNIST's 64x64 grey is
the default: a card or run from before the setting existed reads as that.

``fit``: ``stretch`` (the default) resizes a file straight to SxS, as MedNIST's own images were
made (its radiographs fill the square, with no black bars at their sides) and as captioning
toolkits resize; ``pad`` first pads it with black to a centred
square, keeping its proportions. A card or run from before the setting was ``pad``: it reads as
that and decodes as before. On the bundled model, ``stretch`` keeps more chest radiographs that
are not square in scope as CXR, and fewer real CT and MR images with a class they cannot be
(experiments/scope.md, "Files that are not square").

Cache rows (``images.npy``) are (S, S) uint8 for grey and (S, S, 3) for RGB; models take
(B, S, S, C) float32 (``with_channel_axis`` adds the grey channel axis).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from captioning.errors import DataError

MIN_SIZE, MAX_SIZE = 8, 1024  # px: below 8 no encoder stem fits; above 1024 the cache is huge
CHANNEL_NAMES = {1: "grey", 3: "RGB"}
FITS = ("stretch", "pad")  # how a file that is not square becomes SxS (module doc)
FIT_BEFORE = "pad"  # what a card or run from before the ``fit`` setting decoded with


@dataclass(frozen=True)
class ImageSpec:
    """Square side ``size`` in pixels, ``channels`` (1 grey, 3 RGB) and ``fit`` (``FITS``) of
    decoded images."""

    size: int = 64
    channels: int = 1
    fit: str = "stretch"

    def __post_init__(self):
        size, channels = self.size, self.channels
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise DataError(
                f"image size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, "
                f"got {size!r}"
            )
        if isinstance(channels, bool) or channels not in CHANNEL_NAMES:
            raise DataError(f"image channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        if self.fit not in FITS:
            raise DataError(f"image fit must be one of {', '.join(FITS)}, got {self.fit!r}")

    @property
    def cache_shape(self) -> tuple[int, ...]:
        """One cached image: (S, S) grey, (S, S, 3) RGB."""
        side = (self.size, self.size)
        return side if self.channels == 1 else (*side, self.channels)

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """One model input: (S, S, C)."""
        return (self.size, self.size, self.channels)

    @property
    def mode(self) -> str:
        """Pillow's mode for decoded images: ``L`` or ``RGB``."""
        return "L" if self.channels == 1 else "RGB"

    def describe(self) -> str:
        """``64x64 grey``, ``128x128 RGB, padded``: how messages and cards name it."""
        padded = ", padded" if self.fit == "pad" else ""
        return f"{self.size}x{self.size} {CHANNEL_NAMES[self.channels]}{padded}"

    def card_fields(self) -> dict:
        """What the data card and ``run.json`` record."""
        return {"image_size": self.size, "image_channels": self.channels, "image_fit": self.fit}

    @classmethod
    def from_card(cls, card: dict) -> ImageSpec:
        """The spec a data card (or ``run.json``) records; absent keys: what was decoded before
        the setting existed (64x64 grey, padded)."""
        size, channels = int(card.get("image_size", 64)), int(card.get("image_channels", 1))
        return cls(size, channels, str(card.get("image_fit", FIT_BEFORE)))

    @classmethod
    def from_model(cls, model) -> ImageSpec:
        """The spec of a Keras model whose first input is pixels (B, S, S, C)."""
        shape = tuple(model.inputs[0].shape)
        if len(shape) != 4 or shape[1] != shape[2]:
            raise DataError(f"model {model.name}: input {shape} is not square images")
        return cls(int(shape[1]), int(shape[3]))


DEFAULT_IMAGE = ImageSpec()


def with_channel_axis(pixels):
    """A batch of cached images (B, S, S) or (B, S, S, C), numpy or tensor -> (B, S, S, C):
    grey gets its channel axis, RGB is already there."""
    return pixels[..., None] if len(pixels.shape) == 3 else pixels


def check_same_images(have: ImageSpec, where, want: ImageSpec, run) -> None:
    """Refuse images (``have``, of the data or file ``where``) that differ in size or channels
    from what the run ``run`` was trained on (``want``), with one line naming both. The ``fit``
    may differ: it says how files that are not square were brought to the square, not what the
    model reads (a MedNIST copy prepared before the setting reads as ``pad``, and its images are
    square either way)."""
    if (have.size, have.channels) != (want.size, want.channels):
        raise DataError(
            f"{where}: images are {have.describe()}, but the run {run} was trained on "
            f"{want.describe()}; prepare the data at that setting"
        )


def run_image_spec(model, run: dict, run_dir) -> ImageSpec:
    """What a trained run's images are decoded to: its model's input shape, which must agree
    with what its ``run.json`` records (a run from before the record: the model alone), and the
    ``fit`` its ``run.json`` records (a run from before the setting: ``pad``)."""
    spec = replace(ImageSpec.from_model(model), fit=ImageSpec.from_card(run).fit)
    if "image_size" in run and ImageSpec.from_card(run) != spec:
        raise DataError(
            f"{run_dir}: run.json records {ImageSpec.from_card(run).describe()} images, but "
            f"its model reads {spec.describe()}; the run folder is inconsistent"
        )
    return spec
