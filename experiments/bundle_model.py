"""Write the pretrained model that ships in the package (``captioning/pretrained/``):

    captioning quickstart --out quickstart && \
        python experiments/bundle_model.py quickstart/runs/classifier quickstart/runs/captioner

(any classifier and captioner run of the default recipe will do: the captioner must have been
trained on that classifier and evaluated with ``captioning evaluate RUN --out RUN/eval/test.json``,
which quickstart does). It copies each run's inference files (``captioning.bundled.RUN_FILES``)
and the dataset's findings cut points, scrubs local paths out of the run metadata, and writes the
model card (``MODEL_CARD.md`` + ``model_card.json``) from the runs' own test evaluations.

It refuses to run from a checkout with uncommitted changes under ``captioning/`` or
``experiments/`` (``git status --porcelain``): the bundle must come from code a commit names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing

from captioning.bundled import RUN_FILES  # noqa: E402
from captioning.data.template_captions import CAPTIONS_DIR, CUTPOINTS_FILE  # noqa: E402
from captioning.metrics.registry import metric  # noqa: E402

LIMIT_BYTES = 10_000_000  # the budget for the shipped model files
CHECKED = ("captioning", "experiments")  # folders that must be committed before bundling
_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[^\s/]+/)*([^\s/]+)")


def scrub(text: str) -> str:
    """Absolute paths -> their last component (``/x/runs/cls`` -> ``cls``); ``cli.py`` ->
    ``captioning``: the card names the command, not the machine it ran on."""
    text = _ABSOLUTE.sub(lambda m: m.group(1), text)
    return re.sub(r"^\S*cli\.py\b", "captioning", text)


def copy_run(run: Path, kind: str, out: Path) -> dict:
    """Copy ``run``'s inference files into ``out/kind``; return its scrubbed ``run.json``."""
    meta = json.loads((run / "run.json").read_text())
    if meta.get("kind") != kind:
        raise SystemExit(f"{run}: not a {kind} run (kind {meta.get('kind')!r})")
    target = out / kind
    target.mkdir(parents=True)
    for name in RUN_FILES[kind]:
        if not (run / name).is_file():
            raise SystemExit(f"{run / name}: missing (calibrate the run first?)")
        if name != "run.json":
            shutil.copy2(run / name, target / name)
    meta["command"] = scrub(meta.get("command", ""))
    meta["data_root"] = None  # the bundled captioner carries its cut points (below)
    config = json.loads((run / "config.json").read_text())
    config["data"]["root"] = None  # the machine's data folder: not part of the model
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if kind == "captioner":
        meta["encoder_run"] = "../classifier"
        cutpoints = Path(json.loads((run / "run.json").read_text())["data_root"])
        shutil.copy2(cutpoints / CAPTIONS_DIR / CUTPOINTS_FILE, target / CUTPOINTS_FILE)
    (target / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def card_json(runs: dict[str, dict], evals: dict[str, dict], out: Path) -> dict:
    """The model card's facts: data, commands, commits, test metrics, file checksums."""
    cap, clf = evals["captioner"], evals["classifier"]
    findings = cap["findings_accuracy"]
    files = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }
    return {
        "name": "captioning default MedNIST captioner (attention LSTM + findings read-out)",
        "data": {
            **runs["captioner"]["data"],
            "split": "seeded 80/10/10, stratified by class, grouped by image content hash",
            "split_sizes": {**runs["captioner"]["split_sizes"], "test": cap["n"]},
        },
        "runs": {
            kind: {
                "command": meta["command"],
                "commit": meta["code"]["commit"],
                "seed": meta["seed"],
                "machine": meta["machine"]["cpu"],
            }
            for kind, meta in runs.items()
        },
        "test": {
            "n": cap["n"],
            "classifier_accuracy": round(clf["accuracy"], 6),
            "classifier_errors": clf["error_count"],
            "caption_class_accuracy": cap["caption_class_accuracy"],
            "findings_accuracy": {k: v for k, v in findings.items() if k != "all"},
            "all_right": findings["all"],
            "bleu4": cap["bleu4"],
            "cider": cap["cider"],
            "ece": cap["ece"],
            "out_of_scope_rate": cap["out_of_scope_rate"],
            "decoding": {k: cap["decoding"][k] for k in ("beam_width", "length_alpha")},
        },
        "files_sha256": files,
    }


def metric_rows(test: dict) -> list[str]:
    """The card's metric table: labels and formats from ``captioning.metrics.registry``."""

    def cell(name: str, value) -> str:
        return metric(name).format(value)

    errors = f"{test['classifier_errors']} error" + ("" if test["classifier_errors"] == 1 else "s")
    findings = ", ".join(
        f"{k} {cell('findings_accuracy', v)}" for k, v in test["findings_accuracy"].items()
    )
    ece = ", ".join(f"{k} {cell('ece', v)}" for k, v in test["ece"].items())
    rows = [
        ("accuracy", f"{cell('accuracy', test['classifier_accuracy'])} ({errors})"),
        ("caption_class_accuracy", cell("caption_class_accuracy", test["caption_class_accuracy"])),
        ("findings_accuracy.all", cell("findings_accuracy.all", test["all_right"])),
        ("findings_accuracy", findings),
        ("bleu4", cell("bleu4", test["bleu4"])),
        ("cider", cell("cider", test["cider"])),
        ("ece", ece),
        ("out_of_scope_rate", cell("out_of_scope_rate", test["out_of_scope_rate"])),
    ]
    notes = {"ece": " (calibrated)", "out_of_scope_rate": " (in-distribution test images)"}
    return [
        "| metric | value |",
        "|---|---:|",
        *(f"| {metric(k).long_label}{notes.get(k, '')} | {v} |" for k, v in rows),
    ]


CARD_TAIL = """## Intended use and limits

- For research and teaching on MedNIST-like images: 64x64 (or larger, downscaled) grayscale
  crops of the six MedNIST modalities. **Not for diagnosis** or any clinical decision.
- The captions are templated: they state the modality and four pixel-measured findings, not
  pathology. An image unlike the training data (out of scope) gets no caption and one line
  saying why; the check compares the image with its nearest training images of the class it
  is given (on its encoder features, mid-level features and pixel statistics), fitted to keep
  99.7% of validation images, and refuses colour files (the model reads grey). It still lets
  through a few real CT and MR images of other body parts, each with a class it cannot be, and
  refuses many shifted MedNIST images (see `experiments/scope.md` in the source repository).
- Confidences are temperature-calibrated on the validation split of the same data.

## Licence

The weights are derived from MedNIST (the MONAI project's collection of images from TCIA, the
RSNA Bone Age challenge and the NIH Chest X-ray dataset), distributed under **CC BY-SA 4.0**;
share them under the same terms and credit those sources.
"""


def fit_line(card: dict) -> str:
    """The card's sentence on how a file that is not square is decoded (``image_fit``)."""
    fit = card.get("image_fit", {}).get("fit")
    if fit is None:  # a bundle from before the setting
        return ""
    how = "stretched to 64x64, as MedNIST was made" if fit == "stretch" else "padded to a square"
    return f"\nA file that is not square is {how} (`image_fit` {fit})."


def render_card(card: dict) -> str:
    """``MODEL_CARD.md``: the card's facts for a person, with intended use, limits and licence."""
    test, data = card["test"], card["data"]
    sizes = " / ".join(f"{k} {v:,}" for k, v in data["split_sizes"].items())
    commands = "\n".join(
        f"- {kind}: `{run['command']}` (commit `{run['commit'][:12]}`, seed {run['seed']}, "
        f"{run['machine']})"
        for kind, run in card["runs"].items()
    )
    table = "\n".join(metric_rows(test))
    return f"""# Model card: {card["name"]}

The model `captioning caption`, `serve` and `export` use when no `--run` is given: the
default classifier (`classifier/`) and the default attention captioner trained on it
(`captioner/`). Facts in machine-readable form: `model_card.json`.

## Data and split

MedNIST ({data["copy"]} copy: {data["images"]:,} 64x64 grayscale images in 6 classes:
AbdomenCT, BreastMRI, CXR, ChestCT, Hand, HeadCT), manifest sha256
`{data["manifest_sha256"][:12]}`; {data["split"]}: {sizes}.{fit_line(card)}
Captions: the `findings` template set, whose findings (brightness, density, extent, quality)
are measured from each image's pixels. The decoder is told extent, density and brightness by
a linear read-out of the image's intensity histogram fitted by least squares to those pixel
measurements (not learned by the CNN: `experiments/findings_accuracy.md` in the source
repository measures the learned alternative).

## How it was made

{commands}

then `python experiments/bundle_model.py CLASSIFIER_RUN CAPTIONER_RUN`.

## Test split ({test["n"]:,} images, beam {test["decoding"]["beam_width"]})

{table}

{CARD_TAIL}"""


def uncommitted(checkout: Path) -> list[str]:
    """Paths under ``CHECKED`` that ``git status --porcelain`` reports in ``checkout``
    (modified, staged, deleted or untracked). Raises ``SystemExit`` when git cannot tell."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--", *CHECKED],
            cwd=checkout, capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as err:
        problem = getattr(err, "stderr", "") or str(err)
        raise SystemExit(
            f"{checkout}: not a git checkout ({problem.strip().splitlines()[0]})"
        ) from None
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("classifier", type=Path, help="classifier run folder")
    parser.add_argument("captioner", type=Path, help="captioner run folder (on that classifier)")
    parser.add_argument("--out", type=Path, default=ROOT / "captioning" / "pretrained")
    args = parser.parse_args(argv)
    dirty = uncommitted(ROOT)
    if dirty:
        raise SystemExit(
            f"{ROOT}: uncommitted changes in {' or '.join(f'{c}/' for c in CHECKED)} "
            f"({len(dirty)}, e.g. {dirty[0]}): commit them first, so the bundle names its code"
        )
    staging = args.out.with_name(args.out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    runs = {kind: copy_run(getattr(args, kind), kind, staging) for kind in RUN_FILES}
    evals = {
        kind: json.loads((getattr(args, kind) / "eval" / "test.json").read_text())
        for kind in RUN_FILES
    }
    card = card_json(runs, evals, staging)
    (staging / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (staging / "MODEL_CARD.md").write_text(render_card(card))
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    if size > LIMIT_BYTES:
        raise SystemExit(f"bundle is {size:,} bytes > {LIMIT_BYTES:,}")
    shutil.rmtree(args.out, ignore_errors=True)
    staging.rename(args.out)
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
