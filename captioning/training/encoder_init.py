"""Start a classifier's encoder from another classifier run's encoder (``model.init_from``):
transfer learning, e.g. the MedNIST classifier's encoder fine-tuned on the label columns of a
caption dataset (MedPix's modality, plane and body system). Only the encoder's weights are
copied; the heads start fresh, since their classes are the new dataset's.

The source must be a classifier run (or ``bundled``: the MedNIST classifier shipped with the
package) of the same encoder architecture (``model`` section, ``dropout`` aside) trained on
images of the same size and channels; anything else is refused with one line naming the run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras

from captioning.config import ConfigError, ModelConfig, to_dict
from captioning.data.image_spec import ImageSpec, check_same_images
from captioning.errors import RunError
from captioning.models.classifier import load_model
from captioning.utils.runs import read_json

BUNDLED = "bundled"
BEST_MODEL = "best_model.keras"
# ``model`` keys that do not change the encoder's weights (dropout sits after the pooling)
_NOT_ENCODER = ("init_from", "dropout")


def resolve_init_run(init_from: str) -> Path | None:
    """``model.init_from`` as a classifier run folder: None for ``""`` (random
    initialisation), the bundled MedNIST classifier for ``bundled``, else the folder itself,
    checked to hold a classifier run."""
    if not init_from:
        return None
    if init_from == BUNDLED:
        from captioning.bundled import bundled_run

        return bundled_run("classifier")
    path = Path(init_from).expanduser().resolve()
    if not (path / "run.json").is_file() or not (path / BEST_MODEL).is_file():
        raise RunError(
            f"{path}: model.init_from needs a classifier run folder (run.json, {BEST_MODEL})"
        )
    if read_json(path / "run.json").get("kind") != "classifier":
        raise RunError(f"{path}: model.init_from needs a classifier run folder")
    return path


def check_init_run(path: Path, model: ModelConfig, spec: ImageSpec) -> None:
    """Refuse a source run whose encoder differs from the one ``model`` builds, or that was
    trained on images of another size or channels than ``spec``."""
    check_same_images(spec, "the data", ImageSpec.from_card(read_json(path / "run.json")), path)
    theirs = read_json(path / "config.json").get("model", {})
    ours = to_dict(model)
    differ = sorted(key for key in ours if key not in _NOT_ENCODER and theirs.get(key) != ours[key])
    if differ:
        shown = ", ".join(f"{k} {theirs.get(k)!r} (here {ours[k]!r})" for k in differ)
        raise ConfigError(f"{path}: model.init_from's encoder differs: {shown}")


def copy_encoder(model: keras.Model, path: Path) -> None:
    """Set ``model``'s nested ``encoder`` to the weights of the run at ``path``."""
    source = load_model(path / BEST_MODEL).get_layer("encoder")
    model.get_layer("encoder").set_weights(source.get_weights())


def init_record(path: Path | None) -> dict:
    """What ``run.json`` records of the source: its folder and its best model's sha256."""
    if path is None:
        return {}
    digest = hashlib.sha256((path / BEST_MODEL).read_bytes()).hexdigest()
    return {"init_from": {"run": str(path), "best_model_sha256": digest}}
