"""The pretrained model that ships inside the package (``captioning/pretrained/``).

``captioning caption``, ``serve`` and ``export`` use it when no ``--run`` is given, so a fresh
install captions an image without training. It is two ordinary run folders, ``classifier/`` and
``captioner/`` (the inference files only), with a model card beside them
(``MODEL_CARD.md``, ``model_card.json``). ``experiments/bundle_model.py`` writes it from a
classifier and a captioner run trained with the default recipe.
"""

from __future__ import annotations

from pathlib import Path

from captioning.errors import RunError
from captioning.utils.resources import PRETRAINED, package_folder

KINDS = ("classifier", "captioner")
CARD_FILES = ("MODEL_CARD.md", "model_card.json")
# What a bundled run folder keeps: enough to load, decode, check scope and calibrate.
RUN_FILES = {
    "classifier": ("best_model.keras", "config.json", "run.json"),
    "captioner": (
        "best_model.keras",
        "config.json",
        "run.json",
        "vocabulary.json",
        "scope.json",
        "scope.npz",
        "calibration.json",
    ),
}


def bundled_dir() -> Path:
    """The installed ``captioning/pretrained`` folder (it may be empty in a bare checkout)."""
    return package_folder(PRETRAINED)


def bundled_run(kind: str = "captioner") -> Path:
    """The bundled run folder of ``kind``; a one-line error when this install has none."""
    if kind not in KINDS:
        raise ValueError(f"unknown bundled model kind {kind!r}; one of {KINDS}")
    folder = bundled_dir() / kind
    if not (folder / "run.json").is_file() or not (folder / "best_model.keras").is_file():
        raise RunError(
            f"{folder}: this install has no bundled {kind}; pass --run RUN_DIR "
            "(a folder written by 'captioning train')"
        )
    return folder


def resolve_run(run: str | Path | None, kind: str = "captioner") -> Path:
    """``run`` as a folder, or the bundled ``kind`` when ``run`` is None."""
    return bundled_run(kind) if run is None else Path(run)


def bundle_sha256(run_dir: str | Path, kind: str = "captioner") -> str:
    """One sha256 over the files a bundled ``kind`` run keeps (``RUN_FILES``: weights, scope,
    calibration, vocabulary, config): what an artifact measured on the bundle records, so that
    refitting its scope or temperatures, not only retraining its weights, makes it stale."""
    import hashlib

    lines = []
    for name in sorted(RUN_FILES[kind]):
        path = Path(run_dir) / name
        if path.is_file():
            lines.append(f"{name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()
