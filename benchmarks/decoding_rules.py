"""How often a captioner writes ``<unk>`` and repeats, with and without the decoding rules:

    python benchmarks/decoding_rules.py RUN_DIR --data ROOT [--split val] [--name NAME]

Captions the split's images twice with the run as saved (its beam width and length penalty),
once with its rules and once from a copy of the run whose config lacks them (how a run saved
before them decodes). Per setting: the share of captions with ``<unk>``, with a word twice in a
row, with a repeated 3-gram, that ran to ``max_length`` without ``<end>``, the mean length and
corpus BLEU-4 against the split's references. Written with its provenance to
``experiments/benchmarks/<name>.json``. The run's search choice (decoding.json) was fitted on
the validation split: BLEU-4 on ``val`` is not independent evidence of quality, the shares are
what this measures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
from pathlib import Path

from common import record

from captioning.captions.vocabulary import VOCABULARY_FILE, Vocabulary
from captioning.data.caption_data import reference_tokens
from captioning.data.dataset import PreparedData
from captioning.data.sources import caption_source
from captioning.inference import Captioner
from captioning.metrics.bleu import corpus_bleu

RULE_KEYS = ("block_specials", "block_repeats", "min_length")


def shares(words: list[list[str]], max_length: int) -> dict:
    n = max(len(words), 1)

    def share(test) -> float:
        return round(sum(map(test, words)) / n, 4)

    def trigram_repeat(w):
        grams = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
        return len(grams) != len(set(grams))

    return {
        "unk_share": share(lambda w: "<unk>" in w),
        "repeat_in_a_row_share": share(lambda w: any(a == b for a, b in itertools.pairwise(w))),
        "trigram_repeat_share": share(trigram_repeat),
        "no_end_share": share(lambda w: len(w) >= max_length),
        "mean_words": round(sum(map(len, words)) / n, 2),
    }


def measure(run: Path, images, references) -> dict:
    captioner = Captioner(run)
    words = captioner.caption(images).words
    result = shares(words, captioner.search.max_length)
    result["bleu4"] = round(corpus_bleu(words, references)[3], 4)
    result["beam_width"], result["length_alpha"] = (
        captioner.beam_width,
        captioner.search.length_alpha,
    )
    result["rules"] = vars(captioner.search.rules)
    result["examples"] = [" ".join(w) for w in words[:5]]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--name", default="decoding_rules")
    args = parser.parse_args()
    data = PreparedData(args.data)
    split = data.split(args.split)
    frame = caption_source(data).frame(data)
    vocab = Vocabulary.load(args.run / VOCABULARY_FILE)  # the source's tokeniser
    references = reference_tokens(frame.iloc[split.rows], vocab.tokenize)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "run_without_rules"
        shutil.copytree(args.run, old)
        config = json.loads((old / "config.json").read_text())
        for key in RULE_KEYS:
            config["decoder"].pop(key, None)
        (old / "config.json").write_text(json.dumps(config))
        without = measure(old, split.images, references)
    with_rules = measure(args.run, split.images, references)
    run_json = json.loads((args.run / "run.json").read_text())
    result = {
        "run": str(args.run),
        "run_command": run_json.get("command"),
        "split": args.split,
        "images": len(split.images),
        "with_rules": with_rules,
        "without_rules": without,
        "data": {"root": str(args.data), "manifest_sha256": data.card.get("manifest_sha256")},
    }
    print(json.dumps({k: result[k] for k in ("with_rules", "without_rules")}, indent=2))
    record(args.name, result, data_card=data.card)


if __name__ == "__main__":
    main()
