"""Every published number has its artifact: the tables in README.md and experiments/README.md
equal what experiments/tables.py renders from the committed JSON files, and the recorder turns
a run folder into an artifact with its provenance."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from captioning.utils.provenance import data_copy, git_state, machine

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    """A script of experiments/ as a module (it is not part of the package)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    return module


tables = load("tables")
record = load("record")


def test_markdown_tables_equal_their_artifacts(capsys):
    assert tables.run(ROOT, check=True) == 0, capsys.readouterr().out


def test_every_document_has_its_tables():
    names = {
        doc: {m.group(2) for m in tables.BLOCK.finditer((ROOT / doc).read_text())}
        for doc in tables.DOCUMENTS
    }
    assert names["README.md"] == {"headline"}
    assert names["experiments/README.md"] == {"classifier", "captioner", "speed"}
    assert names["experiments/speed.md"] == {
        "profile-training",
        "profile-training-low-load",
        "profile-training-numpy-pipeline",
        "profile-training-stride4",
        "levers",
    }


@pytest.fixture
def copy(tmp_path):
    """The documents and artifacts in a scratch root, free to edit."""
    for doc in tables.DOCUMENTS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    for folder in ("experiments/results", "experiments/benchmarks"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_a_number_edited_in_the_markdown_is_caught_and_restored(copy, capsys):
    path = copy / "experiments/README.md"
    text = path.read_text()
    ratio = re.search(r"\| (\d+\.\d)x \|", text)  # a ratio cell of the speed table
    assert ratio, "no ratio cell in the speed table"
    edited = f"| {float(ratio.group(1)) + 1:.1f}x |"
    path.write_text(text.replace(ratio.group(0), edited, 1))
    assert tables.run(copy, check=True) == 1
    assert "experiments/README.md: table 'speed' differs" in capsys.readouterr().out
    assert tables.run(copy, check=False) == 0
    assert path.read_text() == text


def test_a_changed_artifact_changes_its_table(copy, capsys):
    bench = copy / "experiments/benchmarks/classifier.json"
    data = json.loads(bench.read_text())
    data["pipeline_images_per_second"]["ratio"] = 9.9
    bench.write_text(json.dumps(data))
    assert tables.run(copy, check=True) == 1
    assert "table 'speed'" in capsys.readouterr().out


def test_an_unknown_table_is_refused(copy):
    path = copy / "README.md"
    path.write_text(path.read_text() + "\n<!-- table:nope -->\n<!-- /table:nope -->\n")
    with pytest.raises(tables.TableError, match=r"README\.md: unknown table 'nope'"):
        tables.run(copy, check=True)


def fake_captioner_run(root: Path, ece: dict | None) -> tuple[Path, Path]:
    """A captioner run folder as an older version wrote it (no code/data/machine blocks)."""
    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps(
            {
                "command": "cli.py train captioner --encoder enc --run-dir run",
                "seed": 3,
                "kind": "captioner",
                "manifest_sha256": "ab" * 32,
                "data_root": str(root / "gone"),
                "versions": {"captioning_git_commit": "f" * 40},
            }
        )
    )
    (run / "metrics.json").write_text(json.dumps({"parameters": 10, "chosen_stage": 1}))
    evaluation = {
        "n": 4,
        "bleu4": 0.5,
        "cider": 1.25,
        "rouge_l": 0.75,
        "caption_class_accuracy": 1.0,
        "findings_accuracy": {"extent": 0.5, "density": 0.25, "brightness": 1.0, "all": 0.25},
        "manifest_sha256": "ab" * 32,
        "split": "test",
        "captions": [{"generated": "not kept"}],
    }
    if ece is not None:
        evaluation["ece"] = ece
    out = root / "test.json"
    out.write_text(json.dumps(evaluation))
    return run, out


def test_record_writes_an_artifact_the_captioner_table_renders(tmp_path):
    ece = {"class": 0.0123, "extent": 0.02, "density": None}
    run, evaluation = fake_captioner_run(tmp_path, ece=ece)
    results = tmp_path / "experiments/results"
    args = ["--eval", str(evaluation), "--name", "tiny", "--label", "tiny captioner"]
    assert record.main([str(run), *args, "--results", str(results)]) == 0
    art = json.loads((results / "captioner/tiny.json").read_text())
    assert art["command"] == "captioning train captioner --encoder enc --run-dir run"
    assert art["code"] == {"commit": "f" * 40, "dirty": None}
    assert art["data"] == {"copy": None, "images": None, "manifest_sha256": "ab" * 32}
    assert art["machine"]["cpu"] is None
    assert art["image"] == {"size": None, "channels": None}  # the run recorded no image setting
    assert "captions" not in art["metrics"]
    assert art["training"] == {"parameters": 10, "chosen_stage": 1}

    art["_path"] = "experiments/results/captioner/tiny.json"
    text = tables.RENDERERS["captioner"]({"results": {"captioner": [art]}, "benchmarks": {}})
    cells = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    assert cells == [
        "tiny captioner", "0.5000", "1.250", "0.7500", "100.00%",
        "50.00%", "25.00%", "100.00%", "25.00%", "1.23 / 2.00", "–",
    ]  # fmt: skip
    assert "data copy not recorded" in text and "machine not recorded" in text


def test_record_refuses_a_missing_evaluation_in_one_line(tmp_path, capsys):
    run, _ = fake_captioner_run(tmp_path, ece=None)
    missing = tmp_path / "nope.json"
    assert record.main([str(run), "--eval", str(missing), "--name", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: missing"


def test_provenance_names_the_data_copy_and_the_machine():
    assert data_copy(52_954) == "development"
    assert data_copy(58_954) == "full"
    assert data_copy(100) == "other"
    here = machine()
    assert here["cores"] >= 1 and here["cpu"]
    if Path("/proc/cpuinfo").is_file():
        assert set(here["flags"]) >= {"avx512f", "avx512_bf16", "amx_tile"}
    state = git_state(ROOT)
    if state["commit"] is not None:
        assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)


def test_captioner_rows_of_several_seeds_get_their_mean():
    arts = []
    for seed, acc in ((0, 0.99), (1, 0.97)):
        metrics = {"bleu4": 0.5 + seed, "findings_accuracy": {"all": acc}}
        arts.append({"label": "cap", "seed": seed, "metrics": metrics, "_path": f"{seed}.json"})
    text = tables.RENDERERS["captioner"]({"results": {"captioner": arts}, "benchmarks": {}})
    rows = [r for r in text.splitlines() if r.startswith("| ")][2:]
    assert [r.split("|")[1].strip() for r in rows] == [
        "cap, seed 0", "cap, seed 1", "**cap, mean of seeds 0, 1**",
    ]  # fmt: skip
    assert "**1.0000**" in rows[2] and "**98.00%**" in rows[2]


def test_medpix_intervals_show_when_the_artifacts_carry_them(copy):
    """The committed MedPix artifacts predate the paired bootstrap: no interval table. Once an
    artifact's baselines carry one, its rows show the difference and the 95% interval."""
    medpix = load("table_medpix")
    document = copy / "experiments/medpix.md"
    block = {m.group(2): m.group(3) for m in tables.BLOCK.finditer(document.read_text())}
    assert "paired bootstrap" not in block["medpix"]  # (the 128x128 runs carry them)
    paths = sorted((copy / "experiments/results/medpix").glob("*.json"))
    art = json.loads(paths[0].read_text())
    entry = {"difference": 0.0213, "low": 0.0101, "high": 0.0334, "captioner_wins": 0.998}
    art["metrics"]["baselines"]["constant"]["paired_bootstrap"] = {
        "cider": entry, "bleu4": {**entry, "difference": -0.002, "low": -0.004, "high": 0.0},
        "rouge_l": {**entry, "difference": 0.04, "low": 0.03, "high": 0.05},
        "resamples": 1000, "seed": 0, "not_compared": {"meteor": "jar"},
    }  # fmt: skip
    paths[0].write_text(json.dumps(art))
    assert tables.run(copy, check=False) == 0
    text = next(m.group(3) for m in tables.BLOCK.finditer(document.read_text()) if m[2] == "medpix")
    assert "paired bootstrap 95% interval over the test images (1000 resamples, seed 0)" in text
    seed = f"{art['label']}, seed {art['seed']}"
    cells = "-0.002 [-0.004, +0.000] | +0.040 [+0.030, +0.050] | +0.021 [+0.010, +0.033]"
    assert f"| {seed} | constant | {cells} |" in text  # BLEU-4, ROUGE-L, CIDEr-D: no METEOR
    assert f"| {seed} | retrieval_pixels | – | – | – |" in text
    assert medpix.interval(None) == "–"


def test_medpix_128_compares_the_image_settings(copy):
    """A 128x128 RGB artifact (results/medpix_128) is set beside the 64x64 grey label encoder,
    over all its seeds and over the same seeds: each row says its image setting and seeds; with
    none recorded, a note, not an empty table."""
    medpix = load("table_medpix")
    artifacts = tables.load_artifacts(copy)
    artifacts["results"].pop("medpix_128", None)
    assert "No MedPix 2.0 result is recorded in results/medpix_128" in medpix.medpix_128(artifacts)
    base = [a for a in artifacts["results"]["medpix"] if a["label"] == "labels-encoder"]
    wide = {**json.loads(json.dumps(base[0])), "label": "labels-encoder-128rgb"}
    wide["image"] = {"size": 128, "channels": 3}
    wide["metrics"]["cider"] = 0.5
    artifacts["results"]["medpix_128"] = [wide]
    text = medpix.medpix_128(artifacts)
    rows = [r.split("|")[1:4] for r in text.splitlines() if r.startswith("| labels-encoder")]
    seeds = ", ".join(str(a["seed"]) for a in base)
    assert [[c.strip() for c in r] for r in rows[:3]] == [
        ["labels-encoder", "64x64 grey", seeds],
        ["labels-encoder, the same seeds", "64x64 grey", str(wide["seed"])],
        ["labels-encoder-128rgb", "128x128 RGB", str(wide["seed"])],
    ]
    assert "| 0.500 ± 0.000 |" in text and "One seed" in text


def test_record_keeps_each_label_head_of_a_classifier(tmp_path):
    """A classifier of label columns keeps each head's accuracy and unseen count, and the run's
    image setting; the per-image report stays with the run."""
    run = tmp_path / "run"
    run.mkdir()
    info = {"kind": "classifier", "seed": 0, "manifest_sha256": "cd" * 32, "image_size": 128}
    (run / "run.json").write_text(json.dumps({**info, "image_channels": 3}))
    (run / "metrics.json").write_text(json.dumps({"epochs_run": 4}))
    evaluation = {"n": 5, "accuracy": 0.6, "accuracy_plane": 0.4, "unseen_plane": 1, "heads": {}}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    args = ["--eval", str(tmp_path / "eval.json"), "--name", "c", "--group", "g"]
    assert record.main([str(run), *args, "--results", str(tmp_path / "results")]) == 0
    art = json.loads((tmp_path / "results/g/c.json").read_text())
    assert art["metrics"] == {"n": 5, "accuracy": 0.6, "accuracy_plane": 0.4, "unseen_plane": 1}
    assert art["image"] == {"size": 128, "channels": 3}
