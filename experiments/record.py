"""Record one evaluated run as a results artifact, with its provenance:

    python experiments/record.py RUN_DIR --eval EVAL_JSON --name NAME --label "table row" \
        [--group classifier|captioner] [--command "..."] [--note "..."]

RUN_DIR is a training run folder (``run.json``: command, seed, manifest checksum, code commit,
machine; ``metrics.json``); EVAL_JSON is what ``captioning evaluate RUN_DIR --out EVAL_JSON``
wrote. The result goes to ``experiments/results/<group>/<NAME>.json`` (group: the run's kind
unless given). Rows of a table are grouped by ``--label``; ``python experiments/tables.py``
then renders the tables from these files. Fields the run did not record stay null.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing
RESULTS = ROOT / "experiments" / "results"

from captioning.metrics.registry import kept_scores, names  # noqa: E402

# evaluation keys kept in the artifact (the full report, with every caption, stays with the run)
CLASSIFIER_KEYS = ("n", "accuracy", "error_count", "errors")
CAPTIONER_KEYS = (
    *("n", *kept_scores(), "meteor", *names("truth", "generated")),
    *("out_of_scope", "decoding", "templates", "caption_source", "baselines", "content_lexicon"),
)
TRAINING_KEYS = (
    "parameters",
    "epochs_run",
    "best_val",
    "chosen_stage",
    "stage1",  # captioner: each stage's best validation metrics (frozen vs end to end)
    "stage2",
    "readout_rmse",
    "peak_rss_mib",
    "train_seconds_this_process",
    "weights_sha256",
)


class RecordError(Exception):
    """Input that cannot be recorded; printed as one line."""


def read(path: Path) -> dict:
    """A JSON object from ``path``, or a RecordError naming the file and the problem."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable JSON ({err})") from None
    if not isinstance(value, dict):
        raise RecordError(f"{path}: expected a JSON object")
    return value


def command_line(text: str | None) -> str | None:
    """The run's command as a user types it (``python -m captioning.cli`` -> ``captioning``)."""
    if not text:
        return None
    words = shlex.split(text)
    if words and Path(words[0]).name in ("cli.py", "captioning"):
        words[0] = "captioning"
    return shlex.join(words)


def data_block(run: dict) -> dict:
    """Development copy or full archive, and the manifest checksum, as the run recorded them;
    for older runs, from the data card if the dataset is still where it was."""
    from captioning.utils.provenance import data_provenance

    if isinstance(run.get("data"), dict):
        return run["data"]
    card_path = Path(run.get("data_root", "")) / "data_card.json"
    card = read(card_path) if run.get("data_root") and card_path.is_file() else None
    if card and card.get("manifest_sha256") != run.get("manifest_sha256"):
        card = None  # re-prepared since: not the run's data
    block = data_provenance(card)
    block["manifest_sha256"] = run.get("manifest_sha256")
    return block


def build(
    run_dir: Path,
    evaluation: dict,
    name: str,
    label: str,
    command: str | None = None,
    evaluate_command: str | None = None,
    measured: str | None = None,
) -> dict:
    """The results artifact of ``run_dir`` evaluated as ``evaluation`` (at ``measured``)."""
    run = read(run_dir / "run.json")
    metrics = read(run_dir / "metrics.json")
    if evaluation.get("manifest_sha256") not in (None, run.get("manifest_sha256")):
        raise RecordError(f"{run_dir}: evaluated on another dataset than it was trained on")
    kind = run.get("kind")
    keys = CAPTIONER_KEYS if kind == "captioner" else CLASSIFIER_KEYS
    if kind != "captioner":  # a classifier of label columns: each head's accuracy and unseen
        keys = (*keys, *(k for k in evaluation if k.startswith(("accuracy_", "unseen_"))))
    versions = run.get("versions", {})
    code = run.get("code") or {"commit": versions.get("captioning_git_commit"), "dirty": None}
    none = dict.fromkeys(("cpu", "cores", "flags", "memory_mib", "platform"))
    train = command_line(run.get("command"))
    return {
        "schema": 1,
        "name": name,
        "label": label,
        "kind": kind,
        "seed": run.get("seed"),
        "command": command or train,
        "train_command": train,
        "evaluate_command": evaluate_command,
        "evaluate_split": evaluation.get("split"),
        "date": measured,
        "code": code,
        "data": data_block(run),
        # the prepared images' setting (data prepare --image-size/--channels); null: older runs
        "image": {"size": run.get("image_size"), "channels": run.get("image_channels")},
        "machine": run.get("machine") or none,
        "versions": versions,
        "training": {k: metrics[k] for k in TRAINING_KEYS if k in metrics},
        "metrics": {k: evaluation[k] for k in keys if k in evaluation},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--eval", required=True, type=Path, help="captioning evaluate --out JSON")
    parser.add_argument("--name", required=True, help="file name of the artifact, no suffix")
    parser.add_argument("--label", help="table row this result belongs to (default: NAME)")
    parser.add_argument("--group", help="subfolder of experiments/results (default: run kind)")
    parser.add_argument("--command", help="the command to publish, if not the run's own")
    parser.add_argument(
        "--evaluate-command", help="default: captioning evaluate RUN_DIR --out EVAL_JSON"
    )
    parser.add_argument("--headline", action="store_true", help="the README's headline row")
    parser.add_argument("--note", help="anything a reader of the row must know")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    evaluate = args.evaluate_command or shlex.join(
        ["captioning", "evaluate", "--run", str(args.run_dir), "--out", str(args.eval)]
    )
    try:
        evaluation = read(args.eval)
        label = args.label or args.name
        # the date of the measurement: when the evaluation report was written
        measured = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(args.eval.stat().st_mtime))
        result = build(args.run_dir, evaluation, args.name, label, args.command, evaluate, measured)
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.headline:
        result["headline"] = True
    if args.note:
        result["note"] = args.note
    out = args.results / (args.group or result["kind"] or "other") / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
