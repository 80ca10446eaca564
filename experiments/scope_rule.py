"""The out-of-scope rule of a run on images it never saw: MedNIST's test split, real CT and MR
(MedPix 2.0), a proxy for real chest radiographs, and generated photographs, noise and patterns.

    python experiments/scope_rule.py --data MEDNIST_PREPARED [--run RUN] [--medpix MEDPIX_DIR]

- MedNIST test: the share flagged (should stay <= 0.5%).
- MedPix (``captions.csv`` + ``images/``; rule of ``scope_real_ct_mr.POSSIBLE``): per split, the
  share in scope, in scope with a class the image cannot be, in scope with a possible class.
- CXR proxy: 400 MedNIST CXR test images enlarged to 256-2,048 px, JPEG (quality 75-95), grey
  stored as RGB: the share kept in scope as CXR; and two sets of 400 that are not square, as
  most real radiographs are not: squeezed to 0.8 times as wide as tall (or as tall as wide),
  and cut to 0.8 of their width (or height), a narrower field of the same anatomy.
- Photographs (scikit-image's and scikit-learn's sample photos, whole and cropped, colour and
  grey, PNG and JPEG), noise (uniform, Gaussian, salt-and-pepper, smooth) and patterns
  (gradients, checkerboards, stripes), grey and colour, 64-512 px: the share in scope.
Every image goes through ``decode_image`` at the run's image setting (``fit`` included), as
``caption`` reads files, and is judged as
``caption`` judges it: the run's rule, then (a grey run) the file's colour
(``captioning.scope.colour``). Nothing here is fitted.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scope_common import ROOT, record
from scope_real_ct_mr import POSSIBLE

from captioning.data.image_spec import DEFAULT_IMAGE
from captioning.data.images import decode_image
from captioning.scope.colour import colour_refused

SKIMAGE_PHOTOS = ("astronaut", "camera", "cat", "chelsea", "coffee", "rocket", "clock", "coins")
SKIMAGE_PHOTOS += ("moon", "page", "text", "grass", "gravel", "brick", "hubble_deep_field")
SKIMAGE_PHOTOS += ("colorwheel", "immunohistochemistry", "retina", "cell", "logo")


def encoded(pixels: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(files: list[bytes], names=None, spec=DEFAULT_IMAGE) -> tuple[np.ndarray, np.ndarray]:
    """Encoded files -> their pixels (N, 64, 64) and (N,) colour spreads, as ``caption``
    reads them (at the run's ``spec``)."""
    out = [
        decode_image(data, name or "<bytes>", spec)
        for data, name in zip(files, names or [None] * len(files), strict=True)
    ]
    return np.stack([d.pixels for d in out]), np.array([d.colour for d in out])


def photographs(rng, n: int = 1200, spec=DEFAULT_IMAGE) -> tuple:
    """Whole photos and random square crops (48 px to the short side), half in grey: pixels,
    colour spreads and kinds."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
    photos = [p if p.ndim == 2 else p[..., :3] for p in photos + list(load_sample_images().images)]
    images, kinds = [], []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        if i >= 2 * len(photos):  # the first two rounds: whole photos
            side = int(rng.integers(48, min(h, w) + 1))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            photo = photo[y : y + side, x : x + side]
        if (i // len(photos)) % 2 and photo.ndim == 3:
            photo = (photo.astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        images.append(encoded(photo, fmt))
        kinds.append("colour" if photo.ndim == 3 else "grey")
    return (*decoded(images, spec=spec), kinds)


def noise_and_patterns(
    rng, n: int = 600, spec=DEFAULT_IMAGE
) -> tuple[np.ndarray, np.ndarray, list]:
    """Six kinds in turn, grey and colour alternately, 64-512 px: pixels, colour spreads and
    kinds."""
    images, kinds = [], []
    for i in range(n):
        side, kind = int(rng.choice([64, 128, 256, 512])), i % 6
        if kind == 0:
            x = rng.uniform(0, 255, (side, side))
        elif kind == 1:
            x = rng.normal(rng.uniform(30, 220), rng.uniform(10, 80), (side, side))
        elif kind == 2:
            x = np.where(rng.random((side, side)) < rng.uniform(0.05, 0.5), 255.0, 0.0)
        elif kind == 3:
            small = rng.uniform(0, 255, (8, 8)).astype(np.uint8)
            x = np.asarray(Image.fromarray(small).resize((side, side), Image.BILINEAR), float)
        elif kind == 4:
            angle = rng.uniform(0, 2 * np.pi)
            yy, xx = np.mgrid[0:side, 0:side] / side
            x = np.cos(angle) * xx + np.sin(angle) * yy
            x = (x - x.min()) / (np.ptp(x) + 1e-9) * rng.uniform(60, 255)
        else:
            cells = int(rng.integers(2, 16))
            yy, xx = np.mgrid[0:side, 0:side] * cells // side
            x = ((yy + xx) % 2 if rng.random() < 0.5 else xx % 2) * rng.uniform(60, 255)
        x = np.clip(x, 0, 255).round().astype(np.uint8)
        colour = i % 2 == 1
        if colour:
            x = np.stack([x, np.roll(x, 7, 0), 255 - x], -1)
        images.append(encoded(x))
        name = ("uniform", "gaussian", "salt_pepper", "smooth", "gradient", "checker")[kind]
        kinds.append(f"{name}_{'colour' if colour else 'grey'}")
    return (*decoded(images, spec=spec), kinds)


def cxr_proxy(
    data, rng, n: int = 400, aspect: float = 1.0, cut: bool = False, spec=DEFAULT_IMAGE
) -> tuple[np.ndarray, np.ndarray]:
    """MedNIST CXR test images enlarged (bicubic) to 256-2,048 px, JPEG, grey stored as RGB:
    pixels and colour spreads. ``aspect`` < 1: the short side that much of the long one,
    portrait and landscape in turn, the whole image squeezed to it, or with ``cut`` its centre
    cut to it (a narrower field of the same anatomy)."""
    test = data.split("test")
    rows = np.flatnonzero(test.labels == data.classes.index("CXR"))
    images = []
    for i, row in enumerate(rng.choice(rows, min(n, len(rows)), replace=False)):
        side = int(rng.choice([256, 512, 1024, 2048]))
        short = round(side * aspect)
        size = (side, side if cut else short)[:: 1 if i % 2 else -1]
        big = Image.fromarray(test.images[row]).resize(size, Image.BICUBIC).convert("RGB")
        if cut:
            margin = (side - short) // 2
            box = (margin, 0, margin + short, side) if i % 2 else (0, margin, side, margin + short)
            big = big.crop(box)
        images.append(encoded(np.asarray(big), "JPEG", int(rng.integers(75, 96))))
    return decoded(images, spec=spec)


def judged(model, scope, images: np.ndarray, colour=None) -> tuple[np.ndarray, np.ndarray]:
    """(N,) in scope and (N,) the class given, of images (N, S, S[, 3]) decoded from files
    whose (N,) colour spreads are ``colour`` (None: no files, as a prepared split)."""
    from captioning.scope import encoder_outputs

    evidence = encoder_outputs(model, images)
    kept = scope.in_scope(scope.scores(evidence))
    if colour is not None:
        kept &= ~colour_refused(colour, 1 if images.ndim == 3 else 3)
    return kept, evidence["logits"].argmax(1)


def read_medpix(folder: Path, spec=DEFAULT_IMAGE):
    """MedPix's ``captions.csv`` table, its images (N, 64, 64) and (N,) colour spreads,
    decoded as ``caption`` reads files; and per image the MedNIST class it may be given (None:
    no class is possible)."""
    import pandas as pd

    table = pd.read_csv(folder / "captions.csv")
    files = [(folder / "images" / f).read_bytes() for f in table["image"]]
    images, colour = decoded(files, list(table["image"]), spec)
    allowed = [
        POSSIBLE.get(pair) for pair in zip(table["modality"], table["location"], strict=True)
    ]
    return table, images, colour, allowed


def medpix_rates(model, scope, classes, folder: Path, spec=DEFAULT_IMAGE) -> dict:
    """Per MedPix split: the share in scope, in scope with an impossible or a possible class."""
    table, images, colour, allowed = read_medpix(folder, spec)
    return split_rates(table, allowed, classes, *judged(model, scope, images, colour))


def split_rates(table, allowed, classes, kept: np.ndarray, given: np.ndarray) -> dict:
    """``medpix_rates`` of images already judged: (N,) in scope, (N,) the class given."""
    possible = np.array([a == classes[g] for a, g in zip(allowed, given, strict=True)])
    out = {}
    for split in sorted(set(table["split"])):
        rows = (table["split"] == split).to_numpy()
        out[split] = {
            "images": int(rows.sum()),
            "in_scope": round(float(kept[rows].mean()), 4),
            "in_scope_impossible": round(float((kept & ~possible)[rows].mean()), 4),
            "in_scope_possible": round(float((kept & possible)[rows].mean()), 4),
            "of_a_mednist_kind": round(
                float(np.mean([a is not None for a in np.array(allowed, object)[rows]])), 4
            ),
        }
    return out


def shares(kept: np.ndarray, kinds: list[str]) -> dict:
    kinds = np.array(kinds)
    return {
        "images": len(kept),
        "in_scope": round(float(kept.mean()), 4),
        "in_scope_by_kind": {k: int(kept[kinds == k].sum()) for k in sorted(set(kinds))},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the run's prepared MedNIST folder")
    parser.add_argument("--run", default=str(ROOT / "captioning" / "pretrained" / "captioner"))
    parser.add_argument("--medpix", type=Path, help="MedPix 2.0 folder (captions.csv, images/)")
    parser.add_argument("--name", default="scope_rule_bundled")
    args = parser.parse_args(argv)
    import captioning.models.decoders  # noqa: F401  (a captioner's model needs them)
    from captioning.data.dataset import PreparedData
    from captioning.data.image_spec import run_image_spec
    from captioning.models.classifier import load_model
    from captioning.scope import Scope

    run_dir = Path(args.run)
    model, scope = load_model(run_dir / "best_model.keras"), Scope.load(run_dir)
    spec = run_image_spec(model, json.loads((run_dir / "run.json").read_text()), run_dir)
    data, rng = PreparedData(args.data), np.random.default_rng(0)
    kept, _ = judged(model, scope, data.split("test").images)
    result = {
        "run": args.run,
        "method": scope.method,
        "image_fit": spec.fit,
        "mednist_test_flagged": round(1 - float(kept.mean()), 4),
    }
    cxr = data.classes.index("CXR")
    kept, given = judged(model, scope, *cxr_proxy(data, rng, spec=spec))
    result["cxr_proxy_kept_as_cxr"] = round(float((kept & (given == cxr)).mean()), 4)
    for name, make in (("photographs", photographs), ("noise_and_patterns", noise_and_patterns)):
        images, colour, kinds = make(rng, spec=spec)
        result[name] = shares(judged(model, scope, images, colour)[0], kinds)
    # not square (aspect 0.8): their own draws, so the sets above keep theirs
    for key, seed, cut in (("aspect", 1, False), ("cut", 2, True)):
        proxy = cxr_proxy(data, np.random.default_rng(seed), aspect=0.8, cut=cut, spec=spec)
        kept, given = judged(model, scope, *proxy)
        result[f"cxr_proxy_{key}_0.8_kept_as_cxr"] = round(float((kept & (given == cxr)).mean()), 4)
    if args.medpix:
        result["medpix"] = medpix_rates(model, scope, data.classes, args.medpix, spec)
    print(result)
    record(
        args.name,
        result,
        {
            "mednist": str(data.root.name),
            "manifest_sha256": data.manifest_sha256,
            "medpix": args.medpix and args.medpix.name,
        },
    )


if __name__ == "__main__":
    main()
