"""Compatibility with what older code made: a saved captioner run, its exported SavedModel and
the bundled model still load and give the captions the code of commit ab38b9c gave
(``tests/fixtures/``, README.md there).

The package is driven only through its command line (``helpers.cli``) and the SavedModel only
through plain TensorFlow, never through module imports, so these tests hold across moves of the
package's modules. The fixtures are never regenerated to make these tests pass: a failure means
the current code reads an old run, export or the bundled model differently.

Text (captions, classes, paths, flags, errors) must be equal. Numbers (probabilities,
confidences, out-of-scope scores and thresholds, the SavedModel's scores) must agree within a
relative 1e-5 (about 100 float32 ulps: room for a different order of float32 sums, batch
shapes or kernels, while a changed temperature, scope statistic or formula moves them by far
more) or an absolute 1e-6 (the 6-decimal rounding step of ``caption --json``, so that a value
on a rounding boundary may come out one unit lower or higher).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tarfile
from pathlib import Path

import pytest

from helpers import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected_captions.json").read_text())
REL_TOL, ABS_TOL = 1e-5, 1e-6
# what changed on purpose since the fixtures were pinned, and why; nothing else may
ADDED_KEYS = {
    "out_of_scope_reason": "an out-of-scope entry says why (scope/gaussian.py)",
    "findings": "a captioned entry states its findings: field -> the value its caption states",
}
BUNDLED_SCOPE_REFIT = {
    "ood_score": "the bundled scope was refitted with the gaussian rule: its score is now the "
    "largest view's distance over its limit (experiments/refit_bundled_scope.py)",
}


def without(entries: list[dict], keys) -> list[dict]:
    """``entries`` without ``keys`` (the changes made on purpose since pinning)."""
    return [{k: v for k, v in e.items() if k not in keys} for e in entries]


# The fixtures as committed: a regenerated fixture is a re-pin, not a fix (README.md there).
PINNED_SHA256 = {
    "expected_captions.json": "314a6f0642bc284252ddfa484476dcdb84c53be558afb68ddef80cc4f071a821",
    "images/blob.png": "c4317d125b6da07aa049df210e23fe4c921f024097e926a3a8ac2dfd11b813a7",
    "images/colour_160x120.png": "47aa1b6723cc68c6d57c83c1b2f1be9554c6176674c6de0458267c64827f7242",
    "images/gradient.png": "5ff2043ec09836414e847cee7dc1306fc298410574dcfbdaabb61e3779218374",
    "images/rings.png": "be24e48188bb7e8eca99b2bc99277934a1a70850079c8c4eb2bb7eb16a935471",
    "images/square.png": "4089d6cbc035cdabb4f47cbc0d53f9ac08877200b8c509c687d117c3c50d21f9",
    "tiny_captioner_run/best_model.keras": (
        "73b00d893d5a5359da513d02a5ae9dd120fe8baa2026b503f1f08d63d93d7ada"
    ),
    "tiny_captioner_run/calibration.json": (
        "85170375aafa21f629a24b78c8650c9848474bbc6340f098246ce57f039bc953"
    ),
    "tiny_captioner_run/config.json": (
        "8615a195ae2d369b764672b4255bb15f349e7dd439e018ea909c4d150396cb6b"
    ),
    "tiny_captioner_run/metrics.json": (
        "e9b1076a7b865c0de071fa2fbddb342b21caa90b7dc378285f6d03232e4a48e8"
    ),
    "tiny_captioner_run/run.json": (
        "7ced27894dc0ebab20fa49816eb5c04f3d15484c6ce3949716f1ae48dfb4a896"
    ),
    "tiny_captioner_run/scope.json": (
        "e021ba2b4d4551f022eefbec5d2925638497fefa6c935226e8581c418b48953b"
    ),
    "tiny_captioner_run/scope.npz": (
        "8ec66ad391fb17aa0fa2eacb61af0c92fdb7ff0364dd3b59089436443d116715"
    ),
    "tiny_captioner_run/vocabulary.json": (
        "d88a365a1d932651dfeb031e83a92d49dc069b91586f39d8ce22dc5e80f6c5e1"
    ),
    "tiny_saved_model/export.json": (
        "ab963b9a384ae199f3070b7962d59620fc35bf4c2af6639f312e0ccb245867f3"
    ),
    "tiny_saved_model/saved_model/fingerprint.pb": (
        "685ddd6e36458b7056a30b3464506ca9f668b7a2cdc537773788d438023bf75e"
    ),
    "tiny_saved_model/saved_model/saved_model.pb": (
        "4c5395daa785899902440e7bf29bf99a16e129a172839d8624ca5bf4fe9024f1"
    ),
    "tiny_saved_model/saved_model/variables/variables.data-00000-of-00001": (
        "db338fd39eeddea362adc2fa292013579efa3b5d44c82a64a996b255c871e1a2"
    ),
    "tiny_saved_model/saved_model/variables/variables.index": (
        "c5378170c6b4d1279bf027862ea64d9725af4f7caf3362eaf5794aa393634b33"
    ),
}


def assert_same(got, want, where: str = "") -> None:
    """``got`` equals ``want``: the same keys and lengths, equal text, booleans and nulls,
    numbers within the module's tolerance. NaN in ``got`` stands for a pinned null (the
    SavedModel's "not stated")."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif want is None:
        assert got is None or (isinstance(got, float) and math.isnan(got)), f"{where}: {got!r}"
    elif isinstance(want, bool | str):
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, int | float):
        assert isinstance(got, int | float) and not isinstance(got, bool), f"{where}: {got!r}"
        assert math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL), (
            f"{where}: {got!r} != {want!r} (rel {REL_TOL}, abs {ABS_TOL})"
        )
    else:
        raise TypeError(f"{where}: unexpected pinned value {want!r}")


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_findings_added(entries: list[dict]) -> int:
    """``findings`` is on exactly the captioned entries, names the fields ``confidence`` names
    (but the class) and is null exactly where that confidence is (a stated finding has one:
    these runs' vocabularies hold every word of the set); returns how many are stated."""
    stated = 0
    for entry in entries:
        assert ("findings" in entry) == ("caption" in entry), entry
        if "caption" not in entry:
            continue
        fields = [k for k in entry["confidence"] if k != "class"]
        assert list(entry["findings"]) == fields, entry
        for name, value in entry["findings"].items():
            assert (value is None) == (entry["confidence"][name] is None), (name, entry)
            stated += value is not None
    return stated


def test_fixtures_are_the_pinned_ones():
    assert EXPECTED["made_by"]["commit"] == "ab38b9c"
    got = {
        name: hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() for name in PINNED_SHA256
    }
    assert got == PINNED_SHA256


def test_pinned_run_captions_the_images_as_pinned(tmp_path):
    """``caption --json --keep-out-of-scope`` of the old tiny run, on a copy of the run (so
    nothing the current code might write lands in the fixtures)."""
    pinned = EXPECTED["tiny_run"]
    shutil.copytree(FIXTURES / "tiny_captioner_run", tmp_path / "tiny_captioner_run")
    shutil.copytree(FIXTURES / "images", tmp_path / "images")
    done = cli(*pinned["command"], cwd=tmp_path / "images")
    assert done.returncode == 0, done.stderr
    got = json_lines(done.stdout)
    assert [e.get("caption") for e in got] == [e["caption"] for e in pinned["entries"]]
    assert [e.get("class") for e in got] == [e["class"] for e in pinned["entries"]]
    for entry in got:  # an addition: the reason, on exactly the entries out of scope
        assert ("out_of_scope_reason" in entry) == (entry.get("in_scope") is False), entry
    assert assert_findings_added(got) > 0  # the other: findings, derived from the old run
    assert_same(without(got, ADDED_KEYS), pinned["entries"], "entries")


@pytest.mark.slow  # loading and first call of the SavedModel's graph: ~15 s of CPU
def test_pinned_saved_model_loads_with_plain_tensorflow_and_gives_the_pinned_outputs():
    import tensorflow as tf

    pinned = EXPECTED["tiny_saved_model"]
    model = tf.saved_model.load(str(FIXTURES / "tiny_saved_model" / "saved_model"))
    files = [(FIXTURES / "images" / name).read_bytes() for name in pinned["images"]]
    out = model.signatures[pinned["signature"]](images=tf.constant(files))
    out = {key: value.numpy() for key, value in out.items()}
    rows = []
    for i, name in enumerate(pinned["images"]):
        row = {"image": name}
        for key, value in out.items():
            item = value[i]
            row[key] = item.decode() if isinstance(item, bytes) else item.item()
        rows.append(row)
    assert [r["caption"] for r in rows] == [r["caption"] for r in pinned["outputs"]]
    assert [r["class"] for r in rows] == [r["class"] for r in pinned["outputs"]]
    assert_same(rows, pinned["outputs"], "outputs")


@pytest.mark.mednist
def test_bundled_model_captions_real_images_as_pinned(mednist_archive, tmp_path):
    """``caption --json`` of the bundled model on six MedNIST images, named by their paths in
    the archive and captioned from the folder they are extracted into."""
    pinned = EXPECTED["bundled"]
    with tarfile.open(mednist_archive) as tar:
        members = [m for m in tar.getmembers() if m.name in pinned["members"]]
        assert sorted(m.name for m in members) == sorted(pinned["members"])
        tar.extractall(tmp_path, members=members, filter="data")
    done = cli(*pinned["command"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = json_lines(done.stdout)
    assert [e.get("caption") for e in got] == [e["caption"] for e in pinned["entries"]]
    assert [e.get("class") for e in got] == [e["class"] for e in pinned["entries"]]
    assert [e["in_scope"] for e in got] == [e["in_scope"] for e in pinned["entries"]]
    assert assert_findings_added(got) > 0
    changed = {**ADDED_KEYS, **BUNDLED_SCOPE_REFIT}
    assert_same(without(got, changed), without(pinned["entries"], changed), "entries")
