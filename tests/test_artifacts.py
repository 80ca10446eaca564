"""Committed artifacts follow the model they name: each one measured on the bundled captioner
carries the sha256 of its weights, and it must be the sha256 of the weights bundled now (a
retrained bundle makes them stale until they are measured again); the load test and the export
check also carry the digest of every file the bundle keeps (``bundle_sha256``: a refitted scope
or temperature makes them stale too). And the bundle itself is only
made from committed code: ``experiments/bundle_model.py`` refuses a dirty checkout (shown on a
copy of the script in a real temporary git repository)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "captioning" / "pretrained" / "captioner" / "best_model.keras"
# artifact -> how it names the bundled captioner's weights (a path of keys into its JSON)
NAMING_THE_BUNDLE = {
    "experiments/benchmarks/serve_load.json": ("model_weights_sha256",),
    "experiments/results/export/saved_model_bundled.json": ("model_weights_sha256",),
    "captioning/pretrained/model_card.json": ("files_sha256", "captioner/best_model.keras"),
}


def weights_sha256() -> str:
    return hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()


@pytest.mark.parametrize("artifact", sorted(NAMING_THE_BUNDLE))
def test_artifacts_carry_the_bundled_weights_sha256(artifact):
    value = json.loads((ROOT / artifact).read_text())
    for key in NAMING_THE_BUNDLE[artifact]:
        assert key in value, f"{artifact}: no {'.'.join(NAMING_THE_BUNDLE[artifact])}"
        value = value[key]
    assert value == weights_sha256(), (
        f"{artifact} was measured on other weights ({value[:12]}) than the bundled "
        f"{WEIGHTS.relative_to(ROOT)} ({weights_sha256()[:12]}): measure it again"
    )


# artifacts whose numbers depend on the whole bundle (scope, temperatures), not only the weights
NAMING_THE_WHOLE_BUNDLE = (
    "experiments/benchmarks/serve_load.json",
    "experiments/results/export/saved_model_bundled.json",
)


@pytest.mark.parametrize("artifact", NAMING_THE_WHOLE_BUNDLE)
def test_artifacts_carry_the_bundles_digest(artifact):
    from captioning.bundled import bundle_sha256

    now = bundle_sha256(WEIGHTS.parent)
    recorded = json.loads((ROOT / artifact).read_text()).get("bundle_sha256")
    assert recorded == now, (
        f"{artifact} was measured on another bundle ({str(recorded)[:12]}) than the files in "
        f"{WEIGHTS.parent.relative_to(ROOT)} now ({now[:12]}): measure it again"
    )


def test_the_digest_changes_with_any_file_the_bundle_keeps(tmp_path):
    from captioning.bundled import bundle_sha256

    copy = shutil.copytree(WEIGHTS.parent, tmp_path / "captioner")
    before = bundle_sha256(copy)
    (copy / "scope.json").write_text((copy / "scope.json").read_text() + " ")
    assert bundle_sha256(copy) != before


def test_the_export_record_names_the_same_weights_twice():
    record = json.loads((ROOT / "experiments/results/export/saved_model_bundled.json").read_text())
    assert record["export"]["model_sha256"] == record["model_weights_sha256"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A real git repository holding a copy of experiments/bundle_model.py, committed clean."""
    repo = tmp_path / "repo"
    for name, text in {
        "captioning/model.py": "WIDTH = 8\n",
        "docs/notes.md": "notes\n",
    }.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    (repo / "experiments").mkdir()
    shutil.copy2(ROOT / "experiments" / "bundle_model.py", repo / "experiments")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "start")
    return repo


def bundle(repo: Path) -> subprocess.CompletedProcess:
    """The copied script, run in ``repo`` on run folders that do not exist (the package from
    this checkout: the copy's own ``captioning/`` folder is no package)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = repo / "experiments" / "bundle_model.py"
    return subprocess.run(
        [sys.executable, str(script), "no-classifier", "no-captioner", "--out", "bundle"],
        cwd=repo, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_bundling_refuses_uncommitted_code(checkout):
    (checkout / "docs" / "notes.md").write_text("edited\n")  # outside captioning/, experiments/
    done = bundle(checkout)
    assert "uncommitted" not in done.stderr and "no-classifier" in done.stderr  # missing runs
    (checkout / "captioning" / "model.py").write_text("WIDTH = 16\n")
    done = bundle(checkout)
    assert done.returncode == 1 and not (checkout / "bundle").exists()
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"{checkout}: uncommitted changes in captioning/ or experiments/")
    assert "captioning/model.py" in line

    git(checkout, "checkout", "--", "captioning")
    (checkout / "experiments" / "new_result.json").write_text("{}\n")  # untracked counts too
    done = bundle(checkout)
    assert done.returncode == 1 and "experiments/new_result.json" in done.stderr


def test_bundling_refuses_a_folder_outside_git(tmp_path):
    (tmp_path / "experiments").mkdir()
    shutil.copy2(ROOT / "experiments" / "bundle_model.py", tmp_path / "experiments")
    done = bundle(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"{tmp_path}: not a git checkout")
