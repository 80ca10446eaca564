"""The captioner through the command line on real MedNIST images: train (both stages),
caption files (one of them unreadable), evaluate."""

from __future__ import annotations

import json

import pytest

from captioning.captions.findings import FIELDS

from helpers import cli, cli_here

TINY_DECODER = [
    "--set",
    "decoder.hidden=16",
    "--set",
    "decoder.embed_dim=8",
    "--set",
    "decoder.attention_dim=8",
]


@pytest.fixture(scope="module")
def captioner_run(mednist_small, tmp_path_factory):
    work = tmp_path_factory.mktemp("captioner")
    # trained in this process (the runs are read here; the commands' start-up is tested below)
    done = cli_here(
        "train", "classifier", "--data", str(mednist_small), "--smoke", "--run-dir", "clf", cwd=work
    )
    assert done.returncode == 0, done.stderr[-2000:]
    done = cli_here(
        "train",
        "captioner",
        "--data",
        str(mednist_small),
        "--encoder",
        "clf",
        "--smoke",
        "--run-dir",
        "cap",
        *TINY_DECODER,
        cwd=work,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return work, work / "cap"


@pytest.mark.slow
def test_training_writes_a_self_contained_run_folder(captioner_run, mednist_small):
    _, run = captioner_run
    for name in ("best_model.keras", "vocabulary.json", "config.json", "metrics.json"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "captioner" and meta["templates"] == "findings"
    assert meta["data"]["manifest_sha256"] == meta["manifest_sha256"]  # provenance recorded
    assert set(meta["code"]) == {"commit", "dirty"} and meta["machine"]["cores"] >= 1
    assert (mednist_small / "captions" / "findings.csv").is_file()  # built when missing
    kept = json.loads((run / "cutpoints.json").read_text())  # the bins, kept with the run
    assert kept == json.loads((mednist_small / "captions" / "cutpoints.json").read_text())
    assert (run / "stage1" / "log.csv").is_file() and (run / "stage2" / "log.csv").is_file()
    header = (run / "stage1" / "log.csv").read_text().splitlines()[0]
    assert "val_bleu4" in header and "val_findings" in header and "val_extent_accuracy" in header
    metrics = json.loads((run / "metrics.json").read_text())
    chosen = metrics["chosen_stage"]
    assert chosen in ("stage1", "stage2")
    assert metrics["best_val"] == metrics[chosen]["best_val"]
    assert metrics["best_val"]["findings"] >= metrics["stage1"]["best_val"]["findings"]


@pytest.mark.slow
def test_caption_real_files_and_report_an_unreadable_one(captioner_run, mednist_small):
    work, run = captioner_run
    images = sorted((mednist_small / "images").rglob("*.jpeg"))[:2]
    (work / "broken.png").write_bytes(b"\x89PNG not really")
    done = cli(
        "caption",
        "--run",
        str(run),
        *map(str, images),
        str(work / "broken.png"),
        "--json",
        "--beam",
        "2",
        "--attention-dir",
        "att",
        cwd=work,
    )
    assert done.returncode != 0
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["path"] for e in entries] == [*map(str, images), str(work / "broken.png")]
    for entry in entries[:2]:
        assert {"path", "caption", "class", "prob"} <= set(entry)
        assert 0 <= entry["prob"] <= 1
    assert "error" in entries[2] and "caption" not in entries[2]
    assert len(list((work / "att").glob("*.png"))) == 2


@pytest.mark.slow
def test_evaluate_writes_the_caption_report(captioner_run):
    work, run = captioner_run
    done = cli_here("evaluate", "--run", str(run), "--out", "eval/report.json", cwd=work)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((work / "eval" / "report.json").read_text())
    keys = {"bleu1", "bleu2", "bleu3", "bleu4", "bleu4_nltk", "cider", "rouge_l"}
    assert keys | {"caption_class_accuracy", "findings_accuracy", "captions"} <= set(report)
    assert {"quality", *FIELDS} <= set(report["findings_accuracy"])
    assert len(report["captions"]) == report["n"] > 0
    assert {"path", "generated", "references"} <= set(report["captions"][0])
    assert (work / "eval" / "captions_test.md").is_file()
    share = report["template_share"]
    assert set(share) == {"0", "1", "2", "3", "4", "none"}
    assert abs(sum(share.values()) - 1) < 1e-4
    assert report["decoding"]["phrasing"] == "varied"
    # the baselines on the same split (train pool, k chosen on val) and the captions' diversity
    for name in ("constant", "retrieval_features", "retrieval_pixels"):
        assert keys <= set(report["baselines"][name]), name
    assert report["baselines"]["retrieval_features"]["k"] in (1, 5, 15, 30)
    assert 0 < report["distinct_share"] <= 1 and report["vocabulary_used"] >= 1
    assert report["decoding"]["rules"]["block_repeats"]
    assert report["decoding"]["search_chosen_on_validation"]


@pytest.mark.slow
def test_captions_are_sentences_and_the_same_every_time(captioner_run, mednist_small):
    work, run = captioner_run
    images = [str(p) for p in sorted((mednist_small / "images").rglob("*.jpeg"))[::40]]
    runs = [cli("caption", "--run", str(run), *images, "--json", cwd=work) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout  # the phrasing choice is seeded by the pixels
    one = cli("caption", "--run", str(run), images[-1], "--json", cwd=work)  # alone, not in a batch
    assert (
        json.loads(one.stdout)["caption"] == json.loads(runs[0].stdout.splitlines()[-1])["caption"]
    )
    for line in runs[0].stdout.splitlines():
        caption = json.loads(line)["caption"]
        assert caption[:1].isupper() and caption.endswith(".")
        assert " ct " not in f" {caption} " and " mri " not in f" {caption} "


@pytest.mark.slow
def test_a_run_from_older_templates_still_captions(captioner_run, mednist_small, tmp_path):
    """A run saved before the phrasing option and the reworded templates: no
    ``decoder.phrasing`` in its config, words the current set does not write. It captions,
    with its own search, and its words are shown by rule."""
    import shutil

    _, run = captioner_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    config = json.loads((old / "config.json").read_text())
    del config["decoder"]["phrasing"], config["decoder"]["phrasing_ratio"]
    (old / "config.json").write_text(json.dumps(config))
    vocab = json.loads((old / "vocabulary.json").read_text())
    vocab["tokens"] = vocab["tokens"][:4] + [f"{w}-old" for w in vocab["tokens"][4:]]
    (old / "vocabulary.json").write_text(json.dumps(vocab))
    images = [str(p) for p in sorted((mednist_small / "images").rglob("*.jpeg"))[::60]]
    done = cli("caption", "--run", str(old), *images, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in done.stdout.splitlines():
        caption = json.loads(line)["caption"]
        assert caption == "" or (caption[0].isupper() and caption.endswith("."))


@pytest.mark.slow
def test_training_records_the_decoding_rules_and_the_chosen_search(captioner_run):
    """config.json: the rules on and min_length from the training captions; decoding.json: the
    beam x length_alpha grid scored on validation, which inference then decodes with."""
    from captioning.inference import Captioner

    _, run = captioner_run
    decoder = json.loads((run / "config.json").read_text())["decoder"]
    assert decoder["block_specials"] and decoder["block_repeats"]
    assert 0 <= decoder["min_length"] <= decoder["max_length"] // 2
    chosen = json.loads((run / "decoding.json").read_text())
    assert chosen["monitor"] == "findings" and chosen["split"] == "val" and chosen["images"] == 16
    tried = [(g["beam_width"], g["length_alpha"]) for g in chosen["grid"]]
    assert tried[0][0] == 1 and len(tried) == 7 and len(set(tried)) == 7
    best = max(g["metrics"]["findings"] for g in chosen["grid"])
    assert {"beam_width": chosen["beam_width"], "length_alpha": chosen["length_alpha"]} in [
        {"beam_width": b, "length_alpha": a}
        for (b, a), g in zip(tried, chosen["grid"], strict=True)
        if g["metrics"]["findings"] == best
    ]
    captioner = Captioner(run)
    assert captioner.beam_width == chosen["beam_width"]
    assert captioner.search.length_alpha == chosen["length_alpha"]
    assert captioner.search.rules.block_repeats
